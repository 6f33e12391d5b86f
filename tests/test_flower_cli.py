"""``secagg demo --engine flower --nodes N``: option parsing and dispatch, no processes."""

from __future__ import annotations

import sys

import pytest

from protocols.cli import main


@pytest.fixture
def fake_run_demo(monkeypatch):
    pytest.importorskip("flwr")
    pytest.importorskip("torch")
    import protocols.flower.demo as demo_mod

    calls = []

    def fake(nodes, **kw):
        calls.append((nodes, kw))
        return [{"aborted": False}]

    monkeypatch.setattr(demo_mod, "run_demo", fake)
    return calls


def test_engine_flower_dispatches_to_the_flower_demo(fake_run_demo, tmp_path):
    rc = main(["demo", "--engine", "flower", "--nodes", "4", "--rounds", "2",
               "--aggregation", "secagg", "--task", "linear-regression",
               "--round-timeout", "7", "--out-dir", str(tmp_path)])
    assert rc == 0
    [(nodes, kw)] = fake_run_demo
    assert nodes == 4
    assert kw["rounds"] == 2 and kw["protocol"] == "secagg"
    assert kw["task"] == "linear-regression" and kw["round_timeout"] == 7.0
    assert kw["out_dir"] == tmp_path
    assert kw["extra_config"] == {"dp": "none"}


def test_engine_flower_defaults_and_local_dp(fake_run_demo):
    assert main(["demo", "--engine", "flower"]) == 0
    assert main(["demo", "--engine", "flower", "--dp", "local", "--target-epsilon", "3"]) == 0
    (n0, kw0), (_, kw1) = fake_run_demo
    assert n0 == 3 and kw0["rounds"] == 3 and kw0["protocol"] == "secagg+"
    assert kw0["extra_config"] == {"dp": "none"}
    assert kw1["extra_config"] == {"dp": "local", "target-epsilon": 3.0}


def test_engine_flower_central_dp(fake_run_demo):
    assert main(["demo", "--engine", "flower", "--dp", "central", "--target-epsilon", "2"]) == 0
    assert main(["flower-demo", "--dp", "central"]) == 0
    (_, kw0), (_, kw1) = fake_run_demo
    assert kw0["extra_config"] == {"dp": "central", "target-epsilon": 2.0}
    assert kw1["extra_config"] == {"dp": "central", "target-epsilon": 8.0}


def test_flower_demo_alias_takes_the_same_path(fake_run_demo):
    assert main(["flower-demo", "--nodes", "5", "--rounds", "1"]) == 0
    [(nodes, kw)] = fake_run_demo
    assert nodes == 5 and kw["rounds"] == 1


def test_aborted_last_round_is_exit_code_1(fake_run_demo, monkeypatch):
    import protocols.flower.demo as demo_mod

    monkeypatch.setattr(demo_mod, "run_demo", lambda n, **kw: [{"aborted": True}])
    assert main(["demo", "--engine", "flower"]) == 1


@pytest.mark.parametrize("argv, word", [
    (["demo", "--engine", "flower", "--dropout-rate", "0.2"], "--dropout-rate"),
    (["demo", "--engine", "flower", "--aggregation", "plain"], "plain"),
    (["demo", "--engine", "flower", "--dp", "distributed"], "distributed"),
    (["demo", "--nodes", "3"], "--nodes"),
    (["demo", "--round-timeout", "3"], "--round-timeout"),
])
def test_engine_options_are_checked_before_anything_starts(argv, word, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert word in err


def test_engine_choice_is_checked(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--engine", "ray"])
    assert "invalid choice" in capsys.readouterr().err


def test_engine_flower_without_flwr_says_how_to_install(monkeypatch, capsys):
    # make flwr unimportable and forget every module that imported it
    for name in [m for m in sys.modules if m == "flwr" or m.startswith("flwr.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "flwr", None)
    for name in [m for m in sys.modules if m.startswith("protocols.flower")]:
        monkeypatch.delitem(sys.modules, name)
    assert main(["demo", "--engine", "flower", "--nodes", "3"]) == 2
    err = capsys.readouterr().err
    assert "pip install -e '.[flower]'" in err and "demo --engine flower" in err
