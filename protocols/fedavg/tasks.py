"""Federated tasks: data split over clients, a model factory and a metric.

Built in, both offline:

* ``digits``: scikit-learn's 8x8 handwritten digits (1,797 images, shipped
  inside scikit-learn), standardised, a stratified 80/20 train/test split,
  the training part split over clients IID or by a Dirichlet(alpha) label
  split; a small MLP (64-32-10).
* ``linear-regression``: synthetic ``y = X w + b + noise`` with known
  ``w`` and ``b``, split IID; a linear model. The true weights are kept on
  the task so a run can report how close it came.

Users bring their own data through :class:`Task` directly: one
``torch.utils.data.Dataset`` per client, a test set and a model factory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from secagg.errors import ParameterError

__all__ = [
    "Task",
    "digits_task",
    "dirichlet_split",
    "iid_split",
    "linear_regression_task",
    "make_task",
]


@dataclass
class Task:
    """What a FedAvg run trains.

    Attributes:
        model_factory: builds a fresh model (same architecture every call).
        client_datasets: one ``Dataset`` per client, yielding ``(x, y)``.
        test_dataset: held-out data for the global model.
        kind: ``"classification"`` (cross-entropy, accuracy) or
            ``"regression"`` (mean squared error).
        true_weights: for synthetic tasks, the parameters that generated the data.
    """

    model_factory: Callable[[], nn.Module]
    client_datasets: Sequence[Dataset]  # type: ignore[type-arg]
    test_dataset: Dataset  # type: ignore[type-arg]
    kind: str = "classification"
    name: str = "custom"
    true_weights: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("classification", "regression"):
            raise ParameterError(
                f"task kind {self.kind!r} is not one of 'classification', 'regression'"
            )
        if not self.client_datasets:
            raise ParameterError("a task needs at least one client dataset")
        for i, ds in enumerate(self.client_datasets):
            if len(ds) == 0:  # type: ignore[arg-type]
                raise ParameterError(f"client dataset {i} is empty")

    def loss_fn(self) -> nn.Module:
        return nn.CrossEntropyLoss() if self.kind == "classification" else nn.MSELoss()


def iid_split(n: int, num_clients: int, rng: np.random.Generator) -> list[npt.NDArray[np.int64]]:
    """Shuffle ``range(n)`` and cut it into ``num_clients`` near-equal parts."""
    if num_clients < 1 or num_clients > n:
        raise ParameterError(f"num_clients={num_clients} must be in [1, {n}]")
    return [np.sort(p) for p in np.array_split(rng.permutation(n), num_clients)]


def dirichlet_split(
    labels: npt.NDArray[np.int64],
    num_clients: int,
    alpha: float,
    rng: np.random.Generator,
    min_size: int = 2,
) -> list[npt.NDArray[np.int64]]:
    """Label-skewed split: for each class, client shares ~ Dirichlet(alpha).

    Redraws (up to 100 times) until every client holds at least ``min_size``
    examples. Smaller ``alpha`` means more skew.
    """
    if alpha <= 0:
        raise ParameterError(f"dirichlet alpha={alpha} must be > 0")
    if num_clients < 1 or num_clients * min_size > len(labels):
        raise ParameterError(
            f"num_clients={num_clients} cannot each get {min_size} of {len(labels)} examples"
        )
    classes = np.unique(labels)
    for _ in range(100):
        parts: list[list[int]] = [[] for _ in range(num_clients)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(labels == c))
            shares = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.array(p, dtype=np.int64)) for p in parts]
    raise ParameterError(
        f"could not give every one of {num_clients} clients {min_size} examples "
        f"with alpha={alpha}; raise alpha or lower num_clients"
    )


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))


def digits_task(
    num_clients: int,
    *,
    split: str = "dirichlet",
    alpha: float = 0.5,
    seed: int = 0,
    hidden: int = 32,
) -> Task:
    """scikit-learn digits over ``num_clients`` clients (see module docstring)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = data.data.astype(np.float32)
    y = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=seed
    )
    mean, std = x_tr.mean(axis=0), x_tr.std(axis=0)
    std = np.maximum(std, 1.0)  # nearly constant pixels (std < 1 grey level): no blow-up
    x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    rng = np.random.default_rng(seed)
    if split == "iid":
        parts = iid_split(len(y_tr), num_clients, rng)
    elif split == "dirichlet":
        parts = dirichlet_split(y_tr, num_clients, alpha, rng)
    else:
        raise ParameterError(f"split {split!r} is not one of 'iid', 'dirichlet'")
    clients = [TensorDataset(torch.from_numpy(x_tr[p]), torch.from_numpy(y_tr[p])) for p in parts]
    test = TensorDataset(torch.from_numpy(x_te), torch.from_numpy(y_te))
    return Task(
        model_factory=lambda: _mlp(64, hidden, 10),
        client_datasets=clients,
        test_dataset=test,
        kind="classification",
        name="digits",
    )


def linear_regression_task(
    num_clients: int,
    *,
    n_per_client: int = 100,
    dim: int = 5,
    noise: float = 0.1,
    seed: int = 0,
) -> Task:
    """Synthetic ``y = X w + b + N(0, noise^2)``; ``true_weights`` holds w and b."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 1.0, dim)
    b = float(rng.normal(0.0, 1.0))

    def make(n: int) -> TensorDataset:
        x = rng.normal(0.0, 1.0, (n, dim)).astype(np.float32)
        y = (x @ w + b + rng.normal(0.0, noise, n)).astype(np.float32)[:, None]
        return TensorDataset(torch.from_numpy(x), torch.from_numpy(y))

    return Task(
        model_factory=lambda: nn.Linear(dim, 1),
        client_datasets=[make(n_per_client) for _ in range(num_clients)],
        test_dataset=make(1000),
        kind="regression",
        name="linear-regression",
        true_weights={"weight": w, "bias": np.array([b])},
    )


def make_task(name: str, num_clients: int, *, split: str, alpha: float, seed: int) -> Task:
    """A built-in task by name: ``digits`` or ``linear-regression``."""
    if name == "digits":
        return digits_task(num_clients, split=split, alpha=alpha, seed=seed)
    if name == "linear-regression":
        return linear_regression_task(num_clients, seed=seed)
    raise ParameterError(f"task {name!r} is not one of 'digits', 'linear-regression'")
