"""The testing kit's own parts: schedules and the threshold rule, strategies,
the network and its faults, state snapshots, adversaries, profiles."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import protocols.testing as kit
from protocols.secagg import SecAggConfig
from protocols.testing import (
    BitFlip,
    BothSharesServer,
    Delay,
    Drop,
    DropoutSchedule,
    Duplicate,
    FaultScript,
    Network,
    Params,
    PropertyFailure,
    ProtocolSpec,
    Reorder,
    Replay,
    Scenario,
    WrongLengthClient,
    WrongRoundClient,
    check_tamper_property,
    observable_state,
    paillier_params,
    paillier_spec,
    profiles,
    run_scenario,
    secagg_params,
    secagg_spec,
    strategies,
)
from protocols.testing.checks import assert_run_outcome, assert_tampering_contained
from secagg import paillier
from secagg.errors import AbortError, IntegrityError, ParameterError, ProtocolError

SPEC = secagg_spec()
ROUNDS = SPEC.rounds


def scenario(n: int = 3, t: int = 2, dropouts: dict[str, list[int]] | None = None,
             spec: ProtocolSpec = SPEC, **kw: Any) -> Scenario:
    return Scenario({u: np.array([0.5, -0.25 * u]) for u in range(1, n + 1)},
                    secagg_params(n, t, **kw), DropoutSchedule.of(spec.rounds, dropouts),
                    seed=3)


# -- schedules and the threshold rule -----------------------------------------------------
def test_dropout_schedule() -> None:
    s = DropoutSchedule.of(ROUNDS, {"share_keys": [2], "unmask": [3, 1], "advertise": []})
    assert s.as_dropouts() == {"share_keys": [2], "unmask": [1, 3]}
    assert s.gone_by("advertise") == frozenset()
    assert s.gone_by("masked_input") == {2}
    assert s.present([1, 2, 3, 4], "unmask") == {4}
    assert s.total == 3
    assert repr(s) == "dropouts={'share_keys': [2], 'unmask': [1, 3]}"
    assert repr(DropoutSchedule(ROUNDS)) == "no dropouts"
    with pytest.raises(ParameterError):
        DropoutSchedule.of(ROUNDS, {"nope": [1]})
    with pytest.raises(ParameterError):
        s.gone_by("nope")


def test_threshold_rule() -> None:
    assert SPEC.outcome(scenario(3, 2)) == "completes"
    assert SPEC.outcome(scenario(3, 2, {"unmask": [1]})) == "completes"
    assert SPEC.outcome(scenario(3, 2, {"unmask": [1, 2]})) == "aborts"
    assert SPEC.included(scenario(3, 2, {"unmask": [1], "masked_input": [2]})) == {1, 3}
    # SecAgg+: up to k + 1 - t dropouts surely complete; more may go either way
    plus = secagg_spec(graph="harary", max_clients=8)
    sc = Scenario({u: np.zeros(1) for u in range(1, 9)}, secagg_params(8, 2, degree=2),
                  DropoutSchedule(plus.rounds))
    assert sc.params.tolerated == 1 and plus.outcome(sc) == "completes"
    two = Scenario(sc.inputs, sc.params, DropoutSchedule.of(plus.rounds, {"advertise": [1, 5]}))
    assert plus.outcome(two) == "either"
    custom = ProtocolSpec("x", SPEC.simulate, ROUNDS, rule=lambda sc: "aborts")
    assert custom.outcome(scenario()) == "aborts"
    with pytest.raises(ParameterError):
        ProtocolSpec("x", SPEC.simulate, ())
    with pytest.raises(ParameterError):
        ProtocolSpec("x", SPEC.simulate, ROUNDS, input_round="nope")


def test_malicious_params_need_the_quorum() -> None:
    p = secagg_params(6, 2, mode="malicious")
    assert p.need("masked_input") == p.need("consistency") == 4 and p.need("advertise") == 2
    assert "t=2" in repr(p) and "malicious" in repr(p)
    assert "needs=3" in repr(Params(needs=3, options={"k": [1, 2]}))


# -- strategies ---------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.data())
def test_schedules_have_the_outcome_asked_for(data: st.DataObject) -> None:
    n = data.draw(st.integers(2, 6), label="n")
    p = data.draw(strategies.secagg_parameters(n, graph="complete"), label="params")
    ids = tuple(range(1, n + 1))
    for outcome in ("completes", "aborts"):
        sched = data.draw(strategies.dropout_schedules(ROUNDS, ids, p, outcome=outcome))
        sc = Scenario({u: np.zeros(1) for u in ids}, p, sched)
        assert SPEC.outcome(sc) == outcome


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_drawn_parameters_are_valid(data: st.DataObject) -> None:
    n = data.draw(st.integers(4, 8))
    mode = data.draw(st.sampled_from(["semi-honest", "malicious"]))
    p = data.draw(strategies.secagg_parameters(n, mode=mode))
    o = p.options
    SecAggConfig.create(range(1, n + 1), 3, threshold=o["threshold"], degree=o["neighbors"],
                        mode=o["mode"], modulus_bits=o["encoder"].modulus_bits,
                        registry=None if mode == "semi-honest" else _registry(n))
    assert o["encoder"].max_summands == n


def _registry(n: int) -> dict[int, Any]:
    from secagg.sign import SigningKey

    return {u: SigningKey.generate().verify_key() for u in range(1, n + 1)}


@settings(max_examples=40, deadline=None)
@given(strategies.input_vectors(3, clip=4.0, scale=2.0**10))
def test_input_vectors(x: np.ndarray[Any, Any]) -> None:
    assert x.shape == (3,) and x.dtype in (np.float64, np.float32, np.float16)
    assert np.all(np.abs(x.astype(np.float64)) <= 8.0)


def test_edge_values_cover_the_encoders_range() -> None:
    edges = strategies.edge_values(1.0, 2.0**8)
    for v in (0.0, 1.0, -1.0, 2.0, 0.5 / 2**8, 1.0 - 0.5 / 2**8):
        assert v in edges
    assert float(np.nextafter(1.0, 2.0)) in edges  # just past the clip
    assert len(strategies.edge_values(1.0)) < len(edges)  # the quanta need a scale


@settings(max_examples=30, deadline=None)
@given(strategies.invalid_inputs((1, 2, 3), 2))
def test_invalid_inputs_are_invalid(inputs: dict[int, np.ndarray[Any, Any]]) -> None:
    bad = [x for x in inputs.values() if x.shape != (2,) or x.dtype.kind != "f"
           or not np.all(np.isfinite(x))]
    assert len(bad) == 1


@settings(max_examples=30, deadline=None)
@given(strategies.fault_scripts(per_round={"advertise": 2, "unmask": 1}, min_faults=1))
def test_fault_scripts_strike_existing_slots(script: FaultScript) -> None:
    assert 1 <= len(script.faults) <= 3
    assert all(k in {("advertise", 0), ("advertise", 1), ("unmask", 0)} for k in script.faults)


def test_strategy_arguments_are_checked() -> None:
    with pytest.raises(ParameterError):
        strategies.faults(["teleport"])
    with pytest.raises(ParameterError):
        strategies.secagg_parameters(3, graph="harary")
    with pytest.raises(ParameterError):
        strategies.paillier_parameters(3, [])
    with pytest.raises(ParameterError):
        strategies.server_adversaries(scenario(), kinds=["nope"])


# -- the network and its faults ---------------------------------------------------------
def run(faults: dict[tuple[str, int], Any], sc: Scenario | None = None) -> kit.NetworkRun:
    sc = sc or scenario()
    r = run_scenario(SPEC, sc, faults=FaultScript(faults))
    assert_tampering_contained(SPEC, sc, r)
    return r


def tampered(r: kit.NetworkRun, kind: str) -> list[kit.Delivery]:
    return [d for d in r.deliveries if d.envelope.tamper == kind]


def test_a_clean_run_sums_everyone() -> None:
    r = run({})
    assert r.result is not None and r.result.included == {1, 2, 3}
    np.testing.assert_allclose(r.result.sum, [1.5, -1.5], atol=1e-6)
    assert all(d.status == "accepted" for d in r.deliveries)


def test_duplicate_is_refused_and_changes_nothing() -> None:
    r = run({("advertise", 0): Duplicate()})
    (d,) = tampered(r, "duplicate")
    assert d.status == "refused" and isinstance(d.error, ProtocolError)
    assert "duplicate" in str(d.error) and d.state_changed is False
    assert r.result is not None and r.result.included == {1, 2, 3}


def test_bit_flip_copy_is_refused_then_the_original_accepted() -> None:
    r = run({("share_keys", 0): BitFlip(bit=0, from_start=True)})
    (d,) = tampered(r, "bitflip")
    assert d.status == "refused" and "magic" in str(d.error)
    nxt = r.deliveries[r.deliveries.index(d) + 1]
    assert nxt.envelope.data != d.envelope.data and nxt.status == "accepted"
    assert r.result is not None and r.result.included == {1, 2, 3}


def test_bit_flip_in_a_sealed_share_fails_its_tag() -> None:
    r = run({("masked_input", 0): BitFlip(bit=0)})  # the last bit: an AEAD tag
    (d,) = tampered(r, "bitflip")
    assert isinstance(d.error, IntegrityError) and d.state_changed is False


def test_flips_in_unprotected_fields_are_not_applied() -> None:
    # the last bit of a masked vector: not authenticated by the protocol
    r = run({("masked_input", 3): BitFlip(bit=0)})
    assert not tampered(r, "bitflip") and "unprotected ['vector']" in r.skipped[0]


def test_replay_of_an_old_message_is_refused() -> None:
    r = run({("masked_input", 0): Replay(back=0)})
    (d,) = tampered(r, "replay")
    assert d.status == "refused" and isinstance(d.error, ProtocolError)


def test_delayed_message_arrives_late_and_its_sender_drops_out() -> None:
    r = run({("masked_input", 3): Delay()})  # client 1's masked input
    (d,) = tampered(r, "late")
    assert d.status == "refused" and "late" in str(d.error)
    assert r.result is not None and r.result.included == {2, 3}
    # a late server message is accepted by the client, whose reply is refused
    r = run({("share_keys", 0): Delay()})
    (d,) = tampered(r, "late")
    assert d.status == "accepted" and d.replies
    reply = r.delivery_of(d.replies[0])
    assert reply is not None and reply.status == "refused"
    assert r.result is not None and r.result.included == {2, 3}


def test_drop_and_reorder() -> None:
    r = run({("unmask", 0): Drop()})
    assert r.result is not None and r.result.included == {1, 2, 3}  # t = 2 shares suffice
    r = run({("advertise", 0): Reorder(skip=2)})
    assert [d.envelope.sender for d in r.deliveries[:3]] == [2, 3, 1]
    assert r.result is not None and r.result.included == {1, 2, 3}


def test_dropouts_on_the_network() -> None:
    sc = scenario(4, 2, {"share_keys": [4], "masked_input": [2]})
    r = run({}, sc)
    assert r.result is not None and r.result.included == {1, 3}
    assert_run_outcome(SPEC, sc, r, strict=True)
    assert any(d.status == "vanished" for d in r.deliveries)
    sc = scenario(3, 3, {"unmask": [1]})
    r = run({}, sc)
    assert r.aborted and r.result is None
    assert_run_outcome(SPEC, sc, r, strict=True)


def test_observable_state() -> None:
    class Party:
        def __init__(self) -> None:
            self.state, self._held = "init", {1: (b"a", b"b")}
            self._acc = np.zeros(2, np.uint32)

    p = Party()
    before = observable_state(p)
    assert observable_state(p) == before
    p._acc[0] += 1
    assert observable_state(p) != before
    p._acc[0] -= 1
    p._held[2] = (b"c", b"d")
    assert observable_state(p) != before


# -- adversaries ---------------------------------------------------------------------------
def test_both_shares_server_is_refused() -> None:
    sc = scenario(3, 2, {"masked_input": [3]})
    r = run_scenario(SPEC, sc, adversary=BothSharesServer(victim=2))
    refusals = [d for d in r.deliveries if d.envelope.round == "unmask"
                and d.envelope.receiver != "server"]
    assert refusals and all(d.status == "refused" and "both shares" in str(d.error)
                            for d in refusals)
    assert_tampering_contained(SPEC, sc, r)
    r = run_scenario(SPEC, sc, adversary=BothSharesServer(how="second_request"))
    seconds = [d for d in r.deliveries if d.envelope.round == "unmask" and d.status == "refused"
               and d.envelope.receiver != "server"]
    assert seconds and all("closed" in str(d.error) for d in seconds)


def test_misbehaving_clients_are_refused_and_the_rest_summed() -> None:
    sc = scenario(4, 2)
    r = run_scenario(SPEC, sc, adversary=WrongLengthClient(client=2))
    forged = [d for d in r.deliveries if d.envelope.tamper == "forged"]
    assert forged and all("length" in str(d.error) for d in forged)
    assert r.result is not None and r.result.included == {1, 3, 4}
    assert_run_outcome(SPEC, sc, r, strict=False)
    for when in ("stale", "early"):
        r = run_scenario(SPEC, sc, adversary=WrongRoundClient(client=3, when=when))
        forged = [d for d in r.deliveries if d.envelope.tamper == "forged"]
        assert forged and all(d.status == "refused" for d in forged)
        assert_tampering_contained(SPEC, sc, r)
        assert r.result is not None and r.result.included == {1, 2, 3, 4}


def test_paillier_wiring_aborts_when_nothing_can_happen() -> None:
    kp = paillier.generate_keypair(256, insecure_allow_small_key_for_tests=True)
    for layout in ("key-holder", "cross-silo"):
        spec = paillier_spec([kp], trust=layout, insecure_allow_small_key_for_tests=True)
        p = paillier_params(2, kp, trust=layout, insecure_allow_small_key_for_tests=True)
        inputs = {1: np.array([0.5]), 2: np.array([-0.25])}
        ok = run_scenario(spec, Scenario(inputs, p, DropoutSchedule(spec.rounds)))
        assert ok.result is not None
        np.testing.assert_allclose(ok.result.sum, [0.25], atol=1e-4)
        gone = Scenario(inputs, p, DropoutSchedule.of(spec.rounds, {"setup": [1, 2]}))
        r = run_scenario(spec, gone)
        assert r.aborted and r.result is None
        with pytest.raises(AbortError):
            spec.run(gone)


# -- the public surface -----------------------------------------------------------------------
def test_lazy_names_and_profiles() -> None:
    assert kit.profiles.quick.max_examples == 25 and kit.profiles.quick.deadline is None
    assert kit.strategies.scenarios is strategies.scenarios
    assert callable(kit.check_sum_property)
    with pytest.raises(AttributeError):
        kit.no_such_name
    assert profiles.capped(profiles.thorough, 7).max_examples == 7
    profiles.register("kit-test-")
    assert settings.get_profile("kit-test-thorough").max_examples == 500


def test_party_properties_need_a_wiring() -> None:
    spec = ProtocolSpec("no parties", SPEC.simulate, ROUNDS)
    with pytest.raises(TypeError, match="wiring"):
        check_tamper_property(spec)


def test_failures_read_well() -> None:
    sc = scenario(3, 2, {"masked_input": [2]})
    fail = PropertyFailure("p", "Proto", sc, "something broke", case=Duplicate())
    text = str(fail)
    assert text.splitlines()[0] == "Proto: property 'p' fails"
    assert "dropouts={'masked_input': [2]}" in text and "Duplicate()" in text
    assert isinstance(fail, AssertionError)
    assert "n=3, dimension=2" in repr(sc) and "float64[" in repr(sc)
    assert "Envelope(#" in repr(Network(SPEC.wiring(sc, None)).run().sent[0])  # type: ignore[misc]


def test_check_all_runs_every_applicable_property() -> None:
    from protocols.testing import check_all

    check_all(secagg_spec(mode="malicious", max_clients=4),
              settings=profiles.capped(profiles.quick, 4), reveal=True)


def test_the_kit_imports_without_hypothesis() -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['hypothesis'] = None\n"
            "import protocols.testing as kit\n"
            "kit.secagg_spec()\n"
            "try:\n    kit.check_sum_property\nexcept ImportError as e:\n"
            "    assert 'pip install hypothesis' in str(e)\nelse:\n    raise SystemExit(1)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
