"""This library's SecAgg+ over the Grid: one session, or FedAvg-like rounds of pipelined
sessions (semi-honest or malicious); FedAvg-like rounds of threshold Paillier sessions on
a key dealt out of band; and a plain one-round-trip baseline with the same poll."""

import json
import time
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

from protocols.flower import SecureAggregator, nodes_ready, run_session
from protocols.flower.identity import malicious_session, read_registry
from protocols.paillier_sum import PAILLIER_SUM
from protocols.secagg import SECAGG_PLUS

app = ServerApp()


def plain_round(grid: Grid, nodes: list[int], d: int, timeout: float) -> dict:
    """Send the model, pull the plain updates every 50 ms: one round trip, no protection."""
    t0 = time.monotonic()
    msgs = [Message(RecordDict({"arrays": ArrayRecord({"w": Array(np.zeros(d, np.float32))}),
                                "config": ConfigRecord({"dimension": d})}),
                    dst_node_id=n, message_type="train", ttl=timeout) for n in nodes]
    waiting = set(grid.push_messages(msgs))
    total = np.zeros(d)
    got = 0
    while waiting and time.monotonic() < t0 + timeout:
        for r in grid.pull_messages(list(waiting)):
            waiting.discard(r.metadata.reply_to_message_id)
            if not r.has_error():
                total += r.content["arrays"]["u"].numpy()
                got += 1
        time.sleep(0.05)
    return {"seconds": time.monotonic() - t0, "included": got, "round_trips": 1}


def pipelined(grid: Grid, nodes: list[int], d: int, timeout: float, rounds: int,
              registry: str) -> dict:
    """``rounds`` sessions back to back through one SecureAggregator (each round's model
    is sent with its masked-input round trip); the figures are of rounds 2+."""
    factory = None
    if registry:
        reg = read_registry(registry)
        factory = lambda ids: malicious_session(SECAGG_PLUS, reg, ids, d)  # noqa: E731
    agg = SecureAggregator(grid, SECAGG_PLUS, d, round_timeout=timeout,
                           session_factory=factory)
    per_round, trips, included, up, down = [], [], [], 0, 0
    for rnd in range(rounds):
        content = RecordDict({"arrays": ArrayRecord({"w": Array(np.zeros(d, np.float32))}),
                              "config": ConfigRecord({"dimension": d, "round": rnd})})
        t0 = time.monotonic()
        report = agg.aggregate(nodes, train_content=content)
        per_round.append(time.monotonic() - t0)
        trips.append(report.round_trips)
        included.append(len(report.result.included))
        if rnd > 0:
            up += sum(r.bytes_up for r in report.rounds)
            down += sum(r.bytes_down for r in report.rounds)
    later = per_round[1:]
    return {"seconds": sum(later) / len(later), "first_round": per_round[0],
            "per_round": per_round, "round_trips": trips[-1], "round_trips_all": trips,
            "included": min(included[1:]),
            "bytes_up_per_node": up / len(later) / len(nodes),
            "bytes_down_per_node": down / len(later) / len(nodes)}


def update_of(node_id: int, d: int) -> np.ndarray:
    """The update the ClientApp of ``node_id`` sends (float32, as on the wire)."""
    u = np.sin(np.arange(d, dtype=np.float64) * 0.013 + (node_id % 100_003) * 1e-3)
    return u.astype(np.float32).astype(np.float64)


def paillier(grid: Grid, nodes: list[int], d: int, timeout: float, rounds: int,
             public: str, value_bits: int) -> dict:
    """``rounds`` threshold Paillier sessions back to back (each sends the model with its
    encrypt round trip; Paillier sessions are not pipelined); the figures are of rounds 2+
    (of the only round when ``rounds`` is 1). ``max_error``: the largest distance of any
    round's sum from the exact float sum of the included nodes' updates; ``within_bound``:
    every round's error was at most that round's rounding bound."""
    per_round, trips, included, up, down, err, bound, within = [], [], [], 0, 0, 0.0, 0.0, True
    for rnd in range(rounds):
        content = RecordDict({"arrays": ArrayRecord({"w": Array(np.zeros(d, np.float32))}),
                              "config": ConfigRecord({"dimension": d, "round": rnd})})
        t0 = time.monotonic()
        report = run_session(grid, PAILLIER_SUM, nodes, d, round_timeout=timeout,
                             train_content=content, public=public, clip=1.0,
                             value_bits=value_bits)
        per_round.append(time.monotonic() - t0)
        phases = {r.name: r.seconds for r in report.rounds}
        got = report.sum()
        inc = sorted(report.result.included)
        want = sum((update_of(n, d) for n in inc), np.zeros(d))
        this_err = float(np.max(np.abs(got - want)))
        this_bound = float(report.encoder.error_bound(len(inc)))
        within = within and this_err <= this_bound
        err, bound = max(err, this_err), max(bound, this_bound)
        trips.append(report.round_trips)
        included.append(len(inc))
        if rnd > 0 or rounds == 1:
            up += sum(r.bytes_up for r in report.rounds)
            down += sum(r.bytes_down for r in report.rounds)
    later = per_round[1:] or per_round
    return {"seconds": sum(later) / len(later), "first_round": per_round[0],
            "per_round": per_round, "round_trips": trips[-1], "round_trips_all": trips,
            "included": min(included[1:] or included), "max_error": err, "error_bound": bound,
            "within_bound": within,
            "last_round_trips": phases,
            "bytes_up_per_node": up / len(later) / len(nodes),
            "bytes_down_per_node": down / len(later) / len(nodes)}


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    d = int(cfg["dimension"])
    timeout = float(cfg["timeout"])
    nodes = nodes_ready(grid, int(cfg["num-nodes"]), timeout=120.0)
    if cfg["pause-path"]:
        pause = Path(str(cfg["pause-path"]))
        pause.write_text("start")
        stop = time.monotonic() + 60
        while pause.exists() and time.monotonic() < stop:
            time.sleep(0.05)
    if cfg["mode"] == "plain":
        out = plain_round(grid, nodes, d, timeout)
    elif cfg["mode"] in ("pipelined", "pipelined-malicious"):
        registry = str(cfg["registry-path"]) if cfg["mode"] == "pipelined-malicious" else ""
        out = pipelined(grid, nodes, d, timeout, int(cfg["rounds"]), registry)
    elif cfg["mode"] == "paillier":
        out = paillier(grid, nodes, d, timeout, int(cfg["rounds"]),
                       str(cfg["paillier-public"]), int(cfg["paillier-value-bits"]))
    else:
        content = RecordDict({"config": ConfigRecord({"dimension": d})})
        t0 = time.monotonic()
        report = run_session(grid, SECAGG_PLUS, nodes, d, round_timeout=timeout,
                             train_content=content)
        out = {"seconds": time.monotonic() - t0,
               "included": len(report.result.included),
               "round_trips": report.round_trips,
               "rounds": {r.name: r.seconds for r in report.rounds},
               "bytes_up_per_node": sum(r.bytes_up for r in report.rounds) / len(nodes),
               "bytes_down_per_node": sum(r.bytes_down for r in report.rounds) / len(nodes)}
    if cfg["result-path"]:
        Path(str(cfg["result-path"])).write_text(json.dumps(out))
