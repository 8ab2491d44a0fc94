"""Restarts on a journal: what a stop, a restart and recovery keep (issue 22)."""

from __future__ import annotations

import json
import pickle
import sqlite3
import threading
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

from actors import ActorSystem, JournalError, SequentialExecutor, TaskManager, TaskStatus
from actors.durability.inspect import read_tasks
from actors.durability.journal import SCHEMA_VERSION
from actors.otel import ActorsInstrumentor

from .conftest import WAIT
from .test_journal import EVENTS, add, rows, wait_for


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "tasks.sqlite"


def statuses(path: Path) -> dict[str, str]:
    return {row["task_id"]: row["status"] for row in rows(path)}


def test_a_managers_stop_leaves_its_tasks_unfinished_in_the_journal(journal: Path) -> None:
    EVENTS["stop"] = threading.Event()
    system = ActorSystem(journal=journal, max_concurrent_tasks=1)
    try:
        tm = TaskManager(system=system)
        tm.start_sync()
        running = tm.register_task("hold", wait_for, "stop")
        waiting = tm.register_task("add", add, 1, 2)
        after = tm.register_task("add", add, 3, 4, dependencies=[waiting])
        other = TaskManager(system=system)  # another manager's task depends on one of ours
        theirs = other.register_task("add", add, 5, 6, dependencies=[waiting])
        EVENTS["stop"].set()  # (the running attempt returns during the stop)
        tm.stop_sync(timeout=WAIT)
        assert tm.get_task_status(waiting) is TaskStatus.CANCELLED  # in memory: cancelled
        assert other.future(theirs).exception(WAIT) is not None
        on_disk = statuses(journal)
        # Only an explicit cancel_task lasts: these run again on the next start.
        assert on_disk[waiting] == "PENDING"
        assert on_disk[after] == "WAITING"
        assert on_disk[theirs] == "WAITING"
        # (it may not have started before the stop came: then it is still PENDING)
        assert on_disk[running] in ("PENDING", "RUNNING", "COMPLETED")
    finally:
        system.shutdown()
    with TaskManager(journal=journal) as again:
        assert again.future(after).result(WAIT) == 7
        assert again.future(theirs).result(WAIT) == 11


def test_a_stop_never_prunes_the_rows_of_the_tasks_it_left_unfinished(journal: Path) -> None:
    tm = TaskManager(journal=journal, keep_finished=2)
    ids = [tm.register_task("add", add, n, n) for n in range(10)]
    tm.stop_sync()  # never started: ten cancels by the stop, past keep_finished
    assert sorted(statuses(journal)) == sorted(ids)
    assert set(statuses(journal).values()) == {"PENDING"}
    with TaskManager(journal=journal, keep_finished=20) as again:
        assert [again.future(task_id).result(WAIT) for task_id in ids] == [2 * n for n in range(10)]


def test_an_explicit_cancel_still_lasts_after_a_managers_stop(journal: Path) -> None:
    system = ActorSystem(journal=journal, autostart=False)
    try:
        tm = TaskManager(system=system)
        cancelled = tm.register_task("add", add, 1, 1)
        assert tm.cancel_task_sync(cancelled)
        tm.stop_sync()
    finally:
        system.shutdown()
    assert statuses(journal)[cancelled] == "CANCELLED"


@pytest.mark.slow  # worker processes
def test_a_process_task_resumes_on_a_process_executor_made_at_recovery(journal: Path) -> None:
    tm = TaskManager(journal=journal)
    task_id = tm.register_task("add", add, 2, 3, executor_type="process")  # made on first use
    tm.stop_sync()
    assert statuses(journal) == {task_id: "PENDING"}
    with TaskManager(journal=journal) as again:
        assert again.future(task_id).result(WAIT * 4) == 5
        assert "process" in again.system.executors


def test_a_task_on_an_executor_added_later_waits_for_it(journal: Path) -> None:
    system = ActorSystem(journal=journal, executors=[SequentialExecutor(name="mine")])
    try:
        task_id = TaskManager(system=system).register_task("add", add, 1, 2, executor_type="mine")
    finally:
        system.shutdown(wait_for_tasks=0)  # before the scheduler could run it: unfinished
    with capture_logs() as logs:
        again = ActorSystem(journal=journal)
    try:
        tm = again.task_manager
        tm.start_sync()
        assert tm.get_task_status(task_id) is TaskStatus.PENDING  # waits, not FAILED
        [warning] = [log for log in logs if log["event"] == "journal.executor_missing"]
        assert (warning["executor"], warning["tasks"], warning["log_level"]) == (
            "mine",
            1,
            "warning",
        )
        again.add_executor(SequentialExecutor(name="mine"))
        assert tm.future(task_id).result(WAIT) == 3
    finally:
        again.shutdown()


def test_a_task_that_cannot_be_restored_ends_after_it_started(journal: Path) -> None:
    tm = TaskManager(journal=journal)
    task_id = tm.register_task("add", add, 1, 2)
    tm.stop_sync()
    db = sqlite3.connect(journal)
    try:  # it was running when its process died, and its pickle no longer loads
        db.execute(
            "UPDATE tasks SET status = 'RUNNING', attempt = 1, "
            "started_at = created_at + 0.001, payload = ?",
            (b"not a pickle",),
        )
        db.commit()
    finally:
        db.close()
    with TaskManager(journal=journal) as again:
        task = again.get_task(task_id)
        assert task is not None
        assert task.status is TaskStatus.FAILED
        assert task.started_at is not None
        assert task.completed_at is not None
        assert task.completed_at >= task.started_at > task.created_at
    [row] = rows(journal)
    assert row["completed_at"] >= row["started_at"]


def count_runs(path: str, key: str) -> str:
    """A journaled job with an effect: one line per run, in a file."""
    with open(path, "a") as out:
        out.write(f"{key}\n")
    return key


def test_a_key_outlives_its_pruned_task_across_a_restart(journal: Path, tmp_path: Path) -> None:
    effects = tmp_path / "runs.txt"
    keys = [f"job:{n}" for n in range(300)]
    with TaskManager(journal=journal, keep_finished=100) as tm:
        first = [str(tm.register_task("job", count_runs, str(effects), k, key=k)) for k in keys]
        for task_id in first:
            if tm.get_task_status(task_id) is not None:
                tm.future(task_id).result(WAIT)
        tm.future(tm.register_task("add", add, 0, 0)).result(WAIT)
        # Pruned from memory and from the journal's tasks: the keys still answer.
        assert tm.register_task("job", count_runs, str(effects), keys[0], key=keys[0]) == first[0]
    assert len(rows(journal)) == 100
    with TaskManager(journal=journal, keep_finished=100) as again:
        assert [
            again.register_task("job", count_runs, str(effects), key, key=key) for key in keys
        ] == first
        again.future(again.register_task("add", add, 0, 0)).result(WAIT)
    assert sorted(effects.read_text().split()) == sorted(keys)  # each ran once


def test_forget_gives_a_journaled_key_up(journal: Path) -> None:
    with TaskManager(journal=journal) as tm:
        first = tm.register_task("add", add, 1, 1, key="k")
        tm.future(first).result(WAIT)
        assert tm.forget(first)
        second = tm.register_task("add", add, 1, 1, key="k")
        assert second != first
        tm.future(second).result(WAIT)
    with TaskManager(journal=journal) as again:
        assert again.register_task("add", add, 1, 1, key="k") == second


# The first schema, as journals of the first release have it.
SCHEMA_1 = """
CREATE TABLE tasks (
    seq INTEGER PRIMARY KEY, task_id TEXT NOT NULL, key TEXT, name TEXT NOT NULL,
    func TEXT NOT NULL, payload BLOB NOT NULL, priority INTEGER NOT NULL,
    dependencies TEXT NOT NULL, max_retries INTEGER NOT NULL, retry_delay REAL NOT NULL,
    timeout REAL, description TEXT NOT NULL, tags TEXT NOT NULL, executor TEXT NOT NULL,
    status TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0,
    retry_count INTEGER NOT NULL DEFAULT 0, error_type TEXT, error_message TEXT, error BLOB,
    result BLOB, result_kept INTEGER, created_at REAL NOT NULL, started_at REAL,
    completed_at REAL
);
CREATE UNIQUE INDEX tasks_key ON tasks (key) WHERE key IS NOT NULL;
CREATE TABLE holder (pid INTEGER NOT NULL, host TEXT NOT NULL, since REAL NOT NULL);
PRAGMA application_id = 1094931539;
PRAGMA user_version = 1;
"""


def test_a_journal_of_the_first_schema_opens_and_keeps_its_keys(journal: Path) -> None:
    db = sqlite3.connect(journal)
    try:
        db.executescript(SCHEMA_1)
        db.execute(
            "INSERT INTO tasks (seq, task_id, key, name, func, payload, priority, "
            "dependencies, max_retries, retry_delay, description, tags, executor, status, "
            "created_at) VALUES (0, 'old-1', 'k1', 'add', 'x.add', ?, 2, '[]', 0, 1.0, '', "
            "'[]', 'thread_pool', 'PENDING', 0)",
            (pickle.dumps((add, (2, 2), {}, {})),),
        )
        db.commit()
    finally:
        db.close()
    assert inspected_ids(journal) == ["old-1"]  # read-only, still the first schema
    with TaskManager(journal=journal) as tm:
        assert tm.future("old-1").result(WAIT) == 4
        assert tm.register_task("add", add, 9, 9, key="k1") == "old-1"
    db = sqlite3.connect(journal)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("SELECT key, task_id FROM keys").fetchall() == [("k1", "old-1")]
    finally:
        db.close()


def inspected_ids(path: Path) -> list[str]:
    return [task["task_id"] for task in read_tasks(str(path))]


def test_a_journal_of_a_newer_schema_is_refused_clearly(journal: Path) -> None:
    TaskManager(journal=journal).stop_sync()
    db = sqlite3.connect(journal)
    try:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        db.commit()
    finally:
        db.close()
    with pytest.raises(JournalError, match=r"of a newer version \(4; this one reads 3\)"):
        TaskManager(journal=journal)


def test_a_recovered_task_keeps_its_trace_parent(journal: Path) -> None:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    ActorsInstrumentor().instrument(tracer_provider=provider)
    try:
        with provider.get_tracer("app").start_as_current_span("request") as request:
            tm = TaskManager(journal=journal)
            task_id = tm.register_task("add", add, 1, 2)
        tm.stop_sync()  # never run: it runs after the restart
        with TaskManager(journal=journal) as again:
            assert again.future(task_id).result(WAIT) == 3
    finally:
        ActorsInstrumentor().uninstrument()
        provider.shutdown()
    [span] = [s for s in exporter.get_finished_spans() if s.name == "task add"]
    assert span.parent is not None
    assert span.parent.span_id == request.get_span_context().span_id
    assert span.context.trace_id == request.get_span_context().trace_id
    [row] = rows(journal)
    assert "traceparent" in json.loads(row["trace"])
