"""PNG plots of a FedAvg run (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .driver import FedAvgResult

#: The exclusive parts of a round (server aggregation overlaps them; see RoundRecord).
TIME_PARTS = ("local_training", "hot_path", "crypto", "other")


def plot_run(result: FedAvgResult, run_dir: Path) -> list[Path]:
    """Write ``accuracy.png`` (or ``loss.png``) and ``time_split.png``; return the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r.round for r in result.rounds]
    out = []
    fig, ax = plt.subplots(figsize=(6, 4))
    if result.rounds[0].test_accuracy is not None:
        ax.plot(rounds, [float(r.test_accuracy or 0.0) for r in result.rounds], marker="o", ms=3)
        ax.set_ylabel("test accuracy")
        path = run_dir / "accuracy.png"
    else:
        ax.plot(rounds, [r.test_loss for r in result.rounds], marker="o", ms=3)
        ax.set_ylabel("test loss (MSE)")
        ax.set_yscale("log")
        path = run_dir / "loss.png"
    cfg = result.config
    ax.set_xlabel("round")
    ax.set_title(f"FedAvg on {cfg['task']}: {cfg['aggregation']}, dp={cfg['dp']}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    out.append(path)

    fig, ax = plt.subplots(figsize=(7, 4))
    bottom = [0.0] * len(rounds)
    for part in TIME_PARTS:
        vals = [getattr(r, f"time_{part}") for r in result.rounds]
        ax.bar(rounds, vals, bottom=bottom, label=part.replace("_", " "))
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_xlabel("round")
    ax.set_ylabel("seconds")
    ax.set_title("time per round, split")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = run_dir / "time_split.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    out.append(path)
    return out
