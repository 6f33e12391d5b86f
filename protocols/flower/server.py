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

:class:`SecureAggregator` runs sessions back to back and pipelines them:
the next session's rounds before the input round ride on the current
session's last round trips, so one Flower message carries a section of each
of two sessions (each decoded with its own session's codec, bound to its
configuration digest, so a message of one session replayed into the other
is refused; fixed ``seed`` / ``session_id`` / ``graph_seed`` parameters,
which would give every session the same configuration, are refused when
pipelining).

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
from .wire import MESSAGE_TYPE, RECORD, Packet, Section, encode_encoder

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
    #: True when this round rode on the previous session's round trip (not counted
    #: in :attr:`SessionReport.round_trips`: that trip is the previous session's)
    folded: bool = False
    #: why the session aborted when it did in this round, else ""
    aborted: str = ""


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
        """Flower round trips this session drove; its rounds that rode on the previous
        session's round trips (``folded``) are counted there, once."""
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
    #: nodes still in the session (not yet counted as dropouts)
    alive: set[int] = field(default_factory=set)
    #: its first message (configuration and encoder) not yet sent
    first: bool = True
    #: rounds that rode on the previous session's round trips
    started: list[RoundReport] = field(default_factory=list)


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
        tuple(encode_encoder(encoder)), list(session.coordinator.start()), alive=set(ids))


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


@dataclass
class _Leg:
    """One session's part of a round trip: its round, recipients and messages."""

    prep: _Prepared
    round: str
    targets: frozenset[int]
    by_node: dict[int, list[Any]]
    report: RoundReport
    aborted: AbortError | None = None

    @property
    def open(self) -> bool:
        return self.aborted is None and self.prep.session.coordinator.round == self.round


class SecureAggregator:
    """Runs sessions of one protocol over a Grid, one after another, pipelined.

    With ``fold=True`` (the default) the next session runs its rounds before
    the input round (SecAgg: key advertisement and key sharing) inside the
    current session's last round trips, for the same node ids: each round
    trip then carries messages of two sessions (one Flower message per node,
    a section per session, :mod:`protocols.flower.wire`). For SecAgg and
    SecAgg+ in semi-honest mode the next session advertises its keys in the
    current one's masked-input round trip and shares them in its unmask
    round trip, so every :meth:`aggregate` after the first needs 2 round
    trips (the masked input, which needs the model the current sum
    produces, and the unmasking); malicious mode needs 3 (advertise with the
    consistency round, share keys with the unmask round). The next session
    starts as late as that allows: at round index ``max(P, R - P)`` of the
    current one, with ``P`` the rounds before the input round and ``R`` all
    rounds.

    Dropouts: a node that misses a round trip (no reply, an error reply, a
    reply that does not decode) is a dropout of every session the trip
    carried for it; a node that answers one session's section but not the
    other's is a dropout of that other session only. A node that dropped out
    of the current session earlier is still invited to start the next one;
    its deadline (and message TTL) in that round trip is ``round_timeout``
    even when the others train there (``input_round_timeout``), so a node
    that died for good costs each later round at most one round deadline.
    The pipelined session is dropped, and the next :meth:`aggregate` starts
    afresh (the nodes wipe its party when the next message does not name
    it), when the current session aborts, when the pipelined one aborts,
    when :meth:`aggregate` is asked for other node ids, or is given a
    ``session``.

    Args: as :func:`run_session`, plus ``fold`` (``False``: sessions one
    after another, 4 round trips each in semi-honest mode, 5 in malicious)
    and ``session_factory`` (``session_factory(node_ids)`` builds every
    session, e.g. :func:`protocols.flower.identity.malicious_session` with
    its registry; default ``descriptor.make_session(node_ids, dimension,
    **params)``).
    """

    def __init__(self, grid: Grid, descriptor: ProtocolDescriptor, dimension: int, *,
                 round_timeout: float = 30.0, input_round_timeout: float | None = None,
                 poll_interval: float = 0.05, fold: bool = True,
                 on_round: Callable[[str, frozenset[int]], None] | None = None,
                 session_factory: Callable[[list[int]], Session] | None = None,
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
        if session_factory is not None and params:
            raise ParameterError(f"give session parameters {sorted(params)} or a "
                                 "session_factory, not both")
        self.grid, self.descriptor, self.dimension = grid, descriptor, dimension
        self.round_timeout, self.input_round_timeout = round_timeout, input_round_timeout
        self.poll_interval, self.fold, self.on_round = poll_interval, fold, on_round
        if descriptor.name == "paillier":
            # hook: a Paillier session's first round is its input round, so no round
            # can ride on the previous session's last one (protocols/flower/paillier.py)
            self.fold = False
        fixed = sorted(k for k in ("seed", "session_id", "graph_seed") if k in params)
        if self.fold and fixed:
            raise ParameterError(f"session parameters {fixed} would give every pipelined "
                                 "session the same configuration; pass fold=False (or a "
                                 "session_factory that derives them per session)")
        self.session_factory, self.params = session_factory, params
        self._next: _Prepared | None = None

    def _build(self, ids: list[int]) -> _Prepared:
        if self.session_factory is not None:
            return _prepare(self.descriptor, ids, self.dimension,
                            self.session_factory(list(ids)), {})
        return _prepare(self.descriptor, ids, self.dimension, None, self.params)

    def aggregate(self, node_ids: Iterable[int], *, train_content: RecordDict | None = None,
                  group_id: str = "", session: Session | None = None) -> SessionReport:
        """One session with ``node_ids`` as clients (see :func:`run_session`)."""
        start_time = time.monotonic()
        ids = list(check_client_ids(node_ids))
        prep = self._next
        self._next = None
        if prep is None or prep.ids != ids or session is not None:
            prep = (_prepare(self.descriptor, ids, self.dimension, session, {})
                    if session is not None else self._build(ids))
        reports: list[RoundReport] = list(prep.started)
        try:
            self._run(prep, reports, train_content, group_id, pipeline=session is None)
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
             train_content: RecordDict | None, group_id: str, *, pipeline: bool) -> None:
        descriptor, coord = self.descriptor, prep.session.coordinator
        rounds = tuple(prep.session.rounds) or descriptor.rounds
        before = rounds.index(descriptor.input_round) if descriptor.input_round in rounds \
            else 0
        # the next session joins the round trips from this round index on: its rounds
        # before the input round then end with this session (see the class docstring)
        join_at = max(before, len(rounds) - before)
        nxt: _Prepared | None = None
        while coord.round is not None:
            rnd = coord.round
            legs = [self._leg(prep, rnd, folded=False)]
            if (pipeline and self.fold and before > 0 and nxt is None and rnd in rounds
                    and rounds.index(rnd) == join_at and prep.ids):
                nxt = self._build(prep.ids)
            if nxt is not None:
                nround = nxt.session.coordinator.round
                if nround is not None and nround != descriptor.input_round:
                    legs.append(self._leg(nxt, nround, folded=True))
            self._trip(legs, train_content, group_id)
            for leg in legs[1:]:
                nxt_reports = leg.prep.started
                nxt_reports.append(leg.report)
                if leg.aborted is not None:
                    leg.report.aborted = str(leg.aborted)[:500]
                    nxt = None  # dropped: the next aggregate() starts afresh
            main = legs[0]
            reports.append(main.report)
            if main.aborted is not None:
                main.report.aborted = str(main.aborted)[:500]
                raise main.aborted
        if nxt is not None:
            self._next = nxt

    def _leg(self, prep: _Prepared, rnd: str, *, folded: bool) -> _Leg:
        by_node = _group(prep.pending)
        prep.pending = []
        targets = frozenset(prep.alive if prep.first else set(by_node) & prep.alive)
        return _Leg(prep, rnd, targets, by_node, RoundReport(rnd, targets, folded=folded))

    def _trip(self, legs: list[_Leg], train_content: RecordDict | None, group_id: str) -> None:
        """One Flower round trip carrying one round of each leg's session."""
        input_round = self.descriptor.input_round
        main = legs[0]
        nodes = sorted(frozenset().union(*(leg.targets for leg in legs)))
        if self.on_round is not None:
            self.on_round(main.round, frozenset(nodes))
        t0 = time.monotonic()
        # each node's deadline (and message TTL): the input round's for a node that
        # trains in this round trip, else the round deadline (so a node invited only to
        # start the next session costs at most one round deadline)
        limit = {node: self.input_round_timeout if any(
            leg.round == input_round and node in leg.targets for leg in legs)
            else self.round_timeout for node in nodes}
        messages = []
        for node in nodes:
            content = RecordDict()
            if main.round == input_round and node in main.targets and train_content is not None:
                for key, rec in train_content.items():
                    content[key] = rec
            sections = []
            for leg in legs:
                if node not in leg.targets:
                    continue
                prep = leg.prep
                sec = Section(prep.session_id, leg.round,
                              tuple(prep.codec.encode(m) for m in leg.by_node.get(node, [])),
                              config=prep.config_bytes if prep.first else None,
                              encoder=prep.enc_fields if prep.first else None)
                leg.report.bytes_down += sum(len(p) for p in sec.payloads)
                sections.append(sec)
            content[RECORD] = Packet(self.descriptor.name, tuple(sections)).to_record()
            messages.append(Message(content, dst_node_id=node, message_type=MESSAGE_TYPE,
                                    ttl=limit[node], group_id=group_id))
        for leg in legs:
            leg.prep.first = False
        ids_out = list(self.grid.push_messages(messages))
        waiting: dict[str, int] = {}
        for i, node in enumerate(nodes):
            mid = ids_out[i] if i < len(ids_out) else None
            if mid:
                waiting[mid] = node
            else:
                self._drop(legs, node, "the SuperLink refused the message")
        answered: dict[int, set[int]] = {id(leg): set() for leg in legs}
        while waiting and any(leg.open for leg in legs):
            for reply in self.grid.pull_messages(list(waiting)):
                mid = reply.metadata.reply_to_message_id
                if mid not in waiting:
                    continue  # not ours, or already handled (a late reply is never read)
                node = waiting.pop(mid)
                packet = _accept(reply, node, self.descriptor)
                if isinstance(packet, str):
                    self._drop(legs, node, packet)
                    continue
                mine = {leg.prep.session_id for leg in legs if node in leg.targets}
                strangers = {s.session for s in packet.sections} - mine
                if strangers:
                    self._drop(legs, node, "the reply names a session this round trip did not "
                                           "carry for it")
                    continue
                for leg in legs:
                    if node not in leg.targets:
                        continue
                    got = packet.section(leg.prep.session_id)
                    if got is None:
                        leg.report.dropped[node] = "no reply for this session"
                        continue
                    if got.round != leg.round:
                        leg.report.dropped[node] = f"a reply for round {got.round!r}"
                        continue
                    if got.error is not None:
                        leg.report.dropped[node] = f"the node refused the session: {got.error}"
                        continue
                    leg.report.bytes_up += sum(len(p) for p in got.payloads)
                    if not leg.open:
                        continue  # the round closed (or the session aborted) meanwhile
                    try:
                        refused = _feed(leg.prep, node, got.payloads)
                    except AbortError as exc:
                        leg.aborted = exc
                        continue
                    if refused is not None:
                        leg.report.dropped[node] = refused
                        continue
                    answered[id(leg)].add(node)
            if not waiting or not any(leg.open for leg in legs):
                break
            now = time.monotonic()
            for mid, node in list(waiting.items()):
                if now >= t0 + limit[node]:
                    del waiting[mid]
                    self._drop(legs, node, f"no reply within {limit[node]} s")
            if not waiting:
                break
            deadline = t0 + min(limit[node] for node in waiting.values())
            time.sleep(min(self.poll_interval, max(0.0, deadline - now)))
        seconds = time.monotonic() - t0
        for leg in legs:
            if leg.open:
                try:
                    leg.prep.pending += leg.prep.session.coordinator.close_round()
                except AbortError as exc:
                    leg.aborted = exc
            ok = answered[id(leg)]
            leg.report.answered = frozenset(ok)
            leg.report.seconds = seconds
            leg.prep.alive -= set(leg.report.dropped)
            leg.prep.alive -= set(leg.targets) - ok

    @staticmethod
    def _drop(legs: list[_Leg], node: int, why: str) -> None:
        for leg in legs:
            if node in leg.targets:
                leg.report.dropped[node] = why


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
    when too few nodes remain. For a run of sessions pipelined into fewer
    round trips each, use :class:`SecureAggregator`.
    """
    agg = SecureAggregator(grid, descriptor, dimension, round_timeout=round_timeout,
                           input_round_timeout=input_round_timeout,
                           poll_interval=poll_interval, fold=False, on_round=on_round,
                           **params)
    return agg.aggregate(node_ids, train_content=train_content, group_id=group_id,
                         session=session)


def _accept(reply: Message, node: int, descriptor: ProtocolDescriptor) -> str | Packet:
    """``node``'s reply packet, or why the node counts as dropped (for every session
    the round trip carried for it)."""
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
    if packet.protocol != descriptor.name:
        return f"the reply belongs to protocol {packet.protocol!r}"
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


