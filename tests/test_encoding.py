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
    v, n_clipped = enc.encode_counted(x)
    y = enc.decode(v, 1)
    assert np.all(np.abs(y - x) <= enc.error_bound(1) + 1e-12)
    assert n_clipped == 0
    assert np.array_equal(enc.encode(x), v)


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
    v, n_clipped = enc.encode_counted(np.array([0.5, 3.0, -7.0, 1.0]))
    assert n_clipped == 2
    assert np.allclose(enc.decode(v, 1), [0.5, 1.0, -1.0, 1.0])
    assert enc.encode_counted(np.array([0.5]))[1] == 0  # no state carried over
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


# -- immutability ------------------------------------------------------------------


def test_encoder_is_immutable_and_keeps_no_counters():
    enc = FixedPointEncoder(1.0, 16, max_summands=10)
    before = dict(vars(enc))
    enc.encode_counted(np.array([5.0, -5.0, 0.5]))
    enc.encode(np.array([5.0]))
    assert vars(enc) == before
    assert not hasattr(enc, "last_clipped") and not hasattr(enc, "total_clipped")
    with pytest.raises(ParameterError, match="immutable"):
        enc.clip = 2.0
    with pytest.raises(ParameterError, match="immutable"):
        del enc.scale
    assert enc.clip == 1.0 and enc.scale == 2.0**16


# -- headroom at the exact boundary ------------------------------------------------


def test_headroom_refuses_a_sum_that_would_wrap_below_the_full_modulus():
    # 3000 * 2^20 is about 3.1e9: below 2^32 but past 2^31, so sums wrap on decode.
    with pytest.raises(ParameterError, match="max_summands"):
        FixedPointEncoder(clip=1.0, frac_bits=20, max_summands=3000, modulus_bits=32)


@pytest.mark.parametrize(
    "kw, n_fit",
    [
        (dict(clip=1.0, frac_bits=20, modulus_bits=32), 2**11),  # 2^11 * 2^20 = 2^31
        (dict(clip=1.0, frac_bits=40, modulus_bits=64), 2**23),  # 2^23 * 2^40 = 2^63
        (dict(clip=1.0, frac_bits=10, modulus=2 * 50 * 2**10 + 1), 50),  # half = 50 * 2^10
    ],
)
def test_headroom_exact_boundary_both_sides(kw, n_fit):
    # N * max_int exactly m/2 is refused: +N * max_int would decode as negative.
    with pytest.raises(ParameterError, match="not below half the modulus"):
        FixedPointEncoder(max_summands=n_fit, **kw)
    enc = FixedPointEncoder(max_summands=n_fit - 1, **kw)
    assert (n_fit - 1) * enc.max_int < enc.modulus // 2 <= n_fit * enc.max_int
    for sign in (1.0, -1.0):
        one = enc.encode(np.full(3, sign))
        if enc.power_of_two:  # a sum of n_fit - 1 copies, computed by multiplication
            total = (one.astype(object) * (n_fit - 1) % enc.modulus).astype(enc.dtype)
        else:
            total = enc.sum([one] * (n_fit - 1))
        assert np.array_equal(enc.decode_int(total, n_fit - 1),
                              np.full(3, sign * (n_fit - 1) * enc.max_int))


def test_modulus_one_above_the_boundary_is_accepted():
    enc = FixedPointEncoder(1.0, 10, max_summands=50, modulus=2 * 50 * 2**10 + 2)
    total = enc.sum([enc.encode(np.array([1.0, -1.0]))] * 50)
    assert np.array_equal(enc.decode(total, 50), [50.0, -50.0])


# -- parameters that would encode everything to zero --------------------------------


def test_clip_that_rounds_to_zero_is_refused_naming_frac_bits():
    with pytest.raises(ParameterError, match=r"rounds to 0.*frac_bits to at least 19"):
        FixedPointEncoder(clip=1e-6, frac_bits=16, max_summands=10)
    enc = FixedPointEncoder(clip=1e-6, frac_bits=19, max_summands=10)
    assert enc.max_int == 1
    assert enc.decode(enc.encode(np.array([1e-6])), 1)[0] > 0
    # clip * scale exactly 1/2 rounds (half to even) to 0 as well
    with pytest.raises(ParameterError, match="frac_bits to at least 1"):
        FixedPointEncoder(clip=0.5, frac_bits=0, max_summands=10)
    with pytest.raises(ParameterError, match="rounds to 0"):
        FixedPointEncoder(clip=1.0, scale=0.25, max_summands=10)
    # stochastic rounding can still reach 1 from any positive clip
    assert FixedPointEncoder(1e-6, 16, 10, stochastic_rounding=True).max_int == 1


# -- clipping counted exactly ------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_narrow_float_one_ulp_above_the_clip_is_counted(dtype):
    x = np.array([0.0, 0.1, -0.1], dtype=dtype)
    # a clip just below x[1], which rounds to x[1] itself in the narrow type
    clip = float(np.nextafter(float(x[1]), 0.0))
    assert float(x[1]) > clip and dtype(clip) == x[1]
    enc = FixedPointEncoder(clip, 16, max_summands=10)
    v, n_clipped = enc.encode_counted(x)
    assert n_clipped == 2
    assert np.array_equal(enc.decode_int(v, 1), [0, enc.max_int, -enc.max_int])
    with pytest.raises(EncodingError, match=r"element 1 is .*\(2 elements out of range\)"):
        FixedPointEncoder(clip, 16, max_summands=10, on_clip="raise").encode(x)
    # one ulp above a representable clip
    up = np.nextafter(dtype(1.0), dtype(2.0))
    assert FixedPointEncoder(1.0, 16, 10).encode_counted(np.array([up, 1.0], dtype))[1] == 1


# -- one formula for the precision --------------------------------------------------


@given(
    clip=st.floats(1e-3, 1e3, allow_nan=False),
    n=st.integers(1, 10**6),
    bits=st.sampled_from([32, 64]),
    stochastic=st.booleans(),
)
def test_frac_bits_for_is_the_largest_the_constructor_accepts(clip, n, bits, stochastic):
    from secagg.encoding import frac_bits_for

    try:
        f = frac_bits_for(clip, n, bits, stochastic_rounding=stochastic)
    except ParameterError:
        with pytest.raises(ParameterError):
            FixedPointEncoder(clip, 0, n, modulus_bits=bits, stochastic_rounding=stochastic)
        return
    enc = FixedPointEncoder(clip, f, n, modulus_bits=bits, stochastic_rounding=stochastic)
    assert enc == enc and enc.scale == 2.0**f
    if f < 62:
        with pytest.raises(ParameterError, match="half the modulus"):
            FixedPointEncoder(clip, f + 1, n, modulus_bits=bits,
                              stochastic_rounding=stochastic)
    built = FixedPointEncoder.for_summands(clip, n, modulus_bits=bits,
                                           stochastic_rounding=stochastic)
    assert built.scale == enc.scale and built.max_int == enc.max_int


def test_frac_bits_for_known_values_and_refusals():
    from secagg.encoding import frac_bits_for

    assert frac_bits_for(1.0, 2047, 32) == 20  # 2047 * 2^20 < 2^31
    assert frac_bits_for(1.0, 2048, 32) == 19  # 2048 * 2^20 = 2^31 does not fit
    assert frac_bits_for(1.0, 1, 64) == 62
    assert frac_bits_for(2.0, 50, modulus=2 * 50 * 2**11 + 2) == 10
    enc = FixedPointEncoder.for_summands(4.0, 1000)
    assert enc.scale == 2.0**frac_bits_for(4.0, 1000) and enc.max_summands == 1000
    with pytest.raises(ParameterError, match="even at frac_bits=0"):
        frac_bits_for(2.0**31, 1, 32)
    with pytest.raises(ParameterError, match="rounds to 0 at every precision"):
        frac_bits_for(1e-9, 2**31, 32)
    with pytest.raises(ParameterError):
        frac_bits_for(-1.0, 10)
    with pytest.raises(ParameterError):
        frac_bits_for(1.0, 0)


# -- every failure is a SecAggError --------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        dict(clip=1e308, scale=1e10),  # clip * scale overflows to inf
        dict(clip="abc"),
        dict(clip=None),
        dict(clip=1.0, scale="x"),
        dict(clip=1.0, frac_bits=63),
        dict(clip=1.0, frac_bits=2.5),
        dict(clip=1.0, modulus=2),
    ],
)
def test_bad_parameters_raise_library_errors(kw):
    with pytest.raises(ParameterError):
        FixedPointEncoder(**kw)


def test_sum_takes_any_iterable_and_refuses_what_is_not_encoded():
    enc = FixedPointEncoder(1.0, 16, max_summands=10)
    vs = [enc.encode(np.array([0.25, -0.5])) for _ in range(3)]
    total = enc.sum(v for v in vs)
    assert np.allclose(enc.decode(total, 3), [0.75, -1.5])
    assert enc.sum(iter(vs[:1])) is not vs[0]  # a copy, not the input
    with pytest.raises(EncodingError, match="nothing to sum"):
        enc.sum(iter([]))
    with pytest.raises(EncodingError, match="iterable"):
        enc.sum(5)
    with pytest.raises(EncodingError, match="uint32"):
        enc.sum([np.array([0.5, 0.5])])  # floats are not silently cast
    with pytest.raises(EncodingError, match="uint32"):
        enc.sum([vs[0], [1, 2]])


@given(
    hnp.arrays(
        st.sampled_from([np.float16, np.float32, np.float64, np.int8, np.uint64, np.bool_,
                         np.complex64]),
        hnp.array_shapes(min_dims=0, max_dims=2, max_side=4),
    )
)
def test_encode_fuzz_raises_only_library_errors(x):
    for enc in (FixedPointEncoder(1.0, 16, 10), FixedPointEncoder(2.0, 30, 10, modulus_bits=64),
                FixedPointEncoder(1.0, 8, 10, modulus=1000003, stochastic_rounding=True)):
        try:
            v, n = enc.encode_counted(x)
        except EncodingError:
            continue
        assert v.dtype == enc.dtype and v.shape == x.shape and 0 <= n <= x.size
        y = enc.decode(v, 1)
        assert np.all(np.abs(y - np.clip(x.astype(np.float64), -enc.clip, enc.clip))
                      <= enc.error_bound(1) + 1e-12)


# -- checks at their exact edges --------------------------------------------------


@pytest.mark.parametrize("bad", [np.array([0.0, np.inf]), np.array([-np.inf, 0.5]),
                                 np.array([0.0, np.nan, 0.0]), np.array([np.nan, 0.0])])
def test_a_single_nan_or_infinity_anywhere_is_refused(bad):
    for on_clip in ("clip", "raise"):
        with pytest.raises(EncodingError, match="NaN and Inf cannot be encoded"):
            FixedPointEncoder(1.0, on_clip=on_clip).encode(bad)


def test_overflow_check_at_one_summand_fewer_than_the_sum_holds():
    enc = FixedPointEncoder(1.0, 16, max_summands=10)
    for sign in (1.0, -1.0):
        total = enc.sum([enc.encode(np.full(2, sign))] * 4)
        assert np.array_equal(enc.decode_int(total, 4), np.full(2, sign * 4 * enc.max_int))
        with pytest.raises(EncodingError, match="past the limit"):
            enc.decode_int(total, 3)
        with pytest.raises(EncodingError, match="past the limit"):
            enc.decode(total, 3)
    with pytest.raises(ParameterError, match="n_summands=11"):
        enc.decode_int(total, 11)
    with pytest.raises(ParameterError, match="n_summands=11"):
        enc.decode(total, 11)


def test_odd_modulus_add_reduces_a_sum_equal_to_the_modulus():
    m = 1000003
    enc = FixedPointEncoder(1.0, 8, max_summands=10, modulus=m)
    a = enc.encode(np.array([0.5, -0.5]))  # 128 and m - 128
    b = enc.encode(np.array([-0.5, 0.5]))
    assert np.array_equal(enc.add(a, b), [0, 0])
    assert np.array_equal(enc.decode(enc.add(a, b), 2), [0.0, 0.0])
    assert np.array_equal(enc.encode(np.zeros(3)), [0, 0, 0])


def test_stochastic_rounding_bound_uses_the_ceiling():
    # clip * scale = 4.16: stochastic rounding reaches 5 = ceil, so max_int must be 5
    enc = FixedPointEncoder(0.26, 4, max_summands=10, stochastic_rounding=True)
    assert enc.max_int == 5
    assert FixedPointEncoder(0.26, 4, max_summands=10).max_int == 4
    q = enc.decode_int(enc.encode(np.full(4000, 0.26)), 1)
    assert set(np.unique(q)) == {4, 5}


@pytest.mark.parametrize("kw", [dict(clip=1.0, frac_bits=True), dict(clip=1.0, max_summands=True)])
def test_booleans_are_not_integers(kw):
    with pytest.raises(ParameterError, match="must be an int, got bool"):
        FixedPointEncoder(**kw)


def test_encoded_vectors_must_be_one_dimensional():
    enc = FixedPointEncoder(1.0, 16, max_summands=10)
    flat = enc.encode(np.array([0.5, 0.25]))
    square = np.zeros((2, 2), dtype=np.uint32)
    for call in (lambda: enc.decode(square, 1), lambda: enc.decode_int(square, 1),
                 lambda: enc.add(square, square), lambda: enc.sum([square]),
                 lambda: enc.add(flat, square)):
        with pytest.raises(EncodingError, match=r"1-D uint32 vector, got dtype uint32, shape"):
            call()
