"""Suite ``overhead``: the numpy hot path against the cryptographic overhead.

Two parts, side by side in one run:

1. Synthetic vectors: ``n`` clients (default 10) each holding a float32
   vector of d = 10^4, 10^5, 10^6 values (``--quick``: 10^4, 10^5), summed
   by ``secagg`` (complete graph), ``secagg+`` and ``paillier`` (2048-bit
   keys; only up to ``--paillier-max-d``, default 10^4, since packed
   encryption costs about a second per 10^4 values per client). The wall
   time of the whole simulated round is split into the numpy hot path
   (encode, mask add/subtract, decode), cryptography (PRG keystream, key
   agreement, AEAD, Shamir, signatures, Paillier) and the rest (message
   codecs, bookkeeping), all parties together.
2. One round of the default demo (``secagg demo`` settings, DP off so only
   aggregation differs) for each aggregation, split into local training,
   hot path, cryptography, privacy, evaluation and the rest.

Writes a table, JSON and a stacked bar chart (PNG).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from secagg import profiling

from ._common import table, write_json


def _synthetic(
    dims: list[int], n: int, kinds: list[str], paillier_max_d: int
) -> list[dict[str, Any]]:
    from protocols.fedavg.aggregation import make_secure_sum

    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(0)
    for d in dims:
        inputs = {i: rng.uniform(-1, 1, d).astype(np.float32) for i in range(n)}
        for kind in kinds:
            if kind == "paillier" and d > paillier_max_d:
                continue
            agg = make_secure_sum(kind, clip=1.0, max_summands=n)
            # warm-up on two clients, untimed (Paillier: key generation)
            agg(dict(list(inputs.items())[:3]), frozenset(), 0)
            t0 = time.perf_counter()
            with profiling.collect() as split:
                res = agg(inputs, frozenset(), 1)
            total = time.perf_counter() - t0
            err = float(np.max(np.abs(res.sum - np.sum(list(inputs.values()), axis=0))))
            hot, crypto = split.get(profiling.HOT_PATH, 0.0), split.get(profiling.CRYPTO, 0.0)
            rows.append(
                {
                    "d": d,
                    "aggregation": kind,
                    "clients": n,
                    "total_s": total,
                    "hot_path_s": hot,
                    "crypto_s": crypto,
                    "other_s": max(total - hot - crypto, 0.0),
                    "crypto_share": crypto / total,
                    "max_abs_error": err,
                }
            )
            print(f"  d={d} {kind}: {total:.2f}s", flush=True)
    return rows


def _demo_round(kinds: list[str], rounds: int) -> list[dict[str, Any]]:
    from protocols.fedavg import FedAvgConfig, run_fedavg

    rows = []
    for kind in kinds:
        cfg = FedAvgConfig(aggregation=kind, dp="none", rounds=rounds, progress=False)
        res = run_fedavg(cfg, write=False)
        rs = res.rounds[1:] if len(res.rounds) > 1 else res.rounds  # skip warm-up
        row: dict[str, Any] = {"aggregation": kind}
        for part in ("local_training", "hot_path", "crypto", "privacy", "evaluation",
                     "server_aggregation", "other", "round"):
            row[f"{part}_s"] = float(np.mean([getattr(r, f"time_{part}") for r in rs]))
        row["bytes_up_per_client"] = float(np.mean([r.bytes_up_per_client for r in rs]))
        rows.append(row)
        print(f"  demo round {kind}: {row['round_s']:.2f}s", flush=True)
    return rows


def _plot(syn: list[dict[str, Any]], demo: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from protocols.fedavg.plots import TIME_LABELS
    from protocols.fedavg.records import TIME_PARTS

    # one colour per part in both panels, one legend beside them
    colour = {part: f"C{i}" for i, part in enumerate(TIME_PARTS)}
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.8))
    labels = [f"{r['aggregation']}\nd={r['d']:.0e}" for r in syn]
    bottom = np.zeros(len(syn))
    totals = np.array([r["total_s"] for r in syn])
    for part in ("hot_path", "crypto", "other"):
        vals = np.array([r[f"{part}_s"] for r in syn]) / totals
        axes[0].bar(range(len(syn)), vals, bottom=bottom, color=colour[part])
        bottom += vals
    for i, t in enumerate(totals):
        axes[0].text(i, 1.01, f"{t:.3g}s", ha="center", fontsize=7)
    axes[0].set_xticks(range(len(syn)), labels, fontsize=7)
    axes[0].set_ylim(0, 1.1)
    axes[0].set_ylabel("share of the round (all parties)")
    axes[0].set_title(f"synthetic round, {syn[0]['clients'] if syn else 0} clients: "
                      "share of each part (total on top)", fontsize=10)
    bottom = np.zeros(len(demo))
    for part in TIME_PARTS:  # exclusive parts: they add up to the round
        vals = np.array([r[f"{part}_s"] for r in demo])
        axes[1].bar([r["aggregation"] for r in demo], vals, bottom=bottom,
                    color=colour[part], label=TIME_LABELS[part])
        bottom += vals
    for i, t in enumerate(bottom):
        axes[1].text(i, t, f"{t:.3g}s", ha="center", va="bottom", fontsize=7)
    axes[1].set_ylabel("seconds per round")
    axes[1].set_title("one round of the demo (no DP), seconds (total on top)", fontsize=10)
    handles, names = axes[1].get_legend_handles_labels()
    axes[1].legend(handles[::-1], names[::-1], fontsize=7, loc="upper left",
                   bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="secagg bench overhead",
                                 description=(__doc__ or "").replace("``", "'"),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="d in {10^4, 10^5} and 2 demo rounds (a few minutes)")
    ap.add_argument("--clients", type=int, default=10,
                    help="clients in the synthetic round (default 10)")
    ap.add_argument("--paillier-max-d", type=int, default=10**4,
                    help="largest d run with paillier (default 10^4)")
    ap.add_argument("--demo-rounds", type=int, default=3,
                    help="demo rounds per aggregation; the first is a warm-up (default 3)")
    ap.add_argument("--out", help="JSON path (default bench-results/overhead.json)")
    args = ap.parse_args(argv)
    dims = [10**4, 10**5] if args.quick else [10**4, 10**5, 10**6]
    kinds = ["secagg", "secagg+", "paillier"]
    print("synthetic vectors", flush=True)
    syn = _synthetic(dims, args.clients, kinds, args.paillier_max_d)
    print("demo rounds", flush=True)
    demo = _demo_round(["plain", *kinds], 2 if args.quick else args.demo_rounds)
    print("\n## Synthetic round: hot path against cryptography\n")
    print(table(syn))
    print("\n## One round of the demo (no DP), mean seconds per round\n")
    print(table(demo))
    path = write_json("overhead", {"synthetic": syn, "demo_round": demo}, args.out)
    png = path.with_suffix(".png")
    _plot(syn, demo, png)
    print(f"\nwrote {path} and {png}")
    return 0
