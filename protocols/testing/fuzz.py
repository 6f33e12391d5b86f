"""Fuzzing every decoder and every party's message handling, for any protocol.

A :class:`FuzzTarget` names a protocol (its :class:`~protocols.core.ProtocolDescriptor`
and session parameters). :func:`capture` runs one real session of it,
moving every message as bytes through the protocol's codec, and records a
:class:`Point` before every delivery: a copy of the receiving party in the
state it was in, and the valid bytes it was about to take; it also records
every party's final state, the configuration bytes and every client's saved
state (``export_state``) along the way. New message types and codecs are
therefore picked up from the session itself, with no list to maintain.

:func:`fuzz_target` then delivers, with hypothesis, mutated messages to the
parties at those points:

* byte mutations of valid messages: bit flips, truncation, extension,
  insertion, deletion, duplication, integers written over a field
  (0, 1, n, 2^31, 2^32 - 1, 2^64 - 1, ...) and splices of two valid messages;
* field mutations through the codec: a valid message is decoded, one field
  (or an element of a tuple field, or a field of a nested record) is
  replaced by a type-preserving variant or by the same field of another valid
  message, and the result is re-encoded (path ``"field"``) or handed to
  ``handle`` as an object (path ``"object"``, the in-process transports');
* valid messages of any round delivered to any party in any state
  (path ``"valid"``).

:func:`check_delivery` runs the same checks on one given input (for a
regression test of one finding).

It also fuzzes the stand-alone decoders: the codec, ``config_from_bytes``,
``restore_client``, and (:func:`fuzz_library`) the :mod:`secagg.wire`
reader primitives and every ``from_bytes`` decoder found in
:mod:`secagg.kex`, :mod:`secagg.sign`, :mod:`secagg.shamir` and
:mod:`secagg.paillier` (found by name, so new ones are fuzzed too).

A :class:`FuzzFailure` is raised (hypothesis shrinks it first) when:

* anything raises an exception that is not a
  :class:`~secagg.errors.SecAggError` (decode, handle, restore, encode of a
  field-mutated message);
* a party accepted a message but cannot encode its own reply (it took
  something the codec cannot carry);
* a party refused a message (raised a ``SecAggError``) but is not exactly as
  it was: for clients the ``export_state()`` bytes and, for every party, a
  fingerprint of all its attributes (:func:`state_fingerprint`) are compared.
  The one allowed change: a coordinator whose ``handle`` raises
  :class:`~secagg.errors.AbortError` may finish aborted (``round`` is None);
* a single decode takes longer than ``decode_bound`` seconds (re-timed three
  times; the fastest counts, so a busy machine does not fail it).

Parties are copied with :func:`copy.deepcopy` (the configuration is
shared, not copied); a party that cannot be deep-copied is copied through
``export_state``/``restore_client`` with :attr:`FuzzTarget.client_secrets`.

Run it from the command line for a longer search::

    python -m protocols.testing.fuzz --minutes 10

Needs hypothesis.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import enum
import functools
import hashlib
import importlib
import inspect
import struct
import sys
import time
import typing
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException

from secagg import wire
from secagg.errors import AbortError, ParameterError, SecAggError

from ..core import SERVER, Address, Codec, ProtocolDescriptor, Session

__all__ = [
    "DEFAULT_DECODE_BOUND",
    "PATHS",
    "Capture",
    "FuzzFailure",
    "FuzzReport",
    "FuzzTarget",
    "Point",
    "builtin_targets",
    "capture",
    "check_delivery",
    "fuzz_library",
    "fuzz_target",
    "insecure_test_keypair",
    "library_decoders",
    "main",
    "state_fingerprint",
]

#: Seconds one decode may take (the fastest of three timings) before it fails.
DEFAULT_DECODE_BOUND = 0.5

#: Every delivery path (see :func:`fuzz_target`); "bytes" is drawn twice as often.
PATHS = ("bytes", "bytes", "field", "valid", "object")

_QUIET = (HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
          HealthCheck.large_base_example)


class FuzzFailure(AssertionError):
    """A fuzzing failure: what was delivered to whom, and what went wrong."""


@dataclass(frozen=True)
class FuzzTarget:
    """One protocol configuration to fuzz.

    Attributes:
        name: a label for reports.
        descriptor: the protocol.
        params: keyword arguments of ``descriptor.make_session``.
        client_ids: the session's clients (any u64 ids; non-contiguous by default).
        dimension: vector length (small keeps the run fast).
        seed: the public seed of the session (secrets still come from the OS).
        dropouts: ``{round: client ids}`` that vanish from that round on, so
            the captured session contains the dropout paths too.
        client_secrets: ``client id -> keyword arguments`` of
            ``descriptor.restore_client`` (signing keys, key pairs, ...).
        session_secrets: for secrets the session itself makes (for example a
            threshold decryptor's sealing key), ``(session, client id) ->``
            more keyword arguments of ``restore_client``.
    """

    name: str
    descriptor: ProtocolDescriptor
    params: Mapping[str, Any] = field(default_factory=dict)
    client_ids: tuple[int, ...] = (3, 10, 17, 42, 99)
    dimension: int = 3
    seed: int = 7
    dropouts: Mapping[str, frozenset[int]] = field(default_factory=dict)
    client_secrets: Callable[[int], Mapping[str, Any]] = field(
        default=lambda _u: {}, repr=False)
    session_secrets: Callable[[Session, int], Mapping[str, Any]] | None = field(
        default=None, repr=False)


@dataclass
class Point:
    """A party in the state it had just before one delivery of a real session.

    ``seed`` is the valid message it took there (None for a final state).
    ``working`` is the copy the fuzzer delivers to; it is replaced by a fresh
    copy of ``snapshot`` whenever a mutated message was accepted.
    """

    label: str
    address: Address
    snapshot: Any = field(repr=False)
    seed: bytes | None = field(repr=False)
    working: Any = field(default=None, repr=False)


@dataclass(repr=False)
class Capture:
    """What :func:`capture` recorded from one real session."""

    target: FuzzTarget
    session: Session
    codec: Codec
    points: list[Point]
    corpus: list[bytes]
    config_bytes: bytes
    client_states: dict[int, list[bytes]]
    messages: list[Any] = field(default_factory=list)
    _pool: dict[str, list[Any]] | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return (f"Capture({self.target.name!r}, {len(self.points)} points, "
                f"{len(self.corpus)} messages)")

    def secrets(self, address: int) -> dict[str, Any]:
        """The keyword arguments that restore client ``address`` of this session."""
        out = dict(self.target.client_secrets(address))
        if self.target.session_secrets is not None:
            out.update(self.target.session_secrets(self.session, address))
        return out

    def field_pool(self) -> dict[str, list[Any]]:
        """Field name -> every value it has in a captured message."""
        if self._pool is None:
            self._pool = _field_pool(self.messages)
        return self._pool

    def byte_fields(self) -> list[bytes]:
        """Every bytes value inside the captured messages (payloads, keys,
        ciphertexts): seeds for the stand-alone decoders of what they carry."""
        out: dict[bytes, None] = {}
        for values in self.field_pool().values():
            stack = list(values)
            while stack:
                v = stack.pop()
                if isinstance(v, (bytes, bytearray)) and len(v) >= 4:
                    out[bytes(v)] = None
                elif isinstance(v, (tuple, list, frozenset, set)):
                    stack.extend(v)
                elif dataclasses.is_dataclass(v) and not isinstance(v, type):
                    stack.extend(getattr(v, f.name) for f in dataclasses.fields(v))
        return list(out)

    def clone(self, party: Any) -> Any:
        """A deep copy of ``party`` sharing the (immutable) configuration."""
        cfg = self.session.config
        with contextlib.suppress(Exception):  # if not deep-copyable: the state codec
            return copy.deepcopy(party, {id(cfg): cfg})
        export = getattr(party, "export_state", None)
        address = getattr(party, "address", None)
        if export is None or not isinstance(address, int):
            raise ParameterError(f"{type(party).__name__} cannot be deep-copied and has no "
                                 f"export_state: the fuzzer cannot copy it")
        return self.target.descriptor.restore_client(
            cfg, export(), **self.secrets(address))


@dataclass
class FuzzReport:
    """Counts of one fuzzing run, by outcome."""

    target: str
    examples: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    slowest_decode: float = 0.0
    seconds: float = 0.0

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def __str__(self) -> str:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        return (f"{self.target}: {self.examples} inputs in {self.seconds:.1f} s ({parts}); "
                f"slowest decode {self.slowest_decode * 1e3:.2f} ms")


# -- fingerprints --------------------------------------------------------------------
def state_fingerprint(obj: Any) -> bytes:
    """SHA-256 over every attribute of ``obj``, recursively (private ones too).

    Values are hashed by content: numbers, strings, bytes, numpy arrays,
    gmpy2 integers, containers (sets and mappings order-free), dataclasses
    and objects by their ``__dict__`` / ``__slots__``, X25519/Ed25519 keys
    by their raw bytes. An object with none of these (an opaque handle) is
    hashed by type and identity: replacing it counts as a change. Equal
    fingerprints within one process mean "unchanged"; across processes only
    for parties without opaque handles.
    """
    h = hashlib.sha256()
    _feed(h, obj, set())
    return h.digest()


def _feed(h: Any, obj: Any, seen: set[int]) -> None:
    def tag(t: str, payload: bytes = b"") -> None:
        h.update(t.encode() + b":" + len(payload).to_bytes(8, "big") + payload)

    if obj is None or isinstance(obj, bool):
        tag(repr(obj))
    elif isinstance(obj, enum.Enum):
        tag("enum", repr(obj).encode())
    elif isinstance(obj, int):
        tag("int", str(obj).encode())
    elif isinstance(obj, float):
        tag("float", struct.pack(">d", obj))
    elif isinstance(obj, str):
        tag("str", obj.encode("utf-8", "surrogatepass"))
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        tag("bytes", bytes(obj))
    elif isinstance(obj, np.ndarray):
        tag("ndarray", f"{obj.dtype.str}{obj.shape}".encode() + obj.tobytes())
    elif isinstance(obj, np.generic):
        tag("npscalar", obj.dtype.str.encode() + obj.tobytes())
    elif type(obj).__name__ in ("mpz", "mpq", "mpfr"):
        tag("gmpy", str(obj).encode())
    elif callable(getattr(obj, "private_bytes_raw", None)):
        tag("privkey", obj.private_bytes_raw())
    elif callable(getattr(obj, "public_bytes_raw", None)):
        tag("pubkey", obj.public_bytes_raw())
    elif id(obj) in seen:
        tag("cycle", type(obj).__name__.encode())
    else:
        seen = seen | {id(obj)}
        if isinstance(obj, (list, tuple, deque)):
            tag(type(obj).__name__, len(obj).to_bytes(8, "big"))
            for x in obj:
                _feed(h, x, seen)
        elif isinstance(obj, (set, frozenset)):
            tag("set", b"".join(sorted(_sub(x, seen) for x in obj)))
        elif isinstance(obj, Mapping):
            tag("map", b"".join(sorted(_sub(k, seen) + _sub(v, seen) for k, v in obj.items())))
        elif inspect.isroutine(obj) or inspect.isclass(obj) or inspect.ismodule(obj):
            tag("code", getattr(obj, "__qualname__", repr(obj)).encode())
        else:
            attrs: dict[str, Any] = {}
            for klass in type(obj).__mro__:
                for name in getattr(klass, "__slots__", ()):
                    if hasattr(obj, name):
                        attrs[name] = getattr(obj, name)
            attrs.update(getattr(obj, "__dict__", {}) or {})
            if not attrs:
                tag("opaque", f"{type(obj).__qualname__}#{id(obj)}".encode())
                return
            tag("object", type(obj).__qualname__.encode())
            for name in sorted(attrs):
                tag("attr", name.encode())
                _feed(h, attrs[name], seen)


def _sub(obj: Any, seen: set[int]) -> bytes:
    h = hashlib.sha256()
    _feed(h, obj, seen)
    return h.digest()


def _party_state(party: Any) -> tuple[bytes, bytes]:
    export = getattr(party, "export_state", None)
    saved = export() if callable(export) else b""
    return saved, state_fingerprint(party)


def _handle_bytes(party: Any, codec: Codec, data: bytes) -> Any:
    return party.handle(codec.decode(data))


def _round_label(party: Any) -> str:
    for attr in ("round", "state"):
        value = getattr(party, attr, None)
        if isinstance(value, str):
            return value
    return "finished"


# -- capture -------------------------------------------------------------------------
def capture(target: FuzzTarget) -> Capture:
    """Run one real session of ``target`` and record the fuzzing points.

    The drive is the simulator's (first in, first out; the coordinator's
    round closed when nothing is left to deliver), with ``target.dropouts``.
    Raises :class:`~secagg.errors.AbortError` if the session does not finish.
    """
    desc = target.descriptor
    session = desc.make_session(target.client_ids, target.dimension, seed=target.seed,
                                **dict(target.params))
    codec = desc.codec(session.config, **session.codec_options)
    rounds = session.rounds
    order = {r: i for i, r in enumerate(rounds)}
    drop_at = {u: order[r] for r, who in target.dropouts.items() for u in who}
    n = len(target.client_ids)
    for k, u in enumerate(session.clients):
        x = np.linspace(-0.5, 0.5, target.dimension) * (k + 1) / n
        session.clients[u].set_input(session.encoder.encode(x))
    cap = Capture(target, session, codec, [], [], desc.config_to_bytes(session.config),
                  {u: [] for u in session.clients})
    queue: deque[tuple[Address, str, bytes]] = deque()

    def gone(address: Address, rnd: str) -> bool:
        return isinstance(address, int) and order[rnd] >= drop_at.get(address, len(rounds))

    def save_states() -> None:
        for u, c in session.clients.items():
            state = c.export_state()
            if not cap.client_states[u] or cap.client_states[u][-1] != state:
                cap.client_states[u].append(state)

    def act(address: Address, work: Callable[[], Any]) -> None:
        for env in work():
            rnd = desc.round_of(env.message)
            data = codec.encode(env.message)
            if gone(address, rnd):
                continue
            cap.corpus.append(data)
            cap.messages.append(env.message)
            queue.append((env.receiver, rnd, data))

    save_states()
    act(SERVER, session.coordinator.start)
    for role, party in sorted(session.others.items()):
        act(role, party.start)
    for u, c in session.clients.items():
        if not gone(u, c.round or rounds[0]):
            act(u, c.start)
    save_states()
    step = 0
    while True:
        while queue:
            receiver, rnd, data = queue.popleft()
            if gone(receiver, rnd):
                continue
            party = session.party(receiver)
            cap.points.append(Point(f"{receiver}@{_round_label(party)}#{step}", receiver,
                                    cap.clone(party), data))
            step += 1
            act(receiver, functools.partial(_handle_bytes, party, codec, data))
            save_states()
        current = session.coordinator.round
        if current is None:
            break
        act(SERVER, session.coordinator.close_round)
        if not queue and session.coordinator.round == current:
            raise AbortError(f"{target.name}: round {current!r} closed without progress")
    if session.outcome() is None:
        raise AbortError(f"{target.name}: the captured session finished without a result")
    finals: list[tuple[Address, Any]] = [(SERVER, session.coordinator)]
    finals += sorted(session.others.items())
    finals += list(session.clients.items())
    for address, party in finals:
        cap.points.append(Point(f"{address}@final", address, cap.clone(party), None))
    return cap


# -- mutations -----------------------------------------------------------------------
_INTERESTING = (0, 1, 2, 3, 4, 5, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000,
                2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1)


@st.composite
def _byte_op(draw: st.DrawFn, data: bytes, corpus: Sequence[bytes]) -> bytes:
    size = len(data)
    pos = draw(st.integers(0, max(size, 1) - 1)) if size else 0
    kind = draw(st.sampled_from(["flip", "truncate", "extend", "splice", "int", "insert",
                                 "delete", "dup", "byte"]))
    if kind == "flip" and size:
        bit = draw(st.integers(0, 7))
        return data[:pos] + bytes([data[pos] ^ (1 << bit)]) + data[pos + 1:]
    if kind == "truncate":
        return data[:draw(st.integers(0, max(size - 1, 0)))]
    if kind == "extend":
        return data + draw(st.binary(min_size=1, max_size=64))
    if kind == "splice" and corpus:
        other = draw(st.sampled_from(list(corpus)))
        cut = draw(st.integers(0, len(other)))
        return data[:pos] + other[cut:]
    if kind == "int":
        width = draw(st.sampled_from([1, 2, 4, 8]))
        value = draw(st.sampled_from((*_INTERESTING, size, size // 2)))
        value %= 1 << (8 * width)
        return data[:pos] + value.to_bytes(width, "big") + data[pos + width:]
    if kind == "insert":
        return data[:pos] + draw(st.binary(min_size=1, max_size=16)) + data[pos:]
    if kind == "delete":
        return data[:pos] + data[pos + draw(st.integers(1, 16)):]
    if kind == "dup":
        length = draw(st.integers(1, 64))
        return data[:pos] + data[pos:pos + length] + data[pos:]
    return data[:pos] + bytes([draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))]) + \
        data[pos + 1:]


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes, corpus: Sequence[bytes] = ()) -> bytes:
    """``data`` after one to three byte-level mutations (module docstring)."""
    for _ in range(draw(st.integers(1, 3))):
        data = draw(_byte_op(data, corpus))
    return data


class _Pool(dict[str, list[Any]]):
    """Field name -> values; a short repr keeps hypothesis's reports readable."""

    def __repr__(self) -> str:
        return f"<field values of {len(self)} fields>"


def _field_pool(messages: Sequence[Any]) -> dict[str, list[Any]]:
    pool: dict[str, list[Any]] = _Pool()
    for m in messages:
        if dataclasses.is_dataclass(m):
            for f in dataclasses.fields(m):
                pool.setdefault(f.name, []).append(getattr(m, f.name))
    return pool


@st.composite
def _variant(draw: st.DrawFn, value: Any, name: str, pool: Mapping[str, list[Any]],
             depth: int = 0) -> Any:
    """A type-preserving variant of one field value (or another message's)."""
    same = [v for v in pool.get(name, []) if _same_kind(v, value)]
    if same and draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(same))
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        ids = [v for vs in pool.values() for v in vs if isinstance(v, int)]
        return draw(st.sampled_from((*_INTERESTING, -1, 2**64, value + 1, value - 1,
                                     *ids[:32])))
    if isinstance(value, str):
        strs = sorted({v for vs in pool.values() for v in vs if isinstance(v, str)})
        return draw(st.sampled_from([*strs, "", SERVER, value + "x"]))
    if isinstance(value, (bytes, bytearray)):
        return bytes(draw(mutated_bytes(bytes(value))))
    if isinstance(value, np.ndarray):
        return _array_variant(draw, value)
    if isinstance(value, (tuple, list, frozenset, set)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else list(value)
        record = isinstance(value, tuple) and len({type(x) for x in items}) > 1
        kind = "mutate" if record else draw(
            st.sampled_from(["drop", "dup", "reverse", "empty", "mutate", "foreign"]))
        if kind == "drop" and items:
            del items[draw(st.integers(0, len(items) - 1))]
        elif kind == "dup" and items:
            items.append(items[draw(st.integers(0, len(items) - 1))])
        elif kind == "reverse":
            items.reverse()
        elif kind == "empty":
            items = []
        elif kind == "mutate" and items and depth < 3:
            i = draw(st.integers(0, len(items) - 1))
            items[i] = draw(_variant(items[i], name, pool, depth + 1))
        elif kind == "foreign":
            kinds = {type(x) for x in items}
            others = [x for v in pool.get(name, []) if isinstance(v, (tuple, list, frozenset))
                      for x in v if type(x) in kinds]
            if others:
                items.append(draw(st.sampled_from(others)))
        return tuple(items) if isinstance(value, tuple) else type(value)(items)
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and depth < 2:
        fields = [f.name for f in dataclasses.fields(value) if f.init]
        if fields:
            fname = draw(st.sampled_from(fields))
            new = draw(_variant(getattr(value, fname), fname, pool, depth + 1))
            try:
                return dataclasses.replace(value, **{fname: new})
            except SecAggError:
                assume(False)
    return value


def _same_kind(a: Any, b: Any) -> bool:
    """Same type, and for containers the same element types (or one is empty)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, list, set, frozenset)) and a and b:
        return {type(x) for x in a} == {type(x) for x in b}
    return True


def _array_variant(draw: st.DrawFn, value: np.ndarray) -> np.ndarray:
    kind = draw(st.sampled_from(["longer", "shorter", "dtype", "extreme", "flip", "2d"]))
    v = value.copy()
    if kind == "longer":
        return np.concatenate([v, v[:1] if v.size else np.zeros(1, v.dtype)])
    if kind == "shorter":
        return v[:-1]
    if kind == "dtype":
        return v.astype(draw(st.sampled_from(["<u4", "<u8", "<i8", "<f8", ">u4", "<u2"])))
    if kind == "2d":
        return v.reshape(1, -1)
    if v.size:
        i = draw(st.integers(0, v.size - 1))
        if kind == "extreme" and v.dtype.kind in "iu":
            info = np.iinfo(v.dtype)
            v.flat[i] = draw(st.sampled_from([info.min, info.max, 0]))
        elif v.dtype.kind in "iu":
            v.flat[i] ^= v.dtype.type(1)
    return v


# -- delivery ------------------------------------------------------------------------
def _fail(cap: Capture, what: str, data: Any, exc: BaseException | None = None,
          point: Point | None = None) -> FuzzFailure:
    shown = data.hex() if isinstance(data, bytes) else repr(data)
    where = f" at {point.label}" if point is not None else ""
    err = f": {type(exc).__name__}: {exc}" if exc is not None else ""
    return FuzzFailure(f"[{cap.target.name}]{where} {what}{err}\ninput: {shown[:4000]}")


def _timed_decode(cap: Capture, decode: Callable[[bytes], Any], data: bytes, bound: float,
                  report: FuzzReport, what: str) -> tuple[bool, Any]:
    """(decoded?, message or the error); fails on a non-library error or a slow decode."""
    t0 = time.perf_counter()
    try:
        msg = decode(data)
        ok: tuple[bool, Any] = (True, msg)
    except SecAggError as exc:
        ok = (False, exc)
    except Exception as exc:
        raise _fail(cap, f"{what} raised a non-library error", data, exc) from exc
    took = time.perf_counter() - t0
    if took > bound:
        for _ in range(3):
            t0 = time.perf_counter()
            with contextlib.suppress(SecAggError):
                decode(data)
            took = min(took, time.perf_counter() - t0)
        if took > bound:
            raise _fail(cap, f"{what} took {took:.3f} s, bound {bound} s", data)
    report.slowest_decode = max(report.slowest_decode, took)
    return ok


def _deliver(cap: Capture, point: Point, message: Any, shown: Any, report: FuzzReport) -> None:
    """Hand ``message`` to the party at ``point`` and check the outcome."""
    if point.working is None:
        point.working = cap.clone(point.snapshot)
    party = point.working
    before = _party_state(party)
    try:
        out = party.handle(message)
    except SecAggError as exc:
        after = _party_state(party)
        finished = point.address == SERVER and isinstance(exc, AbortError) \
            and party.round is None
        if after != before and not finished:
            point.working = None
            which = "export_state() bytes" if after[0] != before[0] else "attributes"
            raise _fail(cap, f"party changed ({which}) although it refused the message",
                        shown, exc, point) from exc
        if after != before:
            point.working = None
        report.count("refused by party")
        return
    except Exception as exc:
        point.working = None
        raise _fail(cap, "handle raised a non-library error", shown, exc, point) from exc
    point.working = None  # accepted: the next delivery starts from the snapshot again
    report.count("accepted")
    for env in out:
        try:
            cap.codec.encode(env.message)
        except Exception as exc:
            raise _fail(cap, "encoding the party's reply failed", shown, exc, point) from exc


@st.composite
def _case(draw: st.DrawFn, cap: Capture, paths: Sequence[str]) -> tuple[Point, str, Any]:
    point = draw(st.sampled_from(cap.points))
    if point.seed is not None and draw(st.booleans()):
        base = point.seed
    else:
        base = draw(st.sampled_from(cap.corpus))
    kind = draw(st.sampled_from(paths))
    if kind == "bytes":
        return point, kind, draw(mutated_bytes(base, cap.corpus))
    if kind == "valid":
        return point, kind, base
    msg = cap.codec.decode(base)
    fields = [f.name for f in dataclasses.fields(msg) if f.init] \
        if dataclasses.is_dataclass(msg) else []
    assume(fields)
    fname = draw(st.sampled_from(fields))
    new = draw(_variant(getattr(msg, fname), fname, cap.field_pool()))
    try:
        mutant = dataclasses.replace(msg, **{fname: new})
    except SecAggError:
        assume(False)
    return point, kind, mutant


def check_delivery(cap: Capture, point: Point, message: bytes | Any, *,
                   decode_bound: float = DEFAULT_DECODE_BOUND) -> FuzzReport:
    """Deliver one input to the party at ``point`` with every check of
    :func:`fuzz_target`: bytes go through the codec, anything else is handed
    to ``handle`` as an object. For regression tests of one finding."""
    report = FuzzReport(cap.target.name)
    kind = "bytes" if isinstance(message, (bytes, bytearray)) else "object"
    _check_case(cap, point, kind, bytes(message) if kind == "bytes" else message,
                decode_bound, report)
    return report


def _check_case(cap: Capture, point: Point, kind: str, payload: Any, bound: float,
                report: FuzzReport) -> None:
    report.examples += 1
    if kind == "object":
        _deliver(cap, point, payload, payload, report)
        return
    if kind == "field":
        try:
            payload = cap.codec.encode(payload)
        except SecAggError:
            report.count("refused by encode")
            return
        except Exception as exc:
            raise _fail(cap, "encode raised a non-library error on a field-mutated message",
                        payload, exc) from exc
    ok, msg = _timed_decode(cap, cap.codec.decode, payload, bound, report, "codec.decode")
    if not ok:
        report.count("refused by decode")
        return
    _deliver(cap, point, msg, payload, report)


def _run(test: Callable[..., None], cfg: settings) -> None:
    settings(cfg)(test)()


def _settings(max_examples: int, derandomize: bool) -> settings:
    return settings(max_examples=max_examples, deadline=None, derandomize=derandomize,
                    database=None, suppress_health_check=_QUIET, report_multiple_bugs=False,
                    phases=(Phase.explicit, Phase.generate, Phase.shrink))


def fuzz_target(cap: Capture, *, max_examples: int = 200, derandomize: bool = True,
                decode_bound: float = DEFAULT_DECODE_BOUND, paths: Sequence[str] = PATHS,
                decoders: bool = True, report: FuzzReport | None = None) -> FuzzReport:
    """Fuzz one captured session: message handling at every point, then the
    stand-alone decoders (codec, ``config_from_bytes``, ``restore_client``).

    ``paths``: how mutated messages reach the parties (:data:`PATHS`:
    ``"bytes"`` byte mutations through the codec, ``"field"`` field mutations
    re-encoded through the codec, ``"valid"`` valid messages of any round,
    ``"object"`` field-mutated objects handed to ``handle`` directly);
    ``decoders``: also fuzz the stand-alone decoders.
    ``max_examples`` hypothesis examples per stage; ``derandomize`` makes the
    run the same on every call (the default suite's mode). Raises
    :class:`FuzzFailure` (shrunk) on the first failure.
    """
    report = report or FuzzReport(cap.target.name)
    t0 = time.perf_counter()
    cfg = _settings(max_examples, derandomize)

    @given(_case(cap, tuple(paths)))
    def delivery(case: tuple[Point, str, Any]) -> None:
        _check_case(cap, *case, decode_bound, report)

    if paths:
        _run(delivery, cfg)
    for name, decode, seeds in _session_decoders(cap) if decoders else ():
        _fuzz_decoder(cap, name, decode, seeds, cfg, decode_bound, report)
    report.seconds += time.perf_counter() - t0
    return report


def _session_decoders(cap: Capture) -> list[tuple[str, Callable[[bytes], Any], list[bytes]]]:
    desc, cfg = cap.target.descriptor, cap.session.config
    owner = next(iter(cap.client_states))
    secrets = cap.secrets(owner)
    states = [s for states in cap.client_states.values() for s in states]
    for state in cap.client_states[owner]:  # the captured states must restore as they were
        restored = desc.restore_client(cfg, state, **secrets)
        if restored.export_state() != state:
            raise _fail(cap, "restore_client(export_state()) does not round-trip", state)
    return [
        ("codec.decode", cap.codec.decode, cap.corpus),
        ("config_from_bytes", desc.config_from_bytes, [cap.config_bytes]),
        ("restore_client", functools.partial(desc.restore_client, cfg, **secrets), states),
    ]


def _fuzz_decoder(cap: Capture, name: str, decode: Callable[[bytes], Any],
                  seeds: Sequence[bytes], cfg: settings, bound: float,
                  report: FuzzReport) -> None:
    @given(st.sampled_from(list(seeds)).flatmap(
        lambda s: st.one_of(mutated_bytes(s, seeds), st.just(s), st.binary(max_size=64))))
    def decoder(data: bytes) -> None:
        report.examples += 1
        ok, _ = _timed_decode(cap, decode, data, bound, report, name)
        report.count(f"{name} {'accepted' if ok else 'refused'}")

    _run(decoder, cfg)


# -- library decoders ----------------------------------------------------------------
_LIBRARY_MODULES = ("secagg.kex", "secagg.sign", "secagg.shamir", "secagg.paillier")


def library_decoders(public_key: Any = None) -> list[tuple[str, Callable[[bytes], Any]]]:
    """Every ``from_bytes`` decoder of the primitives, found by name.

    A public class with a ``from_bytes`` classmethod, or a public function
    whose name ends in ``_from_bytes``, in :data:`_LIBRARY_MODULES`. It is
    called with the bytes and, when its signature has them, ``public_key``
    and ``insecure_allow_small_key_for_tests`` (both True and False are
    fuzzed). A decoder that needs any other argument is not returned: give
    it its own test.
    """
    found: list[tuple[str, Callable[..., Any]]] = []
    for modname in _LIBRARY_MODULES:
        mod = importlib.import_module(modname)
        for name in getattr(mod, "__all__", dir(mod)):
            obj = getattr(mod, name, None)
            decoder = getattr(obj, "from_bytes", None) if inspect.isclass(obj) else None
            if callable(decoder):
                found.append((f"{modname}.{name}.from_bytes", decoder))
            elif inspect.isfunction(obj) and name.endswith("_from_bytes"):
                found.append((f"{modname}.{name}", obj))
    out: list[tuple[str, Callable[[bytes], Any]]] = []
    for name, fn in found:
        params = inspect.signature(fn).parameters
        required = [p for p in list(params)[1:]
                    if params[p].default is inspect.Parameter.empty
                    and params[p].kind not in (inspect.Parameter.VAR_POSITIONAL,
                                               inspect.Parameter.VAR_KEYWORD)]
        if set(required) - {"public_key"}:
            continue
        if "public_key" in params and public_key is None:
            continue
        base = {"public_key": public_key} if "public_key" in params else {}
        flags = [False, True] if "insecure_allow_small_key_for_tests" in params else [None]
        for flag in flags:
            kw = dict(base)
            if flag is not None:
                kw["insecure_allow_small_key_for_tests"] = flag
            label = name + (f"[insecure={flag}]" if flag is not None else "")
            out.append((label, functools.partial(fn, **kw)))
    return out


@st.composite
def _wire_program(draw: st.DrawFn) -> list[tuple[str, Any]]:
    ops = []
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["u8", "u16", "u32", "u64", "f64", "raw", "blob", "bigint",
                                   "vector", "ids32", "ids64", "remaining", "done"]))
        arg: Any = None
        if op == "raw":
            arg = draw(st.integers(-2, 64))
        elif op in ("blob", "bigint"):
            arg = draw(st.sampled_from([0, 1, 8, 64, wire.MAX_FIELD]))
        elif op == "vector":
            arg = (draw(st.none() | st.integers(0, 2**64 - 1)),
                   draw(st.sampled_from([None, np.dtype("<u4"), np.dtype("<u8")])))
        elif op in ("ids32", "ids64"):
            arg = draw(st.none() | st.integers(0, 16))
        ops.append((op, arg))
    return ops


def _run_wire(data: bytes, magic: bytes | None, program: list[tuple[str, Any]]) -> None:
    r = wire.Reader(data, magic)
    for op, arg in program:
        if op == "raw":
            r.raw(arg)
        elif op in ("blob", "bigint"):
            getattr(r, op)(arg) if arg else getattr(r, op)()
        elif op == "vector":
            r.vector(*arg)
        elif op in ("ids32", "ids64"):
            wire.read_ids(r, width=32 if op == "ids32" else 64, max_count=arg)
        else:
            getattr(r, op)()


def fuzz_library(*, max_examples: int = 200, derandomize: bool = True,
                 decode_bound: float = DEFAULT_DECODE_BOUND, seeds: Iterable[bytes] = (),
                 report: FuzzReport | None = None) -> FuzzReport:
    """Fuzz :mod:`secagg.wire`'s reader (random programs of reads over
    arbitrary and mutated bytes) and every :func:`library_decoders` entry,
    seeded with encodings of a small test key, its layout and a vector, and
    with ``seeds`` (for example every captured session's messages)."""
    from secagg import kex, paillier, shamir, sign

    report = report or FuzzReport("library")
    t0 = time.perf_counter()
    cfg = _settings(max_examples, derandomize)
    pk, sk = insecure_test_keypair()
    layout = paillier.PackingLayout.create(pk, dimension=5, clip=1.0, value_bits=8,
                                           capacity=4, insecure_allow_small_key_for_tests=True)
    vec = paillier.encrypt(pk, layout, np.linspace(-1, 1, 5),
                           insecure_allow_small_key_for_tests=True)
    ws = wire.Writer(b"TEST").u8(3).u16(500).u32(7).u64(2**40).f64(0.5).blob(b"abc")
    ws.bigint(12345).vector(np.arange(4, dtype=np.uint32))
    wire.write_ids(ws, (1, 5, 9))
    wire.write_ids(ws, (2**40, 2**41), width=64)
    pool = [
        paillier.public_key_to_bytes(pk), paillier.private_key_to_bytes(sk),
        layout.to_bytes(), vec.to_bytes(), kex.PrivateKey.generate().to_bytes(),
        kex.PrivateKey.generate().public_key().to_bytes(),
        sign.SigningKey.generate().to_bytes(), sign.SigningKey.generate().verify_key().to_bytes(),
        *(s.to_bytes() for s in shamir.split(b"\x07" * 32, 3, 2)),
        ws.getvalue(), *seeds,
    ]
    cap = Capture(FuzzTarget("library", _NO_DESCRIPTOR), None, None,  # type: ignore[arg-type]
                  [], pool, b"", {})

    @given(st.sampled_from(pool).flatmap(
        lambda s: st.one_of(mutated_bytes(s, pool), st.binary(max_size=96))),
        st.sampled_from([None, b"TEST"]), _wire_program())
    def reader(data: bytes, magic: bytes | None, program: list[tuple[str, Any]]) -> None:
        report.examples += 1
        ok, _ = _timed_decode(cap, lambda d: _run_wire(d, magic, program), data,
                              decode_bound, report, "wire.Reader")
        report.count(f"wire.Reader {'accepted' if ok else 'refused'}")

    _run(reader, cfg)
    for name, decode in library_decoders(pk):
        _fuzz_decoder(cap, name, decode, pool, cfg, decode_bound, report)
    report.seconds += time.perf_counter() - t0
    return report


def _no_build(*_a: Any, **_k: Any) -> Any:
    raise ParameterError("the library pseudo-target builds no session")


_NO_DESCRIPTOR = ProtocolDescriptor("library", ("none",), "none", _no_build, _no_build,
                                    _no_build, _no_build, _no_build)


# -- the library's own targets -------------------------------------------------------
@functools.lru_cache(maxsize=1)
def insecure_test_keypair() -> tuple[Any, Any]:
    """One 512-bit Paillier key pair (test-only flag) shared by the built-in
    Paillier targets and :func:`fuzz_library`, so captured ciphertexts seed
    the key-bound decoders under the right key. Never use it for anything else."""
    from secagg import paillier
    pair: tuple[Any, Any] = paillier.generate_keypair(
        512, insecure_allow_small_key_for_tests=True)
    return pair


def _signing_secret(keys: Mapping[int, Any], u: int) -> Mapping[str, Any]:
    return {"signing_key": keys[u]} if keys else {}


def _decryptor_secret(session: Session, u: int) -> Mapping[str, Any]:
    # the sealing key the session gave this decryptor (kept by the party itself)
    key = getattr(session.clients[u], "_decryptor_key", None)
    return {} if key is None else {"decryptor_key": key}


def _same_secrets(secrets: Mapping[str, Any], _u: int) -> Mapping[str, Any]:
    return secrets


def builtin_targets() -> list[FuzzTarget]:
    """Every protocol of this library, in every mode and trust layout.

    SecAgg (semi-honest and malicious, with a dropout before the masked
    input, so the unmask round asks for s-shares), SecAgg+ (both modes, on
    a sparse graph), Paillier in every :data:`~protocols.paillier_sum.TrustLayout`
    (512-bit keys under the test-only flag) and the plaintext baseline.
    """
    from protocols.paillier_sum import PAILLIER_SUM
    from protocols.paillier_sum.config import TrustLayout
    from protocols.plaintext_sum import PLAINTEXT_SUM
    from protocols.secagg.protocol import SECAGG, SECAGG_PLUS
    from secagg.sign import SigningKey

    targets: list[FuzzTarget] = []
    ids = (3, 10, 17, 42, 99, 1 << 40)
    for desc, extra in ((SECAGG, {}), (SECAGG_PLUS, {"neighbors": 4})):
        for mode in ("semi-honest", "malicious"):
            keys = {u: SigningKey.generate() for u in ids} if mode == "malicious" else {}
            params: dict[str, Any] = {"mode": mode, "threshold": 3, **extra}
            if keys:
                params["signing_keys"] = keys
            drop = frozenset({17}) if desc is SECAGG else frozenset()
            targets.append(FuzzTarget(
                f"{desc.name}/{mode}", desc, params, client_ids=ids,
                dropouts={"masked_input": drop} if drop else {},
                client_secrets=functools.partial(_signing_secret, keys)))
    pk, sk = insecure_test_keypair()
    for trust in typing.get_args(TrustLayout):
        cross = trust == "cross-silo"
        pair: tuple[Any, Any] = (pk, sk)
        secrets: dict[str, Any] = {"insecure_allow_small_key_for_tests": True}
        session_secrets = None
        if trust == "threshold":  # safe-prime keys; each decryptor's sealing key
            from secagg.paillier import threshold
            pair = threshold.generate_keypair(256, insecure_allow_small_key_for_tests=True)
            session_secrets = _decryptor_secret
        elif cross:
            secrets["keypair"] = pair
        else:
            secrets["expected_public_key"] = pk
        targets.append(FuzzTarget(
            f"paillier/{trust}", PAILLIER_SUM,
            {"trust": trust, "keypair": pair, "insecure_allow_small_key_for_tests": True},
            client_ids=(3, 10, 17), client_secrets=functools.partial(_same_secrets, secrets),
            session_secrets=session_secrets))
    targets.append(FuzzTarget("plaintext", PLAINTEXT_SUM))
    return targets


# -- command line --------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m protocols.testing.fuzz [--minutes N] [--target NAME ...]``.

    Fuzzes every built-in target and the library decoders in rounds of
    ``--batch`` random examples each, until ``--minutes`` have passed. A
    target that fails is reported (shrunk input, exception) and left out of
    later rounds; the others go on. Prints counts per target; exits 1 if
    anything failed.
    """
    ap = argparse.ArgumentParser(prog="python -m protocols.testing.fuzz",
                                 description="Fuzz every decoder and party of the library.")
    ap.add_argument("--minutes", type=float, default=1.0, help="how long to run (default 1)")
    ap.add_argument("--batch", type=int, default=500, help="examples per target per round")
    ap.add_argument("--target", action="append", default=None,
                    help="only these targets (repeatable; 'library' for the primitives)")
    ap.add_argument("--paths", default=",".join(sorted(set(PATHS))),
                    help="delivery paths, comma-separated (default: all)")
    ap.add_argument("--decode-bound", type=float, default=DEFAULT_DECODE_BOUND,
                    help="seconds one decode may take")
    args = ap.parse_args(argv)
    paths = tuple(p for p in args.paths.split(",") if p)
    if args.minutes <= 0 or args.batch < 1 or not set(paths) <= set(PATHS):
        ap.error(f"--minutes must be > 0, --batch >= 1, --paths among {sorted(set(PATHS))}")
    known = [t.name for t in builtin_targets()] + ["library"]
    unknown = set(args.target or ()) - set(known)
    if unknown:
        ap.error(f"unknown target(s) {sorted(unknown)}; targets are {known}")
    targets = [t for t in builtin_targets() if not args.target or t.name in args.target]
    captures = [capture(t) for t in targets]
    reports = {c.target.name: FuzzReport(c.target.name) for c in captures}
    if not args.target or "library" in args.target:
        reports["library"] = FuzzReport("library")
    seeds = [d for c in captures for d in (*c.corpus[:50], *c.byte_fields()[:50])]
    failures: dict[str, str] = {}
    deadline = time.monotonic() + 60 * args.minutes
    while time.monotonic() < deadline and len(failures) < len(reports):
        for name in reports:
            if name in failures or time.monotonic() >= deadline:
                continue
            try:
                if name == "library":
                    fuzz_library(max_examples=args.batch, derandomize=False,
                                 decode_bound=args.decode_bound, seeds=seeds,
                                 report=reports[name])
                else:
                    cap = next(c for c in captures if c.target.name == name)
                    fuzz_target(cap, max_examples=args.batch, derandomize=False,
                                decode_bound=args.decode_bound, paths=paths,
                                report=reports[name])
            except (FuzzFailure, HypothesisException) as exc:
                failures[name] = str(exc)
                print(f"FAILURE in {name}:\n{exc}\n", file=sys.stderr, flush=True)
    for rep in reports.values():
        print(rep, "FAILED" if rep.target in failures else "")
    return 1 if failures else 0


if __name__ == "__main__":  # pragma: no cover - the command line
    sys.exit(main())
