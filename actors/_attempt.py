"""One attempt of a task: its context, where its work runs, and how to interrupt that work."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable

from actors._context import CancelFlag, TaskContext
from actors._task import Task
from actors._tracing import Observation
from supervision import Cancellable

__all__ = ["Attempt", "Interrupted"]


class Interrupted(BaseException):
    """Raised asynchronously in a worker thread whose attempt timed out or was cancelled.

    A BaseException so that the task's own ``except Exception`` does not swallow it.
    """


class Attempt:
    """One attempt of a task: its context, and how to interrupt the work running it.

    Created by the store when the attempt starts; the runner on the executor says where
    the work runs (a thread ident, or a way to cancel an asyncio task).
    """

    __slots__ = (
        "_cancel_async",
        "_interrupted",
        "_lock",
        "_thread",
        "cancelled",
        "context",
        "deadline",
        "executor",
        "number",
        "observed",
        "released",
        "task",
    )

    def __init__(
        self,
        task: Task,
        number: int,
        report: Callable[[str, int, float, str], None],
    ) -> None:
        self.task = task  # the live record; read-only outside the store's lock
        self.number = number
        self.executor = task.executor
        self.cancelled = CancelFlag()
        self.released = False
        self.deadline: Cancellable | None = None  # the timeout's timer, if any
        self.observed: Observation | None = None  # set when an instrumentation watches it
        task_id = task.task_id
        self.context = TaskContext(
            task_id,
            number,
            self.cancelled,
            lambda fraction, message: report(task_id, number, fraction, message),
        )
        self._lock = threading.Lock()
        self._thread: int | None = None
        self._cancel_async: Callable[[], object] | None = None
        self._interrupted = False

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def interrupted(self) -> bool:
        """A timeout or a cancel has interrupted this attempt."""
        return self._interrupted

    def running_in_thread(self, ident: int | None) -> bool:
        """The calling thread runs the work now (``ident``), or no longer does (None).

        False if the attempt was interrupted before its work started: do not start it.
        """
        with self._lock:
            if ident is not None and self._interrupted:
                return False
            self._thread = ident
            return True

    def running_as_coroutine(self, cancel: Callable[[], object] | None) -> bool:
        """As running_in_thread, for a coroutine that ``cancel`` cancels."""
        with self._lock:
            if cancel is not None and self._interrupted:
                return False
            self._cancel_async = cancel
            return True

    def interrupt(self) -> None:
        """Stop the work where Python can: cancel the coroutine, or raise in the thread.

        Work that has not started yet never starts.
        """
        with self._lock:
            self._interrupted = True
            if self._cancel_async is not None:
                self._cancel_async()
            if self._thread is not None and self._thread != threading.get_ident():
                # Never in the calling thread: a task that stops its own manager must
                # get to the end of stop(). The thread checks for this exception between
                # bytecodes; a thread blocked in C code (sleep, I/O) sees it when that
                # call returns.
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._thread), ctypes.py_object(Interrupted)
                )
