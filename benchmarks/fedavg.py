"""Suite ``fedavg``: round time of each aggregation against ``plain`` FedAvg.

The default demo's setting (20 clients on digits, Dirichlet(0.5) split, 10%
dropouts per round), run once per aggregation with the same seed, so the
same clients are sampled and drop out in every run. Reported: mean round
time and its ratio to ``plain``, the time split, and the final accuracy.
Two privacy settings: ``dp="none"`` (the accuracy target: at least 0.94
after ``--rounds`` rounds) and the demo's local DP-SGD (``--with-dp``).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from ._common import table, write_json


def _run(kind: str, dp: str, rounds: int) -> dict[str, Any]:
    from protocols.fedavg import FedAvgConfig, run_fedavg

    cfg = FedAvgConfig(aggregation=kind, dp=dp, rounds=rounds, progress=False)
    res = run_fedavg(cfg, write=False)
    rs = res.rounds
    row: dict[str, Any] = {"aggregation": kind, "dp": dp}
    row["round_s"] = float(np.mean([r.time_round for r in rs]))
    for part in ("local_training", "hot_path", "crypto", "privacy", "evaluation",
                 "server_aggregation", "other"):
        row[f"{part}_s"] = float(np.mean([getattr(r, f"time_{part}") for r in rs]))
    row["final_accuracy"] = rs[-1].test_accuracy
    row["epsilon"] = rs[-1].epsilon
    row["bytes_up_per_client"] = float(np.mean([r.bytes_up_per_client for r in rs]))
    return row


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="secagg bench fedavg",
                                 description=(__doc__ or "").replace("``", "'"),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="5 rounds, no paillier")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--with-dp", action="store_true", help="also run the demo's local DP-SGD")
    ap.add_argument("--out", help="JSON path (default bench-results/fedavg.json)")
    args = ap.parse_args(argv)
    rounds = 5 if args.quick else args.rounds
    kinds = ["plain", "secagg+", "secagg"] + ([] if args.quick else ["paillier"])
    dps = ["none", "local"] if args.with_dp else ["none"]
    rows = []
    for dp in dps:
        base = None
        for kind in kinds:
            row = _run(kind, dp, rounds)
            if kind == "plain":
                base = row["round_s"]
            row["vs_plain"] = row["round_s"] / base if base else float("nan")
            rows.append(row)
            print(f"  {kind} dp={dp}: {row['round_s']:.2f}s/round, "
                  f"acc {row['final_accuracy']:.3f}", flush=True)
    cols = ["aggregation", "dp", "round_s", "vs_plain", "local_training_s", "hot_path_s",
            "crypto_s", "privacy_s", "evaluation_s", "other_s", "server_aggregation_s",
            "final_accuracy", "epsilon", "bytes_up_per_client"]
    print(f"\n## FedAvg round time, {rounds} rounds, 20 clients, digits Dirichlet(0.5)\n")
    print(table(rows, cols))
    path = write_json("fedavg", {"rounds": rounds, "rows": rows}, args.out)
    print(f"\nwrote {path}")
    return 0
