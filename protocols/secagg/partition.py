"""What an honest client checks, in malicious mode, so that a server that
chooses who "dropped" cannot split the mask graph.

The threat
----------
In SecAgg+ a client masks only with its ``k`` neighbours on a random ring
(:mod:`.graph`; ``h = k/2`` on each side). The server learns the sum of every
connected component of the mask graph restricted to the *honest survivors*
(corrupt clients' pairwise seeds are known to it). Bell et al.'s derivation
keeps that graph connected when dropouts are random; in malicious mode the
server decides who "dropped": removing ``h`` consecutive ring positions in
two places cuts the ring, and the sum of each arc is revealed.

On a ring where two clients are adjacent iff their ring distance is at most
``h``, a set ``R`` of positions induces a disconnected graph iff there are two
runs of at least ``h`` consecutive positions without a member of ``R``, with
members of ``R`` between them on both sides. So the honest survivors ``R =
U3 \\ C`` are disconnected only if two *windows* (``h`` consecutive ring
positions) hold no honest survivor, separated by survivors on both sides.
A window without an honest survivor holds only corrupt members of ``U3``.

The checks
----------
The ring is a uniform permutation fixed by the public graph seed, which must
be drawn after the corrupt set is fixed (so the ``C = floor(gamma n)``
corrupt clients sit at uniformly random positions). Then, exactly (no
Hoeffding slack), with ``Hyp(N, K, m)`` the number of marked items among
``m`` drawn without replacement from ``N`` of which ``K`` are marked:

1. no honest client has ``t`` corrupt share holders among its ``k``
   neighbours: ``p1 = n * P[Hyp(n - 1, C, k) >= t]`` (union over clients);
2. no window holds more than ``B`` corrupt clients:
   ``p2 = n * P[Hyp(n, C, h) >= B + 1]`` (union over the ``n`` windows).

:func:`check_config` (run when a client is built) refuses a configuration
unless ``p1 + p2 <= 2^-security_bits`` for some ``B < h`` (the smallest such
``B`` is the *window bound*), the quorum is at least
``floor((n + C)/2) + 1`` and the graph seed is not all zero. On the complete
graph it asks ``t > C`` and the quorum. :func:`check_survivors` (run before a
client signs a survivor set) refuses a set ``U3`` with two separated windows
each holding at most ``B`` members of ``U3``: every window the adversary
could empty of honest survivors is such a window, so, outside the
``2^-security_bits`` event above, the honest survivors stay connected and the
server learns only their sum, whichever clients it claims dropped.
Nothing here assumes dropouts are random; they only affect liveness.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from secagg.errors import AbortError, ParameterError

from .config import SecAggConfig, consistency_quorum
from .graph import ring_order
from .tails import hypergeometric_tail, malicious_bounds

__all__ = [
    "SecurityTarget",
    "check_config",
    "check_survivors",
    "hypergeometric_tail",
    "malicious_security",
]


@dataclass(frozen=True)
class SecurityTarget:
    """What a client requires of a malicious-mode configuration.

    Attributes:
        corrupt_fraction: the largest fraction gamma of clients that may
            collude with the server, in [0, 1); ``C = floor(gamma n)``.
        security_bits: the adversary breaks privacy with probability at most
            ``2^-security_bits`` over the public ring (> 0).
    """

    corrupt_fraction: float = 0.05
    security_bits: float = 40.0

    def __post_init__(self) -> None:
        g = self.corrupt_fraction
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not 0.0 <= g < 1.0:
            raise ParameterError(f"corrupt_fraction must be in [0, 1), got {g!r}")
        b = self.security_bits
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0.0 < b <= 256.0:
            raise ParameterError(f"security_bits must be in (0, 256], got {b!r}")


def malicious_security(config: SecAggConfig, target: SecurityTarget) -> tuple[float, int]:
    """``(bits, window bound B)`` that ``config`` achieves against ``target``'s
    corrupt fraction: ``bits = -log2(p1 + p2)`` (module docstring) at the
    smallest ``B < k/2`` meeting ``target.security_bits``, else at ``B = k/2 -
    1``. The complete graph gives ``inf`` when ``t > C``, else 0 (``B`` unused)."""
    n, t = config.n, config.threshold
    c = math.floor(target.corrupt_fraction * n)
    if config.degree is None:
        return (math.inf if t > c else 0.0), 0
    return malicious_bounds(n, config.degree, t, c, target.security_bits)


def check_config(config: SecAggConfig, target: SecurityTarget) -> int:
    """Refuse (:class:`ParameterError`) a malicious-mode ``config`` whose
    quorum, threshold, degree or graph seed do not meet ``target``; returns
    the window bound :func:`check_survivors` needs."""
    n = config.n
    c = math.floor(target.corrupt_fraction * n)
    q = consistency_quorum(n, target.corrupt_fraction)
    if config.quorum is None or config.quorum < q:
        raise ParameterError(
            f"quorum {config.quorum} is below floor((n + c)/2) + 1 = {q} for {n} clients "
            f"with c = {c} corrupt (corrupt_fraction {target.corrupt_fraction})")
    bits, bound = malicious_security(config, target)
    if config.degree is None:
        if bits < target.security_bits:
            raise ParameterError(
                f"threshold {config.threshold} does not exceed the {c} corrupt clients "
                f"tolerated (corrupt_fraction {target.corrupt_fraction})")
        return bound
    if config.graph_seed == bytes(32):
        raise ParameterError("the all-zero graph seed is not random; a SecAgg+ ring in "
                             "malicious mode needs a seed drawn after the clients are fixed")
    if bits < target.security_bits:
        raise ParameterError(
            f"degree {config.degree} and threshold {config.threshold} give {bits:.1f} bits "
            f"against {c} corrupt of {n} clients, below the target "
            f"{target.security_bits}; raise the degree or the threshold")
    return bound


def check_survivors(config: SecAggConfig, survivors: Iterable[int], bound: int) -> None:
    """Refuse (:class:`AbortError`) a survivor set of a SecAgg+ ring with two
    separated windows of ``k/2`` ring positions holding at most ``bound``
    survivors each (cost ``O(n log n)``). No-op on the complete graph."""
    if config.degree is None:
        return
    n, h = config.n, config.degree // 2
    ring = ring_order(config.client_ids, config.graph_seed)
    alive = set(survivors)
    member = np.fromiter((u in alive for u in ring), dtype=bool, count=n)
    if not member.any():
        raise AbortError("empty survivor set")
    ext = np.concatenate([member, member]).astype(np.int64)
    cs = np.concatenate([[0], np.cumsum(ext)])
    thin = (cs[h:h + n] - cs[:n]) <= bound  # window i = ring positions i .. i+h-1
    thin3 = np.tile(thin, 3).astype(np.int64)
    tcs = np.concatenate([[0], np.cumsum(thin3)])
    pos = np.flatnonzero(np.tile(member, 3))
    starts = np.flatnonzero(thin)
    if starts.size == 0:
        return
    # a survivor strictly after window i (first member at or after i + h) before
    # window j, and one after window j before window i comes round again
    nxt = pos[np.searchsorted(pos, starts + h, side="left")]
    prv = pos[np.searchsorted(pos, starts + n - 1, side="right") - 1]
    lo, hi = nxt + 1, prv - h
    ok = lo <= hi
    found = np.zeros(starts.size, dtype=bool)
    found[ok] = (tcs[hi[ok] + 1] - tcs[lo[ok]]) > 0
    if found.any():
        i = int(starts[np.argmax(found)])
        raise AbortError(
            f"survivor set would partition the mask graph: the {h} ring positions from "
            f"client {ring[i]} and another {h} further on hold at most {bound} survivors "
            f"each (the corrupt clients a window may hold), with survivors between them")
