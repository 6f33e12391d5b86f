"""Paillier-encrypted summation as sans-I/O state machines.

Clients encrypt their vectors under an additively homomorphic Paillier key
(packed, see :mod:`secagg.paillier`); the aggregator multiplies ciphertexts
it cannot read; only a holder of the private key decrypts, and only the sum.

Two trust layouts:

``"key-holder"``
    A separate key holder owns the key pair. It announces the public key and
    packing layout (:class:`PublicSetup`) to the clients and the aggregator,
    decrypts the one :class:`EncryptedSum` the aggregator sends for the round
    and returns the exact integer sum (:class:`DecryptedSum`) to the
    aggregator. The aggregator never holds the private key.

``"cross-silo"``
    The clients (silos) share the key pair; the aggregator has only the
    public key. Every client announces the public setup it uses and sends its
    input; the aggregator broadcasts the :class:`EncryptedSum` back and each
    client decrypts it. The aggregator never learns the sum. Clients may use
    CRT-accelerated encryption since they hold the private key.

Each party takes one message (typed, or its bytes) in ``receive`` and returns
the :class:`Outgoing` messages it sends; it owns no socket, thread, clock or
global state. The aggregator sums whatever arrived when the driver calls
:meth:`PaillierSumAggregator.finish` (or as soon as every client has sent);
dropouts are fine and the result names who is included. A message from the
wrong round, a second input from one client, a replayed ciphertext, a
ciphertext under another key or with another layout is refused with a
specific :class:`~secagg.errors.SecAggError` and leaves the party unchanged.

Security assumptions: parties are honest-but-curious; the transport
authenticates senders (for example with :mod:`secagg.sign` over the message
bytes, which bind round and sender). A malicious aggregator can add or drop
inputs (Paillier is malleable) and must not collude with the key holder (or,
cross-silo, with any client), or it learns individual inputs.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import time
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from secagg import paillier
from secagg.errors import (
    AbortError,
    EncodingError,
    ParameterError,
    ProtocolError,
    SecAggError,
)
from secagg.paillier import (
    ClipPolicy,
    DJNTable,
    EncryptedVector,
    EncryptionMode,
    ObfuscatorPool,
    PackingLayout,
)
from secagg.wire import Reader, Writer

from .results import AggregationResult, PartyFigures

__all__ = [
    "AGGREGATOR",
    "CLIENTS",
    "KEY_HOLDER",
    "ROUNDS",
    "DecryptedSum",
    "EncryptedInput",
    "EncryptedSum",
    "Message",
    "Outgoing",
    "PaillierSumAggregator",
    "PaillierSumClient",
    "PaillierSumConfig",
    "PaillierSumKeyHolder",
    "PublicSetup",
    "TrustLayout",
    "decode_message",
    "simulate",
]

TrustLayout = Literal["key-holder", "cross-silo"]

#: Recipient names besides client ids. ``CLIENTS`` means every client.
AGGREGATOR = "aggregator"
KEY_HOLDER = "key_holder"
CLIENTS = "clients"
Recipient: TypeAlias = int | str

#: Round names, as ``dropouts`` and the cost figures use them.
ROUNDS = ("setup", "encrypt", "decrypt")

_MAX_CLIENT_ID = (1 << 32) - 1
_MAX_ROUND = (1 << 64) - 1
_ROLE_KEY_HOLDER = 0
_ROLE_CLIENT = 1


def _check_round(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_ROUND:
        raise ParameterError(f"round must be an int in [0, 2^64), got {value!r}")
    return value


def _check_ids(name: str, ids: Iterable[int]) -> frozenset[int]:
    out = frozenset(ids)
    for i in out:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i <= _MAX_CLIENT_ID:
            raise ParameterError(f"{name} holds {i!r}; client ids are ints in [0, 2^32)")
    return out


def _write_ids(w: Writer, ids: frozenset[int]) -> None:
    w.u32(len(ids))
    for i in sorted(ids):
        w.u32(i)


def _read_ids(r: Reader) -> frozenset[int]:
    count = r.u32()
    if count * 4 > r.remaining():
        raise ProtocolError(f"id list of {count} entries is longer than the message")
    ids = [r.u32() for _ in range(count)]
    if any(b <= a for a, b in itertools.pairwise(ids)):
        raise ProtocolError("id list is not strictly increasing (duplicate or unsorted ids)")
    return frozenset(ids)


# --------------------------------------------------------------------- config


@dataclass(frozen=True)
class PaillierSumConfig:
    """What every party of one round agrees on in advance.

    Attributes:
        round: round number (u64), bound into every message.
        clients: ids of the clients expected to contribute (ints in [0, 2^32)).
        dimension: length of every input vector.
        trust_layout: ``"key-holder"`` or ``"cross-silo"``.
        clip: largest |x| per element (larger values are clipped).
        value_bits: fixed-point bits per value (resolution ``clip / (2^(b-1)-1)``).
        max_summands: summand capacity of the packing (default: number of
            clients; must be at least that). Costs ``ceil(log2)`` bits per slot.
        min_clients: the sum is decrypted only if at least this many inputs
            are in it; fewer aborts the round.
    """

    round: int
    clients: frozenset[int]
    dimension: int
    trust_layout: TrustLayout = "key-holder"
    clip: float = 1.0
    value_bits: int = 16
    max_summands: int | None = None
    min_clients: int = 1

    def __post_init__(self) -> None:
        _check_round(self.round)
        object.__setattr__(self, "clients", _check_ids("clients", self.clients))
        if not self.clients:
            raise ParameterError("clients must not be empty")
        if self.trust_layout not in ("key-holder", "cross-silo"):
            raise ParameterError(
                f"trust_layout must be 'key-holder' or 'cross-silo', got {self.trust_layout!r}"
            )
        if self.max_summands is not None and self.max_summands < len(self.clients):
            raise ParameterError(
                f"max_summands={self.max_summands} is below the {len(self.clients)} clients; "
                "a full sum would overflow its slots"
            )
        m = self.min_clients
        if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= len(self.clients):
            raise ParameterError(f"min_clients={m!r} is outside [1, {len(self.clients)}]")

    def packing(
        self, public_key: Any, *, insecure_allow_small_key_for_tests: bool = False
    ) -> PackingLayout:
        """The packing layout this config implies under ``public_key``."""
        return PackingLayout.create(
            public_key,
            self.dimension,
            clip=self.clip,
            value_bits=self.value_bits,
            capacity=self.max_summands or len(self.clients),
            insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests,
        )


# ------------------------------------------------------------------- messages


@dataclass(frozen=True)
class PublicSetup:
    """Public key and packing layout for a round (magic ``PSPS``).

    Sent by the key holder (``sender=None``) or, cross-silo, by a client.
    """

    round: int
    sender: int | None
    public_key: Any
    layout: PackingLayout
    clients: frozenset[int]
    min_clients: int

    MAGIC = b"PSPS"

    def to_bytes(self) -> bytes:
        w = Writer(self.MAGIC).u64(self.round)
        if self.sender is None:
            w.u8(_ROLE_KEY_HOLDER).u32(0)
        else:
            w.u8(_ROLE_CLIENT).u32(self.sender)
        w.blob(paillier.public_key_to_bytes(self.public_key)).blob(self.layout.to_bytes())
        _write_ids(w, self.clients)
        return w.u32(self.min_clients).getvalue()

    @classmethod
    def from_bytes(
        cls, data: bytes, *, insecure_allow_small_key_for_tests: bool = False
    ) -> PublicSetup:
        r = Reader(data, cls.MAGIC)
        rnd = r.u64()
        role, sender = r.u8(), r.u32()
        if role not in (_ROLE_KEY_HOLDER, _ROLE_CLIENT) or (role == _ROLE_KEY_HOLDER and sender):
            raise ProtocolError(f"bad sender role {role} / id {sender}")
        try:
            pk = paillier.public_key_from_bytes(
                r.blob(max_len=4096),
                insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests,
            )
        except ParameterError as exc:
            raise ProtocolError(f"refusing the announced public key: {exc}") from exc
        layout = PackingLayout.from_bytes(r.blob(max_len=1024))
        clients = _read_ids(r)
        min_clients = r.u32()
        r.done()
        return cls(
            rnd, None if role == _ROLE_KEY_HOLDER else sender, pk, layout, clients, min_clients
        )

    def key_fingerprint(self) -> bytes:
        return paillier.fingerprint(self.public_key)


@dataclass(frozen=True)
class EncryptedInput:
    """One client's encrypted vector (magic ``PSEI``).

    ``payload`` is a serialised :class:`~secagg.paillier.EncryptedVector`;
    :meth:`vector` parses and validates it under the round's public key.
    """

    round: int
    sender: int
    payload: bytes

    MAGIC = b"PSEI"

    def to_bytes(self) -> bytes:
        return Writer(self.MAGIC).u64(self.round).u32(self.sender).blob(self.payload).getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> EncryptedInput:
        r = Reader(data, cls.MAGIC)
        out = cls(r.u64(), r.u32(), r.blob())
        r.done()
        return out

    def vector(
        self, public_key: Any, *, insecure_allow_small_key_for_tests: bool = False
    ) -> EncryptedVector:
        return _open_vector(self.payload, public_key, insecure_allow_small_key_for_tests)


@dataclass(frozen=True)
class EncryptedSum:
    """The aggregator's homomorphic sum and who is in it (magic ``PSES``)."""

    round: int
    included: frozenset[int]
    payload: bytes

    MAGIC = b"PSES"

    def to_bytes(self) -> bytes:
        w = Writer(self.MAGIC).u64(self.round)
        _write_ids(w, self.included)
        return w.blob(self.payload).getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> EncryptedSum:
        r = Reader(data, cls.MAGIC)
        rnd = r.u64()
        included = _read_ids(r)
        payload = r.blob()
        r.done()
        return cls(rnd, included, payload)

    def vector(
        self, public_key: Any, *, insecure_allow_small_key_for_tests: bool = False
    ) -> EncryptedVector:
        return _open_vector(self.payload, public_key, insecure_allow_small_key_for_tests)


@dataclass(frozen=True, eq=False)
class DecryptedSum:
    """The exact integer sum, from the key holder to the aggregator (magic ``PSDS``).

    ``raw_sum[i] = sum over included clients of round(x_i * scale)`` (int64).
    """

    round: int
    included: frozenset[int]
    raw_sum: npt.NDArray[np.int64]

    MAGIC = b"PSDS"

    def to_bytes(self) -> bytes:
        w = Writer(self.MAGIC).u64(self.round)
        _write_ids(w, self.included)
        raw = np.ascontiguousarray(self.raw_sum, dtype=np.int64).view(np.uint64)
        return w.vector(raw).getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> DecryptedSum:
        r = Reader(data, cls.MAGIC)
        rnd = r.u64()
        included = _read_ids(r)
        raw = r.vector(expected_dtype=np.dtype(np.uint64))
        r.done()
        return cls(rnd, included, raw.view(np.int64))


Message: TypeAlias = PublicSetup | EncryptedInput | EncryptedSum | DecryptedSum
_TYPES: dict[bytes, Any] = {
    t.MAGIC: t for t in (PublicSetup, EncryptedInput, EncryptedSum, DecryptedSum)
}


def decode_message(data: bytes, *, insecure_allow_small_key_for_tests: bool = False) -> Message:
    """Parse any message of this protocol; malformed bytes raise ProtocolError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    cls = _TYPES.get(data[:4])
    if cls is None:
        raise ProtocolError(f"unknown message magic {data[:4]!r}")
    if cls is PublicSetup:
        return PublicSetup.from_bytes(
            data, insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests
        )
    msg: Message = cls.from_bytes(data)
    return msg


@dataclass(frozen=True)
class Outgoing:
    """A message and its recipient: a client id, ``AGGREGATOR``,
    ``KEY_HOLDER`` or ``CLIENTS`` (every client)."""

    to: Recipient
    message: Message


def _open_vector(payload: bytes, public_key: Any, insecure: bool) -> EncryptedVector:
    try:
        return EncryptedVector.from_bytes(
            payload, public_key, insecure_allow_small_key_for_tests=insecure
        )
    except ParameterError as exc:  # another key: a protocol violation here
        raise ProtocolError(f"refusing the ciphertext vector: {exc}") from exc


def _as_message(message: Message | bytes, insecure: bool) -> Message:
    if isinstance(message, (bytes, bytearray, memoryview)):
        return decode_message(bytes(message), insecure_allow_small_key_for_tests=insecure)
    if not isinstance(message, (PublicSetup, EncryptedInput, EncryptedSum, DecryptedSum)):
        raise ProtocolError(f"not a message of this protocol: {type(message).__name__}")
    return message


def _check_msg_round(config: PaillierSumConfig, message: Message) -> None:
    if message.round != config.round:
        raise ProtocolError(
            f"{type(message).__name__} is from round {message.round}, this is round {config.round}"
        )


def _check_sum_request(
    config: PaillierSumConfig, layout: PackingLayout, msg: EncryptedSum, vec: EncryptedVector
) -> None:
    """Checks shared by every party that decrypts an EncryptedSum."""
    extra = msg.included - config.clients
    if extra:
        raise ProtocolError(f"the sum names clients outside the round: {sorted(extra)}")
    if len(msg.included) < config.min_clients:
        raise ProtocolError(
            f"refusing to decrypt a sum of {len(msg.included)} inputs; "
            f"min_clients is {config.min_clients}"
        )
    if vec.layout != layout:
        raise ProtocolError("the sum's packing layout differs from the round's")
    if vec.summands != len(msg.included):
        raise ProtocolError(
            f"the sum holds {vec.summands} summands but names {len(msg.included)} clients"
        )


def _check_setup(config: PaillierSumConfig, setup: PublicSetup, insecure: bool) -> PackingLayout:
    """The layout a setup must carry; raise ProtocolError if it carries another."""
    try:
        paillier.check_public_key(setup.public_key, insecure_allow_small_key_for_tests=insecure)
        expected = config.packing(setup.public_key, insecure_allow_small_key_for_tests=insecure)
    except ParameterError as exc:
        raise ProtocolError(f"refusing the public setup: {exc}") from exc
    if setup.layout != expected:
        raise ProtocolError(
            f"the announced packing layout {setup.layout} differs from the round's {expected}"
        )
    if setup.clients != config.clients or setup.min_clients != config.min_clients:
        raise ProtocolError("the announced clients or min_clients differ from the round's")
    return expected


# ------------------------------------------------------------------- parties


class PaillierSumKeyHolder:
    """The key holder of the ``"key-holder"`` layout.

    ``start()`` announces the public setup; ``receive(EncryptedSum)``
    decrypts it, once per round, and answers with a :class:`DecryptedSum`.
    It refuses a second sum for the round, a sum of fewer than
    ``min_clients`` inputs, and anything not under its key and layout.
    """

    def __init__(
        self,
        config: PaillierSumConfig,
        public_key: Any,
        private_key: Any,
        *,
        workers: int | None = None,
        insecure_allow_small_key_for_tests: bool = False,
    ) -> None:
        if config.trust_layout != "key-holder":
            raise ParameterError("a key holder exists only in the 'key-holder' layout")
        paillier.check_private_key(
            private_key, insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests
        )
        if paillier.fingerprint(private_key.public_key) != paillier.fingerprint(public_key):
            raise ParameterError("the private key does not belong to the public key")
        self.config = config
        self._pk = public_key
        self._sk = private_key
        self._workers = workers
        self._insecure = insecure_allow_small_key_for_tests
        self.layout = config.packing(
            public_key, insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests
        )
        self.state: Literal["new", "announced", "done"] = "new"
        self.raw_result: npt.NDArray[np.int64] | None = None
        self.included: frozenset[int] | None = None

    def start(self) -> list[Outgoing]:
        """Announce the public key and layout to the clients and the aggregator."""
        if self.state != "new":
            raise ProtocolError("the key holder has already announced this round")
        setup = PublicSetup(
            self.config.round,
            None,
            self._pk,
            self.layout,
            self.config.clients,
            self.config.min_clients,
        )
        self.state = "announced"
        return [Outgoing(CLIENTS, setup), Outgoing(AGGREGATOR, setup)]

    def receive(self, message: Message | bytes) -> list[Outgoing]:
        msg = _as_message(message, self._insecure)
        if not isinstance(msg, EncryptedSum):
            raise ProtocolError(f"the key holder does not accept {type(msg).__name__}")
        _check_msg_round(self.config, msg)
        if self.state == "new":
            raise ProtocolError("an encrypted sum arrived before the setup was announced")
        if self.state == "done":
            raise ProtocolError(
                f"already decrypted one sum in round {self.config.round}; refusing another"
            )
        vec = msg.vector(self._pk, insecure_allow_small_key_for_tests=self._insecure)
        _check_sum_request(self.config, self.layout, msg, vec)
        raw = paillier.decrypt_integers(self._sk, vec, workers=self._workers)
        self.state = "done"
        self.raw_result = raw
        self.included = msg.included
        return [Outgoing(AGGREGATOR, DecryptedSum(self.config.round, msg.included, raw))]


class PaillierSumClient:
    """A client: encrypts its vector once the public setup is known.

    ``"key-holder"``: ``receive(PublicSetup)`` returns the encrypted input.
    ``"cross-silo"``: built with the shared ``keypair``; ``start()`` returns
    the public setup and the encrypted input, and ``receive(EncryptedSum)``
    decrypts the sum into :attr:`result`.

    ``mode`` picks the encryption path: ``"online"``, ``"pool"`` (needs
    ``pool``), ``"crt"`` (cross-silo only) or ``"djn"`` (the short-exponent
    variant with its non-standard assumption; uses ``djn`` or builds a table).
    """

    def __init__(
        self,
        client_id: int,
        config: PaillierSumConfig,
        values: npt.ArrayLike,
        *,
        keypair: tuple[Any, Any] | None = None,
        expected_public_key: Any = None,
        mode: EncryptionMode = "online",
        pool: ObfuscatorPool | None = None,
        djn: DJNTable | None = None,
        workers: int | None = None,
        on_clip: ClipPolicy = "clip",
        insecure_allow_small_key_for_tests: bool = False,
    ) -> None:
        if client_id not in config.clients:
            raise ParameterError(f"client {client_id!r} is not in the round's clients")
        x = np.asarray(values)
        if x.ndim != 1 or x.shape[0] != config.dimension:
            raise EncodingError(
                f"client {client_id}: expected a 1-D vector of {config.dimension} values, "
                f"got shape {x.shape}"
            )
        if x.dtype.kind not in "fiu":
            raise EncodingError(f"client {client_id}: expected real numbers, got dtype {x.dtype}")
        if mode not in ("online", "pool", "crt", "djn"):
            raise ParameterError(f"unknown encryption mode {mode!r}")
        cross = config.trust_layout == "cross-silo"
        if cross and keypair is None:
            raise ParameterError("cross-silo clients need the shared keypair")
        if not cross and keypair is not None:
            raise ParameterError("in the 'key-holder' layout clients never hold the private key")
        if mode == "crt" and not cross:
            raise ParameterError("mode 'crt' needs the private key: cross-silo layout only")
        if mode == "pool" and pool is None:
            raise ParameterError("mode 'pool' needs a precomputed ObfuscatorPool")
        self.client_id = client_id
        self.config = config
        self._values = np.array(x, dtype=np.float64)
        self._mode: EncryptionMode = mode
        self._pool = pool
        self._djn = djn
        self._workers = workers
        self._on_clip: ClipPolicy = on_clip
        self._insecure = insecure_allow_small_key_for_tests
        self._pk: Any = None
        self._sk: Any = None
        self.layout: PackingLayout | None = None
        if keypair is not None:
            pk, sk = keypair
            paillier.check_private_key(sk, insecure_allow_small_key_for_tests=self._insecure)
            if paillier.fingerprint(sk.public_key) != paillier.fingerprint(pk):
                raise ParameterError("the keypair's private key does not match its public key")
            self._pk, self._sk = pk, sk
            self.layout = config.packing(pk, insecure_allow_small_key_for_tests=self._insecure)
        pinned = expected_public_key if expected_public_key is not None else self._pk
        self._pinned_fp = paillier.fingerprint(pinned) if pinned is not None else None
        self.state: Literal["new", "sent", "done"] = "new"
        self.raw_result: npt.NDArray[np.int64] | None = None
        self.result: npt.NDArray[np.float64] | None = None
        self.included: frozenset[int] | None = None

    def _encrypt(self) -> EncryptedInput:
        assert self.layout is not None
        kw: dict[str, Any] = {}
        if self._mode == "pool":
            kw["pool"] = self._pool
        elif self._mode == "crt":
            kw["private_key"] = self._sk
        elif self._mode == "djn":
            if self._djn is None:
                self._djn = DJNTable(self._pk, insecure_allow_small_key_for_tests=self._insecure)
            kw["djn"] = self._djn
        try:
            vec = paillier.encrypt(
                self._pk,
                self.layout,
                self._values,
                workers=self._workers,
                on_clip=self._on_clip,
                insecure_allow_small_key_for_tests=self._insecure,
                **kw,
            )
        except ParameterError as exc:
            raise ParameterError(f"client {self.client_id}: {exc}") from exc
        return EncryptedInput(self.config.round, self.client_id, vec.to_bytes())

    def start(self) -> list[Outgoing]:
        """Cross-silo: announce the setup and send the encrypted input.
        Key-holder layout: nothing to do until the setup arrives."""
        if self.config.trust_layout != "cross-silo":
            return []
        if self.state != "new":
            raise ProtocolError(f"client {self.client_id} has already sent its input")
        assert self.layout is not None
        setup = PublicSetup(
            self.config.round,
            self.client_id,
            self._pk,
            self.layout,
            self.config.clients,
            self.config.min_clients,
        )
        inp = self._encrypt()
        self.state = "sent"
        return [Outgoing(AGGREGATOR, setup), Outgoing(AGGREGATOR, inp)]

    def receive(self, message: Message | bytes) -> list[Outgoing]:
        msg = _as_message(message, self._insecure)
        _check_msg_round(self.config, msg)
        cross = self.config.trust_layout == "cross-silo"
        if isinstance(msg, PublicSetup) and not cross:
            if self.state != "new":
                raise ProtocolError(f"client {self.client_id} has already received the setup")
            if msg.sender is not None:
                raise ProtocolError("the public setup must come from the key holder")
            if self._pinned_fp is not None and msg.key_fingerprint() != self._pinned_fp:
                raise ProtocolError("the announced public key is not the expected one")
            layout = _check_setup(self.config, msg, self._insecure)
            self._pk, self.layout = msg.public_key, layout
            try:
                inp = self._encrypt()
            except SecAggError:
                self._pk, self.layout = None, None
                raise
            self.state = "sent"
            return [Outgoing(AGGREGATOR, inp)]
        if isinstance(msg, EncryptedSum) and cross:
            if self.state == "done":
                raise ProtocolError(f"client {self.client_id} has already decrypted this round")
            assert self.layout is not None
            vec = msg.vector(self._pk, insecure_allow_small_key_for_tests=self._insecure)
            _check_sum_request(self.config, self.layout, msg, vec)
            raw = paillier.decrypt_integers(self._sk, vec, workers=self._workers)
            self.raw_result = raw
            self.result = raw.astype(np.float64) / self.layout.scale
            self.included = msg.included
            self.state = "done"
            return []
        raise ProtocolError(
            f"a {self.config.trust_layout} client does not accept {type(msg).__name__}"
        )


class PaillierSumAggregator:
    """The aggregator: checks and multiplies encrypted inputs it cannot read.

    It needs a :class:`PublicSetup` first. Each :class:`EncryptedInput` is
    validated (round, sender, no second input, no replayed ciphertext, key,
    layout, group membership) before it joins the running product; a refused
    input changes nothing. :meth:`finish` closes the round with whatever
    arrived (it also closes by itself once every client has sent).
    ``"key-holder"``: the sum goes to the key holder and the
    :class:`DecryptedSum` it returns becomes :attr:`result`.
    ``"cross-silo"``: the sum goes to every client; the aggregator never
    learns it.
    """

    def __init__(
        self,
        config: PaillierSumConfig,
        *,
        expected_public_key: Any = None,
        insecure_allow_small_key_for_tests: bool = False,
    ) -> None:
        self.config = config
        self._insecure = insecure_allow_small_key_for_tests
        self._pinned_fp = (
            paillier.fingerprint(expected_public_key) if expected_public_key is not None else None
        )
        self._setup: PublicSetup | None = None
        self._pk: Any = None
        self.layout: PackingLayout | None = None
        self._sum: EncryptedVector | None = None
        self._included: set[int] = set()
        self._seen: set[bytes] = set()
        self.state: Literal["setup", "collecting", "summed", "done"] = "setup"
        self.raw_result: npt.NDArray[np.int64] | None = None
        self.result: npt.NDArray[np.float64] | None = None

    @property
    def included(self) -> frozenset[int]:
        """Clients whose input is in the running sum."""
        return frozenset(self._included)

    def receive(self, message: Message | bytes) -> list[Outgoing]:
        msg = _as_message(message, self._insecure)
        _check_msg_round(self.config, msg)
        if isinstance(msg, PublicSetup):
            return self._on_setup(msg)
        if isinstance(msg, EncryptedInput):
            return self._on_input(msg)
        if isinstance(msg, DecryptedSum):
            return self._on_result(msg)
        raise ProtocolError(f"the aggregator does not accept {type(msg).__name__}")

    def _on_setup(self, msg: PublicSetup) -> list[Outgoing]:
        cross = self.config.trust_layout == "cross-silo"
        if cross and (msg.sender is None or msg.sender not in self.config.clients):
            raise ProtocolError("cross-silo: the public setup must come from a client of the round")
        if not cross and msg.sender is not None:
            raise ProtocolError("the public setup must come from the key holder")
        if self._setup is not None:
            if (
                msg.key_fingerprint() != self._setup.key_fingerprint()
                or msg.layout != self._setup.layout
            ):
                raise ProtocolError("a public setup with a different key or layout was announced")
            return []
        if self._pinned_fp is not None and msg.key_fingerprint() != self._pinned_fp:
            raise ProtocolError("the announced public key is not the expected one")
        layout = _check_setup(self.config, msg, self._insecure)
        self._setup, self._pk, self.layout = msg, msg.public_key, layout
        self.state = "collecting"
        return []

    def _on_input(self, msg: EncryptedInput) -> list[Outgoing]:
        if self.state == "setup":
            raise ProtocolError("an encrypted input arrived before the public setup")
        if self.state != "collecting":
            raise ProtocolError(
                f"input from client {msg.sender} after the round closed; it is not included"
            )
        if msg.sender not in self.config.clients:
            raise ProtocolError(f"client {msg.sender} is not in the round")
        if msg.sender in self._included:
            raise ProtocolError(f"client {msg.sender} already sent its input (replay refused)")
        digest = hashlib.sha256(msg.payload).digest()
        if digest in self._seen:
            raise ProtocolError(f"client {msg.sender} sent a ciphertext already received (replay)")
        vec = msg.vector(self._pk, insecure_allow_small_key_for_tests=self._insecure)
        if vec.layout != self.layout:
            raise ProtocolError(f"client {msg.sender}'s vector has another packing layout")
        if vec.summands != 1:
            raise ProtocolError(
                f"client {msg.sender}'s vector claims {vec.summands} summands, expected 1"
            )
        try:
            new_sum = vec if self._sum is None else paillier.aggregate([self._sum, vec])
        except ParameterError as exc:
            raise ProtocolError(f"cannot add client {msg.sender}'s vector: {exc}") from exc
        self._sum = new_sum
        self._included.add(msg.sender)
        self._seen.add(digest)
        if self._included == set(self.config.clients):
            return self.finish()
        return []

    def finish(self) -> list[Outgoing]:
        """Close the input phase and send the sum of whatever arrived.

        Raises :class:`AbortError` (and stays open) if fewer than
        ``min_clients`` inputs arrived.
        """
        if self.state != "collecting":
            raise ProtocolError(f"cannot finish in state {self.state!r}")
        if len(self._included) < self.config.min_clients or self._sum is None:
            raise AbortError(
                f"only {len(self._included)} inputs arrived; min_clients is "
                f"{self.config.min_clients}"
            )
        out = EncryptedSum(self.config.round, self.included, self._sum.to_bytes())
        self.state = "summed"
        to: Recipient = KEY_HOLDER if self.config.trust_layout == "key-holder" else CLIENTS
        if to == CLIENTS:
            self.state = "done"
        return [Outgoing(to, out)]

    def _on_result(self, msg: DecryptedSum) -> list[Outgoing]:
        if self.config.trust_layout != "key-holder":
            raise ProtocolError("cross-silo: the aggregator never receives the decrypted sum")
        if self.state != "summed":
            raise ProtocolError(f"unexpected decrypted sum in state {self.state!r}")
        if msg.included != self.included:
            raise ProtocolError("the decrypted sum names other clients than the sum sent")
        assert self.layout is not None
        if msg.raw_sum.shape != (self.config.dimension,):
            raise ProtocolError(
                f"decrypted sum has {msg.raw_sum.shape[0]} values, expected {self.config.dimension}"
            )
        bound = len(msg.included) * self.layout.max_int
        if np.abs(msg.raw_sum).max(initial=0) > bound:
            raise ProtocolError(f"decrypted sum is past the largest possible |sum| {bound}")
        self.raw_result = msg.raw_sum.copy()
        self.result = self.raw_result.astype(np.float64) / self.layout.scale
        self.state = "done"
        return []


# ------------------------------------------------------------------ simulate


def simulate(
    inputs: Mapping[int, npt.ArrayLike],
    *,
    key_bits: int = paillier.DEFAULT_KEY_BITS,
    layout: TrustLayout = "key-holder",
    dropouts: Mapping[str, Iterable[int]] | None = None,
    seed: int | None = None,
    clip: float = 1.0,
    value_bits: int = 16,
    max_summands: int | None = None,
    min_clients: int = 1,
    mode: EncryptionMode = "online",
    keypair: tuple[Any, Any] | None = None,
    workers: int | None = None,
    round: int = 0,
    on_clip: ClipPolicy = "clip",
    insecure_allow_small_key_for_tests: bool = False,
) -> AggregationResult:
    """Run one round in process, every message through its byte codec.

    Mirrors :func:`protocols.secagg.simulate`: ``inputs`` maps client id to a
    float vector; ``dropouts`` maps a round name (``"setup"``, ``"encrypt"``,
    ``"decrypt"``) to clients that vanish before acting in it. Returns an
    :class:`AggregationResult` with the float64 ``sum`` of the included
    clients' clipped, quantised inputs, ``raw_sum`` (exact int64), who is
    ``included`` / ``dropped``, and per-party figures (keys: client ids,
    ``"server"``, and ``"key_holder"`` in the key-holder layout).

    ``keypair`` reuses a ``phe`` key pair (generating one takes a while);
    otherwise one of ``key_bits`` bits is generated. ``seed`` only orders the
    delivery of inputs; keys and encryption always use the OS generator.
    ``mode="pool"`` and ``"djn"`` precompute per client before the round
    (figures round ``"offline"``).
    """
    if not inputs:
        raise ParameterError("inputs must hold at least one client")
    vecs = {cid: np.asarray(v) for cid, v in inputs.items()}
    dims = {v.shape for v in vecs.values()}
    if len(dims) != 1 or len(next(iter(dims))) != 1:
        raise EncodingError(f"inputs must be 1-D vectors of one length, got shapes {sorted(dims)}")
    dimension = next(iter(dims))[0]
    drops: dict[str, frozenset[int]] = {r: frozenset() for r in ROUNDS}
    for name, ids in (dropouts or {}).items():
        if name not in ROUNDS:
            raise ParameterError(f"unknown round {name!r} in dropouts; rounds are {ROUNDS}")
        ids = frozenset(ids)
        unknown = ids - set(vecs)
        if unknown:
            raise ParameterError(f"dropouts[{name!r}] names unknown clients {sorted(unknown)}")
        drops[name] = ids
    config = PaillierSumConfig(
        round=round,
        clients=frozenset(vecs),
        dimension=dimension,
        trust_layout=layout,
        clip=clip,
        value_bits=value_bits,
        max_summands=max_summands,
        min_clients=min_clients,
    )
    insecure = insecure_allow_small_key_for_tests
    figures: dict[Hashable, PartyFigures] = {cid: PartyFigures() for cid in sorted(vecs)}
    figures["server"] = PartyFigures()
    cross = layout == "cross-silo"
    if not cross:
        figures["key_holder"] = PartyFigures()

    if keypair is None:
        t0 = time.perf_counter()
        keypair = paillier.generate_keypair(key_bits, insecure_allow_small_key_for_tests=insecure)
        if not cross:
            figures["key_holder"].add_compute("keygen", time.perf_counter() - t0)
    pk, sk = keypair
    if mode == "crt" and not cross:
        raise ParameterError("mode 'crt' needs the private key: use layout='cross-silo'")
    packing = config.packing(pk, insecure_allow_small_key_for_tests=insecure)

    clients: dict[int, PaillierSumClient] = {}
    for cid in sorted(vecs):
        extra: dict[str, Any] = {}
        t0 = time.perf_counter()
        if mode == "pool":
            extra["pool"] = ObfuscatorPool.precompute(
                pk,
                packing.ciphertexts,
                private_key=sk if cross else None,
                workers=workers,
                insecure_allow_small_key_for_tests=insecure,
            )
        elif mode == "djn":
            extra["djn"] = DJNTable(pk, insecure_allow_small_key_for_tests=insecure)
        if extra:
            figures[cid].add_compute("offline", time.perf_counter() - t0)
        clients[cid] = PaillierSumClient(
            cid,
            config,
            vecs[cid],
            keypair=keypair if cross else None,
            expected_public_key=None if cross else pk,
            mode=mode,
            workers=workers,
            on_clip=on_clip,
            insecure_allow_small_key_for_tests=insecure,
            **extra,
        )
    server = PaillierSumAggregator(
        config, expected_public_key=pk, insecure_allow_small_key_for_tests=insecure
    )
    key_holder = (
        None
        if cross
        else PaillierSumKeyHolder(
            config, pk, sk, workers=workers, insecure_allow_small_key_for_tests=insecure
        )
    )

    def name_of(party: Recipient) -> Hashable:
        return "server" if party == AGGREGATOR else party

    def send(sender: Hashable, out: Outgoing, rnd: str, recipients: Sequence[Recipient]) -> bytes:
        data = out.message.to_bytes()
        for rcp in recipients:
            figures[sender].add_sent(rnd, len(data))
            figures[name_of(rcp)].add_received(rnd, len(data))
        return data

    def call(party: Hashable, rnd: str, fn: Any, *args: Any) -> list[Outgoing]:
        t0 = time.perf_counter()
        try:
            result: list[Outgoing] = fn(*args)
        finally:
            figures[party].add_compute(rnd, time.perf_counter() - t0)
        return result

    gone_before_input = drops["setup"] | drops["encrypt"]
    alive = [cid for cid in sorted(vecs) if cid not in gone_before_input]
    rng = random.Random(seed)  # orders deliveries only; never touches secrets
    inputs_to_server: list[tuple[int, bytes]] = []
    setup_for_server: list[bytes] = []

    if key_holder is not None:
        for out in call("key_holder", "setup", key_holder.start):
            if out.to == AGGREGATOR:
                setup_for_server.append(send("key_holder", out, "setup", [AGGREGATOR]))
            else:
                reached = [c for c in sorted(vecs) if c not in drops["setup"]]
                data = send("key_holder", out, "setup", reached)
                for cid in alive:  # the others vanished before sending their input
                    for rep in call(cid, "encrypt", clients[cid].receive, data):
                        inputs_to_server.append((cid, send(cid, rep, "encrypt", [AGGREGATOR])))
    else:
        for cid in alive:
            for rep in call(cid, "encrypt", clients[cid].start):
                rnd = "setup" if isinstance(rep.message, PublicSetup) else "encrypt"
                data = send(cid, rep, rnd, [AGGREGATOR])
                if rnd == "setup":
                    setup_for_server.append(data)
                else:
                    inputs_to_server.append((cid, data))

    for data in setup_for_server:
        call("server", "setup", server.receive, data)
    rng.shuffle(inputs_to_server)
    sums: list[Outgoing] = []
    for _cid, data in inputs_to_server:
        sums.extend(call("server", "encrypt", server.receive, data))
    if server.state == "collecting":
        sums.extend(call("server", "sum", server.finish))

    raw: npt.NDArray[np.int64] | None = None
    for out in sums:
        if key_holder is not None:
            data = send("server", out, "sum", [KEY_HOLDER])
            for rep in call("key_holder", "decrypt", key_holder.receive, data):
                back = send("key_holder", rep, "result", [AGGREGATOR])
                call("server", "result", server.receive, back)
            raw = server.raw_result
        else:
            readers = [c for c in alive if c not in drops["decrypt"]]
            data = send("server", out, "sum", readers)
            for cid in readers:
                call(cid, "decrypt", clients[cid].receive, data)
                got = clients[cid].raw_result
                if raw is None:
                    raw = got
                elif got is None or not np.array_equal(raw, got):
                    raise AbortError(f"client {cid} decrypted a different sum")
    if raw is None:
        raise AbortError("no party was left to decrypt the sum")
    included = server.included
    return AggregationResult(
        sum=raw.astype(np.float64) / packing.scale,
        included=included,
        dropped=frozenset(vecs) - included,
        raw_sum=raw,
        figures=figures,
    )
