"""Neighbour graphs of the pairwise-mask protocol, derived from public randomness.

Two shapes:

* the **complete graph** (Bonawitz et al., CCS 2017): every client masks with,
  and shares its secrets among, all other clients;
* a **random Harary graph** ``H(n, k)`` (SecAgg+, Bell et al., CCS 2020): the
  clients are placed on a ring in a uniformly random order and each is joined
  to its ``k/2`` predecessors and ``k/2`` successors, so every client has
  exactly ``k`` neighbours.

The ring order is a function of a public 32-byte seed only (``argsort`` of
``prg.expand(seed, n, uint64)``: a uniform permutation unless two 64-bit keys
collide, which happens with probability below ``n^2 / 2^65``, and then the
stable sort still gives one well-defined order), so every party recomputes the
same graph and can check it. Nothing about the graph is secret.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from secagg import prg
from secagg.errors import ParameterError

__all__ = ["complete_neighbourhoods", "harary_neighbourhoods", "ring_order"]

_RING_LABEL = b"secagg/graph/ring-order/v1"


def ring_order(client_ids: Sequence[int], seed: bytes) -> list[int]:
    """The clients in ring order: a uniformly random permutation fixed by ``seed``."""
    ids = list(client_ids)
    keys = prg.expand(seed, len(ids), np.uint64, _RING_LABEL)
    order = np.argsort(keys, kind="stable")
    return [ids[int(i)] for i in order]


def complete_neighbourhoods(client_ids: Sequence[int]) -> dict[int, frozenset[int]]:
    """Open neighbourhoods of the complete graph: everyone but oneself."""
    everyone = frozenset(client_ids)
    return {u: everyone - {u} for u in client_ids}


def harary_neighbourhoods(
    client_ids: Sequence[int], degree: int, seed: bytes
) -> dict[int, frozenset[int]]:
    """Open neighbourhoods of the random Harary graph ``H(n, degree)``.

    ``degree`` must be even and at most ``n - 1``; each client gets its
    ``degree / 2`` predecessors and successors on :func:`ring_order`.
    """
    n = len(client_ids)
    if degree % 2 or not 2 <= degree <= n - 1:
        raise ParameterError(f"degree must be even and in [2, n-1={n - 1}], got {degree}")
    ring = ring_order(client_ids, seed)
    half = degree // 2
    out: dict[int, frozenset[int]] = {}
    for pos, u in enumerate(ring):
        out[u] = frozenset(
            ring[(pos + off) % n] for off in range(-half, half + 1) if off != 0
        )
    return out
