"""Local training on one client: plain SGD, or DP-SGD through ``dp``.

A :class:`LocalTrainer` owns one client's model (its parameters live in a
flat float32 buffer, see :mod:`protocols.fedavg.params`) and keeps whatever
state must survive between rounds (the DP accountant, above all). Each
round the driver writes the global model into ``trainer.params`` and calls
:meth:`LocalTrainer.train`; the update is ``trainer.params - global``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .params import flatten_model

__all__ = ["LocalTrainer", "evaluate"]


class LocalTrainer:
    """Plain mini-batch SGD on one client's data (no privacy)."""

    def __init__(
        self,
        model: nn.Module,
        dataset: Dataset,  # type: ignore[type-arg]
        loss_fn: nn.Module,
        *,
        lr: float,
        batch_size: int,
        seed: int,
    ) -> None:
        self.model = model
        self.params: npt.NDArray[np.float32] = flatten_model(model)
        self.dataset = dataset
        self.loss_fn = loss_fn
        self.lr = lr
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)  # data order only
        self.num_examples = len(dataset)  # type: ignore[arg-type]

    def train(self, epochs: int, round: int | None = None) -> dict[str, Any]:
        """Run ``epochs`` passes of SGD; returns ``{"loss": mean training loss}``."""
        loader = DataLoader(
            self.dataset, batch_size=self.batch_size, shuffle=True, generator=self.generator
        )
        opt = torch.optim.SGD(self.model.parameters(), lr=self.lr)
        self.model.train()
        total, count = 0.0, 0
        for _ in range(epochs):
            for x, y in loader:
                opt.zero_grad(set_to_none=True)
                loss = self.loss_fn(self.model(x), y)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(x)
                count += len(x)
        return {"loss": total / max(count, 1)}

    def epsilon(self, delta: float) -> float | None:
        """Example-level epsilon spent so far (``None``: no DP)."""
        return None


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,  # type: ignore[type-arg]
    kind: str,
    batch_size: int = 512,
) -> dict[str, float]:
    """Loss and, for classification, accuracy of ``model`` on ``dataset``."""
    model.eval()
    loss_fn: nn.Module = nn.CrossEntropyLoss(reduction="sum") if kind == "classification" else (
        nn.MSELoss(reduction="sum")
    )
    total, correct, n = 0.0, 0, 0
    for x, y in DataLoader(dataset, batch_size=batch_size):
        out = model(x)
        total += float(loss_fn(out, y))
        if kind == "classification":
            correct += int((out.argmax(dim=1) == y).sum())
        n += len(x)
    res = {"loss": total / max(n, 1)}
    if kind == "classification":
        res["accuracy"] = correct / max(n, 1)
    return res
