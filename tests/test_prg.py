import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from secagg import prg
from secagg.errors import ParameterError

# NIST SP 800-38A, F.5.5 CTR-AES256.Encrypt
NIST_KEY = bytes.fromhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
NIST_CTR = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
NIST_PT = bytes.fromhex(
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
)
NIST_CT = bytes.fromhex(
    "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5"
    "2b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6"
)


def test_keystream_matches_nist_sp800_38a():
    ks = prg.keystream(NIST_KEY, len(NIST_PT), NIST_CTR)
    assert bytes(a ^ b for a, b in zip(ks, NIST_PT)) == NIST_CT


def test_expand_is_the_keystream_of_the_derived_key():
    seed = bytes(range(32))
    raw = prg.keystream(seed, 4 * 1000, prg.counter_block(b"lbl"))
    v = prg.expand(seed, 1000, np.uint32, b"lbl")
    assert np.array_equal(v, np.frombuffer(raw, "<u4"))


def test_expand_across_chunk_boundaries():
    seed = prg.fresh_seed()
    n = (prg._CHUNK // 8) * 2 + 3  # three chunks, last partial
    v = prg.expand(seed, n, np.uint64)
    raw = prg.keystream(seed, n * 8, prg.counter_block())
    assert np.array_equal(v, np.frombuffer(raw, "<u8"))


@given(st.binary(min_size=32, max_size=32), st.integers(0, 300))
def test_deterministic_and_dtypes(seed, n):
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        a = prg.expand(seed, n, dt)
        b = prg.expand(seed, n, dt)
        assert a.dtype == dt and a.shape == (n,)
        assert np.array_equal(a, b)


def test_labels_separate_domains():
    seed = prg.fresh_seed()
    a = prg.expand(seed, 1000, np.uint64, b"a")
    b = prg.expand(seed, 1000, np.uint64, b"b")
    assert not np.array_equal(a, b)
    assert np.count_nonzero(a == b) < 5
    assert prg.counter_block(b"a") != prg.counter_block(b"b")
    # a label's stream does not start inside another's: no shifted overlap
    big_a = prg.expand(seed, 4096, np.uint64, b"a")
    assert not np.isin(b[:4], big_a).any()


@given(st.binary(min_size=32, max_size=32), st.integers(1, 200))
def test_masks_cancel(seed, n):
    rng = np.random.default_rng(n)
    x = rng.integers(0, 2**32, n, dtype=np.uint32)
    y = x.copy()
    prg.expand_into(y, seed, b"m")
    prg.expand_into(y, seed, b"m", subtract=True)
    assert np.array_equal(x, y)


def test_output_is_uniform_chi_square():
    v = prg.expand(prg.fresh_seed(), 1 << 18, np.uint8)
    counts = np.bincount(v, minlength=256)
    # chi-square goodness of fit against uniform; a correct stream fails 1 in 10^4 runs
    assert stats.chisquare(counts).pvalue > 1e-4


def test_output_is_writable_and_owned():
    v = prg.expand(prg.fresh_seed(), 10)
    v += 1  # must not raise


@pytest.mark.parametrize(
    "kwargs",
    [
        {"seed": b"short", "length": 4},
        {"seed": bytes(32), "length": -1},
        {"seed": bytes(32), "length": 4, "dtype": np.int32},
        {"seed": bytes(32), "length": 4, "dtype": np.float64},
        {"seed": "x" * 32, "length": 4},
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ParameterError):
        prg.expand(**kwargs)


@pytest.mark.parametrize("dt", [np.uint8, np.uint16, np.uint32, np.uint64])
def test_expand_into_adds_and_subtracts_in_the_stated_direction(dt):
    seed = bytes(range(32))
    x = np.arange(37, dtype=dt)
    mask = prg.expand(seed, 37, dt, b"lbl")
    y = x.copy()
    prg.expand_into(y, seed, b"lbl")
    assert np.array_equal(y, x + mask)  # numpy wrap-around: mod 2^bits
    z = x.copy()
    prg.expand_into(z, seed, b"lbl", subtract=True)
    assert np.array_equal(z, x - mask)
    assert not np.array_equal(y, z)
    # known answer: the first uint8 of an all-zero vector is the first keystream byte
    zero = np.zeros(4, dtype=np.uint8)
    prg.expand_into(zero, seed, b"lbl")
    assert bytes(zero) == prg.keystream(seed, 4, prg.counter_block(b"lbl"))


def test_expand_into_refuses_what_it_cannot_mask_in_place():
    seed = prg.fresh_seed()
    ro = np.zeros(4, dtype=np.uint32)
    ro.flags.writeable = False
    with pytest.raises(ParameterError, match="read-only"):
        prg.expand_into(ro, seed)
    assert not ro.any()
    for bad, match in [([1, 2], "got list"), (np.zeros((2, 2), np.uint32), r"shape \(2, 2\)"),
                       (np.zeros(3, np.int32), "uint8/16/32/64"),
                       (np.zeros(3, np.float64), "uint8/16/32/64")]:
        with pytest.raises(ParameterError, match=match):
            prg.expand_into(bad, seed)
    with pytest.raises(ParameterError):
        prg.expand_into(np.zeros(3, np.uint32), b"short")
    with pytest.raises(ParameterError):
        prg.expand_into(np.zeros(3, np.uint32), seed, "label")


def test_counter_block_known_answer():
    import hashlib

    for label in (b"", b"lbl", b"secagg/mask/self"):
        block = prg.counter_block(label)
        assert block == hashlib.sha256(b"secagg/prg/v1" + label).digest()[:8] + bytes(8)
    with pytest.raises(ParameterError):
        prg.counter_block("lbl")


def test_fresh_seeds_are_fresh():
    seeds = {prg.fresh_seed() for _ in range(16)}
    assert len(seeds) == 16 and all(len(s) == prg.SEED_BYTES for s in seeds)
    assert bytes(prg.SEED_BYTES) not in seeds


def test_keystream_refuses_bad_arguments():
    for kwargs in ({"key": bytes(31), "nbytes": 4}, {"key": bytes(32), "nbytes": -1},
                   {"key": bytes(32), "nbytes": 4, "counter_block": bytes(15)},
                   {"key": bytes(32), "nbytes": 4, "counter_block": "x" * 16}):
        with pytest.raises(ParameterError):
            prg.keystream(**kwargs)


def test_word_stream_draws_a_fresh_label_per_call():
    seed = bytes(range(32))
    ws = prg.WordStream(seed, b"pfx/")
    first, second = ws.words(5), ws.words(3)
    want0 = prg.expand(seed, 5, dtype=np.uint64, label=b"pfx/" + (0).to_bytes(8, "big"))
    want1 = prg.expand(seed, 3, dtype=np.uint64, label=b"pfx/" + (1).to_bytes(8, "big"))
    assert np.array_equal(first, want0) and np.array_equal(second, want1)
    assert ws.words_drawn == 8 and ws.words(0).shape == (0,)
    assert seed.hex() not in repr(ws) and "WordStream" in repr(ws)
    # another prefix is another stream
    assert not np.array_equal(prg.WordStream(seed, b"other/").words(5), first)


def test_word_stream_refuses_bad_arguments():
    with pytest.raises(ParameterError):
        prg.WordStream(b"short", b"p")
    ws = prg.WordStream(None, b"p")
    for bad in (-1, 1.5, True):
        with pytest.raises(ParameterError):
            ws.words(bad)
    assert ws.words(np.int64(2)).shape == (2,)
