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
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from secagg.errors import AbortError, ParameterError

from .core import SERVER, Address, Envelope, ProtocolDescriptor, check_client_ids, check_rounds
from .results import AggregationResult, PartyFigures

__all__ = ["run"]


def _vectors(inputs: Mapping[int, npt.ArrayLike]) -> tuple[tuple[int, ...], dict[int, Any], int]:
    ids = check_client_ids(inputs)
    if not ids:
        raise ParameterError("inputs must hold at least one client")
    vectors = {u: np.asarray(inputs[u]) for u in ids}
    dims = {v.shape for v in vectors.values()}
    if len(dims) != 1 or len(next(iter(dims))) != 1:
        raise ParameterError(f"inputs must be 1-D vectors of one length, got shapes "
                             f"{sorted(dims)}")
    return ids, vectors, next(iter(dims))[0]


def run(
    descriptor: ProtocolDescriptor,
    inputs: Mapping[int, npt.ArrayLike],
    *,
    dropouts: Mapping[str, Iterable[int]] | None = None,
    seed: int | None = None,
    **params: Any,
) -> AggregationResult:
    """Sum ``inputs`` (client id -> 1-D float vector) with ``descriptor``'s protocol.

    ``params`` go to :meth:`~protocols.core.ProtocolDescriptor.make_session`.
    Returns the decoded sum over the included clients, the exact integer
    ``raw_sum``, who is ``included`` / ``dropped``, and per-party figures
    (keys: client ids, ``"server"`` and any auxiliary role; compute seconds
    and bytes by round name). Raises :class:`~secagg.errors.AbortError` when
    the protocol aborts, and any party's refusal as it is raised.
    """
    ids, vectors, dimension = _vectors(inputs)
    session = descriptor.make_session(ids, dimension, seed=seed, **params)
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

    for u in ids:
        session.clients[u].set_input(session.encoder.encode(vectors[u]))

    figures: dict[Hashable, PartyFigures] = {u: PartyFigures() for u in ids}
    figures[SERVER] = PartyFigures()
    for role in session.others:
        figures[role] = PartyFigures()
    queue: deque[tuple[Address, str, bytes]] = deque()

    def gone(address: Address, rnd: str) -> bool:
        return isinstance(address, int) and order[rnd] >= drop_at.get(address, len(rounds))

    def act(address: Address, rnd: str, work: Any) -> None:
        """Run one party's step (timed) and queue what it sends."""
        t0 = time.perf_counter()
        out: list[Envelope] = work()
        sent = [(e.receiver, descriptor.round_of(e.message), codec.encode(e.message))
                for e in out]
        figures[address].add_compute(rnd, time.perf_counter() - t0)
        for receiver, mrnd, data in sent:
            if gone(address, mrnd):
                continue  # vanished before sending this round's message
            figures[address].add_sent(mrnd, len(data))
            queue.append((receiver, mrnd, data))

    coordinator = session.coordinator
    act(SERVER, rounds[0], coordinator.start)
    for role, party in sorted(session.others.items()):
        act(role, rounds[0], party.start)
    for u in ids:
        client = session.clients[u]
        rnd = client.round or rounds[0]
        if not gone(u, rnd):
            act(u, rnd, client.start)

    while True:
        while queue:
            receiver, rnd, data = queue.popleft()
            if receiver not in figures:
                raise ParameterError(f"a message of round {rnd!r} went to unknown "
                                     f"address {receiver!r}")
            figures[receiver].add_received(rnd, len(data))  # it reached the address
            if gone(receiver, rnd):
                continue
            party = session.party(receiver)
            act(receiver, rnd, lambda p=party, d=data: p.handle(codec.decode(d)))
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
