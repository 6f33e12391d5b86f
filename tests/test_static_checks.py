"""ruff and mypy are part of the test suite, so one command checks everything."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> list[str]:
    exe = Path(sys.executable).with_name(name)
    if exe.exists():
        return [str(exe)]
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: install the project with its 'dev' extra")
    return [found]


def test_ruff_clean():
    r = subprocess.run(
        [*_tool("ruff"), "check", "secagg", "dp", "protocols", "benchmarks", "tests"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_clean():
    # strict on secagg/ (see pyproject.toml), default elsewhere
    r = subprocess.run(
        [*_tool("mypy"), "secagg", "dp", "protocols"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_layering():
    """secagg imports neither dp nor protocols; dp never imports protocols;
    the library never imports benchmarks or tests."""
    rules = {
        "secagg": ("dp", "protocols", "benchmarks", "tests"),
        "dp": ("protocols", "benchmarks", "tests"),
        "protocols": ("benchmarks", "tests"),
    }
    bad = []
    for pkg, forbidden in rules.items():
        for f in (ROOT / pkg).rglob("*.py"):
            for line in f.read_text().splitlines():
                s = line.strip()
                for mod in forbidden:
                    if s.startswith((f"import {mod}", f"from {mod} ", f"from {mod}.")):
                        bad.append(f"{f.relative_to(ROOT)}: {s}")
    # the bench subcommand runs benchmarks lazily by name; that is the one allowed entry
    bad = [b for b in bad if not b.startswith("protocols/commands/bench.py")]
    assert not bad, "\n".join(bad)
