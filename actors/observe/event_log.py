"""A subscriber actor that writes every task event as one JSON object per line."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import IO, Any

import pykka

from actors.core import messages
from actors.core.scheduler import SchedulerActor
from supervision._validate import show

__all__ = ["JsonLinesEventLog", "event_record"]


def event_record(event: messages.TaskEvent) -> dict[str, Any]:
    """The JSON object (as a dict) the log writes for ``event``, without its ``time``.

    Every record has ``kind`` (started, progress, retrying, succeeded, failed),
    ``task_id``, ``task_name`` and ``attempt``; started adds ``limit_key`` for a task
    that has one; progress adds ``fraction`` and
    ``message``; retrying adds ``delay``, ``error_type`` and ``error_message``; failed adds
    ``failure`` (execution, timeout, cancelled, dependency), ``error_type`` and
    ``error_message``. A result is not written (it need not be JSON).
    """
    match event:
        case messages.TaskStarted():
            record = _record("started", event.task_id, event.name, event.attempt)
            if event.limit_key is not None:
                record["limit_key"] = event.limit_key
            return record
        case messages.TaskProgress():
            record = _record("progress", event.task_id, event.name, event.attempt)
            record["fraction"] = event.fraction
            record["message"] = event.message
            return record
        case messages.TaskRetrying():
            record = _record("retrying", event.task_id, event.name, event.attempt)
            record["delay"] = event.delay
            record["error_type"] = event.error_type
            record["error_message"] = event.error
            return record
        case messages.TaskSucceeded():
            return _record("succeeded", event.task_id, event.name, event.attempt)
        case messages.TaskFailed():
            record = _record("failed", event.task_id, event.name, event.attempt)
            record["failure"] = event.kind.value
            record["error_type"] = event.error_type
            record["error_message"] = event.message
            return record
    raise TypeError(f"not a task event: {show(event)}")


def _record(kind: str, task_id: str, task_name: str, attempt: int) -> dict[str, Any]:
    return {"kind": kind, "task_id": task_id, "task_name": task_name, "attempt": attempt}


def _the_scheduler() -> pykka.ActorRef[Any]:
    """The scheduler of the one actor system running in this process."""
    refs = pykka.ActorRegistry.get_by_class(SchedulerActor)
    if len(refs) != 1:
        running = "no actor system is" if not refs else f"{len(refs)} actor systems are"
        raise RuntimeError(f"JsonLinesEventLog: {running} running; pass scheduler=system.scheduler")
    return refs[0]


class JsonLinesEventLog(pykka.ThreadingActor):
    """Writes every event of :mod:`actors.messages` as one JSON object per line.

    ``target`` is a path (opened for appending, UTF-8, closed when the actor stops) or an
    open text stream (``sys.stdout``: written and flushed, never closed). Each line is
    :func:`event_record`'s object with ``time`` first, the UTC time the log received the
    event (ISO 8601)::

        {"time": "2025-01-01T12:00:00.123456+00:00", "kind": "failed", "task_id": "...",
         "task_name": "fetch /archive", "attempt": 3, "failure": "timeout",
         "error_type": "TaskTimeoutError", "error_message": "task 'fetch /archive' ..."}

    Start it under a system (``system.spawn(JsonLinesEventLog, "events.jsonl")``), from a
    TOML tree (``start = "actors:JsonLinesEventLog"``, ``args = ["events.jsonl"]``), or on
    its own with ``scheduler=``. It subscribes in its constructor, so no event of a task
    registered after it started is missed; without ``scheduler`` it finds the scheduler of
    the one actor system running in the process. ``task_ids`` limits it to those tasks.
    An unwritable path fails on the starting thread, not later in a restart loop.
    """

    use_daemon_thread = True

    def __init__(
        self,
        target: str | os.PathLike[str] | IO[str],
        *,
        scheduler: pykka.ActorRef[Any] | None = None,
        task_ids: Iterable[str] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(target, str | os.PathLike):
            if not os.fspath(target):
                raise ValueError("target must be a path or a text stream, got ''")
            self._stream: IO[str] = open(target, "a", encoding="utf-8")  # noqa: SIM115 - closed in on_stop
            self._owns_stream = True
        elif callable(getattr(target, "write", None)):
            self._stream = target
            self._owns_stream = False
        else:
            raise TypeError(f"target must be a path or a text stream, got {show(target)}")
        try:
            ids = None if task_ids is None or isinstance(task_ids, str) else tuple(task_ids)
            if task_ids is not None and (ids is None or not all(isinstance(t, str) for t in ids)):
                raise TypeError(f"task_ids must be a list of task ids, got {show(task_ids)}")
            if scheduler is not None and not isinstance(scheduler, pykka.ActorRef):
                raise TypeError(f"scheduler must be an ActorRef, got {show(scheduler)}")
            self._scheduler = scheduler if scheduler is not None else _the_scheduler()
            wanted = None if ids is None else frozenset(ids)
            self._scheduler.ask(messages.Subscribe(self.actor_ref, wanted), timeout=60)
        except BaseException:
            self._close()
            raise

    def on_receive(self, message: Any) -> Any:
        """Write one event (on the actor's thread); anything else goes to pykka's default."""
        if not isinstance(
            message,
            messages.TaskStarted
            | messages.TaskProgress
            | messages.TaskRetrying
            | messages.TaskSucceeded
            | messages.TaskFailed,
        ):
            return super().on_receive(message)
        record = {"time": datetime.now(UTC).isoformat(), **event_record(message)}
        self._stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        if self.actor_inbox.empty():
            self._stream.flush()
        return None

    def on_stop(self) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self._scheduler.tell(messages.Unsubscribe(self.actor_ref))
        self._close()

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._close()

    def _close(self) -> None:
        if self._owns_stream:
            self._stream.close()
        else:
            with contextlib.suppress(ValueError, OSError):  # a stream closed by its owner
                self._stream.flush()
