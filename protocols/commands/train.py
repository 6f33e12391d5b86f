"""``secagg train CONFIG.toml``: FedAvg with every key under your control."""

from __future__ import annotations

import argparse

from ._fedavg_cli import (
    add_override_options,
    config_keys_epilog,
     overrides,
    require_fedavg_extra,
    run_and_report,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "train",
        help="run FedAvg from a TOML config file",
        description=(
            "Run FedAvg from a TOML file whose keys are the fields of "
            "protocols.fedavg.FedAvgConfig (at the top level or under [fedavg]); "
            "command-line options override the file. An unknown key is refused "
            "with the nearest known one."
        ),
        epilog=config_keys_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", help="path to a TOML file")
    add_override_options(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    require_fedavg_extra("train")
    from protocols.fedavg import FedAvgConfig

    cfg = FedAvgConfig.from_toml(args.config)
    ov = overrides(args)
    if ov:
        cfg = cfg.replace(**ov)
    return run_and_report(cfg)
