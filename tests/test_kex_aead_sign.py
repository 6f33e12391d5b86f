import pytest
from hypothesis import given
from hypothesis import strategies as st

from secagg import aead, kex, sign
from secagg.errors import IntegrityError, ParameterError, SecAggError

# RFC 7748, section 6.1
ALICE_PRIV = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUB = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB_PRIV = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PUB = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
SHARED = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")


def test_x25519_rfc7748():
    a = kex.PrivateKey.from_bytes(ALICE_PRIV)
    b = kex.PrivateKey.from_bytes(BOB_PRIV)
    assert a.public_key().to_bytes() == ALICE_PUB
    assert b.public_key().to_bytes() == BOB_PUB
    assert a._key.exchange(b.public_key()._key) == SHARED
    info = kex.context("test", 7, 1, 2)
    expected = kex.hkdf(SHARED, salt=None, info=b"secagg/kex/v1" + info)
    assert kex.agree(a, b.public_key(), info) == expected
    assert kex.agree(b, a.public_key(), info) == expected


def test_hkdf_rfc5869_case1():
    okm = kex.hkdf(
        bytes([0x0B] * 22),
        salt=bytes(range(13)),
        info=bytes(range(0xF0, 0xFA)),
        length=42,
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
        "34007208d5b887185865"
    )


def test_hkdf_rfc5869_case3_empty_salt_info():
    okm = kex.hkdf(bytes([0x0B] * 22), salt=None, info=b"", length=42)
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
        "9d201395faa4b61a96c8"
    )


def test_context_is_symmetric_and_binding():
    assert kex.context("p", 1, 3, 9) == kex.context("p", 1, 9, 3)
    assert kex.context("p", 1, 3, 9) != kex.context("p", 2, 3, 9)
    assert kex.context("p", 1, 3, 9) != kex.context("q", 1, 3, 9)
    assert kex.context("p", 1, 3, 9) != kex.context("p", 1, 3, 8)


def test_agreement_of_fresh_keys_and_round_trip():
    a, b = kex.PrivateKey.generate(), kex.PrivateKey.generate()
    info = kex.context("x", 0, 1, 2)
    assert kex.agree(a, b.public_key(), info) == kex.agree(b, a.public_key(), info)
    assert kex.PrivateKey.from_bytes(a.to_bytes()).public_key() == a.public_key()
    assert kex.PublicKey.from_bytes(a.public_key().to_bytes()) == a.public_key()
    assert a.to_bytes().hex() not in repr(a)


def test_low_order_point_is_refused():
    a = kex.PrivateKey.generate()
    with pytest.raises(IntegrityError):
        kex.agree(a, kex.PublicKey.from_bytes(bytes(32)), b"")


def test_wrong_key_lengths():
    with pytest.raises(ParameterError):
        kex.PublicKey.from_bytes(b"\x01" * 31)
    with pytest.raises(ParameterError):
        kex.PrivateKey.from_bytes(b"\x01" * 33)


# RFC 8032, section 7.1, tests 1 and 2
ED_VECTORS = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
]


@pytest.mark.parametrize("sk,pk,msg,sig", ED_VECTORS)
def test_ed25519_rfc8032(sk, pk, msg, sig):
    key = sign.SigningKey.from_bytes(bytes.fromhex(sk))
    assert key.verify_key().to_bytes().hex() == pk
    assert key.sign(bytes.fromhex(msg)).hex() == sig
    key.verify_key().verify(bytes.fromhex(sig), bytes.fromhex(msg))


def test_signature_failures():
    key = sign.SigningKey.generate()
    vk = key.verify_key()
    s = key.sign(b"hello")
    vk.verify(s, b"hello")
    with pytest.raises(IntegrityError):
        vk.verify(s, b"hellO")
    bad = bytearray(s)
    bad[3] ^= 1
    with pytest.raises(IntegrityError):
        vk.verify(bytes(bad), b"hello")
    with pytest.raises(IntegrityError):
        vk.verify(s[:63], b"hello")
    with pytest.raises(IntegrityError):
        sign.SigningKey.generate().verify_key().verify(s, b"hello")
    assert sign.VerifyKey.from_bytes(vk.to_bytes()) == vk


KEY = bytes(range(32))


@given(st.binary(max_size=512), st.binary(max_size=64))
def test_aead_round_trip(pt, ad):
    assert aead.open(KEY, aead.seal(KEY, pt, ad), ad) == pt


@given(st.binary(min_size=1, max_size=128), st.binary(max_size=32), st.data())
def test_aead_any_flipped_bit_fails(pt, ad, data):
    sealed = bytearray(aead.seal(KEY, pt, ad))
    bit = data.draw(st.integers(0, len(sealed) * 8 - 1))
    sealed[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(IntegrityError):
        aead.open(KEY, bytes(sealed), ad)


def test_aead_context_binding_and_short_input():
    sealed = aead.seal(KEY, b"share", b"round=1|from=2|to=3")
    with pytest.raises(IntegrityError):
        aead.open(KEY, sealed, b"round=1|from=2|to=4")
    with pytest.raises(IntegrityError):
        aead.open(bytes(32), sealed, b"round=1|from=2|to=3")
    with pytest.raises(IntegrityError):
        aead.open(KEY, sealed[:20], b"")
    assert aead.seal(KEY, b"x") != aead.seal(KEY, b"x")  # fresh nonces
    assert issubclass(IntegrityError, SecAggError)


@pytest.mark.parametrize(
    "args, match",
    [
        ((b"p", 1, 1, 2), "purpose must be a str, got bytes"),
        ((None, 1, 1, 2), "purpose must be a str, got NoneType"),
        (("", 1, 1, 2), "1..65535 UTF-8 bytes, got 0"),
        (("x" * 65536, 1, 1, 2), "got 65536"),
        (("\ud800", 1, 1, 2), "UTF-8"),
        (("p", 1, 4, 4), "party id 4 is paired with itself"),
        (("p", -1, 1, 2), "round_id"),
        (("p", 2**64, 1, 2), "round_id"),
        (("p", 1, 2**32, 2), "party id a"),
        (("p", 1, 1, -2), "party id b"),
        (("p", 1, 1.0, 2), "party id a must be an int"),
    ],
)
def test_context_refuses_bad_arguments_with_library_errors(args, match):
    with pytest.raises(ParameterError, match=match):
        kex.context(*args)


def test_context_encoding_is_injective_at_the_edges():
    # the longest purpose and the extreme ids/rounds still encode, unambiguously
    long = kex.context("x" * 65535, 2**64 - 1, 0, 2**32 - 1)
    assert len(long) == 2 + 65535 + 8 + 4 + 4
    assert kex.context("ab", 1, 2, 3) != kex.context("a", 1, 2, 3)
    expected = b"\x00\x01p" + (1).to_bytes(8, "big") + (0).to_bytes(4, "big") + b"\0\0\0\1"
    assert kex.context("p", 1, 1, 0) == expected


def test_key_reprs_are_useful_and_never_show_secrets():
    a = kex.PrivateKey.from_bytes(ALICE_PRIV)
    pub = a.public_key()
    assert repr(pub) == f"PublicKey.from_bytes(bytes.fromhex('{ALICE_PUB.hex()}'))"
    assert eval(repr(pub), {"PublicKey": kex.PublicKey}) == pub
    assert "object at" not in repr(pub) and ALICE_PRIV.hex() not in repr(a)
    assert repr(a).startswith("PrivateKey(public=" + ALICE_PUB.hex()[:16])
    sk = sign.SigningKey.from_bytes(bytes.fromhex(ED_VECTORS[0][0]))
    vk = sk.verify_key()
    assert repr(vk) == f"VerifyKey.from_bytes(bytes.fromhex('{ED_VECTORS[0][1]}'))"
    assert "object at" not in repr(vk)
    for secret_key in (a, sk, kex.PrivateKey.generate(), sign.SigningKey.generate()):
        hx = secret_key.to_bytes().hex()
        assert not any(hx[i : i + 8] in repr(secret_key) for i in range(0, 57, 8))
    for obj in (kex.PublicKey.from_bytes, kex.PublicKey.to_bytes, kex.PrivateKey.from_bytes,
                kex.PrivateKey.to_bytes, kex.PrivateKey.public_key, sign.VerifyKey.from_bytes,
                sign.VerifyKey.to_bytes, sign.SigningKey.from_bytes, sign.SigningKey.to_bytes,
                sign.SigningKey.sign, sign.SigningKey.generate, sign.SigningKey.verify_key):
        assert obj.__doc__, obj


def test_keys_are_immutable():
    a = kex.PrivateKey.generate()
    for key in (a, a.public_key(), sign.SigningKey.generate().verify_key()):
        with pytest.raises(AttributeError):
            key._key = None


def test_hkdf_length_limit_of_rfc5869():
    assert len(kex.hkdf(b"k", salt=None, info=b"", length=255 * 32)) == 8160
    for bad in (0, 255 * 32 + 1):
        with pytest.raises(ParameterError, match="length"):
            kex.hkdf(b"k", salt=None, info=b"", length=bad)


def test_distinct_keys_compare_unequal():
    a, b = kex.PrivateKey.generate(), kex.PrivateKey.generate()
    assert a.public_key() != b.public_key() and a.public_key() != a.public_key().to_bytes()
    assert len({a.public_key(), b.public_key(), a.public_key()}) == 2
    s, t = sign.SigningKey.generate(), sign.SigningKey.generate()
    assert s.verify_key() != t.verify_key() and s.verify_key() != s.verify_key().to_bytes()
    assert len({s.verify_key(), t.verify_key(), s.verify_key()}) == 2


@pytest.mark.parametrize("n", [0, 5, 11, 12, 20, 27])
def test_aead_short_input_is_refused_naming_the_length(n):
    sealed = aead.seal(KEY, b"share", b"ad")
    with pytest.raises(IntegrityError, match=f"of {n} bytes is shorter than 28"):
        aead.open(KEY, sealed[:n], b"ad")


def test_signature_of_the_wrong_length_is_refused_naming_it():
    key = sign.SigningKey.generate()
    s = key.sign(b"m")
    for bad in (s[:63], s + b"\0", b""):
        with pytest.raises(IntegrityError, match=f"signature is {len(bad)} bytes, expected 64"):
            key.verify_key().verify(bad, b"m")


def test_aead_size_limits_are_library_errors(monkeypatch):
    # cryptography refuses inputs past 2^31 - 1 bytes with OverflowError; the
    # wrapper refuses them first. The limits are lowered here to test the edges.
    monkeypatch.setattr(aead, "MAX_PLAINTEXT_BYTES", 10)
    monkeypatch.setattr(aead, "MAX_AD_BYTES", 5)
    sealed = aead.seal(KEY, b"x" * 10, b"a" * 5)
    assert aead.open(KEY, sealed, b"a" * 5) == b"x" * 10
    with pytest.raises(ParameterError, match="plaintext of 11 bytes is longer than 10"):
        aead.seal(KEY, b"x" * 11)
    with pytest.raises(ParameterError, match="associated data of 6 bytes is longer than 5"):
        aead.seal(KEY, b"x", b"a" * 6)
    with pytest.raises(IntegrityError, match="of 39 bytes is longer than 38"):
        aead.open(KEY, sealed + b"\0", b"a" * 5)
    with pytest.raises(IntegrityError, match="associated data of 6 bytes"):
        aead.open(KEY, sealed, b"a" * 6)


def test_aead_default_limits_match_cryptography():
    assert aead.MAX_PLAINTEXT_BYTES + aead.TAG_BYTES == 2**31 - 1
    assert aead.MAX_AD_BYTES == 2**31 - 1
