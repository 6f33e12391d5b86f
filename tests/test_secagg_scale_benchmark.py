"""``secagg bench secagg --scale --quick``: derived parameters, both worker
counts side by side, exact sums, memory and load columns."""

from __future__ import annotations

import json
import math
from pathlib import Path

from benchmarks import secagg as bench


def test_scale_quick_runs_both_worker_counts(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    assert bench.main(["--scale", "--quick", "--no-flower", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    (n, d, counts), = bench.SCALE_QUICK
    assert [(r["n"], r["d"], r["workers"]) for r in rows] == [(n, d, w) for w in counts]
    for r in rows:
        assert r["_exact"] is True
        assert r["client ms"] > 0 and r["server s"] > 0 and r["round s"] > 0
        assert r["server MB"] >= 0 and r["load"] >= 0
    # the pool changes where clients run, not what they send
    assert rows[0]["KB/client"] == rows[1]["KB/client"]
    assert math.isnan(rows[0]["worker MB"]) and rows[1]["worker MB"] >= 0


def test_lazy_inputs_are_deterministic_per_client() -> None:
    a, b = bench._LazyInputs(5, 7, seed=1), bench._LazyInputs(5, 7, seed=1)
    assert list(a) == [1, 2, 3, 4, 5] and len(a) == 5
    assert (a[3] == b[3]).all() and not (a[3] == a[4]).all()
