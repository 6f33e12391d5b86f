"""FedAvg with local DP-SGD and with central client-level DP."""

import numpy as np
import pytest

from protocols.fedavg import FedAvgConfig, run_fedavg
from protocols.fedavg.dp_central import CentralDP
from protocols.fedavg.dp_local import DPClient, make_dp_trainers
from protocols.fedavg.tasks import make_task
from secagg.errors import PrivacyBudgetExceeded


def _cfg(**kw):
    base = dict(num_clients=6, clients_per_round=6, rounds=2, dropout_rate=0.0, progress=False,
                seed=1)
    base.update(kw)
    return FedAvgConfig(**base)


def test_local_dp_run_records_epsilon_and_stays_within_target():
    res = run_fedavg(_cfg(aggregation="secagg+", dp="local", target_epsilon=4.0), write=False)
    eps = [r.epsilon for r in res.rounds]
    assert eps[0] < eps[1] <= 4.0 + 1e-9
    assert res.rounds[-1].accountant == "pld" and res.rounds[-1].privacy_unit == "example"
    assert res.rounds[-1].test_accuracy is not None


def test_local_dp_clients_share_one_sampling_rate_and_refuse_past_budget():
    cfg = _cfg(dp="local", target_epsilon=2.0, rounds=2)
    task = make_task("digits", 6, split="dirichlet", alpha=0.5, seed=1)
    clients = make_dp_trainers(cfg, task)
    assert len({c.trainer.sample_rate for c in clients}) == 1
    c = clients[0]
    c.train(cfg.local_epochs, round=1)
    c.train(cfg.local_epochs, round=2)
    before = c.params.copy()
    with pytest.raises(PrivacyBudgetExceeded):
        c.train(cfg.local_epochs, round=3)
    assert np.array_equal(before, c.params)  # refused before touching data or model
    assert c.epsilon(cfg.delta) <= 2.0


def test_driver_lets_a_client_out_of_budget_sit_the_round_out(monkeypatch):
    calls = {"n": 0}
    original = DPClient.train

    def train(self, epochs, round=None):
        calls["n"] += 1
        if self is first[0]:
            raise PrivacyBudgetExceeded("client 0 is out of budget")
        return original(self, epochs, round)

    first = []
    import protocols.fedavg.dp_local as dl

    orig_make = dl.make_dp_trainers

    def make(cfg, task):
        out = orig_make(cfg, task)
        first.append(out[0])
        return out

    monkeypatch.setattr(dl, "make_dp_trainers", make)
    monkeypatch.setattr(DPClient, "train", train)
    res = run_fedavg(_cfg(aggregation="plain", dp="local", noise_multiplier=1.0,
                          target_epsilon=None, rounds=1), write=False)
    r = res.rounds[0]
    assert r.refused == [0] and 0 not in r.included and 0 not in r.dropped
    assert sorted(r.included) == [1, 2, 3, 4, 5]


def test_central_dp_run_and_budget():
    cfg = _cfg(aggregation="secagg", dp="central", target_epsilon=3.0, num_clients=8,
               clients_per_round=8, rounds=3)
    res = run_fedavg(cfg, write=False)
    eps = [r.epsilon for r in res.rounds]
    assert eps == sorted(eps) and eps[-1] <= 3.0 + 1e-9
    assert res.rounds[0].privacy_unit == "client" and res.rounds[0].accountant == "pld"
    central = CentralDP(cfg)
    for r in range(1, 4):
        central.begin_round(r)
    with pytest.raises(PrivacyBudgetExceeded):
        central.begin_round(4)


def test_central_dp_clips_and_noises():
    cfg = _cfg(dp="central", target_epsilon=None, noise_multiplier=2.0, clip_norm=0.5,
               num_clients=10, clients_per_round=5)
    central = CentralDP(cfg)
    v = central.client_step(np.full(100, 1.0, dtype=np.float32))
    assert abs(float(np.linalg.norm(v)) - 0.5) < 1e-5
    means = np.stack([central.server_step(np.zeros(20000)) for _ in range(2)])
    # noise std on the sum is z*C = 1.0; divided by the expected 5 clients: 0.2
    assert abs(means.std() - 0.2) < 0.01
