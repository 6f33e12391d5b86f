"""Ready-made properties of sum protocols, run with hypothesis.

Needs hypothesis: ``pip install hypothesis`` (or, from the checkout,
``pip install -e '.[testing]'``).

Each ``check_*`` function draws cases for a :class:`~protocols.testing.spec.ProtocolSpec`,
runs them, and raises :class:`~protocols.testing.checks.PropertyFailure` (an
``AssertionError``) for the smallest failing case hypothesis finds; its
``scenario`` attribute is that shrunk case. ``settings`` is a hypothesis
``settings`` object (see :mod:`protocols.testing.profiles`); None uses the
active profile without a deadline (and without hypothesis's slow "explain"
phase).

Simulator properties (any protocol with the simulator shape):

* :func:`check_sum_property`: the result equals the plain sum of the
  included clients under any dropout schedule that leaves the threshold;
* :func:`check_abort_property`: below the threshold the run aborts with
  ``AbortError`` and no output;
* :func:`check_dropout_property`: any schedule at all ends as the threshold
  rule says (both of the above, and "correct sum or abort" where the rule
  cannot decide);
* :func:`check_input_validation`: NaN, infinities, wrong shapes and dtypes
  are refused with a ``SecAggError``.

Party-level properties (protocols whose spec has a ``wiring``):

* :func:`check_no_double_reveal`: under a malicious server, no honest party
  reveals both masks of one client;
* :func:`check_tamper_property`: every tampered message (bit flips,
  duplicates, replays, late deliveries, forged by a misbehaving client) ends
  in ``IntegrityError`` or ``ProtocolError`` and leaves the receiver's state
  unchanged, and the run still ends in a correct sum or an abort.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as Settings
from hypothesis import strategies as st

from .checks import (
    RevealScope,
    assert_aborts,
    assert_no_double_reveal,
    assert_outcome,
    assert_rejects_input,
    assert_run_outcome,
    assert_tampering_contained,
    fail,
    run_scenario,
)
from .network import Adversary, BitFlip, Duplicate, FaultScript, Replay
from .spec import Outcome, ProtocolSpec, Scenario
from .strategies import (
    FAULT_KINDS,
    fault_scripts,
    invalid_inputs,
    scenarios,
    server_adversaries,
)

__all__ = [
    "CheckReport",
    "check_abort_property",
    "check_all",
    "check_dropout_property",
    "check_input_validation",
    "check_no_double_reveal",
    "check_sum_property",
    "check_tamper_property",
]

AdversaryStrategy = Callable[[Scenario], st.SearchStrategy[Any]]
#: An adversary for every case, or a function from the case to a strategy of them.
Adversaries = AdversaryStrategy | Adversary


def _adversaries(a: Adversaries | None) -> AdversaryStrategy | None:
    if a is None or not hasattr(a, "wrap"):
        return a  # type: ignore[return-value]
    return lambda _sc: st.just(a)


_QUIET = {HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much}


def _settings(s: Settings | None) -> Settings:
    """``s``, or the active profile without a deadline and without the "explain"
    phase (slow on protocol runs); always one reported failure."""
    if s is None:
        active = Settings()  # the loaded profile
        s = Settings(active, deadline=None,
                     phases=[p for p in active.phases if p != Phase.explain])
    return Settings(s, report_multiple_bugs=False,
                    suppress_health_check=sorted(_QUIET | set(s.suppress_health_check),
                                                 key=lambda h: h.value))


def _run(name: str, spec: ProtocolSpec, strategy: st.SearchStrategy[Any],
         body: Callable[[Any], object], s: Settings | None) -> None:
    def prop(case: Any) -> None:
        body(case)

    slug = re.sub(r"\W+", "_", spec.name).strip("_")
    prop.__name__ = prop.__qualname__ = f"{name}__{slug}"
    _settings(s)(given(case=strategy)(prop))()


def _needs_wiring(spec: ProtocolSpec, what: str) -> None:
    if spec.wiring is None:
        raise TypeError(f"{what} runs the parties: {spec.name} needs a wiring")


# -- simulator properties ------------------------------------------------------------
def check_sum_property(spec: ProtocolSpec, *, settings: Settings | None = None) -> None:
    """The result equals the plain sum of the included clients under any
    dropout schedule that leaves the threshold (exactly in the integer domain
    when there is a quantizer and a ``raw_sum``, else within the error bound)."""
    _run("sum_matches_plain_sum", spec, scenarios(spec, outcome="completes"),
         lambda sc: assert_outcome(spec, sc), settings)


def check_abort_property(spec: ProtocolSpec, *, settings: Settings | None = None,
                         parties: bool = True) -> None:
    """Below the threshold the run aborts with ``AbortError`` and no output.
    With ``parties`` (and a wiring) the parties are also run on the test
    network: the coordinator must end aborted, with no result."""

    def body(sc: Scenario) -> None:
        assert_aborts(spec, sc)
        if parties and spec.wiring is not None:
            run = run_scenario(spec, sc)
            assert_run_outcome(spec, sc, run, strict=True)
            if run.result is not None or not run.aborted:
                fail("aborts with AbortError and no output below the threshold", spec, sc,
                     f"party-level run ended with {run.error!r}, result {run.result!r}",
                     run=run)

    _run("aborts_below_threshold", spec, scenarios(spec, outcome="aborts"), body, settings)


def check_dropout_property(spec: ProtocolSpec, *, settings: Settings | None = None) -> None:
    """Any dropout schedule ends as the threshold rule says: the plain sum when
    it completes, an abort with no output below it, one of the two (never a
    wrong sum) where the rule cannot decide."""
    _run("dropouts_follow_threshold_rule", spec, scenarios(spec, outcome="any"),
         lambda sc: assert_outcome(spec, sc), settings)


@st.composite
def _invalid_case(draw: st.DrawFn, spec: ProtocolSpec) -> Scenario:
    sc = draw(scenarios(spec, dropouts=False))
    bad = draw(invalid_inputs(sc.clients, sc.dimension, clip=sc.params.clip))
    return Scenario(bad, sc.params, sc.schedule, sc.seed)


@st.composite
def _attack(draw: st.DrawFn, spec: ProtocolSpec, outcome: str,
            adversaries: AdversaryStrategy | None, kinds: tuple[str, ...] | None,
            max_faults: int) -> tuple[Any, ...]:
    sc = draw(scenarios(spec, outcome=outcome))  # type: ignore[arg-type]
    script = None
    if kinds:  # faults strike messages of the fault-free run
        counts: dict[str, int] = {}
        for d in run_scenario(spec, sc).deliveries:
            counts[d.envelope.round] = counts.get(d.envelope.round, 0) + 1
        script = draw(fault_scripts(kinds, per_round=counts, max_faults=max_faults,
                                    min_faults=1))
    adv = draw(adversaries(sc)) if adversaries is not None else None
    return (sc, adv) if kinds is None else (sc, script, adv)


def check_input_validation(spec: ProtocolSpec, *, settings: Settings | None = None) -> None:
    """Invalid inputs (NaN, infinities, wrong length, 2-D, complex or object
    dtype) are refused with a ``SecAggError``, never summed or crashed on."""
    _run("invalid_input_refused", spec, _invalid_case(spec),
         lambda sc: assert_rejects_input(spec, sc), settings)


# -- party-level properties --------------------------------------------------------------
def check_no_double_reveal(
    spec: ProtocolSpec, *, adversaries: Adversaries | None = server_adversaries,
    scope: RevealScope = "collective", outcome: Outcome | Literal["any"] = "completes",
    settings: Settings | None = None,
) -> None:
    """No honest party ever reveals both masks (self-mask share and mask-key
    share) of one client, under the adversaries drawn by ``adversaries``
    (default: :func:`~protocols.testing.strategies.server_adversaries`; None:
    an honest server; or one fixed adversary) and the dropouts of ``outcome``. ``scope`` as in
    :func:`~protocols.testing.checks.assert_no_double_reveal`."""
    _needs_wiring(spec, "check_no_double_reveal")

    def body(case: tuple[Scenario, Adversary | None]) -> None:
        sc, adv = case
        run = run_scenario(spec, sc, adversary=adv)
        assert_no_double_reveal(spec, sc, run, scope=scope, case=adv)

    _run("no_double_reveal", spec, _attack(spec, outcome, _adversaries(adversaries), None, 0),
         body, settings)


def check_tamper_property(
    spec: ProtocolSpec, *, kinds: Sequence[str] = FAULT_KINDS, max_faults: int = 3,
    adversaries: Adversaries | None = None,
    outcome: Outcome | Literal["any"] = "completes", settings: Settings | None = None,
) -> None:
    """Every tampered message ends in ``IntegrityError`` or ``ProtocolError``
    and leaves the receiver's state unchanged; the run still ends in the
    plain sum of the clients it includes, or an abort.

    Draws up to ``max_faults`` network faults of ``kinds`` (see
    :data:`~protocols.testing.strategies.FAULT_KINDS`) and, with
    ``adversaries`` (e.g. :func:`~protocols.testing.strategies.misbehaving_clients`),
    a party that forges messages. When only bit flips, duplicates and replays
    are drawn, the outcome must be exactly the fault-free one.
    """
    _needs_wiring(spec, "check_tamper_property")

    def body(case: tuple[Scenario, FaultScript, Adversary | None]) -> None:
        sc, script, adv = case
        run = run_scenario(spec, sc, adversary=adv, faults=script)
        shown = (script, adv) if adv is not None else script
        assert_tampering_contained(spec, sc, run, case=shown)
        strict = adv is None and all(isinstance(f, (BitFlip, Duplicate, Replay))
                                     for f in script.faults.values())
        assert_run_outcome(spec, sc, run, strict=strict, case=shown)

    _run("tampering_refused", spec,
         _attack(spec, outcome, _adversaries(adversaries), tuple(kinds), max_faults), body,
         settings)


@dataclass(frozen=True)
class CheckReport:
    """What :func:`check_all` ran (``checked``) and what it did not, with the
    reason (``skipped``: property name -> why). ``str()`` is a readable summary."""

    spec: str
    checked: tuple[str, ...]
    skipped: Mapping[str, str]

    def __str__(self) -> str:
        lines = [f"{self.spec}: checked {', '.join(self.checked) or 'nothing'}"]
        lines += [f"  skipped {name}: {why}" for name, why in self.skipped.items()]
        return "\n".join(lines)


def check_all(spec: ProtocolSpec, *, settings: Settings | None = None,
              reveal: bool = False) -> CheckReport:
    """Every property that applies to ``spec``: the simulator properties, and
    with a wiring the tampering property (and, with ``reveal``, the
    no-double-reveal property under the default malicious servers).

    Returns a :class:`CheckReport` naming every property checked and every
    one skipped with the reason (also issued as a :class:`UserWarning`, so a
    skipped property is never silent). A failing property raises
    :class:`PropertyFailure` as when called alone.
    """
    checked: list[str] = []
    skipped: dict[str, str] = {}
    for name, fn in (("check_sum_property", check_sum_property),
                     ("check_abort_property", check_abort_property),
                     ("check_dropout_property", check_dropout_property),
                     ("check_input_validation", check_input_validation)):
        fn(spec, settings=settings)
        checked.append(name)
    if spec.wiring is None:
        skipped["check_tamper_property"] = "the spec has no wiring (it runs the parties)"
    else:
        check_tamper_property(spec, settings=settings)
        checked.append("check_tamper_property")
    if not reveal:
        skipped["check_no_double_reveal"] = "reveal=False (pass reveal=True for a protocol " \
            "whose messages reveal secret shares)"
    elif spec.wiring is None:
        skipped["check_no_double_reveal"] = "the spec has no wiring (it runs the parties)"
    else:
        check_no_double_reveal(spec, settings=settings)
        checked.append("check_no_double_reveal")
    report = CheckReport(spec.name, tuple(checked), skipped)
    for name, why in skipped.items():
        if why.startswith("the spec has no wiring"):
            warnings.warn(f"check_all({spec.name}): {name} skipped: {why}", UserWarning,
                          stacklevel=2)
    return report
