"""``secagg bench flower`` Paillier rows without Flower processes: a fake deployment
(a real dealt key of test size, results written as the ServerApp would) drives the
row plan, the kill hook, the in-process compute share and the formatting."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

pytest.importorskip("flwr")

from benchmarks import flower as bench
from protocols.flower.paillier import PUBLIC_CONFIG_KEY, SHARE_CONFIG_KEY, deal_to_files


class FakeDeployment:
    """What ``paillier_rows`` uses of a LocalDeployment: a root, handles with node
    configs naming the dealt files, ``run_app`` and ``kill_node``."""

    log: ClassVar[list[tuple[str, Any]]] = []

    def __init__(self, root: Path, n: int, k: int, t: int) -> None:
        self.root = root
        self.nodes = n
        ids = [1000 + 7 * i for i in range(n)]
        public, shares = deal_to_files(root, ids[:k], t, key_bits=256,
                                       insecure_allow_small_key_for_tests=True)
        self.paillier_public = public
        self.handles = [SimpleNamespace(index=i, node_id=nid, node_config={
            PUBLIC_CONFIG_KEY: str(public),
            **({SHARE_CONFIG_KEY: str(shares[nid])} if nid in shares else {})})
            for i, nid in enumerate(ids)]
        self.killed: list[int] = []

    def __enter__(self) -> FakeDeployment:
        self.log.append(("start", len(self.handles)))
        return self

    def __exit__(self, *exc: object) -> None:
        self.log.append(("stop", self.killed))

    def kill_node(self, index: int) -> None:
        self.killed.append(index)

    def run_app(self, app: Path, cfg: dict[str, Any], timeout: float) -> str:
        self.log.append((app.name, dict(cfg)))
        if cfg.get("pause-path"):  # the ServerApp's pause: the killer must lift it
            pause = Path(cfg["pause-path"])
            pause.write_text("start")
            end = time.monotonic() + 10
            while pause.exists() and time.monotonic() < end:
                time.sleep(0.01)
            assert not pause.exists()
            end = time.monotonic() + 10
            while not self.killed and time.monotonic() < end:
                time.sleep(0.01)
        if app.name == "native":
            out = {"seconds": 0.5, "rounds": cfg["rounds"]}
        else:
            gone = 1 if cfg.get("pause-path") else 0
            out = {"seconds": 4.0, "first_round": 5.0, "per_round": [5.0, 4.0, 4.0][
                :cfg["rounds"]], "round_trips": 2, "round_trips_all": [2] * cfg["rounds"],
                "included": len(self.handles) - gone, "max_error": 1e-6,
                "error_bound": 2e-6, "within_bound": True, "bytes_up_per_node": 1234.0,
                "last_round_trips": {"encrypt": 3.0, "decrypt": 1.04},
                "bytes_down_per_node": 567.0}
        Path(cfg["result-path"]).write_text(json.dumps(out))
        return ""


def args(*extra: str) -> Any:
    """The parsed options of ``main`` (parsing only, nothing runs)."""
    seen: dict[str, Any] = {}

    def stop(rows: list[dict[str, Any]], a: Any) -> int:
        seen["args"] = a
        return 0

    orig_rows, orig_finish = bench.paillier_rows, bench._finish
    bench.paillier_rows, bench._finish = (lambda n, a, dep, **kw: []), stop  # type: ignore
    try:
        assert bench.main(["--only", "paillier", *extra]) == 0
    finally:
        bench.paillier_rows, bench._finish = orig_rows, orig_finish
    return seen["args"]


def test_paillier_rows_with_a_fake_deployment(tmp_path: Path) -> None:
    a = args("--kill-after", "0.05", "--paillier-rounds", "3")
    made = iter(range(10))

    def deployment(n: int, k: int, t: int) -> FakeDeployment:
        root = tmp_path / f"dep{next(made)}"
        root.mkdir()
        return FakeDeployment(root, n, k, t)

    FakeDeployment.log.clear()
    rows = bench.paillier_rows(6, a, deployment, insecure_allow_small_key_for_tests=True)
    names = [r["aggregation"] for r in rows]
    assert names == ["flower-fedavg", "ours paillier k=5 t=3",
                     "ours paillier killed (non-committee) k=5 t=3",
                     "ours paillier killed (committee) k=5 t=3"]
    plain, ours, non_committee, committee = rows
    assert plain["d"] == 1000 and plain["round s"] == 0.5
    assert ours["round s"] == 4.0 and ours["x plain"] == 8.0 and ours["round trips"] == 2
    assert ours["up B/node"] == 1234 and ours["down B/node"] == 567
    assert ours["per round s"] == "5.0 4.0 4.0" and ours["max err"] == "1e-06"
    assert ours["within bound"] is True
    assert ours["last round trips s"] == "encrypt 3.0 decrypt 1.0"
    assert ours["compute s"] != "-" and ours["Flower overhead"].endswith("%")
    assert non_committee["in result"] == 5 and committee["in result"] == 5
    stops = [e[1] for e in FakeDeployment.log if e[0] == "stop"]
    assert stops == [[], [5], [0]]  # the last node (off the committee), then node 0
    runs = [e[1] for e in FakeDeployment.log if e[0] == "ours"]
    assert [r["rounds"] for r in runs] == [3, 1, 1]
    assert all(r["mode"] == "paillier" and r["paillier-public"].endswith(".bin") for r in runs)
    assert threading.active_count() < 20


def test_paillier_rows_all_on_the_committee_and_no_native(tmp_path: Path) -> None:
    a = args("--no-native", "--no-kill", "--paillier-dimension", "50")
    FakeDeployment.log.clear()
    rows = bench.paillier_rows(3, a, lambda n, k, t: FakeDeployment(tmp_path, n, k, t),
                               insecure_allow_small_key_for_tests=True)
    assert [r["aggregation"] for r in rows] == ["ours paillier k=3 t=2"]
    assert rows[0]["d"] == 50 and rows[0]["x plain"] == "-"


def test_paillier_options() -> None:
    a = args()
    assert (a.paillier_dimension, a.paillier_key_bits, a.paillier_rounds) == (1000, 2048, 3)
    assert bench._committee(3, a) == (3, 2) and bench._committee(10, a) == (5, 3)
    a = args("--paillier-committee", "4", "--paillier-threshold", "4")
    assert bench._committee(10, a) == (4, 4)
    with pytest.raises(SystemExit):
        bench._committee(3, a)  # t = 4 > k = 3
    for bad in (["--only", "secagg"], ["--only", "paillier", "--no-paillier"],
                ["--paillier-dimension", "0"], ["--paillier-timeout", "-1"]):
        with pytest.raises(SystemExit):
            bench.main(bad)


def test_table_columns_are_the_union_of_the_rows() -> None:
    rows = [{"aggregation": "a", "N": 3}, {"aggregation": "b", "N": 3, "max err": "1e-06"}]
    assert bench._columns(rows) == ["aggregation", "N", "max err"]
