"""The library's logs live in the application's world: stdlib routing, raising processors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from actors import TaskExecutionError, TaskManager

from .conftest import WAIT


@pytest.fixture
def stdlib_routing() -> Iterator[list[logging.LogRecord]]:
    """structlog routed into the standard library, the way structlog documents it."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    structlog.configure(
        processors=[structlog.stdlib.add_log_level, structlog.stdlib.render_to_log_kwargs],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    try:
        yield records
    finally:
        structlog.reset_defaults()
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_events_route_into_the_standard_library(
    tm: TaskManager, stdlib_routing: list[logging.LogRecord]
) -> None:
    # render_to_log_kwargs makes every key a LogRecord attribute: a key that LogRecord
    # owns ("name", "msg", ...) would make register_task itself raise KeyError.
    flaky = tm.register_task("flaky", int, "x", max_retries=1, retry_delay=0)
    with pytest.raises(TaskExecutionError):
        tm.future(flaky).result(timeout=WAIT)
    mine = [r for r in stdlib_routing if getattr(r, "task_id", None) == flaky]
    levels = {r.getMessage(): r.levelno for r in mine}
    assert levels["task.registered"] == logging.INFO
    assert levels["task.retrying"] == logging.WARNING  # a WARNING filter still sees failures
    assert levels["task.failed"] == logging.ERROR
    assert all(getattr(r, "task_name", None) == "flaky" for r in mine)


def test_a_processor_that_raises_never_breaks_a_task(
    tm: TaskManager, caplog: pytest.LogCaptureFixture
) -> None:
    def hostile(_logger: Any, _method: str, event: dict[str, Any]) -> Any:
        if event["event"] in ("task.started", "task.completed", "task.registered"):
            raise RuntimeError("a broken processor")
        raise structlog.DropEvent

    structlog.configure(processors=[hostile])
    try:
        with caplog.at_level(logging.ERROR, logger="actors.logging"):
            task_id = tm.register_task("fine", abs, -4)
            assert tm.future(task_id).result(timeout=WAIT) == 4
    finally:
        structlog.reset_defaults()
    assert tm.get_metrics()["running_tasks"] == 0
    assert any("a log processor failed on task.started" in r.getMessage() for r in caplog.records)
