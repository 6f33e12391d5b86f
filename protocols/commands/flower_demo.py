"""``secagg flower-demo``: the FedAvg demo over real Flower processes on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "flower-demo",
        help="run FedAvg with SecAgg+ over a local Flower deployment (needs the flower extra)",
        description=(
            "Generates a throwaway CA and node keys, starts a Flower SuperLink with TLS and "
            "node authentication and N SuperNodes on free loopback ports, runs FedAvg on "
            "digits with secure aggregation over them, prints each round and a summary, "
            "and stops every process it started (also on Ctrl-C and on failure)."
        ),
    )
    p.add_argument("--nodes", type=int, default=3, help="SuperNodes to start (2..50)")
    p.add_argument("--rounds", type=int, default=3, help="FedAvg rounds (1..100)")
    p.add_argument("--aggregation", choices=["secagg", "secagg+"], default="secagg+")
    p.add_argument("--task", choices=["digits", "linear-regression"], default="digits")
    p.add_argument("--round-timeout", type=float, default=30.0,
                   help="seconds each protocol round waits for the nodes")
    p.add_argument("--out-dir", type=Path, help="write metrics.json here")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        from protocols.flower.demo import run_demo
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "flwr":
            print("secagg flower-demo needs Flower: from the checkout, pip install -e '.[flower]'")
            return 2
        raise
    records = run_demo(args.nodes, rounds=args.rounds, protocol=args.aggregation,
                       task=args.task, round_timeout=args.round_timeout, out_dir=args.out_dir)
    return 0 if records and not records[-1]["aborted"] else 1
