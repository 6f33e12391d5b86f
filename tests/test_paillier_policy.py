"""secagg.paillier: the key-size policy holds everywhere a key enters, and a
layout must match its key's size, not only its fingerprint.

Each test here failed before the fix it covers: ``raw_encrypt``,
``raw_decrypt`` and ``decrypt`` took a 512-bit key without the test-only
flag, and a layout carrying the right fingerprint but another ``key_bits``
was accepted by ``encrypt`` and ``EncryptedVector`` (its slots then do not
fit below n, so sums wrap silently or ``to_bytes`` raises ``OverflowError``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import phe
import pytest

from secagg import paillier as P
from secagg.errors import ParameterError, ProtocolError, SecAggError
from secagg.wire import Reader, Writer

INSECURE = {"insecure_allow_small_key_for_tests": True}


@pytest.fixture(scope="module")
def keys512():
    return P.generate_keypair(512, **INSECURE)


def test_raw_encrypt_refuses_small_key_without_flag(keys512):
    pk, sk = keys512
    with pytest.raises(ParameterError, match="512 bits; the minimum is 2048"):
        P.raw_encrypt(pk, 5)
    with pytest.raises(ParameterError, match="minimum is 2048"):
        P.raw_encrypt(pk, 5, private_key=sk)
    c = P.raw_encrypt(pk, 5, **INSECURE)
    assert sk.raw_decrypt(c) == 5


def test_raw_decrypt_refuses_small_key_without_flag(keys512):
    pk, sk = keys512
    c = P.raw_encrypt(pk, 9, **INSECURE)
    with pytest.raises(ParameterError, match="512 bits; the minimum is 2048"):
        P.raw_decrypt(sk, c)
    assert P.raw_decrypt(sk, c, **INSECURE) == 9


def test_decrypt_refuses_small_key_without_flag(keys512):
    pk, sk = keys512
    layout = P.PackingLayout.create(pk, 4, **INSECURE)
    # A vector built from raw ciphertexts by code that never passed the flag for
    # this vector: decrypting with a small private key must ask for the flag.
    v = P.encrypt(pk, layout, np.zeros(4), **INSECURE)
    raw = P.EncryptedVector._trusted(pk, v._ctx, layout, v._ciphertexts, 1)
    for fn in (P.decrypt, P.decrypt_integers):
        with pytest.raises(ParameterError, match="minimum is 2048"):
            fn(sk, raw)
        np.testing.assert_array_equal(fn(sk, raw, **INSECURE), np.zeros(4))
    # a vector admitted under the flag carries that admission to decryption
    np.testing.assert_array_equal(P.decrypt_integers(sk, v), np.zeros(4))


def _with_key_bits(layout: P.PackingLayout, bits: int) -> P.PackingLayout:
    return dataclasses.replace(layout, key_bits=bits)


def test_layout_key_size_must_match_the_key(keys512):
    pk, _sk = keys512
    layout = P.PackingLayout.create(pk, 40, **INSECURE)
    wrong = _with_key_bits(layout, 1024)  # same fingerprint, twice the slots
    assert wrong.key_fingerprint == layout.key_fingerprint
    with pytest.raises(ParameterError, match=r"1024-bit key.*512 bits"):
        P.encrypt(pk, wrong, np.zeros(40), **INSECURE)
    good = P.encrypt(pk, layout, np.zeros(40), **INSECURE)
    cts = list(good.ciphertexts)[: wrong.ciphertexts]
    with pytest.raises(ParameterError, match=r"1024-bit key.*512 bits"):
        P.EncryptedVector(pk, wrong, cts, **INSECURE)


def test_decoded_vector_with_wrong_layout_key_size_is_refused(keys512):
    pk, _sk = keys512
    layout = P.PackingLayout.create(pk, 40, **INSECURE)
    wrong = _with_key_bits(layout, 1024)
    c = P.encrypt(pk, layout, np.zeros(40), **INSECURE).ciphertexts[0]
    width = wrong.ciphertext_bytes
    data = (
        Writer(b"SGPV")
        .blob(wrong.to_bytes())
        .u64(1)
        .u32(wrong.ciphertexts)
        .u16(width)
        .raw(b"".join(c.to_bytes(width, "big") for _ in range(wrong.ciphertexts)))
        .getvalue()
    )
    Reader(data, b"SGPV")  # well formed at the framing level
    with pytest.raises(SecAggError, match=r"1024-bit key.*512 bits"):
        P.EncryptedVector.from_bytes(data, pk, **INSECURE)


def test_private_key_with_equal_factors_is_refused():
    p = 340282366920938463463374607431768211507  # a 128-bit prime
    from secagg.paillier._keys import _SK_MAGIC

    n = p * p
    data = Writer(_SK_MAGIC).u16(n.bit_length()).bigint(p).bigint(p).getvalue()
    with pytest.raises(ProtocolError, match="distinct"):
        P.private_key_from_bytes(data, **INSECURE)
    with pytest.raises(ProtocolError, match="not a product of two distinct primes"):
        P.public_key_from_bytes(P.public_key_to_bytes(phe.PaillierPublicKey(n)), **INSECURE)


def test_encrypted_vector_to_bytes_never_raises_struct_errors(keys512):
    pk, _ = keys512
    layout = P.PackingLayout.create(pk, 3, **INSECURE)
    v = P.encrypt(pk, layout, np.zeros(3), **INSECURE)
    assert P.EncryptedVector.from_bytes(v.to_bytes(), pk, **INSECURE).ciphertexts == v.ciphertexts


def test_layout_with_more_ciphertexts_than_the_wire_counts_is_refused():
    fp = bytes(32)
    # 64-bit key, 62-bit slots: one slot per ciphertext, 2^32 ciphertexts
    with pytest.raises(ParameterError, match="at most 4294967295"):
        P.PackingLayout(fp, 64, 1 << 32, 48, 1 << 14, 1.0)
    ok = P.PackingLayout(fp, 64, (1 << 32) - 1, 48, 1 << 14, 1.0)
    assert ok.ciphertexts == (1 << 32) - 1
    assert P.PackingLayout.from_bytes(ok.to_bytes()) == ok
