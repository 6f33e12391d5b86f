"""Run one round of the protocol in process, with injected dropouts.

A thin call of :func:`protocols.simulator.run` with :data:`SECAGG` (complete
graph) or :data:`SECAGG_PLUS`: every message is encoded to bytes by its
sender and decoded by its receiver, exactly as over a network, so the codecs
are exercised and the byte counts are real.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import numpy as np
import numpy.typing as npt

from secagg.encoding import FixedPointEncoder
from secagg.sign import SigningKey

from ..results import AggregationResult
from ..simulator import LocalSecrets, run
from .config import Mode
from .protocol import SECAGG, SECAGG_PLUS, default_encoder

__all__ = ["default_encoder", "simulate"]


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
    workers: int | None = None,
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

    Client ids may be any ints in ``[0, 2^64)``.

    ``workers``: processes the clients run in (None: every core once the
    round is big enough to pay for them, see
    :func:`protocols.simulator.resolve_workers`; 1: all in this process). The
    result does not depend on it: the same seed gives the same included set
    and the same ``raw_sum``. Clients cross into their worker as their saved
    state (and, in malicious mode, their identity key) in bytes.

    Raises :class:`AbortError` when too few clients remain at some round.
    """
    descriptor = SECAGG if neighbors == "complete" else SECAGG_PLUS
    keys: dict[int, SigningKey] | None = None
    if mode == "malicious":
        keys = {int(u): SigningKey.generate() for u in inputs
                if isinstance(u, (int, np.integer)) and not isinstance(u, bool)}
    identity = None if keys is None else LocalSecrets(
        export=lambda u: {"signing_key": keys[u].to_bytes()},
        load=lambda named: {"signing_key": SigningKey.from_bytes(named["signing_key"])})
    return run(descriptor, inputs, dropouts=dropouts, seed=seed, threshold=threshold,
               neighbors=None if neighbors == "complete" else neighbors, mode=mode,
               encoder=encoder, dropout_fraction=dropout_fraction,
               corrupt_fraction=corrupt_fraction, workers=workers,
               local_secrets=identity, signing_keys=keys)
