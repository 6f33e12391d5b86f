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
    absolute error of 0.01 in epsilon (:data:`PRV_EPS_ERROR`); close to PLD
    for epsilon >= 1, but at small epsilon that fixed error dominates and PRV
    can be looser than RDP (q = 0.001, sigma 20, 1,000 steps: PLD 0.0033,
    RDP 0.0048, PRV 0.0139).
``"rdp"``
    Opacus's Rényi-DP accountant; its cost does not grow with the number of
    steps (a closed form per order), typically 7-30 % looser than PLD.

Every accountant's work is bounded. PLD and PRV discretise the privacy loss
on a grid whose size grows with the number of steps: PLD refines its grid
only while it stays under :data:`MAX_GRID_POINTS` points (a coarser
pessimistic grid is still an upper bound, just a looser one; then the
smaller of it and the RDP bound is returned, and :func:`pld_was_capped`
says so), and PRV,
whose grid is fixed by its error target, raises :class:`AccountantLimitError`
rather than allocating more. Long computations report their progress to a
callback installed with :func:`reporting_progress`.

Delta is checked by :func:`check_delta`: outside [``MIN_DELTA``, 1) it is
refused; at or above 1/N for a population of N units (or, when N is not
given, at or above :data:`DELTA_CEILING`) a :class:`DeltaWarning` says the
guarantee promises nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import numbers
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

from secagg.errors import ParameterError

__all__ = [
    "ACCOUNTANTS",
    "ACCOUNTANT_NAMES",
    "ADJACENCY",
    "DEFAULT_ACCOUNTANT",
    "DELTA_CEILING",
    "MAX_GRID_POINTS",
    "MIN_DELTA",
    "MIN_NOISE_MULTIPLIER",
    "PRV_EPS_ERROR",
    "Accountant",
    "AccountantLimitError",
    "DeltaWarning",
    "PrivacyGuarantee",
    "PrivacyUnit",
    "Segment",
    "check_delta",
    "client_level_epsilon",
    "compare_accountants",
    "epsilon",
    "epsilon_of_history",
    "federated_sample_level_epsilon",
    "merge_segments",
    "noise_multiplier",
    "pld_was_capped",
    "reporting_progress",
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

#: Human-readable name of each accountant.
ACCOUNTANT_NAMES: Final[dict[str, str]] = {
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

#: Most grid points a PLD or PRV computation may use (32 MiB per float64 array;
#: Opacus's PRV peaked at about 170 bytes per point, so about 0.7 GB here).
MAX_GRID_POINTS: Final = 2**22
# Peak bytes per PRV grid point (measured: +380 MB for 2.2 million points).
_PRV_BYTES_PER_POINT: Final = 170
# PLD builds one step's distribution point by point in Python (about 10 us a
# point): bound that too.
_PLD_MAX_STEP_POINTS: Final = 2**17
# dp-accounting truncates the tails of one step at mass e^-50 (|z| <= 10 sigma)
# and of a composition at mass 1e-15.
_PLD_TAIL_Z: Final = 10.0
_PLD_TAIL_MASS: Final = 1e-15
# Block size for long compositions: a sparse PMF of >= 2 points turns dense
# after 64 self-compositions, which keeps dp-accounting from sizing a sparse
# composition as size**steps (a huge integer at 10^7 steps).
_PLD_BLOCK: Final = 64
# ... used only past this many steps (below it size**steps costs milliseconds).
_PLD_DIRECT_STEPS: Final = 2**16

#: Opacus's default absolute error bound on PRV's epsilon.
PRV_EPS_ERROR: Final = 0.01

#: Smallest delta accepted: below it the accountants' own tail truncation
#: (1e-15 per composition) and float64 rounding dominate, and no population
#: needs it (1/N for N = 8 * 10^9 people is 1.25e-10).
MIN_DELTA: Final = 1e-12
#: Without a population size, a delta at or above this is flagged: it is below
#: 1/N only for populations of fewer than 100 units.
DELTA_CEILING: Final = 1e-2
#: Smallest positive noise multiplier accepted. At 0.1 one unsampled Gaussian
#: step already costs epsilon ~ 48 (delta 1e-5): below it no accountant gives a
#: meaningful number, and the per-step grids grow as 1 / sigma^2.
MIN_NOISE_MULTIPLIER: Final = 0.1


class AccountantLimitError(ParameterError):
    """An accountant cannot answer within its work bound (grid points, or its
    own numerical range); the message names the bound and an accountant that can."""


class DeltaWarning(UserWarning):
    """Delta is at or above 1/N (N units in the population): a mechanism that
    publishes one unit's data outright meets such a delta, so the epsilon
    reported with it promises nothing."""


_PROGRESS: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar(
    "dp_accounting_progress", default=None
)


@contextlib.contextmanager
def reporting_progress(callback: Callable[[str], None]) -> Iterator[None]:
    """Within the ``with`` block, long accounting reports its steps (each PLD
    grid pass, each calibration probe) as one-line strings to ``callback``."""
    token = _PROGRESS.set(callback)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def _report(message: str) -> None:
    cb = _PROGRESS.get()
    if cb is not None:
        cb(message)


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
        # normalise (numpy scalars become Python numbers) so equal segments merge
        object.__setattr__(self, "sample_rate", _check_rate(self.sample_rate))
        object.__setattr__(self, "noise_multiplier", _check_sigma(self.noise_multiplier))
        object.__setattr__(self, "steps", _check_steps(self.steps))


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
        return ACCOUNTANT_NAMES.get(self.accountant, self.accountant)

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


def _real(value: object, name: str) -> float:
    """``value`` as a float if it is a real number (not a bool, not a string)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{name}={value!r} must be a real number")
    return float(value)


def _check_rate(q: float, name: str = "sample_rate") -> float:
    v = _real(q, name)
    if not (math.isfinite(v) and 0.0 < v <= 1.0):
        raise ParameterError(f"{name}={q!r} is outside (0, 1]")
    return v


def _check_sigma(sigma: float) -> float:
    s = _real(sigma, "noise_multiplier")
    if not math.isfinite(s) or s < 0.0:
        raise ParameterError(f"noise_multiplier={sigma!r} must be >= 0 and finite")
    return s


def _check_accountable(history: Iterable[Segment]) -> None:
    """Refuse noise the accountants cannot account for (0 < sigma < 0.1); such a
    segment may be recorded (e.g. under an unlimited budget) but not accounted."""
    for seg in history:
        s = seg.noise_multiplier
        if 0.0 < s < MIN_NOISE_MULTIPLIER:
            raise ParameterError(
                f"noise_multiplier={s!r} is below {MIN_NOISE_MULTIPLIER}, the least noise "
                "the accountants account for (one step at 0.1 already costs epsilon ~ 48); "
                "use 0 for no privacy (epsilon inf)"
            )


def _check_steps(steps: int, name: str = "steps") -> int:
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
        raise ParameterError(f"{name}={steps!r} must be an int >= 0")
    return int(steps)


def check_delta(
    delta: float, *, population: int | None = None, unit: str = "example"
) -> float:
    """Check a delta and return it as a float.

    Rule:

    * ``delta`` must be a real number in [:data:`MIN_DELTA`, 1), else
      :class:`~secagg.errors.ParameterError` (naming the value);
    * with ``population`` (the number N of units: examples in the dataset, or
      clients), ``delta >= 1/N`` emits a :class:`DeltaWarning` naming 1/N;
    * without it, ``delta >= DELTA_CEILING`` (0.01) emits a
      :class:`DeltaWarning` (such a delta is below 1/N only for N < 100).

    A delta at or above 1/N is met by a mechanism that publishes one random
    unit's data in the clear, so any epsilon stated with it promises nothing.
    Turn the warning into an error with ``warnings.simplefilter("error",
    dp.DeltaWarning)``.
    """
    d = _real(delta, "delta")
    if not (math.isfinite(d) and 0.0 < d < 1.0):
        raise ParameterError(f"delta={delta!r} is outside (0, 1)")
    if d < MIN_DELTA:
        raise ParameterError(
            f"delta={delta!r} is below {MIN_DELTA:g}, where the accountants' own "
            "truncation and rounding errors dominate (1/N for 8 billion people is 1.25e-10)"
        )
    if population is not None:
        if (
            isinstance(population, bool)
            or not isinstance(population, numbers.Integral)
            or population < 1
        ):
            raise ParameterError(f"population={population!r} must be an int >= 1")
        n = int(population)
        if d >= 1.0 / n:
            warnings.warn(
                f"delta={d:g} is not below 1/N = 1/{n} = {1.0 / n:.4g} {unit}s: a mechanism "
                f"that publishes one {unit}'s data in the clear meets this delta, so the "
                f"epsilon reported with it promises nothing; use delta well below "
                f"{1.0 / n:.4g} (e.g. {_suggest_delta(n):g})",
                DeltaWarning,
                stacklevel=_stacklevel(),
            )
    elif d >= DELTA_CEILING:
        warnings.warn(
            f"delta={d:g} is at least {DELTA_CEILING:g}: it is below 1/N only for a "
            f"population of N < {round(1 / d)} {unit}s, and a mechanism that publishes one "
            f"{unit}'s data in the clear meets any delta >= 1/N, so the epsilon reported "
            "with it most likely promises nothing; pass population=N to check against 1/N, "
            "or use delta well below 1/N",
            DeltaWarning,
            stacklevel=_stacklevel(),
        )
    return d


def _suggest_delta(n: int) -> float:
    """A conventional delta for N units: a power of ten below 1/(10 N)."""
    return float(10.0 ** math.floor(math.log10(1.0 / (10.0 * n))))


def _stacklevel() -> int:
    """Stack level of the first frame outside this package (for warnings)."""
    import sys

    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("dp."):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def _check_delta(delta: float, population: int | None = None, unit: str = "example") -> float:
    return check_delta(delta, population=population, unit=unit)


def _check_epsilon(eps: float, name: str = "target_epsilon") -> float:
    e = _real(eps, name)
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


def sample_rate_for(*, batch_size: int, dataset_size: int) -> float:
    """Poisson sampling rate ``batch_size / dataset_size`` (expected batch size
    over dataset size), checked to lie in (0, 1]. Keyword-only, so the two
    sizes cannot be swapped."""
    if _check_steps(dataset_size, "dataset_size") < 1:
        raise ParameterError(f"dataset_size={dataset_size!r} must be an int >= 1")
    if _check_steps(batch_size, "batch_size") < 1:
        raise ParameterError(f"batch_size={batch_size!r} must be an int >= 1")
    batch_size, dataset_size = int(batch_size), int(dataset_size)
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
    e = _real(epochs, "epochs")
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


def _prv_grid_points(history: tuple[Segment, ...], delta: float) -> int:
    """Points on Opacus's PRV grid for ``history`` (computed as Opacus does,
    cheaply: its domain comes from an RDP bound)."""
    from opacus.accountants.analysis.prv import (
        PoissonSubsampledGaussianPRV,
        compute_safe_domain_size,
    )

    delta_error = delta / 1000  # Opacus's default
    steps = sum(s.steps for s in history)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half_width = compute_safe_domain_size(
            prvs=[PoissonSubsampledGaussianPRV(s.sample_rate, s.noise_multiplier) for s in history],
            max_self_compositions=[s.steps for s in history],
            eps_error=PRV_EPS_ERROR,
            delta_error=delta_error,
        )
    mesh = PRV_EPS_ERROR / math.sqrt(steps * math.log(12 / delta_error) / 2)
    return math.ceil(2 * float(half_width) / mesh) + 1


def _eps_prv(history: tuple[Segment, ...], delta: float) -> float:
    import numpy as np
    from opacus.accountants import PRVAccountant

    steps = sum(s.steps for s in history)
    points = _prv_grid_points(history, delta)
    if points > MAX_GRID_POINTS:
        raise AccountantLimitError(
            f"the PRV accountant cannot answer {steps} steps within its bound: its grid "
            f"(fixed by the {PRV_EPS_ERROR} error target) would have {points:.3g} points, "
            f"about {points * _PRV_BYTES_PER_POINT / 2**30:.3g} GiB, above "
            f"MAX_GRID_POINTS={MAX_GRID_POINTS}; "
            "use accountant='pld' (bounded, pessimistic) or 'rdp' (cost independent of steps)"
        )
    _report(f"PRV: grid of {points} points for {steps} steps")
    acc = PRVAccountant()
    acc.history = [(s.noise_multiplier, s.sample_rate, s.steps) for s in history]
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(acc.get_epsilon(delta, eps_error=PRV_EPS_ERROR))
        except (ValueError, OverflowError, MemoryError) as exc:
            raise AccountantLimitError(
                f"the PRV accountant cannot answer delta={delta:g}, {steps} steps: {exc}; "
                "use accountant='pld' or 'rdp'"
            ) from exc


def _pld_step_range(s: Segment) -> float:
    """An upper estimate of the width of one step's privacy-loss support as
    dp-accounting builds it (tails truncated at |z| <= 10 sigma): the loss
    log(1 - q + q exp((2 z sigma + 1) / (2 sigma^2))) at z = 10, widened by a
    quarter for the negative side and rounding (measured: 1.2-1.3x the width
    dp-accounting builds at q = 0.01-0.1, sigma = 0.5-3)."""
    sigma, q = s.noise_multiplier, s.sample_rate
    a = (2.0 * _PLD_TAIL_Z * sigma + 1.0) / (2.0 * sigma**2)
    top = a + math.log(q) if a > 700 else math.log1p(q * math.expm1(a))
    return 1.25 * top + 0.01


@functools.lru_cache(maxsize=1024)
def _pld_grid_floor(history: tuple[Segment, ...]) -> float:
    """The finest discretisation interval PLD may use for ``history`` within
    its work bounds: at most ``_PLD_MAX_STEP_POINTS`` points per step and an
    estimated ``MAX_GRID_POINTS`` for the composition (8 times the RDP bound
    on the loss at the truncated tail mass, which over-covers the measured
    support by 1.5-4x)."""
    step = max(_pld_step_range(s) for s in history) / _PLD_MAX_STEP_POINTS
    loss = _eps_rdp(history, _PLD_TAIL_MASS, _RDP_INT_ORDERS)
    composed = 8.0 * (loss + 1.0) / MAX_GRID_POINTS
    return max(_PLD_MIN_VDI, step, composed)


def _pld_self_compose(one: object, steps: int) -> object:
    """``steps``-fold composition of a PLD; past 2^16 steps, through dense
    blocks of 64 steps."""
    pld_one: Any = one
    if steps <= _PLD_DIRECT_STEPS:
        return pld_one.self_compose(steps)
    block = pld_one.self_compose(_PLD_BLOCK)
    out = block.self_compose(steps // _PLD_BLOCK)
    rest = steps % _PLD_BLOCK
    return out.compose(pld_one.self_compose(rest)) if rest else out


def _eps_pld_at(history: tuple[Segment, ...], delta: float, vdi: float) -> float:
    import dp_accounting
    from dp_accounting.pld import privacy_loss_distribution as pld_lib

    total: Any = None
    for s in history:
        one = pld_lib.from_gaussian_mechanism(
            standard_deviation=s.noise_multiplier,
            value_discretization_interval=vdi,
            sampling_prob=s.sample_rate,
            neighboring_relation=dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE,
        )
        part = _pld_self_compose(one, s.steps)
        total = part if total is None else total.compose(part)
    return float(total.get_epsilon_for_delta(delta))


@functools.lru_cache(maxsize=4096)
def quick_upper_bound(history: tuple[Segment, ...], delta: float) -> float:
    """A fast, looser upper bound on epsilon (RDP at integer orders only, about
    0.05 s); used to skip the exact accountant when the answer is clear."""
    if not history:
        return 0.0
    if any(s.noise_multiplier == 0.0 for s in history):
        return math.inf
    _check_accountable(history)
    return max(0.0, _eps_rdp(history, delta, _RDP_INT_ORDERS))


def _eps_pld(history: tuple[Segment, ...], delta: float) -> float:
    if all(s.sample_rate == 1.0 for s in history):
        # No subsampling: composed Gaussians are one Gaussian of noise
        # (sum steps / sigma^2)^(-1/2), whose PLD epsilon has a closed form
        # (Balle & Wang 2018); the small margin covers the root-finding tolerance.
        from dp_accounting import get_epsilon_gaussian

        sigma_eff = sum(s.steps / s.noise_multiplier**2 for s in history) ** -0.5
        return float(get_epsilon_gaussian(sigma_eff, delta)) * (1 + 1e-9) + 1e-9
    # Every pessimistic discretisation gives an upper bound; refine the grid
    # until the bound settles, or until a finer grid would pass the work bound
    # (then the coarser bound stands). Start from a grid matched to a quick bound.
    scale = quick_upper_bound(history, delta)
    if not math.isfinite(scale):
        return math.inf
    if scale == 0.0:
        return 0.0  # RDP already proves epsilon 0 (a delta this large), a valid bound
    floor = _pld_grid_floor(history)
    steps = sum(s.steps for s in history)
    vdi = max(floor, min(_PLD_MAX_VDI, max(_PLD_MIN_VDI, 2e-4 * scale)))
    best = _eps_pld_at(history, delta, vdi)
    _report(f"PLD: {steps} steps, grid {vdi:.3g}: epsilon <= {best:.6g}")
    settled = False
    while vdi > floor:
        vdi = max(floor, vdi / _PLD_REFINE)
        finer = _eps_pld_at(history, delta, vdi)
        change = abs(best - finer) / max(finer, 1e-12)
        best = min(best, finer)
        _report(f"PLD: {steps} steps, grid {vdi:.3g}: epsilon <= {best:.6g}")
        if change < _PLD_RTOL:
            settled = True
            break
    if not settled and floor > _PLD_MIN_VDI:
        # The work bound stopped the refinement: the coarse bound stands, and
        # so does RDP's; both are upper bounds, so their minimum is one too.
        _PLD_CAPPED.add((history, delta))
        rdp = max(0.0, _eps_rdp(history, delta))
        _report(
            f"PLD: grid capped at {floor:.3g} by the work bound before the bound settled; "
            f"reporting min(PLD {best:.6g}, RDP {rdp:.6g})"
        )
        best = min(best, rdp)
    return best


#: (history, delta) pairs whose PLD refinement the work bound cut short.
_PLD_CAPPED: set[tuple[tuple[Segment, ...], float]] = set()


def pld_was_capped(history: Sequence[Segment], delta: float) -> bool:
    """Whether PLD's answer for ``history`` at ``delta`` (already computed) came
    from a grid capped by the work bound, i.e. is looser than PLD's usual 0.5 %
    (it is then the smaller of the coarse PLD bound and the RDP bound)."""
    return (merge_segments(history), float(delta)) in _PLD_CAPPED


def _eps_quick(history: tuple[Segment, ...], delta: float) -> float:
    return quick_upper_bound(history, delta)


_BACKENDS = {"pld": _eps_pld, "prv": _eps_prv, "rdp": _eps_rdp, "quick": _eps_quick}


@functools.lru_cache(maxsize=4096)
def _epsilon_cached(accountant: str, history: tuple[Segment, ...], delta: float) -> float:
    if not history:
        return 0.0
    if any(s.noise_multiplier == 0.0 for s in history):
        return math.inf
    # epsilon is >= 0 by definition; RDP's conversion can dip below 0 at large delta
    return max(0.0, _BACKENDS[accountant](history, delta))


# ---------------------------------------------------------------- public API


def epsilon_of_history(
    history: Sequence[Segment],
    delta: float,
    *,
    accountant: str = DEFAULT_ACCOUNTANT,
    unit: str = "example",
    population: int | None = None,
) -> PrivacyGuarantee:
    """Epsilon at ``delta`` of the composition of ``history`` (in order).

    Use this when the sampling rate or noise changed between rounds. Results
    are cached, so asking again for the same history is free. ``delta`` is
    checked by :func:`check_delta` (against 1/``population`` when given).

    Raises:
        ParameterError: for inputs outside their ranges.
        AccountantLimitError: if the accountant cannot answer within its work
            bound (PRV on very long compositions); RDP always can.
    """
    acc = _check_accountant(accountant)
    u = _check_unit(unit)
    d = _check_delta(delta, population, u)
    merged = merge_segments(history)
    if not any(s.noise_multiplier == 0.0 for s in merged):
        _check_accountable(merged)
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
    population: int | None = None,
) -> PrivacyGuarantee:
    """Epsilon of ``steps`` Poisson-subsampled Gaussian steps at ``delta``.

    Args:
        sample_rate: per-step inclusion probability of each unit, in (0, 1].
        noise_multiplier: noise std / clipping norm: 0 (no privacy, epsilon
            is infinite) or a finite number >= ``MIN_NOISE_MULTIPLIER`` (0.1);
            a :class:`Segment` records smaller values, which no accountant
            accounts for.
        steps: number of steps (or rounds), an integer >= 0.
        delta: target delta, in [``MIN_DELTA``, 1); keep it well below
            1 / (number of units), see :func:`check_delta`.
        accountant: ``"pld"`` (default, tightest), ``"prv"`` or ``"rdp"``.
        unit: the privacy unit the sampling is over: ``"example"`` (DP-SGD)
            or ``"client"`` (client-level DP-FedAvg). Adjacency is add/remove
            one unit.
        population: the number of units (dataset size, or clients), if known:
            a delta at or above 1/``population`` gets a :class:`DeltaWarning`.

    Raises:
        ParameterError: for inputs outside the ranges above.
        AccountantLimitError: if the accountant cannot answer within its work
            bound (PRV on very long compositions); RDP always can.
    """
    seg = Segment(_check_rate(sample_rate), _check_sigma(noise_multiplier), _check_steps(steps))
    return epsilon_of_history(
        [seg], delta, accountant=accountant, unit=unit, population=population
    )


def compare_accountants(
    sample_rate: float,
    noise_multiplier: float,
    steps: int,
    delta: float,
    *,
    unit: str = "example",
    accountants: Sequence[str] = ACCOUNTANTS,
    population: int | None = None,
) -> dict[str, PrivacyGuarantee]:
    """:func:`epsilon` under each accountant, keyed by accountant name.

    PLD is the tightest. PRV carries an absolute error of up to
    :data:`PRV_EPS_ERROR` (0.01), so at small epsilon it can be looser than
    RDP; RDP is otherwise the loosest."""
    check_delta(delta, population=population, unit=unit)
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
    name = ACCOUNTANT_NAMES.get(acc, "quick RDP bound")

    def f(sigma: float) -> float:
        e = _eps_value(acc, q, sigma, steps, delta)
        _report(f"{name}: sigma={sigma:.6g} -> epsilon {e:.6g} (target {target:g})")
        return e

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
    lo = max(MIN_NOISE_MULTIPLIER, hi * shrink)
    while f(lo) <= target:
        hi = lo
        if lo <= MIN_NOISE_MULTIPLIER:
            raise ParameterError(
                f"target_epsilon={target:g} is above the epsilon of the least noise the "
                f"accountants support (noise_multiplier={MIN_NOISE_MULTIPLIER}: epsilon "
                f"{f(MIN_NOISE_MULTIPLIER):.4g}); any noise multiplier >= "
                f"{MIN_NOISE_MULTIPLIER} meets it"
            )
        lo = max(MIN_NOISE_MULTIPLIER, lo * shrink)
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
    population: int | None = None,
) -> float:
    """The smallest noise multiplier (to relative tolerance ``rtol``) whose
    epsilon after ``steps`` steps at ``sample_rate`` is at most ``target_epsilon``.

    The returned value always satisfies ``epsilon(...) <= target_epsilon`` under
    the same accountant. The search is cached: repeating a calibration, or
    evaluating :func:`epsilon` at the result, costs nothing.

    Raises:
        ParameterError: for inputs outside their ranges (see :func:`epsilon`),
            ``steps == 0``, or a target reachable with less noise than
            ``MIN_NOISE_MULTIPLIER``.
        AccountantLimitError: if the accountant cannot answer within its work
            bound.
    """
    acc = _check_accountant(accountant)
    target = _check_epsilon(target_epsilon)
    q = _check_rate(sample_rate)
    t = _check_steps(steps)
    if t == 0:
        raise ParameterError("steps=0: no noise is needed for zero steps")
    d = _check_delta(delta, population)
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
