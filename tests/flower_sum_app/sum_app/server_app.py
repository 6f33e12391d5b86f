"""ServerApp: run secure-sum sessions and write what came out to a JSON file."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from flwr.app import ConfigRecord, Context, RecordDict
from flwr.serverapp import Grid, ServerApp

from protocols.flower import nodes_ready, run_session
from protocols.flower.identity import malicious_session, read_registry
from protocols.paillier_sum import PAILLIER_SUM
from protocols.secagg import SECAGG, SECAGG_PLUS

from .common import update_of

app = ServerApp()
PROTOCOLS = {d.name: d for d in (SECAGG, SECAGG_PLUS, PAILLIER_SUM)}


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    descriptor = PROTOCOLS[str(cfg["protocol"])]
    dim = int(cfg["dimension"])
    nodes = nodes_ready(grid, int(cfg["num-nodes"]), timeout=60.0)
    pause_at = str(cfg["pause-at"])
    progress = Path(str(cfg["progress-path"])) if cfg["progress-path"] else None
    out = []
    for s in range(int(cfg["sessions"])):

        def on_round(rnd: str, targets: frozenset[int], s: int = s) -> None:
            if progress is None or pause_at != f"{s}:{rnd}":
                return
            progress.write_text(f"{s}:{rnd}")
            end = time.monotonic() + 60.0
            while progress.exists() and time.monotonic() < end:
                time.sleep(0.05)

        t0 = time.monotonic()
        content = RecordDict({"config": ConfigRecord({"session": s, "dimension": dim})})
        session = None
        params = {}
        if descriptor is PAILLIER_SUM:  # threshold layout on the dealer's public material
            params = {"public": str(cfg["paillier-public"]), "clip": 1.0, "value_bits": 24}
        if cfg["registry-path"] and descriptor is PAILLIER_SUM:  # signed inputs
            params.update(mode="malicious", registry=str(cfg["registry-path"]))
        elif cfg["registry-path"]:
            registry = read_registry(str(cfg["registry-path"]))
            session = malicious_session(descriptor, registry, nodes, dim)
        report = run_session(grid, descriptor, nodes, dim,
                             round_timeout=float(cfg["round-timeout"]),
                             train_content=content, on_round=on_round, session=session,
                             **params)
        got = report.sum()
        want = sum(update_of(n, s, dim) for n in sorted(report.result.included))
        out.append({
            "nodes": nodes,
            "included": sorted(report.result.included),
            "max_error": float(np.max(np.abs(got - want))),
            "error_bound": report.encoder.error_bound(len(report.result.included)),
            "seconds": time.monotonic() - t0,
            "rounds": [{"name": r.name, "seconds": r.seconds, "sent_to": len(r.sent_to),
                        "dropped": {str(k): v for k, v in r.dropped.items()},
                        "bytes_up": r.bytes_up, "bytes_down": r.bytes_down}
                       for r in report.rounds],
        })
    if cfg["result-path"]:
        Path(str(cfg["result-path"])).write_text(json.dumps(out, indent=1))
