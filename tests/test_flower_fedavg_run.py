"""FedAvg over Flower (fake Grid): the run directory, the privacy figures of the
round records, and client-level central DP."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest

pytest.importorskip("flwr")
pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from flower_fedavg_grid import IDS, grid
from flwr.clientapp import ClientApp

from dp.ledger import PrivacyLedger
from protocols.flower import secure_train
from protocols.flower.dp_state import LEDGER_KEY
from protocols.flower.fedavg import run_fedavg, summarize
from protocols.flower.testing import FakeGrid, Fault
from secagg.errors import ParameterError


def base(**extra):
    return {"task": "linear-regression", "num-rounds": 2, "num-nodes": len(IDS),
            "round-timeout": 1.0, "train-timeout": 30.0, "lr": 0.05, **extra}


# ------------------------------------------------------------------ run directory

def test_run_directory_has_the_in_process_layout(tmp_path):
    import torch

    cfg = base(**{"run-dir": str(tmp_path / "run")})
    g = grid(cfg, [Fault(IDS[1], "masked_input", "drop")])
    records = run_fedavg(g, cfg)
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} == {"metrics.json", "model.pt", "loss.png",
                                              "time_split.png"}
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["engine"] == "flower"
    assert saved["config"]["dp"] == "none" and saved["config"]["num-rounds"] == 2
    # the records round-trip exactly
    assert saved["rounds"] == [json.loads(json.dumps(asdict(r))) for r in records]
    s = saved["summary"]
    assert s == json.loads(json.dumps(summarize(records)))
    assert s["rounds"] == 2 and s["aborted_rounds"] == 0
    assert s["final_test_loss"] == records[-1].test_loss and s["epsilon"] is None
    assert s["round_trips"] == sum(r.round_trips for r in records) == 6
    assert s["bytes_up_per_node_per_round"] > 0
    assert s["time"]["round"] == pytest.approx(sum(r.time_round for r in records))
    # the time parts are exclusive and add up to the rounds' wall time
    parts = {k: v for k, v in s["time"].items() if k != "round"}
    assert "evaluation" in parts and "other" in parts
    assert any(k.startswith("round trip: ") for k in parts)
    assert sum(parts.values()) == pytest.approx(s["time"]["round"], rel=1e-9)
    # model.pt is the global model
    state = torch.load(run / "model.pt", weights_only=True)
    assert set(state) and all(isinstance(v, torch.Tensor) for v in state.values())
    assert all(r.epsilon is None and r.privacy_unit is None for r in records)


def test_no_run_directory_without_run_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_fedavg(grid(base(**{"num-rounds": 1})), base(**{"num-rounds": 1}))
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------- local DP figures

def _node_epsilon(g: FakeGrid, node: int) -> float:
    blob = g.saved_state(node).config_records[LEDGER_KEY]["ledger"]
    led = PrivacyLedger.from_dict(json.loads(blob[37:])["ledger"])
    return float(led.spent().epsilon)


def test_local_dp_record_is_every_node_ledger_figure(tmp_path):
    cfg = base(dp="local", **{"target-epsilon": 4.0, "batch-size": 16,
                              "run-dir": str(tmp_path)})
    g = grid(cfg)
    records = run_fedavg(g, cfg)
    assert all(not r.aborted for r in records)
    eps = [r.epsilon for r in records]
    assert 0 < eps[0] < eps[1] <= 4.0
    # after the last round, the server's figure is exactly what every node's ledger holds
    for n in IDS:
        assert _node_epsilon(g, n) == pytest.approx(eps[-1], rel=1e-9)
    assert records[-1].privacy_unit == "example" and records[-1].accountant == "pld"
    assert "against the server" in (records[-1].privacy_guarantee or "")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["summary"]["epsilon"] == eps[-1]
    assert (tmp_path / "loss.png").exists()


def test_local_dp_record_stops_growing_when_nodes_refuse():
    from dp.accounting import epsilon
    from protocols.flower.fedavg import _task, local_dp_schedule

    sigma = 1.5
    cfg = base(dp="local", **{"num-rounds": 3, "noise-multiplier": sigma, "batch-size": 16})
    rate, steps, delta = local_dp_schedule(cfg, _task(cfg, len(IDS)))
    e1, e2 = (epsilon(rate, sigma, k * steps, delta).epsilon for k in (1, 2))
    cfg["epsilon-budget"] = (e1 + e2) / 2  # one round fits, two do not
    g = grid(cfg)
    records = run_fedavg(g, cfg)
    assert [r.aborted for r in records] == [False, True, True]
    assert [r.epsilon for r in records] == pytest.approx([e1, e1, e1])
    for n in IDS:
        assert _node_epsilon(g, n) == pytest.approx(e1, rel=1e-9)


# ------------------------------------------------------------------- central DP

def test_central_dp_spends_at_most_the_target_and_adds_noise(tmp_path):
    target = 3.0
    cfg = base(dp="central", **{"target-epsilon": target, "delta": 1e-3, "clip-norm": 0.5,
                                "run-dir": str(tmp_path / "central")})
    records = run_fedavg(grid(cfg), cfg)
    assert all(not r.aborted and set(r.included) == set(IDS) for r in records)
    eps = [r.epsilon for r in records]
    assert 0 < eps[0] < eps[1] <= target
    assert eps[1] > 0.9 * target  # calibrated for num-rounds rounds, not far below
    last = records[-1]
    assert last.privacy_unit == "client" and last.accountant == "pld"
    assert last.noise_std is not None and last.noise_std > 0
    assert "NOT against the ServerApp" in (last.privacy_guarantee or "")
    plain_cfg = base(**{"run-dir": str(tmp_path / "plain")})
    run_fedavg(grid(plain_cfg), plain_cfg)
    # same seed, same data: only the clipping and the noise differ
    import torch

    a = torch.load(tmp_path / "central" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "plain" / "model.pt", weights_only=True)
    assert any(not torch.equal(a[k], b[k]) for k in a)
    saved = json.loads((tmp_path / "central" / "metrics.json").read_text())
    assert saved["summary"]["epsilon"] == eps[-1] <= target
    assert saved["summary"]["privacy_unit"] == "client"


def test_central_dp_accounts_with_the_run_configs_accountant():
    from dp import accounting

    cfg = base(dp="central", **{"target-epsilon": 3.0, "delta": 1e-3, "accountant": "rdp"})
    records = run_fedavg(grid(cfg), cfg)
    assert {r.accountant for r in records} == {"rdp"}
    z = accounting.noise_multiplier(3.0, 1.0, len(records), 1e-3, accountant="rdp")
    want = accounting.epsilon(1.0, z, len(records), 1e-3, unit="client", accountant="rdp")
    assert records[-1].epsilon == pytest.approx(want.epsilon, rel=1e-9)
    assert want.epsilon <= 3.0


def test_central_dp_step_is_the_mean_of_clipped_updates_over_the_nodes(monkeypatch, tmp_path):
    """With the noise patched out, the step is the unweighted mean of the nodes'
    clipped updates (divided by the number of nodes), the weight coordinate 0."""
    import torch

    import protocols.flower.fedavg as fa
    from dp.client_level import ClientLevelDP
    from protocols.fedavg.params import flatten_model

    monkeypatch.setattr(ClientLevelDP, "add_noise", lambda self, total: np.asarray(total))
    clip = 1e-3
    cfg = base(dp="central", **{"num-rounds": 1, "noise-multiplier": 1.0, "delta": 1e-3,
                                "clip-norm": clip, "run-dir": str(tmp_path)})
    seen: list = []
    real = fa.train_on_node

    def spy(msg, context):
        reply = real(msg, context)
        seen.append(reply.content["arrays"]["update"].numpy())
        return reply

    g = FakeGrid(lambda node: _app(spy), list(IDS), run_config=cfg,
                 node_config={n: {"partition-id": i, "num-partitions": len(IDS)}
                              for i, n in enumerate(IDS)})
    task = fa._task(cfg, len(IDS))
    torch.manual_seed(0)
    start = flatten_model(task.model_factory()).astype(np.float64)
    [rec] = run_fedavg(g, cfg)
    assert not rec.aborted and len(seen) == len(IDS)
    for v in seen:
        assert v[-1] == 0.0  # no weight travels under client-level DP
        assert np.linalg.norm(v[:-1]) <= clip * (1 + 1e-9)
    assert any(np.linalg.norm(v[:-1]) > 0.99 * clip for v in seen)  # clipping was active
    model = task.model_factory()
    model.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    got = flatten_model(model).astype(np.float64)
    expected = start + np.sum(seen, axis=0)[:-1] / len(IDS)
    # up to the fixed-point resolution of the secure sum
    assert np.allclose(got, expected, atol=1e-6)
    assert rec.noise_std == pytest.approx(clip)


def _app(train_fn) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg, context):
        return train_fn(msg, context)

    secure_train(app, train)
    return app


@pytest.mark.parametrize("extra, key", [
    ({"clip-norm": 0.0}, "clip-norm"),
    ({"clip-norm": -1.0}, "clip-norm"),
    ({"delta": 0.5}, "delta"),
    ({"target-epsilon": 0.0}, "target-epsilon"),
    ({"noise-multiplier": -1.0}, "noise-multiplier"),
    ({"clip-norm": "big"}, "clip-norm"),
    ({"accountant": "moments"}, "accountant"),
])
def test_central_dp_config_errors_name_the_key(extra, key):
    cfg = base(dp="central", **{"delta": 1e-3, **extra})
    g = grid(cfg)
    with pytest.raises(ParameterError, match=key):
        run_fedavg(g, cfg)
    assert g.log == []  # refused before anything is sent


def test_unknown_dp_mode_is_refused():
    with pytest.raises(ParameterError, match="central"):
        run_fedavg(grid(base(dp="distributed")), base(dp="distributed"))


def test_write_run_plots_accuracy_with_epsilon_beside_it(tmp_path):
    """A classification run with DP: accuracy.png (the epsilon panel beside it) and
    the time split whose parts add up to each round's wall time."""
    import torch

    from protocols.flower.fedavg import FlowerRound, _time_parts, write_run

    recs = [FlowerRound(round=r, test_loss=1.0 / r, test_accuracy=0.5 + 0.1 * r, nodes=3,
                        included=[1, 2, 3], dropped={}, aborted=False, round_trips=2,
                        time_round=2.0, time_rounds={"masked_input": 0.5, "unmask": 0.25},
                        bytes_up_per_node=10.0, bytes_down_per_node=20.0,
                        time_evaluation=0.25, epsilon=0.5 * r, accountant="pld",
                        privacy_unit="client", privacy_guarantee="g", noise_std=0.1)
            for r in (1, 2)]
    cfg = {"dp": "central", "target-epsilon": 1.0, "noise-multiplier": 0.0, "delta": 1e-3,
           "task": "digits", "protocol": "secagg+"}
    write_run(tmp_path, cfg, recs, torch.nn.Linear(2, 1))
    assert {p.name for p in tmp_path.iterdir()} == {"metrics.json", "model.pt",
                                                   "accuracy.png", "time_split.png"}
    assert _time_parts(recs[0]) == {"round trip: masked_input": 0.5,
                                    "round trip: unmask": 0.25, "evaluation": 0.25,
                                    "other": 1.0}
    s = json.loads((tmp_path / "metrics.json").read_text())["summary"]
    assert s["epsilon"] == 1.0 and s["final_test_accuracy"] == pytest.approx(0.7)
    assert s["time"]["other"] == 2.0 and s["round_trips"] == 4


@pytest.mark.slow
def test_central_dp_demo_over_real_flower_processes(tmp_path):
    """SuperLink + 2 SuperNodes (TLS, node auth), 2 FedAvg rounds with central DP:
    the run directory and the client-level epsilon (the fast versions above run
    the same code over the fake Grid)."""
    import io

    from protocols.flower.demo import run_demo

    records = run_demo(2, rounds=2, task="linear-regression", round_timeout=30.0,
                       out_dir=tmp_path, out=io.StringIO(),
                       extra_config={"dp": "central", "target-epsilon": 4.0, "delta": 1e-3})
    assert [r["aborted"] for r in records] == [False, False]
    assert 0 < records[0]["epsilon"] < records[1]["epsilon"] <= 4.0
    assert records[1]["privacy_unit"] == "client"
    assert {"metrics.json", "model.pt", "loss.png", "time_split.png"} <= {
        p.name for p in tmp_path.iterdir()}
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["engine"] == "flower" and saved["config"]["dp"] == "central"
    assert saved["summary"]["epsilon"] == records[1]["epsilon"]
