import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from secagg import FixedPointEncoder
from secagg.errors import EncodingError, ParameterError


def floats_in(clip):
    return st.floats(-clip, clip, allow_nan=False, allow_infinity=False, width=64)


ENCODERS = [
    dict(clip=1.0, frac_bits=16, max_summands=100, modulus_bits=32),
    dict(clip=4.0, frac_bits=40, max_summands=1000, modulus_bits=64),
    dict(clip=2.0, frac_bits=10, max_summands=50, modulus=(1 << 31) - 1),
]


@pytest.mark.parametrize("kw", ENCODERS)
@given(data=st.data())
def test_round_trip_within_bound(kw, data):
    enc = FixedPointEncoder(**kw)
    x = data.draw(hnp.arrays(np.float64, st.integers(0, 50), elements=floats_in(kw["clip"])))
    y = enc.decode(enc.encode(x), 1)
    assert np.all(np.abs(y - x) <= enc.error_bound(1) + 1e-12)
    assert enc.last_clipped == 0


@pytest.mark.parametrize("kw", ENCODERS)
@given(data=st.data())
def test_sum_of_encodings_decodes_to_sum(kw, data):
    enc = FixedPointEncoder(**kw)
    n = data.draw(st.integers(1, 20))
    d = data.draw(st.integers(1, 20))
    xs = [
        data.draw(hnp.arrays(np.float64, d, elements=floats_in(kw["clip"]))) for _ in range(n)
    ]
    total = enc.sum([enc.encode(x) for x in xs])
    y = enc.decode(total, n)
    assert np.all(np.abs(y - np.sum(xs, axis=0)) <= enc.error_bound(n) + 1e-9)


def test_worst_case_full_capacity_both_signs():
    enc = FixedPointEncoder(1.0, 16, max_summands=1000, modulus_bits=32)
    for sign in (1.0, -1.0):
        x = np.full(7, sign)
        total = enc.sum([enc.encode(x)] * 1000)
        assert np.allclose(enc.decode(total, 1000), 1000 * sign)


def test_capacity_check_names_parameter():
    with pytest.raises(ParameterError, match="max_summands"):
        FixedPointEncoder(1.0, 20, max_summands=5000, modulus_bits=32)
    # the same fits in 64 bits
    FixedPointEncoder(1.0, 20, max_summands=5000, modulus_bits=64)


def test_overflowed_sum_is_detected():
    enc = FixedPointEncoder(1.0, 16, max_summands=10)
    total = enc.sum([enc.encode(np.ones(3))] * 10)
    with pytest.raises(EncodingError, match="past the limit"):
        enc.decode(total, 5)  # claims 5 summands: more than 5 * max_int


def test_clipping_is_counted_or_refused():
    enc = FixedPointEncoder(1.0, 16, max_summands=10)
    y = enc.decode(enc.encode(np.array([0.5, 3.0, -7.0, 1.0])), 1)
    assert enc.last_clipped == 2 and enc.total_clipped == 2
    assert np.allclose(y, [0.5, 1.0, -1.0, 1.0])
    strict = FixedPointEncoder(1.0, 16, max_summands=10, on_clip="raise")
    with pytest.raises(EncodingError, match=r"element 1 is 3.0, past the clipping bound 1.0"):
        strict.encode(np.array([0.5, 3.0]))


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.array([1.0, np.nan]), "element 1 is nan"),
        (np.array([np.inf]), "element 0 is inf"),
        (np.array([1, 2], dtype=np.int64), "dtype int64"),
        (np.zeros((2, 2)), r"shape \(2, 2\)"),
        ([0.1, 0.2], "numpy float array"),
    ],
)
def test_bad_input(bad, match):
    with pytest.raises(EncodingError, match=match):
        FixedPointEncoder(1.0).encode(bad)


def test_decode_refuses_wrong_dtype_and_residues():
    enc = FixedPointEncoder(1.0, 10, max_summands=10, modulus=1009 * 1013)
    with pytest.raises(EncodingError):
        enc.decode(np.zeros(3, dtype=np.uint32))
    with pytest.raises(EncodingError, match="not below the modulus"):
        enc.decode(np.array([1009 * 1013], dtype=np.uint64))


@pytest.mark.parametrize(
    "kw",
    [
        dict(clip=0.0),
        dict(clip=float("nan")),
        dict(clip=1.0, modulus_bits=16),
        dict(clip=1.0, max_summands=0),
        dict(clip=1.0, modulus=2**64),
        dict(clip=1.0, on_clip="ignore"),
        dict(clip=1.0, frac_bits=None),
    ],
)
def test_bad_parameters(kw):
    with pytest.raises(ParameterError):
        FixedPointEncoder(**kw)


def test_stochastic_rounding_is_unbiased():
    enc = FixedPointEncoder(1.0, 4, max_summands=100000, modulus_bits=64,
                            stochastic_rounding=True)
    x = np.full(200000, 0.3 / 16)  # 0.3 of one quantum
    q = enc.decode(enc.encode(x), 1) * 16
    assert set(np.unique(q)) <= {0.0, 1.0}
    # mean 0.3, std of the mean about 0.001
    assert abs(q.mean() - 0.3) < 0.006
    deterministic = FixedPointEncoder(1.0, 4, max_summands=10)
    assert np.all(deterministic.decode(deterministic.encode(x), 1) == 0)


def test_float32_input_and_error_bound_documented():
    enc = FixedPointEncoder(1.0, 20, max_summands=10)
    x = np.linspace(-1, 1, 101, dtype=np.float32)
    assert np.all(np.abs(enc.decode(enc.encode(x), 1) - x) <= enc.error_bound(1))
    assert enc.error_bound(10) == 10 * 0.5 / 2**20
