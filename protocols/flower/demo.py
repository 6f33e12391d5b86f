"""A one-command local federation: FedAvg with secure aggregation over real Flower processes.

:func:`run_demo` starts a :class:`~protocols.flower.deployment.LocalDeployment`
(throwaway CA, node keys, SuperLink with TLS and node authentication, N
SuperNodes on free loopback ports, node ``i`` holding data partition ``i``),
runs the FedAvg app of :mod:`protocols.flower.apps` over it with ``flwr
run``, prints a line per round as it finishes and a summary, and stops every
process it started, also on Ctrl-C and on failure.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from secagg.errors import ParameterError

from .apps import PROGRESS_PREFIX
from .deployment import LocalDeployment

__all__ = ["APP_PYPROJECT", "run_demo", "write_app"]

#: the ``pyproject.toml`` of the demo's Flower app (components by reference)
APP_PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "secagg-fedavg-demo"
version = "1.0.0"
description = "FedAvg with secure aggregation over a local Flower deployment"
license = "GPL-3.0-or-later"
dependencies = ["secagg[flower]"]

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "secagg"

[tool.flwr.app.components]
serverapp = "protocols.flower.apps:fedavg_server"
clientapp = "protocols.flower.apps:fedavg_client"

[tool.flwr.app.config]
protocol = "secagg+"
task = "digits"
num-rounds = 3
num-nodes = 3
local-epochs = 1
lr = 0.1
batch-size = 32
server-lr = 1.0
max-examples = 1000
clip = 4.0
seed = 0
round-timeout = 30.0
train-timeout = 120.0
run-dir = ""
dp = "none"
target-epsilon = 8.0
noise-multiplier = 0.0
epsilon-budget = 0.0
delta = 1e-5
max-grad-norm = 1.0
clip-norm = 1.0
accountant = "pld"
paillier-public = ""
paillier-value-bits = 28
"""


def write_app(folder: Path) -> Path:
    """Write the demo's Flower app (one ``pyproject.toml``) into ``folder``."""
    app = folder / "fedavg-app"
    app.mkdir(parents=True, exist_ok=True)
    (app / "pyproject.toml").write_text(APP_PYPROJECT)
    (app / "README.md").write_text("FedAvg with secure aggregation (see protocols.flower).\n")
    return app


def run_demo(
    nodes: int = 3,
    *,
    rounds: int = 3,
    protocol: str = "secagg+",
    task: str = "digits",
    round_timeout: float = 30.0,
    out_dir: Path | None = None,
    out: TextIO | None = None,
    on_round: Callable[[dict[str, Any]], None] | None = None,
    extra_config: dict[str, str | int | float] | None = None,
) -> list[dict[str, Any]]:
    """Run the demo; returns the round records (also printed to ``out``).

    ``nodes`` in 2..50, ``rounds`` in 1..100. ``out_dir`` becomes the run
    directory when given (``metrics.json``, ``model.pt``, PNG plots);
    ``extra_config`` adds run-config keys of
    :func:`protocols.flower.fedavg.fedavg_defaults` (e.g. ``dp``).
    """
    if not 2 <= nodes <= 50:
        raise ParameterError(f"nodes={nodes} is outside 2..50")
    if not 1 <= rounds <= 100:
        raise ParameterError(f"rounds={rounds} is outside 1..100")
    stream = sys.stdout if out is None else out
    records: list[dict[str, Any]] = []
    t0 = time.monotonic()
    print(f"starting a SuperLink (TLS, node authentication) and {nodes} SuperNodes on "
          "loopback...", file=stream, flush=True)
    cfg = {i: {"partition-id": i, "num-partitions": nodes} for i in range(nodes)}
    # paillier: a trusted dealer in this process deals a threshold key to a committee of
    # up to 5 nodes (t: a majority) before the run; the ServerApp gets the public file only
    committee = min(nodes, 5) if protocol == "paillier" else 0
    if committee:
        print(f"  dealing a 2048-bit threshold Paillier key to {committee} nodes "
              f"(any {committee // 2 + 1} decrypt)...", file=stream, flush=True)
    with LocalDeployment(nodes, node_config=cfg, start_timeout=180,
                         paillier_committee=committee) as d:
        print(f"  up in {time.monotonic() - t0:.1f} s: SuperLink {d.address}, node ids "
              + ", ".join(str(h.node_id) for h in d.handles), file=stream, flush=True)
        app = write_app(d.root)

        def line(text: str) -> None:
            if not text.startswith(PROGRESS_PREFIX):
                return
            rec = json.loads(text[len(PROGRESS_PREFIX):])
            records.append(rec)
            acc = rec.get("test_accuracy")
            acc_s = "" if acc is None else f"  accuracy {acc:.3f}"
            eps = rec.get("epsilon")
            acc_s += "" if eps is None else f"  ε {eps:.2f}"
            state = "ABORTED" if rec["aborted"] else (
                f"{len(rec['included'])}/{rec['nodes']} nodes in the sum")
            print(f"  round {rec['round']:>3}: loss {rec['test_loss']:.4f}{acc_s}  {state}, "
                  f"{rec['round_trips']} round trips, {rec['time_round']:.1f} s",
                  file=stream, flush=True)
            if on_round is not None:
                on_round(rec)

        run_cfg: dict[str, str | int | float] = {
            "num-nodes": nodes, "num-rounds": rounds, "protocol": protocol, "task": task,
            "round-timeout": float(round_timeout),
            "run-dir": str(out_dir.resolve()) if out_dir is not None else ""}
        if committee:
            run_cfg["paillier-public"] = str(d.paillier_public)
        run_cfg.update(extra_config or {})
        d.run_app(app, run_cfg, timeout=300 + rounds * (4 * round_timeout + 120), on_line=line)
    total = time.monotonic() - t0
    if records:
        last = records[-1]
        acc = last.get("test_accuracy")
        acc_s = "" if acc is None else f", accuracy {acc:.3f}"
        mean_round = sum(r["time_round"] for r in records) / len(records)
        print(f"done: {len(records)} rounds of FedAvg with {protocol} over {nodes} Flower nodes"
              f"; final loss {last['test_loss']:.4f}{acc_s}; {mean_round:.1f} s per round, "
              f"{total:.1f} s in all; every process stopped", file=stream, flush=True)
        if out_dir is not None:
            print(f"run directory: {out_dir}", file=stream, flush=True)
    return records
