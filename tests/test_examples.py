"""The examples are part of the documentation: each must run and say what it promises."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # programs run in processes of their own: CI runs these apart

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


def pipeline_sections(out: str) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """The pipeline's output as (progress lines, report lines, table rows by task name).

    A table row is [status, attempts, seconds, note].
    """
    progress: list[str] = []
    report: list[str] = []
    rows: dict[str, list[str]] = {}
    section = "progress"
    for line in out.splitlines():
        if line in ("Report", "Tasks"):
            section = line
        elif not line:
            section = "after the table" if section == "Tasks" and rows else section
        elif line.startswith(("fetch order:", "task ")) or section == "after the table":
            continue
        elif section == "progress":
            progress.append(line)
        elif section == "Report":
            report.append(line)
        else:
            rows[line[:20].strip()] = [*line[21:].split(maxsplit=3), ""][:4]
    return progress, report, rows


def test_pipeline_retries_times_out_and_reports() -> None:
    out = run_example("pipeline.py")
    progress, report, rows = pipeline_sections(out)

    # The flaky fetch succeeded by retry; the slow one timed out on each of its attempts.
    assert rows["fetch /news"][:2] == ["COMPLETED", "3"]
    assert rows["fetch /news"][3] == "succeeded after 2 retries"
    assert rows["fetch /archive"][:2] == ["FAILED", "3"]
    assert rows["fetch /archive"][3].startswith("TaskTimeoutError: attempt 3 took over 0.4s")
    # Its dependents never ran and failed with TaskDependencyError naming their dependency.
    assert rows["extract /archive"] == [
        "FAILED",
        "0",
        "-",
        "TaskDependencyError: fetch /archive is FAILED",
    ]
    assert rows["summarize /archive"][:3] == ["FAILED", "0", "-"]
    assert rows["summarize /archive"][3] == "TaskDependencyError: extract /archive is FAILED"
    # Everything else completed, the report too.
    failed = {"fetch /archive", "extract /archive", "summarize /archive"}
    assert len(rows) == 8 * 3 + 1
    assert all(row[0] == "COMPLETED" for name, row in rows.items() if name not in failed)
    assert rows["report"][0] == "COMPLETED"

    # The report covers the seven pages that made it and says why the eighth is missing.
    assert len(report) == 8
    assert "/news     News The scheduler restarts without losing ... [links: /]" in report
    assert "/archive  -- missing: fetch /archive failed with TaskTimeoutError" in report
    # The HIGH priority front page was fetched first, though the sitemap lists it last.
    assert "fetch order: / /about /api " in out

    # Not a terminal: the live progress is a line per change, ending with the final counts.
    assert len(progress) >= 2
    assert all(
        re.fullmatch(r"\[ *\d+\.\ds\] +\d+ done, \d failed, \d running, +\d+ to go", line)
        for line in progress
    )
    assert progress[-1].endswith("21 done, 3 failed, 0 running,  0 to go")
    assert out.rstrip().endswith("22 completed, 3 failed, 0 cancelled")

    # Beside the table, the graph: every task a node coloured by its status.
    graph = out[out.index("Graph (Mermaid)\n") :].splitlines()[1:]
    assert graph[0] == "flowchart LR"
    assert '    t6["fetch /archive"]:::failed' in graph
    assert '    t24["report"]:::completed' in graph
    assert sum(":::failed" in line for line in graph) == 3
    assert sum(" --> " in line for line in graph) == 8 * 2 + 7


def test_pipeline_writes_its_graph_as_dot(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.dot"
    out = run_example("pipeline.py", "--quiet", "--graph", str(path))
    assert f"Graph written to {path}" in out
    dot = path.read_text()
    assert dot.startswith("digraph tasks {")
    assert '"fetch:/archive" -> "extract:/archive";' in dot


def test_pipeline_progress_reaches_a_pipe_while_it_runs() -> None:
    lines: queue.Queue[str] = queue.Queue()
    # As a user's shell runs it: block-buffered stdout on a pipe.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    with subprocess.Popen(
        [sys.executable, str(EXAMPLES / "pipeline.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    ) as process:
        stdout = process.stdout
        assert stdout is not None
        reader = threading.Thread(target=lambda: [lines.put(line) for line in stdout])
        reader.start()
        try:
            first = lines.get(timeout=60)
            first_at = time.monotonic()
            assert re.match(r"\[\s*\d+\.\ds\] ", first), first
        finally:
            assert process.wait(timeout=120) == 0
            reader.join(timeout=10)
    # The demo's slow fetch times out three times (0.4 s each) after its first progress
    # line: a line held in a buffer until the end would arrive with the exit, not before.
    assert time.monotonic() - first_at > 0.5, "the progress lines came only when the demo ended"


def test_pipeline_quiet_shows_no_progress() -> None:
    out = run_example("pipeline.py", "--quiet")
    progress, report, rows = pipeline_sections(out)
    assert progress == []
    assert len(report) == 8
    assert rows["fetch /news"][:2] == ["COMPLETED", "3"]


def test_observe_traces_draws_and_logs_the_pipeline(tmp_path: Path) -> None:
    out = run_example("observe.py", "--out", str(tmp_path))
    lines = out.splitlines()
    # 22 attempts that completed, and 5 that failed: /news twice, /archive three times.
    assert lines[0] == "Trace: 27 attempts in one trace, 5 of them failed"
    assert lines[1].startswith("  crawl example.org  ")
    tree = lines[2 : lines.index("")]
    assert len(tree) == 27
    assert all(line.startswith(("  ├─ task ", "  └─ task ")) for line in tree)
    news = [line for line in tree if "task fetch /news " in line]
    assert len(news) == 3
    assert sum("ERROR ConnectionError" in line and "(retry in" in line for line in news) == 2
    archive = [line for line in tree if "task fetch /archive " in line]
    assert all("ERROR TaskTimeoutError" in line for line in archive)
    assert len(archive) == 3

    graph = (tmp_path / "pipeline.mmd").read_text()
    assert graph.startswith("flowchart LR\n")
    assert '["summarize /archive"]:::failed' in graph
    assert f"Graph: {tmp_path / 'pipeline.mmd'} (23 edges)" in lines

    records = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in records} == {
        "started",
        "progress",
        "retrying",
        "succeeded",
        "failed",
    }
    failed = {r["task_name"]: r for r in records if r["kind"] == "failed"}
    assert set(failed) == {"fetch /archive", "extract /archive", "summarize /archive"}
    assert (failed["fetch /archive"]["failure"], failed["fetch /archive"]["attempt"]) == (
        "timeout",
        3,
    )
    assert sum(r["kind"] == "succeeded" for r in records) == 22


def test_scheduler_messages_example() -> None:
    out = run_example("scheduler_messages.py")
    lines = out.splitlines()
    assert (
        "refused: TaskDependencyError: task 'orphan' (orphan) depends on unknown task 'nope'"
        in lines
    )
    assert "cancelled publish before the start: True" in lines
    events = lines[lines.index("events:") + 1 : lines.index("tasks:")]
    # Every event kind reached the collector, each task's in order.
    for expected in [
        "progress  checksum 100% 6/6 characters",
        "succeeded checksum -> 652",
        "retrying  shout: attempt 1 failed, next in 0.05s",
        "succeeded shout -> 'HELLO'",
        "failed    broken [execution] TaskExecutionError",
        "failed    after-broken [dependency] TaskDependencyError",
        "failed    slow [timeout] TaskTimeoutError",
        "failed    publish [cancelled] TaskCancellationError",
    ]:
        assert f"  {expected}" in events
    shout = [line for line in events if " shout" in line]
    assert [line.split()[0] for line in shout] == ["started", "retrying", "started", "succeeded"]
    assert not any("orphan" in line or "after-broken (attempt" in line for line in events)
    assert lines[lines.index("tasks:") + 1 :] == [
        "  after-broken  FAILED     attempts 0  TaskDependencyError",
        "  broken        FAILED     attempts 1  TaskExecutionError",
        "  checksum      COMPLETED  attempts 1  652",
        "  publish       CANCELLED  attempts 0  TaskCancellationError",
        "  shout         COMPLETED  attempts 2  'HELLO'",
        "  slow          FAILED     attempts 1  TaskTimeoutError",
    ]


def test_benchmark_prints_json() -> None:
    out = run_example("benchmark.py", "--scale", "0.01", "--repeat", "1", "--json")
    data = json.loads(out)
    numbers = [row["scenario"].split()[0] for row in data["results"]]
    assert numbers == [str(n) for n in range(1, 19)]
    assert all(row["ours"] > 0 for row in data["results"])
    paired = [row for row in data["results"] if row["scenario"].split()[0] in "1 2 3 7 8 9"]
    assert all(row["baseline"] > 0 and row["ratio"] > 0 for row in paired)
    scaling, actors = data["results"][4], data["results"][6]
    assert scaling["baseline_ratio"] > 0  # the plain pool's own growth, same run
    assert actors["registered_hosted"] > 0
    soak = data["results"][9]
    assert soak["unit"] == "MB"
    assert soak["baseline"] > 0  # resident memory after the first batch
    journal = data["results"][14]
    assert journal["ratio"] > 0  # with a journal against without, same run
    assert journal["waiting_task_bytes"]["journal"] > 0
    assert data["machine"]["cpus"] >= 1
    kill = data["results"][12]
    assert kill["unit"] == "s"
    assert kill["ours"] < 30  # sleep(60) ended by its timeout, not by returning
    dask = data["results"][13]
    assert dask["unit"] == "tasks/s"
    assert dask["baseline"] > 0  # plain client.submit + gather on the same cluster


def test_benchmark_runs_only_the_scenarios_asked_for() -> None:
    out = run_example(
        "benchmark.py",
        "--scale",
        "0.01",
        "--repeat",
        "1",
        "--json",
        "--scenario",
        "3",
        "--scenario",
        "13",
        "--scenario",
        "15",
    )
    numbers = [row["scenario"].split()[0] for row in json.loads(out)["results"]]
    assert numbers == ["3", "13", "15"]


def test_wiseflow_migration_example() -> None:
    out = run_example("wiseflow_migration.py")
    assert "ThreadPoolManager results (from a plain thread): [43, 43, 30]" in out
    assert "ThreadPoolManager is deprecated; use actors.TaskManager" in out
    assert "insights: focus 'actors': 3 sites, 17 words" in out
    assert "flaky.example: COMPLETED after 2 attempts" in out
    assert "periodic refresh ran 3 times" in out


def test_crawler_runs_on_the_applications_loop_with_request_ids() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "crawler.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:3] == [
        "round 1: 1 pages, 1 in all",
        "round 2: 3 pages, 4 in all",
        "round 3: 4 pages, 8 in all",
    ]
    assert "crawled 8 pages with 8 requests through one client" in lines
    assert (
        "at most 2 requests in flight to example.org (its limit is 2; the shared semaphore "
        "allows 3)" in lines
    )
    assert lines[-1] == "re-crawled / 3 times, every 0.2 s"  # the schedule's runs
    fetched = [line for line in done.stderr.splitlines() if "event='fetched'" in line]
    assert len(fetched) == 8
    # Each task logged with the request id bound when it was registered.
    rounds = {line.split("path='")[1].split("'")[0]: line.split("'")[1] for line in fetched}
    assert rounds["/"] == "round-1"
    assert rounds["/news"] == rounds["/about"] == rounds["/blog"] == "round-2"
    assert rounds["/news/1"] == rounds["/blog/2"] == "round-3"


def test_cluster_scores_on_worker_processes_and_kills_a_hung_step() -> None:
    out = run_example("cluster.py")
    assert out.count("(progress (1.0, 'half way'))") == 6  # reported inside the workers
    assert "hang: killed by its timeout" in out
    assert "after the kill: " in out
    assert "scored in worker processes, none of them this one: True" in out


def test_cluster_fans_the_scoring_out_on_a_dask_local_cluster() -> None:
    out = run_example("cluster.py", "--dask")
    assert "dask: 2 worker threads" in out
    assert out.count("(progress (1.0, 'half way'))") == 12  # six on processes, six on Dask
    assert "dask digests match the process executor's: True" in out
    assert "dask: scored in worker processes, none of them this one: True" in out
