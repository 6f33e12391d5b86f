"""``secagg bench SUITE``: run a benchmark suite from ``benchmarks/``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bench",
        help="run a benchmark suite (primitives, secagg, paillier, privacy, ...)",
        add_help=False,
    )
    p.add_argument("suite_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from benchmarks.__main__ import main

    return main(list(args.suite_args))
