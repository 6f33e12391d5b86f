"""What a property needs to know about a sum protocol, and one test case.

A :class:`ProtocolSpec` describes a protocol by its simulator (the
``simulate(inputs, *, dropouts, seed, **options) -> AggregationResult`` shape
of :func:`protocols.secagg.simulate`), its round names and its threshold
rule. A :class:`Scenario` is one drawn case: the inputs, one choice of
parameters (:class:`Params`), a :class:`DropoutSchedule` and a seed. The
properties in :mod:`protocols.testing.properties` take a spec and draw
scenarios; everything in this module works without hypothesis.

The threshold rule (:meth:`ProtocolSpec.outcome`) is a count rule: the run
completes when, at every round ``r``, the clients still present number at
least ``Params.need(r)``; it aborts when some round has fewer. A protocol
whose survival depends on more than counts (SecAgg+ on a sparse graph) sets
``Params.tolerated``: more dropouts than that, without falling below the
counts, make the outcome ``"either"`` (a correct sum or an abort, never a
wrong sum). A spec may also replace the rule with its own ``rule`` callable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from protocols.results import AggregationResult
from secagg.errors import ParameterError

from .network import Adversary, Wiring
from .schedule import DropoutSchedule

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = [
    "DropoutSchedule",
    "Outcome",
    "Params",
    "ProtocolSpec",
    "Quantizer",
    "Scenario",
    "Simulator",
]

#: What the threshold rule predicts for a scenario.
Outcome = Literal["completes", "aborts", "either"]


class Simulator(Protocol):
    """The simulator shape: inputs by client id, dropouts by round name, a seed."""

    def __call__(
        self,
        inputs: Mapping[int, npt.ArrayLike],
        *,
        dropouts: Mapping[str, Iterable[int]] | None = ...,
        seed: int | None = ...,
        **options: Any,
    ) -> AggregationResult: ...


class Quantizer(Protocol):
    """Maps one float input to the protocol's integer domain.

    ``encode(x)`` must be such that the protocol's ``raw_sum`` equals the sum
    of the encodings of the included inputs, taken in the encodings' dtype
    (numpy wrap-around for unsigned dtypes). ``error_bound(n)`` bounds the
    per-element error of a decoded sum of ``n`` inputs against the sum of the
    clipped floats. :class:`secagg.FixedPointEncoder` is one.
    """

    def encode(self, x: npt.NDArray[np.floating]) -> npt.NDArray[np.integer]: ...

    def error_bound(self, n_summands: int = 1) -> float: ...


def _short(v: object) -> str:
    """A compact repr for counterexamples (long objects shown by type)."""
    if isinstance(v, (int, float, str, bool, type(None))):
        return repr(v)
    if isinstance(v, (tuple, list)) and len(v) <= 8:
        return repr(v)
    return type(v).__name__


@dataclass(frozen=True)
class Params:
    """One valid choice of a protocol's parameters for ``n`` clients.

    Attributes:
        options: extra keyword arguments for the simulator (threshold,
            graph degree, encoder, keys, ...).
        needs: clients that must still be present at each round for the run
            to complete: one int for every round, or a mapping from round name
            (rounds not named need 0).
        tolerated: when set, at most this many dropouts in total are known
            to complete; more, while still meeting ``needs``, may go either way.
        clip: the input range ``[-clip, clip]`` the strategies draw around.
        quantizer: the integer encoding, for exact comparison; None compares
            floats within ``ProtocolSpec.float_tolerance``.
        label: a short description shown in counterexamples.
    """

    options: Mapping[str, Any] = field(default_factory=dict)
    needs: int | Mapping[str, int] = 2
    tolerated: int | None = None
    clip: float = 1.0
    quantizer: Quantizer | None = None
    label: str = ""

    def need(self, round_name: str) -> int:
        """Clients that must be present at ``round_name``."""
        if isinstance(self.needs, int):
            return self.needs
        return self.needs.get(round_name, 0)

    def __repr__(self) -> str:
        if self.label:
            return f"Params({self.label})"
        opts = ", ".join(f"{k}={_short(v)}" for k, v in self.options.items())
        return f"Params(needs={self.needs}, {opts})"


@dataclass(frozen=True, eq=False)
class Scenario:
    """One drawn test case: inputs, parameters, dropout schedule and seed."""

    inputs: Mapping[int, npt.NDArray[np.floating]]
    params: Params
    schedule: DropoutSchedule
    seed: int = 0

    @property
    def clients(self) -> tuple[int, ...]:
        return tuple(sorted(self.inputs))

    @property
    def n(self) -> int:
        return len(self.inputs)

    @property
    def dimension(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])

    def __repr__(self) -> str:
        def vec(x: npt.NDArray[np.floating]) -> str:
            return f"{x.dtype.name}{np.array2string(x, precision=6, separator=', ')}"

        shown = ", ".join(f"{u}: {vec(self.inputs[u])}" for u in self.clients)
        return (f"Scenario(n={self.n}, dimension={self.dimension}, {self.params!r}, "
                f"{self.schedule!r}, seed={self.seed}, inputs={{{shown}}})")


@dataclass(frozen=True)
class ProtocolSpec:
    """A sum protocol as the properties see it.

    Attributes:
        name: shown in failures.
        simulate: the simulator (of the :class:`Simulator` shape); called as
            ``simulate(inputs, dropouts=..., seed=..., **params.options)``.
        rounds: round names in protocol order, as ``dropouts`` spells them.
        threshold: default ``needs`` (clients required at every round) when
            ``parameters`` is None.
        input_round: the round in which clients commit their inputs: clients
            present there are the ones summed (default: the last round).
        parameters: ``n -> strategy of Params``; None uses one fixed
            :class:`Params` from ``threshold``, ``clip`` and ``quantizer``.
        min_clients, max_clients, max_dimension: the sizes drawn.
        clip: default input range.
        quantizer: default ``n -> Quantizer`` for exact comparison.
        rule: replaces the count rule: ``scenario -> Outcome``.
        float_tolerance: absolute slack for float comparison, on top of the
            quantizer's error bound.
        wiring: ``(scenario, adversary) -> Wiring``: the parties as sans-I/O
            objects on an in-process network, for the party-level properties
            (tampering, reveals); None when the protocol offers only a simulator.
    """

    name: str
    simulate: Callable[..., AggregationResult]
    rounds: tuple[str, ...]
    threshold: int = 2
    input_round: str | None = None
    parameters: Callable[[int], SearchStrategy[Params]] | None = None
    min_clients: int = 2
    max_clients: int = 6
    max_dimension: int = 4
    clip: float = 1.0
    quantizer: Callable[[int], Quantizer] | None = None
    rule: Callable[[Scenario], Outcome] | None = None
    float_tolerance: float = 1e-9
    wiring: Callable[[Scenario, Adversary | None], Wiring] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "rounds", tuple(self.rounds))
        if not self.rounds:
            raise ParameterError("a protocol needs at least one round")
        if len(set(self.rounds)) != len(self.rounds) or not all(
                isinstance(r, str) and r for r in self.rounds):
            raise ParameterError(f"rounds must be distinct non-empty names, got {self.rounds}")
        if self.input_round is not None and self.input_round not in self.rounds:
            raise ParameterError(f"input_round {self.input_round!r} is not one of {self.rounds}")
        if not 1 <= self.min_clients <= self.max_clients:
            raise ParameterError("need 1 <= min_clients <= max_clients")

    def default_params(self, n: int) -> Params:
        """The fixed parameters used when ``parameters`` is None."""
        q = self.quantizer(n) if self.quantizer is not None else None
        return Params(needs=self.threshold, clip=self.clip, quantizer=q)

    def included(self, scenario: Scenario) -> frozenset[int]:
        """The clients whose inputs a completed run must sum."""
        rnd = self.input_round or self.rounds[-1]
        return scenario.schedule.present(scenario.clients, rnd)

    def outcome(self, scenario: Scenario) -> Outcome:
        """What the threshold rule predicts (see the module docstring)."""
        if self.rule is not None:
            return self.rule(scenario)
        p, sched = scenario.params, scenario.schedule
        for r in self.rounds:
            if len(sched.present(scenario.clients, r)) < p.need(r):
                return "aborts"
        if p.tolerated is not None and sched.total > p.tolerated:
            return "either"
        return "completes"

    def run(self, scenario: Scenario) -> AggregationResult:
        """Call the simulator on ``scenario``.

        A simulator that refuses one of the spec's round names (a misspelt
        ``rounds=``) raises :class:`ParameterError` naming the spec and the
        round; one that returns anything but an :class:`AggregationResult`
        raises :class:`TypeError` naming the spec.
        """
        dropouts = scenario.schedule.as_dropouts()
        try:
            out = self.simulate(dict(scenario.inputs), dropouts=dropouts,
                                seed=scenario.seed, **dict(scenario.params.options))
        except ParameterError as exc:
            named = [r for r in dropouts if repr(r) in str(exc) or r in str(exc)]
            if named and "round" in str(exc):
                raise ParameterError(
                    f"{self.name}: the simulator refuses round(s) {named} of "
                    f"ProtocolSpec(rounds={self.rounds}): {exc}; spell the rounds as the "
                    f"simulator's dropouts do") from exc
            raise
        if not isinstance(out, AggregationResult):
            raise TypeError(f"{self.name}: the simulator returned {type(out).__name__}, "
                            f"not an AggregationResult")
        return out
