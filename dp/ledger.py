"""Privacy ledgers: what a party has spent, and a hard stop at its budget.

A :class:`PrivacyLedger` belongs to one privacy-protecting party (a client
protecting its examples, or a server protecting its clients). Spending is
*charged before the data is touched*: :meth:`PrivacyLedger.charge` checks the
budget for the planned steps and records them, or raises
:class:`~secagg.errors.PrivacyBudgetExceeded` and records nothing. A run that
fails half-way therefore stays charged, which errs on the safe side.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from secagg.errors import ParameterError, PrivacyBudgetExceeded

from .accounting import (
    ADJACENCY,
    DEFAULT_ACCOUNTANT,
    PrivacyGuarantee,
    Segment,
    _check_accountant,
    _check_delta,
    _check_steps,
    _check_unit,
    _real,
    epsilon_of_history,
    merge_segments,
    quick_upper_bound,
)

__all__ = ["ClientLedgers", "LedgerEntry", "PrivacyLedger"]


@dataclass(frozen=True)
class LedgerEntry:
    """One charge: ``segment`` spent in round ``round`` (``None`` if not in a round)."""

    segment: Segment
    round: int | None = None


@dataclass
class PrivacyLedger:
    """Privacy spending of one party against an (epsilon, delta) budget.

    Attributes:
        epsilon_budget: the most epsilon the party will ever spend (> 0, may be
            ``math.inf`` to track without a limit).
        delta: the delta every epsilon is computed at, in (0, 1).
        unit: the privacy unit protected, ``"example"`` or ``"client"``.
        accountant: ``"pld"`` (default), ``"prv"`` or ``"rdp"``.
        population: the number N of units protected (dataset size, or
            clients), if known: delta is checked against 1/N
            (:func:`dp.check_delta`), else against 0.01.
    """

    epsilon_budget: float
    delta: float
    unit: str = "example"
    accountant: str = DEFAULT_ACCOUNTANT
    entries: list[LedgerEntry] = field(default_factory=list)
    population: int | None = None

    def __post_init__(self) -> None:
        b = _real(self.epsilon_budget, "epsilon_budget")
        if math.isnan(b) or b <= 0:
            raise ParameterError(f"epsilon_budget={self.epsilon_budget!r} must be > 0")
        self.epsilon_budget = b
        self.delta = _check_delta(self.delta, self.population, _check_unit(self.unit))
        self.unit = _check_unit(self.unit)
        self.accountant = _check_accountant(self.accountant)
        # (sample_rate, noise_multiplier, budget, delta) -> most steps known to fit
        self._cleared: dict[tuple[float, float, float, float], int] = {}

    # ------------------------------------------------------------------ queries

    @property
    def history(self) -> tuple[Segment, ...]:
        """All charged segments, merged where consecutive ones are equal."""
        return merge_segments(e.segment for e in self.entries)

    @property
    def steps(self) -> int:
        """Total steps charged so far."""
        return sum(e.segment.steps for e in self.entries)

    def spent(self, *, accountant: str | None = None) -> PrivacyGuarantee:
        """The guarantee for everything charged so far."""
        return epsilon_of_history(
            self.history,
            self.delta,
            accountant=accountant or self.accountant,
            unit=self.unit,
            population=self.population,
        )

    def remaining(self) -> float:
        """Epsilon left before the budget (``budget - spent``, at least 0)."""
        return max(0.0, self.epsilon_budget - self.spent().epsilon)

    def would_spend(
        self, sample_rate: float, noise_multiplier: float, steps: int
    ) -> PrivacyGuarantee:
        """The guarantee after charging ``steps`` more steps (nothing is recorded)."""
        seg = Segment(sample_rate, noise_multiplier, steps)
        return epsilon_of_history(
            (*self.history, seg),
            self.delta,
            accountant=self.accountant,
            unit=self.unit,
            population=self.population,
        )

    def can_spend(self, sample_rate: float, noise_multiplier: float, steps: int) -> bool:
        """Whether :meth:`charge` with these arguments would succeed."""
        return self._within_budget((*self.history, Segment(sample_rate, noise_multiplier, steps)))

    def _within_budget(self, history: tuple[Segment, ...]) -> bool:
        if self.epsilon_budget == math.inf:
            return True
        merged = merge_segments(history)
        # Epsilon grows with the number of steps, so a single-segment history is
        # within budget if a longer one at the same rate and noise was.
        if len(merged) == 1:
            s = merged[0]
            key = (s.sample_rate, s.noise_multiplier, self.epsilon_budget, self.delta)
            if self._cleared.get(key, -1) >= s.steps:
                return True
        # Any accountant gives a valid upper bound; try a fast bound first and
        # pay for the ledger's own (tighter) accountant only when needed.
        ok = quick_upper_bound(merged, self.delta) <= self.epsilon_budget or (
            epsilon_of_history(
                merged,
                self.delta,
                accountant=self.accountant,
                unit=self.unit,
                population=self.population,
            ).epsilon
            <= self.epsilon_budget
        )
        if ok and len(merged) == 1:
            s = merged[0]
            key = (s.sample_rate, s.noise_multiplier, self.epsilon_budget, self.delta)
            self._cleared[key] = max(self._cleared.get(key, 0), s.steps)
        return ok

    # ------------------------------------------------------------------ charging

    def charge(
        self,
        sample_rate: float,
        noise_multiplier: float,
        steps: int,
        *,
        round: int | None = None,
    ) -> None:
        """Record ``steps`` steps at ``sample_rate`` and ``noise_multiplier``; call
        it *before* touching the data. :meth:`spent` gives the new total.

        Raises:
            PrivacyBudgetExceeded: if the total would pass ``epsilon_budget``;
                nothing is recorded then.
            ParameterError: for out-of-range arguments.
        """
        seg = Segment(sample_rate, noise_multiplier, steps)
        if round is not None:
            round = _check_steps(round, "round")
        history = (*self.history, seg)
        if not self._within_budget(history):
            after = epsilon_of_history(
                history,
                self.delta,
                accountant=self.accountant,
                unit=self.unit,
                population=self.population,
            )
            spent = self.spent().epsilon
            raise PrivacyBudgetExceeded(
                f"{steps} more steps (sample_rate={sample_rate:.4g}, "
                f"noise_multiplier={noise_multiplier:.4g}) would bring epsilon to "
                f"{after.epsilon:.4g} > budget {self.epsilon_budget:.4g} at delta={self.delta:g} "
                f"(spent so far {spent:.4g}; {self.unit}-level, {ADJACENCY}, "
                f"{after.accountant_name})"
            )
        self.entries.append(LedgerEntry(seg, round))

    # ---------------------------------------------------------------- persistence

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` restores it."""
        return {
            "epsilon_budget": self.epsilon_budget,
            "delta": self.delta,
            "unit": self.unit,
            "adjacency": ADJACENCY,
            "accountant": self.accountant,
            "population": self.population,
            "entries": [
                {
                    "sample_rate": e.segment.sample_rate,
                    "noise_multiplier": e.segment.noise_multiplier,
                    "steps": e.segment.steps,
                    "round": e.round,
                }
                for e in self.entries
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrivacyLedger:
        """Rebuild a ledger written by :meth:`to_dict` (values are re-validated)."""
        # Values are taken as they are, never coerced: 2.7 steps or "0.5" are refused.
        try:
            entries = [
                LedgerEntry(
                    Segment(e["sample_rate"], e["noise_multiplier"], e["steps"]),
                    None if e.get("round") is None else _check_steps(e["round"], "round"),
                )
                for e in data.get("entries", [])
            ]
            return cls(
                epsilon_budget=data["epsilon_budget"],
                delta=data["delta"],
                unit=str(data.get("unit", "example")),
                accountant=str(data.get("accountant", DEFAULT_ACCOUNTANT)),
                entries=entries,
                population=data.get("population"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ParameterError):
                raise
            raise ParameterError(f"malformed ledger record: {exc!r}") from exc


class ClientLedgers(Mapping[Hashable, PrivacyLedger]):
    """One :class:`PrivacyLedger` per client, created on first use with a common
    budget. A simulation or server uses it to see what each client has spent."""

    def __init__(
        self,
        epsilon_budget: float,
        delta: float,
        *,
        unit: str = "example",
        accountant: str = DEFAULT_ACCOUNTANT,
    ) -> None:
        # validate once, eagerly
        PrivacyLedger(epsilon_budget, delta, unit, accountant)
        self._args = (epsilon_budget, delta, unit, accountant)
        self._ledgers: dict[Hashable, PrivacyLedger] = {}

    def ledger(self, client_id: Hashable) -> PrivacyLedger:
        """The ledger of ``client_id`` (created empty on first use)."""
        if client_id not in self._ledgers:
            self._ledgers[client_id] = PrivacyLedger(*self._args)
        return self._ledgers[client_id]

    def charge(
        self,
        client_id: Hashable,
        sample_rate: float,
        noise_multiplier: float,
        steps: int,
        *,
        round: int | None = None,
    ) -> None:
        """:meth:`PrivacyLedger.charge` on ``client_id``'s ledger."""
        self.ledger(client_id).charge(sample_rate, noise_multiplier, steps, round=round)

    def spent(self) -> dict[Hashable, PrivacyGuarantee]:
        """Each known client's spent guarantee."""
        return {cid: led.spent() for cid, led in self._ledgers.items()}

    def __getitem__(self, client_id: Hashable) -> PrivacyLedger:
        return self._ledgers[client_id]

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._ledgers)

    def __len__(self) -> int:
        return len(self._ledgers)
