"""The journal: what it keeps, what it reads back, what it refuses (a real SQLite file)."""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from actors import (
    ActorSystem,
    JournalError,
    SequentialExecutor,
    TaskCancellationError,
    TaskExecutionError,
    TaskManager,
    TaskPriority,
    TaskStatus,
    messages,
)
from supervision import ConfigError

from .conftest import WAIT, Collector

# Journaled tasks' functions: module-level, so another process finds them by name.


def add(a: int, b: int) -> int:
    return a + b


def fail(message: str) -> None:
    raise ValueError(message)


def make_lock() -> threading.Lock:
    return threading.Lock()  # a result that does not pickle


def wait_for(event_name: str) -> str:
    EVENTS[event_name].wait(WAIT)
    return event_name


def record(name: str) -> str:
    RECORDED.append(name)
    return name


EVENTS: dict[str, threading.Event] = {}
RECORDED: list[str] = []


class Doubler:
    @staticmethod
    def double(x: int) -> int:
        return 2 * x


def rows(path: Path) -> list[dict[str, Any]]:
    """The journal's rows, read as another program would: a read-only connection."""
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM tasks ORDER BY seq")]
    finally:
        db.close()


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "tasks.sqlite"


def test_a_registered_task_is_in_the_file_when_register_returns(
    make_manager: Callable[..., TaskManager], journal: Path
) -> None:
    tm = make_manager(journal=journal)
    task_id = tm.register_task("add", add, 1, 2, key="add:1+2", priority=TaskPriority.HIGH)
    # Read by another connection, before the manager even started: committed.
    [row] = rows(journal)
    assert (row["task_id"], row["key"], row["name"], row["status"]) == (
        task_id,
        "add:1+2",
        "add",
        "PENDING",
    )
    assert row["func"] == f"{__name__}.add"
    assert row["priority"] == TaskPriority.HIGH


def test_every_state_change_is_journaled_and_read_back(journal: Path) -> None:
    with TaskManager(journal=journal) as tm:
        ok = tm.register_task("add", add, 2, 3)
        bad = tm.register_task("fail", fail, "boom")
        lock = tm.register_task("lock", make_lock)
        assert tm.future(ok).result(WAIT) == 5
        with pytest.raises(TaskExecutionError):
            tm.future(bad).result(WAIT)
        tm.future(lock).result(WAIT)  # kept in memory all the same
    by_id = {row["task_id"]: row for row in rows(journal)}
    assert (by_id[ok]["status"], by_id[ok]["result_kept"]) == ("COMPLETED", 1)
    assert by_id[bad]["status"] == "FAILED"
    assert by_id[bad]["error_type"] == "TaskExecutionError"
    assert "boom" in by_id[bad]["error_message"]
    assert (by_id[lock]["status"], by_id[lock]["result_kept"]) == ("COMPLETED", 0)

    with TaskManager(journal=journal) as again:
        assert again.get_task_status(ok) is TaskStatus.COMPLETED
        assert again.get_task_result(ok) == 5
        error = again.get_task_error(bad)
        assert isinstance(error, TaskExecutionError)
        assert "boom" in str(error)
        assert again.get_task_status(lock) is TaskStatus.COMPLETED
        assert again.get_task_result(lock) is None  # the journal says it was not kept
        assert again.get_task(ok).func is add  # type: ignore[union-attr]


def test_unfinished_tasks_run_again_with_ids_dependencies_and_priorities(journal: Path) -> None:
    RECORDED.clear()
    one = SequentialExecutor(name="one")  # one at a time: the order is the priority's
    tm = TaskManager(system=ActorSystem(executors=[one], journal=journal, autostart=False))
    first = tm.register_task("low", record, "low", executor_type="one", priority=1)
    second = tm.register_task("high", record, "high", executor_type="one", priority=4)
    after = tm.register_task("after", record, "after", executor_type="one", dependencies=[first])
    tm.system.shutdown()  # never started: a stop leaves them unfinished in the journal
    assert {row["status"] for row in rows(journal)} == {"PENDING", "WAITING"}
    assert RECORDED == []

    system = ActorSystem(executors=[SequentialExecutor(name="one")], journal=journal)
    try:
        tm = system.task_manager
        assert tm.get_task(after).dependencies == (first,)  # type: ignore[union-attr]
        assert tm.get_task_status(after) is TaskStatus.WAITING
        tm.start_sync()
        assert tm.future(after).result(WAIT) == "after"
        assert tm.future(second).result(WAIT) == "high"
    finally:
        system.shutdown()
    assert RECORDED == ["high", "low", "after"]
    assert {row["status"] for row in rows(journal)} == {"COMPLETED"}


def test_a_task_waiting_for_its_retry_keeps_its_remaining_retries(journal: Path) -> None:
    events: queue.Queue[Any] = queue.Queue()
    with TaskManager(journal=journal) as tm:
        collector = Collector.start(events)
        tm.system.scheduler.ask(messages.Subscribe(collector), timeout=WAIT)
        # Its first attempt fails; stop while its retry waits (the timer thread outlives
        # the test by the delay: a short one; the restart waits what is left of it).
        flaky = tm.register_task("fail", fail, "again", max_retries=1, retry_delay=0.8)
        while not isinstance(events.get(timeout=WAIT), messages.TaskRetrying):
            pass
        collector.stop()
    [row] = rows(journal)
    assert (row["status"], row["attempt"], row["retry_count"]) == ("PENDING", 1, 1)

    with TaskManager(journal=journal) as again:
        # Its retry runs, and it was the last: no third attempt.
        with pytest.raises(TaskExecutionError):
            again.future(flaky).result(WAIT)
        task = again.get_task(flaky)
        assert task is not None
        assert (task.attempt, task.retry_count) == (2, 1)


def test_a_key_returns_the_first_id_and_registers_nothing(
    make_manager: Callable[..., TaskManager], journal: Path
) -> None:
    plain = make_manager()  # in memory, without a journal
    first = plain.register_task("add", add, 1, 1, key="k")
    assert plain.register_task("other", add, 5, 5, key="k") == first
    assert len(plain.get_all_tasks()) == 1

    with TaskManager(journal=journal) as tm:
        journaled = tm.register_task("add", add, 1, 1, key="crawl:https://a.org")
        assert tm.register_task("add", add, 1, 1, key="crawl:https://a.org") == journaled
        tm.future(journaled).result(WAIT)
    with TaskManager(journal=journal) as tm:  # an earlier run's key
        assert tm.register_task("add", add, 9, 9, key="crawl:https://a.org") == journaled
        assert len(tm.get_all_tasks()) == 1
    assert len(rows(journal)) == 1

    with pytest.raises(TypeError, match="key must be a non-empty string"):
        plain.register_task("add", add, 1, 1, key="")


def test_a_forgotten_task_forgets_its_key(make_manager: Callable[..., TaskManager]) -> None:
    tm = make_manager()
    first = tm.register_task("add", add, 1, 1, key="k")
    tm.future(first).result(WAIT)
    assert tm.forget(first)
    assert tm.register_task("add", add, 1, 1, key="k") != first


def test_keep_finished_prunes_the_journal(journal: Path) -> None:
    with TaskManager(journal=journal, keep_finished=5) as tm:
        ids = [str(tm.register_task("add", add, n, n)) for n in range(30)]  # not held
        for task_id in ids:
            if tm.get_task_status(task_id) is not None:
                tm.future(task_id).result(WAIT)
        tm.future(tm.register_task("add", add, 0, 0)).result(WAIT)
    kept = rows(journal)
    assert len(kept) == 5
    assert {row["status"] for row in kept} == {"COMPLETED"}


def test_a_cancel_is_journaled(journal: Path) -> None:
    EVENTS["hold"] = threading.Event()
    with TaskManager(journal=journal) as tm:
        held = tm.register_task("hold", wait_for, "hold")
        cancelled = tm.register_task("add", add, 1, 1, dependencies=[held])
        assert tm.cancel_task_sync(cancelled)
        EVENTS["hold"].set()
        tm.future(held).result(WAIT)
    status = {row["task_id"]: row["status"] for row in rows(journal)}
    assert status == {held: "COMPLETED", cancelled: "CANCELLED"}
    with TaskManager(journal=journal) as again:
        assert again.get_task_status(cancelled) is TaskStatus.CANCELLED
        assert isinstance(again.get_task_error(cancelled), TaskCancellationError)


def test_registrations_from_many_threads_are_all_durable(journal: Path) -> None:
    tm = TaskManager(journal=journal)
    barrier = threading.Barrier(8)
    ids: list[str] = []

    def register() -> None:
        barrier.wait(WAIT)
        ids.extend(tm.register_task("add", add, n, n) for n in range(50))

    threads = [threading.Thread(target=register) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT * 4)
        assert len(ids) == 400
        assert sorted(row["task_id"] for row in rows(journal)) == sorted(ids)
    finally:
        tm.stop_sync()


# -- refusals ---------------------------------------------------------------------------------


def _closure() -> Callable[[], int]:
    def inner() -> int:
        return 1

    return inner


def test_a_failed_write_refuses_the_registration_and_every_one_after(
    journal: Path, make_manager: Callable[..., TaskManager]
) -> None:
    tm = make_manager(journal=journal)
    first = tm.register_task("add", add, 1, 2)
    assert tm.future(first).result(timeout=WAIT) == 3
    writer = tm.system._journal
    assert writer is not None
    writer.sync()  # its COMPLETED row is written (the writer writes it in its own time)
    # A real write failure, as a full disk gives one: another connection to the file
    # makes SQLite refuse every new row.
    other = sqlite3.connect(journal)
    try:
        other.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON tasks "
            "BEGIN SELECT RAISE(ABORT, 'no room left'); END"
        )
        other.commit()
    finally:
        other.close()
    with pytest.raises(JournalError, match=r"cannot be written .*no room left"):
        tm.register_task("add", add, 3, 4)
    with pytest.raises(JournalError, match="tasks are no longer journaled"):
        tm.register_task("add", add, 5, 6)
    # Nothing half-registered: the refused tasks are nowhere, the first is intact.
    assert [task.task_id for task in tm.get_all_tasks()] == [first]
    assert [row["status"] for row in rows(journal)] == ["COMPLETED"]


@pytest.mark.parametrize(
    ("func", "args", "kwargs", "match"),
    [
        (lambda: 1, (), None, r"func must be importable by its qualified name.*<lambda>"),
        (_closure(), (), None, r"func must be importable.*_closure\.<locals>\.inner"),
        (add, (threading.Lock(), 1), None, r"args\[0\] must pickle.*lock"),
        (add, (1,), {"b": threading.Event()}, r"kwargs\['b'\] must pickle"),
    ],
)
def test_what_a_journal_cannot_keep_is_refused_and_nothing_is_written(
    make_manager: Callable[..., TaskManager],
    journal: Path,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None,
    match: str,
) -> None:
    tm = make_manager(journal=journal)
    with pytest.raises(TypeError, match=match):
        tm.register_task("refused", func, *args, kwargs=kwargs)
    assert tm.get_all_tasks() == []
    assert rows(journal) == []
    # What a journal can keep: a method of a module-level class, a builtin.
    tm.register_task("double", Doubler.double, 2)
    tm.register_task("sum", sum, [1, 2])
    assert len(rows(journal)) == 2


def test_a_file_that_is_not_a_journal_is_refused_and_left_alone(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"this is not a database at all" * 100)
    foreign = tmp_path / "foreign.sqlite"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE users (name TEXT)")
    db.execute("INSERT INTO users VALUES ('ada')")
    db.commit()
    db.close()
    damaged = tmp_path / "damaged.sqlite"
    with TaskManager(journal=damaged) as tm:
        tm.register_task("add", add, 1, 1)
    data = bytearray(damaged.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the first page's b-tree: garbage
    damaged.write_bytes(bytes(data))

    cases = [
        (corrupt, "not an SQLite database"),
        (foreign, r"an SQLite database but not a task journal \(application_id 0x0, tables: users"),
        (damaged, "damaged"),
    ]
    for path, message in cases:
        before = path.read_bytes()
        with pytest.raises(JournalError, match=message):
            TaskManager(journal=path)
        assert path.read_bytes() == before
        assert not Path(f"{path}-wal").exists()


def test_bad_journal_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='journal_sync must be "normal" or "full", got \'fast\''):
        TaskManager(journal=tmp_path / "j.sqlite", journal_sync="fast")
    with pytest.raises(TypeError, match="journal must be a path"):
        ActorSystem(journal=42, autostart=False)  # type: ignore[arg-type]
    with pytest.raises(JournalError, match="cannot open journal"):
        TaskManager(journal=tmp_path / "no" / "such" / "dir.sqlite")
    assert not (tmp_path / "j.sqlite").exists()


def test_a_journal_held_in_this_process_is_refused(journal: Path) -> None:
    with (
        TaskManager(journal=journal),
        pytest.raises(JournalError, match=r"in use by another live process \(pid \d+"),
    ):
        TaskManager(journal=journal)
    with TaskManager(journal=journal, journal_sync="full") as tm:  # free again once stopped
        assert tm.future(tm.register_task("add", add, 1, 1)).result(WAIT) == 2


def test_the_config_file_takes_a_journal(tmp_path: Path) -> None:
    path = tmp_path / "system.toml"
    path.write_text(f'journal = "{tmp_path / "j.sqlite"}"\njournal_sync = "full"\n')
    system = ActorSystem.from_config(path, autostart=False)
    try:
        assert system.journal == str(tmp_path / "j.sqlite")
        assert system.journal_sync == "full"
        system.task_manager.register_task("add", add, 1, 1)
        assert len(rows(tmp_path / "j.sqlite")) == 1
    finally:
        system.shutdown()
    with pytest.raises(ConfigError, match="journal_sync must be"):
        ActorSystem.from_config({"journal": str(tmp_path / "k.sqlite"), "journal_sync": "x"})
