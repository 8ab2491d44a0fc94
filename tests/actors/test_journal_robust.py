"""One bad value never ends durability: what the journal's writer survives (issue 23)."""

from __future__ import annotations

import os
import pickle
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from actors import JournalError, TaskExecutionError, TaskManager, TaskStatus
from actors.core.task import Task
from actors.durability.journal import Journal

from .conftest import WAIT
from .test_journal import add, rows

BAD_NAME = os.fsdecode(b"report-\xff\xfe.csv")  # a non-UTF-8 file name: lone surrogates


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "tasks.sqlite"


def _task(task_id: str, **fields: Any) -> Task:
    return Task(task_id=task_id, name=fields.pop("name", "add"), func=add, args=(1, 2), **fields)


def _payload() -> bytes:
    return pickle.dumps((add, (1, 2), {}, {}))


def test_text_sqlite_cannot_encode_is_kept_losslessly_and_the_burst_with_it(
    journal: Path,
) -> None:
    opened = Journal.open(str(journal))
    try:
        opened.registered(0, _task("plain"), None, _payload())
        odd = _task(BAD_NAME, name=BAD_NAME, description=f"from {BAD_NAME}", tags=(BAD_NAME,))
        opened.registered(1, odd, f"key:{BAD_NAME}", _payload())
        opened.registered(2, _task("after"), None, _payload())
        opened.sync()
        assert opened.refused(BAD_NAME) is None
        opened.check()
    finally:
        opened.close()
    again = Journal.open(str(journal))
    try:
        restored = [again.restore(row) for row in again.found]
    finally:
        again.close()
    assert [r.task.task_id for r in restored] == ["plain", BAD_NAME, "after"]
    task = restored[1].task
    assert (task.name, task.description, task.tags) == (BAD_NAME, f"from {BAD_NAME}", (BAD_NAME,))
    assert restored[1].key == f"key:{BAD_NAME}"


def test_a_row_sqlite_cannot_take_fails_that_task_only(journal: Path) -> None:
    opened = Journal.open(str(journal))
    try:
        opened.registered(0, _task("before"), None, _payload())
        opened.registered(1, _task("huge", max_retries=2**63), None, _payload())
        opened.registered(2, _task("after"), None, _payload())
        opened.registered(3, _task("nan", retry_delay=float("nan")), None, _payload())
        opened.sync()  # no JournalError: the journal goes on
        reason = opened.refused("huge")
        assert reason is not None
        assert "OverflowError" in reason
        assert opened.refused("huge") is None  # told once
        assert "NOT NULL constraint failed: tasks.retry_delay" in (opened.refused("nan") or "")
        opened.registered(4, _task("later"), None, _payload())
        opened.sync()
    finally:
        opened.close()
    assert [row["task_id"] for row in rows(journal)] == ["before", "after", "later"]


def failing_with_a_bad_path() -> None:
    raise FileNotFoundError(f"cannot open /data/{BAD_NAME}")


def test_an_error_text_sqlite_cannot_encode_is_journaled(journal: Path) -> None:
    with TaskManager(journal=journal) as tm:
        failed = tm.register_task("read", failing_with_a_bad_path)
        with pytest.raises(TaskExecutionError):
            tm.future(failed).result(WAIT)
        later = tm.register_task("add", add, 1, 2)  # the journal still takes registrations
        assert tm.future(later).result(WAIT) == 3
    assert {row["task_id"]: row["status"] for row in rows(journal)} == {
        failed: "FAILED",
        later: "COMPLETED",
    }
    with TaskManager(journal=journal) as again:
        error = again.get_task_error(failed)
        assert error is not None
        assert BAD_NAME in str(error)


class _Slow:
    """A result whose pickling waits for the test (a stand-in for a 100 MB one)."""

    pickling = threading.Event()
    release = threading.Event()

    def __reduce__(self) -> tuple[Any, ...]:
        _Slow.pickling.set()
        _Slow.release.wait(WAIT)
        return (_Slow, ())


def slow_result() -> _Slow:
    return _Slow()


def test_a_registration_does_not_wait_for_a_result_to_pickle(journal: Path) -> None:
    _Slow.pickling.clear()
    _Slow.release.clear()
    with TaskManager(journal=journal) as tm:
        slow = tm.register_task("slow", slow_result)
        tm.future(slow).result(WAIT)
        assert _Slow.pickling.wait(WAIT)  # the writer is pickling it now
        started = time.monotonic()
        quick = tm.register_task("add", add, 1, 2)
        waited = time.monotonic() - started
        _Slow.release.set()
        assert waited < WAIT / 2
        assert tm.future(quick).result(WAIT) == 3
    by_id = {row["task_id"]: row for row in rows(journal)}
    assert (by_id[slow]["status"], by_id[slow]["result_kept"]) == ("COMPLETED", 1)
    with TaskManager(journal=journal) as again:
        assert isinstance(again.get_task_result(slow), _Slow)


SYSTEM_EXIT = """
import sys
from actors import TaskManager
from tests.actors.test_journal import add
from tests.actors.test_journal_robust import exits_when_pickled

with TaskManager(journal=sys.argv[1]) as tm:
    first = tm.register_task("exits", exits_when_pickled)
    tm.future(first).result(10)
    second = tm.register_task("add", add, 1, 2)
    print(tm.future(second).result(10), flush=True)
with TaskManager(journal=sys.argv[1]) as tm:
    task = tm.get_task(first)
    print(task.status.name, task.result, flush=True)
"""


class _ExitsWhenPickled:
    def __reduce__(self) -> tuple[Any, ...]:
        raise SystemExit("pickling this ends the program")


def exits_when_pickled() -> _ExitsWhenPickled:
    return _ExitsWhenPickled()


def run_script(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``code`` in another process, with a deadline: a hang is a failure, not a hung run."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=WAIT * 6,
        check=False,
    )


def test_a_result_whose_pickling_raises_system_exit_is_not_kept(journal: Path) -> None:
    done = run_script(SYSTEM_EXIT, str(journal))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["3", "COMPLETED None"]


DEAD_WRITER = """
import sys
from actors import JournalError, TaskManager
from tests.actors.test_journal import add

tm = TaskManager(journal=sys.argv[1])
journal = tm.system._journal

def die(checkpointer):
    raise SystemExit("the writer thread ends")

journal._checkpoint = die  # a fault in the writer's own thread
journal._checkpoint_due = True
journal._wake.set()
journal._thread.join(10)
try:
    tm.register_task("add", add, 1, 2)
except JournalError as error:
    print("refused:", error, flush=True)
tm.stop_sync()
print("stopped", flush=True)
"""


@pytest.mark.slow  # seconds of real waiting
def test_a_dead_writer_is_noticed_not_spun_on(journal: Path) -> None:
    done = run_script(DEAD_WRITER, str(journal))
    assert done.returncode == 0, done.stderr
    refused, stopped = done.stdout.splitlines()
    assert "tasks are no longer journaled" in refused
    assert "writer" in refused
    assert stopped == "stopped"


def test_a_registration_whose_row_cannot_be_written_is_refused_alone(journal: Path) -> None:
    with TaskManager(journal=journal) as tm:
        first = tm.register_task("add", add, 1, 2)
        # Refused at registration (ValueError) or by the journal (JournalError): either
        # way nothing is registered and the journal goes on.
        with pytest.raises((JournalError, ValueError), match=r"max_retries|OverflowError"):
            tm.register_task("huge", add, 1, 2, max_retries=2**63)
        assert [task.task_id for task in tm.get_all_tasks()] == [first]
        later = tm.register_task("add", add, 3, 4)
        assert tm.future(later).result(WAIT) == 7
    assert [row["task_id"] for row in rows(journal)] == [first, later]


def test_rows_that_cannot_be_read_fail_their_tasks_and_name_file_and_row(journal: Path) -> None:
    tm = TaskManager(journal=journal)
    ids = [tm.register_task("add", add, n, n) for n in range(4)]
    tm.stop_sync()  # never started: all four wait in the journal
    db = sqlite3.connect(journal)
    try:
        db.execute("UPDATE tasks SET status = 'PAUSED' WHERE seq = 1")
        db.execute("UPDATE tasks SET priority = 99 WHERE seq = 2")
        db.execute("UPDATE tasks SET dependencies = '[oops' WHERE seq = 3")
        db.commit()
    finally:
        db.close()
    with TaskManager(journal=journal) as again:
        assert again.future(ids[0]).result(WAIT) == 0  # the readable row runs
        for seq, column in [
            (1, "status 'PAUSED'"),
            (2, "priority 99"),
            (3, "dependencies '[oops'"),
        ]:
            assert again.get_task_status(ids[seq]) is TaskStatus.FAILED
            message = str(again.get_task_error(ids[seq]))
            assert str(journal) in message
            assert f"its row (seq {seq}) cannot be read: its {column}" in message
        later = again.register_task("add", add, 5, 5)  # the journal goes on
        assert again.future(later).result(WAIT) == 10


IMPORT_FAILS = """
import os, sys, threading
from actors import TaskManager

journal, folder = sys.argv[1], sys.argv[2]
sys.path.insert(0, folder)
import crashy

tm = TaskManager(journal=journal)
first = tm.register_task("job", crashy.job)
tm.stop_sync()
sys.modules.pop("crashy", None)

def fds():
    return len(os.listdir("/proc/self/fd"))

os.environ["CRASHY"] = "exit"  # SystemExit on import: that task fails, the program goes on
with TaskManager(journal=journal) as tm:
    print(tm.get_task_status(first).name, "|", tm.get_task_error(first), flush=True)
sys.modules.pop("crashy", None)

# A task registered anew, then Ctrl-C while its module imports at recovery: the failed
# constructor releases everything, and a retry in this process opens the journal.
os.environ["CRASHY"] = ""
import crashy
tm = TaskManager(journal=journal)
second = tm.register_task("job", crashy.job)
tm.stop_sync()
sys.modules.pop("crashy", None)
before = fds()
os.environ["CRASHY"] = "interrupt"
try:
    TaskManager(journal=journal)
except KeyboardInterrupt:
    print("interrupted", flush=True)
names = [t.name for t in threading.enumerate() if t.name == "actors-journal"]
print("threads", names, "fds", fds() - before, flush=True)
os.environ["CRASHY"] = ""
with TaskManager(journal=journal) as tm:
    print(tm.future(second).result(10), flush=True)
"""

CRASHY = """
import os

if os.environ.get("CRASHY") == "exit":
    raise SystemExit("crashy will not be imported")
if os.environ.get("CRASHY") == "interrupt":
    raise KeyboardInterrupt


def job():
    return "ran"
"""


@pytest.mark.slow  # seconds of real waiting
def test_a_task_module_that_exits_or_is_interrupted_at_recovery(
    journal: Path, tmp_path: Path
) -> None:
    (tmp_path / "crashy.py").write_text(CRASHY)
    done = run_script(IMPORT_FAILS, str(journal), str(tmp_path))
    assert done.returncode == 0, done.stderr
    failed, interrupted, leaks, ran = done.stdout.splitlines()
    assert failed.startswith("FAILED | ")
    assert "crashy.job or its arguments cannot be read back" in failed
    assert "SystemExit: crashy will not be imported" in failed
    assert str(journal) in failed
    assert interrupted == "interrupted"
    assert leaks == "threads [] fds 0"
    assert ran == "ran"


def three_megabytes() -> bytes:
    return bytes(range(256)) * (3 * 4096 - 7)


def parts(path: Path) -> list[tuple[int, int]]:
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return db.execute("SELECT seq, part FROM result_parts ORDER BY seq, part").fetchall()
    finally:
        db.close()


def test_a_large_result_is_written_in_parts_and_read_back_whole(journal: Path) -> None:
    with TaskManager(journal=journal) as tm:
        large = tm.register_task("large", three_megabytes)
        assert tm.future(large).result(WAIT) == three_megabytes()
        other = tm.register_task("large", three_megabytes)
        tm.future(other).result(WAIT)
    assert parts(journal) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    by_id = {row["task_id"]: row for row in rows(journal)}
    assert (by_id[large]["result_kept"], by_id[large]["result"]) == (2, None)
    with TaskManager(journal=journal) as again:
        assert again.get_task_result(large) == three_megabytes()
        assert again.forget(other)  # its parts go with it
    assert parts(journal) == [(0, 0), (0, 1), (0, 2)]
    # Parts no task row claims (a crash between them and the row) go at the next open.
    db = sqlite3.connect(journal)
    try:
        db.execute("UPDATE tasks SET status = 'RUNNING', result_kept = NULL")
        db.commit()
    finally:
        db.close()
    TaskManager(journal=journal).stop_sync()
    assert parts(journal) == []
