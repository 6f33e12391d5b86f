"""Local DP-SGD over Flower: the node's privacy ledger in ``context.state`` (fake Grid)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("flwr")
pytest.importorskip("torch")

from flower_fedavg_grid import IDS, app_for
from flwr.app import ConfigRecord, Context, RecordDict

from dp.ledger import PrivacyLedger
from protocols.flower.dp_state import (
    LEDGER_KEY,
    MAGIC,
    decode_ledger,
    encode_ledger,
    ledger_binding,
    load_ledger,
    save_ledger,
)
from protocols.flower.fedavg import _task, run_fedavg
from protocols.flower.testing import FakeGrid, Fault
from secagg.errors import IntegrityError, ParameterError, SecAggError


def _ledger(budget=20.0):
    led = PrivacyLedger(budget, 1e-5, population=200)
    led.charge(0.125, 1.1, 40, round=1)
    led.charge(0.125, 1.1, 40, round=2)
    return led


_LED = _ledger()


def _binding(led, node=5):
    return ledger_binding(node_id=node, run_id=7, sample_rate=0.125, noise_multiplier=1.1,
                          ledger=led)


def test_codec_round_trip_is_exact_and_canonical():
    led = _ledger()
    blob = encode_ledger(led, _binding(led))
    assert blob[:4] == MAGIC and blob[4] == 1
    back = decode_ledger(blob, _binding(led))
    assert back.to_dict() == led.to_dict()
    assert back.spent().epsilon == led.spent().epsilon
    assert encode_ledger(back, _binding(back)) == blob
    unlimited = PrivacyLedger(math.inf, 1e-5)
    assert decode_ledger(encode_ledger(unlimited, _binding(unlimited)),
                         _binding(unlimited)).epsilon_budget == math.inf


def test_codec_refuses_another_binding():
    led = _ledger()
    blob = encode_ledger(led, _binding(led))
    with pytest.raises(IntegrityError, match="bound to"):
        decode_ledger(blob, _binding(led, node=6))
    other = ledger_binding(node_id=5, run_id=7, sample_rate=0.125, noise_multiplier=1.2,
                           ledger=led)
    with pytest.raises(IntegrityError, match="bound to"):
        decode_ledger(blob, other)


def test_codec_refuses_wrong_version_digest_and_forms():
    import hashlib
    import json

    led = _ledger()
    b = _binding(led)
    blob = encode_ledger(led, b)
    with pytest.raises(IntegrityError, match="version"):
        decode_ledger(blob[:4] + b"\x02" + blob[5:], b)
    with pytest.raises(IntegrityError, match="magic"):
        decode_ledger(b"XDPL" + blob[4:], b)
    with pytest.raises(IntegrityError, match="digest"):
        decode_ledger(blob[:-2] + b"9}", b)

    def forge(body: bytes) -> bytes:
        head = MAGIC + b"\x01"
        return head + hashlib.sha256(head + body).digest() + body

    obj = json.loads(blob[37:])
    # a correct digest over a non-canonical body (spaces) is still refused
    with pytest.raises(IntegrityError, match="canonical"):
        decode_ledger(forge(json.dumps(obj, sort_keys=True).encode()), b)
    # an unknown field, a dropped entry field, a fractional step count
    extra = json.loads(json.dumps(obj))
    extra["ledger"]["note"] = 1
    with pytest.raises(SecAggError):
        decode_ledger(forge(json.dumps(extra, sort_keys=True, separators=(",", ":")).encode()),
                      b)
    frac = json.loads(json.dumps(obj))
    frac["ledger"]["entries"][0]["steps"] = 2.5
    with pytest.raises(ParameterError):
        decode_ledger(forge(json.dumps(frac, sort_keys=True, separators=(",", ":")).encode()),
                      b)
    nan = blob[37:].replace(b'"delta":1e-05', b'"delta":NaN', 1)
    with pytest.raises(IntegrityError):
        decode_ledger(forge(nan), b)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_codec_fuzz_any_change_is_refused(data):
    led = _LED
    b = _binding(led)
    blob = bytearray(encode_ledger(led, b))
    i = data.draw(st.integers(0, len(blob) - 1))
    blob[i] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(blob)))
    for bad in (bytes(blob), encode_ledger(led, b)[:cut] if cut < len(blob) else bytes(blob)):
        with pytest.raises(SecAggError):
            decode_ledger(bad, b)


def test_context_state_round_trip_and_tampered_state_is_refused():
    led = _ledger()
    ctx = Context(7, 5, {}, RecordDict(), {})
    assert load_ledger(ctx, _binding(led)) is None
    save_ledger(ctx, led, _binding(led))
    assert load_ledger(ctx, _binding(led)).to_dict() == led.to_dict()
    ctx.state[LEDGER_KEY] = ConfigRecord({"ledger": "not bytes"})
    with pytest.raises(IntegrityError):
        load_ledger(ctx, _binding(led))


# ----------------------------------------------------------------- FedAvg over the fake Grid

def _cfg(budget: float, sigma: float, rounds: int) -> dict:
    return {"task": "linear-regression", "num-rounds": rounds, "num-nodes": len(IDS),
            "round-timeout": 1.0, "train-timeout": 30.0, "lr": 0.05, "dp": "local",
            "noise-multiplier": sigma, "epsilon-budget": budget, "delta": 1e-5,
            "batch-size": 16}


def _in_process_refusal(cfg: dict, rounds: int) -> tuple[int, float]:
    """The round at which one long-lived trainer (as the in-process driver keeps
    it) refuses, and the per-round epsilon; the same rate and noise as the nodes."""
    from dp import LocalDPTrainer
    from protocols.flower.fedavg import _cfg as flower_cfg

    task = _task(cfg, len(IDS))
    sizes = [len(d) for d in task.client_datasets]
    rate = min(1.0, int(flower_cfg(cfg, "batch-size")) / float(np.median(sizes)))
    trainer = LocalDPTrainer(task.model_factory(), task.client_datasets[0], sample_rate=rate,
                             max_grad_norm=1.0, lr=0.05, loss_fn=task.loss_fn(),
                             noise_multiplier=cfg["noise-multiplier"],
                             epsilon_budget=cfg["epsilon-budget"], delta=1e-5)
    from secagg.errors import PrivacyBudgetExceeded

    for rnd in range(1, rounds + 1):
        try:
            trainer.train_round(1, round=rnd)
        except PrivacyBudgetExceeded:
            return rnd, trainer.epsilon()
    return rounds + 1, trainer.epsilon()


def _budget_between_rounds(k: int, sigma: float, cfg: dict) -> float:
    """An epsilon budget that k rounds fit and k + 1 do not."""
    from dp.accounting import steps_for_epochs
    from protocols.flower.fedavg import _cfg as flower_cfg

    task = _task(cfg, len(IDS))
    sizes = [len(d) for d in task.client_datasets]
    rate = min(1.0, int(flower_cfg(cfg, "batch-size")) / float(np.median(sizes)))
    led = PrivacyLedger(math.inf, 1e-5, population=len(task.client_datasets[0]))
    eps = []
    for _ in range(k + 1):
        led.charge(rate, sigma, steps_for_epochs(1, rate))
        eps.append(led.spent().epsilon)
    return (eps[k - 1] + eps[k]) / 2


@pytest.mark.parametrize("restart", [False, True])
def test_budget_refusal_round_matches_in_process_across_restarts(restart):
    sigma, rounds = 1.5, 4
    cfg = _cfg(0.0, sigma, rounds)
    cfg["epsilon-budget"] = _budget_between_rounds(2, sigma, cfg)
    refused_at, _ = _in_process_refusal(cfg, rounds)
    assert refused_at == 3
    # every node's ClientApp is rebuilt before every message of the input round
    # (its process restarted); only the serialized context.state survives
    faults = [Fault(n, "masked_input", "restart") for n in IDS] if restart else []
    g = FakeGrid(app_for, list(IDS), faults=faults, run_config=cfg,
                 node_config={n: {"partition-id": i, "num-partitions": len(IDS)}
                              for i, n in enumerate(IDS)})
    records = run_fedavg(g, cfg)
    assert [r.aborted for r in records] == [False, False, True, True]
    assert all(set(r.included) == set(IDS) for r in records[:2])
    assert "PrivacyBudgetExceeded" in records[2].dropped["*"]
    for n in IDS:
        state = g.saved_state(n)
        blob = state.config_records[LEDGER_KEY]["ledger"]
        led = PrivacyLedger.from_dict(__import__("json").loads(blob[37:])["ledger"])
        # two rounds charged, never the refused ones
        assert [e.round for e in led.entries] == [1, 2]
        assert led.spent().epsilon <= cfg["epsilon-budget"]


def test_a_node_that_lost_its_ledger_is_not_trusted_to_reset_silently():
    """A tampered ledger makes the node refuse to train (a dropout), never start afresh."""
    sigma = 1.5
    cfg = _cfg(0.0, sigma, 2)
    cfg["epsilon-budget"] = 100.0
    g = FakeGrid(app_for, list(IDS), run_config=cfg,
                 node_config={n: {"partition-id": i, "num-partitions": len(IDS)}
                              for i, n in enumerate(IDS)})
    first = run_fedavg(g, {**cfg, "num-rounds": 1})
    assert not first[0].aborted
    # corrupt node IDS[0]'s saved ledger
    from flwr.common.serde import recorddict_to_proto

    state = g.saved_state(IDS[0])
    blob = bytearray(state.config_records[LEDGER_KEY]["ledger"])
    blob[-3] ^= 1
    state[LEDGER_KEY] = ConfigRecord({"ledger": bytes(blob)})
    g._state[IDS[0]] = recorddict_to_proto(state).SerializeToString()
    second = run_fedavg(g, {**cfg, "num-rounds": 1})
    assert IDS[0] not in second[0].included
    assert "IntegrityError" in second[0].dropped[str(IDS[0])]


# ------------------------------------------------- Paillier: refused before any message is sent

@pytest.mark.parametrize("trust, words", [
    ("key-holder", ["key_holder", "auxiliary", "trust='threshold'"]),
    ("cross-silo", ["whole private key", "trust='threshold'"]),
])
def test_paillier_layouts_are_refused_before_anything_is_sent(trust, words):
    from protocols.flower import run_session
    from protocols.paillier_sum import PAILLIER_SUM

    g = FakeGrid(app_for, list(IDS))
    with pytest.raises(ParameterError) as info:
        run_session(g, PAILLIER_SUM, list(IDS), 4, round_timeout=1.0, trust=trust,
                    key_bits=512, insecure_allow_small_key_for_tests=True)
    for w in words:
        assert w in str(info.value)
    assert g.log == [] and g._queue == {}


@pytest.mark.slow
def test_local_dp_demo_over_real_flower_processes(tmp_path):
    """SuperLink + 2 SuperNodes (TLS, node auth), 2 FedAvg rounds with local DP-SGD:
    every node's ledger holds both rounds' charges (the fast version above runs
    the same code over the fake Grid)."""
    import io
    import json

    from protocols.flower.demo import run_demo

    records = run_demo(2, rounds=2, task="linear-regression", round_timeout=30.0,
                       out_dir=tmp_path, out=io.StringIO(),
                       extra_config={"dp": "local", "target-epsilon": 8.0})
    assert [r["aborted"] for r in records] == [False, False]
    assert all(len(r["included"]) == 2 for r in records)
    assert [r["round_trips"] for r in records] == [4, 2]  # round 2 pipelined into round 1
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["config"]["dp"] == "local"
