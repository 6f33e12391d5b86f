"""FedAvg over Flower's Message API (fake Grid in process), the demo's app and command."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytest.importorskip("flwr")
pytest.importorskip("torch")


from flower_fedavg_grid import IDS, grid

from protocols.flower.demo import APP_PYPROJECT, run_demo, write_app
from protocols.flower.fedavg import fedavg_defaults, run_fedavg
from protocols.flower.testing import Fault
from secagg.errors import ParameterError


def test_fedavg_learns_over_flower_with_a_dropout(tmp_path):
    cfg = {"task": "linear-regression", "num-rounds": 2, "num-nodes": len(IDS),
           "round-timeout": 1.0, "train-timeout": 2.0, "lr": 0.05, "run-dir": str(tmp_path)}
    g = grid(cfg, [Fault(IDS[1], "masked_input", "drop")])
    records = run_fedavg(g, cfg)
    assert [r.round for r in records] == [1, 2]
    assert records[-1].test_loss < records[0].test_loss
    # the node that vanishes in every masked-input round trip is left out of every round:
    # in round 1 it dropped there, round 2's session (pipelined into round 1's masked-input
    # and unmask round trips) lost it at its key advertisement
    for r in records:
        assert not r.aborted
        assert set(r.included) == set(IDS) - {IDS[1]}
    assert [r.round_trips for r in records] == [4, 2]
    assert (tmp_path / "metrics.json").exists()


def test_fedavg_rounds_are_pipelined():
    cfg = {"task": "linear-regression", "num-rounds": 3, "num-nodes": len(IDS),
           "round-timeout": 1.0, "train-timeout": 10.0}
    g = grid(cfg)
    records = run_fedavg(g, cfg)
    assert all(set(r.included) == set(IDS) for r in records)
    # rounds 2 and 3 advertise and share keys inside the previous round's round trips
    assert [r.round_trips for r in records] == [4, 2, 2]
    assert sum(1 for _, rnd, _ in g.log if rnd == "advertise") == len(IDS)
    assert sum(1 for _, rnd, _ in g.log if rnd == "masked_input") == 3 * len(IDS)


def test_node_without_a_partition_refuses():
    cfg = {"task": "linear-regression", "num-rounds": 1, "num-nodes": len(IDS),
           "round-timeout": 1.0, "train-timeout": 30.0}
    g = grid(cfg)
    g.node_config = {}
    [rec] = run_fedavg(g, cfg)
    assert rec.aborted and "partition-id" in rec.dropped["*"]


def test_defaults_cover_the_example_app():
    example = Path(__file__).parents[1] / "examples" / "flower_app" / "pyproject.toml"
    for text in (example.read_text(), APP_PYPROJECT):
        app_cfg = tomllib.loads(text)["tool"]["flwr"]["app"]["config"]
        assert set(app_cfg) == set(fedavg_defaults())


def test_demo_app_is_a_valid_flower_app(tmp_path):
    from flwr.common.config import validate_config

    app = write_app(tmp_path)
    ok, errors, _ = validate_config(tomllib.loads((app / "pyproject.toml").read_text()),
                                    check_module=True, project_dir=app)
    assert ok, errors


def test_demo_checks_its_arguments():
    with pytest.raises(ParameterError):
        run_demo(1, out=io.StringIO())
    with pytest.raises(ParameterError):
        run_demo(3, rounds=0, out=io.StringIO())


def test_flower_demo_command_is_registered(capsys):
    from protocols.cli import main

    with pytest.raises(SystemExit):
        main(["flower-demo", "--help"])
    assert "--nodes" in capsys.readouterr().out
