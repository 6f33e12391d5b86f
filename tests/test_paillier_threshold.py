"""secagg.paillier.threshold: t-of-n decryption of packed vectors.

Keys here are 256-bit safe-prime keys behind the loudly named test-only flag;
one slow test deals a real 2048-bit key.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import pickle

import gmpy2
import numpy as np
import phe
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secagg import paillier as P
from secagg.errors import (
    AbortError,
    IntegrityError,
    ParameterError,
    ProtocolError,
    SecAggError,
)
from secagg.paillier import threshold as T

INSECURE = {"insecure_allow_small_key_for_tests": True}

# Two fixed 128-bit safe primes (p = 2p' + 1 with p' prime) for known answers.
KAT_P = 276560894419871221655045884262394863759
KAT_Q = 297095557455807242629954578331305809339


@pytest.fixture(scope="module")
def keypair():
    return T.generate_keypair(256, **INSECURE)


@pytest.fixture(scope="module")
def dealt(keypair):
    return T.deal(keypair, 5, 3, **INSECURE)


def layout_for(pk, dimension, **kw):
    return P.PackingLayout.create(pk, dimension, **kw, **INSECURE)


def encrypted_sum(pk, layout, xs):
    return P.aggregate([P.encrypt(pk, layout, x, **INSECURE) for x in xs])


@pytest.fixture(scope="module")
def vector(dealt):
    pk = dealt.public_key
    layout = layout_for(pk, 40, capacity=8)
    rng = np.random.default_rng(1)
    return encrypted_sum(pk, layout, [rng.uniform(-1, 1, 40) for _ in range(3)])


@pytest.fixture(scope="module")
def partials(dealt, vector):
    return [T.partial_decrypt(s, vector) for s in dealt.shares]


# ------------------------------------------------------------ known answers


def test_kat_primes_are_safe():
    for p in (KAT_P, KAT_Q):
        assert gmpy2.is_prime(p) and gmpy2.is_prime((p - 1) // 2)
        assert T.is_safe_prime(p)
    assert [x for x in range(3, 120) if T.is_safe_prime(x)] == [7, 11, 23, 47, 59, 83, 107]
    assert not T.is_safe_prime(KAT_P * KAT_Q)
    assert not T.is_safe_prime(True)


def test_lagrange_coefficients_known_answers():
    # Delta = 3! = 6: lambda_i = 6 * prod j / (j - i)
    assert T.lagrange_coefficients((1, 2), 3) == (12, -6)
    assert T.lagrange_coefficients((1, 3), 3) == (9, -3)
    assert T.lagrange_coefficients((2, 3), 3) == (18, -12)
    assert T.lagrange_coefficients((1, 2, 3), 3) == (18, -18, 6)
    assert T.lagrange_coefficients((4,), 4) == (24,)
    with pytest.raises(ParameterError, match="distinct"):
        T.lagrange_coefficients((1, 1), 3)
    with pytest.raises(ParameterError, match="distinct"):
        T.lagrange_coefficients((0, 1), 3)


@given(data=st.data())
def test_lagrange_coefficients_interpolate(data):
    parties = data.draw(st.integers(1, 12))
    size = data.draw(st.integers(1, parties))
    idx = tuple(data.draw(st.permutations(range(1, parties + 1)))[:size])
    lam = T.lagrange_coefficients(idx, parties)
    delta = math.factorial(parties)
    # any polynomial of degree < size: sum lambda_i f(i) = Delta f(0)
    coeffs = data.draw(st.lists(st.integers(-(10**6), 10**6), min_size=size, max_size=size))

    def f(x: int) -> int:
        return sum(c * x**k for k, c in enumerate(coeffs))

    assert sum(li * f(i) for li, i in zip(lam, idx, strict=True)) == delta * f(0)


def _independent_deal(p, q, parties, coeffs, v):
    """Shoup's dealer written out with plain Python integers."""
    n = p * q
    m = (p - 1) // 2 * ((q - 1) // 2)
    d = n * (-pow(n, -1, m) % m) + 1  # d = 1 mod n, and d = 0 mod m
    poly = [d, *coeffs]
    shares = [sum(a * i**k for k, a in enumerate(poly)) % (n * m) for i in range(1, parties + 1)]
    delta = math.factorial(parties)
    vks = [pow(v, delta * s, n * n) for s in shares]
    return d, shares, vks


def test_known_answer_deal_partial_combine():
    p, q = KAT_P, KAT_Q
    n = p * q
    n2 = n * n
    coeffs = [123456789 * n + 42, 987654321]  # t = 3
    v = pow(0xC0FFEE, 2, n2)
    assert T._generates_squares(p, q, v)
    dealt = T._assemble(p, q, 4, 3, coeffs, v, True)
    d, shares, vks = _independent_deal(p, q, 4, coeffs, v)
    assert d % n == 1 and d % ((p - 1) // 2 * ((q - 1) // 2)) == 0
    assert [s.share for s in dealt.shares] == shares
    assert list(dealt.key.verification_keys) == vks
    assert dealt.key.v == v and dealt.key.threshold == 3 and dealt.key.parties == 4
    # one known ciphertext: Enc(m) = (1 + n)^m r^n with a fixed r
    msg, r = 31337, 0xBEEF
    c = (1 + m_n(msg, n)) * pow(r, n, n2) % n2
    layout = P.PackingLayout(P.fingerprint(dealt.public_key), 256, 1, 16, 1, 1.0)
    vec = P.EncryptedVector(dealt.public_key, layout, [c], **INSECURE)
    parts = [T.partial_decrypt(s, vec) for s in dealt.shares]
    delta = 24
    for s, part in zip(shares, parts, strict=True):
        assert part.values == (pow(c, 2 * delta * s, n2),)
    # combine by hand with lambda for {1, 2, 4}: 24 * (2*4)/(1*3), 24 * (1*4)/(-1*2), 24 * 2/(-3*-2)
    lam = T.lagrange_coefficients((1, 2, 4), 4)
    assert lam == (64, -48, 8)
    u = 1
    for part, li in zip((parts[0], parts[1], parts[3]), lam, strict=True):
        u = u * pow(part.values[0], 2 * li, n2) % n2
    assert (u - 1) // n * pow(4 * delta**2, -1, n) % n == msg
    # the library's combination gives the offset-decoded value: msg - M
    got = T.combine_integers(dealt.key, vec, [parts[0], parts[1], parts[3]])
    assert got.tolist() == [msg - layout.max_int]
    assert (
        got.tolist()
        == P.decrypt_integers(phe.PaillierPrivateKey(dealt.public_key, p, q), vec).tolist()
    )


def m_n(m: int, n: int) -> int:
    return m * n  # (1 + n)^m = 1 + m n mod n^2


# ------------------------------------------------------------ correctness


def test_any_t_of_n_give_the_exact_sum(keypair, dealt, vector, partials):
    expect = P.decrypt_integers(keypair[1], vector)
    for subset in itertools.combinations(partials, 3):
        np.testing.assert_array_equal(T.combine_integers(dealt.key, vector, subset), expect)
    np.testing.assert_array_equal(T.combine_integers(dealt.key, vector, partials), expect)
    floats = T.combine(dealt.key, vector, partials[2:])
    np.testing.assert_array_equal(floats, P.decrypt(keypair[1], vector))
    f32 = T.combine(dealt.key, vector, partials[:3], dtype=np.float32)
    assert f32.dtype == np.float32
    with pytest.raises(ParameterError, match="dtype"):
        T.combine(dealt.key, vector, partials[:3], dtype=np.int64)


def test_fewer_than_t_give_nothing(dealt, vector, partials):
    for k in range(3):
        for subset in itertools.combinations(partials, k):
            with pytest.raises(AbortError, match="the threshold is 3: nothing decrypted"):
                T.combine_integers(dealt.key, vector, subset)
            with pytest.raises(AbortError):
                T.combine(dealt.key, vector, subset)


@settings(max_examples=max(15, settings().max_examples // 2))
@given(data=st.data())
def test_threshold_property_over_parties_thresholds_and_subsets(keypair, data):
    parties = data.draw(st.integers(1, 7), label="parties")
    t = data.draw(st.integers(1, parties), label="threshold")
    dealt = T.deal(keypair, parties, t, **INSECURE)
    pk = dealt.public_key
    dim = data.draw(st.integers(1, 30), label="dimension")
    layout = layout_for(pk, dim, capacity=4, value_bits=12)
    ints = data.draw(
        st.lists(
            st.lists(st.integers(-layout.max_int, layout.max_int), min_size=dim, max_size=dim),
            min_size=1,
            max_size=4,
        ),
        label="inputs",
    )
    xs = [np.asarray(v, dtype=np.float64) / layout.scale for v in ints]
    vec = encrypted_sum(pk, layout, xs)
    order = data.draw(st.permutations(range(parties)), label="order")
    size = data.draw(st.integers(0, parties), label="answering")
    answering = order[:size]
    parts = [T.partial_decrypt(dealt.shares[i], vec) for i in answering]
    if size < t:
        with pytest.raises(AbortError):
            T.combine_integers(dealt.key, vec, parts)
    else:
        got = T.combine_integers(dealt.key, vec, parts)
        np.testing.assert_array_equal(got, np.sum(np.asarray(ints, dtype=np.int64), axis=0))


def test_coefficients_are_reused_per_decryptor_set(dealt, vector, partials):
    T.lagrange_coefficients.cache_clear()
    T.combine_integers(dealt.key, vector, partials[:3])
    T.combine_integers(dealt.key, vector, partials[:3])
    info = T.lagrange_coefficients.cache_info()
    assert (info.misses, info.hits) == (1, 1)  # once per set, not per ciphertext


def test_partial_decryption_in_worker_processes(dealt):
    pk = dealt.public_key
    slots = layout_for(pk, 1, capacity=2).slots
    layout = layout_for(pk, 64 * slots, capacity=2)  # 64 ciphertexts: 32 per worker
    vec = P.encrypt(pk, layout, np.linspace(-1, 1, layout.dimension), **INSECURE)
    assert layout.ciphertexts >= 64
    par = T.partial_decrypt(dealt.shares[0], vec, workers=2)
    seq = T.partial_decrypt(dealt.shares[0], vec)
    assert par.values == seq.values
    T.verify_partial(dealt.key, vec, par)


# ------------------------------------------------------- faulty partials


def _mutate(part, **changes):
    return dataclasses.replace(part, **changes)


def test_a_corrupted_partial_is_caught_and_named(keypair, dealt, vector, partials):
    n2 = int(dealt.public_key.n) ** 2
    honest = partials[1]  # share 2
    vals = list(honest.values)
    vals[3] = vals[3] * 4 % n2  # the square of 2: invisible to a check mod n only
    bad_value = _mutate(honest, values=tuple(vals))
    bad_response = _mutate(honest, response=honest.response + 1)
    bad_challenge = _mutate(honest, challenge=bytes(16))
    relabelled = _mutate(partials[0], index=2)  # share 1's answer claimed as share 2's
    other = [bad_value, bad_response, bad_challenge, relabelled]
    for bad in other:
        with pytest.raises(T.PartialDecryptionError) as info:
            T.combine_integers(dealt.key, vector, [partials[0], bad, partials[2]])
        assert info.value.faulty == (2,)
        assert "key share(s) 2 failed" in str(info.value)
        with pytest.raises(T.PartialDecryptionError, match="share"):
            T.verify_partial(dealt.key, vector, bad)
    # two faulty shares are both named; the others still combine
    with pytest.raises(T.PartialDecryptionError) as info:
        T.combine_integers(
            dealt.key,
            vector,
            [partials[0], bad_value, partials[2], _mutate(partials[4], response=1)],
        )
    assert info.value.faulty == (2, 5)
    expect = P.decrypt_integers(keypair[1], vector)
    np.testing.assert_array_equal(
        T.combine_integers(dealt.key, vector, [partials[0], partials[2], partials[3]]), expect
    )
    # without verification, the end-to-end check still refuses a wrong combination
    with pytest.raises(IntegrityError):
        T.combine_integers(dealt.key, vector, [partials[0], bad_value, partials[2]], verify=False)


def test_a_partial_of_another_vector_or_context_is_refused(dealt, vector, partials):
    pk = dealt.public_key
    other = vector + P.encrypt(pk, vector.layout, np.zeros(40), **INSECURE)
    with pytest.raises(T.PartialDecryptionError, match="another vector or context"):
        T.verify_partial(dealt.key, other, partials[0])
    ctx_part = T.partial_decrypt(dealt.shares[0], vector, context=b"session 7, round 3")
    T.verify_partial(dealt.key, vector, ctx_part, context=b"session 7, round 3")
    with pytest.raises(T.PartialDecryptionError, match="another vector or context"):
        T.verify_partial(dealt.key, vector, ctx_part, context=b"session 8, round 3")
    with pytest.raises(T.PartialDecryptionError):
        T.combine_integers(dealt.key, vector, [ctx_part, *partials[1:3]])


def test_partials_from_another_dealing_are_refused(keypair, dealt, vector, partials):
    again = T.deal(keypair, 5, 3, **INSECURE)  # same n, fresh shares and v
    theirs = T.partial_decrypt(again.shares[0], vector)
    with pytest.raises(T.PartialDecryptionError, match="another threshold key"):
        T.combine_integers(dealt.key, vector, [theirs, *partials[1:3]])


def test_duplicates_wrong_types_and_wrong_keys_are_refused(keypair, dealt, vector, partials):
    with pytest.raises(ParameterError, match=r"share\(s\) \[1\]"):
        T.combine_integers(dealt.key, vector, [partials[0], partials[0], partials[1]])
    with pytest.raises(ParameterError, match="PartialDecryption"):
        T.combine_integers(dealt.key, vector, [b"x"])  # type: ignore[list-item]
    with pytest.raises(ParameterError, match="ThresholdKey"):
        T.combine_integers(keypair[0], vector, partials)  # type: ignore[arg-type]
    other_pk, _ = P.generate_keypair(256, **INSECURE)
    foreign = P.encrypt(other_pk, layout_for(other_pk, 3), np.zeros(3), **INSECURE)
    with pytest.raises(ParameterError, match="another key"):
        T.partial_decrypt(dealt.shares[0], foreign)
    with pytest.raises(ParameterError, match="another key"):
        T.combine_integers(dealt.key, foreign, partials)


# ---------------------------------------------------------------- dealing


def test_dealer_policy(keypair):
    with pytest.raises(ParameterError, match="minimum is 2048"):
        T.deal(512, 3, 2)
    with pytest.raises(ParameterError, match="minimum is 2048"):
        T.deal(keypair, 3, 2)
    with pytest.raises(ParameterError, match="minimum is 2048"):
        T.generate_keypair(1024)
    for parties, t in ((0, 1), (3, 0), (3, 4), (T.MAX_PARTIES + 1, 2)):
        with pytest.raises(ParameterError, match="outside"):
            T.deal(keypair, parties, t, **INSECURE)
    phe_keys = P.generate_keypair(256, **INSECURE)
    if not (T.is_safe_prime(int(phe_keys[1].p)) and T.is_safe_prime(int(phe_keys[1].q))):
        with pytest.raises(ParameterError, match="not a safe prime"):
            T.deal(phe_keys, 3, 2, **INSECURE)
    with pytest.raises(ParameterError, match="does not belong"):
        T.deal((phe_keys[0], keypair[1]), 3, 2, **INSECURE)
    with pytest.raises(ParameterError, match="bit size or a key pair"):
        T.deal("2048", 3, 2)  # type: ignore[arg-type]


def test_fresh_dealing_shapes(dealt):
    pk, key, shares = dealt
    assert pk == key.public_key and pk.n.bit_length() == 256
    assert [s.index for s in shares] == [1, 2, 3, 4, 5]
    assert key.delta == 120 and key.parties == 5 and key.threshold == 3
    assert all(s.key == key for s in shares)
    assert "secret" in repr(shares[0]) and str(shares[0].share) not in repr(shares[0])


def test_generated_keys_are_safe_prime_keys():
    for bits in (256, 320):
        pk, sk = T.generate_keypair(bits, **INSECURE)
        assert pk.n.bit_length() == bits
        assert T.is_safe_prime(int(sk.p)) and T.is_safe_prime(int(sk.q)) and sk.p != sk.q
    p = T.generate_safe_prime(100)
    assert p.bit_length() == 100 and p >> 98 == 3 and T.is_safe_prime(p)
    with pytest.raises(ParameterError, match="outside"):
        T.generate_safe_prime(32)


def test_small_keys_need_the_flag_wherever_they_enter(dealt):
    with pytest.raises(ParameterError, match="minimum is 2048"):
        T.ThresholdKey(dealt.public_key, 3, dealt.key.v, dealt.key.verification_keys)
    with pytest.raises(ParameterError, match="minimum is 2048"):
        T.ThresholdKey.from_bytes(dealt.key.to_bytes())
    with pytest.raises(ParameterError, match="minimum is 2048"):
        T.KeyShare.from_bytes(dealt.shares[0].to_bytes())


# ----------------------------------------------------------------- codecs


def test_codec_round_trips(dealt, vector, partials):
    key = dealt.key
    assert T.ThresholdKey.from_bytes(key.to_bytes(), **INSECURE) == key
    for s in dealt.shares:
        back = T.KeyShare.from_bytes(s.to_bytes(), **INSECURE)
        assert (back.index, back.share, back.key) == (s.index, s.share, key)
    for part in partials:
        back = T.PartialDecryption.from_bytes(part.to_bytes(), key)
        assert back == part
    T.verify_partial(key, vector, T.PartialDecryption.from_bytes(partials[0].to_bytes(), key))


def test_key_share_is_checked_against_its_verification_key(dealt):
    s = dealt.shares[2]
    with pytest.raises(IntegrityError, match="key share 3 does not match"):
        T.KeyShare(dealt.key, 3, s.share + 1)
    with pytest.raises(IntegrityError, match="key share 2 does not match"):
        T.KeyShare(dealt.key, 2, s.share)
    forged = T.KeyShare(dealt.key, 3, s.share).to_bytes()[:-1] + bytes([s.to_bytes()[-1] ^ 1])
    with pytest.raises(IntegrityError):
        T.KeyShare.from_bytes(forged, **INSECURE)


def test_key_share_never_pickles(dealt):
    with pytest.raises(TypeError, match="seal it to its owner"):
        pickle.dumps(dealt.shares[0])


def test_decoders_refuse_other_keys_and_bad_structure(keypair, dealt, partials):
    key = dealt.key
    again = T.deal(keypair, 5, 3, **INSECURE)
    with pytest.raises(ProtocolError, match="another threshold key"):
        T.PartialDecryption.from_bytes(partials[0].to_bytes(), again.key)
    n2 = int(key.public_key.n) ** 2
    with pytest.raises(ProtocolError, match="unit"):
        T.PartialDecryption.from_bytes(_mutate(partials[0], values=(n2 + 1,)).to_bytes(), key)
    with pytest.raises(ProtocolError, match="parties"):
        T.PartialDecryption.from_bytes(_mutate(partials[0], index=6).to_bytes(), key)
    # a threshold key whose v is not a square mod n (Jacobi symbol -1)
    n = int(key.public_key.n)
    nonsquare = next(x for x in range(2, 1000) if gmpy2.jacobi(x, n) == -1)
    with pytest.raises(ParameterError, match="v is not a square"):
        T.ThresholdKey(key.public_key, 3, nonsquare, key.verification_keys, **INSECURE)
    vks = (nonsquare, *key.verification_keys[1:])
    with pytest.raises(ParameterError, match="v_1 is not a square"):
        T.ThresholdKey(key.public_key, 3, key.v, vks, **INSECURE)


def _mutations(data: bytes, draw) -> bytes:
    kind = draw(st.sampled_from(["flip", "truncate", "extend", "splice"]))
    if kind == "flip":
        i = draw(st.integers(0, len(data) - 1))
        bit = draw(st.integers(0, 7))
        return data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :]
    if kind == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))]
    if kind == "extend":
        return data + draw(st.binary(min_size=1, max_size=8))
    i = draw(st.integers(0, len(data)))
    return data[:i] + draw(st.binary(min_size=1, max_size=8)) + data[i:]


@settings(max_examples=max(60, settings().max_examples))
@given(data=st.data())
def test_fuzzed_codecs_raise_only_library_errors(dealt, vector, partials, data):
    key = dealt.key
    which = data.draw(st.sampled_from(["key", "share", "partial"]))
    blob = {
        "key": key.to_bytes(),
        "share": dealt.shares[1].to_bytes(),
        "partial": partials[1].to_bytes(),
    }[which]
    mutated = _mutations(blob, data.draw)
    try:
        if which == "key":
            T.ThresholdKey.from_bytes(mutated, **INSECURE)
        elif which == "share":
            T.KeyShare.from_bytes(mutated, **INSECURE)
        else:
            part = T.PartialDecryption.from_bytes(mutated, key)
            T.combine_integers(key, vector, [partials[0], part, partials[2]])
    except SecAggError:
        pass


def test_fuzzed_partial_that_decodes_is_never_combined_silently(dealt, vector, partials):
    """Every single-bit flip of a partial either fails to decode or is named."""
    key = dealt.key
    blob = partials[1].to_bytes()
    ok = 0
    for i in range(0, len(blob), 7):
        mutated = blob[:i] + bytes([blob[i] ^ 0x10]) + blob[i + 1 :]
        try:
            part = T.PartialDecryption.from_bytes(mutated, key)
        except ProtocolError:
            continue
        with pytest.raises(T.PartialDecryptionError) as info:
            T.combine_integers(key, vector, [partials[0], part, partials[2]])
        assert info.value.faulty == (2,)
        ok += 1
    assert ok > 10


# --------------------------------------------------------------- sealing


def test_sealed_shares_open_only_for_their_owner_and_context(dealt):
    share = dealt.shares[3]
    k = bytes(range(32))
    sealed = T.seal_share(share, k, b"session 9")
    assert share.to_bytes() not in sealed
    back = T.open_share(sealed, k, dealt.key, 4, b"session 9", **INSECURE)
    assert back.share == share.share and back.index == 4
    for args in (
        (sealed, k, dealt.key, 3, b"session 9"),  # another index
        (sealed, k, dealt.key, 4, b"session 10"),  # another context
        (sealed, bytes(32), dealt.key, 4, b"session 9"),  # another key
        (sealed[:-1] + bytes([sealed[-1] ^ 1]), k, dealt.key, 4, b"session 9"),
    ):
        with pytest.raises(IntegrityError):
            T.open_share(*args, **INSECURE)


# ------------------------------------------------------- a real-size key


@pytest.mark.slow
def test_real_2048_bit_threshold_key():
    pk, key, shares = T.deal(2048, 3, 2)
    assert pk.n.bit_length() == 2048
    layout = P.PackingLayout.create(pk, 200, clip=1.0, value_bits=16, capacity=1000)
    x = np.linspace(-1, 1, 200)
    total = P.encrypt(pk, layout, x) + P.encrypt(pk, layout, -x / 4)
    parts = [T.partial_decrypt(s, total) for s in shares[1:]]
    np.testing.assert_allclose(T.combine(key, total, parts), 0.75 * x, atol=2 / layout.scale)
    share = T.KeyShare.from_bytes(shares[0].to_bytes())
    assert share.index == 1


# ------------------------------------------------------- canonical encodings only


def _key_bytes(key, *, pad_n=b"", pad_v=b"", pad_vk=b""):
    """SGTK v1 written field by field, with optional leading zero bytes."""
    from secagg.wire import Writer

    n = int(key.public_key.n)

    def big(x, pad):
        return pad + x.to_bytes((x.bit_length() + 7) // 8, "big")

    w = Writer(b"SGTK").u16(n.bit_length()).blob(big(n, pad_n))
    w.u16(key.parties).u16(key.threshold).blob(big(key.v, pad_v))
    for i, y in enumerate(key.verification_keys):
        w.blob(big(y, pad_vk if i == 0 else b""))
    return w.getvalue()


def _share_bytes(share, value, *, pad=b"", key_bytes=None):
    from secagg.wire import Writer

    raw = pad + value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return (Writer(b"SGTS").blob(key_bytes or share.key.to_bytes()).u16(share.index)
            .blob(raw).getvalue())


def test_decoders_take_canonical_encodings_only(keypair, dealt):
    key, share = dealt.key, dealt.shares[1]
    assert _key_bytes(key) == key.to_bytes()
    assert _share_bytes(share, share.share) == share.to_bytes()
    for kw in ({"pad_n": b"\0"}, {"pad_v": b"\0"}, {"pad_vk": b"\0\0"}):
        with pytest.raises(ProtocolError, match="canonical"):
            T.ThresholdKey.from_bytes(_key_bytes(key, **kw), **INSECURE)
        with pytest.raises(ProtocolError, match="canonical"):
            T.KeyShare.from_bytes(_share_bytes(share, share.share,
                                               key_bytes=_key_bytes(key, **kw)), **INSECURE)
    with pytest.raises(ProtocolError, match="canonical"):
        T.KeyShare.from_bytes(_share_bytes(share, share.share, pad=b"\0"), **INSECURE)
    # s_i + n*m: the same exponent of v, past the range s_i < n*m
    _, sk = keypair
    nm = int(key.public_key.n) * ((sk.p - 1) // 2) * ((sk.q - 1) // 2)
    for s in dealt.shares:
        with pytest.raises(ProtocolError, match="range"):
            T.KeyShare.from_bytes(_share_bytes(s, s.share + nm), **INSECURE)
        with pytest.raises(ParameterError, match="range"):
            T.KeyShare(key, s.index, s.share + nm)
