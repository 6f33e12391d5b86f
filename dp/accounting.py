"""Privacy accounting for the Poisson-subsampled Gaussian mechanism.

One mechanism covers both uses in this library:

* **DP-SGD** (privacy unit: one *example* of a client's dataset): each step
  includes every example independently with probability ``sample_rate``,
  clips per-example gradients to L2 norm ``C`` and adds Gaussian noise of
  standard deviation ``noise_multiplier * C`` to their sum.
* **Client-level DP-FedAvg** (privacy unit: one *client*): each round
  includes every client independently with probability ``sample_rate``,
  clips each update to L2 norm ``C`` and the aggregator adds Gaussian noise
  of standard deviation ``noise_multiplier * C`` to the sum.

Adjacency is always *add/remove one* unit (example or client). Every number
this module reports is a :class:`PrivacyGuarantee` that names its
accountant, privacy unit and adjacency.

Three accountants are available, all giving upper bounds on epsilon:

``"pld"`` (the default)
    Privacy loss distributions from Google's ``dp-accounting`` package, with
    pessimistic ("connect the dots") discretisation, refined until two
    successive bounds differ by less than 0.5 %. The tightest of the three.
    Without subsampling (rate 1) the composition is a single Gaussian and its
    exact epsilon (Balle & Wang 2018) is used.
``"prv"``
    Opacus's PRV accountant (Gopi et al. 2021), with Opacus's default
    absolute error of 0.01 in epsilon; close to PLD for epsilon >= 1, looser
    for small epsilon.
``"rdp"``
    Opacus's Rényi-DP accountant; fast but typically 7-30 % looser.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, cast

from secagg.errors import ParameterError

__all__ = [
    "ACCOUNTANTS",
    "ADJACENCY",
    "DEFAULT_ACCOUNTANT",
    "Accountant",
    "PrivacyGuarantee",
    "PrivacyUnit",
    "Segment",
    "client_level_epsilon",
    "compare_accountants",
    "epsilon",
    "epsilon_of_history",
    "federated_sample_level_epsilon",
    "merge_segments",
    "noise_multiplier",
    "sample_rate_for",
    "steps_for_epochs",
]

Accountant = Literal["pld", "prv", "rdp"]
PrivacyUnit = Literal["example", "client"]

#: Accountants in order from tightest to loosest.
ACCOUNTANTS: Final[tuple[Accountant, ...]] = ("pld", "prv", "rdp")
#: The accountant used when none is named: a pessimistic PLD bound, so never
#: below the exact PLD epsilon and in practice within 0.3 % of it.
DEFAULT_ACCOUNTANT: Final[Accountant] = "pld"
#: The neighbouring relation every guarantee here is stated for.
ADJACENCY: Final[str] = "add/remove one"

_ACCOUNTANT_NAMES: Final[dict[str, str]] = {
    "pld": "PLD (dp-accounting)",
    "prv": "PRV (Opacus)",
    "rdp": "RDP (Opacus)",
}

# Rényi orders: Opacus's defaults plus larger ones, which matter for small epsilon.
_RDP_ORDERS: Final[tuple[float, ...]] = (
    *(1 + x / 10.0 for x in range(1, 100)),
    *range(12, 64),
    64, 80, 96, 128, 160, 192, 256, 384, 512, 768, 1024,
)

# Integer orders only: closed-form terms, an order of magnitude faster.
_RDP_INT_ORDERS: Final[tuple[float, ...]] = tuple(o for o in _RDP_ORDERS if o == int(o))

# PLD discretisation: start coarse, divide by _PLD_REFINE until two successive
# bounds differ by less than _PLD_RTOL (relative), never finer than _PLD_MIN_VDI.
_PLD_RTOL: Final = 5e-3
_PLD_REFINE: Final = 3.0
_PLD_MIN_VDI: Final = 3e-6
_PLD_MAX_VDI: Final = 1e-2


@dataclass(frozen=True)
class Segment:
    """``steps`` applications of the Poisson-subsampled Gaussian mechanism.

    Attributes:
        sample_rate: inclusion probability of each unit per step, in (0, 1].
        noise_multiplier: noise standard deviation divided by the clipping
            norm, >= 0 (0 means no privacy).
        steps: number of steps (DP-SGD steps or FedAvg rounds), >= 0.
    """

    sample_rate: float
    noise_multiplier: float
    steps: int

    def __post_init__(self) -> None:
        _check_rate(self.sample_rate)
        _check_sigma(self.noise_multiplier)
        _check_steps(self.steps)


@dataclass(frozen=True)
class PrivacyGuarantee:
    """An (epsilon, delta)-DP guarantee and what it is a guarantee *for*.

    Attributes:
        epsilon: the privacy loss bound (``math.inf`` if unbounded).
        delta: the failure probability it holds with.
        accountant: ``"pld"``, ``"prv"`` or ``"rdp"``.
        unit: the privacy unit, ``"example"`` or ``"client"``.
        adjacency: the neighbouring relation (always ``"add/remove one"``).
        steps: total number of mechanism applications composed.
    """

    epsilon: float
    delta: float
    accountant: str
    unit: str
    adjacency: str = ADJACENCY
    steps: int = 0

    def __float__(self) -> float:
        return self.epsilon

    @property
    def accountant_name(self) -> str:
        """Human-readable accountant name, e.g. ``"PLD (dp-accounting)"``."""
        return _ACCOUNTANT_NAMES.get(self.accountant, self.accountant)

    def __str__(self) -> str:
        return (
            f"({self.epsilon:.4g}, {self.delta:.3g})-DP per {self.unit} "
            f"({self.adjacency} {self.unit}; {self.accountant_name} accountant, "
            f"{self.steps} step{'' if self.steps == 1 else 's'})"
        )

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready dict of the guarantee."""
        return {
            "epsilon": self.epsilon,
            "delta": self.delta,
            "accountant": self.accountant,
            "accountant_name": self.accountant_name,
            "unit": self.unit,
            "adjacency": self.adjacency,
            "steps": self.steps,
        }


# --------------------------------------------------------------------------- checks


def _check_rate(q: float, name: str = "sample_rate") -> float:
    q = float(q)
    if not (math.isfinite(q) and 0.0 < q <= 1.0):
        raise ParameterError(f"{name}={q!r} is outside (0, 1]")
    return q


def _check_sigma(sigma: float) -> float:
    s = float(sigma)
    if math.isnan(s) or s < 0.0:
        raise ParameterError(f"noise_multiplier={sigma!r} must be >= 0")
    return s


def _check_steps(steps: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ParameterError(f"steps={steps!r} must be an int >= 0")
    return steps


def _check_delta(delta: float) -> float:
    d = float(delta)
    if not (math.isfinite(d) and 0.0 < d < 1.0):
        raise ParameterError(f"delta={delta!r} is outside (0, 1)")
    return d


def _check_epsilon(eps: float, name: str = "target_epsilon") -> float:
    e = float(eps)
    if not (math.isfinite(e) and e > 0.0):
        raise ParameterError(f"{name}={eps!r} must be a finite number > 0")
    return e


def _check_accountant(accountant: str) -> Accountant:
    if accountant not in ACCOUNTANTS:
        raise ParameterError(
            f"accountant={accountant!r} is not one of {', '.join(ACCOUNTANTS)}"
        )
    return cast(Accountant, accountant)


def _check_unit(unit: str) -> PrivacyUnit:
    if unit not in ("example", "client"):
        raise ParameterError(f"unit={unit!r} is not 'example' or 'client'")
    return cast(PrivacyUnit, unit)


# ------------------------------------------------------------------ conventions


def sample_rate_for(batch_size: int, dataset_size: int) -> float:
    """Poisson sampling rate ``batch_size / dataset_size`` (expected batch size
    over dataset size), checked to lie in (0, 1]."""
    if isinstance(dataset_size, bool) or not isinstance(dataset_size, int) or dataset_size < 1:
        raise ParameterError(f"dataset_size={dataset_size!r} must be an int >= 1")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ParameterError(f"batch_size={batch_size!r} must be an int >= 1")
    if batch_size > dataset_size:
        raise ParameterError(
            f"batch_size={batch_size} exceeds dataset_size={dataset_size} "
            "(sampling rate would be above 1)"
        )
    return batch_size / dataset_size


def steps_for_epochs(epochs: float, sample_rate: float) -> int:
    """Number of steps in ``epochs`` passes at ``sample_rate``: ``ceil(epochs / q)``
    (one epoch is ``1 / q`` steps, each touching ``q`` of the data in expectation)."""
    q = _check_rate(sample_rate)
    e = float(epochs)
    if not (math.isfinite(e) and e >= 0):
        raise ParameterError(f"epochs={epochs!r} must be a finite number >= 0")
    # the relative slack absorbs rounding in e / q (e.g. 3 / 0.1 = 30.000000000000004)
    return max(0, math.ceil(e / q - 1e-9 * max(1.0, e / q)))


def merge_segments(segments: Iterable[Segment]) -> tuple[Segment, ...]:
    """Merge consecutive segments with equal rate and noise; drop empty ones."""
    out: list[Segment] = []
    for s in segments:
        if s.steps == 0:
            continue
        if out and out[-1].sample_rate == s.sample_rate and (
            out[-1].noise_multiplier == s.noise_multiplier
        ):
            out[-1] = Segment(s.sample_rate, s.noise_multiplier, out[-1].steps + s.steps)
        else:
            out.append(s)
    return tuple(out)


# ------------------------------------------------------------------ accountants


def _eps_rdp(
    history: tuple[Segment, ...], delta: float, orders: Sequence[float] = _RDP_ORDERS
) -> float:
    from opacus.accountants.analysis import rdp as rdp_analysis

    orders = list(orders)
    total = None
    for s in history:
        r = rdp_analysis.compute_rdp(
            q=s.sample_rate, noise_multiplier=s.noise_multiplier, steps=s.steps, orders=orders
        )
        total = r if total is None else total + r
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eps, _ = rdp_analysis.get_privacy_spent(orders=orders, rdp=total, delta=delta)
    return float(eps)


def _eps_prv(history: tuple[Segment, ...], delta: float) -> float:
    import numpy as np
    from opacus.accountants import PRVAccountant

    acc = PRVAccountant()
    acc.history = [(s.noise_multiplier, s.sample_rate, s.steps) for s in history]
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(acc.get_epsilon(delta))


def _eps_pld_at(history: tuple[Segment, ...], delta: float, vdi: float) -> float:
    import dp_accounting
    from dp_accounting import pld

    acc = pld.PLDAccountant(
        neighboring_relation=dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE,
        value_discretization_interval=vdi,
    )
    for s in history:
        event = dp_accounting.PoissonSampledDpEvent(
            s.sample_rate, dp_accounting.GaussianDpEvent(s.noise_multiplier)
        )
        acc.compose(event, s.steps)
    return float(acc.get_epsilon(delta))


@functools.lru_cache(maxsize=4096)
def quick_upper_bound(history: tuple[Segment, ...], delta: float) -> float:
    """A fast, looser upper bound on epsilon (RDP at integer orders only, about
    0.05 s); used to skip the exact accountant when the answer is clear."""
    if not history:
        return 0.0
    if any(s.noise_multiplier == 0.0 for s in history):
        return math.inf
    return _eps_rdp(history, delta, _RDP_INT_ORDERS)


def _eps_pld(history: tuple[Segment, ...], delta: float) -> float:
    if all(s.sample_rate == 1.0 for s in history):
        # No subsampling: composed Gaussians are one Gaussian of noise
        # (sum steps / sigma^2)^(-1/2), whose PLD epsilon has a closed form
        # (Balle & Wang 2018); the small margin covers the root-finding tolerance.
        from dp_accounting import get_epsilon_gaussian

        sigma_eff = sum(s.steps / s.noise_multiplier**2 for s in history) ** -0.5
        return float(get_epsilon_gaussian(sigma_eff, delta)) * (1 + 1e-9) + 1e-9
    # Every pessimistic discretisation gives an upper bound; refine the grid
    # until the bound settles. Start from a grid matched to a quick bound.
    scale = quick_upper_bound(history, delta)
    if not math.isfinite(scale):
        return math.inf
    vdi = min(_PLD_MAX_VDI, max(_PLD_MIN_VDI, 2e-4 * scale))
    best = _eps_pld_at(history, delta, vdi)
    while vdi > _PLD_MIN_VDI:
        vdi = max(_PLD_MIN_VDI, vdi / _PLD_REFINE)
        finer = _eps_pld_at(history, delta, vdi)
        change = abs(best - finer) / max(finer, 1e-12)
        best = min(best, finer)
        if change < _PLD_RTOL:
            break
    return best


def _eps_quick(history: tuple[Segment, ...], delta: float) -> float:
    return quick_upper_bound(history, delta)


_BACKENDS = {"pld": _eps_pld, "prv": _eps_prv, "rdp": _eps_rdp, "quick": _eps_quick}


@functools.lru_cache(maxsize=4096)
def _epsilon_cached(accountant: str, history: tuple[Segment, ...], delta: float) -> float:
    if not history:
        return 0.0
    if any(s.noise_multiplier == 0.0 for s in history):
        return math.inf
    return _BACKENDS[accountant](history, delta)


# ---------------------------------------------------------------- public API


def epsilon_of_history(
    history: Sequence[Segment],
    delta: float,
    *,
    accountant: str = DEFAULT_ACCOUNTANT,
    unit: str = "example",
) -> PrivacyGuarantee:
    """Epsilon at ``delta`` of the composition of ``history`` (in order).

    Use this when the sampling rate or noise changed between rounds. Results
    are cached, so asking again for the same history is free."""
    acc = _check_accountant(accountant)
    u = _check_unit(unit)
    d = _check_delta(delta)
    merged = merge_segments(history)
    eps = _epsilon_cached(acc, merged, d)
    return PrivacyGuarantee(
        epsilon=eps,
        delta=d,
        accountant=acc,
        unit=u,
        steps=sum(s.steps for s in merged),
    )


def epsilon(
    sample_rate: float,
    noise_multiplier: float,
    steps: int,
    delta: float,
    *,
    accountant: str = DEFAULT_ACCOUNTANT,
    unit: str = "example",
) -> PrivacyGuarantee:
    """Epsilon of ``steps`` Poisson-subsampled Gaussian steps at ``delta``.

    Args:
        sample_rate: per-step inclusion probability of each unit, in (0, 1].
        noise_multiplier: noise std / clipping norm, >= 0.
        steps: number of steps (or rounds), >= 0.
        delta: target delta, in (0, 1); usually below 1 / (number of units).
        accountant: ``"pld"`` (default, tightest), ``"prv"`` or ``"rdp"``.
        unit: the privacy unit the sampling is over: ``"example"`` (DP-SGD)
            or ``"client"`` (client-level DP-FedAvg). Adjacency is add/remove
            one unit.

    Raises:
        ParameterError: for inputs outside the ranges above.
    """
    seg = Segment(_check_rate(sample_rate), _check_sigma(noise_multiplier), _check_steps(steps))
    return epsilon_of_history([seg], delta, accountant=accountant, unit=unit)


def compare_accountants(
    sample_rate: float,
    noise_multiplier: float,
    steps: int,
    delta: float,
    *,
    unit: str = "example",
    accountants: Sequence[str] = ACCOUNTANTS,
) -> dict[str, PrivacyGuarantee]:
    """:func:`epsilon` under each accountant, keyed by accountant name."""
    return {
        a: epsilon(sample_rate, noise_multiplier, steps, delta, accountant=a, unit=unit)
        for a in accountants
    }


def _eps_value(acc: str, q: float, sigma: float, steps: int, delta: float) -> float:
    return _epsilon_cached(acc, merge_segments([Segment(q, sigma, steps)]), delta)


@functools.lru_cache(maxsize=1024)
def _calibrate(
    acc: str, target: float, q: float, steps: int, delta: float, rtol: float
) -> float:
    def f(sigma: float) -> float:
        return _eps_value(acc, q, sigma, steps, delta)

    # Bracket [lo, hi] with f(lo) > target >= f(hi). The quick RDP bound is an
    # upper bound on every accountant, so its (cheap) calibration is a good
    # upper end to start from.
    if acc in ("rdp", "quick"):
        hi, shrink = 1.0, 0.5
    else:
        hi, shrink = _calibrate("quick", target, q, steps, delta, rtol), 0.85
    while f(hi) > target:
        hi *= 2.0
        if hi > 1e6:
            raise ParameterError(
                f"target_epsilon={target} is unreachable with noise_multiplier <= 1e6"
            )
    lo = hi * shrink
    while f(lo) <= target:
        hi = lo
        lo *= shrink
        if lo < 1e-4:
            return hi  # almost no noise is needed
    # Illinois regula falsi on (log sigma, log eps): log eps is nearly linear
    # in log sigma, so this converges in a handful of evaluations.
    x_lo, x_hi = math.log(lo), math.log(hi)
    y_lo = math.log(f(lo)) - math.log(target)
    y_hi = math.log(max(f(hi), 1e-300)) - math.log(target)
    side = 0
    for _ in range(60):
        if (x_hi - x_lo) < math.log1p(rtol) or -y_hi < math.log1p(rtol):
            break
        x = x_hi - y_hi * (x_hi - x_lo) / (y_hi - y_lo) if y_hi != y_lo else 0.5 * (x_lo + x_hi)
        # stay strictly inside the bracket
        width = x_hi - x_lo
        x = min(max(x, x_lo + 0.01 * width), x_hi - 0.01 * width)
        y = math.log(max(f(math.exp(x)), 1e-300)) - math.log(target)
        if y > 0:
            x_lo, y_lo = x, y
            if side == -1:
                y_hi /= 2.0
            side = -1
        else:
            x_hi, y_hi = x, y
            if side == 1:
                y_lo /= 2.0
            side = 1
    return math.exp(x_hi)


def noise_multiplier(
    target_epsilon: float,
    sample_rate: float,
    steps: int,
    delta: float,
    *,
    accountant: str = DEFAULT_ACCOUNTANT,
    rtol: float = 2e-3,
) -> float:
    """The smallest noise multiplier (to relative tolerance ``rtol``) whose
    epsilon after ``steps`` steps at ``sample_rate`` is at most ``target_epsilon``.

    The returned value always satisfies ``epsilon(...) <= target_epsilon`` under
    the same accountant. The search is cached: repeating a calibration, or
    evaluating :func:`epsilon` at the result, costs nothing.

    Raises:
        ParameterError: for inputs outside their ranges (see :func:`epsilon`)
            or ``steps == 0``.
    """
    acc = _check_accountant(accountant)
    target = _check_epsilon(target_epsilon)
    q = _check_rate(sample_rate)
    t = _check_steps(steps)
    if t == 0:
        raise ParameterError("steps=0: no noise is needed for zero steps")
    d = _check_delta(delta)
    if not (0.0 < rtol < 0.5):
        raise ParameterError(f"rtol={rtol!r} is outside (0, 0.5)")
    return _calibrate(acc, target, q, t, d, float(rtol))


def federated_sample_level_epsilon(
    sample_rate: float,
    noise_multiplier: float,
    local_steps_per_round: int,
    rounds_participated: int,
    delta: float,
    *,
    accountant: str = DEFAULT_ACCOUNTANT,
) -> PrivacyGuarantee:
    """Example-level epsilon for one client that runs local DP-SGD in the rounds
    it is picked for.

    The client's examples are touched only in its ``rounds_participated``
    rounds, each of ``local_steps_per_round`` DP-SGD steps at ``sample_rate``
    (its local batch size over its local dataset size). No amplification by
    client sampling is claimed: the client knows when it is picked and the
    server chooses, so the bound counts every step the client ran.
    """
    _check_steps(local_steps_per_round)
    _check_steps(rounds_participated)
    return epsilon(
        sample_rate,
        noise_multiplier,
        local_steps_per_round * rounds_participated,
        delta,
        accountant=accountant,
        unit="example",
    )


def client_level_epsilon(
    client_rate: float,
    noise_multiplier: float,
    rounds: int,
    delta: float,
    *,
    accountant: str = DEFAULT_ACCOUNTANT,
) -> PrivacyGuarantee:
    """Client-level epsilon of DP-FedAvg: ``rounds`` rounds, each including every
    client independently with probability ``client_rate``, with updates clipped
    to ``C`` and Gaussian noise ``noise_multiplier * C`` added to their sum.
    Adjacency: add/remove one client (all of its data)."""
    return epsilon(
        client_rate, noise_multiplier, rounds, delta, accountant=accountant, unit="client"
    )
