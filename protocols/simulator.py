"""One in-process run of any protocol built on :mod:`protocols.core`.

:func:`run` builds a session from a descriptor, gives every client its
encoded input, and moves every message as bytes through the protocol's
codec, exactly as over a network (so the codecs are exercised and the byte
counts are real). Deliveries are first in, first out, starting with the
coordinator, then the auxiliary parties by role name, then the clients by
id; when nothing is left to deliver the coordinator's round is closed (the
deadline a real transport would have). The run is deterministic under
``seed`` except for the secrets, which always come from the OS.

Dropouts: ``dropouts[r]`` lists clients that vanish from round ``r`` on:
they neither handle nor send any message of round ``r`` or a later one
(messages still reach their address and count as received bytes).

Compute seconds are measured around each party's work (decode, handle,
encode) with :func:`time.perf_counter`; the parties own no clock.

Parallel clients: with ``workers > 1`` the clients live in that many worker
processes (forked before the session is built, so they inherit no party).
Each client crosses into its worker once, as the bytes of its versioned
state codec (``export_state`` / ``restore_client``) plus any local secrets
as bytes; afterwards only message bytes cross (``Connection.send_bytes``,
frames of the library's binary codec :mod:`secagg.wire`, never pickle). A
run of consecutive deliveries to clients (a "wave") is processed in parallel
and its results are taken in queue order, so every party receives exactly
the messages, in exactly the order, of the sequential run (``workers=1``):
the same seed gives the same included set and the same sum. Messages a wave
sends to the coordinator are handed to it as they come (the coordinator sums
masked inputs in place), so the masked vectors of a round are never all in
memory at once.

Parallel coordinator: a coordinator with ``use_mapper`` (the SecAgg server)
is given the pool as a :class:`~protocols.parallel.Mapper`, and its heavy
work items (the unmasking) run in the same workers: a registered task's
name and the items' bytes go out, result bytes come back, in item order.
Items handed out during a wave run in this process instead (the pipes are
busy), with the same results.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import os
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from multiprocessing import connection
from typing import Any

import numpy as np
import numpy.typing as npt

from secagg.errors import (
    AbortError,
    LocalProtocolError,
    ParameterError,
    RemoteProtocolError,
    SecAggError,
)
from secagg.wire import Reader, Writer

from .core import SERVER, Address, Envelope, ProtocolDescriptor, check_client_ids, check_rounds
from .parallel import SEQUENTIAL, Mapper, Task, resolve_task, task_name
from .results import AggregationResult, PartyFigures

__all__ = ["LocalSecrets", "WorkerError", "resolve_workers", "run", "worker_pool"]

#: ``workers=None`` uses the pool only from this many clients x coordinates on
#: (below it, forking the workers costs more than it saves).
AUTO_POOL_MIN_WORK = 1 << 22
#: Deliveries per request frame sent to one worker.
_CHUNK = 4
#: Bytes of saved client states sent to one worker in one frame.
_ADD_BYTES = 1 << 21


class WorkerError(LocalProtocolError):
    """A worker process failed outside the protocol's own errors (or died)."""


@dataclass(frozen=True)
class LocalSecrets:
    """What a client needs besides its saved state to be restored elsewhere.

    ``export(client_id)`` gives the client's local secrets as named bytes (for
    example its Ed25519 identity key); ``load(named_bytes)`` turns them back
    into the keyword arguments of :meth:`ProtocolDescriptor.restore_client`.
    """

    export: Callable[[int], Mapping[str, bytes]]
    load: Callable[[Mapping[str, bytes]], Mapping[str, Any]]


def resolve_workers(workers: int | None, n_clients: int, dimension: int) -> int:
    """The worker processes a run of ``n_clients`` x ``dimension`` uses.

    ``None``: every core (:func:`os.cpu_count`) when the round is big enough to
    pay for the processes (``n_clients * dimension >= 2^22`` and at least 4
    clients per worker), else 1. An int >= 1 is used as given (capped at
    ``n_clients``). Processes are forked; where ``fork`` is unavailable the
    run is sequential.
    """
    if workers is None:
        cores = os.cpu_count() or 1
        if n_clients * dimension < AUTO_POOL_MIN_WORK or n_clients < 4 * cores:
            return 1
        workers = cores
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ParameterError(f"workers must be an int >= 1 or None, got {workers!r}")
    if workers > 1:
        import multiprocessing

        if "fork" not in multiprocessing.get_all_start_methods():
            return 1
    return min(workers, n_clients)


def _check_inputs(inputs: Mapping[int, npt.ArrayLike]) -> tuple[tuple[int, ...], int]:
    ids = check_client_ids(inputs)
    if not ids:
        raise ParameterError("inputs must hold at least one client")
    dims = {np.shape(inputs[u]) for u in ids}
    if len(dims) != 1 or len(next(iter(dims))) != 1:
        raise ParameterError(f"inputs must be 1-D vectors of one length, got shapes "
                             f"{sorted(dims)}")
    return ids, next(iter(dims))[0]


# -- the byte framing between the simulator and its workers (never pickle) -------------
class _W:
    """A frame to or from a worker: a one-byte tag, then fields of the shared
    codec (:class:`secagg.wire.Writer`), plus text and party addresses."""

    def __init__(self, tag: bytes) -> None:
        self._w = Writer().raw(tag)

    def u8(self, v: int) -> _W:
        self._w.u8(v)
        return self

    def u32(self, v: int) -> _W:
        self._w.u32(v)
        return self

    def u64(self, v: int) -> _W:
        self._w.u64(v)
        return self

    def f64(self, v: float) -> _W:
        self._w.f64(v)
        return self

    def blob(self, b: bytes) -> _W:
        self._w.blob(b)
        return self

    def text(self, s: str) -> _W:
        return self.blob(s.encode())

    def address(self, a: Address) -> _W:
        if isinstance(a, str):
            return self.u8(1).text(a)
        return self.u8(0).u64(int(a))

    def bytes(self) -> bytes:
        return self._w.getvalue()


class _R:
    """Reads a :class:`_W` frame with :class:`secagg.wire.Reader`; a short or
    malformed frame is the worker link's failure (:class:`WorkerError`)."""

    def __init__(self, data: bytes) -> None:
        self._r = self._read(Reader, data)
        self.tag: bytes = self._read(self._r.raw, 1)

    @staticmethod
    def _read(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except RemoteProtocolError as exc:
            raise WorkerError(f"truncated frame between the simulator and a worker: "
                              f"{exc}") from None

    def u8(self) -> int:
        return int(self._read(self._r.u8))

    def u32(self) -> int:
        return int(self._read(self._r.u32))

    def u64(self) -> int:
        return int(self._read(self._r.u64))

    def f64(self) -> float:
        return float(self._read(self._r.f64))

    def blob(self) -> bytes:
        return bytes(self._read(self._r.blob))

    def text(self) -> str:
        return self.blob().decode()

    def address(self) -> Address:
        return self.text() if self.u8() else self.u64()


def _error_frame(w: _W, exc: BaseException) -> _W:
    cls = type(exc)
    return w.u8(1).text(cls.__module__).text(cls.__qualname__).text(str(exc))


def _raise_from(r: _R) -> None:
    module, qualname, message = r.text(), r.text(), r.text()
    cls: Any = None
    try:
        cls = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
    except (ImportError, AttributeError):
        cls = None
    if isinstance(cls, type) and issubclass(cls, SecAggError):
        try:
            exc = cls(message)
        except TypeError:  # a constructor that takes more than a message
            exc = None
        if exc is not None:
            raise exc
    raise WorkerError(f"a worker failed: {module}.{qualname}: {message}")


def _worker_main(conn: Any, descriptor: ProtocolDescriptor | None,
                 local_secrets: LocalSecrets | None) -> None:
    """A worker: restores its clients from state bytes and runs their steps."""
    clients: dict[int, Any] = {}
    config: Any = None
    codec: Any = None
    while True:
        try:
            frame = conn.recv_bytes()
        except EOFError:
            return
        r = _R(frame)
        if r.tag == b"S":
            return
        out = _W(b"R")
        try:
            if r.tag in (b"C", b"A", b"J") and descriptor is None:
                raise WorkerError("this worker runs tasks only, it holds no clients")
            if r.tag == b"C":
                assert descriptor is not None
                config = descriptor.config_from_bytes(r.blob())
                codec = descriptor.codec(config, **json.loads(r.text()))
                out.u8(0)
            elif r.tag == b"A":
                assert descriptor is not None
                for _ in range(r.u32()):
                    u, state = r.u64(), r.blob()
                    named = {r.text(): r.blob() for _ in range(r.u32())}
                    extra = local_secrets.load(named) if local_secrets is not None else {}
                    clients[u] = descriptor.restore_client(config, state, **extra)
                out.u8(0)
            elif r.tag == b"J":
                assert descriptor is not None
                count = r.u32()
                out.u32(count)
                for _ in range(count):
                    u, kind, data = r.u64(), r.u8(), r.blob()
                    try:
                        t0 = time.perf_counter()
                        party = clients[u]
                        sent: list[Envelope] = (party.start() if kind == 0
                                                else party.handle(codec.decode(data)))
                        encoded = [(e.receiver, descriptor.round_of(e.message),
                                    codec.encode(e.message)) for e in sent]
                        seconds = time.perf_counter() - t0
                    except Exception as exc:  # reported to the simulator, re-raised there
                        _error_frame(out, exc)
                        break
                    out.u8(0).f64(seconds).u32(len(encoded))
                    for receiver, rnd, payload in encoded:
                        out.address(receiver).text(rnd).blob(payload)
            elif r.tag == b"M":
                fn = resolve_task(r.text())
                result = fn(r.blob())
                if not isinstance(result, bytes):
                    raise WorkerError(f"task returned {type(result).__name__}, not bytes")
                out.u8(0).blob(result)
            else:
                raise WorkerError(f"unknown frame tag {r.tag!r}")
        except Exception as exc:
            out = _error_frame(_W(b"R"), exc)
        conn.send_bytes(out.bytes())


class _Pool:
    """Client worker processes; each client lives in worker ``position % size``.
    Also a :class:`~protocols.parallel.Mapper` over the same processes, for a
    coordinator's work items (:meth:`map`)."""

    def __init__(self, size: int, descriptor: ProtocolDescriptor | None,
                 local_secrets: LocalSecrets | None) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        self.conns: list[Any] = []
        self.procs: list[Any] = []
        try:
            for _ in range(size):
                mine, theirs = ctx.Pipe()
                proc = ctx.Process(target=_worker_main, args=(theirs, descriptor, local_secrets),
                                   daemon=True)
                proc.start()
                theirs.close()
                self.conns.append(mine)
                self.procs.append(proc)
        except BaseException:
            self.close()
            raise
        self.home: dict[int, int] = {}
        #: worker -> the wave items it is computing (empty between waves)
        self._outstanding: dict[int, list[int]] = {}

    @property
    def width(self) -> int:
        """Worker processes (what :meth:`map` runs at once)."""
        return len(self.conns)

    @property
    def pids(self) -> tuple[int, ...]:
        """The worker processes' ids (to read their CPU time, say)."""
        return tuple(int(p.pid) for p in self.procs)

    def map(self, fn: Task, items: Iterable[bytes]) -> Iterator[bytes]:
        """``fn(item)`` for each item (``fn`` a registered task), computed in the
        workers and returned in item order; a task's :class:`SecAggError` is
        re-raised as itself, anything else (or a worker that died) as
        :class:`WorkerError`, once every worker has answered. During a wave
        (client steps in flight on the pipes) the items run in this process."""
        name = task_name(fn)
        todo = list(items)
        if self._outstanding or len(todo) <= 1:
            return (fn(item) for item in todo)
        return self._map(name, todo)

    def _map(self, name: str, items: list[bytes]) -> Iterator[bytes]:
        busy: dict[int, int] = {}  # worker -> item
        ready: dict[int, bytes] = {}
        failure: tuple[int, _R] | None = None
        nxt = want = 0
        try:
            while want < len(items):
                if want in ready:
                    yield ready.pop(want)
                    want += 1
                    continue
                for w in range(len(self.conns)):  # results buffered: at most 2 per worker
                    if (failure is None and w not in busy and nxt < len(items)
                            and nxt - want < 2 * len(self.conns)):
                        try:
                            self.conns[w].send_bytes(_W(b"M").text(name).blob(items[nxt]).bytes())
                        except OSError:
                            raise WorkerError(f"worker {w} exited") from None
                        busy[w] = nxt
                        nxt += 1
                if not busy:
                    assert failure is not None
                    _raise_from(failure[1])
                for conn in connection.wait([self.conns[w] for w in busy]):
                    w = self.conns.index(conn)
                    i = busy.pop(w)
                    r = self._reply(w)
                    if r.u8():
                        if failure is None or i < failure[0]:
                            failure = (i, r)
                    else:
                        ready[i] = r.blob()
        finally:  # leave no answer on a pipe, whatever happened
            for w in list(busy):
                with contextlib.suppress(WorkerError):
                    self._reply(w)

    def _ask(self, w: int, frame: bytes) -> _R:
        self.conns[w].send_bytes(frame)
        return self._reply(w)

    def _reply(self, w: int) -> _R:
        try:
            r = _R(self.conns[w].recv_bytes())
        except EOFError:
            raise WorkerError(f"client worker {w} exited") from None
        return r

    def configure(self, descriptor: ProtocolDescriptor, config: Any,
                  codec_options: Mapping[str, Any]) -> None:
        try:
            options = json.dumps(dict(codec_options))
        except TypeError:
            raise ParameterError("codec options must be JSON data to reach worker "
                                 "processes; run with workers=1") from None
        frame = _W(b"C").blob(descriptor.config_to_bytes(config)).text(options).bytes()
        for w in range(len(self.conns)):
            r = self._ask(w, frame)
            if r.u8():
                _raise_from(r)

    def add(self, clients: Iterable[tuple[int, bytes, Mapping[str, bytes]]]) -> None:
        """Ship clients (id, saved state, local secrets as bytes) to their workers."""
        batches: list[list[tuple[int, bytes, Mapping[str, bytes]]]] = [[] for _ in self.conns]
        for u, state, named in clients:
            w = self.home[u]
            batches[w].append((u, state, named))
            if sum(len(b[1]) for b in batches[w]) >= _ADD_BYTES or len(batches[w]) >= 64:
                self._send_add(w, batches[w])
                batches[w] = []
        for w, batch in enumerate(batches):
            if batch:
                self._send_add(w, batch)

    def _send_add(self, w: int, batch: list[tuple[int, bytes, Mapping[str, bytes]]]) -> None:
        f = _W(b"A").u32(len(batch))
        for u, state, named in batch:
            f.u64(u).blob(state).u32(len(named))
            for name, value in sorted(named.items()):
                f.text(name).blob(value)
        r = self._ask(w, f.bytes())
        if r.u8():
            _raise_from(r)

    def wave(self, items: list[tuple[int, int, bytes]],
             consume: Callable[[int, float, list[tuple[Address, str, bytes]]], None]) -> None:
        """Run ``items`` (client id, 0 = start / 1 = handle, message bytes) on the
        workers; ``consume(i, seconds, sent)`` is called in item order."""
        pending: list[deque[int]] = [deque() for _ in self.conns]
        for i, (u, _, _) in enumerate(items):
            pending[self.home[u]].append(i)
        outstanding = self._outstanding
        buffered = [0] * len(self.conns)
        results: dict[int, Any] = {}

        def feed(w: int) -> None:
            if w in outstanding or not pending[w] or buffered[w] >= 2 * _CHUNK:
                return
            chunk = [pending[w].popleft() for _ in range(min(_CHUNK, len(pending[w])))]
            f = _W(b"J").u32(len(chunk))
            for i in chunk:
                u, kind, data = items[i]
                f.u64(u).u8(kind).blob(data)
            self.conns[w].send_bytes(f.bytes())
            outstanding[w] = chunk

        def collect(w: int) -> None:
            chunk = outstanding.pop(w)
            r = self._reply(w)
            count = r.u32()
            if count != len(chunk):
                raise WorkerError(f"worker {w} answered {count} of {len(chunk)} steps")
            for i in chunk:
                if r.u8():  # this step raised: the worker stopped the chunk here
                    results[i] = ("error", r)
                    break
                seconds = r.f64()
                sent = [(r.address(), r.text(), r.blob()) for _ in range(r.u32())]
                results[i] = ("ok", seconds, sent)
                buffered[w] += 1

        for w in range(len(self.conns)):
            feed(w)
        for i, (u, _, _) in enumerate(items):
            w = self.home[u]
            while i not in results:
                if w not in outstanding:
                    raise WorkerError(f"worker {w} stopped before step {i}")
                ready = connection.wait([self.conns[x] for x in outstanding])
                for conn in ready:
                    x = self.conns.index(conn)
                    collect(x)
                    feed(x)
            res = results.pop(i)
            if res[0] == "error":
                _raise_from(res[1])
            buffered[w] -= 1
            feed(w)
            consume(i, res[1], res[2])

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError, ValueError):
                conn.send_bytes(b"S")
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        for conn in self.conns:
            conn.close()


@contextlib.contextmanager
def worker_pool(size: int) -> Iterator[Mapper]:
    """``size`` (>= 1) forked worker processes as a :class:`~protocols.parallel.Mapper`,
    for a coordinator's work items outside a simulated run (a benchmark, a
    server's own driver); stopped on exit. Where ``fork`` is unavailable it
    is :data:`~protocols.parallel.SEQUENTIAL`."""
    size = resolve_workers(size, size, 1)
    if size == 1:
        yield SEQUENTIAL
        return
    pool = _Pool(size, None, None)
    try:
        yield pool
    finally:
        pool.close()


def run(
    descriptor: ProtocolDescriptor,
    inputs: Mapping[int, npt.ArrayLike],
    *,
    dropouts: Mapping[str, Iterable[int]] | None = None,
    seed: int | None = None,
    workers: int | None = None,
    client_pool: bool = True,
    server_pool: bool = True,
    local_secrets: LocalSecrets | None = None,
    **params: Any,
) -> AggregationResult:
    """Sum ``inputs`` (client id -> 1-D float vector) with ``descriptor``'s protocol.

    ``params`` go to :meth:`~protocols.core.ProtocolDescriptor.make_session`
    (and ``workers`` too, as given, when the descriptor's builder takes it,
    e.g. Paillier's arithmetic processes). ``workers``: client worker
    processes (see :func:`resolve_workers`; 1 = everything in this process).
    ``client_pool=False`` keeps the clients in this process whatever
    ``workers`` is (for clients that cannot be restored from their saved
    state plus ``local_secrets`` alone). ``server_pool``: when there is a
    pool and the coordinator takes a mapper (``use_mapper``, e.g. the SecAgg
    server for its unmasking), its work items run in the pool's processes
    too; False keeps them in this process. ``inputs`` is read one client at a
    time, so it may be a lazy mapping.

    Returns the decoded sum over the included clients, the exact integer
    ``raw_sum``, who is ``included`` / ``dropped``, and per-party figures
    (keys: client ids, ``"server"`` and any auxiliary role; compute seconds
    and bytes by round name). Raises :class:`~secagg.errors.AbortError` when
    the protocol aborts, and any party's refusal as it is raised.
    """
    ids, dimension = _check_inputs(inputs)
    if "workers" in inspect.signature(descriptor.build).parameters:
        params["workers"] = workers
    n_workers = resolve_workers(workers, len(ids), dimension) if client_pool else 1
    pool = _Pool(n_workers, descriptor, local_secrets) if n_workers > 1 else None
    try:
        return _run(descriptor, inputs, ids, dimension, dropouts, seed, pool, local_secrets,
                    server_pool, params)
    finally:
        if pool is not None:
            pool.close()


def _run(descriptor: ProtocolDescriptor, inputs: Mapping[int, npt.ArrayLike],
         ids: tuple[int, ...], dimension: int,
         dropouts: Mapping[str, Iterable[int]] | None,
         seed: int | None, pool: _Pool | None, local_secrets: LocalSecrets | None,
         server_pool: bool, params: dict[str, Any]) -> AggregationResult:
    session = descriptor.make_session(ids, dimension, seed=seed, **params)
    use_mapper = getattr(session.coordinator, "use_mapper", None)
    if pool is not None and server_pool and callable(use_mapper):
        use_mapper(pool)
    codec = descriptor.codec(session.config, **session.codec_options)
    rounds = session.rounds
    order = {r: i for i, r in enumerate(rounds)}
    drop_at: dict[int, int] = {}
    for rnd, who in (dropouts or {}).items():
        check_rounds([rnd], rounds, f"dropouts of {descriptor.name}")
        who = frozenset(who)
        if not who <= set(ids):
            raise ParameterError(f"dropouts[{rnd!r}] names unknown clients "
                                 f"{sorted(who - set(ids))}")
        for u in who:
            drop_at[u] = min(drop_at.get(u, len(rounds)), order[rnd])

    first_round: dict[int, str] = {}

    def prepare() -> Iterable[tuple[int, bytes, Mapping[str, bytes]]]:
        for u in ids:  # one client's input at a time (inputs may be lazy)
            client = session.clients[u]
            client.set_input(session.encoder.encode(np.asarray(inputs[u])))
            first_round[u] = client.round or rounds[0]
            if pool is not None:  # the client leaves this process as its state bytes only
                del session.clients[u]
                named = local_secrets.export(u) if local_secrets is not None else {}
                yield u, client.export_state(), named

    if pool is None:
        for _ in prepare():
            pass
    else:
        pool.home = {u: i % len(pool.conns) for i, u in enumerate(ids)}
        pool.configure(descriptor, session.config, session.codec_options)
        pool.add(prepare())

    figures: dict[Hashable, PartyFigures] = {u: PartyFigures() for u in ids}
    figures[SERVER] = PartyFigures()
    for role in session.others:
        figures[role] = PartyFigures()
    queue: deque[tuple[Address, str, bytes]] = deque()
    later: list[tuple[Address, str, bytes]] | None = None  # set while a wave runs

    def gone(address: Address, rnd: str) -> bool:
        return isinstance(address, int) and order[rnd] >= drop_at.get(address, len(rounds))

    def post(address: Address, sent: list[tuple[Address, str, bytes]]) -> None:
        """Queue what ``address`` sent; during a wave, hand messages for a party
        of this process straight to it while nothing is queued before them."""
        for receiver, mrnd, data in sent:
            if gone(address, mrnd):
                continue  # vanished before sending this round's message
            figures[address].add_sent(mrnd, len(data))
            if later is not None and not queue and not isinstance(receiver, int):
                deliver(receiver, mrnd, data, into=later)
            else:
                queue.append((receiver, mrnd, data))

    def act(address: Address, rnd: str, work: Any,
            into: list[tuple[Address, str, bytes]] | None = None) -> None:
        """Run one party's step in this process (timed) and queue what it sends."""
        t0 = time.perf_counter()
        out: list[Envelope] = work()
        sent = [(e.receiver, descriptor.round_of(e.message), codec.encode(e.message))
                for e in out]
        figures[address].add_compute(rnd, time.perf_counter() - t0)
        if into is None:
            post(address, sent)
            return
        for receiver, mrnd, data in sent:
            if not gone(address, mrnd):
                figures[address].add_sent(mrnd, len(data))
                into.append((receiver, mrnd, data))

    def deliver(receiver: Address, rnd: str, data: bytes,
                into: list[tuple[Address, str, bytes]] | None = None) -> None:
        if receiver not in figures:
            raise ParameterError(f"a message of round {rnd!r} went to unknown "
                                 f"address {receiver!r}")
        figures[receiver].add_received(rnd, len(data))  # it reached the address
        if gone(receiver, rnd):
            return
        party = session.party(receiver)
        act(receiver, rnd, lambda: party.handle(codec.decode(data)), into)

    def wave(items: list[tuple[int, int, str, bytes]]) -> None:
        """Client steps (id, 0 = start / 1 = handle, round, bytes), in order."""
        nonlocal later
        later = []

        def consume(i: int, seconds: float, sent: list[tuple[Address, str, bytes]]) -> None:
            u, _, rnd, _ = items[i]
            figures[u].add_compute(rnd, seconds)
            post(u, sent)

        try:
            if pool is not None:
                pool.wave([(u, kind, data) for u, kind, _, data in items], consume)
            else:
                for i, (u, kind, _rnd, data) in enumerate(items):
                    client = session.clients[u]
                    t0 = time.perf_counter()
                    out: list[Envelope] = (client.start() if kind == 0
                                           else client.handle(codec.decode(data)))
                    sent = [(e.receiver, descriptor.round_of(e.message),
                             codec.encode(e.message)) for e in out]
                    consume(i, time.perf_counter() - t0, sent)
        finally:
            queue.extend(later)
            later = None

    coordinator = session.coordinator
    act(SERVER, rounds[0], coordinator.start)
    for role, party in sorted(session.others.items()):
        act(role, rounds[0], party.start)
    wave([(u, 0, first_round[u], b"") for u in ids if not gone(u, first_round[u])])

    while True:
        while queue:
            if not isinstance(queue[0][0], int):
                receiver, rnd, data = queue.popleft()
                deliver(receiver, rnd, data)
                continue
            items: list[tuple[int, int, str, bytes]] = []
            while queue and isinstance(queue[0][0], int):
                receiver, rnd, data = queue.popleft()
                if receiver not in figures:
                    raise ParameterError(f"a message of round {rnd!r} went to unknown "
                                         f"address {receiver!r}")
                figures[receiver].add_received(rnd, len(data))
                if not gone(receiver, rnd):
                    items.append((int(receiver), 1, rnd, data))
            wave(items)
        current = coordinator.round
        if current is None:
            break
        act(SERVER, current, coordinator.close_round)
        if not queue and coordinator.round == current:
            raise AbortError(f"{descriptor.name}: round {current!r} closed without "
                             f"progress; nothing left to deliver")

    result = session.outcome()
    if result is None:
        raise AbortError(f"{descriptor.name} finished without a result")
    raw = result.raw_sum
    total = session.encoder.decode(raw, len(result.included))
    return AggregationResult(sum=total, included=result.included,
                             dropped=frozenset(ids) - result.included, raw_sum=raw,
                             figures=figures)
