"""Verdicts on one run: the checks behind every property, usable on their own.

Each ``assert_*`` function raises :class:`PropertyFailure` (an
``AssertionError``) with a readable account of the case, or returns quietly.
They need no hypothesis: call them from any test, with hand-picked or drawn
scenarios. :mod:`protocols.testing.properties` wraps them in ``@given``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, Literal, NoReturn

import numpy as np
import numpy.typing as npt

from protocols.results import AggregationResult
from secagg.errors import AbortError, IntegrityError, ParameterError, ProtocolError, SecAggError

from .network import TAMPERED, Address, Adversary, Delivery, FaultScript, Network, NetworkRun
from .spec import DropoutSchedule, Params, ProtocolSpec, Scenario

__all__ = [
    "PropertyFailure",
    "assert_aborts",
    "assert_no_double_reveal",
    "assert_outcome",
    "assert_rejects_input",
    "assert_run_outcome",
    "assert_sum_matches",
    "assert_tampering_contained",
    "expected_sum",
    "fail",
    "network_simulator",
    "run_scenario",
]

RevealScope = Literal["party", "collective"]


class PropertyFailure(AssertionError):
    """A property does not hold. ``scenario`` is the case (after hypothesis
    shrank it, when raised from a property), ``case`` any further drawn
    ingredient (adversary, fault script), ``detail`` the explanation."""

    def __init__(self, prop: str, spec: str, scenario: Scenario | None, detail: str,
                 case: object = None) -> None:
        self.prop, self.spec, self.scenario, self.detail, self.case = (
            prop, spec, scenario, detail, case)
        lines = [f"{spec}: property {prop!r} fails", f"  {detail}"]
        if scenario is not None:
            lines.append(f"  scenario: {scenario!r}")
        if case is not None:
            lines.append(f"  with: {case!r}")
        super().__init__("\n".join(lines))


def fail(prop: str, spec: ProtocolSpec, scenario: Scenario | None, detail: str,
         case: object = None, run: NetworkRun | None = None) -> NoReturn:
    """Raise :class:`PropertyFailure`. Every failure is raised here, unchained,
    so hypothesis sees one origin per property and shrinks across its causes."""
    if run is not None:
        detail = f"{detail}\n  deliveries:\n{run.log()}"
    raise PropertyFailure(prop, spec.name, scenario, detail, case)


# -- the sum ---------------------------------------------------------------------------
def expected_sum(scenario: Scenario, included: Iterable[int]) -> tuple[
        npt.NDArray[Any] | None, npt.NDArray[np.float64], float]:
    """``(exact, floats, bound)`` for the clients in ``included``.

    ``exact`` is the sum of the quantizer's encodings in their own dtype
    (None without a quantizer); ``floats`` the float64 sum of the clipped
    inputs; ``bound`` the quantizer's error bound for that many summands.
    """
    ids = sorted(included)
    p = scenario.params
    d = scenario.dimension
    floats = np.zeros(d, dtype=np.float64)
    for u in ids:
        floats += np.clip(np.asarray(scenario.inputs[u], dtype=np.float64), -p.clip, p.clip)
    q = p.quantizer
    if q is None:
        return None, floats, 0.0
    exact: npt.NDArray[Any] | None = None
    if not getattr(q, "stochastic_rounding", False):
        encs = [q.encode(np.asarray(scenario.inputs[u])) for u in ids]
        if encs:
            exact = encs[0].copy()
            for e in encs[1:]:
                exact += e  # the encodings' own dtype: wrap-around where the protocol wraps
    return exact, floats, q.error_bound(max(1, len(ids)))


def assert_sum_matches(spec: ProtocolSpec, scenario: Scenario, result: AggregationResult,
                       *, included: frozenset[int] | None = None,
                       prop: str = "sum equals the plain sum of the included clients") -> None:
    """The result names ``included`` (default: the threshold rule's set) and its
    sum is theirs: exactly in the integer domain when the result has a
    ``raw_sum`` and the parameters a quantizer, else within the quantizer's
    error bound (plus ``spec.float_tolerance``)."""
    want = spec.included(scenario) if included is None else included

    def bad(detail: str) -> NoReturn:
        fail(prop, spec, scenario, detail)

    if frozenset(result.included) != want:
        bad(f"included {sorted(result.included)}, expected {sorted(want)}")
    if frozenset(result.dropped) != frozenset(scenario.clients) - want:
        bad(f"dropped {sorted(result.dropped)}, expected "
            f"{sorted(frozenset(scenario.clients) - want)}")
    exact, floats, bound = expected_sum(scenario, want)
    got = np.asarray(result.sum, dtype=np.float64)
    if got.shape != floats.shape:
        bad(f"sum has shape {got.shape}, expected {floats.shape}")
    if exact is not None and result.raw_sum is not None:
        raw = np.asarray(result.raw_sum)
        if raw.shape != exact.shape or not np.array_equal(raw.astype(exact.dtype), exact):
            bad(f"raw sum {raw.tolist()} != sum of the encodings {exact.tolist()} "
                f"(included {sorted(want)})")
    slack = bound + spec.float_tolerance * (1.0 + np.abs(floats))
    err = np.abs(got - floats)
    if not np.all(err <= slack):
        i = int(np.argmax(err - slack))
        hint = ""
        if scenario.params.quantizer is None:
            hint = ("; the spec names no quantizer, so a fixed-point protocol's rounding "
                    "counts as error: pass quantizer= (Params or ProtocolSpec, e.g. the "
                    "protocol's FixedPointEncoder) or raise ProtocolSpec.float_tolerance")
        bad(f"sum[{i}] = {got[i]!r}, plain sum {floats[i]!r}: error {err[i]:.3g} "
            f"past the bound {float(slack[i]):.3g} (included {sorted(want)}){hint}")


def assert_aborts(spec: ProtocolSpec, scenario: Scenario,
                  run: Callable[[], AggregationResult] | None = None) -> AbortError:
    """The run raises :class:`AbortError` and returns no output."""
    prop = "aborts with AbortError and no output below the threshold"
    call = run or (lambda: spec.run(scenario))
    try:
        out = call()
    except AbortError as exc:
        return exc
    except Exception as exc:
        error = exc
    else:
        fail(prop, spec, scenario, f"returned an output (included {sorted(out.included)}, "
                                   f"sum {np.asarray(out.sum).tolist()})")
    fail(prop, spec, scenario, f"raised {type(error).__name__}: {error}")


def assert_outcome(spec: ProtocolSpec, scenario: Scenario) -> str:
    """Run ``scenario`` and check what the threshold rule predicts: the sum when
    it completes, an abort below the threshold, one of the two when it may go
    either way. Returns what happened (``"completed"`` or ``"aborted"``)."""
    expect = spec.outcome(scenario)
    if expect == "aborts":
        assert_aborts(spec, scenario)
        return "aborted"
    prop = "sum equals the plain sum" if expect == "completes" else "correct sum or abort"
    detail = ""
    try:
        result = spec.run(scenario)
    except AbortError as exc:
        if expect == "either":
            return "aborted"
        detail = f"aborted although the threshold is met: {exc}"
    except Exception as exc:
        detail = f"raised {type(exc).__name__}: {exc}"
    if detail:
        fail(prop, spec, scenario, detail)
    assert_sum_matches(spec, scenario, result, prop=prop)
    return "completed"


def assert_rejects_input(spec: ProtocolSpec, scenario: Scenario) -> SecAggError:
    """Invalid inputs (NaN, Inf, wrong shape or dtype) end in a
    :class:`~secagg.errors.SecAggError` (``EncodingError`` or
    ``ParameterError``), never in an output or another exception."""
    prop = "invalid input is refused with a SecAggError"
    try:
        out = spec.run(scenario)
    except SecAggError as exc:
        return exc
    except Exception as exc:
        error = exc
    else:
        fail(prop, spec, scenario, f"returned an output: {np.asarray(out.sum).tolist()}")
    fail(prop, spec, scenario, f"raised {type(error).__name__}: {error}")


# -- network runs --------------------------------------------------------------------
def run_scenario(spec: ProtocolSpec, scenario: Scenario, *, adversary: Adversary | None = None,
                 faults: FaultScript | None = None) -> NetworkRun:
    """Run ``scenario`` over the spec's wiring on a :class:`Network`."""
    if spec.wiring is None:
        raise TypeError(f"{spec.name} has no wiring: party-level properties need one")
    wiring = spec.wiring(scenario, adversary)
    unknown = sorted(set(scenario.schedule.vanish) - set(wiring.rounds))
    if unknown:
        raise ParameterError(f"{spec.name}: ProtocolSpec rounds {unknown} are not rounds of "
                             f"the wiring {tuple(wiring.rounds)} (misspelt rounds=?)")
    return Network(wiring, schedule=scenario.schedule, faults=faults,
                   adversary=adversary).run()


def network_simulator(wiring: Callable[[Scenario, Adversary | None], Any],
                      rounds: Iterable[str]) -> Callable[..., AggregationResult]:
    """A simulator (the :class:`~protocols.testing.spec.Simulator` shape) that
    runs the parties of ``wiring`` on a fault-free :class:`Network`: a
    protocol with only party classes gets the simulator-based properties too."""
    names = tuple(rounds)

    def simulate(inputs: Any, *, dropouts: Any = None, seed: int | None = None,
                 **options: Any) -> AggregationResult:
        vecs = {u: np.asarray(x) for u, x in inputs.items()}
        sc = Scenario(vecs, Params(options=options), DropoutSchedule.of(names, dropouts),
                      seed or 0)
        run = Network(wiring(sc, None), schedule=sc.schedule).run()
        for d in run.deliveries:
            if d.status == "crashed" and d.error is not None:
                raise d.error
        if run.error is not None:
            raise run.error
        if run.result is None:
            raise ProtocolError("the protocol ended without an output")
        return run.result

    return simulate


def assert_no_double_reveal(spec: ProtocolSpec, scenario: Scenario, run: NetworkRun, *,
                            scope: RevealScope = "collective", case: object = None) -> None:
    """No honest party reveals both kinds of share (``"b"`` and ``"s"``) of one
    client. ``scope="party"``: no single honest party does, over its whole run;
    ``"collective"`` (stronger, and conservative): the honest parties together
    never reveal both kinds for one owner, even a single share of each."""
    prop = "no honest party reveals both masks of one client"
    kinds: dict[tuple[Address, int], dict[str, list[Address]]] = defaultdict(
        lambda: defaultdict(list))
    for env in run.sent:
        if not run.honest(env.sender):
            continue
        for owner, kind in env.reveals:
            key = (env.sender if scope == "party" else "honest parties", owner)
            kinds[key][kind].append(env.sender)
    for (who, owner), by_kind in sorted(kinds.items(), key=lambda kv: repr(kv[0])):
        if len(by_kind) > 1:
            shown = "; ".join(f"{k}-shares from {sorted(set(v), key=repr)}"
                              for k, v in sorted(by_kind.items()))
            fail(prop, spec, scenario,
                 f"{who} revealed both kinds of client {owner}'s shares: {shown}", case, run)


def _contained(run: NetworkRun, d: Delivery, refusals: tuple[type[BaseException], ...]
               ) -> str | None:
    """None when the tampered delivery ``d`` was contained, else why not."""
    if d.status in ("vanished", "dropped"):
        return None
    if d.status == "refused":
        if not isinstance(d.error, refusals):
            return f"refused with {type(d.error).__name__} ({d.error})"
        if d.state_changed:
            return f"refused ({type(d.error).__name__}: {d.error}) but its state changed"
        return None
    if d.status != "accepted":
        return f"{d.status} ({type(d.error).__name__}: {d.error})"
    # Only the coordinator closes rounds: another party cannot know a message
    # is late. It may accept one, and a no-op is harmless; but every reply an
    # accepted tampered message provokes must be refused in turn.
    late_elsewhere = (d.envelope.tamper == "late"
                      and d.envelope.receiver != run.wiring.coordinator)
    if not d.replies:
        return None if late_elsewhere or d.state_changed is False else "accepted"
    for seq in d.replies:
        r = run.delivery_of(seq)
        if r is None:
            continue
        why = "accepted too" if r.status == "accepted" else _contained(run, r, refusals)
        if why is not None:
            return f"accepted, and its reply {r.envelope!r} was {why}"
    return None


def assert_tampering_contained(
        spec: ProtocolSpec, scenario: Scenario, run: NetworkRun, *, case: object = None,
        refusals: tuple[type[BaseException], ...] = (IntegrityError, ProtocolError)) -> None:
    """Every tampered message (flipped, duplicated, replayed, delivered after
    its round closed, or forged by a corrupt party) that reaches an honest
    party ends in ``IntegrityError`` or ``ProtocolError`` with the receiver's
    observable state unchanged. Two acceptances are contained too: a no-op
    (the receiver accepts, changes nothing and replies nothing, as with an
    idempotent announcement), and a late message to a party other than the
    coordinator, which has no clock and cannot know the round closed, as long
    as every reply it sends is refused in turn. No party ever fails with an
    exception outside ``SecAggError``."""
    prop = "every tampered message ends in IntegrityError or ProtocolError, state unchanged"
    for d in run.deliveries:
        if d.status == "crashed":
            fail(prop, spec, scenario, f"{d.envelope!r} crashed its receiver: "
                 f"{type(d.error).__name__}: {d.error}", case, run)
    for d in run.deliveries:
        env = d.envelope
        if env.tamper not in TAMPERED or not run.honest(env.receiver):
            continue
        why = _contained(run, d, refusals)
        if why is not None:
            fail(prop, spec, scenario, f"tampered {env!r} was {why}", case, run)


def assert_run_outcome(spec: ProtocolSpec, scenario: Scenario, run: NetworkRun, *,
                       strict: bool, case: object = None) -> None:
    """The run ends in a correct sum over the clients it reports, or in an
    abort with no output. ``strict``: exactly what the threshold rule predicts
    (use it when nothing on the wire could have removed a client)."""
    prop = "the run ends in the plain sum of its included clients, or aborts"
    expect = spec.outcome(scenario)
    detail = ""
    if run.error is not None:
        if not isinstance(run.error, AbortError) or run.result is not None:
            detail = f"ended in {type(run.error).__name__}: {run.error}"
        elif strict and expect == "completes":
            detail = f"aborted although the threshold is met: {run.error}"
    elif run.result is None:
        if strict and expect == "completes":
            detail = "ended without an output"
    elif strict and expect == "aborts":
        detail = "produced an output below the threshold"
    elif not frozenset(run.result.included) <= spec.included(scenario):
        detail = (f"included {sorted(run.result.included)}, but only "
                  f"{sorted(spec.included(scenario))} sent inputs")
    else:
        try:
            assert_sum_matches(spec, scenario, run.result, prop=prop, included=(
                spec.included(scenario) if strict else frozenset(run.result.included)))
        except PropertyFailure as exc:
            detail = exc.detail
    if detail:
        fail(prop, spec, scenario, detail, case, run)
