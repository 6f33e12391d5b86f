"""FedAvg driver pieces that need no secure aggregation: config, tasks, params,
plain runs and the run directory."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from protocols.fedavg import FedAvgConfig, Task, flatten_model, run_fedavg
from protocols.fedavg.aggregation import frac_bits_for
from protocols.fedavg.records import TIME_PARTS
from protocols.fedavg.tasks import digits_task, dirichlet_split, iid_split, linear_regression_task
from secagg.errors import ParameterError


def test_flatten_shares_memory_and_is_idempotent():
    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    before = torch.nn.utils.parameters_to_vector(m.parameters()).detach().numpy().copy()
    v = flatten_model(m)
    assert v.dtype == np.float32 and np.array_equal(v, before)
    v[:] = 0.5
    assert float(m[2].bias.detach()[0]) == 0.5
    opt = torch.optim.SGD(m.parameters(), lr=1.0)
    m(torch.ones(1, 3)).sum().backward()
    opt.step()
    assert not np.all(v == 0.5)  # optimizer wrote into the shared buffer
    assert np.shares_memory(v, flatten_model(m))


def test_flatten_refuses_non_float32():
    with pytest.raises(ParameterError, match="float32"):
        flatten_model(nn.Linear(2, 2).double())


def test_splits():
    rng = np.random.default_rng(0)
    parts = iid_split(100, 7, rng)
    assert sorted(np.concatenate(parts).tolist()) == list(range(100))
    labels = np.repeat(np.arange(10), 30)
    parts = dirichlet_split(labels, 10, 0.5, rng)
    assert sorted(np.concatenate(parts).tolist()) == list(range(300))
    assert min(len(p) for p in parts) >= 2
    # skew: some client's label histogram is far from uniform
    hist = [np.bincount(labels[p], minlength=10) / len(p) for p in parts]
    assert max(h.max() for h in hist) > 0.3
    with pytest.raises(ParameterError, match="alpha"):
        dirichlet_split(labels, 10, 0.0, rng)
    with pytest.raises(ParameterError):
        iid_split(5, 6, rng)


def test_digits_task_is_standardised_without_blowups():
    t = digits_task(10, split="iid")
    x, _ = t.test_dataset.tensors
    assert float(x.abs().max()) <= 17  # nearly constant pixels are not blown up
    assert sum(len(d) for d in t.client_datasets) == 1437


def test_frac_bits_fit_the_modulus():
    for clip, n in [(4.0, 20), (1.0, 1000), (0.01, 3)]:
        f = frac_bits_for(clip, n)
        assert n * clip * 2**f < 2**31
        assert n * clip * 2 ** (f + 1) >= 2**31 - n  # the largest that fits
    with pytest.raises(ParameterError):
        frac_bits_for(1e9, 10)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"aggregation": "foo"}, "'aggregation' is 'foo'; allowed values: plain, secagg"),
        ({"rounds": 0}, "'rounds' is 0"),
        ({"bogus": 1}, "unknown config key 'bogus'"),
        ({"delta": 1.0}, "'delta'"),
        ({"rounds": "ten"}, "must be an integer"),
        ({"dp": "local", "target_epsilon": None}, "exactly one of"),
        ({"clients_per_round": 30}, "'clients_per_round' is 30"),
        ({"paillier_key_bits": 1024}, "2048, 3072"),
        ({"dropout_rate": 1.0}, "'dropout_rate'"),
    ],
)
def test_config_errors_name_key_and_allowed_values(bad, match):
    with pytest.raises(ParameterError, match=match):
        FedAvgConfig.from_dict(bad)


def test_toml_loading(tmp_path):
    p = tmp_path / "run.toml"
    p.write_text('[fedavg]\nrounds = 2\naggregation = "plain"\ndp = "none"\n'
                 'target_epsilon = "none"\nnoise_multiplier = "none"\n')
    cfg = FedAvgConfig.from_toml(p)
    assert cfg.rounds == 2 and cfg.aggregation == "plain" and cfg.target_epsilon is None
    p.write_text("rounds = [")
    with pytest.raises(ParameterError, match="not valid TOML"):
        FedAvgConfig.from_toml(p)
    with pytest.raises(ParameterError, match="does not exist"):
        FedAvgConfig.from_toml(tmp_path / "missing.toml")


def test_linear_regression_recovers_true_weights():
    cfg = FedAvgConfig(task="linear-regression", num_clients=5, clients_per_round=5, rounds=15,
                       aggregation="plain", dp="none", dropout_rate=0.0, progress=False)
    res = run_fedavg(cfg, write=False)
    w = res.model.weight.detach().numpy().ravel()
    b = res.model.bias.detach().numpy().ravel()
    assert np.max(np.abs(w - res.true_weights["weight"])) < 0.05
    assert abs(b[0] - res.true_weights["bias"][0]) < 0.05


def test_plain_run_with_dropouts_writes_run_directory(tmp_path):
    cfg = FedAvgConfig(num_clients=6, clients_per_round=5, rounds=3, aggregation="plain",
                       dp="none", dropout_rate=0.3, out_dir=str(tmp_path), progress=False)
    res = run_fedavg(cfg)
    assert len(res.rounds) == 3
    for r in res.rounds:
        assert set(r.included) == set(r.sampled) - set(r.dropped)
        assert r.time_local_training > 0 and r.test_accuracy is not None
        # every second of the round belongs to a named part
        parts = sum(getattr(r, f"time_{p}") for p in TIME_PARTS)
        assert parts == pytest.approx(r.time_round, rel=1e-9, abs=1e-9)
        assert r.time_evaluation > 0
    files = {p.name for p in res.run_dir.iterdir()}
    assert {"metrics.json", "model.pt", "accuracy.png", "time_split.png"} <= files
    data = json.loads((res.run_dir / "metrics.json").read_text())
    assert data["config"]["rounds"] == 3 and len(data["rounds"]) == 3
    state = torch.load(res.run_dir / "model.pt")
    assert set(state) == {"0.weight", "0.bias", "2.weight", "2.bias"}


def test_user_task_and_weighting_by_counts():
    # two clients whose optimum differs; weighting by example count pulls the
    # global model towards the bigger client without the server seeing counts.
    def ds(n, target):
        x = torch.zeros(n, 1)
        return torch.utils.data.TensorDataset(x, torch.full((n, 1), target))

    task = Task(model_factory=lambda: nn.Linear(1, 1), client_datasets=[ds(30, 1.0), ds(10, -1.0)],
                test_dataset=ds(4, 0.0), kind="regression")
    cfg = FedAvgConfig(num_clients=2, clients_per_round=2, rounds=40, aggregation="plain",
                       dp="none", dropout_rate=0.0, client_lr=0.2, batch_size=64,
                       max_examples_per_client=100, progress=False)
    res = run_fedavg(cfg, task, write=False)
    assert abs(float(res.model.bias.detach()[0]) - 0.5) < 0.05  # (30*1 + 10*-1) / 40


def test_task_validation():
    with pytest.raises(ParameterError, match="kind"):
        Task(model_factory=lambda: nn.Linear(1, 1), client_datasets=[[1]], test_dataset=[1],
             kind="ranking")
    t = linear_regression_task(3)
    cfg = FedAvgConfig(num_clients=4, clients_per_round=4, aggregation="plain", dp="none")
    with pytest.raises(ParameterError, match="num_clients"):
        run_fedavg(cfg, t, write=False)


@pytest.mark.parametrize("aggregation", ["plain", "secagg"])
def test_clipped_values_count_every_sender(aggregation):
    # A tiny coordinate bound clips most coordinates of every client's update:
    # the count must cover all senders, not just the last one encoded.
    cfg = FedAvgConfig(num_clients=4, clients_per_round=4, rounds=1, aggregation=aggregation,
                       dp="none", dropout_rate=0.0, update_clip=1e-6, progress=False)
    res = run_fedavg(cfg, write=False)
    dim = res.final_params.shape[0]
    assert res.rounds[0].clipped_values > 2 * dim


@pytest.mark.parametrize("kind", ["plain", "secagg", "paillier"])
def test_every_back_end_bounds_each_coordinate(kind):
    # the plain reference must clip like the secure ones, or results differ
    from protocols.fedavg.aggregation import make_secure_sum

    s = make_secure_sum(kind, clip=1.0, max_summands=3)
    if kind == "paillier":
        pytest.importorskip("phe")
    x = np.array([5.0, -5.0, 0.25], dtype=np.float32)
    res = s({0: x, 1: x, 2: x}, frozenset(), 1)
    assert np.allclose(res.sum, [3.0, -3.0, 0.75], atol=1e-6)
    assert res.included == frozenset({0, 1, 2})


@pytest.mark.parametrize("aggregation", ["plain", "secagg"])
def test_clipped_count_leaves_out_dropped_clients(aggregation):
    from protocols.fedavg.pipeline import build_pipeline

    cfg = FedAvgConfig(num_clients=4, clients_per_round=4, aggregation=aggregation, dp="none",
                       update_clip=1.0, max_examples_per_client=10)
    pipe = build_pipeline(cfg, 6)
    pipe.begin_round(1)
    big = np.full(6, 50.0, dtype=np.float32)  # every coordinate clipped (weight 1 keeps it 50)
    small = np.full(6, 0.1, dtype=np.float32)
    inputs = {0: pipe.client(big, 10), 1: pipe.client(big, 10),
              2: pipe.client(small, 10), 3: pipe.client(small, 10)}
    step = pipe.aggregate(inputs, frozenset({0}), 1)
    assert pipe.measurements()["secure_sum"]["clipped_values"] == 6  # client 1 only
    # mean of (1, 0.1, 0.1) per coordinate: weights are equal
    assert np.allclose(step, 0.4, atol=1e-5)


def test_counts_are_exact_even_past_one_slot():
    # headroom for 40,000 summands leaves ~2^15 values per slot: a count of up
    # to 40,000 clipped coordinates then takes two base-B digits
    from protocols.fedavg.pipeline import build_pipeline

    cfg = FedAvgConfig(num_clients=40000, clients_per_round=40000, aggregation="secagg",
                       dp="none", update_clip=1e-3, max_examples_per_client=10)
    pipe = build_pipeline(cfg, 40000)
    assert dict(pipe.secure_sum.count_layout)["clipped_values"] == 2
    pipe.begin_round(1)
    x = np.linspace(-1, 1, 40000).astype(np.float32)
    over = int(np.count_nonzero(np.abs(x) > 1e-3))
    inputs = {c: pipe.client(x, 10) for c in range(3)}
    pipe.aggregate(inputs, frozenset(), 1)
    assert pipe.measurements()["secure_sum"]["clipped_values"] == 3 * over


@pytest.mark.parametrize(
    "key, value",
    [("dropout_rate", float("nan")), ("alpha", float("nan")), ("client_lr", float("inf")),
     ("delta", float("nan")), ("clip_norm", float("nan")), ("sample", None),
     ("update_clip", True), ("rounds", True), ("rounds", 2.0), ("dropout_rate", "0.5"),
     ("client_lr", "0.5"), ("progress", 1), ("aggregation", 3),
     ("noise_multiplier", float("inf")), ("noise_multiplier", 1e-300),
     ("target_epsilon", float("nan")), ("target_epsilon", 1e6), ("delta", 1e-300)],
)
def test_validate_refuses_every_bad_value(key, value):
    if key == "sample":
        key, value = "server_lr", float("-nan")
    kw = {key: value}
    if key == "noise_multiplier":
        kw["target_epsilon"] = None
    cfg = FedAvgConfig(**kw)
    with pytest.raises(ParameterError, match=key):
        cfg.validate()


def test_delta_must_be_below_one_over_the_clients_with_central_dp():
    with pytest.raises(ParameterError, match="1/num_clients"):
        FedAvgConfig(dp="central", num_clients=20, delta=0.1).validate()
