"""One session of SecAgg+ over the Grid (or a plain round trip with the same short poll)."""

import json
import time
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

from protocols.flower import SecureAggregator, nodes_ready, run_session
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


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    d = int(cfg["dimension"])
    nodes = nodes_ready(grid, int(cfg["num-nodes"]), timeout=120.0)
    if cfg["pause-path"]:
        pause = Path(str(cfg["pause-path"]))
        pause.write_text("start")
        stop = time.monotonic() + 60
        while pause.exists() and time.monotonic() < stop:
            time.sleep(0.05)
    if cfg["mode"] == "plain":
        out = plain_round(grid, nodes, d, float(cfg["timeout"]))
    elif cfg["mode"] == "folded":
        # two sessions back to back; the second's start rides on the first's last round trip
        agg = SecureAggregator(grid, SECAGG_PLUS, d, round_timeout=float(cfg["timeout"]))
        content = RecordDict({"config": ConfigRecord({"dimension": d})})
        agg.aggregate(nodes, train_content=content)
        t0 = time.monotonic()
        report = agg.aggregate(nodes, train_content=content)
        out = {"seconds": time.monotonic() - t0,
               "included": len(report.result.included),
               "round_trips": len(report.rounds) - 1,
               "rounds": {r.name: r.seconds for r in report.rounds[1:]},
               "bytes_up_per_node": sum(r.bytes_up for r in report.rounds) / len(nodes),
               "bytes_down_per_node": sum(r.bytes_down for r in report.rounds) / len(nodes)}
    else:
        content = RecordDict({"config": ConfigRecord({"dimension": d})})
        t0 = time.monotonic()
        report = run_session(grid, SECAGG_PLUS, nodes, d, round_timeout=float(cfg["timeout"]),
                             train_content=content)
        out = {"seconds": time.monotonic() - t0,
               "included": len(report.result.included),
               "round_trips": report.round_trips,
               "rounds": {r.name: r.seconds for r in report.rounds},
               "bytes_up_per_node": sum(r.bytes_up for r in report.rounds) / len(nodes),
               "bytes_down_per_node": sum(r.bytes_down for r in report.rounds) / len(nodes)}
    if cfg["result-path"]:
        Path(str(cfg["result-path"])).write_text(json.dumps(out))
