"""An in-process network for sans-I/O parties, with faults a test can inject.

A :class:`Wiring` binds one protocol's party objects to the network: it
encodes what a party sends, decodes and hands over what it receives, and
closes the coordinator's round when the network falls quiet (the timeout a
real transport would have). :class:`Network` drives a wiring round by round,
applies a :class:`DropoutSchedule` (a vanished client neither receives nor
sends from its round on), and a :class:`FaultScript` that alters deliveries
on the wire, always on the encoded bytes so the codecs are exercised:

* :class:`Drop` loses the message;
* :class:`Delay` holds it until the coordinator's round has closed, then
  delivers it (late);
* :class:`Duplicate` delivers it twice;
* :class:`Replay` first re-delivers an older message its receiver already
  accepted;
* :class:`Reorder` puts it back behind later messages;
* :class:`BitFlip` delivers a copy with one bit flipped, then the original
  (a retransmission), so a receiver that refused the copy must still accept
  the original.

Every delivery is logged (:class:`Delivery`): accepted, refused (with the
error, and whether the receiver's observable state changed), crashed (an
exception outside :class:`~secagg.errors.SecAggError`), vanished or dropped.
:mod:`protocols.testing.checks` turns the log into verdicts.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from protocols.results import AggregationResult
from secagg.errors import AbortError, SecAggError

from .schedule import DropoutSchedule

__all__ = [
    "Address",
    "Adversary",
    "BitFlip",
    "Delay",
    "Delivery",
    "Drop",
    "Duplicate",
    "Envelope",
    "Fault",
    "FaultScript",
    "Network",
    "NetworkRun",
    "Packet",
    "PartyWrapper",
    "Reorder",
    "Replay",
    "Slot",
    "Wiring",
    "observable_state",
]

#: A party's name on the network: a client id, or a role name such as ``"server"``.
Address = Hashable
#: Round tags the coordinator reports once it has no round left to run.
FINISHED = ("done", "aborted")


@dataclass(frozen=True)
class Packet:
    """What a party sends: receiver, round tag and encoded bytes.

    ``reveals`` lists the ``(owner, kind)`` secret shares the message
    discloses (``kind`` is protocol-defined, e.g. ``"b"``/``"s"``), for the
    no-double-reveal property. ``forged`` marks bytes an adversarial party
    made up: the network treats them as tampered.
    """

    receiver: Address
    round: str
    data: bytes
    reveals: tuple[tuple[int, str], ...] = ()
    forged: bool = False


@dataclass(frozen=True)
class Envelope:
    """A packet in flight. ``tamper`` says how the network or a forging party
    altered it (None for a genuine message); ``cause`` is the sequence number
    of the tampered envelope whose acceptance produced this reply."""

    seq: int
    sender: Address
    receiver: Address
    round: str
    data: bytes
    reveals: tuple[tuple[int, str], ...] = ()
    tamper: str | None = None
    cause: int | None = None

    def __repr__(self) -> str:
        extra = f", {self.tamper}" if self.tamper else ""
        return (f"Envelope(#{self.seq} {self.sender!r}->{self.receiver!r} "
                f"[{self.round}] {len(self.data)} bytes{extra})")


class Wiring(Protocol):
    """Binds one protocol's parties to the :class:`Network`.

    ``deliver`` and ``close_round`` raise the party's own
    :class:`~secagg.errors.SecAggError` when it refuses; ``round`` is the
    coordinator's current round, or ``"done"`` / ``"aborted"``.
    """

    rounds: tuple[str, ...]
    coordinator: Address
    parties: Mapping[Address, Any]
    unprotected: Mapping[str, frozenset[str]]

    @property
    def round(self) -> str: ...

    def start(self) -> list[tuple[Address, Packet]]:
        """The first messages: ``(sender, packet)`` pairs."""
        ...

    def deliver(self, receiver: Address, data: bytes) -> list[Packet]:
        """Decode ``data`` for ``receiver``, let it handle it, encode its replies."""
        ...

    def close_round(self) -> list[Packet]:
        """The coordinator's timeout: close its round with whoever answered."""
        ...

    def result(self) -> AggregationResult | None:
        """The protocol's output once ``round == "done"`` (None if there is none)."""
        ...

    def inspect(self, data: bytes) -> tuple[str, Mapping[str, Any]] | None:
        """Decode ``data`` into its message type name and fields, or None if the
        codec refuses it (used to tell which fields a bit flip changed)."""
        ...


class Adversary(Protocol):
    """Plugs into a wiring by wrapping some parties; ``corrupt`` names them.

    Checks of honest behaviour ignore the parties in ``corrupt``.
    """

    @property
    def corrupt(self) -> frozenset[Address]: ...

    def wrap(self, address: Address, party: Any, wiring: Any) -> Any:
        """The party to put at ``address`` (``party`` itself when not attacked)."""
        ...


class PartyWrapper:
    """A sans-I/O party that forwards everything to ``inner``.

    Adversaries subclass it and override ``handle`` (or ``receive``,
    ``start``, ``close_round``); every other attribute (``state``,
    ``round``, ``result``, ...) is read from the wrapped party.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not yet set (copying, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def handle(self, msg: Any) -> list[Any]:
        out: list[Any] = self.inner.handle(msg)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"


# -- faults ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Drop:
    """Lose the message."""


@dataclass(frozen=True)
class Delay:
    """Hold the message until the coordinator's round has closed."""


@dataclass(frozen=True)
class Duplicate:
    """Deliver the message, then an identical copy."""


@dataclass(frozen=True)
class Replay:
    """Before the message, re-deliver the ``back``-th most recent message
    (0: the latest) that some party already accepted, to that party."""

    back: int = 0


@dataclass(frozen=True)
class Reorder:
    """Put the message back ``skip`` places later in the queue."""

    skip: int = 1


@dataclass(frozen=True)
class BitFlip:
    """Deliver a copy with one bit flipped, then the original. The bit is
    ``bit`` (modulo the message's bit length) counted from the message's end,
    where its signatures, tags and payloads are, or from its start (the
    header) with ``from_start``."""

    bit: int = 0
    from_start: bool = False


Fault = Drop | Delay | Duplicate | Replay | Reorder | BitFlip
TAMPERED = ("bitflip", "duplicate", "replay", "late", "forged")


#: Where a fault strikes: the ``k``-th message (from 0) of the round named.
Slot = tuple[str, int]


@dataclass(frozen=True)
class FaultScript:
    """Which fault hits which message: ``{(round, k): fault}`` strikes the
    ``k``-th message tagged with ``round`` that the network takes off its
    queue (counting from 0, in delivery order; each message at most once)."""

    faults: Mapping[Slot, Fault] = field(default_factory=dict)

    def __repr__(self) -> str:
        body = ", ".join(f"{k!r}: {v!r}" for k, v in sorted(self.faults.items()))
        return f"FaultScript({{{body}}})"


# -- observing state -----------------------------------------------------------------
def observable_state(obj: Any, *, depth: int = 4) -> object:
    """A comparable fingerprint of ``obj``'s attributes, taken recursively.

    Containers and numpy arrays are captured by value, hashable frozen
    dataclasses by their own equality, and anything opaque (keys, ciphertext
    objects) by identity: a refusal that replaced it counts as a change.
    Private attributes count: "unchanged" means the whole party.
    """
    return _fingerprint(obj, depth)


def _fingerprint(obj: Any, depth: int) -> object:
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        return obj
    if isinstance(obj, np.ndarray):
        return ("ndarray", obj.dtype.str, obj.shape, obj.tobytes())
    if isinstance(obj, np.generic):
        return ("scalar", obj.dtype.str, obj.tobytes())
    if depth <= 0:
        return ("id", type(obj).__name__, id(obj))
    if isinstance(obj, (list, tuple, deque)):
        return (type(obj).__name__, tuple(_fingerprint(x, depth - 1) for x in obj))
    if isinstance(obj, (set, frozenset)):
        return ("set", frozenset(_fingerprint(x, depth - 1) for x in obj))
    if isinstance(obj, Mapping):
        return ("map", frozenset((_fingerprint(k, depth - 1), _fingerprint(v, depth - 1))
                                 for k, v in obj.items()))
    params = getattr(type(obj), "__dataclass_params__", None)
    if params is not None and params.frozen:
        try:
            hash(obj)
        except TypeError:
            pass
        else:
            return ("frozen", obj)
    attrs = getattr(obj, "__dict__", None)
    if isinstance(attrs, dict) and not callable(obj):
        return (type(obj).__name__, tuple(sorted(
            ((k, _fingerprint(v, depth - 1)) for k, v in attrs.items()),
            key=lambda kv: kv[0])))
    return ("id", type(obj).__name__, id(obj))


# -- the log ---------------------------------------------------------------------------
DeliveryStatus = Literal["accepted", "refused", "crashed", "vanished", "dropped", "aborted"]


@dataclass
class Delivery:
    """What happened to one envelope."""

    envelope: Envelope
    status: DeliveryStatus
    error: BaseException | None = None
    state_changed: bool | None = None
    replies: list[int] = field(default_factory=list)

    def __repr__(self) -> str:
        err = f": {type(self.error).__name__}: {self.error}" if self.error else ""
        changed = " (state changed)" if self.state_changed else ""
        return f"{self.envelope!r} {self.status}{changed}{err}"


@dataclass
class NetworkRun:
    """The outcome of :meth:`Network.run`.

    ``result`` is the protocol's output (None when there is none); ``error``
    the error that ended the run at the coordinator (an
    :class:`~secagg.errors.AbortError` for an abort), if any.
    """

    wiring: Wiring
    corrupt: frozenset[Address]
    deliveries: list[Delivery] = field(default_factory=list)
    sent: list[Envelope] = field(default_factory=list)
    result: AggregationResult | None = None
    error: BaseException | None = None
    skipped: list[str] = field(default_factory=list)

    @property
    def aborted(self) -> bool:
        return isinstance(self.error, AbortError)

    def delivery_of(self, seq: int) -> Delivery | None:
        """The delivery of envelope ``seq`` (the last one, if delivered twice)."""
        for d in reversed(self.deliveries):
            if d.envelope.seq == seq:
                return d
        return None

    def honest(self, address: Address) -> bool:
        return address not in self.corrupt

    def log(self) -> str:
        """The deliveries, one per line."""
        return "\n".join(f"  {d!r}" for d in self.deliveries)


# -- the driver ----------------------------------------------------------------------
class Network:
    """Drive a :class:`Wiring` to the end of its protocol.

    Args:
        wiring: the parties and their codec.
        schedule: clients that vanish, by round (a vanished client receives
            nothing tagged with that round or a later one, and sends nothing
            from then on).
        faults: what the wire does to which delivery.
        adversary: the adversary plugged into ``wiring`` (its ``corrupt``
            parties are excluded from honest-party checks), if any.
        max_steps: a guard against protocols that never finish.
    """

    def __init__(self, wiring: Wiring, *, schedule: DropoutSchedule | None = None,
                 faults: FaultScript | None = None, adversary: Adversary | None = None,
                 max_steps: int = 100_000) -> None:
        self.wiring = wiring
        self.schedule = schedule or DropoutSchedule(tuple(wiring.rounds))
        self.faults = faults or FaultScript()
        self.max_steps = max_steps
        self.run_log = NetworkRun(wiring, adversary.corrupt if adversary else frozenset())
        self._pending: deque[Envelope] = deque()
        self._held: list[tuple[Envelope, str, int]] = []
        self._closes = 0
        self._accepted: list[Envelope] = []
        self._seq = 0
        self._rank = {r: i for i, r in enumerate(wiring.rounds)}
        self._slots: dict[str, int] = {}
        self._slotted: set[int] = set()

    # -- helpers ---------------------------------------------------------------
    def _gone(self, address: Address, round_name: str) -> bool:
        """Has client ``address`` vanished by ``round_name``?"""
        if not isinstance(address, int) or isinstance(address, bool):
            return False
        rank = self._rank.get(round_name, len(self._rank))
        for r, who in self.schedule.vanish.items():
            if address in who and self._rank.get(r, len(self._rank)) <= rank:
                return True
        return False

    def _envelope(self, sender: Address, p: Packet, tamper: str | None = None,
                  cause: int | None = None) -> Envelope:
        self._seq += 1
        env = Envelope(self._seq, sender, p.receiver, p.round, p.data, p.reveals,
                       "forged" if p.forged else tamper, cause)
        self.run_log.sent.append(env)
        return env

    def _copy(self, env: Envelope, tamper: str, data: bytes | None = None) -> Envelope:
        """A copy made by the wire (its sender revealed nothing anew)."""
        self._seq += 1
        out = dataclasses.replace(env, seq=self._seq, tamper=tamper, reveals=(),
                                  data=env.data if data is None else data, cause=None)
        self.run_log.sent.append(out)
        return out

    def _send(self, sender: Address, packets: list[Packet], cause: int | None) -> list[int]:
        seqs = []
        for p in packets:
            if self._gone(sender, p.round):
                continue
            env = self._envelope(sender, p, "reply" if cause is not None else None, cause)
            self._pending.append(env)
            seqs.append(env.seq)
        return seqs

    def _finished(self) -> bool:
        return self.wiring.round in FINISHED or self.run_log.error is not None

    # -- one delivery ------------------------------------------------------------
    def _deliver(self, env: Envelope) -> Delivery:
        log = self.run_log
        if self._gone(env.receiver, env.round):
            d = Delivery(env, "vanished")
            log.deliveries.append(d)
            return d
        watched = env.tamper is not None
        before = observable_state(self.wiring.parties[env.receiver]) if watched else None
        try:
            packets = self.wiring.deliver(env.receiver, env.data)
        except AbortError as exc:
            if env.receiver == self.wiring.coordinator and self.wiring.round == "aborted":
                d = Delivery(env, "aborted", exc)
                log.error = exc
            else:
                d = self._refused(env, exc, before, watched)
        except SecAggError as exc:
            d = self._refused(env, exc, before, watched)
        except Exception as exc:
            d = Delivery(env, "crashed", exc)
        else:
            d = Delivery(env, "accepted")
            if watched:
                d.state_changed = observable_state(self.wiring.parties[env.receiver]) != before
            self._accepted.append(env)
            d.replies = self._send(env.receiver, packets, env.seq if watched else None)
        log.deliveries.append(d)
        return d

    def _refused(self, env: Envelope, exc: BaseException, before: object,
                 watched: bool) -> Delivery:
        changed = None
        if watched:
            changed = observable_state(self.wiring.parties[env.receiver]) != before
        return Delivery(env, "refused", exc, changed)

    def _flip(self, env: Envelope, fault: BitFlip) -> Envelope | None:
        """The flipped copy, or None when the flip only touches fields the
        wiring declares unprotected (out of the protocol's guarantees)."""
        data = bytearray(env.data)
        if not data:
            return None
        pos = fault.bit % (8 * len(data))
        if not fault.from_start:
            pos = 8 * len(data) - 1 - pos
        data[pos // 8] ^= 1 << (pos % 8)
        flipped = bytes(data)
        orig, new = self.wiring.inspect(env.data), self.wiring.inspect(flipped)
        if orig is not None and new is not None and orig[0] == new[0]:
            changed = {k for k in orig[1] if not _same(orig[1][k], new[1].get(k))}
            if changed <= self.wiring.unprotected.get(orig[0], frozenset()):
                self.run_log.skipped.append(
                    f"{fault!r} on {env!r} only changes unprotected {sorted(changed)}")
                return None
        return self._copy(env, "bitflip", flipped)

    def _step(self) -> None:
        env = self._pending.popleft()
        if env.tamper is not None or env.seq in self._slotted:
            self._deliver(env)  # replies to tampered messages, and messages already struck
            return
        self._slotted.add(env.seq)
        k = self._slots.get(env.round, 0)
        self._slots[env.round] = k + 1
        fault = self.faults.faults.get((env.round, k))
        if isinstance(fault, Reorder):
            self._pending.insert(min(fault.skip, len(self._pending)), env)
        elif isinstance(fault, Drop):
            self.run_log.deliveries.append(Delivery(env, "dropped"))
        elif isinstance(fault, Delay):
            self._held.append((env, self.wiring.round, self._closes))
        elif isinstance(fault, Duplicate):
            self._deliver(env)
            self._deliver(self._copy(env, "duplicate"))
        elif isinstance(fault, Replay):
            if len(self._accepted) > fault.back:
                self._deliver(self._copy(self._accepted[-1 - fault.back], "replay"))
            self._deliver(env)
        elif isinstance(fault, BitFlip):
            flipped = self._flip(env, fault)
            if flipped is not None:
                self._deliver(flipped)
            self._deliver(env)
        else:
            self._deliver(env)

    def _release(self, *, late: bool) -> None:
        """Queue held messages whose round the coordinator closed since (all of
        them, on time, when ``late`` is False: the coordinator could not close
        its round, so they were not late). After an abort they are lost."""
        keep = []
        for env, rnd, closes in self._held:
            if not late:
                self._pending.append(env)
            elif self.run_log.error is not None:
                self.run_log.deliveries.append(Delivery(env, "dropped"))
            elif self._finished() or (self._closes > closes and self.wiring.round != rnd):
                self._pending.append(self._copy(env, "late"))
            else:
                keep.append((env, rnd, closes))
        self._held = keep

    def _close(self) -> bool:
        """Close the coordinator's round; False when nothing can happen any more."""
        log, w = self.run_log, self.wiring
        before = w.round
        self._closes += 1
        try:
            packets = w.close_round()
        except AbortError as exc:
            log.error = exc
            return True
        except SecAggError as exc:
            log.error = exc
            return True
        except Exception as exc:
            log.deliveries.append(Delivery(Envelope(0, w.coordinator, w.coordinator,
                                                    before, b""), "crashed", exc))
            log.error = exc
            return False
        self._send(w.coordinator, packets, None)
        if w.round == before and not packets:
            if self._held:
                self._release(late=False)
                return True
            return False
        return True

    # -- the loop ------------------------------------------------------------------
    def run(self) -> NetworkRun:
        """Run the protocol to its end; returns the log (never raises a
        party's error: it is recorded instead)."""
        log, w = self.run_log, self.wiring
        try:
            starts = w.start()
        except SecAggError as exc:
            log.error = exc
            return log
        for sender, p in starts:
            self._send(sender, [p], None)
        for _ in range(self.max_steps):
            if self._pending:
                self._step()
                continue
            if self._held and self._finished():
                self._release(late=True)
                continue
            if self._finished() or not self._close():
                break
            self._release(late=True)
        else:
            log.error = RuntimeError(f"no end after {self.max_steps} steps")
        if w.round == "done" and log.error is None:
            try:
                log.result = w.result()
            except SecAggError as exc:
                log.error = exc
        return log


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
                and a.dtype == b.dtype and np.array_equal(a, b))
    try:
        return bool(a == b)
    except Exception:
        return a is b
