"""Accounting for distributed DP: integer noise shares summed inside secure aggregation.

Each client adds a share of discrete noise to its rounded integer vector; the
server sees only the modular sum. This module bounds the Rényi DP of that sum
and composes it over rounds with Poisson client sampling.

Mechanisms (all sensitivities in the integer domain, after scaling and rounding):

``"dgauss"``
    The sum of ``n`` independent discrete Gaussians ``N_Z(0, σ²)``. It is
    not a discrete Gaussian, but close: Kairouz, Liu & Steinke (ICML 2021),
    Proposition 14 with Theorem 1, bound its RDP at order ``α`` by the
    minimum of ``α Δ2²/(2nσ²) + τd``, ``α/2 (Δ2²/(nσ²) + 2 Δ1 τ/√(nσ²) + τ²d)``
    and ``α/2 (Δ2/√(nσ²) + τ√d)²`` with
    ``τ = 10 Σ_{k=1}^{n-1} exp(-2π²σ² k/(k+1))``.
``"skellam"``
    The sum of Skellam shares is Skellam of the summed variance ``μ``;
    Agarwal, Kairouz & Liu (NeurIPS 2021), Theorem 3.5, bound its RDP by
    ``α Δ2²/(2μ) + min(((2α-1)Δ2² + 6Δ1)/(4μ²), 3Δ1/(2μ))``.

Sensitivities: conditional randomized rounding keeps the rounded L2 norm
below ``min(c + √d, √(c² + d/4 + √(2 ln(1/β)) (c + √d/2)))`` (Kairouz et al.,
Theorem 1 / Proposition 22), enforced exactly on the integer vector; the L1
norm of an integer vector is at most ``min(√d Δ2, Δ2²)``.

Sampling: each round includes every client independently with probability
``q``; the per-round RDP is amplified by the general Poisson-subsampling
bound of Zhu & Wang (ICML 2019), Theorem 5 (integer orders), and never
reported above the unamplified value. Rounds compose by adding RDP curves,
and (ε, δ) comes from the conversion of Canonne, Kamath & Steinke (2020,
Proposition 12) as implemented by ``dp_accounting.rdp.compute_epsilon``.

Adjacency: one client's update replaced by zero (its noise share and its
participation unchanged): the secure-aggregation server sees who took part,
so the guarantee protects what a client sent, not whether it took part.
Noise shares the adversary knows (colluding clients') are subtracted: only
honest survivors' shares count. Amplification by sampling (q < 1) further
assumes the adversary does not learn which clients were sampled.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from secagg.errors import ParameterError

from .accounting import PrivacyGuarantee

__all__ = [
    "ADJACENCY_ZERO_OUT",
    "DGAUSS_MIN_VARIANCE",
    "FINE_ORDERS",
    "MECHANISMS",
    "ORDERS",
    "DistributedPrivacyGuarantee",
    "DistributedRound",
    "dgauss_sum_rdp",
    "dgauss_tau",
    "epsilon_of_rounds",
    "round_rdp",
    "rounded_l1_bound",
    "rounded_l2_bound",
    "skellam_rdp",
    "subsampled_rdp",
]

Mechanism = Literal["dgauss", "skellam"]
MECHANISMS: Final[tuple[Mechanism, ...]] = ("dgauss", "skellam")
#: Integer Rényi orders (Zhu & Wang's bound needs integers).
ORDERS: Final[tuple[int, ...]] = (*range(2, 129), 160, 192, 256, 384, 512)
#: Orders used when no round is subsampled: fractional ones as well.
FINE_ORDERS: Final[tuple[float, ...]] = (
    *(1 + x / 20.0 for x in range(1, 20)), *(2 + x / 4.0 for x in range(0, 40)),
    *range(12, 129), 160, 192, 256, 384, 512,
)
#: The neighbouring relation of every distributed-DP guarantee.
ADJACENCY_ZERO_OUT: Final = "zero-out one (update replaced by zero)"
ACCOUNTANT: Final = "rdp-distributed"
#: Smallest share variance the discrete Gaussian sum bound covers (sigma >= 1/2).
DGAUSS_MIN_VARIANCE: Final = 0.25

_MECH_NAMES: Final = {
    "dgauss": "distributed discrete Gaussian (Kairouz-Liu-Steinke 2021)",
    "skellam": "distributed Skellam (Agarwal-Kairouz-Liu 2021)",
}

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class DistributedPrivacyGuarantee(PrivacyGuarantee):
    """A :class:`PrivacyGuarantee` that also names the mechanism and whom it
    holds against.

    Attributes:
        mechanism: the noise and its analysis, e.g. the distributed discrete
            Gaussian of Kairouz, Liu & Steinke.
        trust: the adversary the bound holds against, e.g. "the server" or
            "the server colluding with up to 3 of 100 clients (their noise
            shares subtracted)", with any sampling assumption.
        honest_shares: per round, the noise shares the bound counted.
    """

    mechanism: str = ""
    trust: str = ""
    honest_shares: tuple[int, ...] = field(default=())

    @property
    def accountant_name(self) -> str:
        return "RDP (distributed DP)"

    def __str__(self) -> str:
        return f"{super().__str__()}; {self.mechanism}; against {self.trust}"

    def as_dict(self) -> dict[str, object]:
        d = super().as_dict()
        d.update(mechanism=self.mechanism, trust=self.trust,
                 honest_shares=list(self.honest_shares))
        return d


# ----------------------------------------------------------- sensitivities


def rounded_l2_bound(l2: float, dimension: int, beta: float) -> float:
    """L2 bound after conditional randomized rounding of a vector of L2 norm
    at most ``l2`` (already scaled) in ``dimension`` coordinates; ``beta`` in
    [0, 1) is the per-attempt failure probability the bound is set for
    (Kairouz, Liu, Steinke 2021, Theorem 1); 0 gives the deterministic bound
    ``l2 + √d``."""
    _check_pos(l2, "l2")
    _check_dim(dimension)
    if not (0.0 <= beta < 1.0):
        raise ParameterError(f"beta={beta!r} is outside [0, 1)")
    d = float(dimension)
    det = l2 + math.sqrt(d)
    if beta == 0.0:
        return det
    sq = l2 * l2 + d / 4.0 + math.sqrt(2.0 * math.log(1.0 / beta)) * (l2 + math.sqrt(d) / 2.0)
    return min(det, math.sqrt(sq))


def rounded_l1_bound(l2: float, dimension: int) -> float:
    """L1 bound of an integer vector of L2 norm at most ``l2``: ``min(√d l2, l2²)``."""
    _check_pos(l2, "l2")
    _check_dim(dimension)
    return l2 * min(math.sqrt(dimension), l2)


# ------------------------------------------------------------------- RDP


def dgauss_tau(variance: float, shares: int) -> float:
    """``τ = 10 Σ_{k=1}^{n-1} exp(-2π² σ² k/(k+1))`` for ``n = shares`` discrete
    Gaussians of variance ``σ² = variance`` (Kairouz et al. 2021, Theorem 1);
    0 for one share (a single discrete Gaussian)."""
    _check_pos(variance, "variance")
    if shares < 1:
        raise ParameterError(f"shares={shares} must be >= 1")
    c = 2.0 * math.pi**2 * variance
    if shares <= 4096:
        k = np.arange(1, shares, dtype=np.float64)
        return float(10.0 * np.exp(-c * k / (k + 1.0)).sum())
    # k/(k+1) >= 4096/4097 beyond: bound the tail above by its largest term
    k = np.arange(1, 4097, dtype=np.float64)
    head = float(np.exp(-c * k / (k + 1.0)).sum())
    return 10.0 * (head + (shares - 4097) * math.exp(-c))


def dgauss_sum_rdp(
    orders: npt.ArrayLike, *, l2: float, l1: float, variance: float, shares: int,
    dimension: int, tau_shares: int | None = None,
) -> FloatArray:
    """RDP at ``orders`` of adding the sum of ``shares`` discrete Gaussians of
    ``variance`` each (integer domain) to a query of sensitivity ``l2``/``l1``
    in ``dimension`` coordinates (Kairouz, Liu, Steinke 2021, Prop. 14).

    ``tau_shares`` (>= ``shares``) evaluates ``τ`` at more shares: since the
    first term falls and ``τ`` grows with the number of shares, the result
    then bounds every count in ``[shares, tau_shares]``.
    """
    _check_pos(variance, "variance")
    if variance < DGAUSS_MIN_VARIANCE:
        raise ParameterError(
            f"variance={variance!r} is below 1/4: the bound for sums of discrete "
            "Gaussians (Kairouz et al. 2021, Theorem 1) needs sigma >= 1/2")
    if shares < 1:
        raise ParameterError(f"shares={shares} must be >= 1")
    n_tau = shares if tau_shares is None else tau_shares
    if n_tau < shares:
        raise ParameterError(f"tau_shares={n_tau} is below shares={shares}")
    a = np.asarray(orders, dtype=np.float64)
    tau = dgauss_tau(variance, n_tau)
    sd = math.sqrt(shares * variance)
    s2, s1, d = l2 / sd, l1 / sd, float(dimension)
    t1 = a / 2.0 * s2**2 + tau * d
    t2 = a / 2.0 * (s2**2 + 2.0 * s1 * tau + tau**2 * d)
    t3 = a / 2.0 * (s2 + math.sqrt(d) * tau) ** 2
    return np.asarray(np.minimum(np.minimum(t1, t2), t3), dtype=np.float64)


def skellam_rdp(orders: npt.ArrayLike, *, l2: float, l1: float, variance: float) -> FloatArray:
    """RDP at ``orders`` of adding Skellam noise of total ``variance`` (integer
    domain) to a query of sensitivity ``l2``/``l1`` (Agarwal, Kairouz, Liu 2021,
    Theorem 3.5)."""
    _check_pos(variance, "variance")
    a = np.asarray(orders, dtype=np.float64)
    mu = variance
    extra = np.minimum(((2.0 * a - 1.0) * l2**2 + 6.0 * l1) / (4.0 * mu**2), 3.0 * l1 / (2.0 * mu))
    return np.asarray(a * l2**2 / (2.0 * mu) + extra, dtype=np.float64)


@functools.lru_cache(maxsize=1024)
def _log_comb_tail(a: int) -> tuple[FloatArray, FloatArray]:
    """``ℓ = 3..a`` and ``log C(a, ℓ)`` (cached per order)."""
    from scipy.special import gammaln

    ls = np.arange(3, a + 1, dtype=np.float64)
    return ls, np.asarray(gammaln(a + 1.0) - gammaln(ls + 1.0) - gammaln(a - ls + 1.0))


def subsampled_rdp(orders: Sequence[int], q: float, rdp: FloatArray) -> FloatArray:
    """Poisson-subsampled RDP at integer ``orders`` (Zhu & Wang 2019, Thm 5):

    ``(α-1) ε'(α) <= log[(1-q)^(α-1) (αq - q + 1) + C(α,2) q² (1-q)^(α-2) e^{ε(2)}
    + 3 Σ_{ℓ=3}^{α} C(α,ℓ) q^ℓ (1-q)^(α-ℓ) e^{(ℓ-1) ε(ℓ)}]``.

    ``rdp[j]`` must be the base mechanism's RDP at order ``j + 2`` for every
    integer up to ``max(orders)``. The result is capped at the unamplified RDP.
    """
    if not (0.0 < q <= 1.0):
        raise ParameterError(f"sample_rate={q!r} is outside (0, 1]")
    top = max(orders)
    if rdp.shape[0] < top - 1:
        raise ParameterError(f"need base RDP at orders 2..{top}, got {rdp.shape[0]} values")
    out = np.empty(len(orders), dtype=np.float64)
    lq, l1q = math.log(q), (math.log1p(-q) if q < 1.0 else -math.inf)
    for i, a in enumerate(orders):
        if a != int(a) or a < 2:
            raise ParameterError(f"order {a!r} must be an integer >= 2")
        a = int(a)
        base = float(rdp[a - 2])
        if q == 1.0 or not math.isfinite(base):
            out[i] = base
            continue
        head = np.array([(a - 1) * l1q + math.log1p((a - 1) * q),
                         math.log(a * (a - 1) / 2.0) + 2 * lq + (a - 2) * l1q + float(rdp[0])])
        if a >= 3:
            ls, lc = _log_comb_tail(a)
            tail = (ls - 1.0) * rdp[1 : a - 1] + lc + (a - ls) * l1q + ls * lq + math.log(3.0)
            terms = np.concatenate((head, tail))
        else:
            terms = head
        m = float(terms.max())
        val = (m + math.log(float(np.exp(terms - m).sum()))) / (a - 1)
        out[i] = min(val, base)
    return out


# ---------------------------------------------------------------- rounds


@dataclass(frozen=True)
class DistributedRound:
    """One round of the distributed mechanism, as the accountant sees it.

    Attributes:
        mechanism: ``"dgauss"`` or ``"skellam"``.
        l2, l1: sensitivities of one client's rounded integer vector.
        variance: noise variance of one share (integer domain).
        shares: honest noise shares in the sum (survivors the adversary does
            not control), >= 1; 0 means no privacy this round.
        dimension: coordinates the noise is added to (after padding).
        sample_rate: Poisson inclusion probability of each client, (0, 1].
        tau_shares: for ``"dgauss"``, evaluate τ at this many shares (a bound
            for every count between ``shares`` and it); default ``shares``.
    """

    mechanism: str
    l2: float
    l1: float
    variance: float
    shares: int
    dimension: int
    sample_rate: float = 1.0
    tau_shares: int | None = None

    def __post_init__(self) -> None:
        if self.mechanism not in MECHANISMS:
            raise ParameterError(f"mechanism={self.mechanism!r} is not one of {MECHANISMS}")
        _check_pos(self.l2, "l2")
        _check_pos(self.l1, "l1")
        _check_pos(self.variance, "variance")
        if self.mechanism == "dgauss" and self.variance < DGAUSS_MIN_VARIANCE:
            raise ParameterError(f"variance={self.variance!r} is below 1/4 (sigma >= 1/2 needed)")
        _check_dim(self.dimension)
        if isinstance(self.shares, bool) or not isinstance(self.shares, int) or self.shares < 0:
            raise ParameterError(f"shares={self.shares!r} must be an int >= 0")
        if not (0.0 < self.sample_rate <= 1.0):
            raise ParameterError(f"sample_rate={self.sample_rate!r} is outside (0, 1]")


@functools.lru_cache(maxsize=4096)
def _round_rdp_cached(r: DistributedRound, fine: bool) -> tuple[float, ...]:
    grid = FINE_ORDERS if fine else ORDERS
    if r.shares == 0:
        return tuple(math.inf for _ in grid)
    all_orders = np.asarray(grid, dtype=np.float64) if fine else np.arange(2, max(ORDERS) + 1)
    if r.mechanism == "dgauss":
        base = dgauss_sum_rdp(all_orders, l2=r.l2, l1=r.l1, variance=r.variance, shares=r.shares,
                              dimension=r.dimension, tau_shares=r.tau_shares)
    else:
        base = skellam_rdp(all_orders, l2=r.l2, l1=r.l1, variance=r.shares * r.variance)
    if fine:
        return tuple(base.tolist())
    return tuple(subsampled_rdp(ORDERS, r.sample_rate, base).tolist())


def round_rdp(r: DistributedRound, *, fine: bool = False) -> FloatArray:
    """The RDP curve of one round at :data:`ORDERS` (amplified by sampling),
    or with ``fine=True`` at :data:`FINE_ORDERS` without any amplification
    (sampling never hurts, so this also bounds a sampled round); cached."""
    return np.asarray(_round_rdp_cached(r, fine), dtype=np.float64)


def epsilon_of_rounds(
    rounds: Sequence[DistributedRound], delta: float, *, trust: str
) -> DistributedPrivacyGuarantee:
    """(ε, δ) of the composition of ``rounds``, client-level, zero-out adjacency.

    Args:
        rounds: the rounds run so far (or planned), in any order.
        delta: in (0, 1).
        trust: whom the guarantee holds against (stated in the result).
    """
    from dp_accounting.rdp import compute_epsilon

    if not (0.0 < delta < 1.0):
        raise ParameterError(f"delta={delta!r} is outside (0, 1)")
    mechs = {r.mechanism for r in rounds}
    if len(mechs) > 1:
        raise ParameterError(f"rounds mix mechanisms {sorted(mechs)}")
    counts = Counter(rounds)

    def eps_on(fine: bool) -> float:
        grid: tuple[float, ...] = FINE_ORDERS if fine else ORDERS
        total = np.zeros(len(grid), dtype=np.float64)
        for r, count in counts.items():
            total += count * round_rdp(r, fine=fine)
        finite = np.isfinite(total)
        if not finite.any():
            return math.inf
        orders = [o for o, f in zip(grid, finite, strict=True) if f]
        e, _ = compute_epsilon(orders, total[finite].tolist(), delta)
        return float(e)

    if not rounds:
        eps = 0.0
    elif all(r.sample_rate == 1.0 for r in rounds):
        eps = eps_on(True)
    else:  # amplified on integer orders, or unamplified on the finer grid
        eps = min(eps_on(False), eps_on(True))
    mech = next(iter(mechs)) if mechs else "dgauss"
    return DistributedPrivacyGuarantee(
        epsilon=eps, delta=float(delta), accountant=ACCOUNTANT, unit="client",
        adjacency=ADJACENCY_ZERO_OUT, steps=len(rounds), mechanism=_MECH_NAMES[mech],
        trust=trust, honest_shares=tuple(r.shares for r in rounds),
    )


def _check_pos(x: float, name: str) -> float:
    v = float(x)
    if not (math.isfinite(v) and v > 0.0):
        raise ParameterError(f"{name}={x!r} must be a finite number > 0")
    return v


def _check_dim(d: int) -> int:
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ParameterError(f"dimension={d!r} must be an int >= 1")
    return d
