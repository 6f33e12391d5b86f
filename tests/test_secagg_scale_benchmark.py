"""``secagg bench secagg --scale --quick``: derived parameters, both worker
counts side by side, exact sums, memory and load columns."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import secagg as bench


def test_scale_quick_runs_both_worker_counts(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    assert bench.main(["--scale", "--quick", "--no-flower", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    rows = payload["rows"]
    (n, d, setups), = bench.SCALE_QUICK
    assert [(r["n"], r["d"], r["workers"], r["unmask workers"]) for r in rows] == [
        (n, d, w, w if pooled else 1) for w, pooled in setups]
    for r in rows:
        assert r["_exact"] is True
        assert r["client ms"] > 0 and r["server s"] > 0 and r["round s"] > 0
        assert 0 < r["unmask s"] <= r["server s"]
        assert r["server MB"] >= 0 and r["load"] >= 0
    # the pool changes where clients run, not what they send
    assert len({r["KB/client"] for r in rows}) == 1
    assert math.isnan(rows[0]["worker MB"]) and rows[1]["worker MB"] >= 0
    # the unmasking alone, side by side: every repetition timed, the best kept
    (u,) = payload["unmask_rows"]
    assert (u["n"], u["d"]) == bench.UNMASK_QUICK[0]
    assert len(u["_all_one_s"]) == len(u["_all_two_s"]) == bench.UNMASK_REPEAT
    assert u["1 process s"] == min(u["_all_one_s"]) and u["2 workers s"] == min(u["_all_two_s"])
    assert u["speedup"] == pytest.approx(u["1 process s"] / u["2 workers s"])
    assert 0 <= u["2 workers busiest CPU s"] <= u["2 workers CPU s"]
    assert u["self masks"] + u["dropped keys"] == n
    assert payload["unmask_speedup"] == {str(n): u["speedup"]}
    assert set(payload["unmask_speedup_in_round"]) == {str(n)}


def test_unmask_items_are_the_rounds_secrets() -> None:
    cfg, selves, dropped = bench._unmask_items(40, 16)
    gone = set(bench._dropouts(40, 0.1, seed=40))
    assert {s.owner for s in selves} == set(range(1, 41)) - gone
    assert {v.owner for v in dropped} <= gone
    for s in [*selves, *dropped]:
        assert len(s.shares) == cfg.threshold
    for v in dropped:
        assert len(v.peers) == len(cfg.neighbours[v.owner] - gone)


def test_lazy_inputs_are_deterministic_per_client() -> None:
    a, b = bench._LazyInputs(5, 7, seed=1), bench._LazyInputs(5, 7, seed=1)
    assert list(a) == [1, 2, 3, 4, 5] and len(a) == 5
    assert (a[3] == b[3]).all() and not (a[3] == a[4]).all()
