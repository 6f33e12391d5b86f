"""Shared helpers for benchmark scripts: timing, tables and JSON output."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def best_of(fn: Callable[[], object], repeat: int = 5, min_time: float = 0.0) -> float:
    """Best wall time in seconds of ``fn()`` over ``repeat`` runs (at least one).

    The minimum is the least noisy estimate on a shared machine."""
    best = float("inf")
    start = time.perf_counter()
    runs = 0
    while runs < repeat or (time.perf_counter() - start) < min_time:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        runs += 1
    return best


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Render rows as a Markdown table (floats to 4 significant digits)."""
    if not rows:
        return "(no rows)"
    cols = list(columns or rows[0].keys())

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    head = "| " + " | ".join(cols) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    body = ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def write_json(suite: str, payload: dict[str, Any], out: str | None = None) -> Path:
    """Write ``payload`` with machine facts to ``out`` (default bench-results/SUITE.json;
    an existing folder gets SUITE.json inside it)."""
    path = Path(out) if out else Path("bench-results") / f"{suite}.json"
    if path.is_dir():
        path = path / f"{suite}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "suite": suite,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        **payload,
    }
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path
