"""The strict binary codec of the pairwise-mask protocol's messages."""

from __future__ import annotations

import contextlib
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.secagg import (
    AdvertiseKeys,
    ConsistencyRequest,
    ConsistencySignature,
    KeyBroadcast,
    KeyEntry,
    MaskedInput,
    RevealedShare,
    SealedShare,
    SecAggConfig,
    ShareForward,
    ShareKeys,
    UnmaskRequest,
    UnmaskResponse,
    decode,
    encode,
)
from protocols.secagg.messages import SEALED_SHARE_BYTES
from secagg.errors import EncodingError, ProtocolError
from secagg.shamir import Share
from secagg.sign import SigningKey

IDS = tuple(range(1, 9))
CFG = SecAggConfig(client_ids=IDS, dimension=5, threshold=3, session_id=77,
                   graph_seed=bytes(32))
REG = {u: SigningKey.generate().verify_key() for u in IDS}
MAL = SecAggConfig(client_ids=IDS, dimension=5, threshold=3, session_id=77,
                   graph_seed=bytes(32), mode="malicious", quorum=5, registry=REG)
K1, K2, SIG = b"\x01" * 32, b"\x02" * 32, b"\x03" * 64
CT = b"\x04" * SEALED_SHARE_BYTES
HEADER = 4 + 1 + 1 + 8 + 32 + 4 + 4  # magic, version, type, session, digest, ids


def _samples(cfg: SecAggConfig) -> list[object]:
    sig = SIG if cfg.mode == "malicious" else b""
    return [
        AdvertiseKeys(sender=2, c_public=K1, s_public=K2, signature=sig),
        KeyBroadcast(receiver=3, keys=(KeyEntry(1, K1, K2, sig), KeyEntry(3, K2, K1, sig))),
        ShareKeys(sender=4, shares=(SealedShare(1, CT), SealedShare(5, CT))),
        ShareForward(receiver=5, shares=(SealedShare(2, CT),)),
        MaskedInput(sender=6, vector=np.arange(5, dtype=np.uint32)),
        ConsistencyRequest(receiver=7, survivors=(1, 2, 7),
                           roster=((1, K1), (2, K2), (7, K1))),
        ConsistencySignature(sender=8, signature=SIG),
        UnmaskRequest(receiver=1, survivors=(1, 2), dropped=(3,),
                      signatures=((1, SIG), (2, SIG)) if sig else ()),
        UnmaskResponse(sender=2, shares=(RevealedShare(1, "b", Share(2, 3, 12345)),
                                         RevealedShare(3, "s", Share(3, 3, 2**256)))),
    ]


def _same(a: object, b: object) -> bool:
    if isinstance(a, MaskedInput) and isinstance(b, MaskedInput):
        return a.sender == b.sender and np.array_equal(a.vector, b.vector) and (
            a.vector.dtype == b.vector.dtype)
    return a == b


@pytest.mark.parametrize("cfg", [CFG, MAL], ids=["semi-honest", "malicious"])
def test_round_trip(cfg: SecAggConfig) -> None:
    for msg in _samples(cfg):
        data = encode(msg, cfg)  # type: ignore[arg-type]
        assert data[:4] == b"SAGG" and data[4] == 1
        assert _same(decode(data, cfg), msg)


@pytest.mark.parametrize("cfg", [CFG, MAL], ids=["semi-honest", "malicious"])
def test_every_truncation_and_extension_is_refused(cfg: SecAggConfig) -> None:
    for msg in _samples(cfg):
        data = encode(msg, cfg)  # type: ignore[arg-type]
        for cut in range(len(data)):
            with pytest.raises(ProtocolError):
                decode(data[:cut], cfg)
        with pytest.raises(ProtocolError, match="trailing"):
            decode(data + b"\x00", cfg)


def _patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


def test_header_checks() -> None:
    data = encode(AdvertiseKeys(sender=2, c_public=K1, s_public=K2), CFG)
    with pytest.raises(ProtocolError, match="magic"):
        decode(b"XAGG" + data[4:], CFG)
    with pytest.raises(ProtocolError, match="version"):
        decode(_patch(data, 4, ">B", 2), CFG)
    with pytest.raises(ProtocolError, match="unknown message type"):
        decode(_patch(data, 5, ">B", 42), CFG)
    with pytest.raises(ProtocolError, match="session"):
        decode(_patch(data, 6, ">Q", 78), CFG)
    other = SecAggConfig(client_ids=IDS, dimension=5, threshold=4, session_id=77,
                         graph_seed=bytes(32))
    with pytest.raises(ProtocolError, match="digest"):
        decode(data, other)
    with pytest.raises(ProtocolError, match="not a client"):
        decode(_patch(data, 46, ">I", 99), CFG)  # unknown sender
    with pytest.raises(ProtocolError, match="not the server"):
        decode(_patch(data, 50, ">I", 3), CFG)  # client -> client
    fwd = encode(ShareForward(receiver=5, shares=()), CFG)
    with pytest.raises(ProtocolError, match="must come from the server"):
        decode(_patch(fwd, 46, ">I", 1), CFG)
    with pytest.raises(ProtocolError, match="not a client"):
        decode(_patch(fwd, 50, ">I", 0), CFG)
    with pytest.raises(ProtocolError, match="expected bytes"):
        decode("not bytes", CFG)  # type: ignore[arg-type]


def test_vector_shape_and_dtype() -> None:
    good = encode(MaskedInput(sender=1, vector=np.zeros(5, np.uint32)), CFG)
    with pytest.raises(ProtocolError, match="length"):
        decode(_patch(good, HEADER + 1, ">Q", 4), CFG)
    wide = SecAggConfig(client_ids=IDS, dimension=5, threshold=3, session_id=77,
                        graph_seed=bytes(32), modulus_bits=64)
    as64 = good[:HEADER] + bytes([2]) + good[HEADER + 1 : HEADER + 9] + bytes(40)
    with pytest.raises(ProtocolError):
        decode(as64, CFG)  # uint64 payload under a 32-bit configuration
    with pytest.raises(ProtocolError):
        decode(good, wide)
    for bad in (np.zeros(4, np.uint32), np.zeros(5, np.uint64), np.zeros((5, 1), np.uint32)):
        with pytest.raises(EncodingError):
            encode(MaskedInput(sender=1, vector=bad), CFG)


def test_id_lists_must_be_strictly_increasing_known_and_bounded() -> None:
    for survivors in ((2, 1), (1, 1)):
        data = encode(ConsistencyRequest(receiver=1, survivors=survivors), MAL)
        with pytest.raises(ProtocolError):
            decode(data, MAL)
    with pytest.raises(EncodingError, match="99 is not a client"):
        encode(ConsistencyRequest(receiver=1, survivors=(1, 99)), MAL)
    data = encode(ConsistencyRequest(receiver=1, survivors=(1, 2)), MAL)
    with pytest.raises(ProtocolError, match="index 99"):  # an index past n on the wire
        decode(_patch(data, HEADER + 8, ">I", 99), MAL)
    dup = encode(ShareForward(receiver=5, shares=(SealedShare(2, CT), SealedShare(2, CT))), CFG)
    with pytest.raises(ProtocolError, match="increasing"):
        decode(dup, CFG)  # a replayed entry
    huge = _patch(encode(ConsistencyRequest(receiver=1, survivors=()), MAL), HEADER, ">I", 9)
    with pytest.raises(ProtocolError, match="entries"):
        decode(huge, MAL)


def test_mode_specific_fields() -> None:
    # a signature field in semi-honest mode is extra bytes; a missing one is short
    with pytest.raises(ProtocolError):
        decode(encode(AdvertiseKeys(sender=2, c_public=K1, s_public=K2, signature=SIG), MAL),
               CFG)
    with pytest.raises(ProtocolError):
        decode(encode(AdvertiseKeys(sender=2, c_public=K1, s_public=K2), CFG), MAL)
    with pytest.raises(EncodingError):  # wrong-size fields refuse to encode
        encode(AdvertiseKeys(sender=2, c_public=K1, s_public=K2, signature=SIG), CFG)
    req = UnmaskRequest(receiver=1, survivors=(1,), dropped=(), signatures=((1, SIG),))
    with pytest.raises(ProtocolError, match="semi-honest"):
        decode(encode(req, MAL).replace(MAL.digest, CFG.digest), CFG)


def test_share_fields() -> None:
    resp = UnmaskResponse(sender=2, shares=(RevealedShare(1, "b", Share(2, 3, 5)),))
    data = encode(resp, CFG)
    kind_at = HEADER + 4 + 4
    with pytest.raises(ProtocolError, match="kind"):
        decode(_patch(data, kind_at, ">B", 7), CFG)
    with pytest.raises(ProtocolError):
        decode(_patch(data, kind_at + 1, ">B", 9), CFG)  # share version
    with pytest.raises(ProtocolError):  # index 0
        decode(_patch(data, kind_at + 4, ">H", 0), CFG)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_ever_raise_protocol_error(data: bytes) -> None:
    for cfg in (CFG, MAL):
        with contextlib.suppress(ProtocolError):
            decode(data, cfg)


@given(st.data())
def test_mutated_messages_decode_or_raise_protocol_error(data: st.DataObject) -> None:
    msg = data.draw(st.sampled_from(_samples(MAL)))
    raw = bytearray(encode(msg, MAL))  # type: ignore[arg-type]
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    with contextlib.suppress(ProtocolError):
        decode(bytes(raw), MAL)
