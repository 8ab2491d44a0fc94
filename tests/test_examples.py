"""The examples are part of the documentation: each must run and say what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_supervised_service_restarts_crashed_parsers() -> None:
    out = run_example("supervised_service.py")
    assert "parsed 20 documents, 4 crashed a parser" in out
    assert out.count("restart parser-") == 4
    assert "cache holds 20 summaries" in out
    assert out.rstrip().endswith("service stopped")
