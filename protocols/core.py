"""The party contract every multi-party protocol of this library implements.

A protocol is a set of sans-I/O state machines (the h11 style): each party
takes one typed message and returns the :class:`Envelope` s it sends; it owns
no socket, thread, clock or global state. A transport (the in-process
simulator :mod:`protocols.simulator`, the testing kit's adversarial network,
Flower) moves the bytes of a per-configuration :class:`Codec` between them
and drives any protocol through its :class:`ProtocolDescriptor` alone,
without knowing which protocol it is.

Pieces:

* :class:`ClientParty`: ``start()``, ``handle(message)``, ``set_input(v)``
  (an integer-domain vector, before the descriptor's ``input_round``) and
  ``export_state()`` (versioned binary, restored by
  :meth:`ProtocolDescriptor.restore_client`).
* :class:`Coordinator`: ``start()``, ``handle(message)``, ``close_round()``
  (the deadline hook: go on with whoever answered, or raise
  :class:`~secagg.errors.AbortError` and output nothing) and ``result``.
* auxiliary parties (:class:`Party`, for example Paillier's key holder) in
  :attr:`Session.others`, addressed by role name.

Every message object has a ``sender`` (an :data:`Address`) and a class
attribute ``ROUND`` (the round whose traffic it is). A party that refuses a
message raises a :class:`~secagg.errors.SecAggError` subclass and stays
exactly as it was.

Client ids are whatever the caller uses: any int in ``[0, 2**64)``. Each
protocol maps them to its internal indices and binds that map into its
configuration digest, so two parties that disagree on the map refuse each
other's messages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from secagg.errors import LocalProtocolError, ParameterError

__all__ = [
    "MAX_CLIENT_ID",
    "SERVER",
    "Address",
    "ClientParty",
    "Codec",
    "Coordinator",
    "CoordinatorResult",
    "Envelope",
    "Party",
    "ProtocolDescriptor",
    "Quantizer",
    "Session",
    "check_client_ids",
    "derive_seed",
]

#: A party's address: a client id (int in ``[0, 2**64)``) or a role name.
Address = int | str
#: The coordinator's address in every protocol.
SERVER = "server"
#: Largest client id any protocol accepts.
MAX_CLIENT_ID = 2**64 - 1


@dataclass(frozen=True)
class Envelope:
    """One outgoing message and the address it goes to."""

    receiver: Address
    message: Any

    @property
    def sender(self) -> Address:
        """The message's sender (every message carries one)."""
        s: Address = self.message.sender
        return s


@runtime_checkable
class Codec(Protocol):
    """Strict, versioned binary codec of one configuration (never pickle).

    ``encode`` raises a :class:`~secagg.errors.SecAggError` subclass for a
    message it cannot carry; ``decode`` checks everything it can without
    secrets (the configuration digest included) and raises only
    :class:`~secagg.errors.SecAggError` subclasses.
    """

    def encode(self, message: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


@runtime_checkable
class Party(Protocol):
    """What every party does: start, and take one message at a time."""

    def start(self) -> list[Envelope]: ...

    def handle(self, message: Any) -> list[Envelope]: ...


@runtime_checkable
class ClientParty(Protocol):
    """A client of one protocol run (see the module docstring)."""

    @property
    def address(self) -> int: ...

    @property
    def round(self) -> str | None: ...

    def start(self) -> list[Envelope]: ...

    def handle(self, message: Any) -> list[Envelope]: ...

    def set_input(self, vector: npt.NDArray[Any]) -> None: ...

    def export_state(self) -> bytes: ...


@dataclass(frozen=True, eq=False)
class CoordinatorResult:
    """What the coordinator outputs: the exact integer-domain sum of the
    included clients' inputs (the protocol's integer dtype) and who they are."""

    raw_sum: npt.NDArray[Any]
    included: frozenset[int]


@runtime_checkable
class Coordinator(Protocol):
    """The party that runs the rounds (address :data:`SERVER`)."""

    @property
    def round(self) -> str | None: ...

    def start(self) -> list[Envelope]: ...

    def handle(self, message: Any) -> list[Envelope]: ...

    def close_round(self) -> list[Envelope]: ...

    @property
    def result(self) -> CoordinatorResult | None: ...


@runtime_checkable
class Quantizer(Protocol):
    """Float vectors <-> a protocol's integer domain.

    ``encode(x)`` gives what :meth:`ClientParty.set_input` takes;
    ``decode(raw_sum, n)`` turns the coordinator's exact sum of ``n`` inputs
    back into floats; ``error_bound(n)`` bounds the per-coordinate error of
    that float sum against the sum of the (clipped) float inputs.
    """

    def encode(self, x: npt.NDArray[Any]) -> npt.NDArray[Any]: ...

    def decode(self, raw: npt.NDArray[Any], n_summands: int) -> npt.NDArray[np.float64]: ...

    def error_bound(self, n_summands: int = 1) -> float: ...


@dataclass
class Session:
    """Everything one protocol run needs, built by :meth:`ProtocolDescriptor.make_session`.

    Attributes:
        config: the protocol's configuration (shipped with
            :meth:`ProtocolDescriptor.config_to_bytes`).
        coordinator: the coordinator (address :data:`SERVER`).
        clients: client parties by client id.
        encoder: the quantizer between float vectors and the integer domain.
        others: auxiliary parties by role name (for example ``"key_holder"``).
        rounds: the rounds this run goes through, in order (a subset of the
            descriptor's, e.g. SecAgg's consistency round only in malicious mode).
        collect: where the run's output is, when not at the coordinator (for
            example Paillier's cross-silo layout, where only the clients
            decrypt); default: ``coordinator.result``.
        codec_options: keyword arguments this run's codec needs
            (:meth:`ProtocolDescriptor.codec`), e.g. a test-only key-size flag.
    """

    config: Any
    coordinator: Coordinator
    clients: dict[int, ClientParty]
    encoder: Quantizer
    others: dict[str, Party] = field(default_factory=dict)
    rounds: tuple[str, ...] = ()
    collect: Callable[[], CoordinatorResult | None] | None = field(default=None, repr=False)
    codec_options: dict[str, Any] = field(default_factory=dict)

    def outcome(self) -> CoordinatorResult | None:
        """The run's output once it finished (None before, or after an abort)."""
        return self.collect() if self.collect is not None else self.coordinator.result

    def party(self, address: Address) -> Any:
        """The party at ``address`` (a client id, :data:`SERVER` or a role)."""
        if address == SERVER:
            return self.coordinator
        if isinstance(address, str):
            return self.others[address]
        return self.clients[address]


def check_client_ids(client_ids: Iterable[int]) -> tuple[int, ...]:
    """The ids sorted; each must be an int in ``[0, 2**64)`` and appear once."""
    ids = list(client_ids)
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not (
            0 <= int(i) <= MAX_CLIENT_ID
        ):
            raise ParameterError(f"client id {i!r} is not an int in [0, 2^64)")
    out = tuple(sorted(int(i) for i in ids))
    if len(set(out)) != len(out):
        raise ParameterError("client ids must be distinct")
    return out


def derive_seed(seed: int, purpose: str, length: int = 32) -> bytes:
    """Public bytes for ``purpose`` derived from a run's ``seed`` (u64).

    The one place transports and tests turn a seed into session ids, graph
    seeds and delivery orders, so the same seed names the same run under
    every driver. Never use it for secrets: the seed is public.
    ``SHA-256("secagg/simulate/v1" | seed (u64) | "/" | purpose)``, truncated
    to ``length`` bytes (the derivation seeded runs have always used, so a
    seed names the same session as before).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise ParameterError(f"seed must be an int in [0, 2^64), got {seed!r}")
    if not 1 <= length <= 32:
        raise ParameterError(f"length must be in [1, 32], got {length}")
    base = b"secagg/simulate/v1" + seed.to_bytes(8, "big") + b"/" + purpose.encode()
    return hashlib.sha256(base).digest()[:length]


@dataclass(frozen=True)
class ProtocolDescriptor:
    """How to run one protocol: its rounds and how to build its pieces.

    Attributes:
        name: ``"secagg"``, ``"secagg+"``, ``"paillier"``, ...
        rounds: every round name, in order.
        input_round: the round whose client message carries the input.
        build: ``build(client_ids, dimension, *, seed, **params) -> Session``
            (ids already checked and sorted).
        make_codec: ``make_codec(config, **options) -> Codec``.
        dump_config / load_config: the configuration to and from bytes.
        restore: ``restore(config, data, **local_secrets) -> ClientParty``.
    """

    name: str
    rounds: tuple[str, ...]
    input_round: str
    build: Callable[..., Session] = field(repr=False)
    make_codec: Callable[..., Codec] = field(repr=False)
    dump_config: Callable[[Any], bytes] = field(repr=False)
    load_config: Callable[[bytes], Any] = field(repr=False)
    restore: Callable[..., ClientParty] = field(repr=False)

    def __post_init__(self) -> None:
        if self.input_round not in self.rounds:
            raise ParameterError(f"input_round {self.input_round!r} is not one of "
                                 f"{self.rounds}")

    def make_session(self, client_ids: Iterable[int], dimension: int, *,
                     seed: int | None = None, **params: Any) -> Session:
        """Build every party of one run. ``seed`` fixes the public randomness
        (session id, graph, ...) for a reproducible run; secrets always come
        from the OS."""
        ids = check_client_ids(client_ids)
        if seed is not None:
            derive_seed(seed, "check")  # validates the range
        session = self.build(ids, dimension, seed=seed, **params)
        if not session.rounds:
            session.rounds = self.rounds
        return session

    def codec(self, config: Any, **options: Any) -> Codec:
        """The message codec bound to ``config`` (``options``: see
        :attr:`Session.codec_options`)."""
        return self.make_codec(config, **options)

    def config_to_bytes(self, config: Any) -> bytes:
        """``config`` as versioned bytes, for a transport to ship to clients."""
        return self.dump_config(config)

    def config_from_bytes(self, data: bytes) -> Any:
        """Parse a configuration; a client still checks it against what it
        expects (its id, the security targets) before taking part."""
        return self.load_config(data)

    def restore_client(self, config: Any, data: bytes, **local_secrets: Any) -> ClientParty:
        """A client from :meth:`ClientParty.export_state` bytes; refuses a
        state saved under another configuration."""
        return self.restore(config, data, **local_secrets)

    def round_of(self, message: Any) -> str:
        """The round a message belongs to (its class's ``ROUND``)."""
        rnd = getattr(type(message), "ROUND", None)
        if not isinstance(rnd, str) or rnd not in self.rounds:
            raise LocalProtocolError(
                f"{type(message).__name__} names no round of {self.name} (ROUND={rnd!r})")
        return rnd


def check_rounds(names: Iterable[str], rounds: tuple[str, ...], what: str) -> None:
    """Raise :class:`ParameterError` naming the known rounds if a name is unknown."""
    bad = [r for r in names if r not in rounds]
    if bad:
        raise ParameterError(f"{what}: unknown round(s) {bad}; rounds are {list(rounds)}")


def as_mapping(value: Mapping[str, Iterable[int]] | None) -> dict[str, frozenset[int]]:
    """Dropouts as ``{round: frozenset(ids)}``."""
    return {r: frozenset(int(i) for i in ids) for r, ids in (value or {}).items()}
