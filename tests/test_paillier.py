"""secagg.paillier: packed encryption, exact sums, codecs, validation, interop.

Small keys (512/1024 bits) go through the loudly named test-only flag so the
suite stays fast; one test uses a real 2048-bit key.
"""

from __future__ import annotations

import copy
import pickle

import gmpy2
import numpy as np
import phe
import pytest
from hypothesis import given
from hypothesis import strategies as st

from secagg import paillier as P
from secagg.errors import (
    EncodingError,
    IntegrityError,
    ParameterError,
    ProtocolError,
    SecAggError,
)
from secagg.paillier import _obfuscators

INSECURE = {"insecure_allow_small_key_for_tests": True}


@pytest.fixture(scope="session")
def keys512():
    return P.generate_keypair(512, **INSECURE)


@pytest.fixture(scope="session")
def other512():
    return P.generate_keypair(512, **INSECURE)


@pytest.fixture(scope="session")
def keys1024():
    return P.generate_keypair(1024, **INSECURE)


@pytest.fixture(scope="session")
def djn512(keys512):
    return P.DJNTable(keys512[0], **INSECURE)


def layout_for(pk, dimension, **kw):
    return P.PackingLayout.create(pk, dimension, **kw, **INSECURE)


def ints_to_floats(layout, v):
    """Floats that encode exactly to the integers ``v``."""
    return np.asarray(v, dtype=np.float64) / layout.scale


def enc(pk, layout, x, **kw):
    return P.encrypt(pk, layout, x, **kw, **INSECURE)


def encrypt_mode(mode, keys, layout, x, djn=None):
    pk, sk = keys
    if mode == "online":
        return enc(pk, layout, x)
    if mode == "crt":
        return enc(pk, layout, x, private_key=sk)
    if mode == "pool":
        pool = P.ObfuscatorPool.precompute(pk, layout.ciphertexts, **INSECURE)
        return enc(pk, layout, x, pool=pool)
    return enc(pk, layout, x, djn=djn)


# ------------------------------------------------------------------ exact sums


@given(data=st.data())
def test_sum_is_exact_for_any_signs(keys512, djn512, data):
    pk, sk = keys512
    value_bits = data.draw(st.integers(2, 24), label="value_bits")
    capacity = data.draw(st.integers(1, 12), label="capacity")
    dimension = data.draw(st.integers(1, 60), label="dimension")
    clients = data.draw(st.integers(1, capacity), label="clients")
    layout = layout_for(pk, dimension, value_bits=value_bits, capacity=capacity, clip=2.5)
    m = layout.max_int
    ints = [
        np.array(data.draw(st.lists(st.integers(-m, m), min_size=dimension, max_size=dimension)))
        for _ in range(clients)
    ]
    modes = data.draw(
        st.lists(
            st.sampled_from(["online", "crt", "pool", "djn"]), min_size=clients, max_size=clients
        )
    )
    vecs = [
        encrypt_mode(mode, keys512, layout, ints_to_floats(layout, v), djn512)
        for mode, v in zip(modes, ints)
    ]
    total = P.aggregate(vecs)
    assert total.summands == clients
    expect = np.sum(ints, axis=0).astype(np.int64)
    np.testing.assert_array_equal(P.decrypt_integers(sk, total), expect)
    np.testing.assert_allclose(P.decrypt(sk, total), expect / layout.scale, rtol=0, atol=1e-9)


@pytest.mark.parametrize("capacity", [1, 2, 3, 7, 8, 13])
@pytest.mark.parametrize("value_bits", [2, 9, 16])
@pytest.mark.parametrize("pattern", ["all_max", "all_min", "alternating"])
def test_worst_case_full_capacity(keys512, capacity, value_bits, pattern):
    pk, sk = keys512
    layout = layout_for(pk, 37, value_bits=value_bits, capacity=capacity, clip=1.0)
    m = layout.max_int
    rows = []
    for i in range(capacity):
        if pattern == "all_max":
            rows.append(np.full(37, m))
        elif pattern == "all_min":
            rows.append(np.full(37, -m))
        else:  # neighbours of opposite sign, signs flipping per client
            s = np.where(np.arange(37) % 2 == i % 2, m, -m)
            rows.append(s)
    vecs = [enc(pk, layout, ints_to_floats(layout, r), private_key=sk) for r in rows]
    got = P.decrypt_integers(sk, P.aggregate(vecs))
    np.testing.assert_array_equal(got, np.sum(rows, axis=0))
    # floats at exactly +-clip take the same path
    x = np.full(37, 1.0 if pattern != "all_min" else -1.0)
    one = enc(pk, layout, x)
    assert P.decrypt_integers(sk, one)[0] == (m if pattern != "all_min" else -m)


def test_capacity_plus_one_is_refused(keys512):
    pk, sk = keys512
    layout = layout_for(pk, 10, capacity=3)
    vecs = [enc(pk, layout, np.full(10, 1.0), private_key=sk) for _ in range(4)]
    three = P.aggregate(vecs[:3])
    np.testing.assert_array_equal(P.decrypt_integers(sk, three), np.full(10, 3 * layout.max_int))
    with pytest.raises(ParameterError, match="capacity"):
        P.aggregate(vecs)
    with pytest.raises(ParameterError, match="capacity"):
        _ = three + vecs[3]
    with pytest.raises(ParameterError, match="capacity"):
        P.aggregate([vecs[0] + vecs[1], vecs[2] + vecs[3]])


@pytest.mark.parametrize("extra", [-1, 0, 1])
def test_dimensions_around_the_slot_count(keys512, extra):
    pk, sk = keys512
    base = layout_for(pk, 1, capacity=4)
    d = max(1, base.slots * 2 + extra)
    layout = layout_for(pk, d, capacity=4)
    assert layout.ciphertexts == -(-d // layout.slots)
    rng = np.random.default_rng(d)
    xs = [rng.uniform(-1, 1, d) for _ in range(4)]
    got = P.decrypt(sk, P.aggregate([enc(pk, layout, x) for x in xs]))
    np.testing.assert_allclose(got, np.sum(xs, axis=0), atol=4 * 0.5 / layout.scale + 1e-12)


def test_layout_arithmetic(keys1024):
    pk, _ = keys1024
    layout = layout_for(pk, 1000, value_bits=16, capacity=1000)
    assert layout.slot_bits == 16 + 10
    assert layout.slots == 1023 // 26
    assert layout.slots * layout.slot_bits < pk.n.bit_length()
    assert layout.max_int == 2**15 - 1
    assert layout.clip == pytest.approx(1.0)
    assert layout.ciphertext_bytes == 256
    with pytest.raises(ParameterError, match="slot"):
        layout_for(pk, 10, value_bits=48, capacity=2**20)


def test_float32_output_and_clipping(keys512):
    pk, sk = keys512
    layout = layout_for(pk, 4, clip=2.0)
    v = enc(pk, layout, np.array([5.0, -5.0, 0.5, -0.25], dtype=np.float32))
    out = P.decrypt(sk, v, dtype=np.float32)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [2.0, -2.0, 0.5, -0.25], atol=1e-4)
    with pytest.raises(ParameterError):
        P.decrypt(sk, v, dtype=np.int64)


def test_bad_values_are_refused(keys512):
    pk, _ = keys512
    layout = layout_for(pk, 3, clip=1.0)
    with pytest.raises(EncodingError, match="index 1"):
        enc(pk, layout, [0.0, float("nan"), 0.0])
    with pytest.raises(EncodingError, match="not finite"):
        enc(pk, layout, [0.0, 0.0, float("-inf")])
    with pytest.raises(EncodingError, match="shape"):
        enc(pk, layout, np.zeros(4))
    with pytest.raises(EncodingError, match="exceeds the clip bound 1"):
        enc(pk, layout, [0.0, 1.5, 0.0], on_clip="raise")
    with pytest.raises(EncodingError, match="dtype"):
        enc(pk, layout, np.array(["a", "b", "c"]))


# ------------------------------------------------------------ keys and policy


def test_small_keys_need_the_test_flag(keys1024):
    pk, _ = keys1024
    with pytest.raises(ParameterError, match="minimum is 2048"):
        P.generate_keypair(1024)
    with pytest.raises(ParameterError, match="minimum is 2048"):
        P.PackingLayout.create(pk, 10)
    with pytest.raises(ParameterError, match="minimum is 2048"):
        P.encrypt(pk, layout_for(pk, 2), [0.0, 0.0])
    with pytest.raises(ParameterError, match="minimum is 2048"):
        P.public_key_from_bytes(P.public_key_to_bytes(pk))
    with pytest.raises(ParameterError, match="minimum is 2048"):
        P.ObfuscatorPool(pk)
    with pytest.raises(ParameterError):
        P.generate_keypair(100, **INSECURE)
    with pytest.raises(ParameterError):
        P.generate_keypair(2047)


def test_key_serialisation_round_trip(keys512):
    pk, sk = keys512
    data = P.public_key_to_bytes(pk)
    assert data[:4] == b"SGPK" and data[4] == 1
    pk2 = P.public_key_from_bytes(data, **INSECURE)
    assert isinstance(pk2, phe.PaillierPublicKey) and pk2 == pk
    sk2 = P.private_key_from_bytes(P.private_key_to_bytes(sk), **INSECURE)
    assert isinstance(sk2, phe.PaillierPrivateKey) and sk2 == sk
    assert P.fingerprint(pk2) == P.fingerprint(pk)


def _truncations(data: bytes):
    step = max(1, len(data) // 40)
    return [data[:i] for i in range(0, len(data), step)]


def test_malformed_keys_are_refused(keys512):
    pk, sk = keys512
    for blob in (P.public_key_to_bytes(pk), P.private_key_to_bytes(sk)):
        for cut in _truncations(blob):
            with pytest.raises(ProtocolError):
                (P.public_key_from_bytes if blob[:4] == b"SGPK" else P.private_key_from_bytes)(
                    cut, **INSECURE
                )
        with pytest.raises(ProtocolError, match="trailing"):
            (P.public_key_from_bytes if blob[:4] == b"SGPK" else P.private_key_from_bytes)(
                blob + b"\0", **INSECURE
            )
    from secagg.wire import Writer

    n = int(pk.n)
    even = Writer(b"SGPK").u16(n.bit_length()).bigint(n + 1).getvalue()
    with pytest.raises(ProtocolError, match="odd"):
        P.public_key_from_bytes(even, **INSECURE)
    p = int(sk.p)
    prime = int(gmpy2.next_prime(1 << 511))
    with pytest.raises(ProtocolError, match="distinct primes"):
        P.public_key_from_bytes(Writer(b"SGPK").u16(512).bigint(prime).getvalue(), **INSECURE)
    liar = Writer(b"SGPK").u16(600).bigint(n).getvalue()
    with pytest.raises(ProtocolError, match="declares"):
        P.public_key_from_bytes(liar, **INSECURE)
    fake = Writer(b"SGSK").u16(512).bigint(p).bigint(int(sk.q) + 1).getvalue()  # even: never prime
    with pytest.raises(ProtocolError):
        P.private_key_from_bytes(fake, **INSECURE)
    with pytest.raises(ProtocolError, match="magic"):
        P.public_key_from_bytes(b"XXXX\x01" + P.public_key_to_bytes(pk)[5:], **INSECURE)
    with pytest.raises(ProtocolError, match="version"):
        P.public_key_from_bytes(b"SGPK\x02" + P.public_key_to_bytes(pk)[5:], **INSECURE)


# -------------------------------------------------------------- vector codec


@given(
    dimension=st.integers(1, 80),
    value_bits=st.integers(2, 30),
    capacity=st.integers(1, 300),
    clip=st.floats(1e-3, 1e3),
)
def test_vector_serialisation_round_trip(keys512, dimension, value_bits, capacity, clip):
    pk, sk = keys512
    layout = layout_for(pk, dimension, value_bits=value_bits, capacity=capacity, clip=clip)
    assert P.PackingLayout.from_bytes(layout.to_bytes()) == layout
    x = np.linspace(-clip, clip, dimension)
    v = enc(pk, layout, x, private_key=sk)
    data = v.to_bytes()
    w = P.EncryptedVector.from_bytes(data, pk, **INSECURE)
    assert w.layout == layout and w.summands == 1 and w.ciphertexts == v.ciphertexts
    assert w.to_bytes() == data
    np.testing.assert_array_equal(P.decrypt_integers(sk, w), P.decrypt_integers(sk, v))


def test_bytes_per_value_is_small(keys1024):
    pk, _ = keys1024
    layout = layout_for(pk, 3900, value_bits=16, capacity=1000)
    data = enc(pk, layout, np.zeros(3900)).to_bytes()
    # a 1024-bit key has 256-byte ciphertexts for 39 slots: about 6.6 bytes per value
    assert len(data) / 3900 < 6.7


def test_malformed_vectors_are_refused(keys512, other512):
    pk, sk = keys512
    layout = layout_for(pk, 30, capacity=5)
    v = enc(pk, layout, np.zeros(30))
    data = v.to_bytes()
    for cut in _truncations(data):
        with pytest.raises(ProtocolError):
            P.EncryptedVector.from_bytes(cut, pk, **INSECURE)
    with pytest.raises(ProtocolError, match="trailing"):
        P.EncryptedVector.from_bytes(data + b"\0", pk, **INSECURE)
    # another key: a clear error, not garbage
    with pytest.raises(ParameterError, match="another public key"):
        P.EncryptedVector.from_bytes(data, other512[0], **INSECURE)
    # summands outside [1, capacity]
    from secagg.wire import Reader, Writer

    def rebuild(summands=None, count=None, width=None, body=None, lay=None):
        r = Reader(data, b"SGPV")
        lay0, s, c, w = r.blob(), r.u64(), r.u32(), r.u16()
        b = r.raw(r.remaining())
        return (
            Writer(b"SGPV")
            .blob(lay if lay is not None else lay0)
            .u64(s if summands is None else summands)
            .u32(c if count is None else count)
            .u16(w if width is None else width)
            .raw(b if body is None else body)
            .getvalue()
        )

    for bad in (0, 6):
        with pytest.raises(ProtocolError, match="summands"):
            P.EncryptedVector.from_bytes(rebuild(summands=bad), pk, **INSECURE)
    with pytest.raises(ProtocolError, match="ciphertexts"):
        P.EncryptedVector.from_bytes(rebuild(count=layout.ciphertexts + 1), pk, **INSECURE)
    with pytest.raises(ProtocolError, match="width"):
        P.EncryptedVector.from_bytes(rebuild(width=layout.ciphertext_bytes + 1), pk, **INSECURE)
    # a layout whose redundant fields disagree
    lb = bytearray(layout.to_bytes())
    lb[-3] ^= 1  # slot bits
    with pytest.raises(ProtocolError, match="slots"):
        P.EncryptedVector.from_bytes(rebuild(lay=bytes(lb)), pk, **INSECURE)
    # ciphertexts outside the group: 0, n^2 - 1 is fine but n^2 is not, multiples of p
    width = layout.ciphertext_bytes
    n2 = int(pk.n) ** 2
    for bad_c in (0, int(sk.p), int(pk.n)):
        body = bad_c.to_bytes(width, "big") + data[-width * (layout.ciphertexts - 1) :]
        if layout.ciphertexts == 1:
            body = bad_c.to_bytes(width, "big")
        with pytest.raises(IntegrityError):
            P.EncryptedVector.from_bytes(rebuild(body=body), pk, **INSECURE)
    too_big = (n2).to_bytes(width, "big") * layout.ciphertexts
    with pytest.raises(IntegrityError, match="outside"):
        P.EncryptedVector.from_bytes(rebuild(body=too_big), pk, **INSECURE)


@given(st.binary(max_size=300))
def test_random_bytes_never_parse_silently(keys512, blob):
    pk, _ = keys512
    for parse in (
        lambda b: P.EncryptedVector.from_bytes(b, pk, **INSECURE),
        P.PackingLayout.from_bytes,
        lambda b: P.public_key_from_bytes(b, **INSECURE),
        lambda b: P.private_key_from_bytes(b, **INSECURE),
    ):
        with pytest.raises(SecAggError):
            parse(blob)
        with pytest.raises(SecAggError):
            parse(b"SGPV\x01" + blob)


def test_constructor_validates_ciphertexts(keys512):
    pk, sk = keys512
    layout = layout_for(pk, 3)
    good = enc(pk, layout, np.zeros(3)).ciphertexts
    v = P.EncryptedVector(pk, layout, good, **INSECURE)
    assert v.ciphertexts == good
    n = int(pk.n)
    for bad in (0, n * n, n * n + 5, int(sk.q) * 3):
        with pytest.raises(IntegrityError):
            P.EncryptedVector(pk, layout, [bad], **INSECURE)
        with pytest.raises(IntegrityError):
            P.raw_decrypt(sk, bad, **INSECURE)
    with pytest.raises(ParameterError, match="summands"):
        P.EncryptedVector(pk, layout, good, summands=layout.capacity + 1, **INSECURE)
    with pytest.raises(ParameterError, match="ints"):
        P.EncryptedVector(pk, layout, [float(good[0])], **INSECURE)
    with pytest.raises(ParameterError, match="ciphertexts for the layout"):
        P.EncryptedVector(pk, layout, good * 2, **INSECURE)


# ---------------------------------------------------- mismatches and tampering


def test_mismatched_keys_and_layouts_are_refused(keys512, other512):
    pk, sk = keys512
    pk2, sk2 = other512
    a = enc(pk, layout_for(pk, 5), np.zeros(5))
    b = enc(pk2, layout_for(pk2, 5), np.zeros(5))
    with pytest.raises(ParameterError, match="different keys"):
        _ = a + b
    with pytest.raises(ParameterError, match="layouts"):
        _ = a + enc(pk, layout_for(pk, 6), np.zeros(6))
    with pytest.raises(ParameterError, match="layouts"):
        _ = a + enc(pk, layout_for(pk, 5, clip=2.0), np.zeros(5))
    with pytest.raises(ParameterError, match="another key"):
        P.decrypt(sk2, a)
    with pytest.raises(ParameterError, match="another public key"):
        enc(pk2, layout_for(pk, 5), np.zeros(5))
    with pytest.raises(ParameterError, match="does not belong"):
        enc(pk, layout_for(pk, 5), np.zeros(5), private_key=sk2)
    with pytest.raises(ParameterError, match="at most one"):
        enc(
            pk,
            layout_for(pk, 5),
            np.zeros(5),
            private_key=sk,
            pool=P.ObfuscatorPool(pk, **INSECURE),
        )
    with pytest.raises(ParameterError):
        P.aggregate([])


def test_tampered_sums_are_detected(keys512):
    pk, sk = keys512
    layout = layout_for(pk, 5, capacity=2)  # 5 values in the first ciphertext's slots
    v = enc(pk, layout, np.zeros(5))
    n2 = int(pk.n) ** 2
    c = v.ciphertexts[0]
    # add a plaintext above the slot area
    big = P.raw_encrypt(pk, 1 << (layout.slots * layout.slot_bits), **INSECURE)
    t1 = P.EncryptedVector(pk, layout, [c * big % n2], **INSECURE)
    with pytest.raises(IntegrityError, match="overflows"):
        P.decrypt(sk, t1)
    # put something in a padding slot
    pad = P.raw_encrypt(pk, 1 << (layout.slot_bits * (layout.slots - 1)), **INSECURE)
    t2 = P.EncryptedVector(pk, layout, [c * pad % n2], **INSECURE)
    with pytest.raises(IntegrityError, match="padding"):
        P.decrypt(sk, t2)
    # push a slot past the largest honest sum
    over = P.raw_encrypt(pk, 3 * layout.max_int, **INSECURE)
    t3 = P.EncryptedVector(pk, layout, [c * over % n2], **INSECURE)
    with pytest.raises(IntegrityError, match="tampered"):
        P.decrypt(sk, t3)


# ------------------------------------------------------------ randomness/pool


def test_every_encryption_is_fresh(keys512, djn512):
    pk, sk = keys512
    layout = layout_for(pk, 4)
    x = np.zeros(4)
    seen = set()
    for kw in ({}, {"private_key": sk}, {"djn": djn512}):
        for _ in range(3):
            c = enc(pk, layout, x, **kw).ciphertexts
            assert c not in seen
            seen.add(c)


def test_pool_never_reuses_an_obfuscator(keys512):
    pk, sk = keys512
    layout = layout_for(pk, 3 * layout_for(pk, 1).slots)  # 3 ciphertexts
    pool = P.ObfuscatorPool.precompute(pk, 10, **INSECURE)
    pool.refill(2, private_key=sk)
    assert len(pool) == 12
    before = list(pool._items)
    assert len({int(o) for o in before}) == 12
    used = []
    for _ in range(4):
        v = enc(pk, layout, np.zeros(layout.dimension), pool=pool)
        # zero plaintexts are all-zero slots; c = (1 + m n) r^n, m = packed offsets
        used.append(v)
    assert len(pool) == 0
    with pytest.raises(ParameterError, match="pool has 0 left"):
        enc(pk, layout, np.zeros(layout.dimension), pool=pool)
    assert len(pool) == 0
    cts = [c for v in used for c in v.ciphertexts]
    assert len(set(cts)) == len(cts) == 12
    for v in used:
        np.testing.assert_array_equal(P.decrypt_integers(sk, v), np.zeros(layout.dimension))
    with pytest.raises(TypeError):
        pickle.dumps(pool)
    with pytest.raises(TypeError):
        copy.copy(pool)
    with pytest.raises(TypeError):
        copy.deepcopy(pool)


def test_pool_of_another_key_is_refused(keys512, other512):
    pk, _ = keys512
    layout = layout_for(pk, 3)
    foreign = P.ObfuscatorPool.precompute(other512[0], 5, **INSECURE)
    with pytest.raises(ParameterError, match="another public key"):
        enc(pk, layout, np.zeros(3), pool=foreign)
    assert len(foreign) == 5


def test_pool_refusal_leaves_it_unchanged(keys512):
    pk, _ = keys512
    layout = layout_for(pk, 2 * layout_for(pk, 1).slots)
    pool = P.ObfuscatorPool.precompute(pk, 1, **INSECURE)
    with pytest.raises(ParameterError):
        enc(pk, layout, np.zeros(layout.dimension), pool=pool)
    assert len(pool) == 1
    with pytest.raises(EncodingError):
        enc(pk, layout, np.full(layout.dimension, np.nan), pool=pool)
    assert len(pool) == 1


def test_djn_table_options(keys512):
    pk, sk = keys512
    t = P.DJNTable(pk, exponent_bits=257, window=5, **INSECURE)
    layout = layout_for(pk, 7)
    v = enc(pk, layout, np.linspace(-1, 1, 7), djn=t)
    np.testing.assert_allclose(P.decrypt(sk, v), np.linspace(-1, 1, 7), atol=1e-4)
    with pytest.raises(ParameterError):
        P.DJNTable(pk, exponent_bits=255, **INSECURE)
    with pytest.raises(TypeError):
        pickle.dumps(t)


def test_workers_spread_over_processes(keys512, djn512, monkeypatch):
    monkeypatch.setattr(_obfuscators, "PARALLEL_MIN_PER_WORKER", 1)
    pk, sk = keys512
    layout = layout_for(pk, 4 * layout_for(pk, 1).slots - 3)
    x = np.linspace(-1, 1, layout.dimension)
    vecs = [
        enc(pk, layout, x, workers=2),
        enc(pk, layout, x, private_key=sk, workers=2),
        enc(pk, layout, x, djn=djn512, workers=2),
    ]
    total = P.aggregate(vecs)
    got = P.decrypt_integers(sk, total, workers=2)
    np.testing.assert_array_equal(got, P.decrypt_integers(sk, total))
    np.testing.assert_allclose(got / layout.scale, 3 * x, atol=3e-4)
    pool = P.ObfuscatorPool.precompute(pk, 4, private_key=sk, workers=2, **INSECURE)
    assert len(pool) == 4
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ParameterError, match="workers"):
            enc(pk, layout, x, djn=djn512, workers=bad)
        with pytest.raises(ParameterError, match="workers"):
            P.decrypt(sk, total, workers=bad)


# ------------------------------------------------------------------- interop


def test_interop_with_phe(keys1024):
    pk, sk = keys1024
    # phe's ciphertext decrypts with ours, ours with phe's
    theirs = pk.encrypt(5)
    assert theirs.exponent == 0
    assert P.raw_decrypt(sk, theirs.ciphertext(), **INSECURE) == 5
    ours = P.raw_encrypt(pk, 7, **INSECURE)
    assert sk.raw_decrypt(ours) == 7
    assert sk.decrypt(phe.EncryptedNumber(pk, ours, 0)) == 7
    crt = P.raw_encrypt(pk, 11, private_key=sk, **INSECURE)
    assert sk.raw_decrypt(crt) == 11
    # and they add up under the same key
    both = theirs + phe.EncryptedNumber(pk, ours, 0)
    assert sk.decrypt(both) == 12
    assert P.raw_decrypt(sk, both.ciphertext(), **INSECURE) == 12
    # a phe float: our decryption yields its encoding
    f = pk.encrypt(3.5)
    m = P.raw_decrypt(sk, f.ciphertext(), **INSECURE)
    assert phe.EncodedNumber(pk, m, f.exponent).decode() == 3.5
    # a packed one-value vector is a valid phe ciphertext of the offset encoding
    layout = layout_for(pk, 1, clip=1.0)
    v = enc(pk, layout, [-0.5])
    u = sk.raw_decrypt(v.ciphertexts[0])
    assert u - layout.max_int == round(-0.5 * layout.scale)


# --------------------------------------------------------- one real-size key


def test_real_2048_bit_key():
    pk, sk = P.generate_keypair()
    assert pk.n.bit_length() == 2048
    layout = P.PackingLayout.create(pk, 200, clip=1.0, value_bits=16, capacity=1000)
    assert layout.slots == 78
    x = np.linspace(-1, 1, 200)
    y = -x[::-1] * 0.3
    total = P.encrypt(pk, layout, x) + P.encrypt(pk, layout, y, private_key=sk)
    np.testing.assert_allclose(P.decrypt(sk, total), x + y, atol=2 / layout.scale)
    data = total.to_bytes()
    assert len(data) < 8 * 200 * 1.1  # 3 ciphertexts for 200 values; < 8 bytes at scale
    assert P.public_key_from_bytes(P.public_key_to_bytes(pk)) == pk
