"""FedAvg with dp="distributed-sgd": example-level DP-SGD whose noise shares the
clients add inside an exact integer secure sum."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from dp.distributed import decode, rotation_seed
from dp.distributed_accounting import epsilon_of_rounds
from dp.distributed_sgd import DPSGDAccountant, encode_batch, select_dpsgd_parameters
from protocols.fedavg import FedAvgConfig, run_fedavg
from protocols.fedavg.aggregation import SecureSum, make_secure_sum
from protocols.fedavg.dp_distributed_sgd import make_dpsgd
from protocols.fedavg.tasks import make_task
from secagg.errors import ParameterError


def _cfg(**kw: object) -> FedAvgConfig:
    base: dict[str, object] = dict(
        task="digits", num_clients=10, clients_per_round=10, rounds=4, split="iid",
        aggregation="secagg", dp="distributed-sgd", target_epsilon=8.0, delta=1e-5,
        max_grad_norm=1.0, dp_bits=32, client_lr=2.0, example_sample_rate=0.3,
        dropout_rate=0.0, progress=False, seed=3,
    )
    base.update(kw)
    return FedAvgConfig(**base)  # type: ignore[arg-type]


class _Recording:
    """A secure sum that keeps what the server unmasked (its ``raw_sum``)."""

    def __init__(self, inner: SecureSum) -> None:
        self.inner = inner
        self.raw: list[Any] = []

    def threshold(self, n: int) -> int:
        return self.inner.threshold(n)

    def integer_sum(self, inputs: Any, dropped: frozenset[int], round_idx: int) -> Any:
        res = self.inner.integer_sum(inputs, dropped, round_idx)
        self.raw.append(res.raw_sum.copy())
        return res


def test_reported_epsilon_is_the_accountants() -> None:
    """The run reports exactly the composition of its steps at the survivors
    summed, and the plan at the threshold meets the target."""
    cfg = _cfg(rounds=3, dropout_rate=0.25, seed=5)
    task = make_task("digits", 10, split="iid", alpha=0.5, seed=5)
    res = run_fedavg(cfg, task, write=False)
    model = task.model_factory()
    algo = make_dpsgd(cfg, task, model)
    p = algo.params
    survivors = [len(r.included or []) for r in res.rounds if not r.aborted]
    assert survivors and any(s < 10 for s in survivors)  # some dropped
    want = epsilon_of_rounds([p.round_for(s) for s in survivors], 1e-5, trust="").epsilon
    assert res.final.epsilon == pytest.approx(want, rel=1e-12)
    assert res.final.privacy_unit == "example"
    planned = DPSGDAccountant(p).planned()
    assert planned.epsilon <= 8.0 and planned.epsilon == pytest.approx(8.0, rel=1e-3)
    assert planned.unit == "example" and "which examples were sampled" in planned.trust
    # the noise is calibrated at the threshold, so more survivors spend less
    assert res.final.epsilon < 8.0


def test_noise_is_inside_the_secure_sum() -> None:
    """The server's unmasked sum, decoded, minus the clean sum of the clipped
    per-example gradients has the calibrated std (full batch: every example)."""
    cfg = _cfg(rounds=2, example_sample_rate=1.0, target_epsilon=2.0, seed=1)
    task = make_task("digits", 10, split="iid", alpha=0.5, seed=1)
    model = task.model_factory()
    rec = _Recording(make_secure_sum("secagg", clip=1.0, max_summands=10, seed=1))
    algo = make_dpsgd(cfg, task, model, rec)  # type: ignore[arg-type]
    clean = np.zeros(algo.params.dimension)
    for c in algo.clients:
        g = algo.per_example_grads(c.x, c.y)
        norms = np.linalg.norm(g, axis=1, keepdims=True)
        clean += (g * np.minimum(1.0, cfg.max_grad_norm / norms)).sum(axis=0)
    # the step rotates with a fresh public seed; decode with the one it used
    seeds: list[bytes] = []
    import protocols.fedavg.dp_distributed_sgd as mod

    real = mod.DistributedDPSGD.client_vector

    def spy(self: Any, k: int, seed: bytes) -> Any:
        if not seeds or seeds[-1] != seed:
            seeds.append(seed)
        return real(self, k, seed)

    mod.DistributedDPSGD.client_vector = spy  # type: ignore[method-assign]
    try:
        mean, m = algo.step(frozenset({4}), 1)
    finally:
        mod.DistributedDPSGD.client_vector = real  # type: ignore[method-assign]
    assert mean is not None and m["included"] == [k for k in range(10) if k != 4]
    # the dropped client's examples are not in the sum
    c4 = algo.clients[4]
    g4 = algo.per_example_grads(c4.x, c4.y)
    n4 = np.linalg.norm(g4, axis=1, keepdims=True)
    clean -= (g4 * np.minimum(1.0, cfg.max_grad_norm / n4)).sum(axis=0)
    dec = decode(algo.params, rec.raw[0], seeds[0], 9)
    err = dec.sum - clean
    want = algo.params.noise_std(9)
    assert want > 1.0  # central-scale noise: far above the rounding error
    assert abs(err.std() / want - 1) < 0.15
    assert np.allclose(mean * algo.expected_batch, dec.sum)
    assert algo.accountant.steps == 1


def test_each_client_carries_only_its_share() -> None:
    """One client's vector decoded alone carries noise of std sqrt(variance) *
    gamma: the share, not the central amount and not zero."""
    p = select_dpsgd_parameters(
        target_epsilon=1.0, delta=1e-5, num_clients=10, min_survivors=7,
        total_examples=1000, sample_rate=1.0, steps=10, dimension=300, l2_clip=1.0)
    seed = rotation_seed(b"t", 0)
    g = np.random.default_rng(0).normal(0, 0.01, (20, 300))
    v = encode_batch(p, g, seed)
    err = decode(p, v, seed, 1).sum - g.sum(axis=0)
    share = math.sqrt(p.noise_variance) * p.gamma
    assert abs(err.std() / share - 1) < 0.2
    assert p.noise_std(7) == pytest.approx(share * math.sqrt(7))


def test_encode_batch_bounds_each_example_and_refuses_bad_input() -> None:
    p = select_dpsgd_parameters(
        target_epsilon=4.0, delta=1e-5, num_clients=5, min_survivors=3,
        total_examples=100, sample_rate=0.5, steps=5, dimension=10, l2_clip=0.5)
    assert p.epsilon <= 4.0 and p.wrap_probability <= 1e-6
    seed = rotation_seed(b"t", 1)
    assert encode_batch(p, np.zeros((0, 10)), seed).shape == (16,)  # noise only
    with pytest.raises(ParameterError, match="shape"):
        encode_batch(p, np.zeros((3, 11)), seed)
    with pytest.raises(ParameterError, match="NaN"):
        encode_batch(p, np.full((1, 10), np.nan), seed)
    with pytest.raises(ParameterError, match="bits"):
        select_dpsgd_parameters(
            target_epsilon=4.0, delta=1e-5, num_clients=5, min_survivors=3,
            total_examples=100, sample_rate=0.5, steps=5, dimension=10, l2_clip=0.5, bits=6)


def test_trains_on_digits() -> None:
    torch.manual_seed(0)
    res = run_fedavg(_cfg(rounds=6, target_epsilon=8.0), write=False)
    assert res.final.test_accuracy is not None and res.final.test_accuracy > 0.6
    assert res.final.epsilon is not None and res.final.epsilon <= 8.0
    assert not any(r.aborted for r in res.rounds)
    assert max(r.near_boundary or 0.0 for r in res.rounds) == 0.0


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"clients_per_round": 5}, "'clients_per_round'"),
        ({"aggregation": "plain"}, "'aggregation'"),
        ({"target_epsilon": None, "noise_multiplier": 1.0}, "'noise_multiplier'"),
        ({"example_sample_rate": 0.0}, "'example_sample_rate'"),
        ({"example_sample_rate": 1.5}, "'example_sample_rate'"),
    ],
)
def test_config_refuses(change: dict[str, object], key: str) -> None:
    with pytest.raises(ParameterError, match=key):
        _cfg(**change).validate()


def test_too_few_bits_or_too_large_delta_name_the_config_key() -> None:
    with pytest.raises(ParameterError, match="'dp_bits'"):
        run_fedavg(_cfg(dp_bits=10), write=False)
    with pytest.raises(ParameterError, match="'delta'"):
        run_fedavg(_cfg(delta=0.01), write=False)  # far above 1/N on digits
