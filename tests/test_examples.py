"""The examples are part of the documentation: each must run and say what it promises."""

from __future__ import annotations

import json
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


def test_quickstart_runs_the_readme_usage() -> None:
    out = run_example("quickstart.py")
    assert "downloaded as '<html>https://example.org/a/b</html>'" in out
    assert "words: 3" in out
    assert "download attempts: [1, 2]" in out


def test_pipeline_retries_times_out_and_reports() -> None:
    out = run_example("pipeline.py")
    lines = out.splitlines()
    row = {line.split()[1]: line for line in lines if line.startswith("fetch ")}
    assert "COMPLETED         3" in row["/news"]
    assert "succeeded after 2 retries" in row["/news"]
    assert "FAILED" in row["/archive"]
    assert "TaskTimeoutError" in row["/archive"]
    assert "Report" in lines
    assert any(line.startswith("/news ") for line in lines)
    assert not any(line.startswith("/archive ") for line in lines)
    assert out.rstrip().endswith("22 completed, 3 failed, 0 cancelled")


def test_scheduler_messages_example() -> None:
    out = run_example("scheduler_messages.py")
    assert "refused: TaskDependencyError" in out
    assert "failed    after-broken [dependency]" in out
    assert "succeeded upper -> 'HELLO'" in out
    assert "  upper         COMPLETED" in out


def test_benchmark_prints_json() -> None:
    out = run_example("benchmark.py", "--scale", "0.01", "--repeat", "1", "--json")
    data = json.loads(out)
    assert [row["scenario"][0] for row in data["results"]] == list("1234567")
    assert all(row["ours"] > 0 for row in data["results"])
    paired = [row for row in data["results"] if row["scenario"][0] in "1237"]
    assert all(row["baseline"] > 0 and row["ratio"] > 0 for row in paired)
    assert data["machine"]["cpus"] >= 1


def test_wiseflow_migration_example() -> None:
    out = run_example("wiseflow_migration.py")
    assert "ThreadPoolManager results (from a plain thread): [43, 43, 30]" in out
    assert "ThreadPoolManager is deprecated; use actors.TaskManager" in out
    assert "insights: focus 'actors': 3 sites, 17 words" in out
    assert "flaky.example: COMPLETED after 2 attempts" in out
    assert "periodic refresh ran 3 times" in out
