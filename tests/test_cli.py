"""The secagg command line, run as a user would, from outside the checkout."""

import subprocess
import sys


def _secagg(*args, cwd):
    return subprocess.run([sys.executable, "-m", "protocols.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_bench_lists_suites_from_any_directory(tmp_path):
    # Opacus installs a top-level package named "benchmarks"; ours must still be found.
    r = _secagg("bench", "--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for suite in ("primitives", "secagg", "paillier", "privacy", "overhead", "fedavg"):
        assert suite in r.stdout
    r = _secagg("bench", "nope", cwd=tmp_path)
    assert r.returncode == 2 and "unknown suite 'nope'" in r.stderr


def test_bench_suite_help_and_top_level_help(tmp_path):
    r = _secagg("bench", "primitives", "--help", cwd=tmp_path)
    assert r.returncode == 0 and "--quick" in r.stdout
    r = _secagg("--help", cwd=tmp_path)
    assert r.returncode == 0
    for cmd in ("demo", "train", "bench", "budget"):
        assert cmd in r.stdout


def test_train_reports_config_errors(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('aggregation = "bogus"\n')
    r = _secagg("train", str(cfg), cwd=tmp_path)
    assert r.returncode == 1
    assert "'aggregation' is 'bogus'; allowed values: plain, secagg, secagg+, paillier" in r.stderr


def test_help_lists_every_config_key_with_its_default(tmp_path):
    r = _secagg("demo", "--help", cwd=tmp_path)
    assert r.returncode == 0 and "%%" not in r.stdout and "10% dropouts" in r.stdout
    for opt in ("--delta", "--batch-size", "--client-lr", "--server-lr", "--clip-norm",
                "--adaptive-clipping"):
        assert opt in r.stdout
    assert "(default: 1e-05)" in r.stdout
    r = _secagg("train", "--help", cwd=tmp_path)
    assert "local_epochs = 2" in r.stdout and 'aggregation = "secagg+"' in r.stdout


def test_train_suggests_the_nearest_key(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text("local_epoch = 3\n")
    r = _secagg("train", str(cfg), cwd=tmp_path)
    assert r.returncode == 1 and "did you mean 'local_epochs'" in r.stderr


def test_one_rule_for_noise_multiplier_and_target_epsilon(tmp_path):
    from protocols.commands._fedavg_cli import add_override_options, overrides
    from protocols.fedavg import FedAvgConfig

    cfg = tmp_path / "run.toml"
    cfg.write_text('dp = "central"\nnoise_multiplier = 1.0\n')
    c = FedAvgConfig.from_toml(cfg)  # no need to write target_epsilon = "none"
    assert c.noise_multiplier == 1.0 and c.target_epsilon is None
    import argparse

    p = argparse.ArgumentParser()
    add_override_options(p)
    ov = overrides(p.parse_args(["--target-epsilon", "none", "--noise-multiplier", "2"]))
    assert ov["target_epsilon"] is None and ov["noise_multiplier"] == 2.0
    ov = overrides(p.parse_args(["--target-epsilon", "4"]))
    assert ov == {"target_epsilon": 4.0, "noise_multiplier": None}
    assert c.replace(**ov).target_epsilon == 4.0
