"""FedAvg with dp="distributed": client noise shares inside an exact integer secure sum."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dp.distributed import DistributedDPAccountant, decode, encode
from protocols.fedavg import FedAvgConfig, run_fedavg
from protocols.fedavg.aggregation import make_secure_sum
from protocols.fedavg.dp_distributed import make_distributed_params
from protocols.fedavg.pipeline import build_pipeline
from secagg.errors import AbortError, ParameterError


def _cfg(**kw: object) -> FedAvgConfig:
    base: dict[str, object] = dict(
        task="digits", num_clients=10, clients_per_round=10, rounds=3, split="iid",
        local_epochs=1, aggregation="secagg", dp="distributed", target_epsilon=8.0,
        delta=1e-5, clip_norm=1.0, dropout_rate=0.0, progress=False, seed=3,
    )
    base.update(kw)
    return FedAvgConfig(**base)  # type: ignore[arg-type]


# ------------------------------------------------------------ integer secure sum


@pytest.mark.parametrize("kind", ["secagg", "secagg+"])
def test_integer_sum_is_exact_mod_2_32(kind: str) -> None:
    s = make_secure_sum(kind, clip=1.0, max_summands=7, seed=1)
    rng = np.random.default_rng(5)
    x = {i: rng.integers(0, 2**32, 33, dtype=np.uint64).astype(np.uint32) for i in range(7)}
    res = s.integer_sum(x, frozenset({4}), 2)
    want = sum(x[i].astype(np.uint64) for i in range(7) if i != 4) % 2**32
    assert res.raw_sum is not None and res.raw_sum.dtype == np.uint32
    assert np.array_equal(res.raw_sum, want.astype(np.uint32))
    assert res.included == frozenset(range(7)) - {4}


def test_integer_sum_refuses_below_threshold_and_wrong_inputs() -> None:
    s = make_secure_sum("secagg", clip=1.0, max_summands=6)
    t = s.threshold(6)
    x = {i: np.zeros(4, np.uint32) for i in range(6)}
    with pytest.raises(AbortError, match="threshold"):
        s.integer_sum(x, frozenset(range(6 - t + 1)), 1)
    with pytest.raises(ParameterError, match="uint32"):
        s.integer_sum({i: np.zeros(4, np.float32) for i in range(6)}, frozenset(), 1)
    for kind in ("plain", "paillier"):
        with pytest.raises(ParameterError, match=kind):
            make_secure_sum(kind, clip=1.0, max_summands=6).integer_sum(x, frozenset(), 1)


# --------------------------------------------------- the noise is inside the sum


def test_unmasked_sum_carries_noise_of_the_calibrated_scale() -> None:
    """The server's unmasked secure sum, decoded, differs from the sum of the
    clipped updates by noise whose std is the calibrated one (and not by the
    rounding alone)."""
    n, dim = 10, 1024
    cfg = _cfg(clients_per_round=n, rounds=2, target_epsilon=2.0, dp_bits=20)
    secure = make_secure_sum("secagg", clip=1.0, max_summands=n, seed=2)
    params = make_distributed_params(cfg, dim, secure)
    rng = np.random.default_rng(0)
    updates = {i: rng.normal(0, 0.05, dim) for i in range(n)}
    seed = bytes(32)
    packed = {i: encode(params, u, seed, dtype=np.uint32).vector for i, u in updates.items()}
    dropped = frozenset({7})
    res = secure.integer_sum(packed, dropped, 1)  # what the server unmasks
    assert res.raw_sum is not None
    survivors = len(res.included)
    got = decode(params, res.raw_sum, seed, survivors).sum
    clean = np.zeros(dim)
    for i in res.included:
        u = updates[i]
        clean += u * min(1.0, params.l2_clip / np.linalg.norm(u))
    diff = got - clean
    want = params.noise_std(survivors)
    rounding = math.sqrt(survivors) * params.gamma  # < one integer unit per client
    assert want > 5 * rounding
    # 1024 coordinates: the sample std is within ~5% of the truth
    assert abs(diff.std() / math.hypot(want, rounding / 2) - 1) < 0.12
    assert abs(diff.mean()) < 4 * want / math.sqrt(dim)


def test_pipeline_sends_only_the_noised_integer_vector() -> None:
    cfg = _cfg()
    pipe = build_pipeline(cfg, 64)
    pipe.begin_round(1)
    v = pipe.client(np.full(64, 0.01, np.float32), 37)
    assert v.dtype == np.uint32 and v.shape == (64,)
    assert int(v.max()) < 2**cfg.dp_bits
    # two encodings of the same update differ: each carries fresh secret noise
    w = pipe.client(np.full(64, 0.01, np.float32), 37)
    assert not np.array_equal(v, w)


# ------------------------------------------------------------------ training


@pytest.mark.parametrize("kind,dropout,mech", [("secagg", 0.0, "dgauss"),
                                               ("secagg+", 0.25, "dgauss"),
                                               ("secagg+", 0.1, "skellam")])
def test_fedavg_distributed_trains_and_reports_the_accountants_epsilon(
    kind: str, dropout: float, mech: str
) -> None:
    # a loose target keeps the check of training clear of the (secret, random) noise
    cfg = _cfg(aggregation=kind, dropout_rate=dropout, rounds=4, target_epsilon=30.0,
               dp_mechanism=mech)
    res = run_fedavg(cfg, write=False)
    assert res.final.test_accuracy is not None and res.final.test_accuracy > 0.5  # chance: 0.1
    # an independent accountant fed the published survivor counts
    pipe = build_pipeline(cfg, res.final_params.shape[0])  # type: ignore[union-attr]
    acc = DistributedDPAccountant(pipe.secure_sum.params)
    for r in res.rounds:
        assert r.aborted is False and r.included is not None
        acc.record_round(len(r.included))
        assert r.epsilon == pytest.approx(acc.guarantee().epsilon, rel=1e-9)
        assert r.privacy_unit == "client"
        assert r.clipped_clients is None  # the clipped count is never sent
    assert res.final.epsilon is not None and res.final.epsilon <= 30.0 + 1e-9
    assert res.final.privacy_guarantee is not None
    assert "against the server" in res.final.privacy_guarantee
    assert ("Skellam" in res.final.privacy_guarantee) == (mech == "skellam")
    if dropout:
        assert any(r.dropped for r in res.rounds)


def test_aborted_round_releases_nothing_and_is_not_charged() -> None:
    cfg = _cfg(aggregation="secagg", dropout_rate=0.6, rounds=4, seed=1)
    res = run_fedavg(cfg, write=False)
    eps = 0.0
    aborted = 0
    for r in res.rounds:
        assert r.epsilon is not None
        if r.aborted:
            aborted += 1
            assert r.epsilon == eps
        eps = r.epsilon
    assert aborted >= 1


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "changes,key",
    [
        ({"aggregation": "plain"}, "'aggregation'"),
        ({"aggregation": "paillier"}, "'aggregation'"),
        ({"target_epsilon": None, "noise_multiplier": 1.0}, "'noise_multiplier'"),
        ({"adaptive_clipping": True}, "'adaptive_clipping'"),
        ({"dp_bits": 1}, "'dp_bits'"),
        ({"dp_bits": 33}, "'dp_bits'"),
        ({"dp_mechanism": "laplace"}, "'dp_mechanism'"),
        ({"delta": 0.2}, "'delta'"),
    ],
)
def test_config_refuses_impossible_settings(changes: dict[str, object], key: str) -> None:
    with pytest.raises(ParameterError, match=key):
        _cfg(**changes).validate()


@pytest.mark.parametrize(
    "changes,key",
    [
        ({"dp_bits": 4}, "'dp_bits'"),  # cannot hold 10 clients' rounding
        ({"dp_bits": 8, "target_epsilon": 0.05}, "'dp_bits'"),  # the noise wraps
    ],
)
def test_plan_refuses_impossible_combinations(changes: dict[str, object], key: str) -> None:
    cfg = _cfg(**changes)
    with pytest.raises(ParameterError, match=key):
        build_pipeline(cfg, 256)


# ------------------------------------------------- the benchmark's stand-in sum


def test_benchmark_stand_in_matches_the_secure_sum_and_counts_wraps() -> None:
    from benchmarks.privacy_distributed import PER_ROUND, ClearIntegerSum

    holder: dict[str, object] = {"bits": 8, "wraps": 0, "coords": 0, "threshold": None}
    clear = ClearIntegerSum.create(holder)
    real = make_secure_sum("secagg", clip=1.0, max_summands=PER_ROUND, seed=4)
    assert clear.threshold(PER_ROUND) == real.threshold(PER_ROUND)
    # centred 8-bit values: 100 + 100 = 200 wraps, -3 + 2 = -1 does not
    x = {0: np.array([100, 253], np.uint32), 1: np.array([100, 2], np.uint32),
         2: np.array([0, 0], np.uint32)}
    a = clear.integer_sum(x, frozenset(), 1)
    b = real.integer_sum(x, frozenset(), 1)
    assert np.array_equal(a.raw_sum, b.raw_sum)
    assert holder["wraps"] == 1 and holder["coords"] == 2
    holder["threshold"] = 3
    with pytest.raises(AbortError):
        clear.integer_sum(x, frozenset({2}), 2)


def test_pipeline_round_sum_is_the_noised_sum() -> None:
    """Through the FedAvg pipeline: clients' packed vectors, the secure sum and
    the server's decoding give the clipped sum plus noise of the calibrated
    scale, charged for the survivors."""
    n, dim = 10, 1024
    cfg = _cfg(clients_per_round=n, rounds=2, target_epsilon=2.0, dp_bits=20,
               aggregation="secagg+")
    pipe = build_pipeline(cfg, dim)
    step = pipe.secure_sum
    pipe.begin_round(1)
    rng = np.random.default_rng(1)
    updates = {i: rng.normal(0, 0.02, dim).astype(np.float32) for i in range(n)}  # norm < 1
    inputs = {i: pipe.client(u, 10) for i, u in updates.items()}
    s = step.run(inputs, frozenset({2, 5}), 1)
    clean = sum(np.asarray(updates[i], np.float64) for i in range(n) if i not in (2, 5))
    assert max(np.linalg.norm(u) for u in updates.values()) < cfg.clip_norm
    want = step.params.noise_std(s.clients)
    assert s.clients == 8 and step.accountant.rounds == 1
    assert abs((s.vector - clean).std() / want - 1) < 0.15
