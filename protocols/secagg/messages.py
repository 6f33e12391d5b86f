"""Typed messages of the pairwise-mask protocol and their strict binary codec.

Every message is framed as ``"SAGG" | version (u8) | type (u8) | session id
(u64) | config digest (32 bytes) | sender (u32) | receiver (u32) | body``,
with big-endian integers (:mod:`secagg.wire`). On the wire a client is its
index 1..n in the configuration's sorted id list
(:meth:`~protocols.secagg.SecAggConfig.index_of`) and the server is 0; the
message objects carry the caller's client ids (any u64) and
:data:`~protocols.core.SERVER` (``"server"``).
:func:`decode` checks everything it can without secrets: magic, version,
type, session, digest, that the sender and receiver are a client and the
server in the right direction, id lists strictly increasing and made of
configured clients, fixed field lengths, the vector's dtype and length, and
that no byte is left over. Any violation raises
:class:`~secagg.errors.RemoteProtocolError` before a message object exists;
:func:`encode` raises :class:`~secagg.errors.EncodingError` for a field it
cannot carry. Nothing is pickled.

=====================  ======  ================  ==================================
message                dir.    round             body
=====================  ======  ================  ==================================
AdvertiseKeys          C -> S  advertise         c_pk (32), s_pk (32), [sig (64)]
KeyBroadcast           S -> C  share_keys        [(id, c_pk, s_pk, [sig])] of N[u]
ShareKeys              C -> S  share_keys        [(to, sealed shares)] for N(u)
ShareForward           S -> C  masked_input      [(from, sealed shares)]
MaskedInput            C -> S  masked_input      vector y_u (dtype, length d)
ConsistencyRequest     S -> C  consistency       survivor set U3, [(id, key hash)] of U1
ConsistencySignature   C -> S  consistency       sig (64) over U3 and the roster
UnmaskRequest          S -> C  unmask            survivors, dropped, [(id, sig)]
UnmaskResponse         C -> S  unmask            [(owner, kind, share)]
=====================  ======  ================  ==================================

``[sig]`` fields exist only in the malicious mode. A sealed share is
``AES-GCM(c_uv, owner (u32) | holder (u32) | b-share | s-share)`` with the
session, digest, round, sender and receiver as associated data.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import ClassVar, Literal, Union

import numpy as np
import numpy.typing as npt

from secagg import aead, kex, shamir, sign, wire
from secagg.errors import EncodingError, ParameterError
from secagg.errors import RemoteProtocolError as ProtocolError

from ..core import SERVER
from .config import SecAggConfig
from .freshness import ROSTER_ENTRY_BYTES

__all__ = [
    "SEALED_SHARE_BYTES",
    "SERVER",
    "AdvertiseKeys",
    "ConsistencyRequest",
    "ConsistencySignature",
    "KeyBroadcast",
    "KeyEntry",
    "MaskedInput",
    "Message",
    "RevealedShare",
    "SealedShare",
    "SecAggCodec",
    "ShareForward",
    "ShareKeys",
    "ShareKind",
    "UnmaskRequest",
    "UnmaskResponse",
    "decode",
    "encode",
]

#: The server's index on the wire (clients are 1..n).
_SERVER_INDEX = 0
MAGIC = b"SAGG"
VERSION = 1
#: Plaintext of a sealed share: owner, holder, b-share, s-share.
SHARE_PLAINTEXT_BYTES = 8 + 2 * shamir.SHARE_BYTES
SEALED_SHARE_BYTES = aead.OVERHEAD + SHARE_PLAINTEXT_BYTES
_KEY = kex.KEY_BYTES
_SIG = sign.SIGNATURE_BYTES
_ROSTER = ROSTER_ENTRY_BYTES  # a roster entry: SHA-256 of a client's two public keys

ShareKind = Literal["b", "s"]
_KIND_CODES: dict[str, int] = {"b": 0, "s": 1}
_KIND_NAMES: dict[int, ShareKind] = {0: "b", 1: "s"}
_VECTOR_CODE = {dt: code for code, dt in wire.DTYPE_CODES.items()}


# -- message types -------------------------------------------------------------
@dataclass(frozen=True)
class KeyEntry:
    """One client's advertised public keys (and, in malicious mode, its signature)."""

    client: int
    c_public: bytes
    s_public: bytes
    signature: bytes = b""


@dataclass(frozen=True)
class SealedShare:
    """An AEAD ciphertext of shares; ``peer`` is the receiver (in ShareKeys)
    or the sender (in ShareForward)."""

    peer: int
    ciphertext: bytes


@dataclass(frozen=True)
class RevealedShare:
    """A share of ``owner``'s self-mask seed (``kind="b"``) or mask key (``"s"``)."""

    owner: int
    kind: ShareKind
    share: shamir.Share


@dataclass(frozen=True, kw_only=True)
class AdvertiseKeys:
    """Round "advertise": a client's two X25519 public keys."""

    TYPE: ClassVar[int] = 1
    ROUND: ClassVar[str] = "advertise"
    sender: int
    c_public: bytes
    s_public: bytes
    signature: bytes = b""
    receiver: int | str = SERVER


@dataclass(frozen=True, kw_only=True)
class KeyBroadcast:
    """Round "share_keys", to client ``receiver``: the keys of its live closed
    neighbourhood (its own included)."""

    TYPE: ClassVar[int] = 2
    ROUND: ClassVar[str] = "share_keys"
    receiver: int
    keys: tuple[KeyEntry, ...]
    sender: int | str = SERVER


@dataclass(frozen=True, kw_only=True)
class ShareKeys:
    """Round "share_keys": a client's sealed shares, one per live neighbour."""

    TYPE: ClassVar[int] = 3
    ROUND: ClassVar[str] = "share_keys"
    sender: int
    shares: tuple[SealedShare, ...]
    receiver: int | str = SERVER


@dataclass(frozen=True, kw_only=True)
class ShareForward:
    """Round "masked_input", to client ``receiver``: the sealed shares its
    neighbours addressed to it."""

    TYPE: ClassVar[int] = 4
    ROUND: ClassVar[str] = "masked_input"
    receiver: int
    shares: tuple[SealedShare, ...]
    sender: int | str = SERVER


@dataclass(frozen=True, kw_only=True, eq=False)
class MaskedInput:
    """Round "masked_input": ``y_u = x_u + PRG(b_u) + sum of signed pairwise masks``."""

    TYPE: ClassVar[int] = 5
    ROUND: ClassVar[str] = "masked_input"
    sender: int
    vector: npt.NDArray[np.unsignedinteger]
    receiver: int | str = SERVER


@dataclass(frozen=True, kw_only=True)
class ConsistencyRequest:
    """Round "consistency" (malicious mode), to ``receiver``: the survivor set
    U3 and the roster of U1 (each client's id and the hash of its advertised
    keys), whose digest every signature binds (see ``freshness``)."""

    TYPE: ClassVar[int] = 6
    ROUND: ClassVar[str] = "consistency"
    receiver: int
    survivors: tuple[int, ...]
    roster: tuple[tuple[int, bytes], ...] = ()
    sender: int | str = SERVER


@dataclass(frozen=True, kw_only=True)
class ConsistencySignature:
    """Round "consistency": a client's signature over the survivor set it saw."""

    TYPE: ClassVar[int] = 7
    ROUND: ClassVar[str] = "consistency"
    sender: int
    signature: bytes
    receiver: int | str = SERVER


@dataclass(frozen=True, kw_only=True)
class UnmaskRequest:
    """Round "unmask", to ``receiver``: which of its neighbours survived (send
    their b-shares) and which dropped (send their s-shares); in malicious mode
    also every consistency signature the server collected."""

    TYPE: ClassVar[int] = 8
    ROUND: ClassVar[str] = "unmask"
    receiver: int
    survivors: tuple[int, ...]
    dropped: tuple[int, ...]
    signatures: tuple[tuple[int, bytes], ...] = ()
    sender: int | str = SERVER


@dataclass(frozen=True, kw_only=True)
class UnmaskResponse:
    """Round "unmask": the requested shares, one per named neighbour."""

    TYPE: ClassVar[int] = 9
    ROUND: ClassVar[str] = "unmask"
    sender: int
    shares: tuple[RevealedShare, ...]
    receiver: int | str = SERVER


Message = Union[  # noqa: UP007 - a runtime alias usable in isinstance-free annotations
    AdvertiseKeys, KeyBroadcast, ShareKeys, ShareForward, MaskedInput,
    ConsistencyRequest, ConsistencySignature, UnmaskRequest, UnmaskResponse,
]
_TYPES: dict[int, type] = {
    cls.TYPE: cls
    for cls in (AdvertiseKeys, KeyBroadcast, ShareKeys, ShareForward, MaskedInput,
                ConsistencyRequest, ConsistencySignature, UnmaskRequest, UnmaskResponse)
}
_FROM_CLIENT = (AdvertiseKeys, ShareKeys, MaskedInput, ConsistencySignature, UnmaskResponse)


# -- encoding ------------------------------------------------------------------
def _need(cond: bool, what: str) -> None:
    if not cond:
        raise ProtocolError(what)


def _fixed(b: bytes, n: int, what: str) -> bytes:
    if not (isinstance(b, (bytes, bytearray)) and len(b) == n):
        got = len(b) if isinstance(b, (bytes, bytearray)) else type(b).__name__
        raise EncodingError(f"{what} must be {n} bytes, got {got}")
    return bytes(b)


def _ix(config: SecAggConfig, party: int | str) -> int:
    """Wire index of a party: 0 for the server, 1..n for the clients."""
    if party == SERVER:
        return _SERVER_INDEX
    try:
        return config.index_of(party)  # type: ignore[arg-type]
    except ParameterError as exc:
        raise EncodingError(str(exc)) from None


def _id(config: SecAggConfig, index: int, what: str) -> int:
    _need(1 <= index <= config.n, f"{what}: client index {index} outside [1, {config.n}]")
    return config.client_ids[index - 1]


def _sig_len(config: SecAggConfig) -> int:
    return _SIG if config.mode == "malicious" else 0


def _write_ids(w: wire.Writer, ids: tuple[int, ...], config: SecAggConfig) -> None:
    w.u32(len(ids))
    for i in ids:
        w.u32(_ix(config, i))


def encode(msg: Message, config: SecAggConfig) -> bytes:
    """The wire bytes of ``msg`` under ``config`` (session and digest included)."""
    if type(msg) not in _TYPES.values():
        raise EncodingError(f"cannot encode {type(msg).__name__}")
    w = wire.Writer(MAGIC, VERSION)
    w.u8(msg.TYPE).u64(config.session_id).raw(config.digest)
    w.u32(_ix(config, msg.sender)).u32(_ix(config, msg.receiver))
    sig = _sig_len(config)
    if isinstance(msg, AdvertiseKeys):
        w.raw(_fixed(msg.c_public, _KEY, "c_public")).raw(_fixed(msg.s_public, _KEY, "s_public"))
        w.raw(_fixed(msg.signature, sig, "signature"))
    elif isinstance(msg, KeyBroadcast):
        w.u32(len(msg.keys))
        for e in msg.keys:
            w.u32(_ix(config, e.client)).raw(_fixed(e.c_public, _KEY, "c_public"))
            w.raw(_fixed(e.s_public, _KEY, "s_public")).raw(_fixed(e.signature, sig, "signature"))
    elif isinstance(msg, (ShareKeys, ShareForward)):
        w.u32(len(msg.shares))
        for s in msg.shares:
            w.u32(_ix(config, s.peer)).raw(_fixed(s.ciphertext, SEALED_SHARE_BYTES,
                                                  "sealed share"))
    elif isinstance(msg, MaskedInput):
        v = msg.vector
        if not (isinstance(v, np.ndarray) and v.dtype == config.dtype
                and v.shape == (config.dimension,)):
            raise EncodingError(
                f"masked input must be a {config.dtype} vector of length {config.dimension}")
        # the wire.Writer.vector layout, joined without an intermediate copy
        le = np.ascontiguousarray(v, dtype=v.dtype.newbyteorder("<"))
        w.u8(_VECTOR_CODE[le.dtype]).u64(le.shape[0])
        return b"".join((w.getvalue(), le.data.cast("B")))
    elif isinstance(msg, ConsistencyRequest):
        _write_ids(w, msg.survivors, config)
        w.u32(len(msg.roster))
        for cid, entry in msg.roster:
            w.u32(_ix(config, cid)).raw(_fixed(entry, _ROSTER, "roster entry"))
    elif isinstance(msg, ConsistencySignature):
        w.raw(_fixed(msg.signature, _SIG, "signature"))
    elif isinstance(msg, UnmaskRequest):
        _write_ids(w, msg.survivors, config)
        _write_ids(w, msg.dropped, config)
        w.u32(len(msg.signatures))
        for cid, sig_bytes in msg.signatures:
            w.u32(_ix(config, cid)).raw(_fixed(sig_bytes, _SIG, "signature"))
    elif isinstance(msg, UnmaskResponse):
        w.u32(len(msg.shares))
        for r in msg.shares:
            if r.kind not in _KIND_CODES:
                raise EncodingError(f"unknown share kind {r.kind!r}")
            w.u32(_ix(config, r.owner)).u8(_KIND_CODES[r.kind]).raw(r.share.to_bytes())
    return w.getvalue()


# -- decoding ------------------------------------------------------------------
def _read_count(r: wire.Reader, config: SecAggConfig, what: str) -> int:
    n = r.u32()
    _need(n <= config.n, f"{what}: {n} entries for {config.n} clients")
    return n


def _check_increasing(ixs: list[int], config: SecAggConfig, what: str) -> tuple[int, ...]:
    """Wire indices (strictly increasing, each a client) -> client ids."""
    for a, b in pairwise(ixs):
        _need(b > a, f"{what}: ids must be strictly increasing (duplicate or unordered {b})")
    return tuple(_id(config, i, what) for i in ixs)


def _read_ids(r: wire.Reader, config: SecAggConfig, what: str) -> tuple[int, ...]:
    n = _read_count(r, config, what)
    return _check_increasing([r.u32() for _ in range(n)], config, what)


def decode(data: bytes, config: SecAggConfig) -> Message:
    """Parse and check one message; raises :class:`ProtocolError` on anything off."""
    r = wire.Reader(data, MAGIC, (VERSION,))
    code = r.u8()
    cls = _TYPES.get(code)
    _need(cls is not None, f"unknown message type {code}")
    session = r.u64()
    _need(session == config.session_id,
          f"message of session {session}, this round is session {config.session_id}")
    _need(r.raw(32) == config.digest, "message bound to another configuration (digest)")
    s_ix, r_ix = r.u32(), r.u32()
    name = cls.__name__  # type: ignore[union-attr]
    sender: int
    receiver: int
    if cls in _FROM_CLIENT:
        _need(1 <= s_ix <= config.n, f"{name} from index {s_ix}, not a client of this round")
        _need(r_ix == _SERVER_INDEX, f"{name} addressed to index {r_ix}, not the server")
        sender, receiver = config.client_ids[s_ix - 1], 0
    else:
        _need(s_ix == _SERVER_INDEX, f"{name} must come from the server, not index {s_ix}")
        _need(1 <= r_ix <= config.n, f"{name} for index {r_ix}, not a client of this round")
        sender, receiver = 0, config.client_ids[r_ix - 1]
    sig = _sig_len(config)
    msg: Message
    if cls is AdvertiseKeys:
        msg = AdvertiseKeys(sender=sender, c_public=r.raw(_KEY), s_public=r.raw(_KEY),
                            signature=r.raw(sig))
    elif cls is KeyBroadcast:
        n = _read_count(r, config, name)
        raw_keys = [(r.u32(), r.raw(_KEY), r.raw(_KEY), r.raw(sig)) for _ in range(n)]
        ids = _check_increasing([k[0] for k in raw_keys], config, name)
        keys = [KeyEntry(i, *k[1:]) for i, k in zip(ids, raw_keys, strict=True)]
        msg = KeyBroadcast(receiver=receiver, keys=tuple(keys))
    elif cls is ShareKeys or cls is ShareForward:
        n = _read_count(r, config, name)
        raw_sh = [(r.u32(), r.raw(SEALED_SHARE_BYTES)) for _ in range(n)]
        peers = _check_increasing([s[0] for s in raw_sh], config, name)
        shares = [SealedShare(p, s[1]) for p, s in zip(peers, raw_sh, strict=True)]
        if cls is ShareKeys:
            msg = ShareKeys(sender=sender, shares=tuple(shares))
        else:
            msg = ShareForward(receiver=receiver, shares=tuple(shares))
    elif cls is MaskedInput:
        # the wire.Reader.vector layout, viewed in place (read-only, no copy)
        code, length = r.u8(), r.u64()
        want = config.dtype.newbyteorder("<")
        _need(wire.DTYPE_CODES.get(code) == want,
              f"vector dtype code {code}, expected {_VECTOR_CODE[want]} ({config.dtype})")
        _need(length == config.dimension,
              f"vector length {length} does not match expected {config.dimension}")
        nbytes = length * want.itemsize
        _need(r.remaining() >= nbytes, f"truncated vector: {r.remaining()} bytes, need {nbytes}")
        _need(r.remaining() == nbytes, f"{r.remaining() - nbytes} trailing bytes")
        buf = data if isinstance(data, bytes) else bytes(data)
        vec = np.frombuffer(buf, dtype=want, count=length, offset=len(buf) - nbytes)
        if vec.dtype != config.dtype:  # pragma: no cover - big-endian host
            vec = vec.astype(config.dtype)
        return MaskedInput(sender=sender, vector=vec)
    elif cls is ConsistencyRequest:
        survivors = _read_ids(r, config, name)
        n = _read_count(r, config, name + " roster")
        raw_roster = [(r.u32(), r.raw(_ROSTER)) for _ in range(n)]
        listed = _check_increasing([c for c, _ in raw_roster], config, name + " roster")
        roster = [(c, e) for c, (_, e) in zip(listed, raw_roster, strict=True)]
        msg = ConsistencyRequest(receiver=receiver, survivors=survivors, roster=tuple(roster))
    elif cls is ConsistencySignature:
        msg = ConsistencySignature(sender=sender, signature=r.raw(_SIG))
    elif cls is UnmaskRequest:
        survivors = _read_ids(r, config, name + " survivors")
        dropped = _read_ids(r, config, name + " dropped")
        n = _read_count(r, config, name + " signatures")
        _need(sig > 0 or n == 0, "signatures in an UnmaskRequest of the semi-honest mode")
        raw_sigs = [(r.u32(), r.raw(_SIG)) for _ in range(n)]
        signers = _check_increasing([c for c, _ in raw_sigs], config, name + " signatures")
        sigs = [(c, s) for c, (_, s) in zip(signers, raw_sigs, strict=True)]
        msg = UnmaskRequest(receiver=receiver, survivors=survivors, dropped=dropped,
                            signatures=tuple(sigs))
    else:  # UnmaskResponse
        n = _read_count(r, config, name)
        raw_r: list[tuple[int, ShareKind, shamir.Share]] = []
        for _ in range(n):
            owner, kcode = r.u32(), r.u8()
            kind = _KIND_NAMES.get(kcode)
            _need(kind is not None, f"unknown share kind {kcode}")
            raw_r.append((owner, kind,  # type: ignore[arg-type]
                          shamir.Share.from_bytes(r.raw(shamir.SHARE_BYTES))))
        owners = _check_increasing([s[0] for s in raw_r], config, name)
        shares_r = [RevealedShare(o, k, sh) for o, (_, k, sh) in zip(owners, raw_r, strict=True)]
        msg = UnmaskResponse(sender=sender, shares=tuple(shares_r))
    r.done()
    return msg


class SecAggCodec:
    """The :class:`~protocols.core.Codec` of one configuration: :func:`encode`
    and :func:`decode` bound to ``config``."""

    def __init__(self, config: SecAggConfig) -> None:
        if not isinstance(config, SecAggConfig):
            raise ParameterError(f"expected a SecAggConfig, got {type(config).__name__}")
        self.config = config

    def encode(self, message: Message) -> bytes:
        return encode(message, self.config)

    def decode(self, data: bytes) -> Message:
        return decode(data, self.config)
