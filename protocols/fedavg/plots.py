"""PNG plots of a FedAvg run (matplotlib from the ``plots`` extra, Agg
backend, no display needed).

* ``accuracy.png`` (``loss.png`` for regression): the test metric per
  round and, with DP, the epsilon spent per round beside it.
* ``time_split.png``: each round's wall time, stacked by exclusive part
  (the parts add up to the round's time).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from .records import TIME_PARTS, FedAvgResult

__all__ = ["TIME_LABELS", "plot_run"]

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


def plot_run(result: FedAvgResult, run_dir: Path) -> list[Path]:
    """Write the run's PNGs into ``run_dir``; return their paths (none, with
    a warning, if matplotlib is not installed)."""
    try:
        import matplotlib
    except ModuleNotFoundError:
        warnings.warn("matplotlib is not installed (from the checkout: pip install -e '.[plots]'): "
                      "no PNG plots written", stacklevel=2)
        return []
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    cfg = result.config
    rounds = [r.round for r in result.rounds]
    out = []
    eps = [r.epsilon for r in result.rounds]
    has_eps = any(e is not None for e in eps)
    fig, axes = plt.subplots(1, 2 if has_eps else 1, figsize=(10 if has_eps else 6, 4),
                             squeeze=False)
    ax = axes[0][0]
    if result.rounds[0].test_accuracy is not None:
        ax.plot(rounds, [float(r.test_accuracy or 0.0) for r in result.rounds], marker="o", ms=3)
        ax.set_ylabel("test accuracy")
        ax.set_title("test accuracy of the global model")
        path = run_dir / "accuracy.png"
    else:
        ax.plot(rounds, [r.test_loss for r in result.rounds], marker="o", ms=3)
        ax.set_ylabel("test loss (mean squared error)")
        ax.set_yscale("log")
        ax.set_title("test loss of the global model")
        path = run_dir / "loss.png"
    if has_eps:
        last = result.rounds[-1]
        ax2 = axes[0][1]
        ax2.plot(rounds, [float(e or 0.0) for e in eps], marker="o", ms=3, color="tab:red")
        ax2.set_ylabel(f"ε spent (δ = {cfg['delta']:g})")
        ax2.set_title(f"privacy spent, {last.privacy_unit}-level, {last.accountant} accountant")
        if cfg.get("target_epsilon") is not None:
            ax2.axhline(cfg["target_epsilon"], ls="--", color="grey", lw=1,
                        label=f"target ε = {cfg['target_epsilon']:g}")
            ax2.legend(loc="lower right", fontsize=8)
        ax2.set_ylim(bottom=0)
    for a in axes[0]:
        a.set_xlabel("round")
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.grid(alpha=0.3)
    fig.suptitle(f"FedAvg: {_setting(cfg)}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    out.append(path)

    fig, ax = plt.subplots(figsize=(10, 4.2))
    bottom = [0.0] * len(rounds)
    for part in TIME_PARTS:
        vals = [getattr(r, f"time_{part}") for r in result.rounds]
        ax.bar(rounds, vals, bottom=bottom, label=TIME_LABELS[part])
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_xlabel("round")
    ax.set_ylabel("seconds (wall time)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"time per round, by part\n{_setting(cfg)}", fontsize=10)
    # beside the bars, never over them
    handles, labels = ax.get_legend_handles_labels()  # listed top-down as stacked
    ax.legend(handles[::-1], labels[::-1], fontsize=8, loc="upper left",
              bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    path = run_dir / "time_split.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    out.append(path)
    return out
