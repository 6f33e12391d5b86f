"""Shared option handling and printing for ``secagg demo`` and ``secagg train``."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import Any

from secagg.errors import ParameterError

#: Modules the FedAvg commands need beyond the core install (the ``fedavg`` extra).
FEDAVG_MODULES = ("torch", "opacus", "dp_accounting", "sklearn", "tqdm")


def require_fedavg_extra(command: str) -> None:
    """Refuse, naming the extra to install, when the FedAvg dependencies are missing."""
    missing = []
    for name in FEDAVG_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    if missing:
        raise ParameterError(
            f"secagg {command} needs the 'fedavg' extra: from the checkout, "
            f"pip install -e '.[fedavg]' "
            f"(missing: {', '.join(missing)})"
        )


#: Keys left out of the command line (the progress bar has ``--no-progress``).
_NOT_OPTIONS = ("progress",)


def _optional_number(text: str) -> float | None:
    """A number, or ``none`` (unset)."""
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'none'") from None


def add_override_options(p: argparse.ArgumentParser) -> None:
    """One option per config key (``--client-lr`` sets ``client_lr``), with its
    help and default; options not given leave the key alone."""
    from dataclasses import fields

    from protocols.fedavg.config import (
        ACCOUNTANTS,
        AGGREGATIONS,
        DP_MODES,
        FIELD_HELP,
        OPTIONAL_NUMBERS,
        SPLITS,
        TASKS,
        FedAvgConfig,
    )

    choices = {"task": TASKS, "split": SPLITS, "aggregation": AGGREGATIONS, "dp": DP_MODES,
               "accountant": ACCOUNTANTS}
    g = p.add_argument_group(
        "config keys (each option sets the key of the same name; setting one of "
        "--target-epsilon and --noise-multiplier unsets the other)"
    )
    for f in fields(FedAvgConfig):
        if f.name in _NOT_OPTIONS:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        text = f"{FIELD_HELP[f.name]} (default: {'none' if default is None else default})"
        text = text.replace("%", "%%")
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": text}
        if isinstance(default, bool):
            g.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
            continue
        if f.name in OPTIONAL_NUMBERS:
            kw.update(type=_optional_number, metavar="X|none")
        elif isinstance(default, int):
            kw.update(type=int, metavar="N")
        elif isinstance(default, float):
            kw.update(type=float, metavar="X")
        elif f.name in choices:
            kw.update(choices=choices[f.name])
        else:
            kw.update(metavar="TEXT")
        g.add_argument(flag, **kw)
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def config_keys_epilog() -> str:
    """The TOML keys with their defaults, for ``secagg train --help``."""
    from dataclasses import fields

    from protocols.fedavg.config import FIELD_HELP, FedAvgConfig

    lines = ["TOML keys (top level or under [fedavg]), their defaults and meaning:"]
    for f in fields(FedAvgConfig):
        d = f.default
        shown = '"none"' if d is None else (f'"{d}"' if isinstance(d, str) else
                                           str(d).lower() if isinstance(d, bool) else str(d))
        lines.append(f"  {f.name} = {shown}\n      {FIELD_HELP[f.name]}")
    return "\n".join(lines)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config keys given on the command line, and what they imply."""
    from dataclasses import fields

    from protocols.fedavg.config import FedAvgConfig

    out = {f.name: getattr(args, f.name) for f in fields(FedAvgConfig) if hasattr(args, f.name)}
    if getattr(args, "no_progress", False):
        out["progress"] = False
    # one rule for TOML and the command line: setting one unsets the other
    if out.get("noise_multiplier") is not None and "target_epsilon" not in out:
        out["target_epsilon"] = None
    if out.get("target_epsilon") is not None and "noise_multiplier" not in out:
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
            + (f"clients {len(r.included)}/{len(r.sampled)}  " if r.sampled is not None
               else "clients private  ")
            + f"up {_fmt_bytes(r.bytes_up_per_client)}  "
            f"train {r.time_local_training:.2f}s  round {r.time_round:.2f}s",
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
    if s.get("privacy_guarantee"):
        print(f"  privacy           {s['privacy_guarantee']}")
    elif s["epsilon"] is not None:
        print(
            f"  privacy           epsilon {s['epsilon']:.3f} at delta {cfg.delta} "
            f"({s['accountant']} accountant, {s['privacy_unit']}-level, add/remove adjacency)"
        )
    else:
        print("  privacy           no differential privacy")
    print(
        f"  time              {t['round']:.1f}s total = local training {t['local_training']:.1f}s"
        f" + numpy hot path {t['hot_path']:.2f}s + cryptography {t['crypto']:.2f}s"
        f" + privacy accounting and noise {t['privacy']:.2f}s"
        f" + evaluation {t['evaluation']:.2f}s"
        f" + codecs, bookkeeping and pipeline steps {t['other']:.2f}s"
        f"\n                    (the server's own share of the secure sum:"
        f" {t['server_aggregation']:.2f}s)"
    )
    print(
        f"  bytes per client  {_fmt_bytes(s['bytes_up_per_client_per_round'])} up, "
        f"{_fmt_bytes(s['bytes_down_per_client_per_round'])} down per round"
    )
    if s["aborted_rounds"] is None:
        print("  participation     not published (client-level DP keeps it private)")
    elif s["aborted_rounds"]:
        print(f"  aborted rounds    {s['aborted_rounds']}", file=sys.stderr)
    print(f"  run directory     {res.run_dir}")
    return 0
