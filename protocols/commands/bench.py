"""``secagg bench SUITE``: run a benchmark suite from the checkout's ``benchmarks/``.

The suites ship with the source tree, not with the installed library (the
name ``benchmarks`` is also taken by a directory that Opacus installs), so
they are loaded from the ``benchmarks/`` folder beside the ``protocols``
package under the module name ``secagg_benchmarks``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from secagg.errors import ParameterError

PACKAGE = "secagg_benchmarks"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bench",
        help="run a benchmark suite (primitives, secagg, paillier, privacy, overhead, fedavg)",
        add_help=False,
    )
    p.add_argument("suite_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_run)


def load_benchmarks() -> ModuleType:
    """Import the checkout's ``benchmarks/`` package as ``secagg_benchmarks``."""
    if PACKAGE in sys.modules:
        return sys.modules[PACKAGE]
    root = Path(__file__).resolve().parents[2] / "benchmarks"
    init = root / "__init__.py"
    if not init.is_file():
        raise ParameterError(
            "the benchmark suites ship with the source checkout (its benchmarks/ folder); "
            "run secagg bench from an editable install of a checkout"
        )
    spec = importlib.util.spec_from_file_location(
        PACKAGE, init, submodule_search_locations=[str(root)]
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = mod
    spec.loader.exec_module(mod)
    return mod


def run_suite(argv: list[str]) -> int:
    """Run ``SUITE [options]`` from the checkout's benchmarks; returns the exit code."""
    load_benchmarks()
    entry = importlib.import_module(f"{PACKAGE}.__main__")
    return int(entry.main(argv))


def _run(args: argparse.Namespace) -> int:
    return run_suite(list(args.suite_args))
