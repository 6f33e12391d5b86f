"""``secagg demo``: the main job, a private FedAvg run that finishes in minutes."""

from __future__ import annotations

import argparse

from ._fedavg_cli import add_override_options, overrides, require_fedavg_extra, run_and_report


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="run the demo: FedAvg on digits with SecAgg+, dropouts and local DP-SGD",
        description=(
            "FedAvg on scikit-learn's digits over 20 clients (Dirichlet(0.5) label split), "
            "SecAgg+ secure aggregation with 10% dropouts per round, and local DP-SGD at "
            "a target epsilon of 8 (delta 1e-5). Options switch parts, e.g. "
            "--aggregation paillier, --dp none, --task linear-regression."
        ),
    )
    add_override_options(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    require_fedavg_extra("demo")
    from protocols.fedavg import FedAvgConfig

    cfg = FedAvgConfig().replace(**overrides(args))
    return run_and_report(cfg)
