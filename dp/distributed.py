"""Distributed DP: clients add discrete noise shares inside the secure sum.

The step sits between a client's update and the secure sum, and its inverse
after the sum (Kairouz, Liu, Steinke, ICML 2021; Agarwal, Kairouz, Liu,
NeurIPS 2021):

client (:func:`encode`)
    clip to L2 norm ``c``; pad to a power of two ``D``; rotate with the
    randomized Hadamard transform ``H·diag(s)/√D`` (signs ``s`` from a
    *public* per-round seed, so the L2 mass spreads evenly over the
    coordinates); scale by ``1/γ``; round each coordinate up or down at
    random (unbiased), repeating until the rounded vector's L2 norm is within
    the bound the accountant uses (conditional randomized rounding); add a
    discrete Gaussian or Skellam noise share from the client's own secret
    AES-CTR source; reduce mod ``2^bits``.
server (:func:`decode`)
    reduce the secure sum mod ``2^bits``, centre it on
    ``[-2^(bits-1), 2^(bits-1))``, multiply by ``γ``, un-rotate, drop the
    padding.

The server never sees an un-noised sum: each honest survivor's share is
inside it. Noise is calibrated so that the shares of the *minimum* number
of honest survivors the secure aggregation admits (its threshold, minus any
colluding clients, whose shares the adversary knows and subtracts) already
give the target epsilon; :class:`DistributedDPAccountant` reports, round by
round, the privacy from the survivors that were actually summed.

Privacy does not depend on floating point: the norm bound the accounting
uses is checked exactly on the integer vector, and the noise is sampled
exactly on the integers (:mod:`dp.discrete`). Floats only affect accuracy
(the rotation, scaling and decoding).

Wrap-around: a coordinate of the true integer sum outside
``[-2^(bits-1), 2^(bits-1))`` decodes wrongly. The rotation makes each
coordinate of the summed signal sub-Gaussian with variance proxy
``‖Σx‖²/D <= (n c/γ)²/D`` (Hoeffding over the random signs); rounding adds
less than 1 per client; discrete Gaussian shares are ``σ²``-sub-Gaussian
(Canonne et al. 2020) and Skellam has moment generating function
``exp(μ(cosh λ - 1))``. A Chernoff bound on their sum gives the
per-coordinate wrap probability that :func:`select_parameters` reports and
bounds.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

import numpy as np
import numpy.typing as npt

from secagg.errors import EncodingError, ParameterError

from . import discrete
from .distributed_accounting import (
    DGAUSS_MIN_VARIANCE,
    MECHANISMS,
    DistributedPrivacyGuarantee,
    DistributedRound,
    epsilon_of_rounds,
    rounded_l1_bound,
    rounded_l2_bound,
)

__all__ = [
    "DEFAULT_BETA",
    "DecodedSum",
    "DistributedDPAccountant",
    "DistributedDPParams",
    "EncodedUpdate",
    "decode",
    "encode",
    "hadamard",
    "rotate",
    "rotation_seed",
    "select_parameters",
    "unrotate",
]

#: Conditional rounding parameter of Kairouz et al. (each attempt passes with
#: probability at least 1 - beta).
DEFAULT_BETA: Final = math.exp(-0.5)
#: Rounding attempts before giving up (failure probability below beta^1000).
MAX_ROUNDING_ATTEMPTS: Final = 1000
_ROTATION_DOMAIN: Final = b"secagg/dp/rotation/v1"
#: integer-domain L2 bounds stay below this, so squared norms fit in int64
_MAX_L2_INT: Final = 2.0**30

FloatArray = npt.NDArray[np.float64]


# --------------------------------------------------------------- rotation


def rotation_seed(context: bytes, round_index: int) -> bytes:
    """The public 32-byte rotation seed of one round: SHA-256 over a domain
    tag, ``context`` (e.g. the secure aggregation's session id) and the round
    number. It need not be secret, but must be fixed only after the updates."""
    if not isinstance(context, (bytes, bytearray)):
        raise ParameterError("context must be bytes")
    if isinstance(round_index, bool) or not isinstance(round_index, int) or not (
        0 <= round_index < 2**64
    ):
        raise ParameterError(f"round_index={round_index!r} must be an int in [0, 2^64)")
    h = hashlib.sha256(_ROTATION_DOMAIN)
    h.update(len(context).to_bytes(8, "big") + bytes(context) + round_index.to_bytes(8, "big"))
    return h.digest()


#: the largest Kronecker factor of the Hadamard transform is 2^_FACTOR_BITS
_FACTOR_BITS: Final = 5


@functools.cache
def _sylvester(bits: int) -> FloatArray:
    """The ``2^bits x 2^bits`` Sylvester Hadamard matrix (entries ±1), read-only."""
    h = np.ones((1, 1), dtype=np.float64)
    for _ in range(bits):
        h = np.block([[h, h], [h, -h]])
    h.setflags(write=False)
    return h


def _factor_bits(log_n: int) -> list[int]:
    """Split ``log_n`` into as few parts of at most ``_FACTOR_BITS`` as
    possible, sizes differing by at most one."""
    parts = -(-log_n // _FACTOR_BITS)
    return [log_n // parts + (i < log_n % parts) for i in range(parts)] if parts else []


def hadamard(x: npt.ArrayLike) -> FloatArray:
    """The orthonormal Walsh-Hadamard transform ``H x / √D`` of a float64
    vector whose length ``D`` is a power of two, or of every row of a
    ``B x D`` matrix (``B >= 0``); its own inverse.

    ``H_D`` is the Kronecker product ``H_{m_1} ⊗ ... ⊗ H_{m_k}`` of small
    Sylvester matrices (``m_i <= 32``; four factors at ``D = 2^20``). Viewing
    the vector as an ``m_1 x R`` matrix ``X``, ``H_{m_1} X`` transforms the
    leading index; writing the product transposed (``R x m_1``) moves that
    index last, so ``k`` matrix products, each one pass over the data, apply
    every factor and restore the order. Each product is one stacked
    ``matmul`` over column blocks of at most ``2^17 / m^2`` columns: small
    enough that a threaded BLAS runs every block on the calling thread
    (threaded products stall badly when other processes hold the cores).
    The rows of a matrix are one more stacking axis of the same products:
    each row gets the same block products, in the same order, as when it is
    transformed alone, so row ``i`` of the result is bit-identical to
    ``hadamard(x[i])``. The ``1/√D`` is folded into the first factor. Float
    rounding only: the result equals the exact transform within a few ulps
    times ``log2 D`` relative to ``‖x‖``, and privacy never depends on it
    (the encoder checks the rounded integer vector's norm exactly).
    """
    a = np.asarray(x, dtype=np.float64)
    if a.ndim not in (1, 2):
        raise ParameterError(
            f"x has shape {a.shape}: {a.ndim} axes, expected 1 (a vector) or 2 (rows)")
    n = a.shape[-1]
    if n < 1 or n & (n - 1):
        raise ParameterError(f"length {n} must be a power of two (x has shape {a.shape})")
    rows = a.shape[0] if a.ndim == 2 else 1
    factors = _factor_bits(n.bit_length() - 1)
    if not factors or rows == 0:
        return a * 1.0  # a fresh copy: D = 1, H = [1], or no rows
    src = np.ascontiguousarray(a).reshape(rows, n)
    bufs = [np.empty((rows, n), dtype=np.float64) for _ in range(min(2, len(factors)))]
    for i, bits in enumerate(factors):
        m = 1 << bits
        rest = n // m
        width = min(rest, 1 << max(0, 17 - 2 * bits))  # columns per block
        blocks = rest // width
        h = _sylvester(bits)
        if i == 0:
            h = h * (1.0 / math.sqrt(n))
        dst = bufs[i % len(bufs)]
        # row r, block b: H (m x m) times columns [b w, (b+1) w) of row r's
        # X (m x rest), written as rows [b w, (b+1) w) of its (rest x m) result
        np.matmul(h, src.reshape(rows, m, blocks, width).transpose(0, 2, 1, 3),
                  out=dst.reshape(rows, blocks, width, m).transpose(0, 1, 3, 2))
        src = dst
    return src.reshape(a.shape)


def _signs(seed: bytes, n: int) -> FloatArray:
    from secagg import prg

    bits = np.unpackbits(prg.expand(seed, (n + 7) // 8, np.uint8, b"signs"))[:n]
    return 1.0 - 2.0 * bits.astype(np.float64)


def rotate(x: npt.ArrayLike, seed: bytes) -> FloatArray:
    """``H diag(s) x / √D`` with random signs ``s`` from the public ``seed``."""
    v = np.asarray(x, dtype=np.float64)
    return hadamard(v * _signs(seed, v.shape[0]))


def unrotate(y: npt.ArrayLike, seed: bytes) -> FloatArray:
    """The inverse of :func:`rotate`: ``diag(s) H y / √D``."""
    out = hadamard(y)
    out *= _signs(seed, out.shape[0])
    return out


# ------------------------------------------------------------- parameters


@dataclass(frozen=True)
class DistributedDPParams:
    """Public parameters of the distributed mechanism, shared by every party.

    Attributes:
        mechanism: ``"dgauss"`` or ``"skellam"``.
        dimension: length ``d`` of the float updates.
        l2_clip: L2 clipping norm ``c`` of an update (float units).
        bits: the sum is computed mod ``2^bits`` (1..64).
        gamma: quantization step: one integer unit is ``gamma`` in float units.
        noise_variance: variance of one client's noise share (integer units).
        num_clients: clients per round the secure aggregation is set up for
            (the most summands).
        min_survivors: the fewest survivors it admits (its threshold).
        colluding_clients: clients that may collude with the server.
        beta: conditional rounding parameter in [0, 1).
        delta, target_epsilon, rounds, sample_rate: the privacy plan.
        wrap_probability: bound on the probability that one coordinate of a
            round's sum wraps around (per coordinate; the union over the
            ``padded_dimension`` coordinates is ``wrap_probability_vector``).
        epsilon: epsilon after ``rounds`` rounds at ``min_survivors``.
    """

    mechanism: str
    dimension: int
    l2_clip: float
    bits: int
    gamma: float
    noise_variance: float
    num_clients: int
    min_survivors: int
    colluding_clients: int = 0
    beta: float = DEFAULT_BETA
    delta: float = 1e-5
    target_epsilon: float = math.inf
    rounds: int = 1
    sample_rate: float = 1.0
    wrap_probability: float = 1.0
    epsilon: float = math.inf

    def __post_init__(self) -> None:
        if self.mechanism not in MECHANISMS:
            raise ParameterError(f"mechanism={self.mechanism!r} is not one of {MECHANISMS}")
        _check_int("dimension", self.dimension, 1, 2**30)
        _check_int("bits", self.bits, 1, 64)
        _check_int("num_clients", self.num_clients, 1, 2**31)
        _check_int("min_survivors", self.min_survivors, 1, self.num_clients)
        _check_int("colluding_clients", self.colluding_clients, 0, self.num_clients)
        _check_int("rounds", self.rounds, 1, 2**31)
        for name in ("l2_clip", "gamma", "noise_variance"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ParameterError(f"{name}={v!r} must be a finite number > 0")
        if self.mechanism == "dgauss" and self.noise_variance < DGAUSS_MIN_VARIANCE:
            raise ParameterError(
                f"noise_variance={self.noise_variance} is below 1/4 (sigma >= 1/2 per share)")
        if self.mechanism == "skellam" and self.noise_variance > 2 * discrete.MAX_POISSON_MEAN:
            raise ParameterError(f"noise_variance={self.noise_variance} exceeds 2^51 (Skellam)")
        if self.noise_variance > discrete.MAX_VARIANCE:
            raise ParameterError(f"noise_variance={self.noise_variance} exceeds 2^80")
        if not (0.0 <= self.beta < 1.0):
            raise ParameterError(f"beta={self.beta!r} is outside [0, 1)")
        if not (0.0 < self.sample_rate <= 1.0):
            raise ParameterError(f"sample_rate={self.sample_rate!r} is outside (0, 1]")
        if self.l2_sensitivity > _MAX_L2_INT:
            raise ParameterError(
                f"gamma={self.gamma} is too fine for l2_clip={self.l2_clip}: the integer "
                f"norm bound {self.l2_sensitivity:.3g} exceeds 2^30; increase gamma")

    @property
    def padded_dimension(self) -> int:
        """``D``: ``dimension`` rounded up to a power of two."""
        return 1 << (self.dimension - 1).bit_length()

    @property
    def scale(self) -> float:
        """``1 / gamma``: integer units per float unit."""
        return 1.0 / self.gamma

    @property
    def l2_sensitivity(self) -> float:
        """L2 bound of one client's rounded integer vector (enforced exactly)."""
        return rounded_l2_bound(self.l2_clip * self.scale, self.padded_dimension, self.beta)

    @property
    def l1_sensitivity(self) -> float:
        """L1 bound of one client's rounded integer vector."""
        return rounded_l1_bound(self.l2_sensitivity, self.padded_dimension)

    @property
    def wrap_probability_vector(self) -> float:
        """Union bound over the padded coordinates that any one wraps."""
        return min(1.0, self.padded_dimension * self.wrap_probability)

    def noise_std(self, survivors: int | None = None) -> float:
        """Standard deviation of the summed noise per coordinate in float units
        (at ``min_survivors`` by default)."""
        n = self.min_survivors if survivors is None else survivors
        return math.sqrt(n * self.noise_variance) * self.gamma

    def round_for(self, survivors: int) -> DistributedRound:
        """The accounting view of one round with ``survivors`` summed clients."""
        _check_int("survivors", survivors, 0, self.num_clients)
        return DistributedRound(
            mechanism=self.mechanism, l2=self.l2_sensitivity, l1=self.l1_sensitivity,
            variance=self.noise_variance,
            shares=max(0, survivors - self.colluding_clients),
            dimension=self.padded_dimension, sample_rate=self.sample_rate,
        )

    @property
    def trust(self) -> str:
        """Whom the guarantee holds against, with its assumptions."""
        who = "the server" if self.colluding_clients == 0 else (
            f"the server colluding with up to {self.colluding_clients} of "
            f"{self.num_clients} clients (their noise shares subtracted)")
        if self.sample_rate < 1.0:
            who += ("; amplification by sampling assumes the adversary does not learn "
                    "which clients were sampled")
        return who


def _check_int(name: str, v: object, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ParameterError(f"{name}={v!r} must be an int in [{lo}, {hi}]")
    return v


def _log_wrap(mechanism: str, signal_proxy: float, shares: int, variance: float,
              threshold: float) -> float:
    """log of a Chernoff bound on P(|signal + noise| >= threshold), two-sided."""
    if threshold <= 0:
        return 0.0
    if mechanism == "dgauss":
        v = signal_proxy + shares * variance
        return math.log(2.0) - threshold**2 / (2.0 * v)
    from scipy.optimize import minimize_scalar

    mu = shares * variance

    def f(lam: float) -> float:
        return signal_proxy * lam * lam / 2.0 + mu * (math.cosh(lam) - 1.0) - lam * threshold

    # the minimiser solves signal_proxy * lam + mu * sinh(lam) = threshold
    hi = math.asinh(threshold / mu)
    if signal_proxy > 0:
        hi = min(hi, threshold / signal_proxy)
    res = minimize_scalar(f, bounds=(0.0, hi), method="bounded", options={"xatol": 1e-12})
    return math.log(2.0) + min(0.0, float(res.fun))


def _wrap(p: DistributedDPParams) -> float:
    n, d = p.num_clients, p.padded_dimension
    signal_proxy = (n * p.l2_clip * p.scale) ** 2 / d
    threshold = 2.0 ** (p.bits - 1) - n  # rounding moves each client by < 1
    return min(1.0, math.exp(_log_wrap(p.mechanism, signal_proxy, n, p.noise_variance, threshold)))


def _calibrate_variance(
    base: DistributedDPParams, target: float, hint: float | None = None
) -> tuple[float, float]:
    """Smallest share variance (relative tolerance 1e-4) meeting ``target``
    at the minimum honest survivors, searched from ``hint``; returns
    (variance, epsilon)."""
    honest = base.min_survivors - base.colluding_clients

    def eps(v: float) -> float:
        r = DistributedRound(
            mechanism=base.mechanism, l2=base.l2_sensitivity, l1=base.l1_sensitivity,
            variance=v, shares=honest, dimension=base.padded_dimension,
            sample_rate=base.sample_rate,
            # tau grows with the shares: bound it at the most shares there can be
            tau_shares=base.num_clients if base.mechanism == "dgauss" else None,
        )
        return epsilon_of_rounds([r] * base.rounds, base.delta, trust="").epsilon

    floor = DGAUSS_MIN_VARIANCE if base.mechanism == "dgauss" else 2.0**-40
    hi = max(floor, 1.0 if hint is None else hint)
    if eps(hi) > target:  # grow until the target is met
        lo = hi
        while eps(hi) > target:
            lo, hi = hi, hi * 2.0
            if hi > discrete.MAX_VARIANCE:
                raise ParameterError(
                    f"target_epsilon={target} is out of reach with noise variance up to "
                    "2^80; increase target_epsilon or delta, or decrease rounds or sample_rate")
    else:  # shrink while it is still met
        lo = max(floor, hi / 2.0)
        while lo > floor and eps(lo) <= target:
            hi, lo = lo, max(floor, lo / 2.0)
        if lo == floor and eps(lo) <= target:
            return lo, eps(lo)
    while hi / lo > 1.0 + 1e-4:
        mid = math.sqrt(lo * hi)
        if eps(mid) > target:
            lo = mid
        else:
            hi = mid
    return hi, eps(hi)


def select_parameters(
    *,
    target_epsilon: float,
    delta: float,
    num_clients: int,
    min_survivors: int,
    bits: int,
    dimension: int,
    l2_clip: float,
    rounds: int,
    sample_rate: float = 1.0,
    mechanism: str = "dgauss",
    colluding_fraction: float = 0.0,
    beta: float = DEFAULT_BETA,
    max_wrap_probability: float = 1e-6,
) -> DistributedDPParams:
    """Choose ``gamma`` and the per-client noise variance for a privacy plan.

    Noise is calibrated so that ``rounds`` rounds, each summing only
    ``min_survivors`` clients (less the colluding ones), reach
    ``target_epsilon`` at ``delta`` (client level, zero-out adjacency); among
    the feasible quantizations the finest ``gamma`` whose per-coordinate wrap
    probability is at most ``max_wrap_probability`` is chosen (finer ``gamma``
    means less rounding error relative to the signal).

    Args:
        num_clients: clients per round (most summands; the secure sum's n).
        min_survivors: fewest survivors the secure sum admits (its threshold).
        bits: modulus bits of the sum, 2..64 (at most the secure sum's).
        colluding_fraction: fraction of ``num_clients`` that may collude with
            the server; ``ceil(fraction * num_clients)`` shares are assumed known.
        sample_rate: Poisson inclusion probability of each client per round.

    Raises:
        ParameterError: naming the parameter to change when no ``gamma``
            keeps the wrap probability below ``max_wrap_probability``, when no
            honest survivor is guaranteed, or the target is out of reach.
    """
    for name, v in (("target_epsilon", target_epsilon), ("l2_clip", l2_clip)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ParameterError(f"{name}={v!r} must be a finite number > 0")
    if not (0.0 < delta < 1.0):
        raise ParameterError(f"delta={delta!r} is outside (0, 1)")
    if not (0.0 <= colluding_fraction < 1.0):
        raise ParameterError(f"colluding_fraction={colluding_fraction!r} is outside [0, 1)")
    if not (0.0 < max_wrap_probability < 1.0):
        raise ParameterError(f"max_wrap_probability={max_wrap_probability!r} is outside (0, 1)")
    _check_int("num_clients", num_clients, 1, 2**31)
    _check_int("bits", bits, 2, 64)
    colluding = math.ceil(colluding_fraction * num_clients - 1e-12)
    if min_survivors - colluding < 1:
        raise ParameterError(
            f"min_survivors={min_survivors} leaves no honest noise share with "
            f"{colluding} colluding clients; raise min_survivors (the secure "
            "aggregation threshold) or lower colluding_fraction")
    if 2.0 ** (bits - 1) <= num_clients:
        raise ParameterError(
            f"bits={bits} cannot hold the rounding of {num_clients} clients; "
            f"increase bits to at least {math.ceil(math.log2(num_clients)) + 2}")

    def make(gamma: float, variance: float = 1.0) -> DistributedDPParams:
        return DistributedDPParams(
            mechanism=mechanism, dimension=dimension, l2_clip=float(l2_clip), bits=bits,
            gamma=gamma, noise_variance=variance, num_clients=num_clients,
            min_survivors=min_survivors, colluding_clients=colluding, beta=beta,
            delta=float(delta), target_epsilon=float(target_epsilon), rounds=rounds,
            sample_rate=float(sample_rate),
        )

    last: list[tuple[float, float]] = []  # (gamma, variance) of the last calibration

    def at(gamma: float) -> DistributedDPParams:
        base = make(gamma)
        # the variance in integer units scales about as 1 / gamma^2
        hint = last[-1][1] * (last[-1][0] / gamma) ** 2 if last else None
        var, eps = _calibrate_variance(base, float(target_epsilon), hint)
        last.append((gamma, var))
        p = make(gamma, var)
        return dataclasses.replace(p, wrap_probability=_wrap(p), epsilon=eps)

    padded = 1 << (dimension - 1).bit_length()
    # coarsest useful gamma: the clip norm spans one integer unit per coordinate
    # on average; finest: the summed signal alone spans the modulus.
    g_coarse = l2_clip / math.sqrt(padded) * 4.0
    g_fine = max(num_clients * l2_clip / 2.0 ** (bits + 2) / math.sqrt(padded),
                 l2_clip / _MAX_L2_INT * 4.0)
    coarse = at(g_coarse)
    if coarse.wrap_probability > max_wrap_probability:
        raise ParameterError(
            f"bits={bits} is too few: even at the coarsest quantization the noise of "
            f"{num_clients} clients wraps a coordinate with probability up to "
            f"{coarse.wrap_probability:.3g} > max_wrap_probability={max_wrap_probability:g}; "
            "increase bits (or target_epsilon, or lower num_clients)")
    if g_fine >= g_coarse:
        return coarse
    fine = at(g_fine)
    if fine.wrap_probability <= max_wrap_probability:
        return fine
    lo, hi = math.log(g_fine), math.log(g_coarse)  # wrap(lo) too high, wrap(hi) fine
    best = coarse
    while hi - lo > 0.01:
        mid = 0.5 * (lo + hi)
        p = at(math.exp(mid))
        if p.wrap_probability <= max_wrap_probability:
            hi, best = mid, p
        else:
            lo = mid
    return best


# ------------------------------------------------------------ client side


@dataclass(frozen=True)
class EncodedUpdate:
    """One client's contribution to the secure sum.

    Attributes:
        vector: ``padded_dimension`` integers mod ``2^bits`` in the requested
            unsigned dtype.
        clipped: whether the update's norm exceeded ``l2_clip``.
        norm: the update's L2 norm before clipping.
        rounding_attempts: conditional rounding attempts used (>= 1).
    """

    vector: npt.NDArray[np.unsignedinteger]
    clipped: bool
    norm: float
    rounding_attempts: int


def encode(
    params: DistributedDPParams,
    update: npt.ArrayLike,
    seed: bytes,
    *,
    rng: discrete.DiscreteRandom | None = None,
    dtype: npt.DTypeLike = np.uint32,
) -> EncodedUpdate:
    """Clip, rotate, scale, round, add a noise share and reduce mod ``2^bits``.

    Args:
        params: the round's public parameters.
        update: float vector of length ``params.dimension`` (finite values).
        seed: the round's public rotation seed (:func:`rotation_seed`).
        rng: the client's secret source (fresh ``os.urandom`` seed by default).
        dtype: ``uint32`` or ``uint64``, the secure sum's element type; its
            width must be at least ``params.bits``.

    Raises:
        ParameterError: wrong length, non-finite values, or too narrow dtype.
        EncodingError: conditional rounding failed 1000 times (probability
            below ``beta^1000``).
    """
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.uint32), np.dtype(np.uint64)) or dt.itemsize * 8 < params.bits:
        raise ParameterError(f"dtype={dt} cannot hold {params.bits}-bit values; use uint32/uint64")
    x = np.asarray(update, dtype=np.float64)
    if x.shape != (params.dimension,):
        raise ParameterError(f"update has shape {x.shape}, expected ({params.dimension},)")
    if not np.isfinite(x).all():
        raise ParameterError("update has NaN or Inf values")
    src = discrete.DiscreteRandom() if rng is None else rng
    norm = math.sqrt(float(np.einsum("i,i->", x, x)))
    clipped = norm > params.l2_clip
    d_pad = params.padded_dimension
    padded = np.zeros(d_pad, dtype=np.float64)
    padded[: params.dimension] = x
    if clipped:
        padded *= params.l2_clip / norm
    y = rotate(padded, seed)
    y *= params.scale
    base_f = np.floor(y)
    base = base_f.astype(np.int64)
    # round up where U < frac for U = u / 2^53 (u the top 53 bits of a word):
    # u / 2^53 < frac iff u < frac * 2^53, both sides exact in float64
    y -= base_f
    y *= 2.0**53
    threshold = y
    del base_f
    bound = Fraction(params.l2_sensitivity) ** 2
    attempts = 0
    for _ in range(MAX_ROUNDING_ATTEMPTS):
        attempts += 1
        u = src.words(d_pad)
        u >>= np.uint64(11)
        z = base + (u < threshold)
        # exact in int64: the norm of z is at most 2^30 + 2^15 (scaled norm <= 2^30,
        # rounding moves each of <= 2^30 coordinates by < 1), so the sum is < 2^61
        if Fraction(int(np.dot(z, z))) <= bound:
            break
    else:  # pragma: no cover - probability below beta^1000
        raise EncodingError(
            f"conditional rounding failed {MAX_ROUNDING_ATTEMPTS} times (beta={params.beta})")
    if params.mechanism == "dgauss":
        noise = discrete.discrete_gaussian(params.noise_variance, d_pad, src)
    else:
        noise = discrete.skellam(params.noise_variance, d_pad, src)
    z += noise
    mask = (1 << params.bits) - 1
    out = (z.view(np.uint64) & np.uint64(mask)).astype(dt)
    return EncodedUpdate(vector=out, clipped=bool(clipped), norm=norm, rounding_attempts=attempts)


# ------------------------------------------------------------ server side


@dataclass(frozen=True)
class DecodedSum:
    """The decoded noisy sum of one round.

    Attributes:
        sum: float vector of length ``dimension``: the sum of the clipped
            updates plus the summed noise (float units).
        survivors: number of clients in the sum.
        near_boundary_fraction: fraction of coordinates within 1/16 of the
            modulus of wrapping (a high value warns of wrap-around).
    """

    sum: FloatArray
    survivors: int
    near_boundary_fraction: float


def decode(
    params: DistributedDPParams,
    modular_sum: npt.ArrayLike,
    seed: bytes,
    survivors: int,
) -> DecodedSum:
    """Centre the secure sum mod ``2^bits``, rescale, un-rotate and trim.

    ``modular_sum`` is the secure aggregation's raw sum (any unsigned dtype
    whose modulus is a multiple of ``2^bits``, e.g. its ``raw_sum``).
    """
    raw = np.asarray(modular_sum)
    if raw.shape != (params.padded_dimension,) or raw.dtype.kind != "u":
        raise ParameterError(
            f"modular_sum must be an unsigned vector of length {params.padded_dimension}, "
            f"got {raw.dtype} {raw.shape}")
    _check_int("survivors", survivors, 0, params.num_clients)
    mask = np.uint64((1 << params.bits) - 1)
    v = (raw.astype(np.uint64) & mask).view(np.int64)
    half = 1 << (params.bits - 1)
    centred = np.where(v >= half, v - (1 << params.bits), v) if params.bits < 64 else v
    near = float(np.mean(np.abs(centred) >= half - half // 8)) if centred.size else 0.0
    y = centred.astype(np.float64) * params.gamma
    x = unrotate(y, seed)[: params.dimension]
    return DecodedSum(sum=x, survivors=survivors, near_boundary_fraction=near)


# ------------------------------------------------------------- accounting


class DistributedDPAccountant:
    """Round-by-round privacy of the distributed mechanism from the survivors
    actually summed (never the planned count).

    ``record_round(survivors)`` counts the honest shares
    ``survivors - colluding_clients``; a round with none has no privacy and
    makes epsilon infinite.
    """

    def __init__(self, params: DistributedDPParams) -> None:
        self.params = params
        self._rounds: list[DistributedRound] = []

    @property
    def rounds(self) -> int:
        return len(self._rounds)

    def record_round(self, survivors: int) -> DistributedPrivacyGuarantee:
        """Record one round that summed ``survivors`` clients; returns the
        guarantee so far."""
        self._rounds.append(self.params.round_for(survivors))
        return self.guarantee()

    def guarantee(self, delta: float | None = None) -> DistributedPrivacyGuarantee:
        """(ε, δ) of the rounds recorded so far (δ defaults to the plan's)."""
        d = self.params.delta if delta is None else delta
        return epsilon_of_rounds(self._rounds, d, trust=self.params.trust)

    def planned(self) -> DistributedPrivacyGuarantee:
        """The guarantee the plan promises: every round at ``min_survivors``."""
        r = self.params.round_for(self.params.min_survivors)
        return epsilon_of_rounds([r] * self.params.rounds, self.params.delta,
                                 trust=self.params.trust)
