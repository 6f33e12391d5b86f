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
