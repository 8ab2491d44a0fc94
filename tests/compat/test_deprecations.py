"""Every use of a compat entry point warns DeprecationWarning at the caller's line.

The warnings filters, not the library, decide how often a warning shows: each test sees
its warnings whatever ran before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from actors import TaskManager as UnifiedTaskManager
from actors.compat.async_task_manager import AsyncTaskManager
from actors.compat.run_task import process_focus, schedule_periodic
from actors.compat.task_manager import TaskManager
from actors.compat.thread_pool_manager import ThreadPoolManager

from .conftest import WAIT


def deprecations(use: Callable[[], Any], match: str) -> list[pytest.WarningsRecorder]:
    """Call ``use`` twice, each time under ``pytest.warns``; return both records."""
    records: list[pytest.WarningsRecorder] = []
    for _ in range(2):
        with pytest.warns(DeprecationWarning, match=match) as record:
            use()
        records.append(record)
    return records


def assert_at_this_file(records: list[pytest.WarningsRecorder]) -> None:
    for record in records:
        found = [w for w in record if issubclass(w.category, DeprecationWarning)]
        assert len(found) == 1
        assert found[0].filename == __file__


def test_task_manager_warns_on_every_construction() -> None:
    records = deprecations(
        lambda: TaskManager(),
        r"task_manager\.TaskManager is deprecated; use actors\.TaskManager",
    )
    assert_at_this_file(records)


def test_thread_pool_manager_warns_on_every_construction() -> None:
    records = deprecations(
        lambda: ThreadPoolManager(),
        r"ThreadPoolManager is deprecated; use actors\.TaskManager",
    )
    assert_at_this_file(records)


def test_async_task_manager_warns_on_every_construction() -> None:
    managers: list[AsyncTaskManager] = []

    async def main() -> None:
        records = deprecations(
            lambda: managers.append(AsyncTaskManager()),
            r"AsyncTaskManager is deprecated; use actors\.TaskManager",
        )
        assert_at_this_file(records)
        for manager in managers:
            await manager.shutdown()

    asyncio.run(main())


def test_process_focus_warns_on_every_call_even_run_as_a_task() -> None:
    def process_site(focus_id: str, site: str) -> str:
        return site

    def generate_insights(focus_id: str, results: dict[str, Any]) -> str:
        return focus_id

    async def main() -> None:
        async with UnifiedTaskManager() as tm:
            # Awaited directly, then wrapped in a Task: the warning names this file both times.
            runs = []
            with pytest.warns(DeprecationWarning, match=r"process_focus is deprecated") as first:
                runs.append(await process_focus(tm, "f", [], process_site, generate_insights))
            with pytest.warns(DeprecationWarning, match=r"process_focus is deprecated") as second:
                task = asyncio.ensure_future(
                    process_focus(tm, "g", [], process_site, generate_insights)
                )
            runs.append(await asyncio.wait_for(task, WAIT))
            assert [run.insights for run in runs] == ["f", "g"]
            assert_at_this_file([first, second])

    asyncio.run(main())


def test_schedule_periodic_warns_on_every_call() -> None:
    tm = UnifiedTaskManager()
    runs = []
    try:
        records = deprecations(
            lambda: runs.append(schedule_periodic(tm, "tick", 60, lambda: None, first_in=60)),
            r"schedule_periodic is deprecated",
        )
        assert_at_this_file(records)
    finally:
        for run in runs:
            run.cancel()
        tm.stop_sync(timeout=WAIT)
