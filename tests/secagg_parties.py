"""Test helper: SecAgg parties whose verbs return message objects."""

from __future__ import annotations

from typing import Any

from protocols.secagg import Message, SecAggConfig, decode, encode


class MessageParty:
    """A party whose verbs return the message objects of its envelopes (every
    envelope here goes to the message's own ``receiver``)."""

    def __init__(self, party: object) -> None:
        self.party = party

    def __getattr__(self, name: str) -> object:
        return getattr(self.party, name)

    def start(self) -> list[Message]:
        return [e.message for e in self.party.start()]  # type: ignore[attr-defined]

    def handle(self, msg: Message) -> list[Message]:
        return [e.message for e in self.party.handle(msg)]  # type: ignore[attr-defined]

    def close_round(self) -> list[Message]:
        return [e.message for e in self.party.close_round()]  # type: ignore[attr-defined]


class WiredParties:
    """Real clients and a server whose every message crosses the codec as bytes.

    Subclasses set ``cfg``, ``clients`` (id -> :class:`MessageParty`-like) and
    ``server``; tests intercept and forge the messages in between."""

    cfg: SecAggConfig
    clients: dict[int, Any]
    server: Any

    def wire(self, m: Message) -> Message:
        return decode(encode(m, self.cfg), self.cfg)

    def start(self) -> list[Message]:
        out: list[Message] = []
        for c in self.clients.values():
            for m in c.start():
                out += self.server.handle(self.wire(m))
        return out

    def to_clients(self, msgs: list[Message], skip: tuple[int, ...] = ()) -> list[Message]:
        return [r for m in msgs if m.receiver not in skip
                for r in self.clients[m.receiver].handle(self.wire(m))]

    def to_server(self, msgs: list[Message]) -> list[Message]:
        """Hand ``msgs`` to the server; close the round if it is still open
        (someone did not answer: time is up)."""
        out: list[Message] = []
        rnd = self.server.round
        for m in msgs:
            out += self.server.handle(self.wire(m))
        if self.server.round == rnd:
            out += self.server.close_round()
        return out

    def step(self, msgs: list[Message], skip: tuple[int, ...] = ()) -> list[Message]:
        return self.to_server(self.to_clients(msgs, skip))
