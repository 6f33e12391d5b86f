"""Client-level DP for the FedAvg driver (``dp="central"``), from the small
steps of :mod:`dp.client_level`: Poisson client sampling, L2 clipping on the
client, secure sum, Gaussian noise added by the aggregator to the decoded
sum, and division by the expected number of clients.

Privacy unit: one client; adjacency: add/remove one client. The aggregator
that adds the noise sees the noiseless sum (it is trusted for DP, not for
the individual updates, which secure aggregation still hides). Each round is
charged to a client-level ledger before any client trains; a round past the
budget raises ``PrivacyBudgetExceeded`` and the run stops.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from .config import FedAvgConfig

__all__ = ["CentralDP"]


class CentralDP:
    """The server-side state of client-level DP across rounds."""

    def __init__(self, cfg: FedAvgConfig) -> None:
        from dp import accounting
        from dp.client_level import ClientLevelDP

        self.rate = cfg.clients_per_round / cfg.num_clients
        if cfg.noise_multiplier is not None:
            z = cfg.noise_multiplier
        else:
            assert cfg.target_epsilon is not None
            z = accounting.noise_multiplier(cfg.target_epsilon, self.rate, cfg.rounds, cfg.delta)
        self.noise_multiplier = z
        self.dp = ClientLevelDP(
            noise_multiplier=z,
            client_rate=self.rate,
            population=cfg.num_clients,
            delta=cfg.delta,
            clip_norm=cfg.clip_norm,
            epsilon_budget=cfg.target_epsilon if cfg.target_epsilon is not None else math.inf,
        )
        self.accountant_name = self.dp.ledger.accountant

    def sample(self, num_clients: int) -> list[int]:
        """Poisson sampling of clients from a cryptographic source."""
        return sorted(int(c) for c in self.dp.sample(list(range(num_clients))))  # type: ignore[call-overload]

    def begin_round(self, round_idx: int) -> None:
        """Charge one round to the client-level ledger (before any training)."""
        self.dp.ledger.charge(self.rate, self.noise_multiplier, 1, round=round_idx)

    def client_step(self, delta: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Clip a client's update to L2 norm ``clip_norm`` (client side)."""
        from dp.client_level import clip_update

        return clip_update(delta, self.dp.clip_norm).vector.astype(np.float32)

    def server_step(self, total: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Add N(0, (z C)^2) to the secure sum and divide by the expected count."""
        from dp.client_level import mean_from_sum

        noisy = self.dp.noise.add(total, self.dp.clip_norm)
        return mean_from_sum(noisy, self.dp.expected_clients)

    def epsilon(self) -> float:
        return float(self.dp.epsilon())
