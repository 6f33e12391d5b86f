"""The core install: numpy, cryptography, phe and gmpy2 are enough to mask or
encrypt an update. Extras bring the rest."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "opacus", "sklearn", "matplotlib", "tqdm", "scipy", "dp_accounting")

# A SecAgg round and a Paillier sum, the work a phone or edge client does.
CORE_ROUND = """
import numpy as np
from protocols.secagg import simulate
from protocols.paillier_sum import simulate as paillier_simulate

x = {c: np.full(8, 0.25 * c) for c in range(1, 6)}
res = simulate(x, dropouts={"masked_input": [2]})
assert np.allclose(res.sum, 0.25 * (1 + 3 + 4 + 5), atol=1e-4), res.sum
res = paillier_simulate(x, key_bits=1024, clip=2.0, insecure_allow_small_key_for_tests=True)
assert np.allclose(res.sum, 0.25 * 15, atol=1e-3), res.sum
from protocols.cli import build_parser
build_parser()
print("core ok")
"""

# Refuse every heavy import, so the round above proves it needs none of them.
BLOCKER = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {HEAVY!r}:
            raise ModuleNotFoundError(f"blocked heavy import {{name}}", name=name)
        return None
sys.meta_path.insert(0, Block())
"""


def _core_dependencies() -> list[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return data["project"]["dependencies"]


def test_core_dependencies_are_the_four_primitives_libraries():
    names = sorted(d.split(">")[0].split("<")[0].split("=")[0].split(";")[0].strip()
                   for d in _core_dependencies())
    assert names == ["cryptography", "gmpy2", "numpy", "phe"]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert {"dp", "fedavg", "plots", "testing", "dev"} <= set(extras)
    assert any(d.startswith("torch") for d in extras["dp"])
    assert any("secagg[" in d and "fedavg" in d and "plots" in d and "testing" in d
               for d in extras["dev"])


def test_secagg_round_and_paillier_sum_import_nothing_heavy():
    r = subprocess.run([sys.executable, "-c", BLOCKER + CORE_ROUND], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "core ok" in r.stdout


def test_fedavg_commands_name_the_missing_extra():
    code = BLOCKER + (
        "from protocols.cli import main\n"
        "raise SystemExit(main(['demo', '--rounds', '1']))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "pip install -e '.[fedavg]'" in r.stderr


@pytest.mark.slow
def test_core_alone_installs_into_a_fresh_environment(tmp_path):
    """pip installs the checkout with its core dependencies only (offline from
    the machine's package index), and a SecAgg round and a Paillier sum run."""
    env_dir = tmp_path / "core"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", str(ROOT)],
        capture_output=True, text=True, timeout=1200, env=env,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    probe = f"import importlib.util as u; print([m for m in {HEAVY!r} if u.find_spec(m)])"
    r = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr  # nothing heavy was installed
    r = subprocess.run([str(py), "-c", CORE_ROUND], capture_output=True, text=True,
                       timeout=600, cwd=tmp_path)
    assert r.returncode == 0 and "core ok" in r.stdout, r.stdout + r.stderr
