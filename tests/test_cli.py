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
