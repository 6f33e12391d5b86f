"""``secagg budget``: epsilon per accountant, calibration, clear errors."""

from __future__ import annotations

import argparse
import json

import pytest

from protocols.commands import budget


def run(capsys, *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="secagg")
    sub = parser.add_subparsers(dest="command")
    budget.register(sub)
    args = parser.parse_args(["budget", *argv])
    from secagg.errors import SecAggError

    try:
        code = args.func(args)
    except SecAggError as exc:  # what protocols.cli does
        print(f"secagg budget: error: {exc}")
        code = 1
    out = capsys.readouterr()
    return code, out.out, out.err


def test_epsilon_side_by_side(capsys):
    code, out, _ = run(capsys, "-n", "60000", "-b", "256", "--steps", "14062",
                       "--sigma", "1.1", "--delta", "1e-5")
    assert code == 0
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith(("PLD", "PRV", "RDP"))}
    assert set(lines) == {"PLD", "PRV", "RDP"}
    assert float(lines["PLD"].split()[-1]) == pytest.approx(2.382, abs=0.004)
    assert float(lines["RDP"].split()[-1]) == pytest.approx(2.597, abs=0.004)
    assert "add/remove one example" in out and "example-level" in out


def test_json_and_client_unit(capsys):
    code, out, _ = run(capsys, "-q", "0.1", "--steps", "50", "--sigma", "1.0",
                       "--accountant", "rdp", "--unit", "client", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["unit"] == "client" and data["adjacency"] == "add/remove one"
    (row,) = data["results"]
    assert row["accountant"] == "rdp" and row["unit"] == "client" and row["epsilon"] > 0


def test_noise_for_a_target_epsilon(capsys):
    code, out, _ = run(capsys, "-n", "1000", "-b", "100", "--epochs", "5",
                       "--target-epsilon", "2", "--accountant", "rdp", "--json")
    assert code == 0
    (row,) = json.loads(out)["results"]
    assert row["epsilon"] <= 2.0 and row["noise_multiplier"] > 0.5
    assert row["steps"] == 50


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["-q", "1.5", "--steps", "10", "--sigma", "1"], "q=1.5 is outside (0, 1]"),
        (["-q", "0", "--steps", "10", "--sigma", "1"], "q=0.0 is outside (0, 1]"),
        (["-q", "0.1", "--steps", "10", "--sigma", "-1"], "sigma=-1.0 must be >= 0"),
        (["-q", "0.1", "--steps", "10", "--sigma", "1", "-d", "1"], "delta=1.0 is outside (0, 1)"),
        (["-n", "100", "-b", "200", "--steps", "10", "--sigma", "1"], "exceeds dataset_size=100"),
        (["-q", "0.1", "--sigma", "1"], "exactly one of --epochs and --steps"),
        (["-q", "0.1", "--steps", "5"], "exactly one of --sigma and --target-epsilon"),
        (["--steps", "5", "--sigma", "1"], "--dataset-size and --batch-size"),
        (["-q", "0.1", "--steps", "5", "--target-epsilon", "-1"], "target_epsilon=-1.0"),
    ],
)
def test_impossible_inputs_give_clear_errors(capsys, argv, needle):
    code, out, _ = run(capsys, *argv)
    assert code == 1
    assert needle in out


def test_registered_in_the_main_cli(capsys):
    from protocols.cli import main

    assert main(["budget", "-q", "0.5", "--steps", "3", "--sigma", "2",
                 "--accountant", "rdp", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 3
    assert main(["budget", "-q", "2", "--steps", "3", "--sigma", "2"]) == 1
    assert "outside (0, 1]" in capsys.readouterr().err


# ------------------------------------------ delta, long runs, PRV at small epsilon


def test_delta_at_or_above_one_over_n_is_flagged_loudly(capsys):
    code, out, _ = run(capsys, "-n", "60000", "-b", "256", "--steps", "100",
                         "--sigma", "1", "-d", "0.01", "--accountant", "rdp")
    assert code == 0
    assert "WARNING" in out and "1/N = 1/60000" in out
    code, out, err = run(capsys, "-n", "60000", "-b", "256", "--steps", "100",
                         "--sigma", "1", "-d", "0.01", "--accountant", "rdp", "--json")
    data = json.loads(out)
    assert any("1/N = 1/60000" in w for w in data["warnings"])
    assert "WARNING" in err and "1/N = 1/60000" in err
    # a sane delta: no warning at all
    code, out, _ = run(capsys, "-n", "60000", "-b", "256", "--steps", "100",
                       "--sigma", "1", "-d", "1e-6", "--accountant", "rdp", "--json")
    assert json.loads(out)["warnings"] == []


def test_delta_one_half_gives_no_negative_or_quiet_epsilon(capsys):
    code, out, _ = run(capsys, "-q", "0.01", "-t", "100", "-s", "1", "-d", "0.5", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["warnings"] and "delta=0.5" in data["warnings"][0]
    assert all(r["epsilon"] >= 0 for r in data["results"])


def test_huge_step_counts_answer_or_say_why_not(capsys):
    code, out, err = run(capsys, "-q", "0.01", "-t", "100000000", "-s", "1", "--json",
                         "--progress")
    assert code == 0
    rows = {r["accountant"]: r for r in json.loads(out)["results"]}
    assert rows["rdp"]["epsilon"] > 0 and rows["pld"]["epsilon"] > 0
    assert rows["prv"]["epsilon"] is None and "bound" in rows["prv"]["error"]
    assert "PLD" in err and "RDP" in err  # progress on stderr
    assert any("capped" in n for n in json.loads(out)["notes"])
    code, out, _ = run(capsys, "-q", "0.01", "-t", "100000", "-s", "1", "--accountant", "prv")
    assert code == 1 and "PRV accountant cannot answer 100000 steps" in out


def test_prv_error_dominating_at_small_epsilon_is_said(capsys):
    code, out, _ = run(capsys, "-q", "0.001", "-t", "1000", "-s", "20")
    assert code == 0
    assert "absolute error" in out and "PRV" in out
    code, out, _ = run(capsys, "-q", "0.01", "-t", "1000", "-s", "1")
    assert "absolute error" not in out  # epsilon 1.8: the error is 0.5 %, no note


def test_prv_note_for_a_small_target(capsys):
    code, out, _ = run(capsys, "-q", "0.01", "-t", "100", "--target-epsilon", "0.05",
                       "--accountant", "prv", "--json")
    assert code == 0
    assert any("absolute error" in n for n in json.loads(out)["notes"])
