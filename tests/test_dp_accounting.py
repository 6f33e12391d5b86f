"""dp.accounting: reference values, cross-checks against dp-accounting, laws."""

from __future__ import annotations

import math
import time

import dp_accounting
import pytest
from dp_accounting.pld import privacy_loss_distribution as pld_lib
from hypothesis import given, settings
from hypothesis import strategies as st

from dp import accounting
from dp.accounting import (
    PrivacyGuarantee,
    Segment,
    client_level_epsilon,
    compare_accountants,
    epsilon,
    epsilon_of_history,
    federated_sample_level_epsilon,
    noise_multiplier,
    sample_rate_for,
    steps_for_epochs,
)
from secagg.errors import ParameterError, SecAggError

# N=60000, batch 256, sigma 1.1, 60 epochs, delta 1e-5
Q_REF = 256 / 60000
T_REF = 14062
SIGMA_REF = 1.1
DELTA = 1e-5

# (q, sigma, steps, delta): five fixed settings for the cross-checks
SETTINGS = [
    (Q_REF, SIGMA_REF, T_REF, 1e-5),
    (512 / 50000, 1.0, 977, 1e-5),
    (0.01, 0.8, 1000, 1e-5),
    (0.1, 2.0, 100, 1e-5),
    (0.001, 0.6, 10000, 1e-6),
]


def _dpa_pld(q: float, sigma: float, steps: int, delta: float, vdi: float = 1e-4) -> float:
    acc = dp_accounting.pld.PLDAccountant(value_discretization_interval=vdi)
    acc.compose(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps
    )
    return float(acc.get_epsilon(delta))


def _dpa_rdp(q: float, sigma: float, steps: int, delta: float) -> float:
    acc = dp_accounting.rdp.RdpAccountant()
    acc.compose(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps
    )
    return float(acc.get_epsilon(delta))


# ---------------------------------------------------------------- reference


def test_reference_values_for_the_mnist_like_setting():
    g = compare_accountants(Q_REF, SIGMA_REF, T_REF, DELTA)
    assert g["pld"].epsilon == pytest.approx(2.382, abs=0.004)
    assert g["prv"].epsilon == pytest.approx(2.392, abs=0.004)
    assert g["rdp"].epsilon == pytest.approx(2.597, abs=0.004)
    # the default is PLD
    assert epsilon(Q_REF, SIGMA_REF, T_REF, DELTA).accountant == "pld"


def test_epochs_convention_matches_the_reference():
    q = sample_rate_for(batch_size=256, dataset_size=60000)
    assert q == Q_REF
    assert steps_for_epochs(60, q) in (T_REF, T_REF + 1)  # 60 * 60000 / 256 = 14062.5
    assert steps_for_epochs(1, 0.5) == 2
    assert steps_for_epochs(0, 0.5) == 0


def _slow_unless(first: bool):
    return () if first else (pytest.mark.slow,)


@pytest.mark.parametrize(
    "q,sigma,steps,delta",
    # two settings run by default, all five with -m slow
    [pytest.param(*s, marks=_slow_unless(i in (0, 3))) for i, s in enumerate(SETTINGS)],
)
def test_cross_check_against_dp_accounting(q, sigma, steps, delta):
    ours = compare_accountants(q, sigma, steps, delta)
    ref_pld = _dpa_pld(q, sigma, steps, delta)
    # default (PLD) within 2 % of dp-accounting's PLD and never meaningfully below it
    assert ours["pld"].epsilon <= 1.02 * ref_pld
    assert ours["pld"].epsilon >= 0.999 * ref_pld
    # PRV agrees with PLD within about 1 %; RDP is looser
    assert abs(ours["prv"].epsilon / ref_pld - 1) < 0.012
    assert ours["rdp"].epsilon > 1.05 * ref_pld
    # our RDP matches dp-accounting's RDP accountant
    assert ours["rdp"].epsilon == pytest.approx(_dpa_rdp(q, sigma, steps, delta), rel=0.01)


def test_default_is_never_below_a_lower_bound():
    # optimistic discretisation gives a lower bound on the true epsilon
    q, sigma, steps = 0.1, 2.0, 100
    lower_pld = pld_lib.from_gaussian_mechanism(
        sigma, sampling_prob=q, pessimistic_estimate=False, use_connect_dots=False
    ).self_compose(steps)
    lower = lower_pld.get_epsilon_for_delta(DELTA)
    ours = epsilon(q, sigma, steps, DELTA).epsilon
    assert lower <= ours <= 1.02 * lower


def test_guarantee_names_accountant_unit_and_adjacency():
    g = epsilon(0.01, 1.0, 100, DELTA, accountant="rdp")
    assert isinstance(g, PrivacyGuarantee)
    assert (g.accountant, g.unit, g.adjacency, g.steps, g.delta) == (
        "rdp",
        "example",
        "add/remove one",
        100,
        DELTA,
    )
    assert float(g) == g.epsilon
    text = str(g)
    assert "RDP" in text and "example" in text and "add/remove one" in text
    d = g.as_dict()
    assert d["accountant"] == "rdp" and d["unit"] == "example"
    c = client_level_epsilon(0.1, 1.0, 50, DELTA, accountant="rdp")
    assert c.unit == "client" and "client" in str(c)


# ------------------------------------------------------------- composition


def test_federated_sample_level_composition_counts_every_local_step():
    g = federated_sample_level_epsilon(0.05, 1.2, 20, 7, DELTA, accountant="rdp")
    assert g.unit == "example"
    assert g.epsilon == epsilon(0.05, 1.2, 140, DELTA, accountant="rdp").epsilon
    assert federated_sample_level_epsilon(0.05, 1.2, 20, 0, DELTA).epsilon == 0.0


def test_client_level_is_the_same_mechanism_over_rounds():
    g = client_level_epsilon(0.1, 1.0, 100, DELTA, accountant="rdp")
    assert g.epsilon == epsilon(0.1, 1.0, 100, DELTA, accountant="rdp", unit="client").epsilon


def test_history_composition_merges_equal_segments():
    a = epsilon_of_history([Segment(0.02, 1.0, 50), Segment(0.02, 1.0, 50)], DELTA)
    b = epsilon(0.02, 1.0, 100, DELTA)
    assert a.epsilon == b.epsilon and a.steps == 100
    for acc in ("pld", "rdp"):
        mixed = epsilon_of_history(
            [Segment(0.02, 1.0, 50), Segment(0.02, 2.0, 50)], DELTA, accountant=acc
        )
        lo = epsilon(0.02, 2.0, 100, DELTA, accountant=acc).epsilon
        hi = epsilon(0.02, 1.0, 100, DELTA, accountant=acc).epsilon
        assert lo < mixed.epsilon < hi


def test_edge_values():
    assert epsilon(0.5, 1.0, 0, DELTA).epsilon == 0.0
    assert math.isinf(epsilon(0.5, 0.0, 10, DELTA).epsilon)
    assert epsilon(1.0, 5.0, 10, DELTA).epsilon > 0  # no subsampling


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"sample_rate": 0.0}, "sample_rate=0.0 is outside (0, 1]"),
        ({"sample_rate": 1.5}, "sample_rate=1.5 is outside (0, 1]"),
        ({"noise_multiplier": -1.0}, "noise_multiplier=-1.0 must be >= 0"),
        ({"delta": 1.0}, "delta=1.0 is outside (0, 1)"),
        ({"delta": 0.0}, "delta=0.0 is outside (0, 1)"),
        ({"steps": -3}, "steps=-3"),
        ({"accountant": "gdp"}, "accountant='gdp'"),
        ({"unit": "user"}, "unit='user'"),
    ],
)
def test_impossible_inputs_raise_parameter_error(kwargs, needle):
    args = {"sample_rate": 0.1, "noise_multiplier": 1.0, "steps": 10, "delta": DELTA}
    args.update(kwargs)
    with pytest.raises(ParameterError) as exc:
        epsilon(**args)
    assert needle in str(exc.value)
    assert isinstance(exc.value, SecAggError)


def test_calibration_errors():
    with pytest.raises(ParameterError):
        noise_multiplier(0.0, 0.1, 100, DELTA)
    with pytest.raises(ParameterError):
        noise_multiplier(1.0, 0.1, 0, DELTA)
    with pytest.raises(ParameterError):
        sample_rate_for(batch_size=200, dataset_size=100)


# ------------------------------------------------------------- calibration


def test_calibration_reaches_the_target_and_is_cached():
    target = 2.0
    t0 = time.perf_counter()
    sigma = noise_multiplier(target, Q_REF, T_REF, DELTA)
    first = time.perf_counter() - t0
    eps = epsilon(Q_REF, sigma, T_REF, DELTA).epsilon
    assert eps <= target
    assert eps >= 0.99 * target  # not wastefully noisy
    t0 = time.perf_counter()
    assert noise_multiplier(target, Q_REF, T_REF, DELTA) == sigma
    again = time.perf_counter() - t0
    assert again < 0.01 < first
    # PLD needs less noise than RDP for the same target
    assert sigma < noise_multiplier(target, Q_REF, T_REF, DELTA, accountant="rdp")


@settings(max_examples=8, deadline=None)
@given(
    q=st.floats(0.001, 1.0),
    sigma=st.floats(0.6, 8.0),
    steps=st.integers(1, 2000),
)
def test_epsilon_is_monotone_in_steps_and_noise(q, sigma, steps):
    e = epsilon(q, sigma, steps, DELTA, accountant="rdp").epsilon
    assert epsilon(q, sigma, steps + 50, DELTA, accountant="rdp").epsilon >= e
    assert epsilon(q, sigma * 1.2, steps, DELTA, accountant="rdp").epsilon <= e
    assert epsilon(min(1.0, q * 1.5), sigma, steps, DELTA, accountant="rdp").epsilon >= e


@settings(max_examples=5, deadline=None)
@given(
    q=st.floats(0.005, 0.5),
    sigma=st.floats(0.7, 5.0),
    steps=st.integers(10, 1000),
)
def test_noise_multiplier_inverts_epsilon(q, sigma, steps):
    target = epsilon(q, sigma, steps, DELTA, accountant="rdp").epsilon
    found = noise_multiplier(target, q, steps, DELTA, accountant="rdp", rtol=2e-3)
    assert epsilon(q, found, steps, DELTA, accountant="rdp").epsilon <= target
    assert found == pytest.approx(sigma, rel=0.01)


def test_noise_multiplier_inverts_epsilon_for_pld():
    q, sigma, steps = 0.05, 1.3, 300
    target = epsilon(q, sigma, steps, DELTA).epsilon
    found = noise_multiplier(target, q, steps, DELTA)
    assert found == pytest.approx(sigma, rel=0.01)
    assert epsilon(q, found, steps, DELTA).epsilon <= target


def test_accountants_constant_lists_tightest_first():
    assert accounting.ACCOUNTANTS[0] == accounting.DEFAULT_ACCOUNTANT == "pld"


# ------------------------------------------------- delta, inputs and work bounds


def test_check_delta_refuses_and_warns_by_its_documented_rule():
    import numpy as np

    import dp

    assert dp.check_delta(1e-6, population=60000) == 1e-6
    assert dp.check_delta(np.float64(1e-6)) == 1e-6
    for bad in (0.0, 1.0, -1e-5, math.nan, math.inf, True, "0.5", None, 1e-300):
        with pytest.raises(ParameterError, match="delta="):
            dp.check_delta(bad)  # type: ignore[arg-type]
    with pytest.warns(dp.DeltaWarning, match=r"1/N = 1/60000 = 1\.667e-05"):
        dp.check_delta(0.01, population=60000)
    with pytest.warns(dp.DeltaWarning, match="1/N = 1/10 = 0.1 clients"):
        dp.check_delta(0.5, population=10, unit="client")
    with pytest.warns(dp.DeltaWarning, match="population"):
        dp.check_delta(0.5)  # no population: delta >= 0.01 is flagged
    assert issubclass(dp.DeltaWarning, UserWarning)
    with pytest.raises(ParameterError, match="population=0"):
        dp.check_delta(1e-5, population=0)


def test_a_meaningless_delta_never_gives_a_quiet_reassuring_number():
    import dp

    for acc in ("pld", "rdp"):
        with pytest.warns(dp.DeltaWarning, match="delta=0.5"):
            g = dp.epsilon(0.01, 1.0, 100, 0.5, accountant=acc)
        assert g.epsilon >= 0.0  # never a negative epsilon
    with pytest.warns(dp.DeltaWarning, match="1/60000"):
        dp.epsilon(0.01, 1.0, 100, 0.01, accountant="rdp", population=60000)
    with pytest.warns(dp.DeltaWarning, match="1/60000"):
        dp.noise_multiplier(2.0, 0.01, 100, 0.01, accountant="rdp", population=60000)


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"sample_rate": True}, "sample_rate=True"),
        ({"sample_rate": "0.5"}, "sample_rate='0.5'"),
        ({"noise_multiplier": math.inf}, "noise_multiplier=inf"),
        ({"noise_multiplier": 1e-300}, "noise_multiplier=1e-300"),
        ({"noise_multiplier": "1"}, "noise_multiplier='1'"),
        ({"steps": 2.7}, "steps=2.7"),
        ({"delta": 1e-300}, "delta=1e-300"),
    ],
)
def test_bad_values_are_refused_naming_the_value(kwargs, needle):
    args = {"sample_rate": 0.1, "noise_multiplier": 1.0, "steps": 10, "delta": DELTA}
    args.update(kwargs)
    with pytest.raises(ParameterError) as exc:
        epsilon(**args)
    assert needle in str(exc.value)


def test_numpy_integers_are_steps():
    import numpy as np

    assert epsilon(0.1, 1.0, np.int64(10), DELTA, accountant="rdp") == epsilon(
        0.1, 1.0, 10, DELTA, accountant="rdp"
    )
    assert Segment(0.1, 1.0, np.int64(3)).steps == 3
    assert type(Segment(0.1, 1.0, np.int64(3)).steps) is int


def test_calibration_for_a_huge_target_is_refused_not_searched():
    with pytest.raises(ParameterError, match=r"target_epsilon=1e\+06"):
        noise_multiplier(1e6, 0.01, 100, DELTA)


def test_prv_refuses_a_grid_past_its_bound_instead_of_exhausting_memory():
    from dp.accounting import AccountantLimitError

    with pytest.raises(AccountantLimitError, match="PRV") as exc:
        epsilon(0.01, 1.0, 100_000, DELTA, accountant="prv")
    assert isinstance(exc.value, ParameterError)
    assert "100000 steps" in str(exc.value) and "pld" in str(exc.value)


def test_pld_work_is_bounded_and_still_an_upper_bound():
    # 10^8 steps: the grid is capped, the answer is a valid (pessimistic) bound
    from dp.accounting import _pld_grid_floor

    hist = (Segment(0.01, 1.0, 10**8),)
    floor = _pld_grid_floor(hist)
    assert floor > accounting._PLD_MIN_VDI  # the cap is active here
    exact_ish = _dpa_pld(0.01, 1.0, 10**5, DELTA, vdi=1e-3)
    assert epsilon(0.01, 1.0, 10**5, DELTA).epsilon >= exact_ish * 0.999


def test_pld_does_not_stall_on_long_sparse_compositions(monkeypatch):
    # dp-accounting sizes a sparse self-composition as size**steps (a huge
    # integer for 10^7 steps); composing through a dense block avoids it.
    import dp_accounting.pld.pld_pmf as pmf

    seen = []
    orig = pmf.SparsePLDPmf.self_compose

    def spy(self, num_times, *a, **k):
        seen.append(num_times)
        return orig(self, num_times, *a, **k)

    monkeypatch.setattr(pmf.SparsePLDPmf, "self_compose", spy)
    accounting._eps_pld_at((Segment(0.01, 1.0, 10**7),), DELTA, 1e-2)
    assert seen and max(seen) <= 64


def test_progress_is_reported_while_accounting():
    lines: list[str] = []
    with accounting.reporting_progress(lines.append):
        epsilon(0.02, 1.3, 123, DELTA)
        noise_multiplier(3.0, 0.02, 77, DELTA, accountant="rdp")
    assert any("PLD" in ln for ln in lines)
    assert any("sigma" in ln for ln in lines)


def test_sample_rate_for_takes_keywords_only():
    assert sample_rate_for(batch_size=256, dataset_size=60000) == 256 / 60000
    with pytest.raises(TypeError):
        sample_rate_for(256, 60000)  # type: ignore[misc]


def test_dir_of_dp_lists_only_the_public_names():
    import dp

    names = dir(dp)
    for junk in ("Any", "TYPE_CHECKING", "annotations"):
        assert junk not in names
    assert "epsilon" in names and "check_delta" in names and "DeltaWarning" in names
    assert set(dp.__all__) <= set(names)


def test_a_capped_pld_is_never_looser_than_rdp_and_says_so():
    hist = [Segment(0.01, 1.0, 10**8)]
    pld = epsilon_of_history(hist, DELTA).epsilon
    rdp = epsilon_of_history(hist, DELTA, accountant="rdp").epsilon
    assert pld <= accounting.quick_upper_bound(tuple(hist), DELTA)
    assert pld <= rdp
    assert accounting.pld_was_capped(hist, DELTA)
    assert not accounting.pld_was_capped([Segment(0.01, 1.0, 1000)], DELTA)
