"""``secagg demo``: the main job, a private FedAvg run that finishes in minutes.

``--engine inprocess`` (default) runs every party in this process;
``--engine flower --nodes N`` runs the same FedAvg over a local Flower
deployment (a SuperLink with TLS and node authentication and N SuperNodes,
see ``secagg flower-demo``, its alias).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from secagg.errors import ParameterError

from ._fedavg_cli import add_override_options, overrides, require_fedavg_extra, run_and_report

#: config keys the Flower engine takes from the command line (others are refused)
FLOWER_KEYS = ("rounds", "aggregation", "task", "dp", "target_epsilon", "out_dir")
#: the Flower engine's defaults where they differ from the in-process demo
FLOWER_DEFAULTS: dict[str, Any] = {"rounds": 3, "dp": "none", "target_epsilon": 8.0}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="run the demo: FedAvg on digits with SecAgg+, dropouts and local DP-SGD",
        description=(
            "FedAvg on scikit-learn's digits over 20 clients (Dirichlet(0.5) label split), "
            "SecAgg+ secure aggregation with 10% dropouts per round, and local DP-SGD at "
            "a target epsilon of 8 (delta 1e-5). Options switch parts, e.g. "
            "--aggregation paillier, --dp none, --task linear-regression. "
            "--engine flower --nodes N runs it over N Flower SuperNodes on this machine "
            "(3 rounds, dp none unless given; keys: " + ", ".join(FLOWER_KEYS) + ")."
        ),
    )
    p.add_argument("--engine", choices=["inprocess", "flower"], default="inprocess",
                   help="inprocess: every party in this process; flower: a local Flower "
                        "deployment with TLS and node authentication (needs the flower extra)")
    p.add_argument("--nodes", type=int, default=None,
                   help="engine flower: SuperNodes to start (2..50, default 3)")
    p.add_argument("--round-timeout", type=float, default=None,
                   help="engine flower: seconds each protocol round waits (default 30)")
    add_override_options(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.engine == "flower":
        return _run_flower(args)
    for flag in ("nodes", "round_timeout"):
        if getattr(args, flag) is not None:
            raise ParameterError(f"--{flag.replace('_', '-')} is for --engine flower only "
                                 "(in process, --num-clients sets the clients)")
    require_fedavg_extra("demo")
    from protocols.fedavg import FedAvgConfig

    cfg = FedAvgConfig().replace(**overrides(args))
    return run_and_report(cfg)


def flower_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`~protocols.commands.flower_demo.run_flower_demo`
    for a parsed ``demo --engine flower`` command line; refuses keys it does not run."""
    given = overrides(args)
    given.pop("progress", None)
    if "num_clients" in given and given.get("clients_per_round") == given["num_clients"]:
        given.pop("clients_per_round")  # implied by --num-clients, not typed
    # setting --noise-multiplier unsets target_epsilon in overrides(); refuse it here
    extra = sorted(k for k in given if k not in FLOWER_KEYS
                   and not (k == "noise_multiplier" and given[k] is None))
    if extra:
        raise ParameterError(
            "--engine flower does not take " + ", ".join("--" + k.replace("_", "-")
                                                        for k in extra)
            + " (it takes --nodes, --round-timeout, "
            + ", ".join("--" + k.replace("_", "-") for k in FLOWER_KEYS) + ")")
    cfg = {**FLOWER_DEFAULTS, **given}
    return {
        "nodes": 3 if args.nodes is None else args.nodes,
        "rounds": cfg["rounds"],
        "aggregation": cfg.get("aggregation", "secagg+"),
        "task": cfg.get("task", "digits"),
        "dp": cfg["dp"],
        "target_epsilon": cfg["target_epsilon"],
        "round_timeout": 30.0 if args.round_timeout is None else args.round_timeout,
        "out_dir": Path(cfg["out_dir"]) if "out_dir" in cfg else None,
    }


def _run_flower(args: argparse.Namespace) -> int:
    from .flower_demo import run_flower_demo

    kw = flower_arguments(args)
    nodes = kw.pop("nodes")
    return run_flower_demo(nodes, command="demo --engine flower", **kw)
