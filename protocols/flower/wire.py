"""What the Flower transport puts in a message, and what a node keeps between messages.

Every protocol message travels inside one Flower ``ConfigRecord`` named
:data:`RECORD` of a ``query.secagg`` message (a ClientApp without the client
mod has no such handler and answers with an error, so a node that does not
run the mod can never be handed a training task whose plaintext reply would
reach the server). Fields:

=============  =========  ====================================================
``v``          int        :data:`VERSION`
``session``    bytes      16 random bytes, fresh for every session
``protocol``   str        the descriptor's name
``round``      str        the coordinator's round when the message was sent
``payloads``   list[bytes] the protocol's encoded messages (codec bytes)
``config``     bytes      first message only: the protocol configuration
``encoder``    list[float] first message only: clip, scale, max summands, modulus bits
                          (Paillier: clip, scale, value bits, 0)
``next.*``     ...        optional, a session's last round only: ``next.session``,
                          ``next.config``, ``next.encoder`` start the next session
                          on the node; its reply carries ``next.payloads`` (that
                          session's first messages), saving one round trip
=============  =========  ====================================================

The node keeps its party in ``context.state`` under :data:`STATE` with the
same ``v``, ``session``, ``protocol``, ``config``, ``encoder`` and
``party`` (the party's own versioned ``export_state`` bytes). Both are
parsed strictly: a missing field or a wrong type is a
:class:`~secagg.errors.ProtocolError`. Nothing here is pickled.
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
    "MESSAGE_TYPE",
    "RECORD",
    "STATE",
    "VERSION",
    "NodeState",
    "Packet",
    "decode_encoder",
    "encode_encoder",
]

#: the ConfigRecord holding the transport's fields in a message
RECORD = "secagg.transport"
#: the ConfigRecord holding a node's party between messages (in ``context.state``)
STATE = "secagg.party"
#: the Flower message type of every protocol message (``query`` category, action ``secagg``)
MESSAGE_TYPE = "query.secagg"
VERSION = 1
#: upper bound on one payload list (messages per node per round)
MAX_PAYLOADS = 64


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


def _bytes_list(rec: ConfigRecord, key: str, what: str) -> list[bytes]:
    v = _get(rec, key, list, what)
    assert isinstance(v, list)
    if len(v) > MAX_PAYLOADS or not all(isinstance(x, bytes) for x in v):
        raise ProtocolError(f"{what} field {key!r} must be at most {MAX_PAYLOADS} byte strings")
    return list(v)


def _opt_bytes(rec: ConfigRecord, key: str) -> bytes | None:
    v = rec.get(key)
    if v is not None and not isinstance(v, bytes):
        raise ProtocolError(f"transport record field {key!r} is not bytes")
    return v


def _opt_encoder(rec: ConfigRecord, key: str) -> tuple[float, ...] | None:
    v = rec.get(key)
    if v is None:
        return None
    if not isinstance(v, list) or len(v) != 4 or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        raise ProtocolError(f"transport record field {key!r} is not 4 numbers")
    return tuple(float(x) for x in v)


@dataclass(frozen=True)
class Packet:
    """One transport message (either direction)."""

    session: bytes
    protocol: str
    round: str
    payloads: tuple[bytes, ...]
    config: bytes | None = None
    encoder: tuple[float, ...] | None = None
    next_session: bytes | None = None
    next_config: bytes | None = None
    next_encoder: tuple[float, ...] | None = None
    next_payloads: tuple[bytes, ...] = ()

    def to_record(self) -> ConfigRecord:
        rec = ConfigRecord({
            "v": VERSION, "session": self.session, "protocol": self.protocol,
            "round": self.round, "payloads": list(self.payloads),
        })
        if self.config is not None:
            rec["config"] = self.config
        if self.encoder is not None:
            rec["encoder"] = list(self.encoder)
        if self.next_session is not None:
            rec["next.session"] = self.next_session
        if self.next_config is not None:
            rec["next.config"] = self.next_config
        if self.next_encoder is not None:
            rec["next.encoder"] = list(self.next_encoder)
        if self.next_payloads:
            rec["next.payloads"] = list(self.next_payloads)
        return rec

    @classmethod
    def from_content(cls, content: RecordDict) -> Packet | None:
        """The packet in a message's content, None if it holds none."""
        if RECORD not in content.config_records:
            return None
        rec = content.config_records[RECORD]
        what = "transport record"
        if _get(rec, "v", int, what) != VERSION:
            raise ProtocolError(f"transport record version {rec['v']!r} is not {VERSION}")
        session = _bytes(rec, "session", what)
        if len(session) != 16:
            raise ProtocolError(f"session id has {len(session)} bytes, not 16")
        config = _opt_bytes(rec, "config")
        enc = _opt_encoder(rec, "encoder")
        nxt = _opt_bytes(rec, "next.session")
        if nxt is not None and len(nxt) != 16:
            raise ProtocolError(f"next session id has {len(nxt)} bytes, not 16")
        next_payloads = (tuple(_bytes_list(rec, "next.payloads", what))
                         if "next.payloads" in rec else ())
        return cls(
            session=session,
            protocol=str(_get(rec, "protocol", str, what)),
            round=str(_get(rec, "round", str, what)),
            payloads=tuple(_bytes_list(rec, "payloads", what)),
            config=config,
            encoder=enc,
            next_session=nxt,
            next_config=_opt_bytes(rec, "next.config"),
            next_encoder=_opt_encoder(rec, "next.encoder"),
            next_payloads=next_payloads,
        )


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
        if _get(rec, "v", int, what) != VERSION:
            raise ProtocolError(f"saved party state version {rec['v']!r} is not {VERSION}")
        enc = _get(rec, "encoder", list, what)
        assert isinstance(enc, list)
        if len(enc) != 4 or not all(isinstance(x, float) for x in enc):
            raise ProtocolError("saved party state field 'encoder' is not 4 floats")
        return cls(
            session=_bytes(rec, "session", what),
            protocol=str(_get(rec, "protocol", str, what)),
            config=_bytes(rec, "config", what),
            encoder=tuple(enc),
            party=_bytes(rec, "party", what),
        )
