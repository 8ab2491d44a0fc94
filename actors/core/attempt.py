"""One attempt of a task: its context, where its work runs, and how to interrupt that work."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from typing import Any

from actors.core.context import CancelFlag, Interrupted, TaskContext, here
from actors.core.inputs import resolve
from actors.core.task import Task
from actors.core.tracing import Observation
from supervision import Cancellable

__all__ = ["Attempt", "Interrupted"]


@functools.cache
def _async_exc() -> tuple[Callable[[int, Any], int], Callable[[int, None], int]]:
    """Our own handles on the C function (not ctypes.pythonapi's shared attribute): one
    sends an exception, one withdraws it before it is delivered (a NULL one). Made on the
    first interrupt: ctypes is not imported by a program that never sends one."""
    import ctypes

    send = ctypes.pythonapi["PyThreadState_SetAsyncExc"]
    send.argtypes = (ctypes.c_ulong, ctypes.py_object)
    withdraw = ctypes.pythonapi["PyThreadState_SetAsyncExc"]
    withdraw.argtypes = (ctypes.c_ulong, ctypes.c_void_p)
    return send, withdraw


class Attempt:
    """One attempt of a task: its context, and how to interrupt the work running it.

    Created by the store when the attempt starts; the runner on the executor says where
    the work runs (a thread, or a way to cancel an asyncio task).

    A sync attempt's thread is interrupted by an exception raised in it asynchronously,
    but never inside the library: a call into the library from the task (``shielded``)
    defers the interrupt to the moment it returns, and the interrupt is withdrawn when
    the work itself returns. An executor with ``interrupts_threads = False`` never
    raises in the thread: ``current_task().cancelled`` turns True, that is all.
    """

    __slots__ = (
        "_cancel_async",
        "_interrupted",
        "_lock",
        "_owed",
        "_result_of",
        "_sent",
        "_shields",
        "_thread",
        "_waker",
        "cancelled",
        "context",
        "deadline",
        "executor",
        "interrupts_threads",
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
        result_of: Callable[[str], Any] | None = None,
    ) -> None:
        self.task = task  # the live record; read-only outside the store's lock
        self._result_of = result_of
        self.number = number
        self.executor = task.executor
        self.cancelled = CancelFlag()
        self.released = False
        self.deadline: Cancellable | None = None  # the timeout's timer, if any
        self.observed: Observation | None = None  # set when an instrumentation watches it
        self.interrupts_threads = True  # set by the launcher from its executor
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
        self._shields = 0  # library calls the work's thread is inside now
        self._sent = False  # an Interrupted was sent to the thread, maybe not delivered yet
        self._owed = False  # an interrupt deferred until the library call returns
        self._waker: Callable[[], object] | None = None  # wakes a shielded wait

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def interrupted(self) -> bool:
        """A timeout or a cancel has interrupted this attempt."""
        return self._interrupted

    # -- the work's thread -----------------------------------------------------------------

    def inputs(self) -> tuple[tuple[Any, ...], Mapping[str, Any]]:
        """The arguments to call the function with: the registered ones, with each
        dependency's result in the place of its ``ResultOf``."""
        task = self.task
        if not task.dependencies or self._result_of is None:
            return task.args, task.kwargs
        return resolve(task.args, task.kwargs, self._result_of)

    def work_begins(self) -> bool:
        """On the thread about to call the task's function: it may be interrupted now.

        False if the attempt was interrupted before its work started: do not start it.
        """
        with self._lock:
            if self._interrupted:
                return False
            self._thread = threading.get_ident()
        here.attempt = self
        return True

    def work_ends(self) -> None:
        """On the work's thread, once the function returned or raised: nothing can
        interrupt it any more, and an interrupt sent but not delivered is withdrawn.

        An Interrupted sent just before may arrive as this is called (before its first
        line): the caller calls it again then (``_call``); one is sent at a time.
        """
        here.attempt = None
        with self._lock:
            thread, self._thread = self._thread, None
            if self._sent and thread is not None:
                _async_exc()[1](thread, None)

    def shield(self) -> None:
        """The work's thread enters the library: an interrupt waits until ``unshield``."""
        with self._lock:
            self._shields += 1
            if self._sent and self._thread is not None:
                # Sent before we got here and maybe not delivered yet: it would land in
                # the library. Taken back (a no-op if it was delivered) and owed instead.
                _async_exc()[1](self._thread, None)
                self._sent = False
                self._owed = True

    def unshield(self) -> None:
        """The work's thread leaves the library: an interrupt owed is raised now."""
        with self._lock:
            self._shields -= 1
            owed = self._owed and not self._shields
            if owed:
                self._owed = False
        if owed:
            raise Interrupted

    @property
    def interrupt_owed(self) -> bool:
        """An interrupt waits for the thread to leave the library (read without the lock)."""
        return self._owed

    def wait_woken_by(self, waker: Callable[[], object] | None) -> bool:
        """Inside a shielded wait: ``waker`` is called if an interrupt comes meanwhile (on
        the interrupting thread); None when the wait ends. False if the attempt is
        interrupted already, and its thread must not wait."""
        with self._lock:
            self._waker = waker
            return not (waker is not None and self._owed)

    # -- coroutines ------------------------------------------------------------------------

    def running_as_coroutine(self, cancel: Callable[[], object] | None) -> bool:
        """The work runs as a coroutine that ``cancel`` cancels (None: it ended).

        False if the attempt was interrupted before its work started: do not start it.
        """
        with self._lock:
            if cancel is not None and self._interrupted:
                return False
            self._cancel_async = cancel
            return True

    # -- the interrupting thread (a timeout, a cancel, a stop) -----------------------------

    def interrupt(self) -> None:
        """Stop the work where Python can: cancel the coroutine, or raise in the thread
        (outside library calls; see the class). Work that has not started never starts.
        """
        self.cancelled.set()  # what cooperative code (and a deferred interrupt) reads
        with self._lock:
            self._interrupted = True
            if self._cancel_async is not None:
                self._cancel_async()
            thread = self._thread
            # Never in the calling thread: a task that stops its own manager must get to
            # the end of stop().
            if thread is None or thread == threading.get_ident() or not self.interrupts_threads:
                return
            if self._shields:
                self._owed = True
                if self._waker is not None:
                    self._waker()
            elif not self._sent:
                # The thread checks for it between bytecodes; a thread blocked in C code
                # (sleep, I/O) sees it when that call returns.
                self._sent = True
                _async_exc()[0](thread, Interrupted)
