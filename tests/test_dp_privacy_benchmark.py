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
