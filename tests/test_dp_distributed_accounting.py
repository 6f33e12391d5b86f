"""Accounting for distributed DP: Gaussian limits, subsampling, monotonicity,
the guarantee's labels, and refusals."""

from __future__ import annotations

import math

import dp_accounting
import numpy as np
import pytest
from dp_accounting import rdp as dpa_rdp
from hypothesis import example, given
from hypothesis import strategies as st

import dp
from dp import distributed_accounting as A
from secagg.errors import ParameterError


def _round(**kw):
    base = dict(mechanism="dgauss", l2=100.0, l1=3200.0, variance=1e6, shares=10,
                dimension=1024, sample_rate=1.0)
    base.update(kw)
    return A.DistributedRound(**base)


# ------------------------------------------------------------ limits


@pytest.mark.parametrize("mech", ["dgauss", "skellam"])
def test_large_noise_matches_the_gaussian_rdp_curve(mech):
    orders = np.array([2.0, 8.0, 32.0, 128.0])
    l2, var, n = 50.0, 1e8, 20
    if mech == "dgauss":
        got = A.dgauss_sum_rdp(orders, l2=l2, l1=l2 * 32, variance=var, shares=n, dimension=1024)
    else:
        got = A.skellam_rdp(orders, l2=l2, l1=l2 * 32, variance=n * var)
    gauss = orders * l2**2 / (2 * n * var)
    assert np.allclose(got, gauss, rtol=1e-5)
    assert (got >= gauss * (1 - 1e-12)).all()  # never below the continuous mechanism


def test_epsilon_matches_the_gaussian_accountant_in_the_limit():
    # sigma / sensitivity = 1.3 in the integer domain, 10 rounds, no sampling
    shares, l2 = 16, 1000.0
    var = (1.3 * l2) ** 2 / shares
    r = _round(l2=l2, l1=l2 * 32, variance=var, shares=shares)
    ours = A.epsilon_of_rounds([r] * 10, 1e-5, trust="the server").epsilon
    opacus_rdp = dp.epsilon(1.0, 1.3, 10, 1e-5, accountant="rdp").epsilon
    assert ours == pytest.approx(opacus_rdp, rel=2e-3)
    assert ours >= dp.epsilon(1.0, 1.3, 10, 1e-5).epsilon  # PLD is the tight value


def test_one_share_is_a_single_discrete_gaussian():
    # n = 1: tau = 0, and the discrete Gaussian is exactly as private as the
    # continuous one (Canonne, Kamath, Steinke 2020, Thm 4)
    assert A.dgauss_tau(0.3, 1) == 0.0
    got = A.dgauss_sum_rdp([2.0, 5.0], l2=1.0, l1=1.0, variance=0.3, shares=1, dimension=1)
    assert np.allclose(got, np.array([2.0, 5.0]) / (2 * 0.3))


def test_tau_by_hand():
    s2, n = 0.5, 4
    want = 10 * sum(math.exp(-2 * math.pi**2 * s2 * k / (k + 1)) for k in range(1, n))
    assert A.dgauss_tau(s2, n) == pytest.approx(want, rel=1e-12)
    # beyond 4096 shares the tail is bounded by its largest term
    assert A.dgauss_tau(0.25, 10_000) >= A.dgauss_tau(0.25, 4096)


def test_small_noise_pays_for_tau():
    # with sigma near 1/2 per share the sum is far from a discrete Gaussian
    kw = dict(l2=2.0, l1=4.0, shares=50, dimension=1000)
    small = A.dgauss_sum_rdp([4.0], variance=0.25, **kw)[0]
    gauss = 4.0 * 4.0 / (2 * 50 * 0.25)
    assert small > gauss + 1.0


def test_rounded_norm_bounds():
    # deterministic: c + sqrt(d); with beta the tighter Kairouz et al. bound
    assert A.rounded_l2_bound(10.0, 100, 0.0) == 20.0
    b = A.rounded_l2_bound(10.0, 100, math.exp(-0.5))
    assert b == pytest.approx(math.sqrt(100 + 25 + 1.0 * (10 + 5)))
    assert A.rounded_l1_bound(3.0, 100) == 9.0  # integer vectors: L1 <= L2^2
    assert A.rounded_l1_bound(30.0, 100) == 300.0  # L1 <= sqrt(d) L2


# --------------------------------------------------------- subsampling


@pytest.mark.parametrize("q,sigma", [(0.01, 1.0), (0.1, 2.0), (0.5, 4.0)])
def test_subsampled_bound_is_above_the_exact_sampled_gaussian(q, sigma):
    orders = list(range(2, 65))
    base = np.arange(2, 65) / (2 * sigma**2)
    ours = A.subsampled_rdp(orders, q, base)
    acc = dpa_rdp.RdpAccountant(orders=[float(o) for o in orders])
    acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)))
    exact = np.array(acc._rdp)  # the tight sampled-Gaussian curve
    assert (ours >= exact * (1 - 1e-9)).all()
    assert (ours <= base + 1e-12).all()
    if q == 0.01:  # at low orders it amplifies almost as much as the exact curve
        assert ours[0] == pytest.approx(exact[0], rel=1e-6)
        assert (ours[:7] < 2 * exact[:7]).all() and (ours[:7] < 1e-3 * base[:7]).all()


@pytest.mark.parametrize("q", [0.003, 0.05, 0.4])
def test_subsampled_bound_is_zhu_wang_theorem_5_by_hand(q):
    """The formula evaluated term by term in plain floats, factor 3 included."""
    base = np.array([0.02 * a + 0.001 * a * a for a in range(2, 21)])
    orders = [2, 3, 5, 12, 20]
    got = A.subsampled_rdp(orders, q, base)
    for a, val in zip(orders, got, strict=True):
        eps = {j: float(base[j - 2]) for j in range(2, a + 1)}
        s = (1 - q) ** (a - 1) * (a * q - q + 1)
        s += math.comb(a, 2) * q**2 * (1 - q) ** (a - 2) * math.exp(eps[2])
        s += 3 * sum(math.comb(a, j) * q**j * (1 - q) ** (a - j) * math.exp((j - 1) * eps[j])
                     for j in range(3, a + 1))
        assert val == pytest.approx(min(math.log(s) / (a - 1), eps[a]), rel=1e-12)


def test_sampling_amplifies_the_reported_epsilon():
    one = A.epsilon_of_rounds([_round(sample_rate=1.0)] * 50, 1e-5, trust="t").epsilon
    few = A.epsilon_of_rounds([_round(sample_rate=0.01)] * 50, 1e-5, trust="t").epsilon
    assert few < 0.2 * one


def test_skellam_rdp_by_hand():
    """Agarwal, Kairouz, Liu (2021), Theorem 3.5 at a few points."""
    for a, l2, l1, mu in [(2.0, 1.0, 1.0, 10.0), (8.0, 3.0, 9.0, 50.0), (30.0, 2.0, 4.0, 1e4)]:
        extra = min(((2 * a - 1) * l2**2 + 6 * l1) / (4 * mu**2), 3 * l1 / (2 * mu))
        want = a * l2**2 / (2 * mu) + extra
        got = float(A.skellam_rdp([a], l2=l2, l1=l1, variance=mu)[0])
        assert got == pytest.approx(want, rel=1e-12)
    assert float(A.skellam_rdp([2.0], l2=1.0, l1=1.0, variance=10.0)[0]) == pytest.approx(0.1225)


def test_dgauss_bound_refuses_shares_below_sigma_one_half():
    with pytest.raises(ParameterError, match="1/4"):
        A.dgauss_sum_rdp([2.0], l2=1.0, l1=1.0, variance=0.2, shares=3, dimension=4)


def test_subsampled_rate_one_is_the_base_curve():
    base = np.arange(2, 11) / 8.0
    assert np.array_equal(A.subsampled_rdp(list(range(2, 11)), 1.0, base), base)


def test_subsampled_refuses_fractional_orders_and_short_curves():
    with pytest.raises(ParameterError):
        A.subsampled_rdp([2.5], 0.1, np.ones(10))
    with pytest.raises(ParameterError):
        A.subsampled_rdp([20], 0.1, np.ones(5))


# -------------------------------------------------------- monotonicity


@given(st.floats(1.0, 1e8), st.floats(1.01, 4.0), st.integers(1, 200),
       st.sampled_from(["dgauss", "skellam"]))
def test_more_noise_never_costs_privacy(var, factor, shares, mech):
    a = _round(mechanism=mech, variance=var, shares=shares)
    b = _round(mechanism=mech, variance=var * factor, shares=shares)
    assert (A.round_rdp(b) <= A.round_rdp(a) + 1e-12).all()


@given(st.integers(1, 100), st.integers(1, 100), st.floats(1.0, 1e7))
def test_tau_bound_covers_every_count_in_range(lo, extra, var):
    hi = lo + extra
    bound = A.dgauss_sum_rdp(A.ORDERS, l2=30.0, l1=200.0, variance=var, shares=lo,
                             dimension=512, tau_shares=hi)
    for n in (lo, (lo + hi) // 2, hi):
        actual = A.dgauss_sum_rdp(A.ORDERS, l2=30.0, l1=200.0, variance=var, shares=n,
                                  dimension=512)
        assert (actual <= bound + 1e-12).all()


@given(st.floats(0.001, 1.0), st.floats(1.01, 3.0), st.integers(1, 50),
       st.sampled_from(["dgauss", "skellam"]))
@example(0.5, 2.0, 25, "dgauss")  # integer orders at q < 1 once lost to fractional ones at q = 1
def test_epsilon_grows_with_rate_rounds_and_sensitivity(q, factor, rounds, mech):
    r = _round(mechanism=mech, sample_rate=q, variance=4e4)
    e = A.epsilon_of_rounds([r] * rounds, 1e-5, trust="").epsilon
    more_q = _round(mechanism=mech, sample_rate=min(1.0, q * factor), variance=4e4)
    assert A.epsilon_of_rounds([more_q] * rounds, 1e-5, trust="").epsilon >= e - 1e-9
    assert A.epsilon_of_rounds([r] * (rounds + 1), 1e-5, trust="").epsilon >= e - 1e-9
    more_l2 = _round(mechanism=mech, sample_rate=q, variance=4e4, l2=100.0 * factor)
    assert A.epsilon_of_rounds([more_l2] * rounds, 1e-5, trust="").epsilon >= e - 1e-9


@given(st.integers(1, 60), st.integers(1, 60))
def test_skellam_more_shares_is_more_private(n, extra):
    a = _round(mechanism="skellam", shares=n, variance=1e4)
    b = _round(mechanism="skellam", shares=n + extra, variance=1e4)
    assert (A.round_rdp(b) <= A.round_rdp(a)).all()


# ----------------------------------------------------------- the label


def test_guarantee_names_mechanism_unit_adjacency_and_trust():
    g = A.epsilon_of_rounds([_round()] * 3, 1e-6, trust="the server")
    assert isinstance(g, dp.PrivacyGuarantee)
    assert g.unit == "client" and g.steps == 3 and g.delta == 1e-6
    assert "zero-out" in g.adjacency
    assert "Kairouz" in g.mechanism and g.trust == "the server"
    assert g.honest_shares == (10, 10, 10)
    d = g.as_dict()
    assert d["mechanism"] == g.mechanism and d["trust"] == "the server"
    assert "against the server" in str(g)


def test_a_round_without_honest_shares_has_no_privacy():
    g = A.epsilon_of_rounds([_round(), _round(shares=0)], 1e-5, trust="the server")
    assert g.epsilon == math.inf


def test_no_rounds_is_zero():
    assert A.epsilon_of_rounds([], 1e-5, trust="the server").epsilon == 0.0


@pytest.mark.parametrize("kw", [dict(mechanism="laplace"), dict(variance=0.2),
                                dict(shares=-1), dict(sample_rate=0.0), dict(l2=math.nan),
                                dict(dimension=0)])
def test_bad_rounds_are_refused(kw):
    with pytest.raises(ParameterError):
        _round(**kw)


def test_mixed_mechanisms_and_bad_delta_are_refused():
    with pytest.raises(ParameterError):
        A.epsilon_of_rounds([_round(), _round(mechanism="skellam")], 1e-5, trust="")
    with pytest.raises(ParameterError):
        A.epsilon_of_rounds([_round()], 0.0, trust="")
