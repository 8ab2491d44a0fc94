"""Each compat class warns DeprecationWarning once, naming its replacement."""

from __future__ import annotations

import asyncio
import warnings

import pytest

from actors.compat.async_task_manager import AsyncTaskManager
from actors.compat.task_manager import TaskManager
from actors.compat.thread_pool_manager import ThreadPoolManager


def test_task_manager_warns_once() -> None:
    with pytest.warns(
        DeprecationWarning,
        match=r"task_manager\.TaskManager is deprecated; use actors\.TaskManager",
    ):
        TaskManager()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TaskManager()  # the second time is silent


def test_thread_pool_manager_warns_once() -> None:
    with pytest.warns(
        DeprecationWarning, match=r"ThreadPoolManager is deprecated; use actors\.TaskManager"
    ):
        ThreadPoolManager()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ThreadPoolManager()


def test_async_task_manager_warns_once() -> None:
    async def main() -> None:
        with pytest.warns(
            DeprecationWarning, match=r"AsyncTaskManager is deprecated; use actors\.TaskManager"
        ):
            first = AsyncTaskManager()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            second = AsyncTaskManager()
        await first.shutdown()
        await second.shutdown()

    asyncio.run(main())
