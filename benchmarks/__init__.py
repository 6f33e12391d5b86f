"""Benchmark suites. Each module ``benchmarks/<suite>.py`` exposes
``main(argv: list[str]) -> int``; run one with ``secagg bench SUITE`` (``-`` in a
suite name stands for ``_``, e.g. ``paillier-keygen``) or
``python -m benchmarks SUITE``. Results print as a table and are written as
JSON (default ``bench-results/<suite>.json``)."""

SUITES = ("primitives", "secagg", "paillier", "privacy", "overhead", "fedavg", "distributed_dp",
          "flower", "paillier_keygen")
