"""Time: delayed tasks and schedules, with a journal across restarts (issue 27)."""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim

from actors import (
    ActorSystem,
    DaskExecutor,
    ScheduleInfo,
    TaskManager,
    TaskStatus,
    ThreadPoolExecutor,
    current_task,
    messages,
)
from actors.core.schedules import Trigger, cron_trigger
from actors.durability import journal as journal_module
from actors.durability.journal import SCHEMA_VERSION
from supervision import ConfigError

from .conftest import WAIT, Collector, next_event, run

RUNS: queue.Queue[tuple[str, float]] = queue.Queue()
GATES: dict[str, threading.Event] = {}


def now_stamp() -> float:
    return time.time()


def mark(tag: str) -> float:
    """A scheduled task: says when it ran."""
    ran = time.time()
    RUNS.put((tag, ran))
    return ran


def held(gate: str) -> None:
    """A slow task: runs until its gate opens."""
    GATES[gate].wait(WAIT)


def fails_first(path: str) -> float:
    """Fails its first attempt; later ones say when they ran."""
    if current_task().attempt == 1:
        raise ConnectionError("first attempt")
    return time.time()


def until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait until ``predicate()`` holds (the schedule's state changes on the timer thread)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        pause.wait(0.01)


def runs(tag: str, count: int) -> list[float]:
    """The times of the next ``count`` runs tagged ``tag``."""
    found = []
    while len(found) < count:
        got, ran = RUNS.get(timeout=WAIT)
        if got == tag:
            found.append(ran)
    return found


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "tasks.sqlite"


def info(tm: TaskManager, schedule_id: str) -> ScheduleInfo:
    return next(s for s in tm.schedules() if s.schedule_id == schedule_id)


# -- delays --------------------------------------------------------------------------------------


def test_a_delayed_task_runs_not_before_its_time_and_soon_after() -> None:
    with TaskManager() as tm:
        task_id = tm.register_task("later", now_stamp, delay=0.2)
        task = tm.get_task(task_id)
        assert task is not None
        assert task.not_before is not None
        assert tm.get_task_status(task_id) is TaskStatus.WAITING
        ran = tm.future(task_id).result(WAIT)
        due = task.not_before.timestamp()
        assert due <= ran <= due + 0.05


def test_not_before_takes_a_datetime_and_a_timedelta_delay_works_too() -> None:
    with TaskManager() as tm:
        moment = datetime.now(UTC) + timedelta(milliseconds=200)
        at = tm.register_task("at", now_stamp, not_before=moment)
        later = tm.options(delay=timedelta(milliseconds=100)).submit(now_stamp)
        assert tm.future(at).result(WAIT) >= moment.timestamp()
        task = tm.get_task(later.id)
        assert task is not None
        assert task.not_before is not None
        assert later.result(WAIT) >= task.not_before.timestamp()
        # A moment past runs at once.
        past = tm.register_task("past", now_stamp, not_before=moment - timedelta(days=1))
        assert tm.future(past).result(WAIT) > 0


def test_bad_delays_are_refused_naming_them() -> None:
    with TaskManager() as tm:
        with pytest.raises(ValueError, match="delay must be"):
            tm.register_task("x", now_stamp, delay=-1)
        with pytest.raises(TypeError, match="not_before must be a datetime"):
            tm.register_task("x", now_stamp, not_before="tomorrow")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="delay or not_before, not both"):
            tm.register_task("x", now_stamp, delay=1, not_before=datetime.now(UTC))
        with pytest.raises(ValueError, match="delay must be"):
            tm.options(delay=float("nan"))
        assert tm.get_metrics()["total_tasks"] == 0


def test_a_delayed_task_holds_no_slot() -> None:
    with TaskManager(max_concurrent_tasks=1) as tm:
        later = tm.register_task("later", now_stamp, delay=0.2)
        now = tm.register_task("now", now_stamp)
        assert tm.future(now).result(WAIT) < tm.future(later).result(WAIT)


def test_a_delay_and_a_dependency_are_both_waited_for() -> None:
    GATES["dependency"] = threading.Event()
    with TaskManager() as tm:
        first = tm.register_task("first", held, "dependency")
        second = tm.register_task("second", now_stamp, dependencies=[first], delay=0.1)
        task = tm.get_task(second)
        assert task is not None
        assert task.not_before is not None
        until(lambda: time.time() > task.not_before.timestamp() + 0.1)  # type: ignore[union-attr]
        assert tm.get_task_status(second) is TaskStatus.WAITING  # the dependency still runs
        GATES["dependency"].set()
        assert tm.future(second).result(WAIT) >= task.not_before.timestamp()


def test_a_cancelled_delayed_task_leaves_no_timer_behind() -> None:
    # (tests/conftest.py fails a test whose timer thread lives on: an hour's timer would)
    with TaskManager() as tm:
        task_id = tm.register_task("much later", now_stamp, delay=3600)
        assert tm.future(task_id).cancel() is False
        assert tm.future(task_id).done() is False
        cancelled = tm.system.cancel(task_id)
        assert cancelled
        assert tm.get_task_status(task_id) is TaskStatus.CANCELLED


def test_a_stop_leaves_no_timer_of_a_delayed_task_behind() -> None:
    with TaskManager() as tm:
        tm.register_task("much later", now_stamp, delay=3600)


def test_a_delayed_task_is_not_run_early_after_a_restart(journal: Path) -> None:
    tm = TaskManager(journal=journal)
    tm.start_sync()
    task_id = tm.register_task("later", now_stamp, delay=0.25)
    tm.stop_sync()  # before its time: it stays unfinished in the journal
    with TaskManager(journal=journal) as again:
        task = again.get_task(task_id)
        assert task is not None
        assert task.not_before is not None
        assert again.get_task_status(task_id) is TaskStatus.WAITING
        assert again.future(task_id).result(WAIT) >= task.not_before.timestamp()


def test_a_retry_delay_survives_a_restart(journal: Path) -> None:
    events: queue.Queue[object] = queue.Queue()
    tm = TaskManager(journal=journal)
    tm.start_sync()
    collector = Collector.start(events)
    try:
        tm.system.scheduler.tell(messages.Subscribe(collector))
        task_id = tm.register_task("flaky", fails_first, "x", max_retries=1, retry_delay=0.4)
        next_event(events, messages.TaskRetrying, task_id)
        tm.stop_sync()
    finally:
        collector.stop()
    db = sqlite3.connect(journal)
    try:
        (retry_at,) = db.execute("SELECT retry_at FROM tasks").fetchone()
    finally:
        db.close()
    assert retry_at is not None
    with TaskManager(journal=journal) as again:
        assert again.future(task_id).result(WAIT) >= retry_at


# -- schedules -----------------------------------------------------------------------------------


@pytest.mark.slow  # a second of real time
def test_every_fires_five_times_in_about_a_second() -> None:
    with TaskManager() as tm:
        began = time.time()
        schedule_id = tm.schedule("tick", mark, "tick", every=0.2)
        times = runs("tick", 5)
        # 5 +/- 1 runs in 1.1 s: the fifth is due at 1.0 s.
        assert 0.9 <= times[-1] - began <= 1.2
        assert tm.unschedule(schedule_id)
        assert not tm.unschedule(schedule_id)
    tasks = [t for t in tm.get_tasks_by_status(TaskStatus.COMPLETED) if t.name == "tick"]
    assert tasks
    assert all(t.metadata["schedule"] == schedule_id for t in tasks)
    assert all(t.metadata["schedule_name"] == "tick" for t in tasks)
    assert all(datetime.fromisoformat(t.metadata["fire_time"]) for t in tasks)


def test_an_every_schedule_counts_from_its_start() -> None:
    # The first run is at start (as the docs say), then every interval from there: not
    # the first whole interval after the schedule was made that falls past start.
    trigger = Trigger(every=10.0, cron=None, zone=UTC, anchor=0.0, start=3.0, end=None)
    assert [trigger.next_after(0.0), trigger.next_after(3.0), trigger.next_after(14.0)] == [
        3.0,
        13.0,
        23.0,
    ]
    unbounded = Trigger(every=10.0, cron=None, zone=UTC, anchor=0.0, start=None, end=None)
    assert unbounded.next_after(0.0) == 10.0


def test_cron_fire_times_are_the_librarys() -> None:
    zone = ZoneInfo("America/New_York")
    expression, found_zone, name = cron_trigger("*/5 9-17 * * mon-fri", "America/New_York")
    assert (found_zone, name) == (zone, "America/New_York")
    trigger = Trigger(every=None, cron=expression, zone=zone, anchor=0.0, start=None, end=None)
    moment = datetime(2024, 3, 8, 16, 52, 13, tzinfo=zone)
    expected = CronSim(expression, moment)
    at = moment.timestamp()
    for _ in range(30):
        following = trigger.next_after(at)
        assert following is not None
        assert following == next(expected).timestamp()
        at = following


def test_cron_across_a_dst_change_fires_at_the_local_time() -> None:
    zone = ZoneInfo("Europe/Berlin")
    trigger = Trigger(every=None, cron="0 9 * * *", zone=zone, anchor=0.0, start=None, end=None)
    at = datetime(2024, 3, 30, 12, 0, tzinfo=zone).timestamp()
    first = trigger.next_after(at)
    assert first is not None
    second = trigger.next_after(first)
    assert second is not None
    local = [datetime.fromtimestamp(t, zone) for t in (first, second)]
    assert [(d.day, d.hour) for d in local] == [(31, 9), (1, 9)]  # 09:00 both sides
    assert second - first == 24 * 3600  # a normal day after the change
    before = datetime(2024, 3, 30, 9, 0, tzinfo=zone).timestamp()
    assert first - before == 23 * 3600  # the day of the change is an hour short
    # A time the change skips (02:30 on March 31st) runs as cronsim says (at 03:00).
    skipped = Trigger(every=None, cron="30 2 * * *", zone=zone, anchor=0.0, start=None, end=None)
    fire = skipped.next_after(datetime(2024, 3, 30, 12, 0, tzinfo=zone).timestamp())
    assert fire is not None
    expected = next(CronSim("30 2 * * *", datetime(2024, 3, 30, 12, 0, tzinfo=zone)))
    assert fire == expected.timestamp()


def test_every_ignores_dst_it_counts_seconds() -> None:
    zone = ZoneInfo("Europe/Berlin")
    start = datetime(2024, 3, 31, 1, 0, tzinfo=zone).timestamp()
    trigger = Trigger(every=3600.0, cron=None, zone=UTC, anchor=start, start=start, end=None)
    after = trigger.next_after(start)
    assert after == start + 3600
    assert datetime.fromtimestamp(after, zone).hour == 3  # 02:00 does not exist that day


def test_bad_schedules_are_refused_naming_the_value() -> None:
    with TaskManager() as tm:
        with pytest.raises(ValueError, match=r"cron expression '\* \* \*' is not valid"):
            tm.schedule("x", mark, "x", cron="* * *")
        with pytest.raises(ValueError, match="timezone 'Mars/Olympus' is not a known"):
            tm.schedule("x", mark, "x", cron="* * * * *", timezone="Mars/Olympus")
        with pytest.raises(ValueError, match="exactly one"):
            tm.schedule("x", mark, "x")
        with pytest.raises(ValueError, match="exactly one"):
            tm.schedule("x", mark, "x", every=1, cron="* * * * *")
        with pytest.raises(ValueError, match="every must be"):
            tm.schedule("x", mark, "x", every=0)
        with pytest.raises(ValueError, match="misfire must be one of"):
            tm.schedule("x", mark, "x", every=1, misfire="sometimes")
        with pytest.raises(ValueError, match="max_instances must be"):
            tm.schedule("x", mark, "x", every=1, max_instances=0)
        with pytest.raises(ValueError, match="timezone applies to cron"):
            tm.schedule("x", mark, "x", every=1, timezone="UTC")
        with pytest.raises(TypeError, match="func must be callable"):
            tm.schedule("x", 3, every=1)  # type: ignore[arg-type]
        assert tm.schedules() == []


def test_max_instances_skips_runs_while_a_slow_run_goes_on() -> None:
    GATES["slow"] = threading.Event()
    with TaskManager() as tm:
        schedule_id = tm.schedule("slow", held, "slow", every=0.05, max_instances=1)
        until(lambda: info(tm, schedule_id).skipped >= 3)
        now = info(tm, schedule_id)
        assert (now.fired, now.running) == (1, 1)
        GATES["slow"].set()
        until(lambda: info(tm, schedule_id).fired >= 2)
        tm.unschedule(schedule_id)


def test_pause_and_resume() -> None:
    with TaskManager() as tm:
        schedule_id = tm.schedule("tick", mark, "paused", every=0.05)
        runs("paused", 1)
        assert tm.pause_schedule(schedule_id)
        paused = info(tm, schedule_id)
        assert paused.paused
        assert paused.next_run is None
        assert tm.resume_schedule(schedule_id)
        assert info(tm, schedule_id).next_run is not None
        runs("paused", 1)
        assert not tm.pause_schedule("no such schedule")
        assert not tm.resume_schedule("no such schedule")
        tm.unschedule(schedule_id)


def test_start_and_end_bound_the_runs() -> None:
    with TaskManager() as tm:
        start = datetime.now(UTC) + timedelta(seconds=0.1)
        schedule_id = tm.schedule(
            "bounded",
            mark,
            "bounded",
            every=0.05,
            start=start,
            end=start + timedelta(seconds=0.125),
        )
        times = runs("bounded", 3)
        assert times[0] >= start.timestamp()
        until(lambda: info(tm, schedule_id).next_run is None)
        assert info(tm, schedule_id).fired == 3


def test_a_schedule_survives_a_restart_and_fires_again(journal: Path) -> None:
    tm = TaskManager(journal=journal)
    tm.start_sync()
    schedule_id = tm.schedule("kept", mark, "kept", every=0.1, max_retries=2, tags=["t"])
    runs("kept", 1)
    tm.stop_sync()
    with TaskManager(journal=journal) as again:
        [kept] = again.schedules()
        assert (kept.schedule_id, kept.name, kept.every) == (schedule_id, "kept", 0.1)
        assert kept.fired >= 1
        runs("kept", 2)
        task = next(t for t in again.get_tasks_by_tag("t") if t.status is TaskStatus.COMPLETED)
        assert task.max_retries == 2


@pytest.mark.parametrize(
    ("misfire", "fired", "skipped"), [("skip", 0, 3), ("run_once", 1, 2), ("run_all", 3, 0)]
)
def test_misfire_policies_after_a_downtime(
    journal: Path, misfire: str, fired: int, skipped: int
) -> None:
    tm = TaskManager(journal=journal)
    schedule_id = tm.schedule("m", mark, misfire, every=5.0, misfire=misfire, max_instances=5)
    tm.stop_sync()  # never started: it never fired
    # 12.5 s of downtime: runs were due 12.5, 7.5 and 2.5 s ago, all of them late.
    db = sqlite3.connect(journal)
    try:
        now = time.time()
        db.execute("UPDATE schedules SET next_run = ?, created_at = ?", (now - 12.5, now - 17.5))
        db.commit()
    finally:
        db.close()
    with TaskManager(journal=journal) as again:
        until(lambda: info(again, schedule_id).fired + info(again, schedule_id).skipped >= 3)
        after = info(again, schedule_id)
        assert (after.fired, after.skipped) == (fired, skipped)
        assert after.next_run is not None
        assert after.next_run > datetime.now(UTC)
        if fired:
            runs(misfire, fired)


def test_unschedule_is_kept_in_the_journal(journal: Path) -> None:
    with TaskManager(journal=journal) as tm:
        schedule_id = tm.schedule("gone", mark, "gone", cron="0 0 1 1 *", timezone="UTC")
        assert [s.schedule_id for s in tm.schedules()] == [schedule_id]
        assert tm.unschedule(schedule_id)
    with TaskManager(journal=journal) as again:
        assert again.schedules() == []


def test_a_journaled_schedule_must_pickle(journal: Path) -> None:
    with TaskManager(journal=journal) as tm:
        with pytest.raises(TypeError, match="must be importable"):
            tm.schedule("x", lambda: None, every=1)
        with pytest.raises(TypeError, match=r"args\[1\] must pickle"):
            tm.schedule("x", mark, "x", threading.Lock(), every=1)
        assert tm.schedules() == []


# -- the journal's schema ----------------------------------------------------------------------


def test_a_version_2_journal_migrates_and_keeps_its_tasks(journal: Path) -> None:
    from .test_journal_restarts import SCHEMA_1

    db = sqlite3.connect(journal)
    try:
        db.executescript(SCHEMA_1)
        db.executescript(journal_module._MIGRATE[1])
        db.execute(
            "INSERT INTO tasks (seq, task_id, key, name, func, payload, priority, "
            "dependencies, max_retries, retry_delay, description, tags, executor, status, "
            "created_at) VALUES (0, 'old-2', NULL, 'now_stamp', 'x', ?, 2, '[]', 0, 1.0, '', "
            "'[]', 'thread_pool', 'PENDING', 0)",
            (journal_module.pickle.dumps((now_stamp, (), {}, {})),),
        )
        db.commit()
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    finally:
        db.close()
    with TaskManager(journal=journal) as tm:
        assert tm.future("old-2").result(WAIT) > 0
        tm.schedule("new", mark, "new", every=60)
    db = sqlite3.connect(journal)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
        assert db.execute("SELECT name FROM schedules").fetchall() == [("new",)]
    finally:
        db.close()


# -- TOML ----------------------------------------------------------------------------------------


def test_a_toml_configuration_declares_schedules(tmp_path: Path) -> None:
    journal = tmp_path / "tasks.sqlite"
    config = tmp_path / "system.toml"
    table = """
journal = "{journal}"

[[schedules]]
name = "tick"
func = "tests.actors.test_time:mark"
args = ["toml"]
every = {every}
max_retries = 2
"""
    config.write_text(table.format(journal=journal, every=0.05))
    with ActorSystem.from_config(config) as system:
        tm = system.task_manager
        tm.start_sync()
        [first] = tm.schedules()
        assert (first.name, first.every) == ("tick", 0.05)
        runs("toml", 2)
    with ActorSystem.from_config(config) as system:  # the same: the journal's is kept
        [again] = system.task_manager.schedules()
        assert again.schedule_id == first.schedule_id
        assert again.fired >= 2
    config.write_text(table.format(journal=journal, every=60))
    with ActorSystem.from_config(config) as system:  # changed: replaced
        [changed] = system.task_manager.schedules()
        assert changed.schedule_id != first.schedule_id
        assert changed.every == 60


def test_a_bad_schedule_in_toml_names_its_place(tmp_path: Path) -> None:
    config = tmp_path / "system.toml"
    config.write_text('[[schedules]]\nname = "x"\nfunc = "tests.actors.test_time:nothing"\n')
    with pytest.raises(ConfigError, match=r"schedules\[0\]\.func: module .* has no attribute"):
        ActorSystem.from_config(config)
    config.write_text(
        '[[schedules]]\nname = "x"\nfunc = "tests.actors.test_time:mark"\ncron = "61 * * * *"\n'
    )
    with pytest.raises(ConfigError, match=r"schedules\[0\]: cron expression '61 \* \* \* \*'"):
        ActorSystem.from_config(config)
    config.write_text('[[schedules]]\nname = "x"\nfunc = "tests.actors.test_time:mark"\nat = 1\n')
    with pytest.raises(ConfigError, match=r"schedules\[0\]\.at: unknown key"):
        ActorSystem.from_config(config)


# -- the seams: the application's loop, processes, Dask ---------------------------------------


async def pass_on(fresh: asyncio.Queue[str], tag: str) -> str:
    """A coroutine task: an asyncio.Queue works only on the loop it was made on."""
    fresh.put_nowait(tag)
    return tag


def test_delays_and_schedules_run_coroutines_on_the_applications_loop() -> None:
    async def main() -> list[str]:
        fresh: asyncio.Queue[str] = asyncio.Queue()
        async with TaskManager() as tm:
            later = tm.options(delay=0.05).submit(pass_on, fresh, "delayed")
            schedule_id = tm.schedule("each", pass_on, fresh, "scheduled", every=0.05)
            got = [await asyncio.wait_for(fresh.get(), WAIT) for _ in range(3)]
            assert await later == "delayed"
            tm.unschedule(schedule_id)
            return got

    got = run(main())
    assert "delayed" in got
    assert got.count("scheduled") >= 2


def scheduled_results(tm: TaskManager, schedule_id: str) -> list[object]:
    return [
        t.result
        for t in tm.get_tasks_by_status(TaskStatus.COMPLETED)
        if t.metadata.get("schedule") == schedule_id
    ]


@pytest.mark.slow  # worker processes
def test_delays_and_schedules_on_the_process_executor() -> None:
    with TaskManager() as tm:
        schedule_id = tm.schedule("pid", os.getpid, every=0.1, executor_type="process")
        assert "process" in tm.system.executors  # made now, not by a run on the timer thread
        later = tm.register_task("later", os.getpid, executor_type="process", delay=0.1)
        assert tm.future(later).result(WAIT * 4) != os.getpid()
        until(lambda: len(scheduled_results(tm, schedule_id)) >= 2, WAIT * 4)
        assert os.getpid() not in scheduled_results(tm, schedule_id)
        tm.unschedule(schedule_id)


@pytest.mark.slow  # a Dask cluster
def test_delays_and_schedules_on_the_dask_executor() -> None:
    dask = DaskExecutor(processes=False, n_workers=1, dashboard_address=":0")
    with TaskManager(default_executor_type=dask) as tm:
        later = tm.register_task("later", now_stamp, delay=0.1)
        task = tm.get_task(later)
        assert task is not None
        assert task.not_before is not None
        assert tm.future(later).result(WAIT * 4) >= task.not_before.timestamp()
        schedule_id = tm.schedule("stamp", now_stamp, every=0.1)
        until(lambda: len(scheduled_results(tm, schedule_id)) >= 2, WAIT * 4)
        tm.unschedule(schedule_id)


def test_a_refused_schedule_adds_no_executor(journal: Path) -> None:
    with TaskManager(journal=journal) as tm:
        extra = ThreadPoolExecutor(1, name="extra")
        with pytest.raises(ValueError, match="misfire must be one of"):
            tm.schedule("x", mark, "x", every=1, misfire="never", executor_type=extra)
        with pytest.raises(TypeError, match=r"args\[0\] must pickle"):
            tm.schedule("x", mark, threading.Lock(), every=1, executor_type=extra)
        assert "extra" not in tm.system.executors
        assert tm.schedules() == []
