"""Run one round of the protocol in process, with injected dropouts.

Every message is encoded to bytes by its sender and decoded by its receiver,
exactly as over a network, so the codecs are exercised and the byte counts
are real. Compute time is measured around each party's work (decode, handle,
encode) with :func:`time.perf_counter`; the parties themselves own no clock.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Hashable, Iterable, Mapping
from typing import Literal

import numpy as np
import numpy.typing as npt

from secagg.encoding import FixedPointEncoder
from secagg.errors import ParameterError, ProtocolError
from secagg.sign import SigningKey

from ..results import AggregationResult, PartyFigures
from .client import SecAggClient
from .config import ROUNDS, Mode, SecAggConfig
from .messages import decode, encode
from .server import SecAggServer

__all__ = ["default_encoder", "simulate"]


def default_encoder(n_clients: int, clip: float = 4.0) -> FixedPointEncoder:
    """The encoder :func:`simulate` uses unless given one.

    Values are clipped to ``[-clip, clip]`` (default 4.0, ample for model
    updates and gradients after the usual norm clipping) and encoded mod 2^32
    with ``frac_bits = min(24, 30 - ceil(log2(clip * n_clients)))``, so the sum
    of ``n_clients`` inputs never wraps. With 1,000 clients that is 18
    fractional bits (a resolution of about 4e-6 per client).
    """
    if n_clients < 1:
        raise ParameterError(f"n_clients must be >= 1, got {n_clients}")
    frac_bits = min(24, 30 - math.ceil(math.log2(clip * n_clients)))
    if frac_bits < 0:
        raise ParameterError(f"{n_clients} clients at clip {clip} do not fit 32 bits")
    return FixedPointEncoder(clip=clip, frac_bits=frac_bits, max_summands=n_clients,
                             modulus_bits=32)


def _seeds(seed: int | None) -> tuple[int | None, bytes | None]:
    if seed is None:
        return None, None
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise ParameterError(f"seed must be an int in [0, 2^64), got {seed!r}")
    base = b"secagg/simulate/v1" + seed.to_bytes(8, "big")
    session = int.from_bytes(hashlib.sha256(base + b"/session").digest()[:8], "big")
    return session, hashlib.sha256(base + b"/graph").digest()


def simulate(
    inputs: Mapping[int, npt.ArrayLike],
    *,
    threshold: int | None = None,
    neighbors: int | Literal["complete"] | None = None,
    dropouts: Mapping[str, Iterable[int]] | None = None,
    mode: Mode = "semi-honest",
    seed: int | None = None,
    encoder: FixedPointEncoder | None = None,
    dropout_fraction: float = 0.1,
    corrupt_fraction: float = 0.05,
) -> AggregationResult:
    """Securely sum ``inputs`` (client id -> 1-D float vector) in one simulated round.

    Args:
        threshold: Shamir threshold t; derived by default (see ``config``).
        neighbors: SecAgg+ degree k (even; ``>= n - 1`` means complete),
            ``"complete"`` for Bonawitz's complete graph, or None to derive it
            from ``n``, ``dropout_fraction`` and ``corrupt_fraction``.
        dropouts: round name -> clients that vanish before sending in that
            round (and never come back). Round names: ``"advertise"``,
            ``"share_keys"``, ``"masked_input"``, ``"consistency"`` (malicious
            mode only) and ``"unmask"``.
        mode: ``"semi-honest"`` or ``"malicious"`` (identity keys are then
            generated for every client and put in the registry).
        seed: fixes the session id and the public graph seed (never the
            secret keys or masks, which always come from the OS).
        encoder: a :class:`FixedPointEncoder` with a 2^32 or 2^64 modulus;
            default :func:`default_encoder`.

    Returns an :class:`AggregationResult`: the decoded sum over ``included``
    (the clients whose masked inputs the server accepted), the exact sum in
    the integer domain as ``raw_sum``, and per-party figures keyed by client
    id and ``"server"`` (compute seconds and bytes per round).

    Raises :class:`AbortError` when too few clients remain at some round.
    """
    ids = sorted(inputs)
    if len(ids) < 2:
        raise ParameterError(f"need at least 2 clients, got {len(ids)}")
    vectors = {u: np.asarray(inputs[u]) for u in ids}
    dims = {v.shape for v in vectors.values()}
    if len(dims) != 1 or len(next(iter(dims))) != 1:
        raise ParameterError(f"inputs must be 1-D vectors of one length, got shapes "
                             f"{sorted(dims)}")
    dimension = next(iter(dims))[0]
    enc = default_encoder(len(ids)) if encoder is None else encoder
    if not isinstance(enc, FixedPointEncoder) or not enc.power_of_two:
        raise ParameterError("encoder must be a FixedPointEncoder with a 2^32 or 2^64 modulus")
    if enc.max_summands < len(ids):
        raise ParameterError(f"encoder allows {enc.max_summands} summands, there are "
                             f"{len(ids)} clients")
    encoded = {u: enc.encode(vectors[u]) for u in ids}

    session_id, graph_seed = _seeds(seed)
    signing: dict[int, SigningKey] = {}
    if mode == "malicious":
        signing = {u: SigningKey.generate() for u in ids}
    config = SecAggConfig.create(
        ids, dimension, threshold=threshold, degree=neighbors, mode=mode,
        dropout_fraction=dropout_fraction, corrupt_fraction=corrupt_fraction,
        modulus_bits=enc.modulus_bits, session_id=session_id, graph_seed=graph_seed,
        registry={u: k.verify_key() for u, k in signing.items()} if signing else None,
    )
    rounds = [r for r in ROUNDS if r != "consistency" or mode == "malicious"]
    drop: dict[str, frozenset[int]] = {}
    for rnd, who in (dropouts or {}).items():
        if rnd not in rounds:
            raise ParameterError(f"unknown round {rnd!r} for the {mode} mode; rounds: {rounds}")
        drop[rnd] = frozenset(who)
        if not drop[rnd] <= set(ids):
            raise ParameterError(f"dropouts[{rnd!r}] names unknown clients "
                                 f"{sorted(drop[rnd] - set(ids))}")

    figures: dict[Hashable, PartyFigures] = {u: PartyFigures() for u in ids}
    figures["server"] = PartyFigures()
    clients = {u: SecAggClient(config, u, signing_key=signing.get(u), input=encoded[u])
               for u in ids}
    server = SecAggServer(config)
    gone: set[int] = set()

    outbox: list[tuple[int, bytes]] = []

    def run_server(rnd: str, data: bytes | None) -> None:
        """Deliver ``data`` to the server (or close its round when None)."""
        t0 = time.perf_counter()
        if data is None:
            msgs = server.close_round()
        else:
            figures["server"].add_received(rnd, len(data))
            msgs = server.handle(decode(data, config))
        sent = [(m.receiver, m.ROUND, encode(m, config)) for m in msgs]
        figures["server"].add_compute(rnd, time.perf_counter() - t0)
        for receiver, mrnd, out in sent:
            figures["server"].add_sent(mrnd, len(out))
            outbox.append((receiver, out))

    def run_client(u: int, rnd: str, data: bytes | None) -> None:
        """Start client ``u`` (``data`` None) or deliver ``data`` to it."""
        c = clients[u]
        t0 = time.perf_counter()
        msgs = c.start() if data is None else c.handle(decode(data, config))
        replies = [encode(m, config) for m in msgs]
        figures[u].add_compute(rnd, time.perf_counter() - t0)
        for out in replies:
            figures[u].add_sent(rnd, len(out))
            run_server(rnd, out)

    for rnd in rounds:
        gone |= drop.get(rnd, frozenset())
        if rnd == "advertise":
            for u in ids:
                if u not in gone:
                    run_client(u, rnd, None)
        else:
            inbox, outbox[:] = list(outbox), []
            for u, data in inbox:
                figures[u].add_received(rnd, len(data))
                if u not in gone:
                    run_client(u, rnd, data)
        if server.round == rnd:
            run_server(rnd, None)
    result = server.result
    if result is None:  # pragma: no cover - close_round either finishes or raises
        raise ProtocolError("the server finished without a result")
    total = enc.decode(result.raw_sum, len(result.included))
    return AggregationResult(sum=total, included=result.included,
                             dropped=frozenset(ids) - result.included,
                             raw_sum=result.raw_sum, figures=figures)
