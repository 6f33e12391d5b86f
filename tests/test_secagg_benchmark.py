"""The ``secagg`` benchmark suite runs and writes its JSON (Flower columns off)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks import secagg as bench


def test_quick_suite_without_flower(tmp_path: Path) -> None:
    out = tmp_path / "secagg.json"
    assert bench.main(["--quick", "--no-flower", "--repeat", "1", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["suite"] == "secagg" and payload["flwr"] is None
    rows = payload["rows"]
    assert {(r["n"], r["d"], r["drop"]) for r in rows} == {
        (10, d, f) for d in bench.QUICK_DS for f in ("0%", "10%")}
    for r in rows:
        assert r["client ms"] > 0 and r["server ms"] > 0 and r["KB/client"] > 0
        assert r["_error"] < 1e-3


def test_run_ours_reports_bytes_for_the_masked_vector() -> None:
    inputs = {u: np.ones(1000, np.float32) for u in range(1, 7)}
    f = bench.run_ours(inputs, "complete", 3, [2], "masked_input", 1)
    assert f.bytes_per_client > 4 * 1000 and f.max_error < 1e-3
