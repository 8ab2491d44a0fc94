"""Every Python block of README.md and docs/**/*.md runs (a fragment, marked so, compiles).

A block whose first line is a comment starting ``# fragment`` shows calls out of their
context (an ``await`` outside a coroutine, refs from elsewhere): it must still be valid
Python. Every other block runs as a script of its own, as a reader would paste it. A block
that starts worker processes or a Dask cluster is marked ``slow`` (CI runs it with -m slow)
and runs as a file in a fresh interpreter, as a spawned worker must import its functions.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
# Worker processes (spawned: each imports the interpreter anew) or a Dask cluster: seconds each.
_SLOW = re.compile(r"ProcessExecutor|DaskExecutor|executor_type=\"(process|dask)\"")


def _blocks() -> list[tuple[str, str]]:
    found = []
    for document in DOCUMENTS:
        text = document.read_text()
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{document.relative_to(ROOT)}:{line}", match.group(1)))
    return found


BLOCKS = _blocks()


def test_the_documents_have_blocks() -> None:
    assert len(BLOCKS) >= 5  # the pattern still finds them
    assert any(where.startswith("docs/guides/") for where, _ in BLOCKS)  # and in docs/ below


def _runs_long(code: str) -> bool:
    """Whether the block starts processes or a cluster (a fragment only compiles: never)."""
    return not code.lstrip().startswith("# fragment") and _SLOW.search(code) is not None


@pytest.mark.parametrize(
    ("where", "code"),
    [
        pytest.param(where, code, id=where, marks=[pytest.mark.slow] if _runs_long(code) else [])
        for where, code in BLOCKS
    ],
)
def test_a_documented_block_runs(where: str, code: str, tmp_path: Path) -> None:
    tree = compile(code, where, "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if code.lstrip().startswith("# fragment"):
        return  # compiled above: valid Python, not meant to run alone
    if _runs_long(code):
        script = tmp_path / "block.py"
        script.write_text(code)
        run = subprocess.run(
            [sys.executable, "-W", "error", str(script)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, f"{where}:\n{run.stdout}{run.stderr}"
        return
    namespace = {"__name__": "__main__"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exec(compile(tree, where, "exec"), namespace)


def test_the_docs_show_the_graph_their_example_draws() -> None:
    """The rendered Mermaid block of "The task graph" is what the Python block before it draws."""
    text = (ROOT / "docs" / "guides" / "observability.md").read_text()
    section = text[text.index("## The task graph") :]
    code = _BLOCK.search(section)
    shown = re.search(r"^```mermaid\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert code is not None
    assert shown is not None
    namespace = {"__name__": "__main__"}
    exec(compile(code.group(1), "observability.md: the task graph", "exec"), namespace)
    assert namespace["mermaid"] == shown.group(1)


def test_the_readme_links_to_files_that_exist() -> None:
    """The README is not part of the site (mkdocs checks the site's links): its own relative
    links, to the guides and the reference, are checked here."""
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\((?!https?://)([^)#]+)(?:#[^)]*)?\)", text)
    assert len(targets) >= 10
    missing = [target for target in targets if not (ROOT / target).exists()]
    assert missing == []


def test_the_readme_quick_start_is_the_example() -> None:
    """The README says its quick start is examples/quickstart.py: the same code."""
    text = (ROOT / "README.md").read_text()
    block = _BLOCK.search(text[text.index("## Quick start") :])
    assert block is not None
    example = (ROOT / "examples" / "quickstart.py").read_text()
    assert example.endswith(block.group(1))
