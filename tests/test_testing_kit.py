"""Our own protocols, property-tested with the public kit ``protocols.testing``.

SecAgg (complete graph), SecAgg+ (Harary graphs), both security modes, and
Paillier summation in both trust layouts, against every property of the kit.
The hypothesis profile of the suite applies (``ci`` by default; select
``thorough`` with ``HYPOTHESIS_PROFILE=thorough``); Paillier runs fewer
examples, with small test-only keys generated once per module.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st

from protocols.results import AggregationResult
from protocols.testing import (
    DropoutSchedule,
    PropertyFailure,
    ProtocolSpec,
    Scenario,
    SplitViewServer,
    check_abort_property,
    check_dropout_property,
    check_input_validation,
    check_no_double_reveal,
    check_sum_property,
    check_tamper_property,
    paillier_spec,
    profiles,
    run_scenario,
    secagg_params,
    secagg_spec,
    strategies,
)
from protocols.testing.checks import assert_no_double_reveal, assert_sum_matches
from secagg import paillier
from secagg.errors import AbortError, IntegrityError

SECAGG = secagg_spec()
SECAGG_PLUS = secagg_spec(graph="harary", max_clients=8)
MALICIOUS = secagg_spec(mode="malicious")
MALICIOUS_PLUS = secagg_spec(mode="malicious", graph="harary", max_clients=8)


def both_shares(sc: Scenario) -> st.SearchStrategy[Any]:
    """Only the server that asks for both shares (the semi-honest mode's threat)."""
    return strategies.server_adversaries(sc, kinds=["both_shares"])


# -- SecAgg and SecAgg+, simulator properties -------------------------------------------------
@pytest.mark.parametrize("spec", [SECAGG, SECAGG_PLUS, MALICIOUS], ids=lambda s: s.name)
def test_sum_equals_plain_sum_above_threshold(spec: ProtocolSpec) -> None:
    check_sum_property(spec)


@pytest.mark.parametrize("spec", [SECAGG, SECAGG_PLUS, MALICIOUS], ids=lambda s: s.name)
def test_aborts_with_no_output_below_threshold(spec: ProtocolSpec) -> None:
    check_abort_property(spec)


@pytest.mark.parametrize("spec", [SECAGG, SECAGG_PLUS, MALICIOUS], ids=lambda s: s.name)
def test_any_dropout_schedule_follows_the_threshold_rule(spec: ProtocolSpec) -> None:
    check_dropout_property(spec)


@pytest.mark.parametrize("spec", [SECAGG, MALICIOUS], ids=lambda s: s.name)
def test_invalid_inputs_are_refused(spec: ProtocolSpec) -> None:
    check_input_validation(spec)


def test_network_simulator_agrees_with_the_library_simulator() -> None:
    """The kit's wiring, run as a simulator, passes the same property: the
    party-level properties below test the same protocol as ``simulate``."""
    from protocols.secagg import SecAggServer

    check_sum_property(secagg_spec(server_class=SecAggServer))


# -- SecAgg and SecAgg+, party-level properties --------------------------------------------
@pytest.mark.parametrize("spec", [SECAGG, SECAGG_PLUS, MALICIOUS], ids=lambda s: s.name)
def test_tampered_messages_are_refused(spec: ProtocolSpec) -> None:
    check_tamper_property(spec)


@pytest.mark.parametrize("spec", [SECAGG, MALICIOUS], ids=lambda s: s.name)
def test_misbehaving_clients_are_refused(spec: ProtocolSpec) -> None:
    check_tamper_property(spec, adversaries=strategies.misbehaving_clients, max_faults=1)


@pytest.mark.parametrize("spec", [SECAGG, SECAGG_PLUS], ids=lambda s: s.name)
def test_semi_honest_clients_never_reveal_both_shares(spec: ProtocolSpec) -> None:
    check_no_double_reveal(spec, adversaries=both_shares)
    # no single client does so even under a server that lies about survivors
    check_no_double_reveal(spec, scope="party")


@pytest.mark.parametrize("spec", [MALICIOUS, MALICIOUS_PLUS], ids=lambda s: s.name)
def test_malicious_mode_never_reveals_both_masks(spec: ProtocolSpec) -> None:
    check_no_double_reveal(spec, outcome="any")


def test_semi_honest_mode_is_open_to_a_split_view_server() -> None:
    """Documented limitation: the semi-honest mode trusts the server to show
    every client the same survivor set. The kit finds the attack, and shrinks
    it to three clients and one lie."""
    with pytest.raises(PropertyFailure) as info:
        check_no_double_reveal(
            SECAGG, settings=profiles.quick,
            adversaries=lambda sc: strategies.server_adversaries(sc, kinds=["split_view"]))
    fail = info.value
    assert isinstance(fail.case, SplitViewServer)
    assert fail.scenario is not None and fail.scenario.n == 3
    assert "b-shares" in fail.detail and "s-shares" in fail.detail


# -- the split-view attack, step by step ---------------------------------------------------
def _scenario(spec: ProtocolSpec, n: int, t: int) -> Scenario:
    mode = "malicious" if "malicious" in spec.name else "semi-honest"
    return Scenario({u: np.full(2, 0.25 * u) for u in range(1, n + 1)},
                    secagg_params(n, t, mode=mode),  # type: ignore[arg-type]
                    DropoutSchedule(spec.rounds), seed=7)


def test_split_view_in_malicious_mode_ends_in_refusals() -> None:
    sc = _scenario(MALICIOUS, 6, 3)
    for adv in (SplitViewServer(1, frozenset({2, 3, 4}), "all"),
                SplitViewServer(1, frozenset({2, 3, 4, 5}), "all"),
                SplitViewServer(1, frozenset({2, 3, 4, 5}), "view")):
        run = run_scenario(MALICIOUS, sc, adversary=adv)
        assert_no_double_reveal(MALICIOUS, sc, run)
        refused = [d for d in run.deliveries if d.envelope.receiver in adv.group
                   and d.envelope.round == "unmask" and d.status == "refused"]
        if adv.signatures == "all":  # the others' signatures cover another set
            assert refused and all(isinstance(d.error, IntegrityError) for d in refused)
        assert run.result is None


def test_split_view_in_semi_honest_mode_leaks_both_masks() -> None:
    sc = _scenario(SECAGG, 4, 2)
    run = run_scenario(SECAGG, sc, adversary=SplitViewServer(1, frozenset({2})))
    assert_no_double_reveal(SECAGG, sc, run, scope="party")  # each client behaves
    with pytest.raises(PropertyFailure, match="both kinds of client 1"):
        assert_no_double_reveal(SECAGG, sc, run)  # but together they leak client 1


def test_out_of_range_input_is_not_refused_but_bounded() -> None:
    """Pairwise masks hide inputs, so a client past the clipping range cannot
    be refused (no range proofs): its value enters the sum, or the decoder
    detects the overflow. Clipping is the client's job (see DP)."""
    from protocols.testing import OutOfRangeClient

    sc = _scenario(SECAGG, 4, 2)
    # inputs 0.25, 0.75 and 1.0 of the others use 2 of the 4 * max_int headroom
    for factor, expect_overflow in ((1.5, False), (3.0, True)):
        adv = OutOfRangeClient(client=2, factor=factor)
        run = run_scenario(SECAGG, sc, adversary=adv)
        if expect_overflow:
            assert run.result is None and "EncodingError" in type(run.error).__name__
            continue
        assert run.result is not None
        wiring: Any = run.wiring
        bad = adv.bad_input(wiring).astype(np.int64)
        enc = wiring.encoder
        want = sum(enc.encode(np.asarray(sc.inputs[u])).view(np.int32).astype(np.int64)
                   for u in (1, 3, 4)) + bad
        np.testing.assert_array_equal(run.result.raw_sum.view(np.int32), want)


# -- Paillier summation --------------------------------------------------------------------
@pytest.fixture(scope="module")
def keypairs() -> list[tuple[Any, Any]]:
    return [paillier.generate_keypair(bits, insecure_allow_small_key_for_tests=True)
            for bits in (256, 512)]


# Paillier runs are slower: a third of the profile's examples (at least 10).
PAILLIER = profiles.capped(settings.default, max(10, settings.default.max_examples // 3))


@pytest.mark.parametrize("layout", ["key-holder", "cross-silo"])
def test_paillier_simulator_properties(keypairs: list[tuple[Any, Any]], layout: Any) -> None:
    spec = paillier_spec(keypairs, trust=layout, insecure_allow_small_key_for_tests=True)
    check_sum_property(spec, settings=PAILLIER)
    check_abort_property(spec, settings=PAILLIER)
    check_dropout_property(spec, settings=PAILLIER)
    check_input_validation(spec, settings=PAILLIER)


@pytest.mark.parametrize("layout", ["key-holder", "cross-silo"])
def test_paillier_tampering_and_misbehaving_clients(keypairs: list[tuple[Any, Any]],
                                                   layout: Any) -> None:
    spec = paillier_spec(keypairs, trust=layout, insecure_allow_small_key_for_tests=True)
    check_tamper_property(spec, settings=PAILLIER)
    check_tamper_property(spec, adversaries=strategies.misbehaving_clients, max_faults=1,
                          settings=PAILLIER)


# -- a user's own protocol, as in the README --------------------------------------------------
README_SNIPPET = '''
import numpy as np
from protocols.results import AggregationResult
from protocols.testing import ProtocolSpec, check_abort_property, check_sum_property, profiles
from secagg.errors import AbortError

def simulate(inputs, *, dropouts=None, seed=None):
    """A toy sum: clients that did not vanish in round "submit" send their clipped vector."""
    kept = frozenset(inputs) - set((dropouts or {}).get("submit", ()))
    if len(kept) < 3:
        raise AbortError(f"only {len(kept)} clients, need 3")
    total = sum(np.clip(np.asarray(inputs[u], np.float64), -1, 1) for u in kept)
    return AggregationResult(sum=total, included=kept, dropped=frozenset(inputs) - kept)

spec = ProtocolSpec("toy sum", simulate, rounds=("submit",), threshold=3, min_clients=3)
check_sum_property(spec, settings=profiles.quick)    # sum of the included clients
check_abort_property(spec, settings=profiles.quick)  # AbortError, no output, below 3
'''


def test_readme_snippet_runs() -> None:
    exec(compile(README_SNIPPET, "README snippet", "exec"), {"__name__": "readme"})


def test_user_protocol_results_are_checked_exactly() -> None:
    """``assert_sum_matches`` on a hand-made case: exact in the integer domain."""
    spec = secagg_spec()
    sc = _scenario(spec, 3, 2)
    result = spec.run(sc)
    assert_sum_matches(spec, sc, result)
    broken = AggregationResult(sum=result.sum, included=result.included,
                               dropped=result.dropped, raw_sum=result.raw_sum + 1)
    with pytest.raises(PropertyFailure, match="raw sum"):
        assert_sum_matches(spec, sc, broken)
    with pytest.raises(AbortError):
        spec.run(Scenario(sc.inputs, sc.params,
                          DropoutSchedule.of(spec.rounds, {"advertise": [1, 2]}), sc.seed))
