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
index set).

Integrity, exactly: shares carry no authentication. :func:`combine` checks
every share it is given: with more than t shares, all of them must lie on
one polynomial of degree < t, else :class:`IntegrityError`. So if at least t
of the given shares are genuine, the result is the true secret or an error,
whatever the others are. With exactly t shares nothing can be checked (any t
points with distinct indices lie on some polynomial of degree < t): shares of
different secrets, or one forged share, give a wrong 32-byte result, except
in the rare case (probability about 2^-248 for a random value) that it lands
in [2^256, p), which raises :class:`EncodingError`. Protocols seal shares
with AEAD, sign what must be signed, and pass extra shares to
:func:`combine` where they want the check.
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
from .errors import AbortError, EncodingError, IntegrityError, ParameterError, ProtocolError
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
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise ParameterError(f"share value must be an int, got {type(self.value).__name__}")
        if not 0 <= self.value < PRIME:
            raise ParameterError(
                f"share value is outside the field [0, PRIME = 2^256 + 297): "
                f"{'negative' if self.value < 0 else 'value - PRIME = ' + str(self.value - PRIME)}"
            )

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
    return _split_many(secrets, n, t, "secrets")


def _split_many(secrets: Sequence[bytes], n: int, t: int, name: str) -> list[list[Share]]:
    if isinstance(secrets, (bytes, bytearray, memoryview, str)):
        raise ParameterError(
            f"split_many() takes a sequence of {SECRET_BYTES}-byte secrets, got one "
            f"{type(secrets).__name__}; use split() for a single secret"
        )
    try:
        items = list(secrets)
    except TypeError:
        raise ParameterError(
            f"split_many() takes a sequence of secrets, got {type(secrets).__name__}"
        ) from None
    _check_nt(n, t)
    out: list[list[Share]] = []
    for k, secret in enumerate(items):
        s = check_bytes(name if name == "secret" else f"{name}[{k}]", secret, SECRET_BYTES)
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
    """Share one 32-byte ``secret`` among ``n`` holders (1..65535); any
    ``t`` (1..n) reconstruct it and any ``t - 1`` reveal nothing about it."""
    return _split_many([secret], n, t, "secret")[0]


def _denominators(xs: tuple[int, ...]) -> tuple[int, ...]:
    """``prod_{m != i} (x_i - x_m) mod p`` for each i (O(t^2))."""
    return tuple(int(math.prod(xi - xj for j, xj in enumerate(xs) if j != i) % PRIME)
                 for i, xi in enumerate(xs))


def _lagrange_at(xs: tuple[int, ...], x: int, dens: Sequence[int]) -> tuple[int, ...]:
    """Lagrange coefficients at ``x`` (not one of ``xs``) mod p:
    ``lambda_i(x) = prod_m (x - x_m) / ((x - x_i) * prod_{m != i} (x_i - x_m))``."""
    ds = [gmpy2.mpz((x - xi) * d) % _P for xi, d in zip(xs, dens, strict=True)]
    # Montgomery batch inversion: one modular inverse for all denominators.
    prefix = [gmpy2.mpz(1)]
    for d in ds:
        prefix.append(prefix[-1] * d % _P)
    inv = gmpy2.invert(prefix[-1], _P)
    invs = [gmpy2.mpz(0)] * len(ds)
    for i in range(len(ds) - 1, -1, -1):
        invs[i] = inv * prefix[i] % _P
        inv = inv * ds[i] % _P
    n_all = gmpy2.mpz(math.prod(x - xm for xm in xs)) % _P
    return tuple(int(n_all * v % _P) for v in invs)


@lru_cache(maxsize=128)
def _lagrange_cached(indices: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The coefficients at 0 of an index set, and its denominators (kept for
    checking extra shares at other points)."""
    dens = _denominators(indices)
    return _lagrange_at(indices, 0, dens), dens


def lagrange_coefficients(indices: Sequence[int]) -> tuple[int, ...]:
    """Lagrange coefficients at x = 0 for distinct share ``indices`` (cached)."""
    idx = tuple(check_int("share index", i, 1, MAX_SHARES) for i in indices)
    if len(set(idx)) != len(idx):
        raise ParameterError(f"duplicate share indices in {sorted(idx)}")
    return _lagrange_cached(idx)[0]


def _select(shares: Sequence[Share]) -> tuple[list[Share], list[Share]]:
    """Check a share set; return its t lowest-index shares and the rest."""
    if isinstance(shares, Share):
        raise ParameterError("combine() takes a sequence of Share objects, got one Share")
    try:
        shares = list(shares)
    except TypeError:
        raise ParameterError(
            f"combine() takes a sequence of Share objects, got {type(shares).__name__}"
        ) from None
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
    ordered = sorted(shares, key=lambda s: s.index)
    return ordered[:t], ordered[t:]


def _to_secret(v: int) -> bytes:
    if v >= 1 << (8 * SECRET_BYTES):
        raise EncodingError(
            "shares are inconsistent: the reconstructed value lies in [2^256, PRIME), "
            "so it is not a 32-byte secret"
        )
    return int(v).to_bytes(SECRET_BYTES, "big")


def _interpolate(coeffs: Sequence[int], chosen: Sequence[Share]) -> int:
    acc = gmpy2.mpz(0)
    for c, s in zip(coeffs, chosen, strict=True):
        acc += c * s.value
    return int(acc % _P)


class _Coefficients:
    """Lagrange coefficients at the extra shares' indices, kept for one call."""

    def __init__(self) -> None:
        self._at: dict[tuple[tuple[int, ...], int], tuple[int, ...]] = {}

    def at(self, xs: tuple[int, ...], x: int) -> tuple[int, ...]:
        coeffs = self._at.get((xs, x))
        if coeffs is None:
            coeffs = self._at[(xs, x)] = _lagrange_at(xs, x, _lagrange_cached(xs)[1])
        return coeffs


def _reconstruct(shares: Sequence[Share], memo: _Coefficients) -> bytes:
    """The secret of one checked share set."""
    chosen, extra = _select(shares)
    xs = tuple(s.index for s in chosen)
    value = _interpolate(_lagrange_cached(xs)[0], chosen)
    for e in extra:  # every further share must lie on the same polynomial
        if _interpolate(memo.at(xs, e.index), chosen) != e.value:
            raise IntegrityError(
                f"share {e.index} does not lie on the polynomial of shares {list(xs)}: "
                f"the {len(chosen) + len(extra)} shares do not come from one secret of "
                f"threshold {len(chosen)}"
            )
    return _to_secret(value)


@timed(CRYPTO)
def combine(shares: Sequence[Share]) -> bytes:
    """Reconstruct the 32-byte secret from at least ``t`` shares.

    Interpolates the ``t`` shares of lowest index, then checks that every
    further share lies on the same polynomial (``O(t)`` per extra share).

    Raises :class:`ParameterError` for duplicate indices (among all shares
    given) or mixed thresholds, :class:`AbortError` for fewer than ``t``
    shares, :class:`IntegrityError` if more than ``t`` shares were given and
    they do not all come from one polynomial of degree < t, and
    :class:`EncodingError` if the value is not a 32-byte secret. With exactly
    ``t`` shares inconsistency is undetectable (see the module docstring).
    """
    return _reconstruct(shares, _Coefficients())


@timed(CRYPTO)
def combine_many(share_sets: Sequence[Sequence[Share]]) -> list[bytes]:
    """Reconstruct several secrets, each as :func:`combine` does (same checks
    and errors); sets held by the same holders share one set of Lagrange
    coefficients (computed once, then cached)."""
    memo = _Coefficients()
    return [_reconstruct(shares, memo) for shares in share_sets]
