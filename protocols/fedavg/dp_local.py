"""Local DP-SGD clients for the FedAvg driver (``dp="local"``).

Each client wraps its model once in a :class:`dp.LocalDPTrainer`, which
keeps its accountant across rounds and refuses (``PrivacyBudgetExceeded``)
any round that would pass its budget, before reading data. All clients use
one Poisson sampling rate, ``batch_size / median client size`` (so a bigger
client takes bigger expected batches), which makes their accounting, and
its cost, identical: one calibration and one epsilon evaluation per round
serve every client that trained as often. The noise is
calibrated for the worst case: every client trains in every one of the
configured rounds (``rounds * local_epochs`` epochs), so a client's
example-level epsilon never exceeds the target whichever rounds it is
picked for. Privacy unit: one example; adjacency: add/remove one example.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from secagg.errors import ParameterError

from .config import FedAvgConfig
from .params import flatten_model
from .tasks import Task

__all__ = ["DPClient", "make_dp_trainers"]


class DPClient:
    """One client's DP-SGD trainer with the driver's trainer interface."""

    def __init__(self, cfg: FedAvgConfig, task: Task, index: int, sample_rate: float) -> None:
        from dp import LocalDPTrainer
        from dp.accounting import steps_for_epochs

        dataset = task.client_datasets[index]
        self.num_examples = len(dataset)  # type: ignore[arg-type]
        planned_steps = cfg.rounds * steps_for_epochs(cfg.local_epochs, sample_rate)
        self.trainer = LocalDPTrainer(
            task.model_factory(),
            dataset,
            sample_rate=sample_rate,
            max_grad_norm=cfg.max_grad_norm,
            lr=cfg.client_lr,
            loss_fn=task.loss_fn(),
            noise_multiplier=cfg.noise_multiplier,
            target_epsilon=cfg.target_epsilon,
            delta=cfg.delta,
            planned_steps=None if cfg.target_epsilon is None else planned_steps,
            accountant=cfg.accountant,
            secure_mode=cfg.secure_noise,
            seed=None if cfg.secure_noise else cfg.seed * 7919 + index,
        )
        self.accountant_name = self.trainer.accountant
        # share the parameters with the driver as one flat float32 buffer
        self.params: npt.NDArray[np.float32] = flatten_model(self.trainer.model)

    def train(self, epochs: int, round: int | None = None) -> dict[str, Any]:
        """One round of local DP-SGD; raises ``PrivacyBudgetExceeded`` before
        touching data if it would pass the budget."""
        stats = self.trainer.train_round(epochs, round=round)
        return stats.as_dict()

    def epsilon(self, delta: float) -> float:
        """Example-level epsilon spent so far, at the trainer's delta."""
        return float(self.trainer.epsilon())


def make_dp_trainers(cfg: FedAvgConfig, task: Task) -> list[DPClient]:
    """One :class:`DPClient` per client dataset, sharing one sampling rate."""
    import torch

    sizes = [len(d) for d in task.client_datasets]  # type: ignore[arg-type]
    if cfg.delta >= 1 / max(sizes):
        raise ParameterError(
            f"config key 'delta' is {cfg.delta}; with dp='local' it must be below 1/N for "
            f"the largest client dataset, N = {max(sizes)}: 1/N = {1 / max(sizes):.3g} "
            "(a delta that large allows releasing one example outright)"
        )
    rate = min(1.0, cfg.batch_size / float(np.median(sizes)))
    out = []
    for k in range(len(task.client_datasets)):
        torch.manual_seed(cfg.seed)
        out.append(DPClient(cfg, task, k, rate))
    return out
