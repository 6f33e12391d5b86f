"""The node side: a ClientApp mod that runs this node's client party.

:func:`secure_aggregation_mod` returns a Flower mod. Put it in the
ClientApp's ``mods`` and keep the user's ``@app.train`` function as it is::

    app = ClientApp(mods=[secure_aggregation_mod()])

    @app.train()
    def train(msg, context):
        ...  # local training
        return Message(RecordDict({"arrays": ArrayRecord(update)}), reply_to=msg)

The mod answers every ``query.secagg`` message (see :mod:`protocols.flower.wire`)
and lets every other message through untouched. A message carries a section
for each of one or two sessions (pipelined sessions); per section it

1. on a session's first message: parses the configuration, checks it with
   the node's policy, and creates a fresh client party whose address is this
   node's Flower id (its secrets come from the OS, on the node); a second
   start of a session the node holds is refused;
   otherwise restores the party from ``context.state`` (only for the same
   session id and protocol; the configuration is the one saved at the start,
   never one the server sends later);
2. at the input round (at most one section of a message): gives the
   message's other records to the user's train function, flattens the
   reply's arrays into one float vector, quantizes it and sets it as the
   party's input; the plain update is never put in any message;
3. hands each protocol message to the party and replies with the party's
   outgoing messages in a section of the same session;
4. saves the party's state (its own versioned export) back into
   ``context.state`` under its session id, or deletes it when the party has
   finished. Parties of sessions the message does not name are deleted (the
   server names every session it still runs with the node), so a node holds
   at most two.

A section the party refuses is answered with the reason and no payloads (the
node leaves that session, the other section stands); when every section is
refused the mod raises: Flower answers with an error reply, the saved state is
left as it was, and the server counts this node as a dropout of both.

Security assumption: ``context.state`` holds the party's secrets between
messages; Flower keeps it in the SuperNode's memory and passes it to the
ClientApp process over the node-local runtime API, so the SuperNode's host
must be trusted by the node (it is the node).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from secagg.errors import ParameterError, ProtocolError, SecAggError

from ..core import SERVER, ClientParty, ProtocolDescriptor
from .wire import (
    MAX_ERROR,
    MESSAGE_TYPE,
    RECORD,
    STATE,
    NodeState,
    Packet,
    Section,
    decode_encoder,
    saved_parties,
    state_key,
)

__all__ = [
    "CLIENT_FACTORIES",
    "default_to_vector",
    "secure_aggregation_mod",
    "secure_train",
]

ClientFactory = Callable[..., ClientParty]


def _secagg_client(config: Any, client_id: int, **local_secrets: Any) -> ClientParty:
    from ..secagg import SecAggClient

    party: ClientParty = SecAggClient(config, client_id, **local_secrets)
    return party


#: How a node builds a fresh client party for a configuration it received,
#: by descriptor name: ``factory(config, client_id, **local_secrets)``.
CLIENT_FACTORIES: dict[str, ClientFactory] = {
    "secagg": _secagg_client,
    "secagg+": _secagg_client,
}


def default_to_vector(reply: Message) -> npt.NDArray[np.float64]:
    """Every array of every ArrayRecord of ``reply``, flattened and concatenated
    in record and key order, as float64."""
    if reply.has_error():
        raise ParameterError(f"the train function answered with an error: {reply.error.reason}")
    parts = [np.asarray(arr.numpy(), dtype=np.float64).ravel()
             for rec in reply.content.array_records.values() for arr in rec.values()]
    if not parts:
        raise ParameterError("the train function's reply holds no ArrayRecord")
    return np.concatenate(parts)


def _descriptors(protocols: Iterable[ProtocolDescriptor] | None) -> dict[str, ProtocolDescriptor]:
    if protocols is None:
        from ..secagg import SECAGG, SECAGG_PLUS

        protocols = (SECAGG, SECAGG_PLUS)
    return {d.name: d for d in protocols}


def secure_aggregation_mod(
    protocols: Iterable[ProtocolDescriptor] | None = None,
    *,
    to_vector: Callable[[Message], npt.NDArray[np.floating[Any]]] = default_to_vector,
    policy: Callable[[ProtocolDescriptor, Any, Context], None] | None = None,
    local_secrets: Callable[[ProtocolDescriptor, Any, Context], Mapping[str, Any]] | None = None,
    factories: Mapping[str, ClientFactory] | None = None,
) -> Callable[[Message, Context, Callable[[Message, Context], Message]], Message]:
    """A Flower mod that runs this node's party of any accepted protocol.

    Args:
        protocols: descriptors this node takes part in (default SecAgg and
            SecAgg+); a session of any other protocol is refused.
        to_vector: turns the train function's reply into the float update.
        policy: ``policy(descriptor, config, context)`` raises a
            :class:`~secagg.errors.SecAggError` to refuse a configuration
            (minimum number of clients, threshold, mode...).
        local_secrets: ``local_secrets(descriptor, config, context)`` gives
            keyword secrets for the party (``signing_key`` in malicious mode),
            read on the node, never sent by the server.
        factories: extra fresh-party factories by protocol name.
    """
    accepted = _descriptors(protocols)
    makers = dict(CLIENT_FACTORIES)
    makers.update(factories or {})

    def mod(msg: Message, context: Context,
            call_next: Callable[[Message, Context], Message]) -> Message:
        if msg.metadata.message_type != MESSAGE_TYPE:
            return call_next(msg, context)
        packet = Packet.from_content(msg.content)
        if packet is None:
            raise ProtocolError(f"a {MESSAGE_TYPE} message without the {RECORD!r} record")
        descriptor = accepted.get(packet.protocol)
        if descriptor is None:
            raise ProtocolError(f"protocol {packet.protocol!r} is not one of {sorted(accepted)}")
        me = int(context.node_id)
        secrets_for: Callable[[Any], Mapping[str, Any]] = (
            (lambda cfg: local_secrets(descriptor, cfg, context)) if local_secrets
            else (lambda cfg: {}))

        def fresh(config_bytes: bytes | None,
                  enc: tuple[float, ...] | None) -> tuple[ClientParty, Any, Any, list[Any]]:
            if config_bytes is None or enc is None:
                raise ProtocolError("a session's first message carries no configuration "
                                    "or encoder")
            config = descriptor.config_from_bytes(config_bytes)
            if policy is not None:
                policy(descriptor, config, context)
            encoder = decode_encoder(enc)
            if descriptor.name == "paillier":
                from .paillier import check_relayed_quantizer

                check_relayed_quantizer(config, encoder)
            maker = makers.get(descriptor.name)
            if maker is None:
                raise ProtocolError(f"no way to start a fresh {descriptor.name!r} party here")
            party = maker(config, me, **secrets_for(config))
            if party.address != me:
                raise ProtocolError(f"party address {party.address} is not this node {me}")
            return party, config, encoder, list(party.start())

        try:
            saved = saved_parties(context.state)
        except ProtocolError:
            # unreadable records restore no party (those sessions are refused); they are
            # wiped below once any section of this message succeeds, e.g. a fresh start
            saved = {}
        if sum(1 for sec in packet.sections if sec.round == descriptor.input_round) > 1:
            raise ProtocolError("one message names the input round of two sessions")
        if any(sec.error is not None for sec in packet.sections):
            raise ProtocolError("a refusal reason in a message to a node (replies only)")

        def step(sec: Section) -> tuple[Section, NodeState | None]:
            """Run one session's section; the reply section and the party to keep."""
            if sec.config is not None:
                if sec.session in saved:
                    raise ProtocolError(f"session {sec.session.hex()} already started on "
                                        "this node; a second start is refused")
                if any(st.config == sec.config for st in saved.values()) or any(
                        o is not sec and o.config == sec.config for o in packet.sections):
                    raise ProtocolError("a new session with the configuration of a live one "
                                        "is refused (every session needs its own)")
                party, config, encoder, out = fresh(sec.config, sec.encoder)
                state_cfg, enc_fields = sec.config, tuple(sec.encoder or ())
            else:
                st = saved.get(sec.session)
                if st is None:
                    raise ProtocolError(f"no saved party for session {sec.session.hex()}: the "
                                        "message belongs to another session, or the node lost "
                                        "its state")
                if st.protocol != descriptor.name:
                    raise ProtocolError(f"the saved party of session {sec.session.hex()} runs "
                                        f"{st.protocol!r}, the message {descriptor.name!r}")
                config = descriptor.config_from_bytes(st.config)
                encoder = decode_encoder(st.encoder)
                party = descriptor.restore_client(config, st.party, **secrets_for(config))
                state_cfg, enc_fields = st.config, st.encoder
                out = []
            if party.address != me:
                raise ProtocolError(f"party address {party.address} is not this node {me}")
            codec = descriptor.codec(config)
            inbound = [codec.decode(payload) for payload in sec.payloads]
            for m in inbound:
                if getattr(m, "sender", None) != SERVER:
                    raise ProtocolError(f"a relayed message from {getattr(m, 'sender', None)!r}; "
                                        "only the server speaks to this node")
            if sec.round == descriptor.input_round:
                # train only for a party that waits for its input and a request that
                # decodes: the round label alone is the server's word
                if sec.config is not None and out:
                    raise ProtocolError(f"a session cannot start in its input round "
                                        f"{sec.round!r}: its party speaks first")
                if sec.config is None and party.round != descriptor.input_round:
                    raise ProtocolError(f"the server names the input round {sec.round!r}, but "
                                        f"this session's party is at {party.round!r}")
                if not inbound:
                    raise ProtocolError("an input round message without the request")
                train = _train_message(msg)
                update = np.asarray(to_vector(call_next(train, context)), dtype=np.float64)
                party.set_input(encoder.encode(update))
            for m in inbound:
                out += party.handle(m)
            _to_server(out)
            answer = Section(sec.session, sec.round, tuple(codec.encode(e.message) for e in out))
            if party.round is None:
                return answer, None
            return answer, NodeState(sec.session, descriptor.name, state_cfg, enc_fields,
                                     party.export_state())

        # each session on its own: a section this node refuses leaves it out of that
        # session only (the reply says why); when it refuses every section the message
        # fails (an error reply) and the saved parties stay as they were
        answers: list[Section] = []
        keep: list[NodeState] = []
        refused: list[SecAggError] = []
        for sec in packet.sections:
            try:
                answer, state = step(sec)
            except SecAggError as exc:
                refused.append(exc)
                why = f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
                answers.append(Section(sec.session, sec.round, (), error=why))
                continue
            answers.append(answer)
            if state is not None:
                keep.append(state)
        if len(refused) == len(packet.sections):
            raise refused[0]
        # the server names every session it still runs with this node: the parties of
        # the others (finished, abandoned, or refused above) are wiped
        _wipe(context)
        for state in keep:
            context.state[state_key(state.session)] = state.to_record()
        reply = Packet(descriptor.name, tuple(answers))
        return Message(RecordDict({RECORD: reply.to_record()}), reply_to=msg)

    return mod


def secure_train(app: ClientApp, train: Callable[[Message, Context], Message],
                 **options: Any) -> None:
    """Register ``train`` wrapped by :func:`secure_aggregation_mod` as ``app``'s
    ``query.secagg`` handler; ``options`` go to the mod."""
    app.query(MESSAGE_TYPE.split(".", 1)[1], mods=[secure_aggregation_mod(**options)])(train)


def _train_message(msg: Message) -> Message:
    """The incoming message's other records, as a ``train`` message."""
    content = RecordDict()
    for key, rec in msg.content.items():
        if key != RECORD:
            content[key] = rec
    meta = copy.copy(msg.metadata)
    meta.__dict__ = dict(msg.metadata.__dict__)
    meta.message_type = "train"
    # the metadata/content constructor is Flower's own (not in its public overloads)
    return Message(metadata=meta, content=content)  # type: ignore[call-overload]


def _to_server(out: Iterable[Any]) -> None:
    for env in out:
        if env.receiver != SERVER:
            raise ProtocolError(f"the party addressed {env.receiver!r}; this transport "
                                "carries client messages to the server only")


def _wipe(context: Context) -> None:
    """Delete every saved party of this node (and a record of an older layout)."""
    for key in [k for k in context.state.config_records
                if k == STATE or k.startswith(STATE + ".")]:
        del context.state[key]


def state_records(context: Context) -> dict[str, ConfigRecord]:
    """The saved party records of ``context`` by name (for tests and inspection)."""
    return {k: v for k, v in context.state.config_records.items()
            if k == STATE or k.startswith(STATE + ".")}


def arrays_of(vector: npt.NDArray[np.float64]) -> ArrayRecord:
    """``vector`` as an ArrayRecord with one array (convenience)."""
    return ArrayRecord([np.asarray(vector)])
