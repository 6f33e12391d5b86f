"""What the Flower transport puts in a message, and what a node keeps between messages.

Every protocol message travels inside one Flower ``ConfigRecord`` named
:data:`RECORD` of a ``query.secagg`` message (a ClientApp without the client
mod has no such handler and answers with an error, so a node that does not
run the mod can never be handed a training task whose plaintext reply would
reach the server). One message carries *sections* of one or two sessions of
the same protocol (:data:`MAX_SECTIONS`): sessions run back to back are
pipelined, so the next session's first rounds ride on the current session's
last round trips. Fields (``i`` is the section number, ``0`` or ``1``):

===============  ===========  ==================================================
``v``            int          :data:`VERSION`
``protocol``     str          the descriptor's name (every section's protocol)
``sections``     int          number of sections, 1..:data:`MAX_SECTIONS`
``i.session``    bytes        16 random bytes, fresh for every session;
                              distinct across the sections of one message
``i.round``      str          that session's round when the message was sent
``i.payloads``   list[bytes]  that session's encoded protocol messages
``i.config``     bytes        a session's first message only: its configuration
``i.encoder``    list[float]  with ``i.config`` only: clip, scale, max summands,
                              modulus bits (Paillier: clip, scale, value bits, 0)
``i.error``      str          replies only: the node refuses this session (why,
                              1..:data:`MAX_ERROR` characters; no payloads)
===============  ===========  ==================================================

A reply carries, for each session it answers, a section with the same
session id and round. Any other field, a section number out of range, a
section without its three required fields, ``config`` without ``encoder``
(or the reverse), an ``error`` with payloads or a configuration, or one
session named twice is refused.

The node keeps each live party in ``context.state`` as its own record named
``STATE + "." + session id in hex`` (at most :data:`MAX_SECTIONS` of them)
with ``v``, ``session``, ``protocol``, ``config``, ``encoder`` and ``party``
(the party's own versioned ``export_state`` bytes). Both are parsed
strictly: a missing or extra field or a wrong type is a
:class:`~secagg.errors.ProtocolError`. Nothing here is pickled. Version 1
(one session per message, the next session's start in ``next.*`` fields)
is refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flwr.app import ConfigRecord, RecordDict

from secagg.encoding import FixedPointEncoder
from secagg.errors import ParameterError, ProtocolError

from ..paillier_sum.config import PaillierQuantizer

__all__ = [
    "MAX_SECTIONS",
    "MESSAGE_TYPE",
    "RECORD",
    "STATE",
    "VERSION",
    "NodeState",
    "Packet",
    "Section",
    "decode_encoder",
    "encode_encoder",
    "saved_parties",
    "state_key",
]

#: the ConfigRecord holding the transport's fields in a message
RECORD = "secagg.transport"
#: prefix of the ConfigRecords holding a node's parties between messages (in ``context.state``)
STATE = "secagg.party"
#: the Flower message type of every protocol message (``query`` category, action ``secagg``)
MESSAGE_TYPE = "query.secagg"
VERSION = 2
#: upper bound on one payload list (messages per node per round)
MAX_PAYLOADS = 64
#: sessions one message may carry, and live parties one node may hold
MAX_SECTIONS = 2
#: upper bound on the length of a protocol or round name
MAX_NAME = 64
#: upper bound on the length of a section's refusal reason
MAX_ERROR = 500
_SECTION_KEYS = ("session", "round", "payloads", "config", "encoder", "error")


def encode_encoder(enc: Any) -> list[float]:
    """A power-of-two :class:`FixedPointEncoder` as four numbers (or Paillier's
    quantizer, see :func:`_encode_paillier`)."""
    if isinstance(enc, PaillierQuantizer):  # hook: Paillier over Flower
        return _encode_paillier(enc)
    if not isinstance(enc, FixedPointEncoder):
        raise ParameterError(f"the Flower transport ships a FixedPointEncoder or a "
                             f"PaillierQuantizer (the nodes quantize with its 4 fields), got "
                             f"{type(enc).__name__}")
    if not enc.power_of_two:
        raise ParameterError("the Flower transport ships FixedPointEncoders mod 2^32 or 2^64 "
                             f"only, not modulus {enc.modulus}")
    return [float(enc.clip), float(enc.scale), float(enc.max_summands),
            float(enc.modulus.bit_length() - 1)]


def decode_encoder(values: Sequence[float]) -> FixedPointEncoder | PaillierQuantizer:
    """Rebuild the encoder from :func:`encode_encoder`'s numbers (checked)."""
    if len(values) != 4 or not all(isinstance(v, float) and math.isfinite(v) for v in values):
        raise ProtocolError(f"encoder parameters must be 4 finite floats, got {values!r}")
    clip, scale, summands, bits = values
    if bits == 0.0:  # hook: Paillier over Flower
        return _decode_paillier(clip, scale, summands)
    if bits not in (32.0, 64.0) or summands != int(summands) or not 1 <= summands <= 2**32:
        raise ProtocolError(f"encoder modulus bits {bits} / summands {summands} are invalid")
    return FixedPointEncoder(clip=clip, scale=scale, max_summands=int(summands),
                             modulus_bits=int(bits))


# Paillier's quantizer (signed integers in [-M, M], no modulus) travels as
# ``[clip, scale, value_bits, 0.0]``: modulus bits 0 names it.
def _encode_paillier(q: PaillierQuantizer) -> list[float]:
    return [float(q.clip), float(q.scale), float(q.value_bits), 0.0]


def _decode_paillier(clip: float, scale: float, value_bits: float) -> PaillierQuantizer:
    if value_bits != int(value_bits) or not 2 <= value_bits <= 48 or not clip > 0:
        raise ProtocolError(f"Paillier quantizer clip {clip} / value bits {value_bits} are "
                            "invalid (clip > 0, value bits 2..48)")
    q = PaillierQuantizer(clip, int(value_bits))
    if q.scale != scale:
        raise ProtocolError(f"Paillier quantizer scale {scale} is not the one clip {clip} and "
                            f"{int(value_bits)} value bits give ({q.scale})")
    return q


def _get(rec: ConfigRecord, key: str, kind: type, what: str) -> object:
    if key not in rec:
        raise ProtocolError(f"{what} has no field {key!r}")
    v = rec[key]
    if not isinstance(v, kind) or (isinstance(v, bool) and kind is not bool):
        raise ProtocolError(f"{what} field {key!r} is {type(v).__name__}, not {kind.__name__}")
    return v


def _bytes(rec: ConfigRecord, key: str, what: str) -> bytes:
    v = _get(rec, key, bytes, what)
    assert isinstance(v, bytes)
    return v


def _name(rec: ConfigRecord, key: str, what: str) -> str:
    v = _get(rec, key, str, what)
    assert isinstance(v, str)
    if not 1 <= len(v) <= MAX_NAME:
        raise ProtocolError(f"{what} field {key!r} has {len(v)} characters, not 1..{MAX_NAME}")
    return v


def _session(rec: ConfigRecord, key: str, what: str) -> bytes:
    v = _bytes(rec, key, what)
    if len(v) != 16:
        raise ProtocolError(f"{what} field {key!r} (a session id) has {len(v)} bytes, not 16")
    return v


def _bytes_list(rec: ConfigRecord, key: str, what: str) -> list[bytes]:
    v = _get(rec, key, list, what)
    assert isinstance(v, list)
    if len(v) > MAX_PAYLOADS or not all(isinstance(x, bytes) for x in v):
        raise ProtocolError(f"{what} field {key!r} must be at most {MAX_PAYLOADS} byte strings")
    return list(v)


def _opt_bytes(rec: ConfigRecord, key: str, what: str) -> bytes | None:
    return _bytes(rec, key, what) if key in rec else None


def _opt_encoder(rec: ConfigRecord, key: str, what: str) -> tuple[float, ...] | None:
    if key not in rec:
        return None
    v = rec[key]
    if not isinstance(v, list) or len(v) != 4 or not all(
            isinstance(x, float) and math.isfinite(x) for x in v):
        raise ProtocolError(f"{what} field {key!r} is not 4 finite floats")
    return tuple(float(x) for x in v)


@dataclass(frozen=True)
class Section:
    """One session's part of a transport message."""

    session: bytes
    round: str
    payloads: tuple[bytes, ...]
    #: a session's first message only: its configuration bytes and encoder fields
    config: bytes | None = None
    encoder: tuple[float, ...] | None = None
    #: replies only: why the node refuses this session (then no payloads)
    error: str | None = None


@dataclass(frozen=True)
class Packet:
    """One transport message (either direction): sections of 1..2 sessions of one protocol."""

    protocol: str
    sections: tuple[Section, ...]

    @property
    def round(self) -> str:
        """The first section's round (the session that drives this round trip)."""
        return self.sections[0].round

    def section(self, session: bytes) -> Section | None:
        """The section of ``session``, or None."""
        return next((s for s in self.sections if s.session == session), None)

    def to_record(self) -> ConfigRecord:
        if not 1 <= len(self.sections) <= MAX_SECTIONS:
            raise ParameterError(f"a packet holds 1..{MAX_SECTIONS} sections, "
                                 f"not {len(self.sections)}")
        rec = ConfigRecord({"v": VERSION, "protocol": self.protocol,
                            "sections": len(self.sections)})
        for i, s in enumerate(self.sections):
            rec[f"{i}.session"] = s.session
            rec[f"{i}.round"] = s.round
            rec[f"{i}.payloads"] = list(s.payloads)
            if s.config is not None:
                rec[f"{i}.config"] = s.config
            if s.encoder is not None:
                rec[f"{i}.encoder"] = list(s.encoder)
            if s.error is not None:
                rec[f"{i}.error"] = s.error
        return rec

    @classmethod
    def from_content(cls, content: RecordDict) -> Packet | None:
        """The packet in a message's content, None if it holds none."""
        if RECORD not in content.config_records:
            return None
        rec = content.config_records[RECORD]
        what = "transport record"
        version = _get(rec, "v", int, what)
        if version != VERSION:
            raise ProtocolError(f"transport record version {version!r} is not {VERSION}")
        count = _get(rec, "sections", int, what)
        assert isinstance(count, int)
        if not 1 <= count <= MAX_SECTIONS:
            raise ProtocolError(f"transport record has {count} sections, not 1..{MAX_SECTIONS}")
        allowed = {"v", "protocol", "sections"} | {
            f"{i}.{k}" for i in range(count) for k in _SECTION_KEYS}
        extra = sorted(set(rec) - allowed)
        if extra:
            raise ProtocolError(f"transport record has unknown fields {extra[:5]}")
        protocol = _name(rec, "protocol", what)
        sections = []
        for i in range(count):
            config = _opt_bytes(rec, f"{i}.config", what)
            enc = _opt_encoder(rec, f"{i}.encoder", what)
            if (config is None) != (enc is None):
                raise ProtocolError(f"transport record section {i} has a configuration "
                                    "without an encoder or the reverse")
            payloads = tuple(_bytes_list(rec, f"{i}.payloads", what))
            error = None
            if f"{i}.error" in rec:
                error = str(_get(rec, f"{i}.error", str, what))
                if not 1 <= len(error) <= MAX_ERROR or payloads or config is not None:
                    raise ProtocolError(f"transport record section {i}: a refusal of 1.."
                                        f"{MAX_ERROR} characters comes without payloads or "
                                        "configuration")
            sections.append(Section(
                session=_session(rec, f"{i}.session", what),
                round=_name(rec, f"{i}.round", what),
                payloads=payloads, config=config, encoder=enc, error=error))
        if len({s.session for s in sections}) != len(sections):
            raise ProtocolError("transport record names one session in two sections")
        return cls(protocol=protocol, sections=tuple(sections))


def state_key(session: bytes) -> str:
    """The ``context.state`` record name of the party of ``session``."""
    return f"{STATE}.{session.hex()}"


@dataclass(frozen=True)
class NodeState:
    """What a node keeps between messages of one session (holds secrets)."""

    session: bytes
    protocol: str
    config: bytes
    encoder: tuple[float, ...]
    party: bytes

    def to_record(self) -> ConfigRecord:
        return ConfigRecord({
            "v": VERSION, "session": self.session, "protocol": self.protocol,
            "config": self.config, "encoder": list(self.encoder), "party": self.party,
        })

    @classmethod
    def from_record(cls, rec: ConfigRecord) -> NodeState:
        what = "saved party state"
        version = _get(rec, "v", int, what)
        if version != VERSION:
            raise ProtocolError(f"saved party state version {version!r} is not {VERSION}")
        extra = sorted(set(rec) - {"v", "session", "protocol", "config", "encoder", "party"})
        if extra:
            raise ProtocolError(f"saved party state has unknown fields {extra[:5]}")
        enc = _get(rec, "encoder", list, what)
        assert isinstance(enc, list)
        if len(enc) != 4 or not all(isinstance(x, float) for x in enc):
            raise ProtocolError("saved party state field 'encoder' is not 4 floats")
        return cls(
            session=_session(rec, "session", what),
            protocol=_name(rec, "protocol", what),
            config=_bytes(rec, "config", what),
            encoder=tuple(enc),
            party=_bytes(rec, "party", what),
        )


def saved_parties(state: RecordDict) -> dict[bytes, NodeState]:
    """Every party saved in a node's ``context.state``, by session id (checked:
    each record's name matches the session it holds, at most
    :data:`MAX_SECTIONS` of them)."""
    out: dict[bytes, NodeState] = {}
    for key, rec in state.config_records.items():
        if not key.startswith(STATE + "."):
            continue
        saved = NodeState.from_record(rec)
        if key != state_key(saved.session):
            raise ProtocolError(f"saved party record {key!r} holds session "
                                f"{saved.session.hex()}")
        out[saved.session] = saved
    if len(out) > MAX_SECTIONS:
        raise ProtocolError(f"{len(out)} saved parties, at most {MAX_SECTIONS}")
    return out
