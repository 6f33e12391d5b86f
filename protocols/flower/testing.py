"""An in-process stand-in for Flower's Grid, for testing the transport without processes.

:class:`FakeGrid` keeps a ClientApp per node and delivers each pushed message
when it is pulled, like a SuperLink would: the node's ``context.state`` is
serialized with Flower's own record serialization after every message and
rebuilt before the next (each message runs as in a fresh ClientApp process).
Faults are scripted per node and round (the round of the message's first
section: the session driving that round trip; ``skip`` lets that many
matching messages through first): ``drop`` (no reply), ``error`` (an
error reply, code 5 as from the SuperLink), ``late`` (the reply is held back
and handed out with the first pull of a later round, whatever ids that pull
asks for), ``restart`` (the node's ClientApp object is rebuilt; only its
serialized state survives) and ``wipe`` (the node loses its saved state).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flwr.app import Context, Error, Message, RecordDict
from flwr.common.constant import ErrorCode
from flwr.common.serde import recorddict_from_proto, recorddict_to_proto
from flwr.proto.recorddict_pb2 import RecordDict as ProtoRecordDict
from flwr.supercore.task_identity import TaskIdentity

__all__ = ["FakeGrid", "Fault"]

ClientCallable = Callable[[Message, Context], Message]


@dataclass
class Fault:
    """What node ``node`` does with its message of round ``round``."""

    node: int
    round: str
    kind: str  # drop | error | late | restart | wipe
    times: int = -1  # how many times it applies (-1: every time)
    skip: int = 0  # matching messages let through before it applies


@dataclass
class FakeGrid:
    """Nodes ``app_for(node_id)`` behind a Grid-like API (see module docstring)."""

    app_for: Callable[[int], ClientCallable]
    node_ids: list[int]
    faults: list[Fault] = field(default_factory=list)
    node_config: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    run_config: Mapping[str, Any] = field(default_factory=dict)
    run_id: int = 7
    _state: dict[int, bytes] = field(default_factory=dict)
    _queue: dict[str, Message] = field(default_factory=dict)
    _late: list[tuple[int, Message]] = field(default_factory=list)
    _counter: int = 0
    log: list[tuple[int, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        TaskIdentity.run_id = self.run_id
        TaskIdentity.node_id = 1
        TaskIdentity.task_id = 1
        self._apps = {n: self.app_for(n) for n in self.node_ids}

    def get_node_ids(self) -> Iterable[int]:
        return list(self.node_ids)

    def _fault(self, node: int, rnd: str) -> Fault | None:
        for f in self.faults:
            if f.node == node and f.round == rnd and f.times != 0:
                if f.skip > 0:
                    f.skip -= 1
                    continue
                if f.times > 0:
                    f.times -= 1
                return f
        return None

    def _context(self, node: int) -> Context:
        state = RecordDict()
        if node in self._state:
            proto = ProtoRecordDict()
            proto.ParseFromString(self._state[node])
            state = recorddict_from_proto(proto)
        return Context(self.run_id, node, dict(self.node_config.get(node, {})), state,
                       dict(self.run_config))

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for msg in messages:
            self._counter += 1
            mid = f"m{self._counter}"
            msg.metadata.__dict__["_message_id"] = mid
            msg.metadata.__dict__["_src_node_id"] = 1
            self._queue[mid] = msg
            ids.append(mid)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        message_ids = list(message_ids)
        # a misbehaving relay: a late reply shows up in the first pull that asks only
        # for messages pushed after it (the next round), whatever ids it asks for
        out: list[Message] = []
        if message_ids and self._late:
            oldest = min(int(m[1:]) for m in message_ids if m.startswith("m"))
            out = [r for n, r in self._late if n < oldest]
            self._late = [(n, r) for n, r in self._late if n >= oldest]
        for mid in message_ids:
            msg = self._queue.pop(mid, None)
            if msg is None:
                continue
            reply = self._deliver(msg)
            if reply is not None:
                out.append(reply)
        return out

    def _deliver(self, msg: Message) -> Message | None:
        from .wire import Packet

        node = msg.metadata.dst_node_id
        packet = Packet.from_content(msg.content)
        rnd = packet.round if packet else msg.metadata.message_type
        fault = self._fault(node, rnd)
        kind = fault.kind if fault else "ok"
        self.log.append((node, rnd, kind))
        if kind == "drop":
            return None
        if kind == "error":
            return Message(Error(ErrorCode.NODE_UNAVAILABLE, "node unavailable"), reply_to=msg)
        if kind == "restart":
            self._apps[node] = self.app_for(node)
        if kind == "wipe":
            self._state.pop(node, None)
        context = self._context(node)
        try:
            reply = self._apps[node](msg, context)
        except Exception as exc:  # a ClientApp that raised: Flower's code 2
            return Message(Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, repr(exc)[:300]),
                           reply_to=msg)
        self._state[node] = recorddict_to_proto(context.state).SerializeToString()
        if kind == "late":
            self._late.append((self._counter, reply))
            return None
        return reply

    def saved_state(self, node: int) -> RecordDict:
        """The node's serialized ``context.state``, rebuilt."""
        return self._context(node).state
