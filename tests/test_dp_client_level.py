"""dp.client_level: clip / noise / sum steps, adaptive clipping, accounting."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dp.accounting import epsilon
from dp.client_level import (
    AdaptiveClipping,
    ClientLevelDP,
    GaussianNoise,
    clip_update,
    mean_from_sum,
    sample_clients,
    sum_vectors,
)
from dp.secure_noise import CryptoRandom
from secagg.errors import EncodingError, ParameterError, PrivacyBudgetExceeded

DELTA = 1e-5
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    v=arrays(np.float64, st.integers(1, 50), elements=finite),
    c=st.floats(1e-3, 1e3),
)
def test_clip_never_exceeds_the_norm_and_keeps_direction(v, c):
    out = clip_update(v, c)
    assert np.linalg.norm(out.vector) <= c
    assert out.norm == pytest.approx(np.linalg.norm(v))
    if out.clipped:
        # a positive multiple of the input
        scale = np.linalg.norm(out.vector) / out.norm
        np.testing.assert_allclose(out.vector, v * scale, rtol=1e-9, atol=1e-12)
    else:
        np.testing.assert_array_equal(out.vector, v)


def test_clip_rejects_bad_input():
    with pytest.raises(EncodingError):
        clip_update([1.0, float("nan")], 1.0)
    with pytest.raises(EncodingError):
        clip_update(np.ones((2, 2)), 1.0)
    with pytest.raises(ParameterError):
        clip_update([1.0], 0.0)


def test_sum_and_mean():
    vs = [np.arange(4.0), np.ones(4), -np.arange(4.0)]
    np.testing.assert_array_equal(sum_vectors(vs), np.ones(4))
    np.testing.assert_array_equal(mean_from_sum(np.full(3, 6.0), 3.0), np.full(3, 2.0))
    with pytest.raises(EncodingError):
        sum_vectors([np.ones(3), np.ones(4)])
    with pytest.raises(ParameterError):
        sum_vectors([])


def test_gaussian_noise_std_is_multiplier_times_clip():
    noise = GaussianNoise(1.5, CryptoRandom(b"\x07" * 32))
    out = noise.add(np.zeros(50_000), clip_norm=2.0)
    assert noise.std(2.0) == 3.0
    assert out.std() == pytest.approx(3.0, rel=0.02)


def test_sample_clients_is_poisson():
    ids = list(range(20_000))
    picked = sample_clients(ids, 0.05, CryptoRandom(b"\x08" * 32))
    assert len(picked) == pytest.approx(1000, abs=150)
    assert set(picked) <= set(ids)
    assert sample_clients(ids[:10], 1.0) == ids[:10]
    with pytest.raises(ParameterError):
        sample_clients(ids, 0.0)


def test_adaptive_noise_split_matches_andrew_et_al():
    ac = AdaptiveClipping(1.0, noise_multiplier=1.0, count_noise_std=5.0)
    # (z^-2 - (2 sigma_b)^-2)^(-1/2)
    assert ac.update_noise_multiplier == pytest.approx((1 - 1 / 100) ** -0.5)
    # the two releases compose back to a Gaussian of multiplier z
    z_upd, z_cnt = ac.update_noise_multiplier, 2 * ac.count_noise_std
    assert (z_upd**-2 + z_cnt**-2) ** -0.5 == pytest.approx(1.0)
    with pytest.raises(ParameterError):
        AdaptiveClipping(1.0, noise_multiplier=2.0, count_noise_std=1.0)


def test_adaptive_clipping_tracks_the_target_quantile():
    rng = np.random.default_rng(0)
    norms = rng.lognormal(mean=1.0, sigma=0.5, size=5000)
    ac = AdaptiveClipping(
        0.1, noise_multiplier=1.0, count_noise_std=1.0, target_quantile=0.5, learning_rate=0.2
    )
    crypto = CryptoRandom(b"\x09" * 32)
    for r in range(150):
        batch = norms[(r * 100) % 5000 : (r * 100) % 5000 + 100]
        frac = ac.noisy_fraction((ac.indicator(n) for n in batch), 100, crypto)
        ac.update(frac)
    assert ac.clip_norm == pytest.approx(np.median(norms), rel=0.25)


def test_pipeline_round_charges_client_level_budget():
    rounds_allowed = 5
    budget = epsilon(0.5, 1.0, rounds_allowed, DELTA, unit="client").epsilon
    dp = ClientLevelDP(
        noise_multiplier=1.0,
        client_rate=0.5,
        population=10,
        delta=DELTA,
        clip_norm=1.0,
        epsilon_budget=budget,
        rng=CryptoRandom(b"\x0a" * 32),
    )
    ids = list(range(10))
    for r in range(rounds_allowed):
        if r % 2:
            dp.begin_round(r)  # charging up front, or inside aggregate: once either way
            assert dp.ledger.steps == r + 1
        picked = dp.sample(ids)
        contribs = [dp.contribute(np.full(8, 3.0)) for _ in picked]
        res = dp.aggregate(contribs, dim=8, round=r)
        assert res.clients == len(picked) and res.clip_norm == 1.0 and res.noise_std == 1.0
        assert res.mean.shape == (8,)
    g = dp.epsilon()
    assert g.unit == "client" and g.steps == rounds_allowed
    assert g.epsilon == pytest.approx(budget)
    with pytest.raises(PrivacyBudgetExceeded):
        dp.begin_round(rounds_allowed)
    with pytest.raises(PrivacyBudgetExceeded):
        dp.aggregate([dp.contribute(np.ones(8))], round=rounds_allowed)
    assert dp.ledger.steps == rounds_allowed


def test_pipeline_mean_is_unbiased_with_fixed_denominator():
    dp = ClientLevelDP(
        noise_multiplier=0.0 + 1e-9,
        client_rate=1.0,
        population=4,
        delta=DELTA,
        clip_norm=10.0,
    )
    contribs = [dp.contribute(np.full(3, float(i))) for i in range(4)]
    res = dp.aggregate(contribs)
    np.testing.assert_allclose(res.mean, np.full(3, 1.5), atol=1e-6)


def test_empty_round_still_releases_noise():
    dp = ClientLevelDP(
        noise_multiplier=1.0, client_rate=0.1, population=10, delta=DELTA, clip_norm=2.0
    )
    res = dp.aggregate([], dim=5)
    assert res.clients == 0 and res.mean.shape == (5,) and np.any(res.mean != 0)
    with pytest.raises(ParameterError):
        dp.aggregate([])


def test_pipeline_with_adaptive_clipping():
    ac = AdaptiveClipping(0.5, noise_multiplier=1.0, count_noise_std=2.0, learning_rate=0.5)
    dp = ClientLevelDP(
        noise_multiplier=1.0, client_rate=1.0, population=20, delta=DELTA, clip_norm=ac
    )
    assert dp.noise.noise_multiplier == pytest.approx(ac.update_noise_multiplier)
    for r in range(30):
        contribs = [dp.contribute(np.full(4, 1.0)) for _ in range(20)]  # norm 2
        res = dp.aggregate(contribs, round=r)
        assert res.next_clip_norm == dp.clip_norm
    assert 1.0 < dp.clip_norm < 4.0  # moved towards the median norm 2
    with pytest.raises(ParameterError):
        ClientLevelDP(noise_multiplier=2.0, client_rate=1.0, population=20, delta=DELTA,
                      clip_norm=ac)


def test_constructor_checks():
    with pytest.raises(ParameterError):
        ClientLevelDP(noise_multiplier=1.0, client_rate=0.0, population=10, delta=DELTA,
                      clip_norm=1.0)
    with pytest.raises(ParameterError):
        ClientLevelDP(noise_multiplier=1.0, client_rate=0.1, population=0, delta=DELTA,
                      clip_norm=1.0)
    with pytest.raises(ParameterError):
        ClientLevelDP(noise_multiplier=1.0, client_rate=0.1, population=10, delta=DELTA,
                      clip_norm=-1.0)
    with pytest.raises(ParameterError):
        GaussianNoise(-1.0)
    assert math.isinf(
        ClientLevelDP(noise_multiplier=0.0, client_rate=1.0, population=2, delta=DELTA,
                      clip_norm=1.0).ledger.epsilon_budget
    )


def test_release_takes_a_sum_computed_elsewhere():
    # the secure-sum path: begin_round charges, release noises, divides and adapts
    from dp.client_level import AdaptiveClipping, ClientLevelDP

    ada = AdaptiveClipping(1.0, 1.0, 0.6, target_quantile=0.5, learning_rate=0.5)
    dp_ = ClientLevelDP(noise_multiplier=1.0, client_rate=0.5, population=80, delta=1e-5,
                        clip_norm=ada)
    dp_.begin_round(1)
    assert len(dp_.ledger.entries) == 1
    # all 40 updates clipped: indicators sum to 40 * (0 - 1/2) = -20, so C grows
    res = dp_.release(np.zeros(50_000), clients=40, indicator_sum=-20.0, round=1)
    assert len(dp_.ledger.entries) == 1  # charged once, by begin_round
    assert res.clip_norm == 1.0 and res.next_clip_norm > 1.2
    assert abs(res.mean.std() - res.noise_std / 40.0) < 0.002  # divided by 0.5 * 80
    dp_.begin_round(2)  # the next round is charged again
    assert len(dp_.ledger.entries) == 2
    with pytest.raises(ParameterError, match="clients"):
        dp_.release(np.zeros(3), clients=-1)
