"""Load check over real processes: a SuperLink and 20 SuperNodes on loopback
(TLS and node authentication), two of them killed with SIGKILL mid-round.

Slow: 20 SuperNodes start one ClientApp process per message each, which
takes minutes on a small machine. The fast counterparts run by default:
dropouts in every round over the fake ``Grid`` (test_flower_transport.py)
and one node killed mid-session over 3 real SuperNodes
(test_flower_deployment.py, slow) / one exact session over 3 (default).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr")

from protocols.flower.apps import PROGRESS_PREFIX
from protocols.flower.demo import write_app
from protocols.flower.deployment import LocalDeployment

pytestmark = pytest.mark.slow

NODES = 20
VICTIMS = (0, 1)
SUM_APP = Path(__file__).parent / "flower_sum_app"


def _kill_when(d: LocalDeployment, ready: threading.Event, delay: float) -> threading.Thread:
    def killer() -> None:
        if ready.wait(timeout=900):
            time.sleep(delay)
            for i in VICTIMS:
                d.kill_node(i)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    return t


def test_secagg_plus_sessions_over_20_nodes_with_two_killed_mid_round():
    """Session 0 sums all 20; in session 1 two nodes die after advertising
    their keys (the server is paused before key sharing, the nodes are killed,
    the round goes on): the sum over the 18 survivors is exact; session 2,
    which still lists the dead nodes, loses at most one deadline on them and
    is exact too."""
    with LocalDeployment(NODES, start_timeout=600) as d:
        progress = d.root / "progress"
        victims = {d.handles[i].node_id for i in VICTIMS}
        paused = threading.Event()

        def watch() -> None:
            end = time.monotonic() + 900
            while time.monotonic() < end:
                if progress.exists():
                    for i in VICTIMS:
                        d.kill_node(i)
                    progress.unlink()
                    paused.set()
                    return
                time.sleep(0.05)

        threading.Thread(target=watch, daemon=True).start()
        result = d.root / "result.json"
        t0 = time.monotonic()
        d.run_app(SUM_APP, {
            "result-path": str(result), "sessions": 3, "dimension": 1000,
            "num-nodes": NODES, "round-timeout": 90.0,
            "progress-path": str(progress), "pause-at": "1:share_keys"}, timeout=2400)
        wall = time.monotonic() - t0
        sessions = json.loads(result.read_text())
    assert paused.is_set()
    everyone = {h.node_id for h in d.handles}
    first, second, third = sessions
    assert set(first["included"]) == everyone
    assert set(second["included"]) == everyone - victims
    assert set(third["included"]) == everyone - victims
    for s in sessions:
        assert s["max_error"] <= s["error_bound"]
    dropped_in = {r["name"] for r in second["rounds"] if r["dropped"]}
    assert dropped_in == {"share_keys"}
    assert {int(k) for r in second["rounds"] for k in r["dropped"]} == victims
    # a dead node costs a later session at most one round deadline
    assert third["seconds"] <= first["seconds"] + 90.0 + 60.0, (third, first)
    assert wall < 2400


def test_fedavg_over_20_nodes_with_two_killed_mid_round():
    """Three FedAvg rounds with SecAgg+; two SuperNodes are killed a few
    seconds into round 2. Rounds 2 and 3 are not aborted, their sums leave
    out exactly the dead nodes, and the model keeps learning (measured here:
    both tests together about 18 minutes on 2 shared cores)."""
    cfg = {i: {"partition-id": i, "num-partitions": NODES} for i in range(NODES)}
    records: list[dict] = []
    with LocalDeployment(NODES, node_config=cfg, start_timeout=600) as d:
        victims = {d.handles[i].node_id for i in VICTIMS}
        round_one = threading.Event()
        _kill_when(d, round_one, delay=3.0)

        def line(text: str) -> None:
            if text.startswith(PROGRESS_PREFIX):
                records.append(json.loads(text[len(PROGRESS_PREFIX):]))
                if len(records) == 1:
                    round_one.set()

        d.run_app(write_app(d.root), {
            "num-nodes": NODES, "num-rounds": 3, "protocol": "secagg+",
            "round-timeout": 90.0, "train-timeout": 300.0}, timeout=3600, on_line=line)
        assert all(d.handles[i].process.poll() is not None for i in VICTIMS)
    everyone = {h.node_id for h in d.handles}
    assert [r["round"] for r in records] == [1, 2, 3]
    assert not any(r["aborted"] for r in records)
    assert set(records[0]["included"]) == everyone
    assert set(records[1]["included"]) == everyone - victims
    assert set(records[2]["included"]) == everyone - victims
    # 20 small Dirichlet partitions learn slowly; chance is 0.1
    assert records[2]["test_accuracy"] > 0.2
    assert records[2]["test_loss"] < records[0]["test_loss"]
