"""Exact discrete Gaussian and Skellam samplers on the AES-CTR keystream.

Integer noise for distributed differential privacy: each client adds a share
to its integer vector before the secure sum, so no floating-point release is
involved (Mironov 2012 showed how float samplers leak through the low bits of
the values they release).

Randomness comes only from :class:`DiscreteRandom`, the library's
AES-256-CTR generator (:func:`secagg.prg.expand`) keyed by
``os.urandom(32)``, with a fresh label for every call.

Algorithms:

* **Discrete Laplace** ``P(y) ∝ exp(-|y|/t)`` for an integer ``t >= 1``:
  ``X = floor(t * E)`` for an exponential ``E = -ln U`` has
  ``P(X = x) ∝ exp(-x/t)``; a random sign, rejecting "minus zero", gives the
  two-sided law.
* **Discrete Gaussian** ``N_Z(0, σ²)``, ``P(y) ∝ exp(-y²/(2σ²))``, ``σ²``
  rational: Canonne, Kamath & Steinke (NeurIPS 2020), Algorithm 3: propose
  ``y`` from the discrete Laplace with ``t = floor(σ) + 1`` and accept with
  probability ``exp(-(|y| - σ²/t)² / (2σ²))``.
* **Poisson** ``Pois(λ)``, ``λ`` rational: rejection from ``m + DLap(t)``
  with ``m = floor(λ)``, ``t = floor(sqrt(λ)) + 1``; accept ``k`` with
  probability ``p(k) exp(|k-m|/t) / B``. ``log p + |k-m|/t`` is concave on
  each side of ``m`` (the Poisson law is log-concave), so its maximum is at
  the integers next to where its increments change sign; ``B`` is that
  maximum, raised by a margin.
* **Skellam** ``Sk(μ) = Pois(μ/2) - Pois(μ/2)``: mean 0, variance ``μ``.

Where floats are used, and why the samples are still exact: every random
decision is a comparison of a uniform ``U`` in [0, 1) (known to 53 bits at
first, refined 64 bits at a time) with a threshold, either ``E = -ln U > g``
(probability ``exp(-g)``) or ``floor(t * E)``. The vectorised path evaluates
``ln``, ``g`` and the bound ``ln(1 + 1/u) <= 1/u`` on the width of ``E``'s
interval in float64 and takes a decision only when it holds with an
allowance of ``1e-12`` relative to the largest quantity involved (``E`` is
at most 36.8); numpy's float64 ``log`` is accurate to a few ulps (2e-16
each), so the allowance exceeds every float error here by more than 1000
times. Undecided comparisons (about one in 10^9) are settled
exactly: more random bits of the same ``U`` are drawn and the comparison is
redone in MPFR (gmpy2) arithmetic whose error bound is carried explicitly,
doubling the precision until it decides. A decision is therefore the one
exact arithmetic on an infinitely precise ``U`` would take, and the samples
follow the stated laws exactly (up to the AES-CTR keystream being
pseudorandom).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Final

import gmpy2
import numpy as np
import numpy.typing as npt

from secagg.errors import ParameterError

from .secure_noise import KeystreamSource

__all__ = [
    "DiscreteRandom",
    "discrete_gaussian",
    "discrete_gaussian_pmf",
    "discrete_laplace",
    "poisson",
    "skellam",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_LABEL: Final = b"secagg/dp/discrete/"
_INV_2_53: Final = 2.0**-53
#: relative margin a float decision must clear (float errors here are < 1e-15)
_REL: Final = 1e-12
#: largest variance accepted (keeps every intermediate far inside int64/float64)
MAX_VARIANCE: Final = 2.0**80
#: largest Poisson mean (samples stay below 2^53, exact in float64); Skellam: 2^51
MAX_POISSON_MEAN: Final = 2.0**50
#: consecutive empty rejection passes before giving up (each pass of 16 or
#: more proposals accepts a constant fraction)
_MAX_PASSES: Final = 10_000
#: proposals per vectorised pass: the pass's dozen float64/uint64 temporaries
#: (256 KiB each) then stay in a core's cache instead of streaming through
#: memory about 40 times (a 10^6 discrete Gaussian draw 1.45x, a Skellam one
#: 2.5x faster than one pass; ``benchmarks/distributed_dp.py``)
_CHUNK: int = 1 << 15


class DiscreteRandom(KeystreamSource):
    """A cryptographic source of 64-bit words for the discrete samplers (see
    :class:`~dp.secure_noise.KeystreamSource` for ``seed``)."""

    LABEL = _LABEL

    def words(self, n: int) -> npt.NDArray[np.uint64]:
        """``n`` uniform 64-bit words from a fresh keystream label."""
        return self._words(n)

    def word(self) -> int:
        """One uniform 64-bit word as a Python int (the exact fallback path)."""
        return int(self.words(1)[0])


# ----------------------------------------------------------- exact fallback


# A decision on U = (prefix + V) / 2^k, V uniform in [0, 1), refined lazily.
# g_fn(precision) returns (g, err) with |g - true g| <= err in MPFR.
GFn = Callable[[int], "tuple[gmpy2.mpfr, gmpy2.mpfr]"]


def _e_interval(prefix: int, k: int, prec: int) -> tuple[gmpy2.mpfr, gmpy2.mpfr]:
    """Bounds on E = -ln U for U in [prefix / 2^k, (prefix + 1) / 2^k)."""
    with gmpy2.context(precision=prec, round=gmpy2.RoundUp):
        lo = -gmpy2.log(gmpy2.mpfr(prefix + 1) / (gmpy2.mpfr(2) ** k))  # -ln of upper end
    with gmpy2.context(precision=prec, round=gmpy2.RoundDown):
        hi = (
            -gmpy2.log(gmpy2.mpfr(prefix) / (gmpy2.mpfr(2) ** k))
            if prefix > 0
            else gmpy2.inf()
        )
    return lo, hi


def _exact_accept(rng: DiscreteRandom, u53: int, g_fn: GFn) -> bool:
    """Exactly decide ``-ln U > g`` (probability ``exp(-g)``) for the U whose
    first 53 bits are ``u53``, drawing further bits of U as needed."""
    prefix, k = u53, 53
    while True:
        prefix = (prefix << 64) | rng.word()
        k += 64
        prec = k + 64
        lo, hi = _e_interval(prefix, k, prec)
        with gmpy2.context(precision=prec):
            g, err = g_fn(prec)
            if lo > g + err:
                return True
            if hi < g - err:
                return False
        if k > 4096:  # pragma: no cover - probability below 2^-4000
            raise ParameterError("exact comparison did not settle (non-finite threshold?)")


def _exact_floor(rng: DiscreteRandom, u53: int, t: int) -> int:
    """Exactly ``floor(t * (-ln U))`` for the U whose first 53 bits are ``u53``."""
    prefix, k = u53, 53
    while True:
        prefix = (prefix << 64) | rng.word()
        k += 64
        prec = k + 64
        lo, hi = _e_interval(prefix, k, prec)
        with gmpy2.context(precision=prec, round=gmpy2.RoundDown):
            a = gmpy2.floor(lo * t)
        with gmpy2.context(precision=prec, round=gmpy2.RoundUp):
            b = gmpy2.floor(hi * t) if gmpy2.is_finite(hi) else None
        if b is not None and a == b:
            return int(a)
        if k > 4096:  # pragma: no cover
            raise ParameterError("exact floor did not settle")


# ---------------------------------------------------------- vectorised core


#: prefixes u >= 2^45 bound the width of E's interval by 2^-45; smaller ones
#: (one in 2^8) get their own bound 1/u
_SMALL_U: Final = np.uint64(1 << 45)
_WIDTH: Final = 2.0**-45
#: float error allowance on -ln of the interval's upper end (|ln| <= 36.8)
_M_E: Final = 38.0 * _REL


def _log_uniforms(
    rng: DiscreteRandom, n: int
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64], FloatArray]:
    """``n`` lazily known uniforms: the words, their 53-bit prefixes ``u``
    (``U`` in ``[u/2^53, (u+1)/2^53)``) and ``L = ln((u+1)/2^53)`` in float64,
    so that ``E = -ln U`` lies in ``(-L, -L + ln(1 + 1/u)]``, within ``1/u``.
    The low bit of each word is independent of ``u`` (used for signs)."""
    w = rng.words(n)
    u = w >> np.uint64(11)
    lg = u.astype(np.float64)
    lg += 1.0
    lg *= _INV_2_53  # exact: u + 1 <= 2^53
    np.log(lg, out=lg)
    return w, u, lg


def _inv_small(u: npt.NDArray[np.uint64], idx: npt.NDArray[np.intp]) -> FloatArray:
    """``1/u`` at ``idx`` (2^60 where ``u == 0``: nothing is decided there)."""
    return np.asarray(1.0 / np.maximum(u[idx].astype(np.float64), 2.0**-60), dtype=np.float64)


def _dlap_candidates(
    rng: DiscreteRandom, t: int, n: int
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """``n`` discrete Laplace proposals (``P(y) ∝ exp(-|y|/t)``) as exact
    integers in float64, and the mask of those kept ("minus zero" rejected)."""
    w, u, lo = _log_uniforms(rng, n)
    m = _REL * (1.0 + 38.0 * t)  # float error allowance on t * E (t * E_lo <= 36.8 t)
    lo *= -float(t)
    lo -= m  # lo <= t * E_lo <= lo + 2m
    x = np.floor(lo)
    lo -= x  # fraction; t * E < x + 1 when fraction + 2m + t / u < 1
    und = lo >= 1.0 - 2.0 * m - t * _WIDTH
    small = np.flatnonzero(u < _SMALL_U)
    if small.size:
        und[small] = lo[small] + 2.0 * m + t * _inv_small(u, small) >= 1.0
    for i in np.flatnonzero(und):
        x[i] = float(_exact_floor(rng, int(u[i]), t))
    # the sign: the word's low bit into the float's sign bit, in place
    np.bitwise_and(w, np.uint64(1), out=w)
    w <<= np.uint64(63)
    bits = x.view(np.uint64)
    bits |= w
    keep = bits != np.uint64(1 << 63)  # "minus zero" rejected
    return x, keep


def _accept(
    rng: DiscreteRandom, g: FloatArray, exact_g: Callable[[int], GFn],
    g_err: FloatArray | None = None,
) -> npt.NDArray[np.bool_]:
    """Independent exact Bernoulli(exp(-g)) decisions (``E > g``). ``g``
    approximates the threshold within ``g_err``, or within ``_REL (1 + g)``
    when ``g_err`` is None; ``exact_g(i)`` gives its MPFR evaluation. ``g``
    is overwritten."""
    n = g.shape[0]
    _, u, s = _log_uniforms(rng, n)
    small = np.flatnonzero(u < _SMALL_U)
    if g_err is None:
        # s = L + g (1 + REL) + REL + M_E: accept (E > -L > g) when s < 0.
        # Reject (E <= -L + 1/u < g) when s > (76 REL + 2 M_E + 1/u) / (1 - 2 REL),
        # using g (1 + REL) <= s + 37 (as -L <= 36.8).
        g *= 1.0 + _REL
        g += _REL + _M_E
        s += g
        acc = s < 0.0
        scale = 1.0 / (1.0 - 2.0 * _REL)
        rej = s > (76.0 * _REL + 2.0 * _M_E + _WIDTH) * scale
        if small.size:
            rej[small] = s[small] > (76.0 * _REL + 2.0 * _M_E + _inv_small(u, small)) * scale
    else:
        s += g
        a = s + g_err
        a += _M_E
        acc = a < 0.0  # -L - M_E > g + g_err
        s -= g_err
        s -= _M_E
        rej = s > _WIDTH  # -L + M_E + 1/u < g - g_err
        if small.size:
            rej[small] = s[small] > _inv_small(u, small)
    for i in np.flatnonzero(~(acc | rej)):
        acc[i] = _exact_accept(rng, int(u[i]), exact_g(int(i)))
    return acc


def _as_fraction(value: float | int | Fraction, name: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction, np.number)):
        raise ParameterError(f"{name}={value!r} must be a number")
    try:
        f = Fraction(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ParameterError(f"{name}={value!r} must be a finite number >= 0") from exc
    if f < 0 or f > MAX_VARIANCE:
        raise ParameterError(f"{name}={value!r} is outside [0, 2^80]")
    return f


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
        raise ParameterError(f"size={size!r} must be an int >= 0")
    return int(size)


def _fill(size: int, oversample: float, draw: Callable[[int], IntArray]) -> IntArray:
    """Run a rejection sampler in vectorised passes until ``size`` values exist.

    A pass proposes about ``oversample`` times the values still missing, but
    at most ``_CHUNK``, and keeps the accepted ones in order: the output is
    the first ``size`` accepted values of one i.i.d. sequence of proposals,
    whatever the pass sizes (they depend on counts only, never on values)."""
    out = np.empty(size, dtype=np.int64)
    filled = idle = 0
    while filled < size:
        need = size - filled
        got = draw(min(int(need * oversample) + 16, _CHUNK))[:need]
        out[filled : filled + got.shape[0]] = got
        filled += got.shape[0]
        idle = 0 if got.shape[0] else idle + 1
        if idle >= _MAX_PASSES:  # pragma: no cover - each pass accepts a constant fraction
            raise ParameterError(f"rejection sampler made no progress in {idle} passes")
    return out


def _rng(rng: DiscreteRandom | None) -> DiscreteRandom:
    if rng is None:
        return DiscreteRandom()
    if not isinstance(rng, DiscreteRandom):
        raise ParameterError(f"rng must be a DiscreteRandom, got {type(rng).__name__}")
    return rng


# ---------------------------------------------------------------- samplers


def discrete_laplace(t: int, size: int, rng: DiscreteRandom | None = None) -> IntArray:
    """``size`` exact samples with ``P(y) ∝ exp(-|y|/t)`` on the integers.

    Args:
        t: integer scale, ``1 <= t <= 2^40``.
    """
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 1 <= t <= 2**40:
        raise ParameterError(f"t={t!r} must be an int in [1, 2^40]")
    n, src, tt = _check_size(size), _rng(rng), int(t)
    def draw(m: int) -> IntArray:
        y, keep = _dlap_candidates(src, tt, m)
        return y[keep].astype(np.int64)

    return _fill(n, 1.1, draw)


def discrete_gaussian(
    variance: float | Fraction, size: int, rng: DiscreteRandom | None = None
) -> IntArray:
    """``size`` exact samples of the discrete Gaussian ``N_Z(0, variance)``.

    ``P(y) ∝ exp(-y² / (2 variance))`` for integers ``y`` (Canonne, Kamath,
    Steinke 2020). ``variance`` is taken as the exact rational it denotes (a
    float is the dyadic rational it stores), ``0 <= variance <= 2^80``; the
    law's actual variance is slightly below ``variance`` for small values
    (CKS, Proposition 19) and equal to it within 1e-8 from 1 up.
    """
    s2 = _as_fraction(variance, "variance")
    n, src = _check_size(size), _rng(rng)
    if s2 == 0:
        return np.zeros(n, dtype=np.int64)
    t = math.isqrt(math.floor(s2)) + 1  # floor(sqrt(s2)) + 1
    s2f = float(s2)
    ratio = s2f / t
    s2q = gmpy2.mpq(s2.numerator, s2.denominator)

    def draw(m: int) -> IntArray:
        y, keep = _dlap_candidates(src, t, m)
        g_hat = np.abs(y)
        g_hat -= ratio
        np.square(g_hat, out=g_hat)
        g_hat *= 1.0 / (2.0 * s2f)  # error far below _REL (1 + g)

        def exact_g(i: int) -> GFn:
            yi = abs(int(y[i]))

            def g_fn(prec: int) -> tuple[gmpy2.mpfr, gmpy2.mpfr]:
                gq = (yi - s2q / t) ** 2 / (2 * s2q)  # exact rational
                g = gmpy2.mpfr(gq)
                return g, abs(g) * gmpy2.mpfr(2) ** (2 - prec) + gmpy2.mpfr(2) ** -prec

            return g_fn

        keep &= _accept(src, g_hat, exact_g)
        return y[keep].astype(np.int64)

    return _fill(n, 1.45, draw)


_LGAMMA_TABLE: Final = np.array([math.lgamma(k + 1) for k in range(64)], dtype=np.float64)
_HALF_LOG_2PI: Final = 0.5 * math.log(2.0 * math.pi)


def _lgamma1p(k: IntArray) -> FloatArray:
    """``ln(k!)`` for integers ``k >= 0``: a table below 64, Stirling's series
    with three correction terms above (truncation error below 1e-16 there)."""
    if k.size == 0 or int(k.max()) < 64:
        return np.asarray(_LGAMMA_TABLE[k], dtype=np.float64)
    z = k.astype(np.float64)
    z += 1.0
    inv = 1.0 / z
    inv2 = inv * inv
    series = inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 / 1260.0))
    out = (z - 0.5) * np.log(z) - z + _HALF_LOG_2PI + series
    if int(k.min()) < 64:
        small = k < 64
        out[small] = _LGAMMA_TABLE[k[small]]
    return np.asarray(out, dtype=np.float64)


def _poisson_envelope(lam: Fraction, m: int, t: int) -> float:
    """``log B`` with ``log B >= log p(k) + |k - m| / t`` for every ``k >= 0``."""
    lamf = float(lam)
    loglam = math.log(lamf)

    def h(k: int) -> float:
        return k * loglam - lamf - math.lgamma(k + 1) + abs(k - m) / t

    # concave on [m, inf): increments ln(lam/(k+1)) + 1/t change sign at
    # k + 1 = lam e^(1/t); concave on [0, m]: at k = lam e^(-1/t).
    right = math.ceil(lamf * math.exp(1.0 / t)) - 1
    left = math.floor(lamf * math.exp(-1.0 / t))
    cands = {0, m, m + 1, max(m - 1, 0)}
    for c in (right, left):
        cands.update(range(max(c - 2, 0), c + 3))
    best = max(h(k) for k in cands)
    scale = 1.0 + abs(best) + lamf * (1.0 + abs(loglam)) + t
    return best + 1e-9 * scale


def poisson(lam: float | Fraction, size: int, rng: DiscreteRandom | None = None) -> IntArray:
    """``size`` exact samples of ``Poisson(lam)``, ``0 <= lam <= 2^50``
    (``lam`` taken as the exact rational it denotes)."""
    lamq = _as_fraction(lam, "lam")
    if lamq > MAX_POISSON_MEAN:
        raise ParameterError(f"lam={lam!r} exceeds 2^50 (samples must stay exact in float64)")
    n, src = _check_size(size), _rng(rng)
    if lamq == 0:
        return np.zeros(n, dtype=np.int64)
    m = math.floor(lamq)
    t = math.isqrt(m) + 1  # floor(sqrt(lam)) + 1
    lamf = float(lamq)
    loglam = math.log(lamf)
    log_b = _poisson_envelope(lamq, m, t)
    lam_mp = gmpy2.mpq(lamq.numerator, lamq.denominator)

    def draw(cnt: int) -> IntArray:
        y, keep = _dlap_candidates(src, t, cnt)
        keep &= y >= -m
        y, kf = y[keep], y[keep] + m
        k = kf.astype(np.int64)
        lg = _lgamma1p(k)
        dist = np.abs(y) / t
        g_hat = log_b - (kf * loglam - lamf - lg + dist)
        g_err = _REL * (1.0 + kf * abs(loglam) + lamf + lg + dist + abs(log_b))

        def exact_g(i: int) -> GFn:
            ki = int(k[i])

            def g_fn(prec: int) -> tuple[gmpy2.mpfr, gmpy2.mpfr]:
                lamr = gmpy2.mpfr(lam_mp)
                terms = (
                    ki * gmpy2.log(lamr),
                    lamr,
                    gmpy2.lngamma(gmpy2.mpfr(ki + 1)),
                    gmpy2.mpfr(abs(ki - m)) / t,
                    gmpy2.mpfr(log_b),
                )
                g = terms[4] - terms[0] + terms[1] + terms[2] - terms[3]
                size_ = sum(abs(x) for x in terms) + 1
                return g, size_ * gmpy2.mpfr(2) ** (5 - prec)

            return g_fn

        return k[_accept(src, g_hat, exact_g, g_err)]

    return _fill(n, 1.45, draw)


def skellam(mu: float | Fraction, size: int, rng: DiscreteRandom | None = None) -> IntArray:
    """``size`` exact samples of the symmetric Skellam law of variance ``mu``
    (``0 <= mu <= 2^51``): ``Poisson(mu/2) - Poisson(mu/2)`` (Agarwal, Kairouz,
    Liu 2021)."""
    muq = _as_fraction(mu, "mu")
    n, src = _check_size(size), _rng(rng)
    both = poisson(muq / 2, 2 * n, src)
    return both[:n] - both[n:]


def discrete_gaussian_pmf(variance: float, support: IntArray) -> FloatArray:
    """The discrete Gaussian pmf on ``support`` (float64; for tests and plots)."""
    s2 = float(variance)
    if not (math.isfinite(s2) and s2 > 0):
        raise ParameterError(f"variance={variance!r} must be a finite number > 0")
    span = math.ceil(40.0 * math.sqrt(s2)) + 2
    ks = np.arange(-span, span + 1, dtype=np.float64)
    z = float(np.exp(-(ks**2) / (2.0 * s2)).sum())
    s = np.asarray(support, dtype=np.float64)
    return np.asarray(np.exp(-(s**2) / (2.0 * s2)) / z, dtype=np.float64)
