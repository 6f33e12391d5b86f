"""Shamir secret sharing of 32-byte secrets over the prime field GF(p),
``p = 2^256 + 297`` (the smallest prime above 2^256, so every 32-byte
secret is a field element and no secret is reduced).

``split(secret, n, t)`` gives shares with indices 1..n on a random
polynomial of degree t-1 whose constant term is the secret; any t shares
reconstruct it (:func:`combine`), and any t-1 are uniformly distributed
and independent of the secret (information-theoretic, no assumption).
Coefficients come from :mod:`secrets`.

Reconstruction of many secrets held by the same set of holders reuses one
set of Lagrange coefficients (:func:`combine_many`, and a cache keyed by the
index set). Shares are not authenticated: a holder that lies about its share
changes the result undetectably; protocols seal shares with AEAD and sign
what must be signed.
"""

from __future__ import annotations

import math
import secrets as _secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import gmpy2

from ._util import check_bytes, check_int
from .errors import AbortError, EncodingError, ParameterError, ProtocolError
from .profiling import CRYPTO, timed

__all__ = [
    "MAX_SHARES",
    "PRIME",
    "SECRET_BYTES",
    "SHARE_BYTES",
    "Share",
    "combine",
    "combine_many",
    "lagrange_coefficients",
    "split",
    "split_many",
]

PRIME = 2**256 + 297
SECRET_BYTES = 32
_VALUE_BYTES = 33
_VERSION = 1
#: Largest number of holders (share indices are u16 on the wire).
MAX_SHARES = 65535
_STRUCT = struct.Struct(">BHH")
#: Encoded size of one share: version, threshold, index, value.
SHARE_BYTES = _STRUCT.size + _VALUE_BYTES
_P = gmpy2.mpz(PRIME)


@dataclass(frozen=True)
class Share:
    """One holder's share: its ``index`` (1..65535), the ``threshold`` t and
    the field element ``value`` (0 <= value < PRIME)."""

    index: int
    threshold: int
    value: int

    def __post_init__(self) -> None:
        check_int("share index", self.index, 1, MAX_SHARES)
        check_int("share threshold", self.threshold, 1, MAX_SHARES)
        if not 0 <= self.value < PRIME:
            raise ParameterError("share value is outside the field [0, PRIME)")

    def to_bytes(self) -> bytes:
        """``version (u8) | threshold (u16) | index (u16) | value (33 bytes, big-endian)``."""
        return _STRUCT.pack(_VERSION, self.threshold, self.index) + int(self.value).to_bytes(
            _VALUE_BYTES, "big"
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Share:
        """Strict decoding; raises :class:`ProtocolError` on any malformed input."""
        if not isinstance(data, (bytes, bytearray)) or len(data) != SHARE_BYTES:
            got = len(data) if isinstance(data, (bytes, bytearray)) else type(data).__name__
            raise ProtocolError(f"a share is {SHARE_BYTES} bytes, got {got}")
        version, threshold, index = _STRUCT.unpack_from(data)
        if version != _VERSION:
            raise ProtocolError(f"unsupported share version {version}, expected {_VERSION}")
        value = int.from_bytes(data[_STRUCT.size :], "big")
        if index == 0 or threshold == 0 or value >= PRIME:
            raise ProtocolError(
                f"share out of range: index={index}, threshold={threshold}, value >= p: "
                f"{value >= PRIME}"
            )
        return cls(index, threshold, value)

    def __repr__(self) -> str:  # never print the value
        return f"Share(index={self.index}, threshold={self.threshold})"


def _check_nt(n: int, t: int) -> None:
    check_int("n", n, 1, MAX_SHARES)
    check_int("t", t, 1, MAX_SHARES)
    if t > n:
        raise ParameterError(f"threshold t={t} exceeds the number of shares n={n}")


@timed(CRYPTO)
def split_many(secrets: Sequence[bytes], n: int, t: int) -> list[list[Share]]:
    """Share each 32-byte secret among n holders with threshold t.

    Returns one list of n shares per secret (share ``i`` has index ``i+1``).
    Cost: n*(t-1) field multiplications per secret (Horner's rule).
    """
    _check_nt(n, t)
    out: list[list[Share]] = []
    for k, secret in enumerate(secrets):
        s = check_bytes(f"secret[{k}]", secret, SECRET_BYTES)
        coeffs = [gmpy2.mpz(_secrets.randbelow(PRIME)) for _ in range(t - 1)]
        coeffs.reverse()  # highest degree first for Horner
        c0 = gmpy2.mpz(int.from_bytes(s, "big"))
        shares = []
        for x in range(1, n + 1):
            acc = gmpy2.mpz(0)
            for c in coeffs:
                acc = (acc + c) * x % _P
            shares.append(Share(x, t, int((acc + c0) % _P)))
        out.append(shares)
    return out


def split(secret: bytes, n: int, t: int) -> list[Share]:
    """Share one 32-byte ``secret`` among ``n`` holders; any ``t`` reconstruct it."""
    return split_many([secret], n, t)[0]


@lru_cache(maxsize=128)
def _lagrange_cached(indices: tuple[int, ...]) -> tuple[int, ...]:
    xs = indices
    num_all = math.prod(xs)
    dens = []
    for i, xi in enumerate(xs):
        d = math.prod(xj - xi for j, xj in enumerate(xs) if j != i)
        dens.append(gmpy2.mpz(d * xi) % _P)  # lambda_i = num_all / (x_i * prod(x_j - x_i))
    # Montgomery batch inversion: one modular inverse for all denominators.
    prefix = [gmpy2.mpz(1)]
    for d in dens:
        prefix.append(prefix[-1] * d % _P)
    inv = gmpy2.invert(prefix[-1], _P)
    invs = [gmpy2.mpz(0)] * len(dens)
    for i in range(len(dens) - 1, -1, -1):
        invs[i] = inv * prefix[i] % _P
        inv = inv * dens[i] % _P
    n_all = gmpy2.mpz(num_all) % _P
    return tuple(int(n_all * v % _P) for v in invs)


def lagrange_coefficients(indices: Sequence[int]) -> tuple[int, ...]:
    """Lagrange coefficients at x = 0 for distinct share ``indices`` (cached)."""
    idx = tuple(check_int("share index", i, 1, MAX_SHARES) for i in indices)
    if len(set(idx)) != len(idx):
        raise ParameterError(f"duplicate share indices in {sorted(idx)}")
    return _lagrange_cached(idx)


def _select(shares: Sequence[Share]) -> list[Share]:
    if not shares:
        raise AbortError("no shares to combine")
    for s in shares:
        if not isinstance(s, Share):
            raise ParameterError(f"combine() takes Share objects, got {type(s).__name__}")
    t = shares[0].threshold
    mixed = {s.threshold for s in shares}
    if len(mixed) > 1:
        raise ParameterError(f"shares carry mixed thresholds {sorted(mixed)}")
    idx = [s.index for s in shares]
    if len(set(idx)) != len(idx):
        dup = sorted({i for i in idx if idx.count(i) > 1})
        raise ParameterError(f"duplicate share indices {dup}")
    if len(shares) < t:
        raise AbortError(f"{len(shares)} shares cannot reconstruct a secret of threshold {t}")
    return sorted(shares, key=lambda s: s.index)[:t]


def _to_secret(v: int) -> bytes:
    if v >= 1 << (8 * SECRET_BYTES):
        raise EncodingError("shares are inconsistent: the reconstructed value is not a secret")
    return int(v).to_bytes(SECRET_BYTES, "big")


@timed(CRYPTO)
def combine(shares: Sequence[Share]) -> bytes:
    """Reconstruct the 32-byte secret from at least ``t`` shares.

    Uses the ``t`` shares of lowest index. Raises :class:`ParameterError` for
    duplicate indices or mixed thresholds, :class:`AbortError` for fewer than
    ``t`` shares, :class:`EncodingError` if the shares do not come from one
    32-byte secret.
    """
    chosen = _select(shares)
    lam = lagrange_coefficients([s.index for s in chosen])
    acc = gmpy2.mpz(0)
    for c, s in zip(lam, chosen, strict=True):
        acc += c * s.value
    return _to_secret(int(acc % _P))


@timed(CRYPTO)
def combine_many(share_sets: Sequence[Sequence[Share]]) -> list[bytes]:
    """Reconstruct several secrets; sets held by the same holders share one
    set of Lagrange coefficients (computed once, then cached)."""
    out = []
    for shares in share_sets:
        chosen = _select(shares)
        lam = _lagrange_cached(tuple(s.index for s in chosen))
        acc = gmpy2.mpz(0)
        for c, s in zip(lam, chosen, strict=True):
            acc += c * s.value
        out.append(_to_secret(int(acc % _P)))
    return out
