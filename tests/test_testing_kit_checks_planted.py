"""Each of the kit's own checks catches a planted bug of its own.

A check that stops checking (``all`` weakened to ``any``, any exception taken
for an abort, a refused message whose receiver changed counted as contained,
the parties no longer required to end aborted) must make one of these tests
fail. Every test reads the verdict line of the failure, not the delivery log
appended to it, so words in the log cannot make it pass. Settings are fixed
and derandomized with no example database, so the outcome does not depend
on which other tests ran before.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from hypothesis import settings

from protocols.results import AggregationResult
from protocols.secagg import SecAggServer, simulate
from protocols.testing import (
    Duplicate,
    PropertyFailure,
    SecAggWiring,
    check_abort_property,
    check_no_double_reveal,
    check_sum_property,
    profiles,
    secagg_spec,
)
from protocols.testing.checks import assert_tampering_contained, run_scenario
from protocols.testing.network import FaultScript
from protocols.testing.spec import DropoutSchedule, Scenario
from protocols.testing.specs import secagg_params
from secagg.errors import AbortError

HUNT = settings(profiles.quick, max_examples=40, derandomize=True, database=None)


def _verdict(fail: PropertyFailure) -> str:
    """The failure's own reason, without the delivery log appended to it."""
    return fail.detail.split("\n  deliveries:")[0]


# -- assert_sum_matches: every coordinate, not just one ----------------------------------
def _wrong_last_coordinate(inputs: Any, **kw: Any) -> AggregationResult:
    res = simulate(inputs, **kw)
    total = res.sum.copy()
    if total.shape[0] > 1:
        total[-1] += 1.0  # the other coordinates stay right
    return dataclasses.replace(res, sum=total, raw_sum=None)  # float comparison only


def test_a_sum_wrong_in_one_coordinate_is_caught() -> None:
    spec = dataclasses.replace(secagg_spec(max_dimension=3), simulate=_wrong_last_coordinate)
    with pytest.raises(PropertyFailure) as info:
        check_sum_property(spec, settings=HUNT)
    fail = info.value
    assert fail.scenario is not None and fail.scenario.dimension >= 2
    last = fail.scenario.dimension - 1
    assert _verdict(fail).startswith(f"sum[{last}] = ")


# -- assert_aborts: only AbortError is an abort ---------------------------------------------
def _crashes_below_threshold(inputs: Any, **kw: Any) -> AggregationResult:
    try:
        return simulate(inputs, **kw)
    except AbortError:
        raise RuntimeError("crashed instead of aborting") from None


def test_an_exception_other_than_abort_error_is_not_an_abort() -> None:
    spec = dataclasses.replace(secagg_spec(), simulate=_crashes_below_threshold)
    with pytest.raises(PropertyFailure) as info:
        check_abort_property(spec, settings=HUNT, parties=False)
    assert _verdict(info.value) == "raised RuntimeError: crashed instead of aborting"


# -- check_abort_property: the parties must end aborted ---------------------------------------
class SwallowingServer(SecAggServer):
    """Planted bug: swallows its own abort and goes quiet, so the round ends
    with neither an output nor an abort."""

    def close_round(self) -> Any:
        try:
            return super().close_round()
        except AbortError:
            return []


def test_a_coordinator_that_does_not_end_aborted_is_caught() -> None:
    # the simulator is honest; only the party-level run can see the bug
    spec = dataclasses.replace(
        secagg_spec(),
        wiring=lambda sc, adv: SecAggWiring(sc, adv, server_class=SwallowingServer))
    with pytest.raises(PropertyFailure) as info:
        check_abort_property(spec, settings=HUNT)
    assert _verdict(info.value).startswith("party-level run ended with None, result None")


# -- assert_tampering_contained: a changed state is not contained ----------------------------
class CountingBeforeChecking(SecAggServer):
    """Planted bug: counts a message before checking it, so a refused
    (tampered) message still changes the server."""

    handled = 0

    def handle(self, msg: Any) -> Any:
        self.handled += 1
        return super().handle(msg)


def test_a_refusal_that_changed_the_receiver_is_not_contained() -> None:
    sc = Scenario({u: np.full(2, 0.25) for u in (1, 2, 3)}, secagg_params(3, 2),
                  DropoutSchedule(("advertise", "share_keys", "masked_input", "unmask")))
    spec = dataclasses.replace(
        secagg_spec(),
        wiring=lambda s, adv: SecAggWiring(s, adv, server_class=CountingBeforeChecking))
    # the first advertisement, delivered twice: the server refuses the copy
    faults = FaultScript({("advertise", 0): Duplicate()})
    run = run_scenario(spec, sc, faults=faults)
    refused = [d for d in run.deliveries if d.status == "refused"]
    assert refused and refused[0].envelope.tamper == "duplicate"
    with pytest.raises(PropertyFailure) as info:
        assert_tampering_contained(spec, sc, run)
    assert "but its state changed" in _verdict(info.value)
    # the honest server, same fault: contained
    honest = run_scenario(secagg_spec(), sc, faults=faults)
    assert_tampering_contained(secagg_spec(), sc, honest)


# -- the quick profile finds the weakness SECURITY.md names -----------------------------------
def test_the_quick_profile_finds_the_split_view_weakness() -> None:
    with pytest.raises(PropertyFailure) as info:
        check_no_double_reveal(secagg_spec(), settings=profiles.quick)
    assert type(info.value.case).__name__ == "SplitViewServer"
