"""The run_task scripts' jobs: a focus point over its sites, then insights; periodic runs."""

from __future__ import annotations

import asyncio
import math
import queue
import threading
from typing import Any

import pytest

from actors import TaskExecutionError, TaskManager, current_task
from actors.compat.run_task import process_focus, schedule_periodic
from supervision import timer_service

from .conftest import WAIT


async def process_site(focus_id: str, site: str) -> str:
    if site == "flaky.org" and current_task().attempt == 1:
        raise ConnectionError("reset")
    if site == "down.org":
        raise ConnectionError("down")
    await asyncio.sleep(0)
    return f"{focus_id}@{site}"


def insights(focus_id: str, results: dict[str, Any]) -> str:
    return f"{focus_id}: {len(results)} sites"


def test_process_focus_then_insights_from_what_succeeded() -> None:
    async def main() -> None:
        async with TaskManager() as tm:
            run = await process_focus(
                tm,
                "ai",
                ["a.org", "flaky.org", "down.org"],
                process_site,
                insights,
                max_retries=1,
                retry_delay=0,
            )
        assert run.results == {"a.org": "ai@a.org", "flaky.org": "ai@flaky.org"}
        assert set(run.errors) == {"down.org"}
        assert isinstance(run.errors["down.org"], TaskExecutionError)
        assert run.insights == "ai: 2 sites"
        assert run.insights_error is None
        assert len(tm.get_tasks_by_tag("focus:ai")) == 4

    asyncio.run(main())


def test_schedule_periodic_registers_a_task_each_interval() -> None:
    runs: queue.Queue[int] = queue.Queue()
    tm = TaskManager()
    tm.start_sync()
    try:
        counter = iter(range(100))
        periodic = schedule_periodic(tm, "tick", 0.01, lambda: runs.put(next(counter)))
        assert [runs.get(timeout=WAIT) for _ in range(3)] == [0, 1, 2]
        periodic.cancel()
        ids = list(periodic.task_ids)
        assert len(ids) >= 3
        assert all(t.name == "tick" for t in tm.get_all_tasks())
    finally:
        tm.stop_sync(timeout=WAIT)


ABSURD = [math.nan, math.inf, -math.inf, -1, threading.TIMEOUT_MAX * 2]


def assert_timer_thread_alive() -> None:
    fired = threading.Event()
    timer_service().call_later(0, fired.set)
    assert fired.wait(WAIT)


@pytest.mark.parametrize("interval", [*ABSURD, 0, 0.0])
def test_schedule_periodic_refuses_an_absurd_interval(interval: float) -> None:
    tm = TaskManager()
    try:
        with pytest.raises(ValueError, match=r"^interval must be a finite number > 0"):
            schedule_periodic(tm, "tick", interval, lambda: None)
        assert tm.get_all_tasks() == []
        assert_timer_thread_alive()
    finally:
        tm.stop_sync(timeout=WAIT)


@pytest.mark.parametrize("first_in", ABSURD)
def test_schedule_periodic_refuses_an_absurd_first_delay(first_in: float) -> None:
    tm = TaskManager()
    try:
        with pytest.raises(ValueError, match=r"^first_in must be a finite number >= 0"):
            schedule_periodic(tm, "tick", 1.0, lambda: None, first_in=first_in)
        with pytest.raises(TypeError, match=r"^interval must be a number"):
            schedule_periodic(tm, "tick", "1", lambda: None)  # type: ignore[arg-type]
        assert tm.get_all_tasks() == []
        assert_timer_thread_alive()
    finally:
        tm.stop_sync(timeout=WAIT)


def test_schedule_periodic_takes_the_longest_interval_a_wait_can() -> None:
    tm = TaskManager()
    try:
        periodic = schedule_periodic(
            tm, "tick", threading.TIMEOUT_MAX, lambda: None, first_in=threading.TIMEOUT_MAX
        )
        periodic.cancel()
        assert periodic.interval == threading.TIMEOUT_MAX
    finally:
        tm.stop_sync(timeout=WAIT)


def test_a_periodic_run_names_its_manager_read_only() -> None:
    tm = TaskManager()
    try:
        periodic = schedule_periodic(tm, "tick", 60, lambda: None, first_in=60)
        periodic.cancel()
        assert periodic.manager is tm
        with pytest.raises(AttributeError):
            periodic.manager = tm  # type: ignore[misc]
    finally:
        tm.stop_sync(timeout=WAIT)


def test_a_periodic_run_keeps_only_its_latest_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    from actors.compat import run_task

    monkeypatch.setattr(run_task, "KEEP_RUN_IDS", 2)
    runs: queue.Queue[int] = queue.Queue()
    tm = TaskManager()
    tm.start_sync()
    try:
        counter = iter(range(100))
        with pytest.warns(DeprecationWarning, match="schedule_periodic"):
            periodic = schedule_periodic(tm, "tick", 0.005, lambda: runs.put(next(counter)))
        assert [runs.get(timeout=WAIT) for _ in range(5)] == [0, 1, 2, 3, 4]
        periodic.cancel()
        assert periodic.runs >= 5
        assert len(periodic.task_ids) == 2  # memory stays flat however long it runs
    finally:
        tm.stop_sync(timeout=WAIT)
