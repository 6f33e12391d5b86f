"""Range checks of the DP parameters that a one-line bug could weaken
unnoticed (each test fails with its check weakened)."""

from __future__ import annotations

import pytest

import dp
from dp import distributed as M
from secagg.errors import ParameterError

_BASE = dict(mechanism="dgauss", dimension=300, l2_clip=1.0, bits=20, gamma=1e-3,
             noise_variance=100.0, num_clients=8, min_survivors=5)


@pytest.mark.parametrize("rate", [0.0, -0.1, 1.0 + 1e-9, float("nan")])
def test_distributed_params_refuse_a_sample_rate_outside_0_1(rate: float) -> None:
    """A round that runs samples someone: a rate of 0 would let the accountant
    charge nothing for it. The range is (0, 1]."""
    with pytest.raises(ParameterError, match="sample_rate"):
        M.DistributedDPParams(**_BASE, sample_rate=rate)  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", [1e-9, 0.5, 1.0])
def test_distributed_params_accept_a_sample_rate_in_0_1(rate: float) -> None:
    assert M.DistributedDPParams(**_BASE, sample_rate=rate).sample_rate == rate  # type: ignore[arg-type]


# -- dp.accounting --------------------------------------------------------------------------


def test_noise_below_the_accountable_floor_is_refused_at_its_boundary():
    from dp import accounting

    floor = accounting.MIN_NOISE_MULTIPLIER
    with pytest.raises(ParameterError, match="below"):
        dp.epsilon(sample_rate=0.01, noise_multiplier=floor / 2, steps=10, delta=1e-5,
                   accountant="rdp")
    assert dp.epsilon(sample_rate=0.01, noise_multiplier=floor, steps=10, delta=1e-5,
                      accountant="rdp").epsilon > 0


def test_delta_below_the_accountable_minimum_is_refused_at_its_boundary():
    from dp import accounting

    with pytest.raises(ParameterError):
        dp.check_delta(accounting.MIN_DELTA / 10)
    assert dp.check_delta(accounting.MIN_DELTA) == accounting.MIN_DELTA


def test_delta_of_exactly_one_over_the_population_warns():
    import warnings

    with pytest.warns(dp.DeltaWarning, match="1/N"):
        dp.check_delta(1 / 1000, population=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", dp.DeltaWarning)
        dp.check_delta(0.999 / 1000, population=1000)
