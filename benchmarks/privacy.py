"""Privacy-budget benchmark: test accuracy against epsilon on ``load_digits``.

Runs DP-SGD on the 8x8 digits shipped with scikit-learn (no download),
stratified 80/20 split, fixed seeds, at epsilon in {0.5, 1, 2, 4, 8, inf}
and delta = 1e-5:

* centralized DP-SGD (one party holds all 1437 training examples);
* federated local DP-SGD: 10 clients (IID, and Dirichlet(0.5) label skew),
  each running :class:`dp.LocalDPTrainer` with an example-level budget of
  epsilon, through the library's FedAvg driver (plain aggregation, the
  unweighted mean of local DP-SGD); with one local step per round (the
  selected configuration) and, in full mode, with five local steps per round.

Privacy unit: one training example; adjacency: add/remove one example; the
accountant (PLD by default) is recorded with every number, next to what PRV
and RDP say for the same run. Hyperparameters are fixed per epsilon (see
``CENTRAL`` and ``FEDERATED``); they were chosen once on a validation split
of the training set (``--search`` reruns that search and prints what it
chooses; ``--validation`` evaluates a fixed configuration on that split),
and that choice is not itself accounted for. ``FEDERATED_MULTI`` is one fixed configuration.

Also measured: the DP-SGD step time against plain SGD for each grad-sample
mode, and the cost of the cryptographic (secure-mode) noise.

    secagg bench privacy [--quick] [--out DIR] [--seeds N] [--validation] [--search]
    secagg bench privacy --distributed [--quick] [--out DIR] [--seeds N]
    secagg bench privacy --distributed-sgd [--quick] [--out DIR] [--seeds N] [--epsilons EPS ...]

``--distributed`` runs the client-level grid of
:mod:`benchmarks.privacy_distributed` instead: 1,000 synthetic clients,
central against distributed DP, and accuracy against bits.
``--distributed-sgd`` compares centralized DP-SGD with example-level
distributed DP-SGD (``dp="distributed-sgd"``: 10 clients, one step per
round, the noise shares added inside secagg) at the same hyperparameters.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._common import table, write_json

SUITE = "privacy"
DELTA = 1e-5
EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0, math.inf)
QUICK_EPSILONS = (1.0, 8.0, math.inf)
N_CLIENTS = 10
DIRICHLET_ALPHA = 0.5


@dataclass(frozen=True)
class Config:
    """Training hyperparameters of one run.

    ``sample_rate`` is the Poisson rate per step (1.0: full batch);
    centralized runs do ``epochs / sample_rate`` steps, federated runs do
    ``rounds`` rounds of ``local_steps`` steps on every client. The reported
    model is the average of the iterates over the last ``average_tail`` of
    training (post-processing, free in privacy terms)."""

    sample_rate: float
    lr: float
    epochs: float = 0.0
    rounds: int = 0
    local_steps: int = 0
    clip: float = 1.0
    average_tail: float = 0.5


#: centralized DP-SGD, per target epsilon (inf: the same loop without DP)
CENTRAL: dict[float, Config] = {
    0.5: Config(sample_rate=1.0, epochs=30, lr=2.0, average_tail=0.5),
    1.0: Config(sample_rate=1.0, epochs=30, lr=2.0, average_tail=0.2),
    2.0: Config(sample_rate=0.7, epochs=40, lr=2.0, average_tail=0.5),
    4.0: Config(sample_rate=0.7, epochs=60, lr=4.0, average_tail=0.2),
    8.0: Config(sample_rate=0.35, epochs=60, lr=4.0, average_tail=0.2),
    math.inf: Config(sample_rate=0.05, epochs=60, lr=0.5, average_tail=0.0),
}

#: federated local DP-SGD, per target epsilon (each client's example-level
#: budget). The selection favoured one full-batch local step per round: with
#: weighted averaging that equals one centralized step carrying ten clients'
#: independent noise, so IID and Dirichlet splits then give the same model.
FEDERATED: dict[float, Config] = {
    0.5: Config(sample_rate=1.0, rounds=20, local_steps=1, lr=2.0),
    1.0: Config(sample_rate=1.0, rounds=20, local_steps=1, lr=2.0),
    2.0: Config(sample_rate=1.0, rounds=20, local_steps=1, lr=4.0),
    4.0: Config(sample_rate=1.0, rounds=20, local_steps=1, lr=4.0),
    8.0: Config(sample_rate=1.0, rounds=20, local_steps=1, lr=4.0),
    math.inf: Config(sample_rate=0.2, rounds=30, local_steps=5, lr=0.5, average_tail=0.0),
}

#: a multi-step federated variant (full mode only), the same at every epsilon:
#: five local steps per round let client drift show the effect of label skew
FEDERATED_MULTI: dict[float, Config] = {
    **{e: Config(sample_rate=1.0, rounds=50, local_steps=5, lr=1.0, average_tail=0.0)
       for e in (0.5, 1.0, 2.0, 4.0, 8.0)},
    math.inf: Config(sample_rate=0.2, rounds=30, local_steps=5, lr=0.5, average_tail=0.0),
}


# -------------------------------------------------------------------- data


@dataclass
class Data:
    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any


def load_data(validation: bool = False) -> Data:
    """Digits, stratified 80/20 split (seed 0). Pixels 0..16 are mapped to
    [-1, 1] with a fixed, data-independent scaling. With ``validation``, the
    test set is replaced by a stratified 20 % of the training set."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    if validation:
        xtr, xte, ytr, yte = train_test_split(
            xtr, ytr, test_size=0.2, stratify=ytr, random_state=1
        )

    def prep(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(a / 8.0 - 1.0, dtype=torch.float32)

    return Data(prep(xtr), torch.tensor(ytr), prep(xte), torch.tensor(yte))


def split_clients(y: np.ndarray, kind: str, seed: int, k: int = N_CLIENTS) -> list[np.ndarray]:
    """Indices of ``k`` clients: ``"iid"`` (random equal shares) or
    ``"dirichlet"`` (per-class shares from Dirichlet(0.5); every client gets
    at least 10 examples), from the FedAvg driver's own splits."""
    from protocols.fedavg.tasks import dirichlet_split, iid_split

    rng = np.random.default_rng(seed)
    if kind == "iid":
        return iid_split(len(y), k, rng)
    return dirichlet_split(y, k, DIRICHLET_ALPHA, rng, min_size=10)


# ------------------------------------------------------------------ models


def make_model(seed: int) -> Any:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Linear(64, 10)


def accuracy(model: Any, x: Any, y: Any) -> float:
    import torch

    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


class TailAverage:
    """Running mean of parameter vectors (averaging iterates is post-processing)."""

    def __init__(self) -> None:
        self.total: np.ndarray | None = None
        self.n = 0

    def add(self, v: np.ndarray) -> None:
        self.total = v.astype(np.float64) if self.total is None else self.total + v
        self.n += 1

    def mean(self) -> np.ndarray:
        assert self.total is not None
        return (self.total / self.n).astype(np.float32)


def _flat(model: Any) -> np.ndarray:
    import torch

    return torch.nn.utils.parameters_to_vector(model.parameters()).detach().numpy().copy()


def _load(model: Any, v: np.ndarray) -> None:
    import torch

    torch.nn.utils.vector_to_parameters(torch.from_numpy(v.astype(np.float32)), model.parameters())


def _plain_steps(model: Any, x: Any, y: Any, cfg: Config, steps: int, gen: Any) -> None:
    """Non-private SGD with Poisson batches (the epsilon = inf baseline)."""
    import torch
    from torch import nn

    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    crit = nn.CrossEntropyLoss()
    n = len(y)
    for _ in range(steps):
        idx = (torch.rand(n, generator=gen) < cfg.sample_rate).nonzero().reshape(-1)
        if len(idx) == 0:
            continue
        opt.zero_grad()
        crit(model(x[idx]), y[idx]).backward()
        opt.step()


# -------------------------------------------------------------------- runs


def run_central(data: Data, eps: float, cfg: Config, seed: int, accountant: str) -> dict[str, Any]:
    """Centralized DP-SGD at example-level ``eps``; returns accuracy and privacy."""
    import torch

    from dp import LocalDPTrainer, steps_for_epochs

    model = make_model(seed)
    steps = steps_for_epochs(cfg.epochs, cfg.sample_rate)
    chunks = 10 if cfg.average_tail > 0 else 1
    sizes = [steps // chunks + (1 if i < steps % chunks else 0) for i in range(chunks)]
    first_avg = round(chunks * (1 - cfg.average_tail))
    avg = TailAverage()
    t0 = time.perf_counter()
    out: dict[str, Any] = {"steps": steps}
    if math.isinf(eps):
        gen = torch.Generator().manual_seed(seed)
        for i, s in enumerate(sizes):
            _plain_steps(model, data.x_train, data.y_train, cfg, s, gen)
            if i >= first_avg and cfg.average_tail > 0:
                avg.add(_flat(model))
        out.update(noise_multiplier=0.0, epsilon=math.inf)
    else:
        tr = LocalDPTrainer(
            model,
            (data.x_train, data.y_train),
            sample_rate=cfg.sample_rate,
            max_grad_norm=cfg.clip,
            target_epsilon=eps,
            delta=DELTA,
            planned_steps=steps,
            lr=cfg.lr,
            accountant=accountant,
            grad_sample_mode="ew",
            secure_mode=False,
            seed=seed,
        )
        for i, s in enumerate(sizes):
            tr.train_round(steps=s, round=i)
            if i >= first_avg:
                avg.add(tr.get_flat_params())
        g = tr.epsilon()
        out.update(noise_multiplier=tr.noise_multiplier, epsilon=g.epsilon, guarantee=g.as_dict())
    if avg.n:
        _load(model, avg.mean())
    out.update(accuracy=accuracy(model, data.x_test, data.y_test),
               seconds=time.perf_counter() - t0)
    return out


def run_federated(
    data: Data, eps: float, cfg: Config, seed: int, kind: str, accountant: str
) -> dict[str, Any]:
    """FedAvg over 10 clients running local DP-SGD at example-level ``eps`` each,
    through the library's FedAvg driver (``protocols.fedavg``) with plain
    aggregation: every client takes part in every round, none drops out.
    Local DP-SGD averages the updates unweighted (example counts are
    private); ``eps = inf`` is plain FedAvg weighted by example counts."""
    import torch
    from torch.utils.data import TensorDataset

    from dp.accounting import noise_multiplier as calibrate
    from protocols.fedavg import FedAvgConfig, Task, run_fedavg

    parts = split_clients(data.y_train.numpy(), kind, seed)
    sizes = [len(p) for p in parts]
    task = Task(
        model_factory=lambda: torch.nn.Linear(64, 10),
        client_datasets=[TensorDataset(data.x_train[p], data.y_train[p]) for p in parts],
        test_dataset=TensorDataset(data.x_test, data.y_test),
        kind="classification",
        name="digits-linear",
    )
    private = math.isfinite(eps)
    median = float(np.median(sizes))
    # the driver's Poisson rate is batch_size / median size; an epoch is 1/rate steps
    batch = max(1, math.ceil(cfg.sample_rate * median)) if cfg.sample_rate < 1 else max(sizes)
    epochs = max(1, round(cfg.local_steps * cfg.sample_rate))
    fcfg = FedAvgConfig(
        num_clients=N_CLIENTS, clients_per_round=N_CLIENTS, rounds=cfg.rounds,
        local_epochs=epochs, batch_size=batch, client_lr=cfg.lr, server_lr=1.0,
        aggregation="plain", dropout_rate=0.0, update_clip=1000.0,
        max_examples_per_client=max(sizes),
        dp="local" if private else "none",
        target_epsilon=eps if private else None, noise_multiplier=None, delta=DELTA,
        accountant=accountant, max_grad_norm=cfg.clip, secure_noise=False,
        seed=seed, progress=False,
    )
    first_avg = round(cfg.rounds * (1 - cfg.average_tail))
    avg = TailAverage()

    def tail(r: int, params: np.ndarray) -> None:
        if r - 1 >= first_avg and cfg.average_tail > 0:
            avg.add(params)

    t0 = time.perf_counter()
    res = run_fedavg(fcfg, task, write=False, on_params=tail)
    model = res.model
    if avg.n:
        _load(model, avg.mean())
    planned = cfg.rounds * cfg.local_steps
    out: dict[str, Any] = {
        "accuracy": accuracy(model, data.x_test, data.y_test),
        "seconds": time.perf_counter() - t0,
        "client_sizes": sizes,
        "steps_per_client": planned,
    }
    if private:
        rate = min(1.0, batch / median)
        last = res.final
        out.update(
            noise_multiplier=calibrate(eps, rate, planned, DELTA, accountant=accountant),
            epsilon=float(last.epsilon or 0.0),
            guarantee={"epsilon": last.epsilon, "delta": DELTA, "unit": last.privacy_unit,
                       "accountant": last.accountant},
        )
    else:
        out.update(noise_multiplier=0.0, epsilon=math.inf)
    return out


def measure_overhead(data: Data, quick: bool) -> dict[str, Any]:
    """Seconds per step of plain SGD and of DP-SGD in each grad-sample mode,
    on the benchmark's linear model and on a small MLP, plus secure noise."""
    import torch
    from torch import nn

    from dp import LocalDPTrainer, time_grad_sample_modes

    steps, repeat = (10, 3) if quick else (30, 5)
    b = 256
    x, y = data.x_train[:b], data.y_train[:b]
    models = {
        "linear 64-10": lambda: nn.Linear(64, 10),
        "mlp 64-256-10": lambda: nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10)),
    }
    result: dict[str, Any] = {"batch_size": b, "threads": torch.get_num_threads(), "models": {}}
    for name, make in models.items():
        t = time_grad_sample_modes(make, (x, y), steps=steps, repeat=repeat)
        ratios = {m: t[m] / t["sgd"] for m in t if m != "sgd"}
        result["models"][name] = {
            "seconds_per_step": t,
            "overhead_vs_sgd": ratios,
            "fastest_mode": min(ratios, key=lambda m: ratios[m]),
        }
    # secure (cryptographic) noise vs torch's generator, same mode, same model
    per_mode: dict[str, float] = {}
    for secure in (False, True):
        torch.manual_seed(0)
        kw: dict[str, Any] = {"secure_mode": secure}
        if not secure:
            kw["seed"] = 0
        tr = LocalDPTrainer(
            nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10)),
            (data.x_train, data.y_train),
            batch_size=b,
            max_grad_norm=1.0,
            noise_multiplier=1.0,
            grad_sample_mode="ghost",  # the fastest mode for this model
            **kw,
        )
        tr.train_round(steps=3)
        best = math.inf
        for _ in range(repeat):
            t0 = time.perf_counter()
            tr.train_round(steps=steps)
            best = min(best, (time.perf_counter() - t0) / steps)
        per_mode["secure" if secure else "torch_rng"] = best
    result["secure_noise"] = {
        "model": "mlp 64-256-10",
        "seconds_per_step": per_mode,
        "ratio": per_mode["secure"] / per_mode["torch_rng"],
    }
    return result


# ------------------------------------------------------------------ search


def search_grid(quick: bool) -> dict[str, list[Config]]:
    """The candidates ``--search`` tries for each setting and epsilon."""
    if quick:
        return {
            "centralized": [Config(sample_rate=q, epochs=30, lr=lr, average_tail=0.5)
                            for q in (0.7, 1.0) for lr in (2.0, 4.0)],
            "federated": [Config(sample_rate=1.0, rounds=20, local_steps=1, lr=lr)
                          for lr in (2.0, 4.0)],
        }
    return {
        "centralized": [
            Config(sample_rate=q, epochs=e, lr=lr, average_tail=t)
            for q in (0.35, 0.7, 1.0) for e in (30, 40, 60) for lr in (2.0, 4.0)
            for t in (0.2, 0.5)
        ],
        "federated": [
            Config(sample_rate=1.0, rounds=r, local_steps=1, lr=lr)
            for r in (20, 30) for lr in (1.0, 2.0, 4.0)
        ],
    }


def search(epsilons: Sequence[float], seeds: list[int], accountant: str, quick: bool,
           kind: str = "iid") -> list[dict[str, Any]]:
    """Choose hyperparameters per epsilon on a validation split of the training
    set (never the test set): every candidate of :func:`search_grid`, mean
    accuracy over ``seeds``, the best kept. The search itself is not
    accounted for (each candidate run meets the budget on its own)."""
    data = load_data(validation=True)
    rows = []
    for setting, candidates in search_grid(quick).items():
        for eps in epsilons:
            if not math.isfinite(eps):
                continue
            scored = []
            for cfg in candidates:
                accs = [
                    run_central(data, eps, cfg, s, accountant)["accuracy"]
                    if setting == "centralized"
                    else run_federated(data, eps, cfg, s, kind, accountant)["accuracy"]
                    for s in seeds
                ]
                scored.append((float(np.mean(accs)), cfg))
            best_acc, best = max(scored, key=lambda t: t[0])
            rows.append({"setting": setting, "epsilon": eps, "validation_accuracy": best_acc,
                         "config": asdict(best), "candidates": len(candidates)})
            print(f"search {setting:<12} eps={eps:<4g} best validation acc={best_acc:.3f} "
                  f"{best}", flush=True)
    return rows


# ------------------------------------------------------------------ report


def _summ(vals: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(vals, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=0))


def plot(rows: list[dict[str, Any]], path: Path, accountant: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    finite = sorted({r["epsilon_target"] for r in rows if math.isfinite(r["epsilon_target"])})
    inf_x = (max(finite) * 2.2) if finite else 1.0
    styles = {
        "centralized": "o-",
        "federated IID, 1 local step": "s-",
        "federated Dirichlet(0.5), 1 local step": "^-",
        "federated IID, 5 local steps": "s--",
        "federated Dirichlet(0.5), 5 local steps": "^--",
    }
    for setting, style in styles.items():
        rs = [r for r in rows if r["setting"] == setting]
        if not rs:
            continue
        fr = [r for r in rs if math.isfinite(r["epsilon_target"])]
        fr.sort(key=lambda r: r["epsilon_target"])
        line = ax.errorbar(
            [r["epsilon_target"] for r in fr],
            [r["accuracy"] for r in fr],
            yerr=[r["accuracy_std"] for r in fr],
            fmt=style,
            capsize=3,
            label=setting,
        )
        for r in rs:
            if math.isinf(r["epsilon_target"]):
                ax.plot([inf_x], [r["accuracy"]], style[0], color=line[0].get_color())
    ax.set_xscale("log")
    ticks = [*finite, inf_x]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in finite] + ["∞ (no DP)"])
    ax.minorticks_off()
    ax.set_xlabel(f"example-level ε (δ = {DELTA:g}, {accountant.upper()} accountant)")
    ax.set_ylabel("test accuracy")
    n = len(rows[0]["runs"]) if rows else 0
    ax.set_title("DP-SGD on load_digits (linear model), "
                 + (f"mean ± std of {n} seeds" if n > 1 else "one seed"))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _json_safe(obj: Any) -> Any:
    """Replace non-finite floats (not valid JSON) with strings."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "inf" if obj > 0 else ("-inf" if obj < 0 else "nan")
    if isinstance(obj, dict):
        return {(_json_safe(k) if isinstance(k, float) else k): _json_safe(v)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


#: distributed DP-SGD per target epsilon: the centralized configuration, but
#: full batches where the centralized one subsamples (the distributed
#: accountant's amplification bound for subsampling, Zhu & Wang's general
#: one, is loose at rates like 0.35). Fixed a priori, not searched.
DISTRIBUTED_SGD: dict[float, Config] = {
    e: (c if c.sample_rate == 1.0 else Config(sample_rate=1.0, epochs=c.epochs, lr=c.lr,
                                               average_tail=c.average_tail))
    for e, c in CENTRAL.items() if math.isfinite(e)
}


def _all_survive_sum(seed: int) -> Any:
    """secagg whose integer sum needs every client (threshold n): noise then
    calibrated for all 10 shares, and any dropout aborts the round."""
    from protocols.fedavg.aggregation import SecAggSum

    class AllSurvive(SecAggSum):
        def threshold(self, n: int) -> int:
            super().threshold(n)
            return n

    return AllSurvive(clip=1.0, max_summands=N_CLIENTS, seed=seed)


def run_distributed_sgd(
    data: Data, eps: float, cfg: Config, seed: int, kind: str = "iid",
    all_survive: bool = False,
) -> dict[str, Any]:
    """Example-level distributed DP-SGD at ``eps``: 10 clients, secagg, one
    step per round (``dp="distributed-sgd"``), the same sample rate, steps,
    learning rate and tail averaging as centralized ``cfg``; the noise is
    calibrated for the secure sum's threshold of survivors (RDP accountant),
    no client drops out, so the spent epsilon is below the target."""
    from torch.utils.data import TensorDataset

    from dp import steps_for_epochs
    from protocols.fedavg import FedAvgConfig, Task, run_fedavg

    parts = split_clients(data.y_train.numpy(), kind, seed)
    task = Task(
        model_factory=lambda: make_model(seed),
        client_datasets=[TensorDataset(data.x_train[p], data.y_train[p]) for p in parts],
        test_dataset=TensorDataset(data.x_test, data.y_test),
        kind="classification",
        name="digits-linear",
    )
    steps = steps_for_epochs(cfg.epochs, cfg.sample_rate)
    fcfg = FedAvgConfig(
        num_clients=N_CLIENTS, clients_per_round=N_CLIENTS, rounds=steps,
        client_lr=cfg.lr, server_lr=1.0, aggregation="secagg", dropout_rate=0.0,
        dp="distributed-sgd", target_epsilon=eps, noise_multiplier=None, delta=DELTA,
        max_grad_norm=cfg.clip, example_sample_rate=cfg.sample_rate, dp_bits=32,
        seed=seed, progress=False,
    )
    first_avg = round(steps * (1 - cfg.average_tail))
    avg = TailAverage()

    def tail(r: int, params: np.ndarray) -> None:
        if r - 1 >= first_avg and cfg.average_tail > 0:
            avg.add(params)

    t0 = time.perf_counter()
    res = run_fedavg(fcfg, task, write=False, on_params=tail,
                     secure_sum=_all_survive_sum(seed) if all_survive else None)
    model = res.model
    if avg.n:
        _load(model, avg.mean())
    last = res.final
    return {
        "accuracy": accuracy(model, data.x_test, data.y_test),
        "seconds": time.perf_counter() - t0,
        "steps": steps,
        "epsilon": float(last.epsilon or 0.0),
        # std of the summed noise / clip: the central noise multiplier it matches
        "noise_multiplier": float(last.noise_std or 0.0)
        * cfg.sample_rate * len(data.y_train) / cfg.clip,
        "near_boundary_max": max(r.near_boundary or 0.0 for r in res.rounds),
        "guarantee": last.privacy_guarantee,
        "client_sizes": [len(p) for p in parts],
    }


def main_distributed_sgd(quick: bool, seeds: list[int], out_dir: Path, accountant: str,
                         only: Sequence[float] | None = None) -> int:
    """Centralized DP-SGD against example-level distributed DP-SGD over secagg
    (at the epsilons ``only`` if given, each one of 0.5, 1, 2, 4, 8)."""
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    started = time.perf_counter()
    data = load_data()
    epsilons = tuple(only) if only else (1.0, 8.0) if quick else (0.5, 1.0, 2.0, 4.0, 8.0)
    rows: list[dict[str, Any]] = []
    for eps in epsilons:
        cfg, dcfg = CENTRAL[eps], DISTRIBUTED_SGD[eps]
        for setting, run in (
            ("centralized DP-SGD", lambda s: run_central(data, eps, cfg, s, accountant)),
            ("distributed DP-SGD, noise for threshold",
             lambda s: run_distributed_sgd(data, eps, dcfg, s)),
            ("distributed DP-SGD, noise for all 10",
             lambda s: run_distributed_sgd(data, eps, dcfg, s, all_survive=True)),
        ):
            runs = [run(s) for s in seeds]
            acc, sd = _summ([r["accuracy"] for r in runs])
            rows.append({
                "setting": setting, "epsilon_target": eps, "accuracy": acc,
                "accuracy_std": sd, "epsilon_spent": max(r["epsilon"] for r in runs),
                "noise_multiplier": runs[0]["noise_multiplier"],
                "seconds": float(np.mean([r["seconds"] for r in runs])), "runs": runs,
                "config": asdict(cfg if setting.startswith("central") else dcfg),
            })
            r = rows[-1]
            print(f"{setting:<46} eps={eps:<4g} acc={acc:.3f} spent={r['epsilon_spent']:.3g} "
                  f"z={r['noise_multiplier']:.3g} ({r['seconds']:.1f} s/run)", flush=True)
    print()
    print(table([{"setting": r["setting"], "epsilon": r["epsilon_target"],
                  "accuracy": r["accuracy"],
                  **({"± (std)": r["accuracy_std"]} if len(seeds) > 1 else {}),
                  "ε spent": r["epsilon_spent"], "noise multiplier": r["noise_multiplier"]}
                 for r in rows]))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = write_json(f"{SUITE}-dpsgd", _json_safe({
        "dataset": "sklearn load_digits, stratified 80/20 split (seed 0)",
        "delta": DELTA, "privacy_unit": "example", "clients": N_CLIENTS, "split": "iid",
        "central_accountant": accountant,
        "distributed": "dp='distributed-sgd' over secagg (RDP accountant), noise "
        "calibrated for the secure sum's threshold of survivors, or for all 10 clients "
        "(a secure sum that aborts on any dropout); no dropouts",
        "seeds": seeds, "quick": quick, "results": rows,
        "total_seconds": time.perf_counter() - started,
    }), str(out_dir / f"{SUITE}-dpsgd.json"))
    print(f"\nwrote {path} in {time.perf_counter() - started:.0f} s")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks privacy",
        description="Test accuracy against epsilon for DP-SGD on load_digits "
        "(centralized, and federated local DP-SGD with 10 clients).",
    )
    parser.add_argument("--quick", action="store_true",
                        help="epsilon in {1, 8, inf}, one seed (about a minute)")
    parser.add_argument("--out", default="bench-results",
                        help="output directory for privacy.json and privacy.png")
    parser.add_argument("--seeds", type=int, default=None,
                        help="seeds per point (default 3, or 1 with --quick)")
    parser.add_argument("--accountant", default="pld", choices=("pld", "prv", "rdp"))
    parser.add_argument("--validation", action="store_true",
                        help="evaluate on a validation split of the training set instead "
                        "of the test set (the set-up used to choose hyperparameters)")
    parser.add_argument("--skip-overhead", action="store_true",
                        help="do not measure step-time overhead")
    parser.add_argument("--search", action="store_true",
                        help="choose the hyperparameters per epsilon on a validation split of "
                        "the training set (the search behind CENTRAL and FEDERATED) and write "
                        "privacy-search.json instead of the accuracy table")
    parser.add_argument("--distributed", action="store_true",
                        help="client-level DP-FedAvg on 1,000 synthetic clients (100 per "
                        "round): central vs distributed DP at epsilon 1-8, and accuracy vs "
                        "bits with the measured wrap rate (a few minutes with --quick)")
    parser.add_argument("--distributed-sgd", action="store_true",
                        help="example-level: centralized DP-SGD against distributed DP-SGD "
                        "(10 clients, noise shares inside secagg) at epsilon 1 and 8 with "
                        "--quick, 0.5-8 otherwise; writes privacy-dpsgd.json")
    parser.add_argument("--epsilons", type=float, nargs="+", default=None,
                        choices=sorted(DISTRIBUTED_SGD), metavar="EPS",
                        help="with --distributed-sgd: only these target epsilons "
                        f"(each one of {', '.join(f'{e:g}' for e in sorted(DISTRIBUTED_SGD))})")
    args = parser.parse_args(argv)
    if args.epsilons and not args.distributed_sgd:
        parser.error("--epsilons applies to --distributed-sgd only")
    if args.distributed_sgd:
        dseeds = list(range(args.seeds if args.seeds else (1 if args.quick else 3)))
        return main_distributed_sgd(args.quick, dseeds, Path(args.out), args.accountant,
                                    args.epsilons)
    if args.distributed:
        from . import privacy_distributed

        dseeds = list(range(args.seeds if args.seeds else (1 if args.quick else 3)))
        return privacy_distributed.main(args.quick, dseeds, Path(args.out))

    import torch

    # tiny models: one thread avoids oversubscription stalls on a busy machine
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    seeds = list(range(args.seeds if args.seeds else (1 if args.quick else 3)))
    epsilons = QUICK_EPSILONS if args.quick else EPSILONS
    started = time.perf_counter()
    if args.search:
        found = search(epsilons, seeds, args.accountant, args.quick)
        out_dir = Path(args.out)
        out_dir.mkdir(parents=True, exist_ok=True)
        print()
        print(table([{k: v for k, v in r.items() if k != "config"} | r["config"]
                     for r in found]))
        path = write_json(f"{SUITE}-search", _json_safe({
            "evaluated_on": "validation split of train (20 %, stratified, seed 1)",
            "delta": DELTA, "accountant": args.accountant, "seeds": seeds,
            "grid": {k: [asdict(c) for c in v] for k, v in search_grid(args.quick).items()},
            "chosen": found,
        }), str(out_dir / f"{SUITE}-search.json"))
        print(f"\nwrote {path} in {time.perf_counter() - started:.0f} s")
        return 0
    data = load_data(args.validation)

    rows: list[dict[str, Any]] = []
    settings: list[tuple[str, str | None, dict[float, Config]]] = [
        ("centralized", None, CENTRAL),
        ("federated IID, 1 local step", "iid", FEDERATED),
        ("federated Dirichlet(0.5), 1 local step", "dirichlet", FEDERATED),
    ]
    if not args.quick:
        settings += [
            ("federated IID, 5 local steps", "iid", FEDERATED_MULTI),
            ("federated Dirichlet(0.5), 5 local steps", "dirichlet", FEDERATED_MULTI),
        ]
    for setting, kind, configs in settings:
        for eps in epsilons:
            cfg = configs[eps]
            runs = [
                run_central(data, eps, cfg, s, args.accountant)
                if kind is None
                else run_federated(data, eps, cfg, s, kind, args.accountant)
                for s in seeds
            ]
            acc, sd = _summ([r["accuracy"] for r in runs])
            row = {
                "setting": setting,
                "epsilon_target": eps,
                "accuracy": acc,
                "accuracy_std": sd,
                "epsilon_spent": max(r["epsilon"] for r in runs),
                "noise_multiplier": runs[0]["noise_multiplier"],
                "accountant": args.accountant if math.isfinite(eps) else "-",
                "seconds": float(np.mean([r["seconds"] for r in runs])),
                "config": asdict(cfg),
                "runs": runs,
            }
            if math.isfinite(eps):
                from dp import compare_accountants

                steps = runs[0]["steps"] if kind is None else runs[0]["steps_per_client"]
                by = compare_accountants(cfg.sample_rate, row["noise_multiplier"], steps, DELTA)
                row["epsilon_by_accountant"] = {k: g.epsilon for k, g in by.items()}
            rows.append(row)
            spread = f"±{sd:.3f}" if len(seeds) > 1 else " (one seed)"
            print(f"{setting:<40} eps={eps:<4g} acc={acc:.3f}{spread} "
                  f"sigma={row['noise_multiplier']:.3g} ({row['seconds']:.1f} s/run)",
                  flush=True)

    overhead = None if args.skip_overhead else measure_overhead(data, args.quick)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / f"{SUITE}.png"
    plot(rows, png, args.accountant)

    summary = [
        {
            "setting": r["setting"],
            "epsilon": "inf" if math.isinf(r["epsilon_target"]) else r["epsilon_target"],
            "accuracy": r["accuracy"],
            **({"± (std)": r["accuracy_std"]} if len(seeds) > 1 else {}),
            "noise multiplier": r["noise_multiplier"],
            "accountant": r["accountant"],
            "ε PLD / PRV / RDP": " / ".join(
                f"{r['epsilon_by_accountant'][a]:.3g}" for a in ("pld", "prv", "rdp")
            )
            if "epsilon_by_accountant" in r
            else "-",
        }
        for r in rows
    ]
    print()
    print(f"Test accuracy, example-level ε at δ = {DELTA:g} ({args.accountant.upper()} "
          f"accountant), {len(seeds)} seed{'s' if len(seeds) > 1 else ''}:\n")
    print(table(summary))
    if overhead:
        print()
        over_rows = [
            {"model": name, **{m: f"{v:.2f}x" for m, v in d["overhead_vs_sgd"].items()},
             "fastest": d["fastest_mode"]}
            for name, d in overhead["models"].items()
        ]
        print("DP-SGD step time / plain SGD step time (batch 256):")
        print(table(over_rows))
        sn = overhead["secure_noise"]
        print(f"secure noise: {sn['ratio']:.2f}x the step time of torch's generator "
              f"({sn['model']})")
    payload = {
        "dataset": "sklearn load_digits, stratified 80/20 split (seed 0)",
        "evaluated_on": "validation split of train" if args.validation else "test split",
        "delta": DELTA,
        "privacy_unit": "example",
        "adjacency": "add/remove one example",
        "accountant": args.accountant,
        "model": "linear (64 -> 10), softmax cross-entropy",
        "clients": N_CLIENTS,
        "dirichlet_alpha": DIRICHLET_ALPHA,
        "seeds": seeds,
        "quick": args.quick,
        "secure_mode": False,
        "total_seconds": time.perf_counter() - started,
        "results": rows,
        "overhead": overhead,
        "plot": str(png),
    }
    path = write_json(SUITE, _json_safe(payload), str(out_dir / f"{SUITE}.json"))
    print(f"\nwrote {path} and {png} in {time.perf_counter() - started:.0f} s")
    return 0
