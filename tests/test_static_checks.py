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


# -- the import graph -----------------------------------------------------------------------
PACKAGES = ("secagg", "dp", "protocols", "benchmarks", "tests")
LAYERS = {
    "secagg": ("dp", "protocols", "benchmarks", "tests"),
    "dp": ("protocols", "benchmarks", "tests"),
    "protocols": ("benchmarks", "tests"),
}
# A cycle being broken elsewhere: the FedAvg driver imports its plots, which
# import the driver's result type. Remove this entry once that fix is merged.
KNOWN_CYCLES = {frozenset({"protocols/fedavg/driver.py", "protocols/fedavg/plots.py"})}


def _module_file(name: str) -> Path | None:
    """The file of module ``name`` in this checkout (a package's __init__), or None."""
    base = ROOT.joinpath(*name.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _imports(f: Path) -> list[tuple[int, str]]:
    """Every import in ``f``, with its line: top-level, function-local and under
    ``if TYPE_CHECKING:`` alike (the whole syntax tree is walked). Relative
    imports are resolved; ``from pkg import name`` counts as importing
    ``pkg.name`` when that is a module, else ``pkg``."""
    import ast

    package = list(f.relative_to(ROOT).parent.parts)  # a module's and an __init__'s alike
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(f.read_text(), str(f))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            for a in node.names:
                sub = f"{mod}.{a.name}"
                out.append((node.lineno, sub if _module_file(sub) else mod))
    return out


def _graph() -> dict[str, set[str]]:
    """File -> files of this checkout it imports (paths relative to the root)."""
    graph: dict[str, set[str]] = {}
    for pkg in ("secagg", "dp", "protocols"):
        for f in (ROOT / pkg).rglob("*.py"):
            edges = graph.setdefault(str(f.relative_to(ROOT)), set())
            for _, name in _imports(f):
                target = _module_file(name)
                if target is not None and target != f:
                    edges.add(str(target.relative_to(ROOT)))
    return graph


def test_layering():
    """secagg imports neither dp nor protocols; dp never imports protocols;
    the library never imports benchmarks or tests. Every import counts,
    including function-local ones and those under TYPE_CHECKING."""
    bad = []
    for pkg, forbidden in LAYERS.items():
        for f in (ROOT / pkg).rglob("*.py"):
            for line, name in _imports(f):
                if name.split(".")[0] in forbidden:
                    bad.append(f"{f.relative_to(ROOT)}:{line}: imports {name}")
    # the bench subcommand loads the checkout's benchmarks by path, never by import
    assert not bad, "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one file (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_between_files():
    """No two files of the library import each other, directly or through
    others (function-local and TYPE_CHECKING imports count)."""
    found = [c for c in _cycles(_graph()) if frozenset(c) not in KNOWN_CYCLES]
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


@pytest.mark.xfail(reason="protocols/fedavg driver <-> plots: being fixed on another branch; "
                          "delete this test and KNOWN_CYCLES once it is merged", strict=False)
def test_known_cycle_driver_plots_is_gone():
    cycles = [frozenset(c) for c in _cycles(_graph())]
    assert not any(c in KNOWN_CYCLES for c in cycles)


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
