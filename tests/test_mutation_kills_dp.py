"""Range checks of the DP parameters that a one-line bug could weaken
unnoticed (each test fails with its check weakened)."""

from __future__ import annotations

import pytest

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
