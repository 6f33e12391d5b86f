"""benchmarks/distributed_dp.py: the "before" reference it times against the
library is the same transform and the same sampler law, and is put back."""

from __future__ import annotations

import numpy as np

from benchmarks import distributed_dp as B
from dp import discrete
from dp import distributed as ddp


def test_butterfly_reference_is_the_same_transform():
    for logn in (0, 1, 5, 11, 17):
        x = np.random.default_rng(logn).normal(size=1 << logn)
        want = B.butterfly_hadamard(x)
        assert np.abs(ddp.hadamard(x) - want).max() <= 1e-13 * max(1.0, np.linalg.norm(x))


def test_previous_hot_path_swaps_in_the_references_and_restores_them():
    had = ddp.hadamard
    seed = ddp.rotation_seed(b"t", 0)
    x = np.random.default_rng(0).normal(size=4096)
    with B.previous_hot_path():
        assert ddp.hadamard is B.butterfly_hadamard and discrete._CHUNK > 2**40
        before = ddp.rotate(x, seed)
        one_pass = discrete.discrete_gaussian(1e4, 50_000, discrete.DiscreteRandom(bytes(32)))
    assert ddp.hadamard is had
    assert discrete._CHUNK == 1 << 15
    assert np.allclose(ddp.rotate(x, seed), before, rtol=0, atol=1e-12)
    chunked = discrete.discrete_gaussian(1e4, 50_000, discrete.DiscreteRandom(bytes(32)))
    # a draw longer than one pass takes other words, but the same law
    assert not np.array_equal(one_pass, chunked)
    assert abs(one_pass.var() / chunked.var() - 1) < 0.05
