"""Client-level DP for the FedAvg driver (``dp="central"``), from the small
steps of :mod:`dp.client_level`: Poisson client sampling, L2 clipping on the
client (fixed, or adaptive with ``adaptive_clipping``), secure sum, Gaussian
noise added by the aggregator to the decoded sum, and division by the
expected number of clients. Updates are *not* weighted by example counts:
each client's clipped update counts once (the fixed denominator bounds one
client's influence on the mean).

Privacy unit: one client; adjacency: add/remove one client. The aggregator
that adds the noise sees the noiseless sum (it is trusted for DP, not for
the individual updates, which secure aggregation still hides). Each round is
charged to a client-level ledger (``ClientLevelDP.begin_round``) before any
client trains; a round past the budget raises ``PrivacyBudgetExceeded`` and
the run stops. Who took part in a round, and whether its secure sum
aborted, are not published (amplification by sampling assumes they stay
secret): an aborted round releases the noise alone.
"""

from __future__ import annotations

import math
from typing import Any

from secagg.errors import ParameterError

from .config import FedAvgConfig

__all__ = ["PoissonSampler", "make_client_level_dp"]


def make_client_level_dp(cfg: FedAvgConfig) -> Any:
    """The run's :class:`dp.client_level.ClientLevelDP`, calibrated from ``cfg``.

    The noise multiplier is ``cfg.noise_multiplier``, or the one that
    reaches ``cfg.target_epsilon`` after ``cfg.rounds`` rounds at client
    rate ``clients_per_round / num_clients``, both under ``cfg.accountant``
    (which the run's ledger then accounts with).
    """
    from dp import accounting
    from dp.client_level import AdaptiveClipping, ClientLevelDP

    rate = cfg.clients_per_round / cfg.num_clients
    if cfg.noise_multiplier is not None:
        z = cfg.noise_multiplier
    else:
        assert cfg.target_epsilon is not None
        z = accounting.noise_multiplier(cfg.target_epsilon, rate, cfg.rounds, cfg.delta,
                                        accountant=cfg.accountant)
    clip: Any = cfg.clip_norm
    if cfg.adaptive_clipping:
        expected = rate * cfg.num_clients
        count_std = cfg.clip_count_stddev if cfg.clip_count_stddev is not None else expected / 20
        if 2 * count_std <= z:
            raise ParameterError(
                f"config key 'clip_count_stddev' is {count_std:g}"
                + (" (the default, expected clients / 20)" if cfg.clip_count_stddev is None
                   else "")
                + f"; with noise multiplier {z:g} it must exceed {z / 2:g}, or the clipped "
                "count alone spends the whole budget (Andrew et al. 2021)"
            )
        clip = AdaptiveClipping(
            cfg.clip_norm,
            z,
            count_std,
            target_quantile=cfg.target_quantile,
            learning_rate=cfg.clip_learning_rate,
        )
    return ClientLevelDP(
        noise_multiplier=z,
        client_rate=rate,
        population=cfg.num_clients,
        delta=cfg.delta,
        clip_norm=clip,
        epsilon_budget=cfg.target_epsilon if cfg.target_epsilon is not None else math.inf,
        accountant=cfg.accountant,
    )


class PoissonSampler:
    """Each client takes part with probability ``client_rate``, independently,
    from a cryptographic source (the sampling the accounting assumes)."""

    def __init__(self, dp: Any) -> None:
        self.dp = dp

    def __call__(self, num_clients: int, rng: Any) -> list[int]:
        return sorted(int(c) for c in self.dp.sample(list(range(num_clients))))
