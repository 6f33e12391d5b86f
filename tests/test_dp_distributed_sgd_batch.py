"""encode_batch processes a batch of example rows in blocks and must give, bit
for bit, what encoding one row at a time gives: the same output under a fixed
seed and the same randomness consumed (the rounding draws of row 0 first,
then row 1's, ...), whatever the shapes, clipping and rounding failures."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dp.distributed_sgd as S
from dp import discrete
from dp import distributed as M
from secagg.errors import EncodingError, ParameterError

SEED = M.rotation_seed(b"batch-test", 3)
KEY = bytes(range(32))


def reference_encode_batch(
    params: M.DistributedDPParams, grads: npt.ArrayLike, seed: bytes,
    rng: discrete.DiscreteRandom,
) -> npt.NDArray[np.uint32]:
    """The straightforward encoder: one example row at a time (clip, sign
    flip, rotate, scale, conditional rounding with fresh draws per attempt),
    then one noise share and the reduction mod 2^bits."""
    g = np.asarray(grads, dtype=np.float64)
    d_pad = params.padded_dimension
    signs = M._signs(seed, d_pad)
    limit = math.floor(Fraction(params.l2_sensitivity) ** 2)
    total = np.zeros(d_pad, dtype=np.int64)
    for row in g:
        norm = math.sqrt(float(row @ row))
        x = np.zeros(d_pad, dtype=np.float64)
        x[: params.dimension] = row
        if norm > params.l2_clip:
            x *= params.l2_clip / norm
        y = M.hadamard(x * signs)
        y *= params.scale
        floor = np.floor(y)
        frac = y - floor
        base = floor.astype(np.int64)
        for _ in range(S.MAX_ROUNDING_ATTEMPTS):
            u = (rng.words(d_pad) >> np.uint64(11)).astype(np.float64) * 2.0**-53
            z = base + (u < frac)
            if int(np.square(z).sum()) <= limit:
                break
        else:
            raise EncodingError("reference: conditional rounding failed")
        total += z
    if params.mechanism == "dgauss":
        total += discrete.discrete_gaussian(params.noise_variance, d_pad, rng)
    else:
        total += discrete.skellam(params.noise_variance, d_pad, rng)
    mask = np.uint64((1 << params.bits) - 1)
    return (total.view(np.uint64) & mask).astype(np.uint32)


def _params(dimension: int, mechanism: str = "dgauss", beta: float = M.DEFAULT_BETA,
            gamma: float = 1e-3, bits: int = 32) -> M.DistributedDPParams:
    return M.DistributedDPParams(
        mechanism=mechanism, dimension=dimension, l2_clip=1.0, bits=bits, gamma=gamma,
        noise_variance=400.0, num_clients=5, min_survivors=3, beta=beta)


def _grads(b: int, d: int, seed: int) -> np.ndarray:
    """Rows of norms from 0.05 to 3 (clip 1): some clipped, one zero row, one
    row exactly at the clip norm when there are enough rows."""
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(b, d))
    g /= np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-300)
    g *= rng.uniform(0.05, 3.0, size=(b, 1))
    if b >= 3:
        g[1] = 0.0
        g[2] /= np.linalg.norm(g[2])
    return g


def _both(p: M.DistributedDPParams, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """New and reference outputs under the same key; asserts that both leave
    the source at the same place (same words, same next draw)."""
    a, b = discrete.DiscreteRandom(KEY), discrete.DiscreteRandom(KEY)
    got = S.encode_batch(p, g, SEED, a)
    want = reference_encode_batch(p, g, SEED, b)
    assert a.words_drawn == b.words_drawn
    assert np.array_equal(a.words(4), b.words(4))
    return got, want, b.words_drawn


@pytest.mark.parametrize("mechanism", ["dgauss", "skellam"])
@pytest.mark.parametrize(
    ("b", "d"),
    [(0, 10), (1, 10), (1, 1), (2, 2), (5, 300), (7, 650), (33, 650), (130, 650),
     (70, 1024), (3, 1025), (2, 70_000)],
)
def test_batch_equals_the_per_row_reference(mechanism: str, b: int, d: int) -> None:
    p = _params(d, mechanism)
    g = _grads(b, d, seed=b * 1000 + d)
    got, want, _ = _both(p, g)
    assert got.dtype == np.uint32 and got.shape == (p.padded_dimension,)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("mechanism", ["dgauss", "skellam"])
@pytest.mark.parametrize(("b", "d"), [(1, 16), (40, 16), (9, 100), (150, 200)])
def test_rounding_failures_shift_later_rows_to_later_draws(mechanism: str, b: int,
                                                          d: int) -> None:
    """beta = 0.999 makes the norm bound tight, so many attempts fail: the
    failing row takes the next draw and the rows after it shift, as in the
    one-row loop."""
    p = _params(d, mechanism, beta=0.999, gamma=0.01)
    g = _grads(b, d, seed=d)
    got, want, drawn = _both(p, g)
    assert np.array_equal(got, want)
    attempts = (drawn - _noise_words(p, mechanism)) // p.padded_dimension
    if b > 1:
        assert attempts > b  # some rows needed more than one attempt


def _noise_words(p: M.DistributedDPParams, mechanism: str) -> int:
    r = discrete.DiscreteRandom(KEY)
    if mechanism == "dgauss":
        discrete.discrete_gaussian(p.noise_variance, p.padded_dimension, r)
    else:
        discrete.skellam(p.noise_variance, p.padded_dimension, r)
    return r.words_drawn


@pytest.mark.parametrize("layout", ["fortran", "strided", "float32"])
def test_any_memory_layout_gives_the_reference(layout: str) -> None:
    p = _params(650)
    g = _grads(40, 650, seed=11)
    if layout == "fortran":
        g = np.asfortranarray(g)
    elif layout == "strided":
        g = np.repeat(g, 2, axis=1)[:, ::2]
    else:
        g = g.astype(np.float32)
    got, want, _ = _both(p, g)
    assert np.array_equal(got, want)


def test_blocks_of_rows_do_not_change_the_output(monkeypatch: pytest.MonkeyPatch) -> None:
    p = _params(300, beta=0.9, gamma=0.003)
    g = _grads(25, 300, seed=5)
    outs = []
    for values in (1, 512, 4096, 1 << 16, 1 << 30):  # 1 row per block .. all rows in one
        monkeypatch.setattr(S, "_BLOCK_VALUES", values)
        outs.append(_both(p, g)[0])
    assert all(np.array_equal(o, outs[0]) for o in outs)


@settings(max_examples=40, deadline=None)
@given(
    b=st.integers(0, 12), d=st.integers(1, 300),
    mechanism=st.sampled_from(["dgauss", "skellam"]),
    beta=st.sampled_from([0.0, 0.3, M.DEFAULT_BETA, 0.99]),
    gamma=st.sampled_from([1e-4, 0.01, 0.2]), data_seed=st.integers(0, 2**32 - 1),
    block=st.sampled_from([1, 64, 1 << 16]),
)
def test_property_batch_equals_reference(b: int, d: int, mechanism: str, beta: float,
                                         gamma: float, data_seed: int, block: int) -> None:
    p = _params(d, mechanism, beta=beta, gamma=gamma)
    g = _grads(b, d, data_seed)
    old = S._BLOCK_VALUES
    S._BLOCK_VALUES = block  # type: ignore[misc]
    try:
        got, want, _ = _both(p, g)
    finally:
        S._BLOCK_VALUES = old  # type: ignore[misc]
    assert np.array_equal(got, want)


def test_fewer_bits_reduce_the_same_sum() -> None:
    p20, p32 = _params(300, bits=20), _params(300, bits=32)
    g = _grads(6, 300, seed=1)
    a = S.encode_batch(p20, g, SEED, discrete.DiscreteRandom(KEY))
    b = S.encode_batch(p32, g, SEED, discrete.DiscreteRandom(KEY))
    assert np.array_equal(a, b & np.uint32((1 << 20) - 1))
    assert int(a.max()) < 2**20


@pytest.mark.parametrize("max_attempts", [1, 2, 3])
def test_gives_up_on_the_same_row_as_the_reference(monkeypatch: pytest.MonkeyPatch,
                                                   max_attempts: int) -> None:
    """With few attempts allowed and a tight bound, the batch refuses exactly
    when the one-row loop does, and otherwise agrees with it."""
    monkeypatch.setattr(S, "MAX_ROUNDING_ATTEMPTS", max_attempts)
    p = _params(16, beta=0.999, gamma=0.01)
    outcomes = set()
    for k in range(20):
        g = _grads(3, 16, seed=k)
        a, b = discrete.DiscreteRandom(KEY), discrete.DiscreteRandom(KEY)
        try:
            want = reference_encode_batch(p, g, SEED, b)
        except EncodingError:
            with pytest.raises(EncodingError, match=f"failed {max_attempts} times"):
                S.encode_batch(p, g, SEED, a)
            outcomes.add("refused")
        else:
            assert np.array_equal(S.encode_batch(p, g, SEED, a), want)
            outcomes.add("encoded")
    assert outcomes == {"refused", "encoded"}


def test_rounded_rows_are_within_the_exact_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without noise the output is the sum of the rounded rows; one row at a
    time, each is within the exact integer L2 bound and within 1 of the
    scaled rotation per coordinate."""
    monkeypatch.setattr(discrete, "discrete_gaussian",
                        lambda v, n, rng=None: np.zeros(n, dtype=np.int64))
    p = _params(300, beta=0.99, gamma=0.002)
    for row in _grads(8, 300, seed=9):
        v = S.encode_batch(p, row[None, :], SEED, discrete.DiscreteRandom(KEY)).astype(np.int64)
        z = np.where(v >= 2**31, v - 2**32, v)
        assert Fraction(int(np.dot(z, z))) <= Fraction(p.l2_sensitivity) ** 2
        n = float(np.linalg.norm(row))
        x = np.zeros(p.padded_dimension)
        x[:300] = row * (min(1.0, 1.0 / n) if n > 0 else 1.0)
        assert np.abs(z - M.rotate(x, SEED) * p.scale).max() < 1.0 + 1e-6


def _reference_round_rows(y: np.ndarray, limit: int,
                          rng: discrete.DiscreteRandom) -> np.ndarray:
    """The one-row rounding loop over the rows of ``y``: the summed rows."""
    total = np.zeros(y.shape[1], dtype=np.int64)
    for row in y:
        floor = np.floor(row)
        frac = row - floor
        base = floor.astype(np.int64)
        for _ in range(S.MAX_ROUNDING_ATTEMPTS):
            u = (rng.words(y.shape[1]) >> np.uint64(11)).astype(np.float64) * 2.0**-53
            z = base + (u < frac)
            if int(np.square(z).sum()) <= limit:
                break
        else:
            raise EncodingError("reference: conditional rounding failed")
        total += z
    return total


def _round_rows(y: np.ndarray, limit: int, rng: discrete.DiscreteRandom,
                total: np.ndarray) -> None:
    """The library's block rounding on a copy of ``y``, with fresh scratch."""
    scratch = np.empty((2, *y.shape), dtype=np.int64)
    S._round_rows(y.copy(), limit, 0.5, rng, total, scratch)


_AWKWARD = np.array([-1e-20, -5e-324, -0.0, 0.0, 3.0, -3.0, 2.5, -2.5, 1 - 2.0**-53,
                     -1 + 2.0**-54, 7.999999999])


@pytest.mark.parametrize("quantile", [0.2, 0.6, 1.0, None])
def test_rounding_of_awkward_values_matches_the_one_row_loop(quantile: float | None) -> None:
    """Tiny negatives (frac rounds to 1.0 in float: always up), signed zeros,
    integers, halves, with norm bounds from tight (the largest row fails most
    attempts) to loose (every row passes whatever the draw; None adds values
    near 2^40)."""
    rng = np.random.default_rng(7)
    y = rng.choice(_AWKWARD, size=(9, 64))
    y[::2] += rng.normal(0, 20, size=(5, 64))
    y[1, :] = -1e-300  # every coordinate rounds up to 0: always passes
    if quantile is None:
        y[3, ::5] = 2.0**40 + 0.5
        limit = 2**100
    else:
        big = y[int(np.argmax(np.square(np.floor(y)).sum(axis=1)))]
        tries = np.floor(big) + (rng.random((400, 64)) < big - np.floor(big))
        limit = int(np.quantile(np.square(tries).sum(axis=1), quantile))
    a, b = discrete.DiscreteRandom(KEY), discrete.DiscreteRandom(KEY)
    want = _reference_round_rows(y, limit, b)
    got = np.zeros(64, dtype=np.int64)
    _round_rows(y, limit, a, got)
    assert np.array_equal(got, want)
    assert a.words_drawn == b.words_drawn
    attempts = b.words_drawn // 64
    if quantile is None:
        assert attempts == 9  # one draw per row
    elif quantile == 0.2:
        assert attempts > 9  # the largest row failed some attempts


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 8])
def test_a_row_exactly_at_the_bound_passes(limit: int) -> None:
    """Halves round to 0 or 1: the squared norm is the count rounded up, so
    the bound is met with equality often; the row passes then, as in the
    one-row loop (``<=``)."""
    y = np.full((4, 8), 0.5)
    a, b = discrete.DiscreteRandom(KEY), discrete.DiscreteRandom(KEY)
    want = _reference_round_rows(y, limit, b)
    got = np.zeros(8, dtype=np.int64)
    _round_rows(y, limit, a, got)
    assert np.array_equal(got, want) and a.words_drawn == b.words_drawn
    assert int(got.sum()) <= 4 * limit


# ------------------------------------------------------------ matrix hadamard


@pytest.mark.parametrize("logn", [0, 1, 3, 5, 6, 10, 11, 16, 17])
def test_hadamard_of_rows_is_bit_identical_to_each_row(logn: int) -> None:
    n = 1 << logn
    rows = 2 if logn >= 16 else 5
    x = np.random.default_rng(logn).normal(size=(rows, n)) * np.array([[1e-3], [1.0]] * 3)[:rows]
    y = M.hadamard(x)
    assert y.shape == x.shape and y.dtype == np.float64
    for i in range(rows):
        assert np.array_equal(y[i].view(np.uint64), M.hadamard(x[i]).view(np.uint64))
    assert np.array_equal(x, np.random.default_rng(logn).normal(size=(rows, n))
                          * np.array([[1e-3], [1.0]] * 3)[:rows])  # input untouched


def test_hadamard_of_rows_accepts_no_rows_strided_and_integer_input() -> None:
    assert M.hadamard(np.zeros((0, 8))).shape == (0, 8)
    x = np.random.default_rng(0).normal(size=(4, 64))
    assert np.array_equal(M.hadamard(x[::2, ::2]), M.hadamard(x[::2, ::2].copy()))
    assert np.array_equal(M.hadamard(x.T.copy().T), M.hadamard(x))
    assert np.array_equal(M.hadamard(np.arange(32).reshape(2, 16)),
                          M.hadamard(np.arange(32.0).reshape(2, 16)))
    one = np.ones((3, 1))
    out = M.hadamard(one)
    assert out.tolist() == [[1.0]] * 3 and out is not one


@pytest.mark.parametrize("shape", [(12,), (2, 12), (3, 0), (0,), (), (2, 2, 2)])
def test_hadamard_refuses_other_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ParameterError, match=r"power of two|axes"):
        M.hadamard(np.ones(shape))


# ------------------------------------------------------------ the benchmark


def test_benchmark_reference_and_patches_are_the_library_encoder_and_restore() -> None:
    from benchmarks import distributed_dp as B
    from protocols.fedavg import dp_distributed_sgd as driver

    p = _params(650)
    g = _grads(9, 650, seed=2)
    got = B.per_row_encode_batch(p, g, SEED, discrete.DiscreteRandom(KEY))
    assert np.array_equal(got, _both(p, g)[1])
    real_encode, real_random, real_rotation = (
        S.encode_batch, discrete.DiscreteRandom, M.rotation_seed)
    with B.per_row_dpsgd():
        assert S.encode_batch is B.per_row_encode_batch
    with B.fixed_dpsgd_sources(b"t"):
        first = [driver._Client(np.zeros((2, 1)), np.zeros(2)).rng.words(3) for _ in range(2)]
        rot = M.rotation_seed(b"fresh context", 5)
    with B.fixed_dpsgd_sources(b"t"):
        again = [driver._Client(np.zeros((2, 1)), np.zeros(2)).rng.words(3) for _ in range(2)]
        assert M.rotation_seed(b"another context", 5) == rot
    assert [a.tolist() for a in first] == [a.tolist() for a in again]
    assert first[0].tolist() != first[1].tolist()  # each client its own seed
    assert (S.encode_batch, discrete.DiscreteRandom, M.rotation_seed) == (
        real_encode, real_random, real_rotation)
