"""PNG plots of a FedAvg run (matplotlib from the ``plots`` extra, Agg
backend, no display needed).

* ``accuracy.png`` (``loss.png`` for regression): the test metric per
  round and, with DP, the epsilon spent per round beside it.
* ``time_split.png``: each round's wall time, stacked by exclusive part
  (the parts add up to the round's time).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .records import TIME_PARTS, FedAvgResult

__all__ = ["TIME_LABELS", "MetricSeries", "plot_metric", "plot_run", "plot_time_split"]

#: What each part of a round's time covers, as the legend says it.
TIME_LABELS = {
    "local_training": "local training (clients' SGD / DP-SGD)",
    "hot_path": "numpy hot path (encode, masks, decode)",
    "crypto": "cryptography (PRG, keys, AEAD, Shamir, Paillier)",
    "privacy": "privacy accounting and noise",
    "evaluation": "evaluation on the test set",
    "other": "codecs, protocol bookkeeping, pipeline steps",
}


def _setting(cfg: dict[str, Any]) -> str:
    dp = cfg["dp"]
    if dp != "none":
        target = (f"target ε={cfg['target_epsilon']:g}" if cfg.get("target_epsilon") is not None
                  else f"σ={cfg['noise_multiplier']:g}")
        dp = f"{dp} DP ({target}, δ={cfg['delta']:g})"
    else:
        dp = "no DP"
    return (f"{cfg['task']}, {cfg['num_clients']} clients, {cfg['aggregation']}, {dp}, "
            f"{cfg['dropout_rate']:.0%} dropout")


@dataclass(frozen=True)
class MetricSeries:
    """What the first plot shows: the test metric per round and, with DP,
    the epsilon spent per round (``None`` entries: nothing spent yet)."""

    rounds: list[int]
    accuracy: list[float] | None  # None: a regression task, plot the loss
    loss: list[float]
    epsilon: list[float | None]
    privacy_unit: str | None = None
    accountant: str | None = None
    delta: float | None = None
    target_epsilon: float | None = None


def _pyplot() -> Any:
    try:
        import matplotlib
    except ModuleNotFoundError:
        warnings.warn("matplotlib is not installed (from the checkout: pip install -e '.[plots]'): "
                      "no PNG plots written", stacklevel=3)
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_metric(series: MetricSeries, run_dir: Path, title: str) -> Path | None:
    """Write ``accuracy.png`` (``loss.png`` without an accuracy) into
    ``run_dir``, with the epsilon spent beside it when there is one."""
    plt = _pyplot()
    if plt is None:
        return None
    from matplotlib.ticker import MaxNLocator

    rounds = series.rounds
    has_eps = any(e is not None for e in series.epsilon)
    fig, axes = plt.subplots(1, 2 if has_eps else 1, figsize=(10 if has_eps else 6, 4),
                             squeeze=False)
    ax = axes[0][0]
    if series.accuracy is not None:
        ax.plot(rounds, series.accuracy, marker="o", ms=3)
        ax.set_ylabel("test accuracy")
        ax.set_title("test accuracy of the global model")
        path = run_dir / "accuracy.png"
    else:
        ax.plot(rounds, series.loss, marker="o", ms=3)
        ax.set_ylabel("test loss (mean squared error)")
        ax.set_yscale("log")
        ax.set_title("test loss of the global model")
        path = run_dir / "loss.png"
    if has_eps:
        ax2 = axes[0][1]
        ax2.plot(rounds, [float(e or 0.0) for e in series.epsilon], marker="o", ms=3,
                 color="tab:red")
        ax2.set_ylabel(f"ε spent (δ = {series.delta:g})")
        ax2.set_title(f"privacy spent, {series.privacy_unit}-level, "
                      f"{series.accountant} accountant")
        if series.target_epsilon is not None:
            ax2.axhline(series.target_epsilon, ls="--", color="grey", lw=1,
                        label=f"target ε = {series.target_epsilon:g}")
            ax2.legend(loc="lower right", fontsize=8)
        ax2.set_ylim(bottom=0)
    for a in axes[0]:
        a.set_xlabel("round")
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.grid(alpha=0.3)
    fig.suptitle(f"FedAvg: {title}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_time_split(rounds: list[int], parts: dict[str, list[float]], run_dir: Path,
                    title: str) -> Path | None:
    """Write ``time_split.png``: each round's wall time stacked by exclusive
    part (``parts`` maps a legend label to one value per round, in seconds,
    bottom part first)."""
    plt = _pyplot()
    if plt is None:
        return None
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(10, 4.2))
    bottom = [0.0] * len(rounds)
    for label, vals in parts.items():
        ax.bar(rounds, vals, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_xlabel("round")
    ax.set_ylabel("seconds (wall time)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"time per round, by part\n{title}", fontsize=10)
    # beside the bars, never over them
    handles, labels = ax.get_legend_handles_labels()  # listed top-down as stacked
    ax.legend(handles[::-1], labels[::-1], fontsize=8, loc="upper left",
              bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    path = run_dir / "time_split.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_run(result: FedAvgResult, run_dir: Path) -> list[Path]:
    """Write the run's PNGs into ``run_dir``; return their paths (none, with
    a warning, if matplotlib is not installed)."""
    cfg = result.config
    rs = result.rounds
    last = rs[-1]
    series = MetricSeries(
        rounds=[r.round for r in rs],
        accuracy=([float(r.test_accuracy or 0.0) for r in rs]
                  if rs[0].test_accuracy is not None else None),
        loss=[r.test_loss for r in rs],
        epsilon=[r.epsilon for r in rs],
        privacy_unit=last.privacy_unit, accountant=last.accountant, delta=cfg.get("delta"),
        target_epsilon=cfg.get("target_epsilon"))
    title = _setting(cfg)
    metric = plot_metric(series, run_dir, title)
    if metric is None:
        return []
    parts = {TIME_LABELS[p]: [getattr(r, f"time_{p}") for r in rs] for p in TIME_PARTS}
    split = plot_time_split(series.rounds, parts, run_dir, title)
    return [p for p in (metric, split) if p is not None]
