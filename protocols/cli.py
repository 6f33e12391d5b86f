"""The ``secagg`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``,
which adds a parser whose ``func`` default takes the parsed namespace and
returns an exit code. Modules are imported only when listed here, and heavy
imports (torch, phe) happen inside the subcommand, so ``secagg --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from secagg.errors import SecAggError

#: Modules that add subcommands, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "protocols.commands.demo",
    "protocols.commands.flower_demo",
    "protocols.commands.train",
    "protocols.commands.bench",
    "protocols.commands.budget",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="secagg",
        description="Secure aggregation and differential privacy for federated learning.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # subcommand not shipped in this build
            raise
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        # every argument after the suite name belongs to the suite (--help included)
        from protocols.commands.bench import run_suite

        try:
            return run_suite(argv[1:])
        except SecAggError as exc:
            print(f"secagg bench: error: {exc}", file=sys.stderr)
            return 1
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SecAggError as exc:
        print(f"secagg {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
