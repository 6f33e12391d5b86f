"""The mutation driver itself (tools/mutation.py): its mutant list still
matches the code, and it tells killed, surviving, equivalent and hanging
mutants apart on a tiny tree. The full mutation run is not part of the suite."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("mutation_tool", ROOT / "tools" / "mutation.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["mutation_tool"] = mod
    spec.loader.exec_module(mod)
    return mod


mutation = _load()


def test_every_registered_mutant_still_applies_exactly_once():
    mutation.check_targets(ROOT, mutation.TARGETS)
    labels = [m.label for t in mutation.TARGETS for m in t.mutants]
    assert len(labels) == len(set(labels)), "two mutants with the same description"
    assert len({t.name for t in mutation.TARGETS}) == len(mutation.TARGETS)


def test_apply_refuses_a_rotten_mutant():
    m = mutation.Mutant("x.py", "a = 1", "a = 2", "why")
    assert mutation.apply("a = 1\n", m) == "a = 2\n"
    with pytest.raises(mutation.MutantRot, match="occurs 0 times"):
        mutation.apply("b = 1\n", m)
    with pytest.raises(mutation.MutantRot, match="occurs 2 times"):
        mutation.apply("a = 1\na = 1\n", m)


def test_driver_on_a_tiny_tree(tmp_path):
    (tmp_path / "tinypkg").mkdir()
    (tmp_path / "tinypkg" / "__init__.py").write_text("")
    (tmp_path / "tinypkg" / "core.py").write_text(
        "def clamp(x):\n    return max(0, min(10, x))\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_core.py").write_text(
        "from tinypkg.core import clamp\n\n\n"
        "def test_clamp():\n    assert clamp(-1) == 0 and clamp(5) == 5\n")
    m = mutation.Mutant
    target = mutation.Target("tiny", ("tests/test_core.py",), (
        m("tinypkg/core.py", "max(0,", "max(-1,", "lower bound off by one"),
        m("tinypkg/core.py", "min(10,", "min(11,", "upper bound off by one"),
        m("tinypkg/core.py", "    return max", "    while True:\n        pass\n    return max",
          "hangs"),
        m("tinypkg/core.py", "max(0, min(10, x))", "min(10, max(0, x))", "order swapped",
          equivalent="clamping to [0, 10] commutes"),
    ))
    lines = []
    report = mutation.run(tmp_path, [target], min_timeout=1.0, factor=3.0, log=lines.append,
                          extra_env={"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    status = {o.mutant.why: o.status for o in report.outcomes["tiny"]}
    assert status == {"lower bound off by one": "killed", "upper bound off by one": "survived",
                      "hangs": "timeout", "order swapped": "equivalent"}
    assert report.score() == pytest.approx(2 / 3)
    assert [o.mutant.why for o in report.survivors()] == ["upper bound off by one"]
    text = mutation.format_report(report)
    assert "survivors: 1" in text and "upper bound off by one" in text
    assert "clamping to [0, 10] commutes" in text
    # the original tree is never touched
    assert "max(0, min(10, x))" in (tmp_path / "tinypkg" / "core.py").read_text()
    assert report.to_json()["targets"]["tiny"]["survived"] == 1
    assert lines[0].startswith("[tiny] baseline passed") and len(lines) == 5


def test_tools_are_ruff_clean():
    import shutil
    import subprocess

    exe = Path(sys.executable).with_name("ruff")
    ruff = str(exe) if exe.exists() else shutil.which("ruff")
    if not ruff:
        pytest.fail("ruff is not installed: install the project with its 'dev' extra")
    r = subprocess.run([ruff, "check", "tools"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
