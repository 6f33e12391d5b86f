"""Shared option handling and printing for ``secagg demo`` and ``secagg train``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from secagg.errors import ParameterError


def add_override_options(p: argparse.ArgumentParser) -> None:
    """Options that override config keys (each maps to the key of the same name)."""
    g = p.add_argument_group("overrides (each sets the config key of the same name)")
    g.add_argument("--task", choices=["digits", "linear-regression"])
    g.add_argument("--aggregation", choices=["plain", "secagg", "secagg+", "paillier"])
    g.add_argument("--dp", choices=["none", "local", "central"])
    g.add_argument("--rounds", type=int)
    g.add_argument("--num-clients", type=int)
    g.add_argument("--clients-per-round", type=int)
    g.add_argument("--local-epochs", type=int)
    g.add_argument("--split", choices=["iid", "dirichlet"])
    g.add_argument("--alpha", type=float)
    g.add_argument("--dropout-rate", type=float)
    g.add_argument("--target-epsilon", type=float)
    g.add_argument("--noise-multiplier", type=float)
    g.add_argument("--seed", type=int)
    g.add_argument("--out-dir")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")


OVERRIDE_KEYS = (
    "task", "aggregation", "dp", "rounds", "num_clients", "clients_per_round", "local_epochs",
    "split", "alpha", "dropout_rate", "target_epsilon", "noise_multiplier", "seed", "out_dir",
)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    out = {k: getattr(args, k) for k in OVERRIDE_KEYS if getattr(args, k, None) is not None}
    if args.no_progress:
        out["progress"] = False
    if "noise_multiplier" in out and "target_epsilon" not in out:
        out["target_epsilon"] = None
    if "target_epsilon" in out and "noise_multiplier" not in out:
        out["noise_multiplier"] = None
    if out.get("num_clients") is not None and "clients_per_round" not in out:
        out["clients_per_round"] = out["num_clients"]
    return out


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} MiB"  # pragma: no cover


def run_and_report(cfg: Any, *, quiet: bool = False) -> int:
    """Run FedAvg, print a line per round and a summary; return an exit code."""
    from protocols.fedavg import run_fedavg

    def line(r: Any) -> None:
        if quiet:
            return
        acc = f"acc {r.test_accuracy:.3f}" if r.test_accuracy is not None else ""
        eps = f"eps {r.epsilon:.2f}" if r.epsilon is not None else "eps -"
        status = "ABORTED " if r.aborted else ""
        print(
            f"round {r.round:3d}  {status}{acc}  loss {r.test_loss:.4f}  {eps}  "
            f"clients {len(r.included)}/{len(r.sampled)}  "
            f"up {_fmt_bytes(r.bytes_up_per_client)}  "
            f"train {r.time_local_training:.2f}s  agg "
            f"{r.time_hot_path + r.time_crypto + r.time_other:.2f}s",
            flush=True,
        )

    print(
        f"FedAvg: task={cfg.task} clients={cfg.num_clients}"
        + (
            f" ({cfg.split}{f', alpha={cfg.alpha}' if cfg.split == 'dirichlet' else ''})"
            if cfg.task == "digits"
            else ""
        )
        + f" sampled per round={cfg.clients_per_round} "
        f"aggregation={cfg.aggregation} dropout={cfg.dropout_rate:.0%} dp={cfg.dp}"
        + (
            f" (target epsilon {cfg.target_epsilon}, delta {cfg.delta})"
            if cfg.dp != "none" and cfg.target_epsilon is not None
            else f" (noise multiplier {cfg.noise_multiplier}, delta {cfg.delta})"
            if cfg.dp != "none"
            else ""
        ),
        flush=True,
    )
    try:
        res = run_fedavg(cfg, on_round=line)
    except ParameterError:
        raise
    s = res.summary()
    t = s["time"]
    print("\nsummary")
    if s["final_test_accuracy"] is not None:
        print(f"  test accuracy     {s['final_test_accuracy']:.4f}")
    print(f"  test loss         {s['final_test_loss']:.4f}")
    if res.true_weights:
        import numpy as np

        state = res.model.state_dict()  # type: ignore[union-attr]
        w = state["weight"].numpy().ravel()
        b = state["bias"].numpy().ravel()
        err = float(np.max(np.abs(np.concatenate([w - res.true_weights["weight"],
                                                  b - res.true_weights["bias"]]))))
        print(f"  max |w - w_true|  {err:.4f}")
    if s["epsilon"] is not None:
        print(
            f"  privacy           epsilon {s['epsilon']:.3f} at delta {cfg.delta} "
            f"({s['accountant']} accountant, {s['privacy_unit']}-level, add/remove adjacency)"
        )
    else:
        print("  privacy           no differential privacy")
    print(
        f"  time              {t['round']:.1f}s total: local training {t['local_training']:.1f}s,"
        f" numpy hot path {t['hot_path']:.2f}s, cryptography {t['crypto']:.2f}s,"
        f" codecs and bookkeeping {t['other']:.2f}s"
        f" (server aggregation {t['server_aggregation']:.2f}s of these)"
    )
    print(
        f"  bytes per client  {_fmt_bytes(s['bytes_up_per_client_per_round'])} up, "
        f"{_fmt_bytes(s['bytes_down_per_client_per_round'])} down per round"
    )
    if s["aborted_rounds"]:
        print(f"  aborted rounds    {s['aborted_rounds']}", file=sys.stderr)
    print(f"  run directory     {res.run_dir}")
    return 0
