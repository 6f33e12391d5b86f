"""The distributed mechanism: rotation, encode/decode, the exact norm bound,
parameter selection and its refusals, dropouts and collusion in the
accounting, and an end-to-end round over the real pairwise-mask secure sum."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.linalg import hadamard as scipy_hadamard

import dp
from dp import discrete
from dp import distributed as M
from secagg.errors import EncodingError, ParameterError

SEED = M.rotation_seed(b"test-session", 0)


@pytest.fixture(scope="module")
def params() -> M.DistributedDPParams:
    return M.select_parameters(target_epsilon=2.0, delta=1e-5, num_clients=8, min_survivors=5,
                               bits=20, dimension=300, l2_clip=1.0, rounds=4)


def _clip(x: np.ndarray, c: float) -> np.ndarray:
    n = float(np.linalg.norm(x))
    return x * min(1.0, c / n) if n > 0 else x


# ---------------------------------------------------------------- rotation


def _butterfly(x: np.ndarray) -> np.ndarray:
    """An independent oracle: the textbook butterfly, one level at a time."""
    a = np.array(x, dtype=np.float64)
    h = 1
    while h < a.shape[0]:
        v = a.reshape(-1, 2, h)
        a = np.stack([v[:, 0] + v[:, 1], v[:, 0] - v[:, 1]], axis=1).reshape(-1)
        h *= 2
    return a / math.sqrt(a.shape[0])


def test_hadamard_matches_the_sylvester_matrix():
    # every split into Kronecker factors up to three factors (D = 2^0 .. 2^11)
    for logn in range(12):
        n = 1 << logn
        x = np.arange(n, dtype=np.float64) - 3.5
        want = scipy_hadamard(n) @ x / math.sqrt(n)
        got = M.hadamard(x)
        assert np.abs(got - want).max() <= 1e-13 * max(1.0, float(np.linalg.norm(x)))
    # exact small cases: H_2 and H_4 by hand
    assert M.hadamard([1.0, 2.0]).tolist() == pytest.approx([3 / math.sqrt(2), -1 / math.sqrt(2)])
    assert M.hadamard([1.0, 0.0, 0.0, 0.0]).tolist() == [0.5, 0.5, 0.5, 0.5]
    assert M.hadamard([0.0, 0.0, 0.0, 1.0]).tolist() == [0.5, -0.5, -0.5, 0.5]


def test_hadamard_factors_cover_the_dimension():
    for logn in range(0, 41):
        parts = M._factor_bits(logn)
        assert sum(parts) == logn and all(1 <= p <= M._FACTOR_BITS for p in parts)
        assert len(parts) == -(-logn // M._FACTOR_BITS) and (max(parts) - min(parts) <= 1
                                                             if parts else True)


@given(st.integers(0, 14), st.integers(0, 2**32 - 1))
def test_hadamard_agrees_with_the_butterfly_and_is_its_own_inverse(logn, seed_int):
    n = 1 << logn
    x = np.random.default_rng(seed_int).normal(size=n) * 10.0 ** (seed_int % 7 - 3)
    keep = x.copy()
    y = M.hadamard(x)
    norm = float(np.linalg.norm(x))
    assert np.array_equal(x, keep) and y is not x  # input untouched, fresh output
    assert np.abs(y - _butterfly(x)).max() <= 1e-13 * norm
    assert float(np.linalg.norm(y)) == pytest.approx(norm, rel=1e-12)
    assert np.abs(M.hadamard(y) - x).max() <= 1e-12 * norm


def test_hadamard_accepts_strided_and_integer_input():
    x = np.arange(64, dtype=np.float64)
    assert np.allclose(M.hadamard(x[::2]), M.hadamard(x[::2].copy()), rtol=0, atol=1e-12)
    assert np.allclose(M.hadamard(np.arange(32)), M.hadamard(np.arange(32.0)), atol=0)
    one = np.array([2.5])
    out = M.hadamard(one)
    assert out.tolist() == [2.5] and out is not one


@given(st.integers(0, 10), st.integers(0, 2**32 - 1))
def test_rotation_is_orthogonal_and_inverted(logn, seed_int):
    n = 1 << logn
    seed = seed_int.to_bytes(32, "big")
    x = np.random.default_rng(seed_int).normal(size=n)
    y = M.rotate(x, seed)
    assert np.linalg.norm(y) == pytest.approx(np.linalg.norm(x), rel=1e-12)
    assert np.allclose(M.unrotate(y, seed), x, atol=1e-12)


def test_rotation_at_a_million_coordinates_is_inverted_to_1e12():
    x = np.random.default_rng(3).normal(size=1 << 20)
    y = M.rotate(x, SEED)
    norm = float(np.linalg.norm(x))
    assert float(np.linalg.norm(y)) == pytest.approx(norm, rel=1e-12)
    assert np.abs(M.unrotate(y, SEED) - x).max() <= 1e-12 * norm


def test_rotation_spreads_a_spike():
    x = np.zeros(1024)
    x[5] = 1.0
    y = M.rotate(x, SEED)
    assert np.allclose(np.abs(y), 1 / 32)


def test_rotation_seed_is_bound_to_context_and_round():
    a = M.rotation_seed(b"s", 1)
    assert a == M.rotation_seed(b"s", 1) and len(a) == 32
    assert a != M.rotation_seed(b"s", 2) and a != M.rotation_seed(b"t", 1)
    assert M.rotation_seed(b"ab", 1) != M.rotation_seed(b"a", 0x62 << 56 | 1)
    with pytest.raises(ParameterError):
        M.rotation_seed("s", 1)  # type: ignore[arg-type]
    with pytest.raises(ParameterError):
        M.rotation_seed(b"s", -1)


def test_hadamard_refuses_other_lengths():
    with pytest.raises(ParameterError):
        M.hadamard(np.ones(12))


# --------------------------------------------------------- encode / decode


def test_encoded_vector_is_in_range_and_typed(params):
    e = M.encode(params, np.full(300, 0.01), SEED, rng=discrete.DiscreteRandom(bytes(32)))
    assert e.vector.dtype == np.uint32 and e.vector.shape == (params.padded_dimension,)
    assert int(e.vector.max()) < 2**params.bits
    assert not e.clipped and e.rounding_attempts >= 1
    e64 = M.encode(params, np.full(300, 0.01), SEED, dtype=np.uint64)
    assert e64.vector.dtype == np.uint64


def test_rounded_norm_is_bounded_exactly_even_for_huge_updates(params, monkeypatch):
    # remove the noise to look at the rounded integer vector itself
    monkeypatch.setattr(discrete, "discrete_gaussian",
                        lambda v, n, rng=None: np.zeros(n, dtype=np.int64))
    rng = np.random.default_rng(1)
    for scale in (1e-3, 1.0, 1e6):
        x = rng.normal(size=300) * scale
        x[7] = 50 * scale  # a spike
        e = M.encode(params, x, SEED)
        v = e.vector.astype(np.int64)
        z = np.where(v >= 2 ** (params.bits - 1), v - 2**params.bits, v)
        assert int(np.dot(z, z)) <= params.l2_sensitivity**2
        assert e.clipped == (np.linalg.norm(x) > params.l2_clip)
        # and the rounding is unbiased around the scaled rotated update
        want = M.rotate(np.pad(_clip(x, 1.0), (0, params.padded_dimension - 300)), SEED)
        assert np.abs(z - want * params.scale).max() < 1.0 + 1e-6


@pytest.mark.parametrize("inflate", [1.0 + 1e-9, 1.02, 3.0])
def test_norm_bound_holds_whatever_the_float_rotation_returns(params, monkeypatch, inflate):
    # privacy must not rest on the float transform: with a rotation that
    # inflates norms, encode either emits a vector within the exact integer
    # bound or refuses; it never emits one above it
    monkeypatch.setattr(discrete, "discrete_gaussian",
                        lambda v, n, rng=None: np.zeros(n, dtype=np.int64))
    real = M.hadamard
    monkeypatch.setattr(M, "hadamard", lambda x: real(x) * inflate)
    x = np.random.default_rng(2).normal(size=300)  # clipped to the norm bound
    outcomes = set()
    for k in range(4):
        try:
            e = M.encode(params, x, SEED, rng=discrete.DiscreteRandom(bytes([k]) * 32))
        except EncodingError:
            outcomes.add("refused")
            continue
        v = e.vector.astype(np.int64)
        z = np.where(v >= 2 ** (params.bits - 1), v - 2**params.bits, v)
        assert int(np.dot(z, z)) <= params.l2_sensitivity**2
        outcomes.add("ok")
    if inflate > 2:
        assert outcomes == {"refused"}
    if inflate < 1.0 + 1e-6:
        assert outcomes == {"ok"}


def test_decoded_sum_is_the_clipped_sum_plus_the_calibrated_noise(params):
    rng = np.random.default_rng(2)
    xs = [rng.normal(0, 0.08, 300) for _ in range(8)]
    total = np.zeros(params.padded_dimension, dtype=np.uint32)
    for x in xs:
        total += M.encode(params, x, SEED).vector  # uint32 wrap-around: mod 2^32
    out = M.decode(params, total, SEED, survivors=8)
    err = out.sum - sum(_clip(x, 1.0) for x in xs)
    sd = params.noise_std(8)
    # the noise is rotated back: per coordinate still N(0, sd^2) plus rounding
    assert abs(err.std() / sd - 1) < 0.15
    assert abs(err.mean()) < 5 * sd / math.sqrt(300)
    assert out.near_boundary_fraction == 0.0 and out.survivors == 8


def test_skellam_round_trip():
    p = M.select_parameters(target_epsilon=4.0, delta=1e-5, num_clients=4, min_survivors=3,
                            bits=18, dimension=64, l2_clip=2.0, rounds=1, mechanism="skellam")
    xs = [np.full(64, 0.1 * (i + 1)) for i in range(4)]
    total = sum(M.encode(p, x, SEED, dtype=np.uint64).vector for x in xs)
    out = M.decode(p, np.asarray(total, dtype=np.uint64), SEED, survivors=4)
    err = out.sum - sum(_clip(x, 2.0) for x in xs)
    assert err.std() < 2 * p.noise_std(4)


def test_too_few_bits_wrap_and_are_flagged(params):
    # the same integers decoded with 6 bits: the sum no longer fits
    small = M.DistributedDPParams(**{**params.__dict__, "bits": 6})
    xs = [np.full(300, 0.05) for _ in range(8)]
    total = sum(M.encode(small, x, SEED).vector for x in xs)
    out = M.decode(small, np.asarray(total, dtype=np.uint32), SEED, survivors=8)
    assert out.near_boundary_fraction > 0.05


@given(st.lists(st.integers(0, 2**32 - 1), min_size=512, max_size=512))
def test_decode_accepts_any_modular_sum(values):
    p = M.DistributedDPParams(mechanism="dgauss", dimension=300, l2_clip=1.0, bits=20,
                              gamma=1e-3, noise_variance=100.0, num_clients=8, min_survivors=5)
    out = M.decode(p, np.array(values, dtype=np.uint32), SEED, survivors=5)
    assert out.sum.shape == (300,) and np.isfinite(out.sum).all()


def test_encode_and_decode_refuse_bad_input(params):
    with pytest.raises(ParameterError):
        M.encode(params, np.ones(299), SEED)
    with pytest.raises(ParameterError):
        M.encode(params, np.full(300, np.nan), SEED)
    with pytest.raises(ParameterError):
        M.encode(params, np.ones(300), SEED, dtype=np.uint16)
    with pytest.raises(ParameterError):
        M.decode(params, np.zeros(300, dtype=np.uint32), SEED, survivors=8)
    with pytest.raises(ParameterError):
        M.decode(params, np.zeros(512, dtype=np.int64), SEED, survivors=8)
    with pytest.raises(ParameterError):
        M.decode(params, np.zeros(512, dtype=np.uint32), SEED, survivors=9)


# ---------------------------------------------------------- parameters


def test_selected_parameters_meet_the_plan(params):
    assert params.epsilon <= 2.0
    assert params.wrap_probability <= 1e-6
    assert params.padded_dimension == 512
    acc = M.DistributedDPAccountant(params)
    assert acc.planned().epsilon <= 2.0 + 1e-9
    # a slightly smaller variance would miss the target: the calibration is tight
    tighter = M.DistributedDPParams(**{**params.__dict__,
                                       "noise_variance": params.noise_variance * 0.99})
    r = tighter.round_for(tighter.min_survivors)
    assert dp.distributed_accounting.epsilon_of_rounds([r] * 4, 1e-5, trust="").epsilon > 2.0


def test_finer_bits_give_finer_quantization():
    kw = dict(target_epsilon=1.0, delta=1e-5, num_clients=20, min_survivors=15,
              dimension=1000, l2_clip=1.0, rounds=10)
    g12 = M.select_parameters(bits=14, **kw).gamma
    g20 = M.select_parameters(bits=20, **kw).gamma
    assert g20 < g12 / 16


@pytest.mark.parametrize("change,name", [
    (dict(bits=8, num_clients=100, min_survivors=80), "bits"),
    (dict(bits=5), "bits"),
    (dict(min_survivors=2, colluding_fraction=0.25), "min_survivors"),
    (dict(delta=0.0), "delta"),
    (dict(target_epsilon=-1.0), "target_epsilon"),
    (dict(l2_clip=0.0), "l2_clip"),
    (dict(min_survivors=9), "min_survivors"),
])
def test_impossible_plans_are_refused_by_name(change, name):
    kw = dict(target_epsilon=1.0, delta=1e-5, num_clients=8, min_survivors=5, bits=16,
              dimension=10**4, l2_clip=1.0, rounds=10)
    kw.update(change)
    with pytest.raises(ParameterError, match=name):
        M.select_parameters(**kw)


# ------------------------------------------------- dropouts and collusion


def test_accountant_uses_the_survivors_actually_summed(params):
    planned = M.DistributedDPAccountant(params).planned().epsilon
    full, few, none = (M.DistributedDPAccountant(params) for _ in range(3))
    for _ in range(4):
        full.record_round(8)
        few.record_round(3)  # below the threshold: reported, not hidden
    none.record_round(0)
    assert full.guarantee().epsilon < planned
    assert few.guarantee().epsilon > planned
    assert none.guarantee().epsilon == math.inf
    assert full.guarantee().honest_shares == (8, 8, 8, 8)


def test_colluders_shares_are_subtracted():
    p = M.select_parameters(target_epsilon=2.0, delta=1e-5, num_clients=10, min_survivors=7,
                            bits=20, dimension=100, l2_clip=1.0, rounds=2,
                            colluding_fraction=0.2)
    assert p.colluding_clients == 2
    acc = M.DistributedDPAccountant(p)
    g = acc.record_round(7)
    assert g.honest_shares == (5,)
    assert "colluding with up to 2 of 10" in g.trust
    honest = M.select_parameters(target_epsilon=2.0, delta=1e-5, num_clients=10,
                                 min_survivors=7, bits=20, dimension=100, l2_clip=1.0, rounds=2)
    # calibrating for 5 honest shares instead of 7 needs more noise per share
    assert p.noise_variance * p.gamma**2 > honest.noise_variance * honest.gamma**2


def test_sampling_assumption_is_stated():
    p = M.select_parameters(target_epsilon=2.0, delta=1e-5, num_clients=10, min_survivors=7,
                            bits=20, dimension=100, l2_clip=1.0, rounds=20, sample_rate=0.2)
    assert "sampled" in p.trust
    assert M.DistributedDPAccountant(p).planned().epsilon <= 2.0 + 1e-9


# ----------------------------------------- end to end over the secure sum


def test_end_to_end_over_pairwise_mask_secure_aggregation():
    from protocols.secagg import SecAggClient, SecAggConfig, SecAggServer, decode, encode

    ids = list(range(1, 8))
    cfg = SecAggConfig.create(ids, dimension=256, threshold=5)
    p = M.select_parameters(target_epsilon=3.0, delta=1e-5, num_clients=len(ids),
                            min_survivors=cfg.threshold, bits=24, dimension=200,
                            l2_clip=1.0, rounds=1)
    assert p.padded_dimension == cfg.dimension
    seed = M.rotation_seed(cfg.session_id.to_bytes(8, "big"), 0)
    rng = np.random.default_rng(3)
    updates = {u: rng.normal(0, 0.1, 200) for u in ids}
    clients = {u: SecAggClient(cfg, u, input=M.encode(p, updates[u], seed).vector) for u in ids}
    server = SecAggServer(cfg)
    dropped = {4}  # vanishes after sharing keys, before its masked input

    def to_clients(msgs):
        return [e.message for m in msgs for e in server.handle(decode(encode(m, cfg), cfg))]

    pending = to_clients([e.message for c in clients.values() for e in c.start()])
    for _ in range(10):
        if server.result is not None:
            break
        out = []
        for m in pending:
            if m.receiver in dropped and m.ROUND != "share_keys":
                continue
            out += [e.message for e in clients[m.receiver].handle(decode(encode(m, cfg), cfg))]
        pending = to_clients(out)
        if not pending and server.result is None:
            pending = [e.message for e in server.close_round()]
    res = server.result
    assert res is not None and res.included == frozenset(ids) - dropped
    out_sum = M.decode(p, res.raw_sum, seed, survivors=len(res.included))
    want = sum(_clip(updates[u], 1.0) for u in res.included)
    err = out_sum.sum - want
    assert abs(err.std() / p.noise_std(len(res.included)) - 1) < 0.3
    g = M.DistributedDPAccountant(p).record_round(len(res.included))
    assert g.epsilon <= 3.0 and g.honest_shares == (6,)


def test_client_randomness_comes_only_from_the_aes_ctr_source(params, monkeypatch):
    import random

    def boom(*a, **k):
        raise AssertionError("non-cryptographic generator used")

    monkeypatch.setattr(np.random, "default_rng", boom)
    monkeypatch.setattr(np.random, "random", boom)
    monkeypatch.setattr(random, "random", boom)
    src = discrete.DiscreteRandom(bytes(32))
    e1 = M.encode(params, np.full(300, 0.02), SEED, rng=src)
    assert src.words_drawn >= 2 * params.padded_dimension  # rounding + noise
    # the same secret seed reproduces the share; another one does not
    e2 = M.encode(params, np.full(300, 0.02), SEED, rng=discrete.DiscreteRandom(bytes(32)))
    e3 = M.encode(params, np.full(300, 0.02), SEED, rng=discrete.DiscreteRandom(b"\1" * 32))
    assert np.array_equal(e1.vector, e2.vector) and not np.array_equal(e1.vector, e3.vector)
