"""Embedding in an application: its context variables reach its tasks."""

from __future__ import annotations

import contextvars

import structlog

from actors import TaskManager, current_task

from .conftest import WAIT

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def read_request_id() -> str | None:
    return request_id.get()


async def read_request_id_async() -> str | None:
    return request_id.get()


def test_tasks_run_in_the_context_current_at_registration(tm: TaskManager) -> None:
    token = request_id.set("req-1")
    try:
        in_thread = tm.register_task("thread", read_request_id)
        in_loop = tm.register_task("coroutine", read_request_id_async)
        returned = tm.register_task("returned", lambda: read_request_id_async())
    finally:
        request_id.reset(token)
    outside = tm.register_task("outside", read_request_id)
    results = [tm.future(t).result(timeout=WAIT) for t in (in_thread, in_loop, returned, outside)]
    assert results == ["req-1", "req-1", "req-1", None]


def test_each_attempt_gets_a_fresh_copy_and_nothing_leaks_out(tm: TaskManager) -> None:
    seen: list[tuple[int, str | None]] = []

    def meddle() -> str:
        seen.append((current_task().attempt, request_id.get()))
        request_id.set("changed by the task")
        if current_task().attempt == 1:
            raise RuntimeError("again")
        return "done"

    token = request_id.set("original")
    try:
        task_id = tm.register_task("meddle", meddle, max_retries=1, retry_delay=0)
    finally:
        request_id.reset(token)
    assert tm.future(task_id).result(timeout=WAIT) == "done"
    assert seen == [(1, "original"), (2, "original")]  # the retry did not see attempt 1's set
    assert request_id.get() is None


def test_structlog_context_variables_reach_the_task(tm: TaskManager) -> None:
    structlog.contextvars.bind_contextvars(request="r-9")
    try:
        task_id = tm.register_task("ctx", structlog.contextvars.get_contextvars)
    finally:
        structlog.contextvars.clear_contextvars()
    assert tm.future(task_id).result(timeout=WAIT) == {"request": "r-9"}
