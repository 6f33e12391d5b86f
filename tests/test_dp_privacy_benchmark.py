"""benchmarks/privacy.py: data splits, one tiny run of each kind, outputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmarks import privacy


@pytest.fixture(scope="module")
def data():
    return privacy.load_data()


def test_split_is_stratified_80_20(data):
    assert len(data.y_train) == 1437 and len(data.y_test) == 360
    assert float(data.x_train.min()) >= -1.0 and float(data.x_train.max()) <= 1.0


@pytest.mark.parametrize("kind", ["iid", "dirichlet"])
def test_client_splits_partition_the_training_set(data, kind):
    y = data.y_train.numpy()
    parts = privacy.split_clients(y, kind, seed=0)
    assert len(parts) == privacy.N_CLIENTS
    allidx = np.concatenate(parts)
    assert sorted(allidx.tolist()) == list(range(len(y)))
    assert min(len(p) for p in parts) >= 10
    assert privacy.split_clients(y, kind, seed=0)[3].tolist() == parts[3].tolist()


def test_tiny_central_and_federated_runs(data):
    cfg = privacy.Config(sample_rate=1.0, lr=2.0, epochs=5, rounds=3, local_steps=1)
    c = privacy.run_central(data, 2.0, cfg, 0, "pld")
    assert 0.3 < c["accuracy"] <= 1.0 and c["epsilon"] <= 2.0
    assert c["guarantee"]["unit"] == "example" and c["guarantee"]["accountant"] == "pld"
    f = privacy.run_federated(data, 2.0, cfg, 0, "dirichlet", "pld")
    assert 0.0 < f["accuracy"] <= 1.0 and f["epsilon"] <= 2.0
    assert sum(f["client_sizes"]) == 1437
    plain = privacy.Config(sample_rate=0.2, lr=0.5, epochs=10, average_tail=0.0)
    base = privacy.run_central(data, math.inf, plain, 0, "pld")
    assert base["accuracy"] > 0.85 and math.isinf(base["epsilon"])


def test_every_epsilon_has_a_config():
    for eps in privacy.EPSILONS:
        assert eps in privacy.CENTRAL and eps in privacy.FEDERATED


@pytest.mark.slow
def test_quick_mode_writes_json_and_png(tmp_path):
    assert privacy.main(["--quick", "--out", str(tmp_path), "--skip-overhead"]) == 0
    data = json.loads((tmp_path / "privacy.json").read_text())
    assert data["accountant"] == "pld" and data["privacy_unit"] == "example"
    assert (tmp_path / "privacy.png").stat().st_size > 1000


def test_search_chooses_on_the_validation_split(monkeypatch):
    grid = {
        "centralized": [privacy.Config(sample_rate=1.0, lr=0.01, epochs=2),
                        privacy.Config(sample_rate=1.0, lr=2.0, epochs=5)],
        "federated": [privacy.Config(sample_rate=1.0, rounds=2, local_steps=1, lr=0.01),
                      privacy.Config(sample_rate=1.0, rounds=3, local_steps=1, lr=2.0)],
    }
    monkeypatch.setattr(privacy, "search_grid", lambda quick: grid)
    seen = []
    real = privacy.load_data
    monkeypatch.setattr(privacy, "load_data", lambda validation=False: (
        seen.append(validation), real(validation))[1])
    rows = privacy.search([2.0, math.inf], [0], "pld", quick=True)
    assert seen == [True]  # never the test split
    assert [r["setting"] for r in rows] == ["centralized", "federated"]
    for r in rows:
        assert r["config"]["lr"] == 2.0  # a learning rate of 0.01 barely moves the model
        assert 0.0 < r["validation_accuracy"] <= 1.0


def test_federated_runs_go_through_the_fedavg_driver(data, monkeypatch):
    import protocols.fedavg as fedavg

    calls = []
    real = fedavg.run_fedavg

    def spy(cfg, task=None, **kw):
        calls.append(cfg)
        return real(cfg, task, **kw)

    monkeypatch.setattr(fedavg, "run_fedavg", spy)
    cfg = privacy.Config(sample_rate=1.0, lr=2.0, rounds=2, local_steps=1)
    out = privacy.run_federated(data, 2.0, cfg, 0, "iid", "pld")
    assert len(calls) == 1 and calls[0].dp == "local" and calls[0].num_clients == 10
    assert out["epsilon"] <= 2.0 and out["guarantee"]["unit"] == "example"
