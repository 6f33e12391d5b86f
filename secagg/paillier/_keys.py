"""Paillier keys: generation on ``phe``, size policy, fingerprints, and a
versioned binary serialisation that is not pickle.

Keys are ``phe.PaillierPublicKey`` / ``phe.PaillierPrivateKey`` objects, so
existing key handling keeps working. ``phe`` always uses ``g = n + 1``; so do
we.

Wire formats (all through :mod:`secagg.wire`, big-endian):

* public key, magic ``SGPK`` version 1: ``u16 bits | bigint n``.
* private key, magic ``SGSK`` version 1: ``u16 bits | bigint p | bigint q``.
  This is secret material in the clear; wrap it (for example with
  :mod:`secagg.aead`) before it leaves the key owner.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, TypeAlias

import gmpy2
import phe

from ..errors import IntegrityError, ParameterError, ProtocolError
from ..wire import Reader, Writer

__all__ = [
    "DEFAULT_KEY_BITS",
    "MAX_KEY_BITS",
    "MIN_KEY_BITS",
    "SUPPORTED_KEY_BITS",
    "PaillierPrivateKey",
    "PaillierPublicKey",
    "check_private_key",
    "check_public_key",
    "fingerprint",
    "generate_keypair",
    "private_key_from_bytes",
    "private_key_to_bytes",
    "public_key_from_bytes",
    "public_key_to_bytes",
]

PaillierPublicKey = phe.PaillierPublicKey
PaillierPrivateKey = phe.PaillierPrivateKey

#: gmpy2 integers carry no type information for mypy.
Mpz: TypeAlias = Any

#: Smallest modulus accepted without the test-only flag (about 112-bit security).
MIN_KEY_BITS = 2048
#: Default modulus size.
DEFAULT_KEY_BITS = 2048
#: Sizes this library documents and benchmarks (3072 bits: about 128-bit security).
SUPPORTED_KEY_BITS = (2048, 3072)
#: Largest modulus accepted anywhere (bounds decoding work on untrusted input).
MAX_KEY_BITS = 8192
#: Smallest modulus accepted even with the test-only flag.
_TEST_MIN_KEY_BITS = 256

_PK_MAGIC = b"SGPK"
_SK_MAGIC = b"SGSK"
_FP_DOMAIN = b"secagg.paillier.public-key.v1\x00"


def _check_bits(bits: int, insecure_allow_small_key_for_tests: bool, what: str) -> None:
    floor = _TEST_MIN_KEY_BITS if insecure_allow_small_key_for_tests else MIN_KEY_BITS
    if bits < floor:
        hint = (
            ""
            if insecure_allow_small_key_for_tests
            else " (pass insecure_allow_small_key_for_tests=True only in tests)"
        )
        raise ParameterError(f"{what} has {bits} bits; the minimum is {floor}{hint}")
    if bits > MAX_KEY_BITS:
        raise ParameterError(f"{what} has {bits} bits; the maximum is {MAX_KEY_BITS}")


def generate_keypair(
    bits: int = DEFAULT_KEY_BITS, *, insecure_allow_small_key_for_tests: bool = False
) -> tuple[Any, Any]:
    """A fresh ``phe`` key pair with an n of exactly ``bits`` bits.

    ``bits`` must be at least 2048 (3072 for about 128-bit security); smaller
    keys, for fast tests only, need ``insecure_allow_small_key_for_tests``.
    Primes come from ``phe``, which draws them from the OS generator.
    """
    if isinstance(bits, bool) or not isinstance(bits, int) or bits % 2:
        raise ParameterError(f"bits must be an even int, got {bits!r}")
    _check_bits(bits, insecure_allow_small_key_for_tests, "the requested key")
    pk, sk = phe.generate_paillier_keypair(n_length=bits)
    return pk, sk


def check_public_key(public_key: Any, *, insecure_allow_small_key_for_tests: bool = False) -> int:
    """Return n's bit length after checking type, ``g = n + 1`` and size."""
    if not isinstance(public_key, phe.PaillierPublicKey):
        raise ParameterError(f"expected a phe.PaillierPublicKey, got {type(public_key).__name__}")
    n = int(public_key.n)
    if n < 3 or n % 2 == 0 or int(public_key.g) != n + 1:
        raise ParameterError("public key is not a valid Paillier key with g = n + 1")
    bits = n.bit_length()
    _check_bits(bits, insecure_allow_small_key_for_tests, "the public key")
    return bits


def check_private_key(
    private_key: Any, *, insecure_allow_small_key_for_tests: bool = False
) -> None:
    """Check a ``phe`` private key's type, size and consistency with its public key."""
    if not isinstance(private_key, phe.PaillierPrivateKey):
        raise ParameterError(f"expected a phe.PaillierPrivateKey, got {type(private_key).__name__}")
    check_public_key(
        private_key.public_key,
        insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests,
    )
    if int(private_key.p) * int(private_key.q) != int(private_key.public_key.n):
        raise ParameterError("private key does not match its public key (p * q != n)")


def fingerprint(public_key: Any) -> bytes:
    """32-byte SHA-256 fingerprint of a public key's modulus (domain-separated)."""
    n = int(public_key.n)
    return hashlib.sha256(_FP_DOMAIN + n.to_bytes((n.bit_length() + 7) // 8, "big")).digest()


def public_key_to_bytes(public_key: Any) -> bytes:
    """Serialise a public key (magic ``SGPK``, version 1)."""
    bits = check_public_key(public_key, insecure_allow_small_key_for_tests=True)
    return Writer(_PK_MAGIC).u16(bits).bigint(int(public_key.n)).getvalue()


def public_key_from_bytes(data: bytes, *, insecure_allow_small_key_for_tests: bool = False) -> Any:
    """Parse and validate a public key.

    Raises :class:`ProtocolError` on malformed bytes or a modulus that cannot
    be an RSA-style n (even, square, prime, wrong declared size), and
    :class:`ParameterError` on a key below the size policy.
    """
    r = Reader(data, _PK_MAGIC)
    bits = r.u16()
    n = r.bigint(max_bytes=MAX_KEY_BITS // 8)
    r.done()
    if n.bit_length() != bits:
        raise ProtocolError(f"public key declares {bits} bits but n has {n.bit_length()}")
    if n < 3 or n % 2 == 0:
        raise ProtocolError("public key modulus is not odd")
    _check_bits(bits, insecure_allow_small_key_for_tests, "the public key")
    if gmpy2.is_square(n) or gmpy2.is_prime(n):
        raise ProtocolError("public key modulus is not a product of two distinct primes")
    return phe.PaillierPublicKey(n)


def private_key_to_bytes(private_key: Any) -> bytes:
    """Serialise a private key (magic ``SGSK``, version 1): p and q in the clear."""
    check_private_key(private_key, insecure_allow_small_key_for_tests=True)
    bits = int(private_key.public_key.n).bit_length()
    return (
        Writer(_SK_MAGIC).u16(bits).bigint(int(private_key.p)).bigint(int(private_key.q)).getvalue()
    )


def private_key_from_bytes(data: bytes, *, insecure_allow_small_key_for_tests: bool = False) -> Any:
    """Parse a private key; p and q must be distinct probable primes with
    ``gcd(n, (p-1)(q-1)) = 1`` and n of the declared size."""
    r = Reader(data, _SK_MAGIC)
    bits = r.u16()
    p = r.bigint(max_bytes=MAX_KEY_BITS // 8)
    q = r.bigint(max_bytes=MAX_KEY_BITS // 8)
    r.done()
    n = p * q
    if n.bit_length() != bits:
        raise ProtocolError(f"private key declares {bits} bits but p*q has {n.bit_length()}")
    _check_bits(bits, insecure_allow_small_key_for_tests, "the private key")
    if p == q or not gmpy2.is_prime(p) or not gmpy2.is_prime(q):
        raise ProtocolError("private key factors are not two distinct primes")
    if gmpy2.gcd(n, (p - 1) * (q - 1)) != 1:
        raise ProtocolError("private key has gcd(n, phi(n)) != 1")
    return phe.PaillierPrivateKey(phe.PaillierPublicKey(n), p, q)


@dataclass(frozen=True)
class _PublicContext:
    """gmpy2 form of a public key for the hot path."""

    n: Mpz
    n2: Mpz
    bits: int
    fingerprint: bytes

    @classmethod
    def of(cls, public_key: Any) -> _PublicContext:
        n = gmpy2.mpz(int(public_key.n))
        return cls(n=n, n2=n * n, bits=int(n.bit_length()), fingerprint=fingerprint(public_key))


@dataclass(frozen=True)
class _PrivateContext:
    """CRT constants of a private key (p < q as in phe).

    Decryption: ``m_p = L_p(c^(p-1) mod p^2) * hp mod p``, likewise for q,
    joined with ``p^-1 mod q``. Encryption obfuscators: an n-th residue mod
    n^2 is, mod p^2, ``a^p`` for a uniform ``a`` in ``Z_p^*`` (the lift of
    ``a``), provided ``gcd(n, phi(n)) = 1``; joined with ``p^-2 mod q^2``.
    """

    p: Mpz
    q: Mpz
    p2: Mpz
    q2: Mpz
    hp: Mpz
    hq: Mpz
    p_inv_q: Mpz
    p2_inv_q2: Mpz
    n: Mpz
    n2: Mpz

    @classmethod
    def of(cls, private_key: Any) -> _PrivateContext:
        return cls.from_factors(int(private_key.p), int(private_key.q))

    @classmethod
    def from_factors(cls, p_int: int, q_int: int) -> _PrivateContext:
        p = gmpy2.mpz(p_int)
        q = gmpy2.mpz(q_int)
        if p > q:
            p, q = q, p
        n = p * q
        if gmpy2.gcd(n, (p - 1) * (q - 1)) != 1:
            raise ParameterError("private key has gcd(n, phi(n)) != 1")
        p2, q2 = p * p, q * q
        # With g = n + 1: g^(p-1) = 1 + (p-1) n mod p^2, so L_p(g^(p-1)) = (p-1) q
        # = -q mod p, and hp is its inverse (likewise for q).
        hp = gmpy2.invert(-q % p, p)
        hq = gmpy2.invert(-p % q, q)
        return cls(
            p=p,
            q=q,
            p2=p2,
            q2=q2,
            hp=hp,
            hq=hq,
            p_inv_q=gmpy2.invert(p, q),
            p2_inv_q2=gmpy2.invert(p2, q2),
            n=n,
            n2=n * n,
        )


def random_unit(n: Mpz) -> Mpz:
    """Uniform r in [1, n) with gcd(r, n) = 1, from the OS generator."""
    n_int = int(n)
    while True:
        r = gmpy2.mpz(secrets.randbelow(n_int - 1) + 1)
        if gmpy2.gcd(r, n) == 1:
            return r


def validate_ciphertext(ctx: _PublicContext, c: Mpz) -> None:
    """Raise :class:`IntegrityError` unless 0 < c < n^2 and gcd(c, n) = 1."""
    if not 0 < c < ctx.n2:
        raise IntegrityError("ciphertext is outside (0, n^2)")
    if gmpy2.gcd(c, ctx.n) != 1:
        raise IntegrityError("ciphertext shares a factor with n")
