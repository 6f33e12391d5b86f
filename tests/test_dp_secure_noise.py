"""dp.secure_noise: cryptographic Gaussian noise and sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from dp.secure_noise import SECURE_NOISE_DRAWS, CryptoRandom
from secagg.errors import ParameterError


def test_standard_normal_is_gaussian():
    z = CryptoRandom(b"\x01" * 32).standard_normal(200_000)
    assert abs(z.mean()) < 0.01
    assert z.var() == pytest.approx(1.0, rel=0.01)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert np.all(np.isfinite(z))


@pytest.mark.parametrize("std", [0.3, 2.5])
def test_gaussian_has_the_requested_variance(std):
    x = CryptoRandom(b"\x02" * 32).gaussian(std, 100_000)
    assert x.var() == pytest.approx(std**2, rel=0.02)
    assert stats.kstest(x / std, "norm").pvalue > 1e-3


def test_floating_point_defence_sums_several_draws():
    rng = CryptoRandom(b"\x03" * 32)
    rng.gaussian(1.0, 1000)
    # 4 draws of 1000 normals, each from 1000 (even) 64-bit words
    assert SECURE_NOISE_DRAWS == 4
    assert rng.words_drawn == 4 * 1000


def test_odd_sizes_and_zero():
    rng = CryptoRandom()
    assert rng.standard_normal(7).shape == (7,)
    assert rng.standard_normal(0).shape == (0,)
    assert np.all(rng.gaussian(0.0, 5) == 0)


def test_same_seed_same_stream_fresh_labels_per_call():
    a, b = CryptoRandom(b"\x04" * 32), CryptoRandom(b"\x04" * 32)
    x1, x2 = a.standard_normal(64), a.standard_normal(64)
    assert np.array_equal(x1, b.standard_normal(64))
    assert not np.array_equal(x1, x2)  # a new keystream label per call
    assert not np.array_equal(x1, CryptoRandom().standard_normal(64))


def test_uniform_and_bernoulli():
    rng = CryptoRandom(b"\x05" * 32)
    u = rng.uniform(100_000)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    m = rng.bernoulli_mask(100_000, 0.1)
    assert m.dtype == np.bool_
    assert m.mean() == pytest.approx(0.1, abs=0.005)
    assert not rng.bernoulli_mask(10, 0.0).any() and rng.bernoulli_mask(10, 1.0).all()


def test_gaussian_like_matches_reference_tensor():
    ref = torch.zeros(3, 4, dtype=torch.float64)
    n = CryptoRandom().gaussian_like(2.0, ref)
    assert n.shape == ref.shape and n.dtype == torch.float64
    assert CryptoRandom().gaussian_like(1.0, torch.zeros(5)).dtype == torch.float32


def test_bad_arguments():
    with pytest.raises(ParameterError):
        CryptoRandom(b"short")
    rng = CryptoRandom()
    with pytest.raises(ParameterError):
        rng.gaussian(-1.0, 3)
    with pytest.raises(ParameterError):
        rng.gaussian(float("nan"), 3)
    with pytest.raises(ParameterError):
        rng.bernoulli_mask(3, 1.5)
    with pytest.raises(ParameterError):
        rng.uniform(-1)
    assert "seed" not in repr(rng) and "\\x" not in repr(rng)


def test_numpy_and_torch_box_muller_agree(monkeypatch):
    import sys

    from dp import secure_noise

    rng = np.random.default_rng(0)
    u1 = 1.0 - rng.random(1000)  # (0, 1]
    u2 = rng.random(1000)
    with_torch = secure_noise._box_muller(u1, u2)
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not loaded
    without = secure_noise._box_muller(u1, u2)
    np.testing.assert_allclose(with_torch, without, rtol=1e-12, atol=1e-12)


def _reachable_as_noise(y: np.ndarray, k: float) -> np.ndarray:
    """Whether each float64 ``y`` is fl(s * k) for some float64 s: the only
    values ``gaussian`` can return when the scale ``std / 2`` is ``k``."""
    s0 = y / k
    ok = np.zeros(y.shape, dtype=bool)
    for s in (s0, np.nextafter(s0, np.inf), np.nextafter(s0, -np.inf)):
        ok |= (s * k) == y
    return ok


def test_float_noise_does_not_hide_a_contribution_from_a_rounding_attack():
    # What SECURITY.md says: summing four draws does not stop floating-point
    # attacks. Noise of std 1.5 is fl(S * 0.75) for a float64 S, which misses
    # about a third of the floats in part of its range; released values
    # 0 + noise always are such values, c + noise often are not.
    std, c, n = 1.5, 0.37, 20_000
    noise = CryptoRandom(b"\x05" * 32).gaussian(std, n)
    k = std / np.sqrt(SECURE_NOISE_DRAWS)
    without = 0.0 + noise
    with_one = c + noise
    assert _reachable_as_noise(without, k).all()  # no false alarm, ever
    caught = 1.0 - _reachable_as_noise(with_one, k).mean()
    assert caught > 0.05  # a share of outputs reveals the contribution with certainty


def test_a_keystream_source_needs_its_own_label():
    from dp.discrete import DiscreteRandom
    from dp.secure_noise import KeystreamSource

    with pytest.raises(ParameterError, match="label"):
        KeystreamSource(bytes(32))
    a, b = CryptoRandom(bytes(32)), DiscreteRandom(bytes(32))
    assert a.LABEL != b.LABEL
    assert not np.array_equal(a._words(8), b.words(8))  # one seed, two streams
    assert repr(b) == "DiscreteRandom(words_drawn=8)"
