"""The semi-honest SecAgg+ derivation with exact hypergeometric tails, checked
against independent computations (exact rationals, scipy) and the graph."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import hypergeom

from protocols.secagg import derive_parameters, guarantees
from protocols.secagg.graph import harary_neighbourhoods, ring_order

DROP, CORRUPT = 0.1, 0.05


def _exact_probabilities(n: int, k: int, t: int) -> tuple[Fraction, Fraction]:
    """Conditions (1) + (2) and (3) as exact rationals from binomial coefficients."""
    c, m = math.floor(CORRUPT * n), math.floor(DROP * n)

    def tail(population: int, marked: int, draws: int, at_least: int) -> Fraction:
        total = math.comb(population, draws)
        hits = sum(math.comb(marked, x) * math.comb(population - marked, draws - x)
                   for x in range(max(at_least, 0), draws + 1))
        return Fraction(hits, total)

    h = k // 2
    sec = n * tail(n - 1, c, k, t) + n * tail(n, c + m, h, h)
    cor = n * tail(n - 1, m, k, k - t + 1)
    return sec, cor


def _scipy_bits(n: int, k: int, t: int) -> tuple[float, float]:
    c, m = math.floor(CORRUPT * n), math.floor(DROP * n)
    h = k // 2
    # hypergeom(M, n, N): population M, n marked, N drawn; sf(x) = P[X > x]
    p1 = n * hypergeom(n - 1, c, k).sf(t - 1)
    p2 = n * hypergeom(n, c + m, h).pmf(h)
    p3 = n * hypergeom(n - 1, m, k).sf(k - t)
    return tuple(math.inf if p <= 0 else max(0.0, -math.log2(p)) for p in (p1 + p2, p3))


@pytest.mark.parametrize(("n", "k", "t"), [(60, 12, 6), (200, 32, 15), (500, 30, 14),
                                           (1000, 36, 19), (1000, 40, 12)])
def test_guarantees_match_exact_rationals(n: int, k: int, t: int) -> None:
    sec, cor = _exact_probabilities(n, k, t)
    got = guarantees(n, k, t, dropout_fraction=DROP, corrupt_fraction=CORRUPT)
    for bits, p in zip(got, (sec, cor), strict=True):
        if p == 0:
            assert bits == math.inf
        else:
            assert bits == pytest.approx(-math.log2(p), rel=1e-9)


@pytest.mark.parametrize("n", [100, 1000, 10_000, 100_000])
def test_derived_parameters_meet_the_targets_by_scipy(n: int) -> None:
    k, t = derive_parameters(n)
    assert k is not None and k < n - 1
    sec, cor = _scipy_bits(n, k, t)
    assert sec >= 40 and cor >= 20, (n, k, t, sec, cor)
    # and k - 2 admits no threshold, by the same independent computation
    if k > 2:
        assert all(min(b[0] - 40, b[1] - 20) < 0
                   for b in (_scipy_bits(n, k - 2, tt) for tt in range(2, k - 1)))


def test_small_rounds_keep_the_complete_graph() -> None:
    assert derive_parameters(20) == (None, 11)
    assert derive_parameters(99) == (None, 50)
    assert derive_parameters(100)[0] == 28
    # a caller's degree is still honoured below the cut-off
    assert derive_parameters(20, degree=8)[0] == 8


def test_degree_goals_and_halved_cost() -> None:
    assert derive_parameters(1000) == (36, 19)
    assert derive_parameters(10_000)[0] == 42
    assert derive_parameters(100_000)[0] == 46
    # Bell et al.'s n (gamma + delta)^(k/2) alone needs k = 38 at n = 1,000
    assert 1000 * 0.15 ** (36 / 2) > 2.0**-40


def test_exact_window_term_is_never_above_the_power_bound() -> None:
    for n, k in ((100, 20), (1000, 36), (10_000, 42)):
        m = math.floor((DROP + CORRUPT) * n)
        exact = hypergeom(n, m, k // 2).pmf(k // 2)
        assert exact <= (DROP + CORRUPT) ** (k / 2)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(8, 40), half=st.integers(1, 4), seed=st.binary(min_size=32, max_size=32),
       data=st.data())
def test_harary_minus_a_set_without_a_long_run_is_connected(n: int, half: int, seed: bytes,
                                                           data: st.DataObject) -> None:
    """The combinatorial fact behind condition (2)."""
    k = 2 * half
    if k >= n - 1:
        return
    ids = list(range(1, n + 1))
    nb = harary_neighbourhoods(ids, k, seed)
    ring = ring_order(ids, seed)
    removed = data.draw(st.sets(st.sampled_from(ids), max_size=n - 2))
    pos = [u in removed for u in ring]
    longest = run = 0
    for flag in pos + pos:  # the ring wraps
        run = run + 1 if flag else 0
        longest = max(longest, min(run, n))
    alive = [u for u in ids if u not in removed]
    seen, todo = {alive[0]}, [alive[0]]
    while todo:
        u = todo.pop()
        for v in nb[u] - removed - seen:
            seen.add(v)
            todo.append(v)
    if longest < half:
        assert seen == set(alive)
