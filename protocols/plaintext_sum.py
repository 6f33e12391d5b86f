"""A plaintext sum on the party contract: the baseline, and the smallest example.

Every client sends its encoded vector in the clear; the server adds what
arrives. No privacy at all: use it to measure what the secure protocols
cost, and as a template for a new protocol (config with a digest, one
message type with a ``sender`` and a ``ROUND``, a codec, a client, a
coordinator, a descriptor); the simulator and the testing kit then apply
unchanged. Ids: any ints in ``[0, 2^64)``; inputs: a
:class:`~secagg.FixedPointEncoder` with a 2^64 modulus.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from secagg import wire
from secagg.encoding import FixedPointEncoder
from secagg.errors import AbortError, LocalProtocolError, ParameterError, RemoteProtocolError

from .core import SERVER, CoordinatorResult, Envelope, ProtocolDescriptor, Session

__all__ = ["PLAINTEXT_SUM", "PlainConfig", "PlainInput"]


@dataclass(frozen=True)
class PlainConfig:
    """The clients (sorted ids), the dimension and the fixed-point encoding."""

    client_ids: tuple[int, ...]
    dimension: int
    clip: float = 4.0
    frac_bits: int = 24

    def to_bytes(self) -> bytes:
        w = wire.Writer(b"PLCF").u64(self.dimension).f64(self.clip).u8(self.frac_bits)
        return wire.write_ids(w, self.client_ids, width=64).getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> PlainConfig:
        r = wire.Reader(data, b"PLCF")
        dim, clip, frac = r.u64(), r.f64(), r.u8()
        ids = wire.read_ids(r, width=64, max_count=1 << 20)
        r.done()
        return cls(ids, dim, clip, frac)

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.to_bytes()).digest()

    def encoder(self) -> FixedPointEncoder:
        return FixedPointEncoder(self.clip, frac_bits=self.frac_bits,
                                 max_summands=len(self.client_ids), modulus_bits=64)


@dataclass(frozen=True, eq=False)
class PlainInput:
    """A client's encoded vector, in the clear."""

    ROUND: ClassVar[str] = "input"
    sender: int
    vector: npt.NDArray[np.uint64] = field(repr=False)


class PlainCodec:
    """``"PLIN" v1 | config digest | sender id (u64) | vector``."""

    def __init__(self, config: PlainConfig) -> None:
        self.config = config

    def encode(self, message: PlainInput) -> bytes:
        if not isinstance(message, PlainInput):
            raise ParameterError(f"cannot encode {type(message).__name__}")
        w = wire.Writer(b"PLIN").raw(self.config.digest).u64(message.sender)
        return w.vector(np.asarray(message.vector, dtype=np.uint64)).getvalue()

    def decode(self, data: bytes) -> PlainInput:
        r = wire.Reader(data, b"PLIN")
        if r.raw(32) != self.config.digest:
            raise RemoteProtocolError("message bound to another configuration (digest)")
        msg = PlainInput(r.u64(), r.vector(self.config.dimension, np.dtype(np.uint64)))
        r.done()
        return msg


class PlainClient:
    """Sends its input in :meth:`start`; accepts nothing."""

    def __init__(self, config: PlainConfig, client_id: int) -> None:
        self.config, self.address = config, client_id
        self.round: str | None = "input"
        self._x: npt.NDArray[np.uint64] | None = None

    def set_input(self, vector: npt.NDArray[Any]) -> None:
        if self.round is None:
            raise LocalProtocolError("the input was already sent")
        self._x = np.asarray(vector, dtype=np.uint64).copy()

    def start(self) -> list[Envelope]:
        if self._x is None or self.round is None:
            raise LocalProtocolError(f"client {self.address}: no input, or already sent")
        self.round = None
        return [Envelope(SERVER, PlainInput(self.address, self._x))]

    def handle(self, message: Any) -> list[Envelope]:
        raise RemoteProtocolError(f"a plaintext-sum client accepts no {type(message).__name__}")

    def export_state(self) -> bytes:
        w = wire.Writer(b"PLCS").raw(self.config.digest).u64(self.address)
        return w.u8(int(self.round is None)).vector(
            self._x if self._x is not None else np.zeros(0, np.uint64)).getvalue()


class PlainServer:
    """Adds each client's vector once; closes when all sent or at the deadline."""

    def __init__(self, config: PlainConfig) -> None:
        self.config = config
        self.round: str | None = "input"
        self.result: CoordinatorResult | None = None
        self._acc = np.zeros(config.dimension, np.uint64)
        self._got: set[int] = set()

    def start(self) -> list[Envelope]:
        return []

    def handle(self, msg: PlainInput) -> list[Envelope]:
        if self.round is None or not isinstance(msg, PlainInput):
            raise RemoteProtocolError(f"{type(msg).__name__} refused: round closed or unknown")
        if msg.sender not in self.config.client_ids or msg.sender in self._got:
            raise RemoteProtocolError(f"input from {msg.sender}: stranger or duplicate")
        vec = msg.vector
        if not isinstance(vec, np.ndarray) or vec.dtype != np.uint64 \
                or vec.shape != (self.config.dimension,):
            raise RemoteProtocolError(f"input must be a uint64 vector of length "
                                      f"{self.config.dimension}, got "
                                      f"{getattr(vec, 'dtype', type(vec).__name__)} "
                                      f"{getattr(vec, 'shape', '')}")
        np.add(self._acc, msg.vector, out=self._acc)
        self._got.add(msg.sender)
        return self.close_round() if len(self._got) == len(self.config.client_ids) else []

    def close_round(self) -> list[Envelope]:
        if self.round is None:
            raise LocalProtocolError("the round is already closed")
        self.round = None
        if not self._got:
            raise AbortError("no input arrived")
        self.result = CoordinatorResult(self._acc, frozenset(self._got))
        return []


def _build(ids: tuple[int, ...], dimension: int, *, seed: int | None = None,
           clip: float = 4.0, frac_bits: int = 24) -> Session:
    cfg = PlainConfig(ids, dimension, clip, frac_bits)
    clients: dict[int, Any] = {u: PlainClient(cfg, u) for u in ids}
    return Session(cfg, PlainServer(cfg), clients, cfg.encoder())


def _restore(config: PlainConfig, data: bytes) -> PlainClient:
    r = wire.Reader(data, b"PLCS")
    if r.raw(32) != config.digest:
        raise ParameterError("the saved state belongs to another configuration")
    client = PlainClient(config, r.u64())
    sent, x = r.u8(), r.vector(expected_dtype=np.dtype(np.uint64))
    r.done()
    client.round, client._x = (None if sent else "input"), (x if x.size else None)
    return client


#: The plaintext-sum baseline: one round, ``"input"``.
PLAINTEXT_SUM = ProtocolDescriptor(
    name="plaintext", rounds=("input",), input_round="input", build=_build,
    make_codec=PlainCodec, dump_config=PlainConfig.to_bytes,
    load_config=PlainConfig.from_bytes, restore=_restore)
