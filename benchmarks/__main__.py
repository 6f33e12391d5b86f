"""Entry point: ``python -m benchmarks SUITE [options]`` from the checkout's root."""

from __future__ import annotations

import importlib
import importlib.util
import sys

from . import SUITES


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    package = __package__ or "benchmarks"
    available = [s for s in SUITES if importlib.util.find_spec(f"{package}.{s}") is not None]
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: secagg bench SUITE [options]   (SUITE --help for its options)")
        print("suites: " + ", ".join(available))
        return 0 if argv else 2
    suite = argv[0].replace("-", "_")  # secagg bench paillier-keygen == paillier_keygen
    if suite not in available:
        print(f"unknown suite {suite!r}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    mod = importlib.import_module(f"{package}.{suite}")
    return int(mod.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
