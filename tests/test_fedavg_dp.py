"""FedAvg with local DP-SGD and with central client-level DP."""

import json

import numpy as np
import pytest

from dp import accounting
from protocols.fedavg import FedAvgConfig, run_fedavg
from protocols.fedavg.dp_central import make_client_level_dp
from protocols.fedavg.dp_local import DPClient, make_dp_trainers
from protocols.fedavg.pipeline import build_pipeline
from protocols.fedavg.records import TIME_PARTS
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
    dp = make_client_level_dp(cfg)
    for r in range(1, 4):
        dp.begin_round(r)
        dp.end_round()
    with pytest.raises(PrivacyBudgetExceeded):
        dp.begin_round(4)


@pytest.mark.parametrize("acc", ["rdp", "prv"])
def test_central_dp_calibrates_and_accounts_with_the_configured_accountant(acc):
    cfg = _cfg(aggregation="plain", dp="central", target_epsilon=2.0, num_clients=10,
               clients_per_round=4, rounds=3, accountant=acc)
    dp = make_client_level_dp(cfg)
    assert dp.ledger.accountant == acc
    z = dp.noise_multiplier
    assert z == pytest.approx(accounting.noise_multiplier(2.0, 0.4, 3, cfg.delta, accountant=acc))
    res = run_fedavg(cfg, write=False)
    assert {r.accountant for r in res.rounds} == {acc}
    want = accounting.epsilon(0.4, z, 3, cfg.delta, unit="client", accountant=acc).epsilon
    assert res.rounds[-1].epsilon == pytest.approx(want, rel=1e-9) and want <= 2.0 + 1e-9


def test_central_dp_reports_exactly_what_the_accountant_says():
    # A driver that forgot to charge a round would report less than this.
    cfg = _cfg(aggregation="plain", dp="central", target_epsilon=None, noise_multiplier=1.5,
               num_clients=10, clients_per_round=4, rounds=3)
    res = run_fedavg(cfg, write=False)
    for r in res.rounds:
        want = accounting.epsilon(0.4, 1.5, r.round, cfg.delta, unit="client").epsilon
        assert r.epsilon == pytest.approx(want, rel=1e-9), (r.round, r.epsilon, want)
        assert r.noise_std == pytest.approx(1.5 * cfg.clip_norm)
        assert r.time_privacy > 0  # charging, evaluating the accountant, the noise
        parts = sum(getattr(r, f"time_{p}") for p in TIME_PARTS)
        assert parts == pytest.approx(r.time_round, rel=1e-9, abs=1e-9)


def test_central_dp_clips_and_noises():
    cfg = _cfg(dp="central", target_epsilon=None, noise_multiplier=2.0, clip_norm=0.5,
               num_clients=10, clients_per_round=5, aggregation="plain")
    dp = make_client_level_dp(cfg)
    pipe = build_pipeline(cfg, 100, dp)
    pipe.begin_round(1)
    v = pipe.client(np.full(100, 1.0, dtype=np.float32), 50)
    assert abs(float(np.linalg.norm(v[:100])) - 0.5) < 1e-5
    dp.end_round()
    means = []
    for r in range(2, 4):
        pipe.begin_round(r)
        means.append(pipe.aggregate({}, frozenset(), r))  # nobody: an aborted sum, noise only
    # noise std on the sum is z*C = 1.0; divided by the expected 5 clients: 0.2
    assert abs(np.stack(means).std() - 0.2) < 0.03


def test_central_dp_does_not_publish_participation(tmp_path):
    cfg = _cfg(aggregation="secagg", dp="central", target_epsilon=None, noise_multiplier=1.0,
               num_clients=8, clients_per_round=4, rounds=2, dropout_rate=0.3,
               out_dir=str(tmp_path))
    res = run_fedavg(cfg)
    for r in res.rounds:
        assert r.sampled is None and r.included is None and r.dropped is None
        assert r.aborted is None and r.clipped_clients is None and r.clipped_values is None
    text = (res.run_dir / "metrics.json").read_text()
    data = json.loads(text)
    assert all(x["sampled"] is None and x["aborted"] is None for x in data["rounds"])
    assert data["summary"]["aborted_rounds"] is None


def test_adaptive_clipping_is_reachable_from_the_config():
    cfg = _cfg(aggregation="plain", dp="central", target_epsilon=None, noise_multiplier=1.0,
               num_clients=10, clients_per_round=10, rounds=3, adaptive_clipping=True,
               clip_norm=0.01, clip_count_stddev=1.0, target_quantile=0.5,
               clip_learning_rate=0.5)
    res = run_fedavg(cfg, write=False)
    norms = [r.clip_norm for r in res.rounds]
    # every update is far above a 0.01 norm: the clip norm must grow round after round
    assert norms[0] == pytest.approx(0.01) and norms[0] < norms[1] < norms[2]


def test_the_clipped_flag_travels_inside_the_secure_sum():
    # the server learns how many updates were clipped only from the sum's counts
    cfg = _cfg(aggregation="secagg", dp="central", target_epsilon=None, noise_multiplier=1.0,
               num_clients=6, clients_per_round=6, clip_norm=1.0)
    dp = make_client_level_dp(cfg)
    pipe = build_pipeline(cfg, 10, dp)
    pipe.begin_round(1)
    big, small = np.full(10, 5.0, np.float32), np.full(10, 0.01, np.float32)
    inputs = {c: pipe.client(big if c < 4 else small, 1) for c in range(6)}
    pipe.aggregate(inputs, frozenset({0}), 1)  # client 0 (clipped) drops out
    m = pipe.measurements()
    assert m["clip"]["clip_norm"] == 1.0
    assert pipe.secure_sum.measurements()["clients"] == 5
    clip_step = pipe.client_steps[0]
    assert clip_step._clipped == 3  # 1, 2, 3: not the dropped client 0


def test_local_dp_releases_no_example_count():
    # Neighbouring datasets (one more example at a client) must not change what
    # the server unmasks beyond the DP-SGD output itself: the released vector
    # carries no count, and the mean is over clients.
    cfg = _cfg(aggregation="secagg", dp="local")
    pipe = build_pipeline(cfg, 8)
    delta = np.linspace(-0.1, 0.1, 8).astype(np.float32)
    assert np.array_equal(pipe.client(delta, 100), pipe.client(delta, 101))
    pipe.begin_round(1)
    a = pipe.aggregate({c: pipe.client(delta, 100 + c) for c in range(3)}, frozenset(), 1)
    b = pipe.aggregate({c: pipe.client(delta, 200) for c in range(3)}, frozenset(), 2)
    assert np.array_equal(a, b)


def test_config_errors_name_the_key_for_dp_settings():
    from secagg.errors import ParameterError

    cfg = _cfg(dp="central", target_epsilon=None, noise_multiplier=3.0, adaptive_clipping=True)
    with pytest.raises(ParameterError, match=r"'clip_count_stddev' is 0\.3 .*exceed 1\.5"):
        make_client_level_dp(cfg)
    task = make_task("digits", 6, split="dirichlet", alpha=0.5, seed=1)
    with pytest.raises(ParameterError, match=r"'delta' is 0\.05.*1/N"):
        make_dp_trainers(_cfg(dp="local", delta=0.05), task)
