"""Who vanishes when: the dropout schedule of one test case.

Kept apart from :mod:`protocols.testing.spec` so the network
(:mod:`protocols.testing.network`) needs nothing else from the spec layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from secagg.errors import ParameterError

__all__ = ["DropoutSchedule"]


@dataclass(frozen=True)
class DropoutSchedule:
    """For every round, the clients that vanish before sending in it (for good).

    ``vanish`` holds only rounds where someone vanishes. A client named in an
    earlier round is gone for all later rounds too.
    """

    rounds: tuple[str, ...]
    vanish: Mapping[str, frozenset[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.vanish) - set(self.rounds)
        if unknown:
            raise ParameterError(f"unknown rounds {sorted(unknown)}; rounds are {self.rounds}")

    @classmethod
    def of(cls, rounds: Sequence[str], dropouts: Mapping[str, Iterable[int]] | None
           ) -> DropoutSchedule:
        """A schedule from the simulators' ``dropouts`` mapping."""
        vanish = {r: frozenset(c) for r, c in (dropouts or {}).items() if frozenset(c)}
        return cls(tuple(rounds), vanish)

    def gone_by(self, round_name: str) -> frozenset[int]:
        """Clients that vanished at or before ``round_name``."""
        out: set[int] = set()
        for r in self.rounds:
            out |= self.vanish.get(r, frozenset())
            if r == round_name:
                return frozenset(out)
        raise ParameterError(f"unknown round {round_name!r}; rounds are {self.rounds}")

    def present(self, clients: Iterable[int], round_name: str) -> frozenset[int]:
        """Clients still present at ``round_name``."""
        return frozenset(clients) - self.gone_by(round_name)

    @property
    def total(self) -> int:
        """Clients that vanish at some round."""
        return len(frozenset().union(*self.vanish.values())) if self.vanish else 0

    def as_dropouts(self) -> dict[str, list[int]]:
        """The ``dropouts`` argument of a simulator."""
        return {r: sorted(self.vanish[r]) for r in self.rounds if self.vanish.get(r)}

    def __repr__(self) -> str:
        return f"dropouts={self.as_dropouts()}" if self.vanish else "no dropouts"
