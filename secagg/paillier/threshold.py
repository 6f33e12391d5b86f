"""Threshold decryption of packed Paillier vectors (t of n decryptors).

Shoup-style threshold RSA adapted to Paillier with s = 1 (Shoup, EUROCRYPT
2000; Fouque, Poupard and Stern, FC 2000; Damgård and Jurik, PKC 2001):

* a **trusted dealer** draws safe primes ``p = 2p' + 1``, ``q = 2q' + 1``,
  sets ``n = pq``, ``m = p'q'`` and the secret ``d`` with ``d = 0 mod m`` and
  ``d = 1 mod n``, and shares it with a random polynomial ``f`` of degree
  ``t - 1`` over ``Z_{nm}``: ``s_i = f(i)`` for ``i = 1..n_parties``. It
  publishes a random square ``v`` generating the squares of ``Z*_{n^2}``
  and verification keys ``v_i = v^(Delta s_i)``, ``Delta = n_parties!``;
  then it forgets p, q and d;
* decryptor i answers a ciphertext c with ``c_i = c^(2 Delta s_i) mod n^2``
  and a Chaum-Pedersen proof (Fiat-Shamir, SHA-256) that
  ``log_{c^4}(c_i^2) = log_v(v_i)``. For a vector, one proof covers all
  ciphertexts: both sides are first combined with 128-bit exponents derived
  from a hash of every ciphertext and every partial (a small-exponent batch
  test; sound because the squares of ``Z*_{n^2}`` have no prime factor
  below ``min(p', q')``);
* any t partials combine with the integer Lagrange coefficients
  ``lambda_i = Delta * prod_{j != i} j / (j - i)``:
  ``prod c_i^(2 lambda_i) = (1 + n)^(4 Delta^2 x)``, so
  ``x = L(.) * (4 Delta^2)^-1 mod n``. The coefficients are computed once per
  decryptor set and reused for every ciphertext of a vector.

Keys are wrapped as ``phe.PaillierPublicKey(n)``, so packing, encryption and
aggregation are the ordinary :mod:`secagg.paillier` code, and a combined
vector decodes exactly as :func:`secagg.paillier.decrypt` does.

Wire formats (all :mod:`secagg.wire`, big-endian; never pickle):

* :class:`ThresholdKey`, magic ``SGTK`` v1: ``u16 bits | bigint n |
  u16 parties | u16 threshold | bigint v | parties x bigint v_i``;
* :class:`KeyShare`, magic ``SGTS`` v1: ``blob ThresholdKey | u16 index |
  bigint s_i``. Key and share integers must be minimal (no leading zero
  byte): each value has one encoding. SECRET: seal it to its owner (:func:`seal_share`);
* :class:`PartialDecryption`, magic ``SGTP`` v1: ``32 key digest |
  32 vector digest | u16 index | u32 count | u16 width | count x width bytes |
  16 challenge | bigint response``.

Security assumption: DCR for the encryption; the dealer is trusted to
generate honestly and to forget the factorisation (see SECURITY.md); the
proofs are sound in the random-oracle model.
"""

from __future__ import annotations

import functools
import hashlib
import math
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import gmpy2
import numpy as np
import numpy.typing as npt
import phe

from .. import aead
from .._util import check_bytes
from ..errors import AbortError, IntegrityError, ParameterError, ProtocolError
from ..profiling import CRYPTO, timed
from ..wire import Reader, Writer
from ._keys import (
    DEFAULT_KEY_BITS,
    MAX_KEY_BITS,
    Mpz,
    _check_bits,
    check_private_key,
    check_public_key,
    fingerprint,
    random_unit,
)
from ._obfuscators import check_workers, run_chunked
from ._vector import EncryptedVector

__all__ = [
    "MAX_PARTIES",
    "Dealt",
    "KeyShare",
    "PartialDecryption",
    "PartialDecryptionError",
    "ThresholdKey",
    "combine",
    "combine_integers",
    "deal",
    "generate_keypair",
    "generate_safe_prime",
    "is_safe_prime",
    "lagrange_coefficients",
    "open_share",
    "partial_decrypt",
    "seal_share",
    "verify_partial",
]

#: Most decryptors one key is shared among (Delta = parties! grows the exponents).
MAX_PARTIES = 128
#: Bits of the Fiat-Shamir challenge and of each batching exponent.
CHALLENGE_BITS = 128
#: Extra bits of the prover's nonce over ``challenge * secret`` (statistical ZK).
_HIDING_BITS = 128
#: Miller-Rabin rounds on the final safe-prime candidate.
_MR_ROUNDS = 40
#: Odd small primes used to sieve safe-prime candidates.
_SIEVE_LIMIT = 1 << 16
#: Candidates sieved at a time.
_SIEVE_WINDOW = 1 << 15

_TK_MAGIC = b"SGTK"
_KS_MAGIC = b"SGTS"
_PD_MAGIC = b"SGTP"
_DOMAIN = b"secagg.paillier.threshold.v1\x00"
_SEAL_DOMAIN = b"secagg.paillier.threshold.share-seal.v1\x00"


class PartialDecryptionError(IntegrityError):
    """One or more partial decryptions failed their proof.

    ``faulty`` holds the 1-based indices of the key shares that produced
    them; nothing was decrypted.
    """

    def __init__(self, faulty: Sequence[int], detail: str = "") -> None:
        self.faulty: tuple[int, ...] = tuple(sorted(faulty))
        names = ", ".join(str(i) for i in self.faulty)
        super().__init__(
            f"partial decryption from key share(s) {names} failed verification"
            + (f": {detail}" if detail else "")
        )


# ------------------------------------------------------------------ safe primes


@functools.lru_cache(maxsize=1)
def _sieve_primes() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Odd primes below the sieve limit, with 2^-1 and 4^-1 modulo each."""
    flags = np.ones(_SIEVE_LIMIT, dtype=bool)
    flags[:2] = False
    for i in range(2, math.isqrt(_SIEVE_LIMIT) + 1):
        if flags[i]:
            flags[i * i :: i] = False
    primes = np.nonzero(flags)[0][1:].astype(np.int64)
    inv2 = (primes + 1) // 2
    inv4 = np.array([pow(4, -1, int(r)) for r in primes], dtype=np.int64)
    return primes, inv2, inv4


def is_safe_prime(p: int) -> bool:
    """True if ``p`` and ``(p - 1) / 2`` are both (probable) primes."""
    if isinstance(p, bool) or not isinstance(p, int) or p < 7 or p % 2 == 0:
        return False
    q = (p - 1) // 2
    return bool(gmpy2.is_prime(q, _MR_ROUNDS)) and bool(gmpy2.is_prime(p, _MR_ROUNDS))


def generate_safe_prime(bits: int) -> int:
    """A uniform-ish safe prime ``p = 2p' + 1`` of exactly ``bits`` bits with
    its top two bits set (so a product of two has exactly ``2 * bits`` bits).

    Candidates ``p'`` come from :mod:`secrets`; ``p'`` and ``2p' + 1`` are
    sieved together by the odd primes below 2^16, then tested by a base-2
    Fermat test each and 40 Miller-Rabin rounds on ``p'``. Given ``p'``
    prime, ``2^(p-1) = 1 mod p`` proves p prime (Pocklington, as 3 does
    not divide p). ``bits`` in [64, MAX_KEY_BITS / 2].
    """
    if isinstance(bits, bool) or not isinstance(bits, int) or not 64 <= bits <= MAX_KEY_BITS // 2:
        raise ParameterError(f"bits={bits!r} is outside [64, {MAX_KEY_BITS // 2}]")
    primes, inv2, inv4 = _sieve_primes()
    top = 3 << (bits - 3)  # p' has bits - 1 bits, the top two set
    while True:
        q0 = secrets.randbits(bits - 1) | top | 1
        res = np.array([q0 % int(r) for r in primes], dtype=np.int64)
        keep = np.ones(_SIEVE_WINDOW, dtype=bool)
        # q0 + 2k = 0 mod r  <=>  k = -q0 / 2;  2(q0 + 2k) + 1 = 0  <=>  k = -(2 q0 + 1) / 4
        k1 = (-res * inv2) % primes
        k2 = (-(2 * res + 1) % primes * inv4) % primes
        for r, a, b in zip(primes.tolist(), k1.tolist(), k2.tolist(), strict=True):
            keep[a::r] = False
            keep[b::r] = False
        for k in np.nonzero(keep)[0].tolist():
            q = gmpy2.mpz(q0 + 2 * k)
            if q.bit_length() != bits - 1:
                break
            p = 2 * q + 1
            if gmpy2.powmod(2, q - 1, q) != 1 or gmpy2.powmod(2, p - 1, p) != 1:
                continue
            if gmpy2.is_prime(q, _MR_ROUNDS):
                return int(p)


def generate_keypair(
    bits: int = DEFAULT_KEY_BITS, *, insecure_allow_small_key_for_tests: bool = False
) -> tuple[Any, Any]:
    """A ``phe`` key pair whose factors are distinct safe primes (n of exactly
    ``bits`` bits). Ordinary ``phe`` keys are not safe-prime keys; threshold
    dealing needs these. ``bits`` >= 2048 unless the test-only flag is set."""
    if isinstance(bits, bool) or not isinstance(bits, int) or bits % 2:
        raise ParameterError(f"bits must be an even int, got {bits!r}")
    _check_bits(bits, insecure_allow_small_key_for_tests, "the requested key")
    p = generate_safe_prime(bits // 2)
    while True:
        q = generate_safe_prime(bits // 2)
        if q != p:
            break
    pk = phe.PaillierPublicKey(p * q)
    return pk, phe.PaillierPrivateKey(pk, p, q)


# ----------------------------------------------------------------------- helpers


def _int_bytes(v: int, width: int) -> bytes:
    return int(v).to_bytes(width, "big")


def _read_bigint(r: Reader, max_bytes: int, what: str) -> int:
    """A non-negative integer in its canonical (minimal) big-endian form: no
    leading zero byte, except the single byte of 0."""
    b = r.blob(max_len=max_bytes)
    if not b:
        raise ProtocolError(f"{what}: empty integer field")
    if len(b) > 1 and b[0] == 0:
        raise ProtocolError(f"{what} is not canonically encoded: {len(b)} bytes starting "
                            "with a zero byte")
    return int.from_bytes(b, "big")


def _share_bound(n: int) -> int:
    """``n (n - 2 isqrt(n))``: four times a public upper bound on ``n m``.

    ``m = (p-1)(q-1)/4`` and ``p + q >= 2 isqrt(n) + 1`` (n is no square), so
    ``n m <= n (n - 2 isqrt(n)) / 4``; a share reduced mod ``n m`` is below it."""
    return n * (n - 2 * int(gmpy2.isqrt(n)))


def _check_group_element(n: int, n2: int, value: int, what: str) -> None:
    if not 0 < value < n2 or math.gcd(value, n) != 1:
        raise ProtocolError(f"{what} is not a unit modulo n^2")


@functools.lru_cache(maxsize=256)
def lagrange_coefficients(indices: tuple[int, ...], parties: int) -> tuple[int, ...]:
    """Integer coefficients ``Delta * prod_{j != i} j / (j - i)`` at 0 for the
    decryptor set ``indices`` (distinct, in [1, parties]); ``Delta = parties!``.

    Cached: a decryptor set pays for them once, whatever the vector length.
    """
    if not 1 <= parties <= MAX_PARTIES:
        raise ParameterError(f"parties={parties} is outside [1, {MAX_PARTIES}]")
    if len(set(indices)) != len(indices) or not all(1 <= i <= parties for i in indices):
        raise ParameterError(f"indices {indices} must be distinct and in [1, {parties}]")
    delta = math.factorial(parties)
    out = []
    for i in indices:
        num, den = delta, 1
        for j in indices:
            if j != i:
                num *= j
                den *= j - i
        if num % den:  # cannot happen: Delta clears every denominator
            raise ParameterError("Lagrange coefficient is not an integer")
        out.append(num // den)
    return tuple(out)


# ---------------------------------------------------------------- ThresholdKey


@dataclass(frozen=True, eq=False)
class ThresholdKey:
    """Public material of a t-of-n threshold Paillier key.

    Attributes:
        public_key: the ``phe.PaillierPublicKey`` clients encrypt under.
        threshold: t, partial decryptions needed (1 <= t <= parties).
        v: a square generating the squares of ``Z*_{n^2}``.
        verification_keys: ``v_i = v^(Delta s_i) mod n^2`` for i = 1..parties.

    Derived: ``parties`` (= len(verification_keys)), ``delta`` (= parties!),
    ``digest`` (SHA-256 of the encoding; proofs and partials bind it).
    Keys below 2048 bits need ``insecure_allow_small_key_for_tests``.
    """

    public_key: Any
    threshold: int
    v: int
    verification_keys: tuple[int, ...]
    insecure_allow_small_key_for_tests: bool = field(default=False, repr=False)
    digest: bytes = field(init=False, repr=False)
    _encoded: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        bits = check_public_key(
            self.public_key,
            insecure_allow_small_key_for_tests=self.insecure_allow_small_key_for_tests,
        )
        object.__setattr__(self, "verification_keys", tuple(self.verification_keys))
        parties = len(self.verification_keys)
        if not 1 <= parties <= MAX_PARTIES:
            raise ParameterError(f"parties={parties} is outside [1, {MAX_PARTIES}]")
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= parties:
            raise ParameterError(f"threshold={t!r} is outside [1, parties={parties}]")
        n = int(self.public_key.n)
        n2 = n * n
        for what, x in (
            ("v", self.v),
            *((f"v_{i + 1}", y) for i, y in enumerate(self.verification_keys)),
        ):
            if isinstance(x, bool) or not isinstance(x, int):
                raise ParameterError(f"{what} must be an int, got {type(x).__name__}")
            try:
                _check_group_element(n, n2, x, what)
            except ProtocolError as exc:
                raise ParameterError(str(exc)) from None
        for what, x in (
            ("v", self.v),
            *((f"v_{i + 1}", y) for i, y in enumerate(self.verification_keys)),
        ):
            if gmpy2.jacobi(x % n, n) != 1:
                raise ParameterError(f"{what} is not a square modulo n^2 (Jacobi symbol != 1)")
        w = Writer(_TK_MAGIC).u16(bits).bigint(n).u16(parties).u16(t).bigint(self.v)
        for y in self.verification_keys:
            w.bigint(y)
        object.__setattr__(self, "_encoded", w.getvalue())
        object.__setattr__(self, "digest", hashlib.sha256(_DOMAIN + self._encoded).digest())

    @property
    def parties(self) -> int:
        return len(self.verification_keys)

    @property
    def delta(self) -> int:
        return math.factorial(self.parties)

    @property
    def bits(self) -> int:
        return int(self.public_key.n).bit_length()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ThresholdKey) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def to_bytes(self) -> bytes:
        """Serialise (magic ``SGTK``, version 1)."""
        return self._encoded

    @classmethod
    def from_bytes(
        cls, data: bytes, *, insecure_allow_small_key_for_tests: bool = False
    ) -> ThresholdKey:
        """Parse and validate; malformed or inconsistent bytes are a ProtocolError,
        a key below the size policy a ParameterError."""
        r = Reader(data, _TK_MAGIC)
        bits = r.u16()
        n = _read_bigint(r, MAX_KEY_BITS // 8, "threshold key modulus n")
        if n.bit_length() != bits:
            raise ProtocolError(f"threshold key declares {bits} bits but n has {n.bit_length()}")
        _check_bits(bits, insecure_allow_small_key_for_tests, "the threshold key")
        if n % 2 == 0 or gmpy2.is_square(n) or gmpy2.is_prime(n):
            raise ProtocolError("threshold key modulus is not a product of two distinct primes")
        parties = r.u16()
        t = r.u16()
        if not 1 <= parties <= MAX_PARTIES or not 1 <= t <= parties:
            raise ProtocolError(
                f"threshold key declares t={t} of {parties} parties; "
                f"need 1 <= t <= parties <= {MAX_PARTIES}"
            )
        width = 2 * (MAX_KEY_BITS // 8)
        v = _read_bigint(r, width, "threshold key base v")
        vks = tuple(_read_bigint(r, width, f"verification key v_{i + 1}")
                    for i in range(parties))
        r.done()
        try:
            key = cls(
                phe.PaillierPublicKey(n),
                t,
                v,
                vks,
                insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests,
            )
        except ParameterError as exc:
            raise ProtocolError(f"invalid threshold key: {exc}") from exc
        if key.to_bytes() != bytes(data):  # one encoding per key
            raise ProtocolError("the threshold key is not canonically encoded")
        return key


# ---------------------------------------------------------------------- KeyShare


@dataclass(frozen=True, eq=False)
class KeyShare:
    """Decryptor ``index``'s share ``s_i`` of the secret exponent (SECRET).

    Attributes:
        key: the :class:`ThresholdKey` it belongs to.
        index: i in [1, key.parties].
        share: ``s_i = f(i) mod nm``; refused past the public bound
            ``n (n - 2 isqrt(n)) / 4 >= nm`` (an exact range check needs the
            secret m, so a few ``s_i + nm`` below the bound still pass).

    Construction checks ``v^(Delta s_i) = v_i``. A share never leaves its
    owner except sealed to it (:func:`seal_share`); ``repr`` hides it and it
    refuses to be pickled.
    """

    key: ThresholdKey
    index: int
    share: int = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key, ThresholdKey):
            raise ParameterError(f"expected a ThresholdKey, got {type(self.key).__name__}")
        i = self.index
        if isinstance(i, bool) or not isinstance(i, int) or not 1 <= i <= self.key.parties:
            raise ParameterError(f"index={i!r} is outside [1, parties={self.key.parties}]")
        s = self.share
        n = int(self.key.public_key.n)
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= 4 * s < _share_bound(n):
            raise ParameterError("share must be an int in the range [0, n (n - 2 isqrt(n)) / 4) "
                                 "(a share is reduced mod n m, and n m is below that bound)")
        n2 = gmpy2.mpz(n) ** 2
        expect = self.key.verification_keys[i - 1]
        if gmpy2.powmod(gmpy2.mpz(self.key.v), self.key.delta * s, n2) != expect:
            raise IntegrityError(f"key share {i} does not match its verification key v_{i}")

    def to_bytes(self) -> bytes:
        """Serialise (magic ``SGTS``, version 1). SECRET: seal before sending."""
        return (
            Writer(_KS_MAGIC)
            .blob(self.key.to_bytes())
            .u16(self.index)
            .bigint(self.share)
            .getvalue()
        )

    @classmethod
    def from_bytes(
        cls, data: bytes, *, insecure_allow_small_key_for_tests: bool = False
    ) -> KeyShare:
        """Parse and validate (including ``v^(Delta s_i) = v_i``)."""
        r = Reader(data, _KS_MAGIC)
        key = ThresholdKey.from_bytes(
            r.blob(max_len=(MAX_PARTIES + 2) * (2 * MAX_KEY_BITS // 8 + 4) + 16),
            insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests,
        )
        index = r.u16()
        share = _read_bigint(r, 2 * MAX_KEY_BITS // 8, f"key share {index}")
        r.done()
        try:
            return cls(key, index, share)
        except ParameterError as exc:
            raise ProtocolError(f"invalid key share: {exc}") from exc

    def __repr__(self) -> str:
        return f"KeyShare(index={self.index}, key={self.key.digest[:6].hex()}, share=<secret>)"

    def __reduce_ex__(self, protocol: object) -> Any:
        raise TypeError("KeyShare cannot be pickled; serialise it and seal it to its owner")


def _seal_ad(key_digest: bytes, index: int, context: bytes) -> bytes:
    return _SEAL_DOMAIN + key_digest + index.to_bytes(2, "big") + context


def seal_share(share: KeyShare, seal_key: bytes, context: bytes = b"") -> bytes:
    """AES-256-GCM-seal a share to its owner under a 32-byte ``seal_key``
    (for example an X25519 + HKDF key from :mod:`secagg.kex` agreed with the
    owner). The key digest, the index and ``context`` (say, a session id)
    are bound as associated data."""
    if not isinstance(share, KeyShare):
        raise ParameterError(f"expected a KeyShare, got {type(share).__name__}")
    context = check_bytes("context", context)
    return aead.seal(seal_key, share.to_bytes(), _seal_ad(share.key.digest, share.index, context))


def open_share(
    sealed: bytes,
    seal_key: bytes,
    key: ThresholdKey,
    index: int,
    context: bytes = b"",
    *,
    insecure_allow_small_key_for_tests: bool = False,
) -> KeyShare:
    """Open what :func:`seal_share` sealed for share ``index`` of ``key``;
    any other key, index, context or tampering is an IntegrityError."""
    if not isinstance(key, ThresholdKey):
        raise ParameterError(f"expected a ThresholdKey, got {type(key).__name__}")
    if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= key.parties:
        raise ParameterError(f"index={index!r} is outside [1, parties={key.parties}]")
    context = check_bytes("context", context)
    data = aead.open(seal_key, sealed, _seal_ad(key.digest, index, context))
    share = KeyShare.from_bytes(
        data, insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests
    )
    if share.key != key or share.index != index:  # pragma: no cover - bound by the AD
        raise IntegrityError("sealed share is for another key or index")
    return share


# ----------------------------------------------------------------------- dealing


class Dealt(NamedTuple):
    """What :func:`deal` returns: give ``public_key`` to encrypting clients,
    ``key`` (public material) to whoever combines, and ``shares[i - 1]``,
    sealed, to decryptor i only."""

    public_key: Any
    key: ThresholdKey
    shares: list[KeyShare]


def _safe_factors(private_key: Any) -> tuple[int, int]:
    p, q = int(private_key.p), int(private_key.q)
    if p == q:
        raise ParameterError("the key's factors are equal")
    for name, f in (("p", p), ("q", q)):
        if not is_safe_prime(f):
            raise ParameterError(
                f"the key's factor {name} is not a safe prime; threshold keys need "
                "safe primes (use paillier.threshold.generate_keypair, not phe's keys)"
            )
    return p, q


@timed(CRYPTO)
def deal(
    key: int | tuple[Any, Any],
    parties: int,
    threshold: int,
    *,
    insecure_allow_small_key_for_tests: bool = False,
) -> Dealt:
    """Trusted-dealer generation of a ``threshold``-of-``parties`` key.

    ``key`` is a key size in bits (a fresh safe-prime key pair is generated
    and then dropped) or an existing safe-prime ``(public, private)`` pair
    from :func:`generate_keypair` (the caller then still holds the private
    key and must destroy it). The dealer sees everything: trust it to run
    honestly and to forget p, q and d (Python cannot wipe them from memory;
    run it in a process that exits afterwards). 2048 bits minimum unless the
    test-only flag is passed; 1 <= threshold <= parties <= MAX_PARTIES.
    """
    if (
        isinstance(parties, bool)
        or not isinstance(parties, int)
        or not (1 <= parties <= MAX_PARTIES)
    ):
        raise ParameterError(f"parties={parties!r} is outside [1, {MAX_PARTIES}]")
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int)
        or not (1 <= threshold <= parties)
    ):
        raise ParameterError(f"threshold={threshold!r} is outside [1, parties={parties}]")
    if isinstance(key, tuple):
        if len(key) != 2:
            raise ParameterError("key must be a bit size or a (public, private) key pair")
        pk, sk = key
        check_private_key(sk, insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests)
        if fingerprint(pk) != fingerprint(sk.public_key):
            raise ParameterError("the private key does not belong to the public key")
        p, q = _safe_factors(sk)
    elif isinstance(key, int) and not isinstance(key, bool):
        pk, sk = generate_keypair(
            key, insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests
        )
        p, q = int(sk.p), int(sk.q)
    else:
        raise ParameterError(f"key must be a bit size or a key pair, got {type(key).__name__}")
    n = p * q
    m = ((p - 1) // 2) * ((q - 1) // 2)
    coeffs = [secrets.randbelow(n * m) for _ in range(threshold - 1)]
    n2 = gmpy2.mpz(n) ** 2
    while True:
        v = int(gmpy2.powmod(random_unit(gmpy2.mpz(n)), 2, n2))
        if _generates_squares(p, q, v):
            break
    return _assemble(p, q, parties, threshold, coeffs, v, insecure_allow_small_key_for_tests)


def _generates_squares(p: int, q: int, v: int) -> bool:
    """True if the square v has order n p' q' (generates the squares mod n^2)."""
    n = p * q
    n2 = gmpy2.mpz(n) ** 2
    pp, qq = (p - 1) // 2, (q - 1) // 2
    order = n * pp * qq
    return all(gmpy2.powmod(v, order // f, n2) != 1 for f in (p, q, pp, qq))


def _assemble(
    p: int,
    q: int,
    parties: int,
    threshold: int,
    coeffs: Sequence[int],
    v: int,
    insecure: bool,
) -> Dealt:
    """Shares ``f(1..parties)`` of ``d`` (``f(0) = d``, higher coefficients
    ``coeffs``) over ``Z_{nm}`` and the verification keys for base ``v``."""
    n = p * q
    n2 = gmpy2.mpz(n) ** 2
    m = ((p - 1) // 2) * ((q - 1) // 2)
    nm = n * m
    d = m * pow(m, -1, n) % nm  # d = 0 mod m, d = 1 mod n
    poly = [d, *coeffs]
    shares = []
    for i in range(1, parties + 1):
        acc = 0
        for a in reversed(poly):
            acc = (acc * i + a) % nm
        shares.append(acc)
    delta = math.factorial(parties)
    vks = tuple(
        int(x) for x in gmpy2.powmod_exp_list(gmpy2.mpz(v), [delta * s for s in shares], n2)
    )
    tk = ThresholdKey(
        phe.PaillierPublicKey(n),
        threshold,
        int(v),
        vks,
        insecure_allow_small_key_for_tests=insecure,
    )
    return Dealt(tk.public_key, tk, [KeyShare(tk, i + 1, s) for i, s in enumerate(shares)])


# ----------------------------------------------------------- partial decryption


@dataclass(frozen=True)
class PartialDecryption:
    """Decryptor ``index``'s answer for one :class:`EncryptedVector`.

    Attributes:
        key_digest: the :class:`ThresholdKey` it answers under.
        vector_digest: SHA-256 of the vector's encoding and the context.
        index: the key share's index.
        values: ``c_j^(2 Delta s_i) mod n^2``, one per ciphertext.
        challenge, response: the batched Chaum-Pedersen proof.
    """

    key_digest: bytes
    vector_digest: bytes
    index: int
    values: tuple[int, ...] = field(repr=False)
    challenge: bytes = field(repr=False)
    response: int = field(repr=False)

    def to_bytes(self) -> bytes:
        """Serialise (magic ``SGTP``, version 1), values at fixed width."""
        if not self.values:
            raise ProtocolError("a partial decryption holds at least one value")
        width = (max(int(x).bit_length() for x in self.values) + 7) // 8
        width = max(width, 1)
        return (
            Writer(_PD_MAGIC)
            .raw(self.key_digest)
            .raw(self.vector_digest)
            .u16(self.index)
            .u32(len(self.values))
            .u16(width)
            .raw(b"".join(_int_bytes(x, width) for x in self.values))
            .raw(self.challenge)
            .bigint(self.response)
            .getvalue()
        )

    @classmethod
    def from_bytes(cls, data: bytes, key: ThresholdKey) -> PartialDecryption:
        """Parse under ``key``: the digest, the index and every value (a unit
        mod n^2) are checked; the proof is checked by :func:`verify_partial`."""
        if not isinstance(key, ThresholdKey):
            raise ParameterError(f"expected a ThresholdKey, got {type(key).__name__}")
        r = Reader(data, _PD_MAGIC)
        kd = r.raw(32)
        vd = r.raw(32)
        index = r.u16()
        count = r.u32()
        width = r.u16()
        n = int(key.public_key.n)
        n2 = n * n
        full = (n2.bit_length() + 7) // 8
        if kd != key.digest:
            raise ProtocolError("partial decryption is for another threshold key")
        if not 1 <= index <= key.parties:
            raise ProtocolError(f"index={index} is outside [1, parties={key.parties}]")
        if count < 1 or not 1 <= width <= full:
            raise ProtocolError(f"partial decryption declares {count} values of {width} bytes")
        if count * width > r.remaining():
            raise ProtocolError(f"partial decryption declares {count} values; the input is short")
        body = r.raw(count * width)
        challenge = r.raw(CHALLENGE_BITS // 8)
        response = r.bigint(max_bytes=_response_bytes(key))
        r.done()
        values = tuple(
            int.from_bytes(body[j * width : (j + 1) * width], "big") for j in range(count)
        )
        for j, x in enumerate(values):
            _check_group_element(n, n2, x, f"partial value {j} of share {index}")
        return cls(kd, vd, index, values, challenge, response)


def _response_bytes(key: ThresholdKey) -> int:
    """Largest honest response: nonce bits + 1, in bytes."""
    return (_nonce_bits(key) + 1 + 7) // 8


def _nonce_bits(key: ThresholdKey) -> int:
    n = int(key.public_key.n)
    secret_bits = (key.delta * n * n).bit_length()  # Delta * s_i < Delta * n^2
    return secret_bits + CHALLENGE_BITS + _HIDING_BITS


def _vector_digest(key: ThresholdKey, vector: EncryptedVector, context: bytes) -> bytes:
    h = hashlib.sha256(_DOMAIN + b"vector\x00")
    h.update(key.digest)
    h.update(len(context).to_bytes(4, "big") + context)
    h.update(vector.to_bytes())
    return h.digest()


def _batch_exponents(
    key: ThresholdKey, vector_digest: bytes, index: int, values: Sequence[Mpz], width: int
) -> tuple[bytes, bytes]:
    """(seed, 16-byte exponents rho_j) from a hash of everything committed so far."""
    h = hashlib.sha256(_DOMAIN + b"rho\x00")
    h.update(key.digest + vector_digest + index.to_bytes(2, "big"))
    h.update(b"".join(_int_bytes(x, width) for x in values))
    seed = h.digest()
    rho = hashlib.shake_256(_DOMAIN + b"rho-stream\x00" + seed).digest(
        len(values) * (CHALLENGE_BITS // 8)
    )
    return seed, rho


def _multiexp(bases: Sequence[Mpz], exps: bytes, mod: Mpz) -> Mpz:
    """``prod bases[j]^e_j mod mod`` for 128-bit e_j given as 16 big-endian bytes
    each; bucket method with 8-bit windows (about len + 512 products per byte)."""
    nb = CHALLENGE_BITS // 8
    acc = gmpy2.mpz(1)
    count = len(bases)
    for byte in range(nb):
        if byte:
            for _ in range(8):
                acc = acc * acc % mod
        buckets: list[Mpz | None] = [None] * 256
        for j in range(count):
            digit = exps[j * nb + byte]
            if digit:
                cur = buckets[digit]
                buckets[digit] = bases[j] if cur is None else cur * bases[j] % mod
        running = gmpy2.mpz(1)
        total = gmpy2.mpz(1)
        started = False
        for digit in range(255, 0, -1):
            b = buckets[digit]
            if b is not None:
                running = b if not started else running * b % mod
                started = True
            if started:
                total = total * running % mod
        acc = acc * total % mod
    return acc


def _batched_bases(
    key: ThresholdKey, n2: Mpz, cts: Sequence[Mpz], values: Sequence[Mpz], rho: bytes
) -> tuple[Mpz, Mpz]:
    """(C^4, D^2) with C = prod c_j^rho_j and D = prod c_{ij}^rho_j."""
    c = _multiexp(cts, rho, n2)
    d = _multiexp(values, rho, n2)
    return gmpy2.powmod(c, 4, n2), d * d % n2


def _challenge(key: ThresholdKey, seed: bytes, index: int, width: int, *elements: Mpz) -> bytes:
    h = hashlib.sha256(_DOMAIN + b"challenge\x00")
    h.update(key.digest + seed + index.to_bytes(2, "big"))
    for x in elements:
        h.update(_int_bytes(x, width))
    return h.digest()[: CHALLENGE_BITS // 8]


def _partial_task(n2: int, exponent: int, cts: Sequence[int]) -> list[Mpz]:
    """Process-pool entry point: ``c^exponent mod n^2`` for a chunk."""
    return list(gmpy2.powmod_base_list([gmpy2.mpz(c) for c in cts], exponent, n2))


def _check_vector_for(key: ThresholdKey, vector: EncryptedVector) -> None:
    if not isinstance(vector, EncryptedVector):
        raise ParameterError(f"expected an EncryptedVector, got {type(vector).__name__}")
    if vector.key_fingerprint != fingerprint(key.public_key):
        raise ParameterError("the vector was encrypted under another key")


@timed(CRYPTO)
def partial_decrypt(
    share: KeyShare,
    vector: EncryptedVector,
    *,
    context: bytes = b"",
    workers: int | None = None,
) -> PartialDecryption:
    """Decryptor ``share.index``'s partial decryption of ``vector``, with a
    proof of correct exponentiation bound to the key, the vector and
    ``context`` (for example a session id and round).

    Cost: one exponentiation mod n^2 with a ``2 bits(n) + log2(parties!)``-bit
    exponent per ciphertext, plus two batched 128-bit multi-exponentiations
    and two full exponentiations for the proof. ``workers`` > 1 spreads the
    per-ciphertext work over processes (the share travels to local workers
    over a pipe).
    """
    if not isinstance(share, KeyShare):
        raise ParameterError(f"expected a KeyShare, got {type(share).__name__}")
    key = share.key
    _check_vector_for(key, vector)
    context = check_bytes("context", context)
    n = gmpy2.mpz(int(key.public_key.n))
    n2 = n * n
    width = (int(n2).bit_length() + 7) // 8
    x = key.delta * share.share  # the discrete log being proven
    cts = vector._ciphertexts
    if check_workers(workers) > 1:
        values = run_chunked(_partial_task, (int(n2), 2 * x), [int(c) for c in cts], workers)
    else:
        values = list(gmpy2.powmod_base_list(list(cts), 2 * x, n2))
    vdig = _vector_digest(key, vector, context)
    seed, rho = _batch_exponents(key, vdig, share.index, values, width)
    c4, d2 = _batched_bases(key, n2, cts, values, rho)
    r = gmpy2.mpz(secrets.randbits(_nonce_bits(key)))
    v = gmpy2.mpz(key.v)
    a = gmpy2.powmod(c4, r, n2)
    b = gmpy2.powmod(v, r, n2)
    e = _challenge(key, seed, share.index, width, c4, d2, a, b)
    z = int(r + int.from_bytes(e, "big") * x)
    return PartialDecryption(key.digest, vdig, share.index, tuple(int(y) for y in values), e, z)


def _verify_one(
    key: ThresholdKey,
    vector: EncryptedVector,
    partial: PartialDecryption,
    vdig: bytes,
) -> str:
    """'' if ``partial`` is valid for ``vector``, else why not."""
    if not isinstance(partial, PartialDecryption):
        raise ParameterError(f"expected a PartialDecryption, got {type(partial).__name__}")
    if partial.key_digest != key.digest:
        return "it answers under another threshold key"
    if partial.vector_digest != vdig:
        return "it answers another vector or context"
    if not 1 <= partial.index <= key.parties:
        return f"index {partial.index} is outside [1, {key.parties}]"
    if len(partial.values) != len(vector._ciphertexts):
        return f"it has {len(partial.values)} values for {len(vector._ciphertexts)} ciphertexts"
    n = int(key.public_key.n)
    n2i = n * n
    for x in partial.values:
        if isinstance(x, bool) or not isinstance(x, int):
            return "a value is not an int"
        if not 0 < x < n2i or math.gcd(x, n) != 1:
            return "a value is not a unit modulo n^2"
    if not isinstance(partial.challenge, bytes) or len(partial.challenge) != CHALLENGE_BITS // 8:
        return "malformed challenge"
    z = partial.response
    z_limit = 1 << (8 * _response_bytes(key))
    if isinstance(z, bool) or not isinstance(z, int) or not 0 <= z < z_limit:
        return "response out of range"
    n2 = gmpy2.mpz(n2i)
    width = (n2i.bit_length() + 7) // 8
    values = [gmpy2.mpz(x) for x in partial.values]
    seed, rho = _batch_exponents(key, vdig, partial.index, values, width)
    c4, d2 = _batched_bases(key, n2, vector._ciphertexts, values, rho)
    e = int.from_bytes(partial.challenge, "big")
    vi = gmpy2.mpz(key.verification_keys[partial.index - 1])
    v = gmpy2.mpz(key.v)
    zz = gmpy2.mpz(z)
    a = gmpy2.powmod(c4, zz, n2) * gmpy2.invert(gmpy2.powmod(d2, e, n2), n2) % n2
    b = gmpy2.powmod(v, zz, n2) * gmpy2.invert(gmpy2.powmod(vi, e, n2), n2) % n2
    if _challenge(key, seed, partial.index, width, c4, d2, a, b) != partial.challenge:
        return "the proof of correct exponentiation does not verify"
    return ""


@timed(CRYPTO)
def verify_partial(
    key: ThresholdKey,
    vector: EncryptedVector,
    partial: PartialDecryption,
    *,
    context: bytes = b"",
) -> None:
    """Raise :class:`PartialDecryptionError` naming the share unless
    ``partial`` is a proven-correct partial decryption of ``vector``."""
    if not isinstance(key, ThresholdKey):
        raise ParameterError(f"expected a ThresholdKey, got {type(key).__name__}")
    _check_vector_for(key, vector)
    vdig = _vector_digest(key, vector, check_bytes("context", context))
    why = _verify_one(key, vector, partial, vdig)
    if why:
        raise PartialDecryptionError([partial.index], why)


@timed(CRYPTO)
def combine_integers(
    key: ThresholdKey,
    vector: EncryptedVector,
    partials: Iterable[PartialDecryption],
    *,
    context: bytes = b"",
    verify: bool = True,
) -> npt.NDArray[np.int64]:
    """Exact integer sums (int64), as :func:`secagg.paillier.decrypt_integers`.

    Needs partials from at least ``key.threshold`` distinct shares; with fewer
    raises :class:`AbortError` and outputs nothing. With ``verify`` (the
    default) every partial's proof is checked first and any failure raises
    :class:`PartialDecryptionError` naming every faulty share. To drop faulty
    shares and go on, check each partial with :func:`verify_partial` as it
    arrives and combine the good ones with ``verify=False`` (a combination
    that is not ``1 + kn`` mod n^2 is still refused). The ``key.threshold``
    lowest indices are combined; their Lagrange coefficients are computed
    once per set and reused for every ciphertext.
    """
    if not isinstance(key, ThresholdKey):
        raise ParameterError(f"expected a ThresholdKey, got {type(key).__name__}")
    _check_vector_for(key, vector)
    context = check_bytes("context", context)
    given = list(partials)
    for p in given:
        if not isinstance(p, PartialDecryption):
            raise ParameterError(f"expected PartialDecryption, got {type(p).__name__}")
    indices = [p.index for p in given]
    dup = sorted({i for i in indices if indices.count(i) > 1})
    if dup:
        raise ParameterError(f"more than one partial decryption from share(s) {dup}")
    t = key.threshold
    if len(given) < t:
        raise AbortError(
            f"{len(given)} partial decryption(s) given; the threshold is {t}: nothing decrypted"
        )
    if verify:
        vdig = _vector_digest(key, vector, context)
        faulty = {p.index: why for p in given if (why := _verify_one(key, vector, p, vdig))}
        if faulty:
            detail = "; ".join(f"share {i}: {why}" for i, why in sorted(faulty.items()))
            raise PartialDecryptionError(list(faulty), detail)
    chosen = sorted(given, key=lambda p: p.index)[:t]
    for p in chosen:
        if len(p.values) != len(vector._ciphertexts):
            raise ParameterError(
                f"share {p.index} has {len(p.values)} values for "
                f"{len(vector._ciphertexts)} ciphertexts"
            )
    lam = lagrange_coefficients(tuple(p.index for p in chosen), key.parties)
    n = gmpy2.mpz(int(key.public_key.n))
    n2 = n * n
    count = len(vector._ciphertexts)
    num: list[Mpz] = [gmpy2.mpz(1)] * count
    den: list[Mpz] = [gmpy2.mpz(1)] * count
    for p, coef in zip(chosen, lam, strict=True):
        if coef == 0:  # pragma: no cover - Lagrange coefficients at 0 are non-zero
            continue
        powers = gmpy2.powmod_base_list([gmpy2.mpz(x) for x in p.values], 2 * abs(coef), n2)
        target = num if coef > 0 else den
        for j in range(count):
            target[j] = target[j] * powers[j] % n2
    inv = gmpy2.invert(4 * gmpy2.mpz(key.delta) ** 2 % n, n)
    plaintexts: list[int] = []
    for j in range(count):
        u = num[j] * gmpy2.invert(den[j], n2) % n2 if den[j] != 1 else num[j]
        if u % n != 1:
            raise IntegrityError(
                f"combined partial decryptions of ciphertext {j} are not of the form "
                "1 + kn: a partial decryption is wrong"
            )
        plaintexts.append(int((u - 1) // n * inv % n))
    layout = vector.layout
    return layout.decode(layout.unpack(plaintexts), vector.summands)


def combine(
    key: ThresholdKey,
    vector: EncryptedVector,
    partials: Iterable[PartialDecryption],
    *,
    context: bytes = b"",
    verify: bool = True,
    dtype: type[np.floating[Any]] | np.dtype[Any] = np.float64,
) -> npt.NDArray[np.floating[Any]]:
    """Combine and decode to floats, exactly as :func:`secagg.paillier.decrypt`."""
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ParameterError(f"dtype must be float32 or float64, got {dt}")
    ints = combine_integers(key, vector, partials, context=context, verify=verify)
    return (ints.astype(np.float64) / vector.layout.scale).astype(dt)
