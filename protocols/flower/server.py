"""The server side: drive any protocol of the party contract over a Flower ``Grid``.

:func:`run_session` builds one session of a
:class:`~protocols.core.ProtocolDescriptor` for the given Flower node ids
(node id == client id), then runs its rounds over the Grid's
``push_messages`` / ``pull_messages`` with a short poll:

* one deadline per protocol round (``round_timeout`` seconds, also the
  Flower message TTL); when it passes, the coordinator's ``close_round``
  goes on with whoever answered (or raises
  :class:`~secagg.errors.AbortError`, and nothing is output);
* no reply, an error reply (code 2 from the node, 5 from the SuperLink, ...),
  a reply that cannot be decoded, a message that names another sender than
  the node that sent it, or a message the coordinator refuses: that node is
  a dropout of this round and is sent nothing more;
* replies arriving after their round closed are never pulled, so never read;
* the session id is 16 fresh random bytes, and the protocol configuration
  is built fresh for every session (its own session id included).

The server never sees a node's plaintext update: at the input round the
node's client mod gives the user's ``train_content`` to the user's own train
function and sends back only the protocol's messages.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid

from secagg.errors import AbortError, ParameterError, SecAggError

from ..core import (
    SERVER,
    CoordinatorResult,
    Envelope,
    ProtocolDescriptor,
    Quantizer,
    Session,
    check_client_ids,
)
from .wire import MESSAGE_TYPE, RECORD, Packet, encode_encoder

__all__ = [
    "RoundReport",
    "SecureAggregator",
    "SessionAborted",
    "SessionReport",
    "nodes_ready",
    "run_session",
]


class SessionAborted(AbortError):
    """Too few nodes remained; nothing is output. ``rounds`` says who dropped where."""

    def __init__(self, message: str, rounds: list[RoundReport]) -> None:
        super().__init__(message)
        self.rounds = rounds


@dataclass
class RoundReport:
    """What happened in one protocol round (times in seconds)."""

    name: str
    sent_to: frozenset[int]
    answered: frozenset[int] = frozenset()
    dropped: dict[int, str] = field(default_factory=dict)  # node id -> why
    seconds: float = 0.0
    bytes_down: int = 0
    bytes_up: int = 0
    #: True when this round rode on the previous session's last round trip
    folded: bool = False


@dataclass
class SessionReport:
    """The outcome of one session: the coordinator's result and per-round facts."""

    protocol: str
    session: bytes
    result: CoordinatorResult
    encoder: Quantizer  # a FixedPointEncoder, or Paillier's quantizer
    rounds: list[RoundReport]
    seconds: float

    @property
    def round_trips(self) -> int:
        """Message round trips this session took (a folded first round is free)."""
        return sum(1 for r in self.rounds if not r.folded)

    def mean(self) -> Any:
        """The float sum of the included updates decoded, divided by their count."""
        n = len(self.result.included)
        return self.encoder.decode(self.result.raw_sum, n) / n

    def sum(self) -> Any:
        """The float sum of the included updates."""
        return self.encoder.decode(self.result.raw_sum, len(self.result.included))


def _group(envelopes: Iterable[Envelope]) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    for env in envelopes:
        r = env.receiver
        if isinstance(r, bool) or not isinstance(r, int):
            raise ParameterError(
                f"the Flower transport carries messages to client ids only, not to {r!r} "
                "(run auxiliary parties such as a key holder elsewhere)")
        out.setdefault(r, []).append(env.message)
    return out


@dataclass
class _Prepared:
    """A session set up on the server: its parties, ids and the bytes nodes need."""

    descriptor: ProtocolDescriptor
    session: Session
    ids: list[int]
    session_id: bytes
    codec: Any
    config_bytes: bytes
    encoder: Quantizer
    enc_fields: tuple[float, ...]
    pending: list[Envelope]
    # filled when the session's first round rode on the previous session's last one
    started: RoundReport | None = None


def _prepare(descriptor: ProtocolDescriptor, ids: list[int], dimension: int,
             session: Session | None, params: Mapping[str, Any]) -> _Prepared:
    if descriptor.name == "paillier":
        # hook: Paillier runs its threshold layout only, from pre-dealt public material
        # (protocols/flower/paillier.py); the other layouts are refused before any key work
        from .paillier import flower_session

        session = flower_session(descriptor, ids, dimension, session, params)
    elif session is None:
        session = descriptor.make_session(ids, dimension, **params)
    elif params:
        raise ParameterError(f"give session parameters {sorted(params)} or a session, not both")
    # client parties built here are not used: the real ones live on the nodes
    session.clients.clear()
    if session.others:
        # e.g. Paillier's key holder or threshold dealer: they hold the private key, so
        # they cannot run inside the ServerApp, and Flower addresses nodes only by id
        roles = sorted(session.others)
        session.others.clear()
        raise ParameterError(
            f"protocol {descriptor.name!r} needs auxiliary parties {roles} that the Flower "
            "transport cannot address (it carries messages between the server and node ids "
            "only; running them in the ServerApp would hand the aggregator their secrets)")
    encoder = session.encoder
    # hook: encode_encoder ships a FixedPointEncoder or Paillier's quantizer as 4 fields
    # (anything else is refused there); the codec takes the session's codec options
    return _Prepared(
        descriptor, session, ids, secrets.token_bytes(16),
        descriptor.codec(session.config, **session.codec_options),
        descriptor.config_to_bytes(session.config), encoder,
        tuple(encode_encoder(encoder)), list(session.coordinator.start()))


def _feed(prep: _Prepared, node: int, payloads: Iterable[bytes]) -> str | None:
    """Decode ``node``'s messages for ``prep`` and hand them to its coordinator;
    why the node is refused, or None."""
    coord = prep.session.coordinator
    try:
        msgs = [prep.codec.decode(p) for p in payloads]
    except SecAggError as exc:
        return f"undecodable reply: {exc}"
    for m in msgs:
        sender = getattr(m, "sender", None)
        if sender != node:
            return f"node {node} sent a message as {sender!r}"
        if getattr(m, "receiver", SERVER) != SERVER:
            return f"node {node} sent a message for {getattr(m, 'receiver', None)!r}"
    for m in msgs:
        try:
            prep.pending += coord.handle(m)
        except SecAggError as exc:
            if coord.round is None:
                raise
            return f"the coordinator refused its message: {exc}"
    return None


class SecureAggregator:
    """Runs sessions of one protocol over a Grid, one after another.

    With ``fold=True`` (the default) each session's last round also carries
    the start of the next session to the nodes that are in it, and their
    replies carry its first round (key advertisement), so a run of sessions
    needs one round trip less per session after the first. The next session
    is built when the current one reaches its last round, for the nodes that
    round goes to; :meth:`aggregate` uses it when asked for the same nodes.

    Arguments as :func:`run_session`.
    """

    def __init__(self, grid: Grid, descriptor: ProtocolDescriptor, dimension: int, *,
                 round_timeout: float = 30.0, input_round_timeout: float | None = None,
                 poll_interval: float = 0.05, fold: bool = True,
                 on_round: Callable[[str, frozenset[int]], None] | None = None,
                 **params: Any) -> None:
        if not 0.5 <= round_timeout <= 3600:
            raise ParameterError(f"round_timeout={round_timeout} s is outside 0.5..3600")
        if input_round_timeout is None:
            input_round_timeout = round_timeout
        if not 0.5 <= input_round_timeout <= 24 * 3600:
            raise ParameterError(
                f"input_round_timeout={input_round_timeout} s is outside 0.5..86400")
        if not 0.005 <= poll_interval <= 5:
            raise ParameterError(f"poll_interval={poll_interval} s is outside 0.005..5")
        self.grid, self.descriptor, self.dimension = grid, descriptor, dimension
        self.round_timeout, self.input_round_timeout = round_timeout, input_round_timeout
        self.poll_interval, self.fold, self.on_round = poll_interval, fold, on_round
        if descriptor.name == "paillier":
            # hook: a Paillier session's first round is its input round, so no round
            # can ride on the previous session's last one (protocols/flower/paillier.py)
            self.fold = False
        self.params = params
        self._next: _Prepared | None = None

    def aggregate(self, node_ids: Iterable[int], *, train_content: RecordDict | None = None,
                  group_id: str = "", session: Session | None = None) -> SessionReport:
        """One session with ``node_ids`` as clients (see :func:`run_session`)."""
        start_time = time.monotonic()
        ids = list(check_client_ids(node_ids))
        prep = self._next
        self._next = None
        if prep is None or prep.ids != ids or session is not None:
            prep = _prepare(self.descriptor, ids, self.dimension, session, self.params)
        reports: list[RoundReport] = []
        try:
            self._run(prep, reports, train_content, group_id)
        except AbortError as exc:
            self._next = None
            raise SessionAborted(
                f"{exc} (dropouts: " + "; ".join(
                    f"{r.name}: {k}: {v}" for r in reports for k, v in r.dropped.items())[:2000]
                + ")", reports) from exc
        result = prep.session.coordinator.result
        if result is None:  # pragma: no cover - the loop ends only with a result
            raise ParameterError("the coordinator finished without a result")
        return SessionReport(self.descriptor.name, prep.session_id, result, prep.encoder,
                             reports, time.monotonic() - start_time)

    def _run(self, prep: _Prepared, reports: list[RoundReport],
             train_content: RecordDict | None, group_id: str) -> None:
        descriptor, coord = self.descriptor, prep.session.coordinator
        rounds = tuple(prep.session.rounds) or descriptor.rounds
        alive = set(prep.ids)
        first = True
        if prep.started is not None:
            # the first round already ran inside the previous session's last round trip
            reports.append(prep.started)
            first = False
            alive -= set(prep.started.dropped)
            if coord.round == prep.started.name:
                prep.pending += coord.close_round()
        while coord.round is not None:
            rnd = coord.round
            by_node = _group(prep.pending)
            prep.pending = []
            targets = sorted(alive) if first else sorted(set(by_node) & alive)
            report = RoundReport(rnd, frozenset(targets))
            reports.append(report)
            last = rnd == rounds[-1]
            nxt = (_prepare(descriptor, targets, self.dimension, None, self.params)
                   if last and self.fold and targets else None)
            nxt_report = RoundReport(nxt.session.coordinator.round or "", frozenset(targets),
                                     folded=True) if nxt is not None else None
            if self.on_round is not None:
                self.on_round(rnd, frozenset(targets))
            t0 = time.monotonic()
            limit = self.input_round_timeout if rnd == descriptor.input_round \
                else self.round_timeout
            messages = []
            for node in targets:
                content = RecordDict()
                if rnd == descriptor.input_round and train_content is not None:
                    for key, rec in train_content.items():
                        content[key] = rec
                packet = Packet(
                    session=prep.session_id, protocol=descriptor.name, round=rnd,
                    payloads=tuple(prep.codec.encode(m) for m in by_node.get(node, [])),
                    config=prep.config_bytes if first else None,
                    encoder=prep.enc_fields if first else None,
                    next_session=nxt.session_id if nxt else None,
                    next_config=nxt.config_bytes if nxt else None,
                    next_encoder=nxt.enc_fields if nxt else None)
                report.bytes_down += sum(len(p) for p in packet.payloads)
                content[RECORD] = packet.to_record()
                messages.append(Message(content, dst_node_id=node, message_type=MESSAGE_TYPE,
                                        ttl=limit, group_id=group_id))
            first = False
            ids_out = list(self.grid.push_messages(messages))
            waiting: dict[str, int] = {}
            for i, node in enumerate(targets):
                mid = ids_out[i] if i < len(ids_out) else None
                if mid:
                    waiting[mid] = node
                else:
                    report.dropped[node] = "the SuperLink refused the message"
            answered: set[int] = set()
            deadline = t0 + limit
            while waiting and (coord.round == rnd or nxt is not None):
                for reply in self.grid.pull_messages(list(waiting)):
                    mid = reply.metadata.reply_to_message_id
                    if mid not in waiting:
                        continue  # not ours, or already handled
                    node = waiting.pop(mid)
                    why = _accept(reply, node, prep.session_id, descriptor)
                    if isinstance(why, str):
                        report.dropped[node] = why
                        continue
                    report.bytes_up += sum(len(p) for p in why.payloads)
                    if coord.round == rnd:  # else: a straggler, only its next-session part counts
                        refused = _feed(prep, node, why.payloads)
                        if refused is not None:
                            report.dropped[node] = refused
                            continue
                        answered.add(node)
                    if nxt is not None and nxt_report is not None:
                        self._feed_next(nxt, nxt_report, node, why)
                if not waiting or (coord.round != rnd and nxt is None):
                    break
                now = time.monotonic()
                if now >= deadline:
                    for node in waiting.values():
                        report.dropped[node] = f"no reply within {limit} s"
                    break
                time.sleep(min(self.poll_interval, max(0.0, deadline - now)))
            if coord.round == rnd:
                prep.pending += coord.close_round()
            report.answered = frozenset(answered)
            report.seconds = time.monotonic() - t0
            alive -= set(report.dropped)
            alive -= set(targets) - answered
            if nxt is not None and nxt_report is not None:
                for node in set(targets) - nxt_report.answered:
                    nxt_report.dropped.setdefault(node, "did not start the next session")
                nxt_report.seconds = report.seconds
                nxt.started = nxt_report
                self._next = nxt

    @staticmethod
    def _feed_next(nxt: _Prepared, rep: RoundReport, node: int, packet: Packet) -> None:
        if packet.next_session != nxt.session_id:
            rep.dropped[node] = "did not start the next session"
            return
        rep.bytes_up += sum(len(p) for p in packet.next_payloads)
        try:
            why = _feed(nxt, node, packet.next_payloads)
        except AbortError:
            why = "the next session aborted"
        if why is None:
            rep.answered = rep.answered | {node}
        else:
            rep.dropped[node] = why


def run_session(
    grid: Grid,
    descriptor: ProtocolDescriptor,
    node_ids: Iterable[int],
    dimension: int,
    *,
    round_timeout: float = 30.0,
    input_round_timeout: float | None = None,
    poll_interval: float = 0.05,
    train_content: RecordDict | None = None,
    group_id: str = "",
    on_round: Callable[[str, frozenset[int]], None] | None = None,
    session: Session | None = None,
    **params: Any,
) -> SessionReport:
    """Run one session of ``descriptor`` over ``grid`` with ``node_ids`` as clients.

    Args:
        grid: the ServerApp's Grid (or any object with ``push_messages``,
            ``pull_messages``).
        descriptor: the protocol (``SECAGG``, ``SECAGG_PLUS``, ...).
        node_ids: Flower node ids; each is the client id of its node.
        dimension: length of every node's update vector.
        round_timeout: seconds each round waits for replies (0.5..3600); also
            the TTL of every message.
        input_round_timeout: the input round's deadline (local training runs
            in it); default ``round_timeout``.
        poll_interval: seconds between pulls (0.005..5).
        train_content: records handed to each node's train function at the
            input round (the global model, its config).
        on_round: called with the round name and its recipients before each
            round's messages are pushed (progress display, fault injection).
        session: a session built elsewhere for exactly ``node_ids`` and
            ``dimension`` (e.g. :func:`protocols.flower.identity.malicious_session`);
            default ``descriptor.make_session(node_ids, dimension, **params)``.
        params: the descriptor's session parameters (threshold, mode, encoder...).

    Raises :class:`SessionAborted` (an :class:`~secagg.errors.AbortError`)
    when too few nodes remain. For a run of sessions with one round trip less
    each, use :class:`SecureAggregator`.
    """
    agg = SecureAggregator(grid, descriptor, dimension, round_timeout=round_timeout,
                           input_round_timeout=input_round_timeout,
                           poll_interval=poll_interval, fold=False, on_round=on_round,
                           **params)
    return agg.aggregate(node_ids, train_content=train_content, group_id=group_id,
                         session=session)


def _accept(reply: Message, node: int, session_id: bytes,
            descriptor: ProtocolDescriptor) -> str | Packet:
    """``node``'s reply packet, or why the node counts as dropped."""
    if reply.has_error():  # from the node (code 2, ...) or the SuperLink (code 5, ...)
        err = reply.error
        return f"error reply (code {err.code}): {err.reason}"[:500]
    if reply.metadata.src_node_id != node:
        return f"a reply for node {node} came from node {reply.metadata.src_node_id}"
    try:
        packet = Packet.from_content(reply.content)
    except SecAggError as exc:
        return f"undecodable reply: {exc}"
    if packet is None:
        return "the reply holds no transport record"
    if packet.session != session_id or packet.protocol != descriptor.name:
        return "the reply belongs to another session or protocol"
    return packet


def nodes_ready(grid: Grid, count: int, *, timeout: float = 60.0,
                poll_interval: float = 0.2) -> list[int]:
    """Wait (at most ``timeout`` s) until ``count`` nodes are connected; their ids."""
    deadline = time.monotonic() + timeout
    while True:
        ids = sorted(int(i) for i in grid.get_node_ids())
        if len(ids) >= count:
            return ids
        if time.monotonic() > deadline:
            raise ParameterError(f"only {len(ids)} of {count} nodes connected within "
                                 f"{timeout} s")
        time.sleep(poll_interval)


