"""Exact hypergeometric tails, and the malicious-mode bounds built on them.

``Hyp(N, K, m)`` is the number of marked items among ``m`` drawn without
replacement from ``N`` items of which ``K`` are marked: the number of corrupt
(or dropped) clients among a client's ``k`` ring neighbours (``N = n - 1``)
or among ``h`` consecutive ring positions (``N = n``), since the ring is a
uniform permutation. Probabilities are summed from the exact mass function
(log-gamma, then one exponent per term), not bounded.
"""

from __future__ import annotations

import math
from functools import lru_cache

from secagg.errors import ParameterError

__all__ = ["hypergeometric_tail", "hypergeometric_tails", "malicious_bounds"]


def _log_comb(a: int, b: int) -> float:
    return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)


@lru_cache(maxsize=1024)
def hypergeometric_tails(population: int, marked: int, draws: int) -> tuple[float, ...]:
    """``T[x] = P[Hyp(population, marked, draws) >= x]`` for ``x`` in
    ``0 .. draws + 1`` (so ``T[0] = 1`` and ``T[draws + 1] = 0``); cached."""
    if not 0 <= marked <= population or not 0 <= draws <= population:
        raise ParameterError(f"hypergeometric({population}, {marked}, {draws}) is undefined")
    lo, hi = max(0, draws - (population - marked)), min(marked, draws)
    total = _log_comb(population, draws)
    pmf = [0.0] * (draws + 2)
    for x in range(lo, hi + 1):
        pmf[x] = math.exp(_log_comb(marked, x) + _log_comb(population - marked, draws - x)
                          - total)
    tails = [0.0] * (draws + 2)
    acc = 0.0
    for x in range(draws, -1, -1):  # smallest terms first
        acc += pmf[x]
        tails[x] = min(1.0, acc)
    tails[0] = 1.0
    return tuple(tails)


def hypergeometric_tail(population: int, marked: int, draws: int, at_least: int) -> float:
    """``P[Hyp(population, marked, draws) >= at_least]``."""
    if at_least <= 0:
        hypergeometric_tails(population, marked, draws)  # validates
        return 1.0
    if at_least > draws:
        hypergeometric_tails(population, marked, draws)
        return 0.0
    return hypergeometric_tails(population, marked, draws)[at_least]


def _bits(p: float) -> float:
    return math.inf if p <= 0 else max(0.0, -math.log2(p))


def malicious_bounds(n: int, k: int, t: int, corrupt: int,
                     security_bits: float) -> tuple[float, int]:
    """``(bits, B)`` of a SecAgg+ ring ``(n, k, t)`` with ``corrupt`` corrupt
    clients at uniformly random positions:
    ``p1 = n P[Hyp(n-1, C, k) >= t]`` (some honest client has ``t`` corrupt
    share holders) plus ``p2 = n P[Hyp(n, C, k/2) >= B + 1]`` (some window of
    ``k/2`` ring positions holds more than ``B`` corrupt clients), at the
    smallest ``B < k/2`` with ``p1 + p2 <= 2^-security_bits`` (else ``B = k/2 - 1``)."""
    h = k // 2
    p1 = n * hypergeometric_tails(n - 1, corrupt, k)[min(t, k + 1)]
    win = hypergeometric_tails(n, corrupt, h)
    budget = 2.0 ** -security_bits
    for b in range(h):
        p = p1 + n * win[b + 1]
        if p <= budget or b == h - 1:
            return _bits(p), b
    raise ParameterError(f"degree must be even and >= 2, got {k}")
