"""Test helper: SecAgg parties whose verbs return message objects."""

from __future__ import annotations

from protocols.secagg import Message


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
