"""The README's Python snippets run as written, and CI runs its test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_python_snippets_run():
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "README has no python snippets"
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"README.md[python block {i}]", "exec"), {"__name__": "readme"})
        except Exception as exc:  # pragma: no cover - the message is the point
            raise AssertionError(f"README python block {i} failed: {exc!r}\n{code}") from exc


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in ci and "README.md" in ci
    m = re.search(r"<!-- test-command -->\n```sh\n(.+?)\n```", README)
    assert m and "pytest" in m.group(1)
