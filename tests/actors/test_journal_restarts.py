"""Restarts on a journal: what a stop, a restart and recovery keep (issue 22)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from actors import ActorSystem, SequentialExecutor, TaskManager, TaskStatus

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
        assert on_disk[running] in ("RUNNING", "COMPLETED")
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
