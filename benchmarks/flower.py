"""Suite ``flower``: one aggregation round over a real local Flower deployment.

For each N (default 3, 5, 10) a SuperLink with TLS and node authentication
and N SuperNodes start on loopback (``protocols.flower.LocalDeployment``);
each row is one ``flwr run`` of a small app with d = 10^5 float32 updates:

* ``flower-fedavg``: Flower's own plain FedAvg (``DefaultWorkflow``, legacy
  strategy API, no evaluation), the mean of ``--rounds`` rounds: one round
  trip each, no protection;
* ``flower-secagg+``: the same round with Flower's ``SecAggPlusWorkflow`` /
  ``secaggplus_mod`` (num_shares = min(N, 15), threshold N // 2 + 1);
* ``plain-short-poll``: one plain round trip through ``push_messages`` /
  ``pull_messages`` polled every 50 ms (what our driver's transport costs
  without any protocol);
* ``ours-secagg+``: this library's SecAgg+ (semi-honest) through
  ``protocols.flower.run_session``;
* ``ours pipelined``: ``--rounds`` FedAvg-like rounds (each sends the model
  with its masked-input round trip) through one ``SecureAggregator``, whose
  sessions are pipelined (the next session's key advertisement and key
  sharing ride on the current one's masked-input and unmask round trips):
  the mean of rounds 2+, as every FedAvg round after the first;
* ``ours pipelined malicious``: the same in malicious-server mode (each
  node reads the identity registry from its node config);
* ``... killed``: the same with SuperNode 0 SIGKILLed ``--kill-after``
  seconds after the round started (a fresh deployment per killed row); for
  ``ours pipelined killed`` that is 2 s into the first of the FedAvg rounds,
  and the row shows the later rounds (the dead node is still listed).

Paillier rows (``--only paillier`` runs only these; ``--no-paillier`` skips
them), on a separate deployment per N whose launcher deals a threshold
Paillier key out of band (``LocalDeployment(n, paillier_committee=k)``:
k = min(N, 5) committee nodes, t = k // 2 + 1, 2048-bit key by default) at a
small d (``--paillier-dimension``, 10^3 by default), with a round deadline of
``--paillier-timeout`` seconds:

* ``flower-fedavg``: Flower's plain FedAvg at that d on that deployment (the
  ``x plain`` of the Paillier rows);
* ``ours paillier``: ``--paillier-rounds`` FedAvg-like rounds of threshold
  Paillier sessions (each sends the model with its encrypt round trip, then
  the committee decrypts; not pipelined): the mean of rounds 2+; ``max err``
  is the largest distance of a round's sum from the exact float sum of the
  included nodes' updates (within the encoder's bound ``err bound``);
* ``ours paillier killed (non-committee)`` (only when N > k) and ``ours
  paillier killed (committee)``: one session on a fresh deployment with the
  last node (not on the committee) or node 0 (on it) SIGKILLed
  ``--kill-after`` seconds into the round; the sum is over the survivors
  and the round costs at most one deadline more.

``--no-native`` and ``--no-kill`` drop the Paillier deployment's Flower row and
killed rows too. Their ``compute s`` is one threshold Paillier session of all parties in
this process (one core, no workers) on the same dealt key, d and encoding.

Columns: wall seconds of the round measured inside the ServerApp (so
``flwr run`` start-up and FAB installation are excluded), nodes in the
result, protocol round trips, bytes of protocol payload up / down per node
(ours only), and for ours the share of the round that is Flower's own
overhead: 1 - (the same session's compute in process, all parties, one
core) / wall; ``x plain``: the row's seconds over the ``flower-fedavg``
row's of the same N (same deployment, measured in the same run). Flower's
SecAgg+ row runs once (it is slow); nothing here is a best-of.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._common import table, write_json

APPS = Path(__file__).resolve().parent / "flower_apps"


def _compute_seconds(n: int, d: int) -> float:
    """All parties' compute for one SecAgg+ session in process (no transport)."""
    from protocols.secagg import SECAGG_PLUS
    from protocols.simulator import run

    inputs = {i + 1: np.sin(np.arange(d) * 0.013 + i) for i in range(n)}
    t0 = time.perf_counter()
    run(SECAGG_PLUS, inputs)
    return time.perf_counter() - t0


def _paillier_compute_seconds(d: Any, dim: int, value_bits: int, *,
                              insecure_allow_small_key_for_tests: bool = False) -> float:
    """All parties' compute for one threshold Paillier session in process (no
    transport, one core), on the deployment's dealt public material and shares."""
    from protocols.flower.paillier import SHARE_CONFIG_KEY
    from protocols.paillier_sum import read_key_share, read_public, simulate

    insecure = insecure_allow_small_key_for_tests
    public = read_public(d.paillier_public, insecure_allow_small_key_for_tests=insecure)
    shares = {h.node_id: read_key_share(str(h.node_config[SHARE_CONFIG_KEY]), h.node_id, public,
                                        insecure_allow_small_key_for_tests=insecure)
              for h in d.handles if h.node_id in public.committee}
    inputs = {h.node_id: np.sin(np.arange(dim) * 0.013 + (h.node_id % 100_003) * 1e-3)
              for h in d.handles}
    t0 = time.perf_counter()
    simulate(inputs, trust="threshold", public=public, key_shares=shares, clip=1.0,
             value_bits=value_bits, workers=1, insecure_allow_small_key_for_tests=insecure)
    return time.perf_counter() - t0


def _committee(n: int, args: argparse.Namespace) -> tuple[int, int]:
    """(committee size k, threshold t) of the Paillier rows for N = ``n``."""
    k = min(n, args.paillier_committee or 5)
    t = args.paillier_threshold or k // 2 + 1
    if not 1 <= t <= k:
        raise SystemExit(f"--paillier-threshold {t} is outside 1..{k} (the committee at N={n})")
    return k, t


def paillier_rows(n: int, args: argparse.Namespace, deployment: Any,
                  **compute_options: Any) -> list[dict[str, Any]]:
    """The Paillier rows of N = ``n``. ``deployment(n, committee, threshold)``
    returns a started ``LocalDeployment``-like context manager with a dealt key."""
    k, t = _committee(n, args)
    dim, bits = args.paillier_dimension, args.paillier_value_bits
    cfg = {"dimension": dim, "timeout": args.paillier_timeout, "mode": "paillier",
           "paillier-value-bits": bits}
    rows: list[dict[str, Any]] = []
    label = f" k={k} t={t}"

    def emit(row: dict[str, Any]) -> None:
        rows.append(row)
        print(table([row]).splitlines()[-1], flush=True)

    with deployment(n, k, t) as d:
        compute = _paillier_compute_seconds(d, dim, bits, **compute_options)
        plain_s: float | None = None
        if not args.no_native:
            r = _row(d, "native", {"dimension": dim, "timeout": args.paillier_timeout,
                                   "mode": "plain", "rounds": args.rounds}, None,
                     args.run_timeout)
            plain_s = r.get("seconds")
            emit(_format("flower-fedavg", n, r, None, dimension=dim))
        r = _row(d, "ours", {**cfg, "rounds": args.paillier_rounds,
                             "paillier-public": str(d.paillier_public)}, None, args.run_timeout)
        emit(_format("ours paillier" + label, n, r, compute, plain_s, dimension=dim))
    if args.no_kill:
        return rows
    kills = [("non-committee", n - 1)] if n > k else []
    kills.append(("committee", 0))
    for what, index in kills:
        with deployment(n, k, t) as d:
            r = _row(d, "ours", {**cfg, "rounds": 1, "paillier-public": str(d.paillier_public)},
                     args.kill_after, args.run_timeout, kill_index=index)
            emit(_format(f"ours paillier killed ({what})" + label, n, r, None,
                         dimension=dim))
    return rows


def _row(d: Any, app: str, config: dict[str, Any], kill_after: float | None,
         timeout: float, kill_index: int = 0) -> dict[str, Any]:
    result = d.root / f"result-{time.monotonic_ns()}.json"
    pause = d.root / "pause"
    cfg = {**config, "result-path": str(result), "num-nodes": d.nodes}
    if kill_after is not None:
        cfg["pause-path"] = str(pause)

        def killer() -> None:
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                if pause.exists():
                    pause.unlink()
                    time.sleep(kill_after)
                    d.kill_node(kill_index)
                    return
                time.sleep(0.02)

        threading.Thread(target=killer, daemon=True).start()
    try:
        d.run_app(APPS / app, cfg, timeout=timeout)
    except Exception as exc:  # a row that fails is reported, the suite goes on
        return {"seconds": None, "error": str(exc).splitlines()[0][:120]}
    return json.loads(result.read_text()) if result.exists() else {"seconds": None,
                                                                    "error": "no result"}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="secagg bench flower", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, nargs="+", default=[3, 5, 10])
    p.add_argument("--dimension", type=int, default=100_000)
    p.add_argument("--timeout", type=float, default=30.0,
                   help="round deadline of ours, round timeout of Flower's (s)")
    p.add_argument("--kill-after", type=float, default=2.0,
                   help="seconds after the round starts that node 0 is killed")
    p.add_argument("--no-kill", action="store_true", help="skip the killed-node rows")
    p.add_argument("--no-native", action="store_true", help="skip Flower's own rows")
    p.add_argument("--no-native-secagg", action="store_true",
                   help="skip Flower's own SecAgg+ row (keep its plain FedAvg row)")
    p.add_argument("--no-malicious", action="store_true",
                   help="skip the malicious-mode pipelined row")
    p.add_argument("--rounds", type=int, default=4,
                   help="FedAvg rounds of the pipelined rows and of Flower's plain row")
    p.add_argument("--run-timeout", type=float, default=600.0,
                   help="give up on one row after this many seconds")
    p.add_argument("--only", choices=["paillier"],
                   help="run only these rows (paillier: the threshold Paillier rows)")
    p.add_argument("--no-paillier", action="store_true", help="skip the Paillier rows")
    p.add_argument("--paillier-dimension", type=int, default=1_000,
                   help="d of the Paillier rows (default 1000)")
    p.add_argument("--paillier-rounds", type=int, default=3,
                   help="Paillier sessions back to back (figures of rounds 2+)")
    p.add_argument("--paillier-timeout", type=float, default=120.0,
                   help="round deadline of the Paillier rows (s)")
    p.add_argument("--paillier-committee", type=int, default=0,
                   help="committee size k (default min(N, 5))")
    p.add_argument("--paillier-threshold", type=int, default=0,
                   help="decryption threshold t (default k // 2 + 1)")
    p.add_argument("--paillier-key-bits", type=int, default=2048)
    p.add_argument("--paillier-value-bits", type=int, default=24,
                   help="bits per encoded value (clip 1.0)")
    p.add_argument("--out", help="JSON output path (default bench-results/flower.json)")
    args = p.parse_args(argv)
    if args.only and args.no_paillier:
        p.error("--only paillier and --no-paillier exclude each other")
    for name in ("paillier_dimension", "paillier_rounds", "paillier_timeout"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} {getattr(args, name)} must be positive")

    from protocols.flower.deployment import LocalDeployment

    def dealt(n: int, k: int, t: int) -> Any:
        return LocalDeployment(n, start_timeout=300, paillier_committee=k,
                               paillier_threshold=t, paillier_key_bits=args.paillier_key_bits)

    rows: list[dict[str, Any]] = []
    if args.only == "paillier":
        for n in args.nodes:
            rows += paillier_rows(n, args, dealt)
        return _finish(rows, args)
    d_ = args.dimension
    native = {"dimension": d_, "timeout": args.timeout}
    ours = {"dimension": d_, "timeout": args.timeout}
    for n in args.nodes:
        compute = _compute_seconds(n, d_)
        plan: list[tuple[str, str, dict[str, Any]]] = []
        if not args.no_native:
            plan.append(("flower-fedavg", "native",
                         {**native, "mode": "plain", "rounds": args.rounds}))
            if not args.no_native_secagg:
                plan.append(("flower-secagg+", "native", {**native, "mode": "secagg+"}))
        plan.append(("plain-short-poll", "ours", {**ours, "mode": "plain"}))
        plan.append(("ours-secagg+", "ours", {**ours, "mode": "semi-honest"}))
        plan.append(("ours pipelined", "ours",
                     {**ours, "mode": "pipelined", "rounds": args.rounds}))
        if not args.no_malicious:
            plan.append(("ours pipelined malicious", "ours",
                         {**ours, "mode": "pipelined-malicious", "rounds": args.rounds}))
        with LocalDeployment(n, start_timeout=300, identity=True) as d:
            plain_s: float | None = None
            for name, app, cfg in plan:
                if cfg.get("mode") == "pipelined-malicious":
                    cfg = {**cfg, "registry-path": str(d.registry)}
                r = _row(d, app, cfg, None, args.run_timeout)
                if name == "flower-fedavg":
                    plain_s = r.get("seconds")
                semi = name.startswith("ours") and "malicious" not in name
                rows.append(_format(name, n, r, compute if semi else None, plain_s))
                print(table([rows[-1]]).splitlines()[-1], flush=True)
        if args.no_kill:
            continue
        kill_plan = [("ours-secagg+ killed", "ours", {**ours, "mode": "semi-honest"}),
                     ("ours pipelined killed", "ours",
                      {**ours, "mode": "pipelined", "rounds": args.rounds})]
        if not args.no_native:
            kill_plan.append(("flower-secagg+ killed", "native", {**native, "mode": "secagg+"}))
        for name, app, cfg in kill_plan:
            with LocalDeployment(n, start_timeout=300) as d:
                r = _row(d, app, cfg, args.kill_after, args.run_timeout)
                rows.append(_format(name, n, r, None))
                print(table([rows[-1]]).splitlines()[-1], flush=True)
    if not args.no_paillier:
        for n in args.nodes:
            rows += paillier_rows(n, args, dealt)
    return _finish(rows, args)


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every row's columns, in order of first appearance."""
    return list(dict.fromkeys(k for r in rows for k in r))


def _finish(rows: list[dict[str, Any]], args: argparse.Namespace) -> int:
    print()
    print(table(rows, _columns(rows)))
    path = write_json("flower", {"rows": rows, "args": vars(args)}, args.out)
    print(f"\nwritten to {path}")
    return 0


def _format(name: str, n: int, r: dict[str, Any], compute: float | None,
            plain: float | None = None, dimension: int | None = None) -> dict[str, Any]:
    secs = r.get("seconds")
    row: dict[str, Any] = {
        "aggregation": name, "N": n,
        "round s": round(secs, 2) if secs is not None else "failed",
        "in result": r.get("included", "-"),
        "round trips": r.get("round_trips", 1 if name.startswith("flower-fedavg") else (
            4 if name.startswith("flower-secagg+") else "-")),
        "up B/node": round(r["bytes_up_per_node"]) if "bytes_up_per_node" in r else "-",
        "down B/node": round(r["bytes_down_per_node"]) if "bytes_down_per_node" in r else "-",
        "compute s": round(compute, 3) if compute else "-",
        "Flower overhead": (f"{100 * (1 - compute / secs):.1f}%" if compute and secs else "-"),
        "x plain": round(secs / plain, 2) if secs and plain else "-",
    }
    if dimension is not None:
        row["d"] = dimension
    if "max_error" in r:
        row["max err"] = f"{r['max_error']:.3g}"
        row["err bound"] = f"{r['error_bound']:.3g}"
        row["within bound"] = r.get("within_bound", "-")
    if "last_round_trips" in r:  # seconds of each round trip of the last round
        row["last round trips s"] = " ".join(f"{k} {v:.1f}"
                                             for k, v in r["last_round_trips"].items())
    if "per_round" in r:
        row["per round s"] = " ".join(f"{x:.1f}" for x in r["per_round"])
        row["trips per round"] = " ".join(str(x) for x in r["round_trips_all"])
    if "error" in r:
        row["note"] = r["error"]
    return row
