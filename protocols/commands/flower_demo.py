"""``secagg flower-demo`` (= ``secagg demo --engine flower``): the FedAvg demo over
real Flower processes on this machine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from secagg.errors import ParameterError

#: the install hint printed when flwr is missing
INSTALL_HINT = "needs Flower (flwr 1.42): from the checkout, pip install -e '.[flower]'"
#: aggregations and DP modes the Flower engine runs
FLOWER_AGGREGATIONS = ("secagg", "secagg+", "paillier")
FLOWER_DP = ("none", "local", "central")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "flower-demo",
        help="run FedAvg with SecAgg+ over a local Flower deployment (needs the flower extra; "
             "same as demo --engine flower)",
        description=(
            "Generates a throwaway CA and node keys, starts a Flower SuperLink with TLS and "
            "node authentication and N SuperNodes on free loopback ports, runs FedAvg on "
            "digits with secure aggregation over them, prints each round and a summary, "
            "and stops every process it started (also on Ctrl-C and on failure)."
        ),
    )
    p.add_argument("--nodes", type=int, default=3, help="SuperNodes to start (2..50)")
    p.add_argument("--rounds", type=int, default=3, help="FedAvg rounds (1..100)")
    p.add_argument("--aggregation", choices=FLOWER_AGGREGATIONS, default="secagg+")
    p.add_argument("--task", choices=["digits", "linear-regression"], default="digits")
    p.add_argument("--dp", choices=FLOWER_DP, default="none",
                   help="local: DP-SGD on every node, its privacy ledger kept in the node's "
                        "context.state across rounds and restarts; central: client-level, "
                        "nodes clip their update, the ServerApp adds Gaussian noise to the "
                        "secure sum (not private against the ServerApp)")
    p.add_argument("--target-epsilon", type=float, default=8.0,
                   help="dp=local: each node's example-level epsilon after all rounds; "
                        "dp=central: the client-level epsilon after all rounds")
    p.add_argument("--round-timeout", type=float, default=30.0,
                   help="seconds each protocol round waits for the nodes")
    p.add_argument("--out-dir", type=Path,
                   help="write the run directory here (metrics.json, model.pt, PNG plots)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    return run_flower_demo(
        args.nodes, rounds=args.rounds, aggregation=args.aggregation, task=args.task,
        dp=args.dp, target_epsilon=args.target_epsilon, round_timeout=args.round_timeout,
        out_dir=args.out_dir, command="flower-demo")


def run_flower_demo(
    nodes: int,
    *,
    rounds: int = 3,
    aggregation: str = "secagg+",
    task: str = "digits",
    dp: str = "none",
    target_epsilon: float | None = 8.0,
    round_timeout: float = 30.0,
    out_dir: Path | None = None,
    command: str = "demo --engine flower",
) -> int:
    """Run :func:`protocols.flower.demo.run_demo`; the exit code (2: flwr missing)."""
    if aggregation not in FLOWER_AGGREGATIONS:
        raise ParameterError(f"aggregation={aggregation!r} does not run on the Flower engine "
                             f"(it runs {', '.join(FLOWER_AGGREGATIONS)})")
    if dp not in FLOWER_DP:
        raise ParameterError(f"dp={dp!r} does not run on the Flower engine "
                             f"(it runs {', '.join(FLOWER_DP)})")
    try:
        from protocols.flower.demo import run_demo
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "flwr":
            print(f"secagg {command} {INSTALL_HINT}", file=sys.stderr)
            return 2
        raise
    extra: dict[str, Any] = {"dp": dp}
    if dp in ("local", "central"):
        if target_epsilon is None:
            raise ParameterError(f"dp={dp!r} on the Flower engine needs target_epsilon")
        extra["target-epsilon"] = float(target_epsilon)
    records = run_demo(nodes, rounds=rounds, protocol=aggregation, task=task,
                       round_timeout=round_timeout, out_dir=out_dir, extra_config=extra)
    return 0 if records and not records[-1]["aborted"] else 1
