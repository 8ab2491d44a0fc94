"""Executors: where tasks run and how many at once. ``Executor`` is the extension point.

An executor names a dispatcher that hosts its task actors and a ``capacity``; in an
ActorSystem one executor actor owns it, opening the backend in ``on_start`` and closing
it in ``on_stop``.
"""

from __future__ import annotations

import abc
import concurrent.futures
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from actors.core.call import Call, Done, ProgressSink, future_of
from actors.errors import TaskExecutionError
from actors.runtime.hosted import Dispatcher

__all__ = ["MAX_WORKERS", "Executor"]

_numbers = iter(range(1, 1 << 62))

MAX_WORKERS = 1024
"""The most threads or processes a pool may have: each costs a stack or a whole process,
and 100,000 of them take the machine down before they do any work."""


class Executor(abc.ABC):
    """Where tasks run and how many at once. Give one to ``register_task(executor_type=...)``
    or to ``ActorSystem(executors=[...])``.

    A subclass sets ``kind``, and implements ``capacity`` and ``create_dispatcher()``.
    Sync functions run on the dispatcher's threads; coroutine functions run on the
    system's event loop, unless the dispatcher is an :class:`AsyncioDispatcher` (then on
    it). ``open()`` and ``close()`` may be extended to start and stop more than the
    dispatcher (call ``super()``).

    An executor serves one ActorSystem: its executor actor opens it when the system
    starts (or when the executor is added to a running system) and closes it when the
    system shuts down; a closed executor cannot be opened again.
    """

    kind: ClassVar[str]
    runs_elsewhere: ClassVar[bool] = False
    """True for an executor whose attempts run outside this process (see ``submit``)."""
    enforces_timeouts: ClassVar[bool] = False
    """True for a ``runs_elsewhere`` executor that times its attempts itself, from the
    moment a worker starts each one (``Call.timeout``), and ends the future with
    ``WorkerTimedOut`` then. Only such an executor may take attempts ahead of its
    capacity (``max_in_flight``): one waiting in the backend has not started, and its
    timeout must not run yet."""

    interrupts_threads: bool = True
    """Whether a timeout or a cancel raises in the thread running a sync attempt
    (``Interrupted``, never inside a library call); False: the work is left to see
    ``current_task().cancelled`` and return on its own (cooperative cancellation)."""

    prefetch: int = 0
    """How many attempts per unit of capacity it keeps queued in its backend, ahead of a
    free worker (see ``max_in_flight``); 0 for executors that do not prefetch."""

    ends_attempts_where_learned: ClassVar[bool] = True
    """For a ``runs_elsewhere`` executor: the task actor records an attempt's end on the
    thread that learned it (the backend's), not on the executor's dispatcher. False for
    a backend whose thread is busy with more than our results (a Dask client's loop)."""

    def __init__(self, name: str | None = None) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"executor name must be a non-empty string, got {name!r}")
        self.name = name or f"{self.kind}-{next(_numbers)}"
        self._lock = threading.Lock()
        self._dispatcher: Dispatcher | None = None
        self._closed = False
        self._owner: weakref.ref[object] | None = None
        self._owner_name = ""
        self._wake: Callable[[], object] | None = None  # set by the executor's actor

    # -- the extension point ----------------------------------------------------------------

    @property
    @abc.abstractmethod
    def capacity(self) -> int:
        """How many attempts may run on this executor at the same time (read at every
        dispatch: an executor whose capacity changes may return a new value)."""

    @property
    def abandoned(self) -> int:
        """Threads of the backend still running work whose attempt ended (a timeout) and
        whose slot the manager gave back: an executor that runs elsewhere counts them
        here (and leaves them out of ``capacity``). 0 by default."""
        return 0

    @property
    def max_in_flight(self) -> int:
        """How many attempts the scheduler may hand this executor at once: ``capacity``,
        and ``prefetch`` more per unit of it that it keeps queued in its backend."""
        return self.capacity * (1 + self.prefetch)

    @abc.abstractmethod
    def create_dispatcher(self) -> Dispatcher:
        """The threads or loop that host this executor's task actors; called by ``open``."""

    def open(self) -> None:
        """Start the backend (idempotent). Called on the executor actor's thread.

        Raises:
            RuntimeError: the executor was closed.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError(f"executor {self.name} was shut down")
            if self._dispatcher is None:
                self._dispatcher = self.create_dispatcher()

    def close(self, *, wait: bool = True) -> None:
        """Stop the backend (idempotent): queued work is dropped, running work finishes;
        ``wait``: return once its threads have ended. Called on the executor actor's
        thread, or by the system's shutdown."""
        with self._lock:
            self._closed = True
            dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None:
            dispatcher.shutdown(wait=wait)

    @property
    def closed(self) -> bool:
        return self._closed

    def capacity_changed(self) -> None:
        """Tell the scheduler that ``capacity`` changed (an executor whose capacity follows
        a cluster calls it, from any thread): it looks for work to start. Does nothing
        before the executor's actor has opened it."""
        wake = self._wake
        if wake is not None:
            wake()

    # -- executors whose attempts run elsewhere (runs_elsewhere = True) -----------------------

    @classmethod  # noqa: B027 - a hook: no check unless an executor needs one
    def check_call(
        cls, func: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any] | None
    ) -> None:
        """Refuse, at registration, work this executor cannot run (TypeError naming the
        part): a process executor's work must pickle. Accepts everything by default."""

    def submit(self, call: Call, report: ProgressSink) -> concurrent.futures.Future[Any]:
        """Start one attempt elsewhere; a future of its result (its exception if it
        failed). Only for ``runs_elsewhere`` executors; called on a thread of this
        executor's dispatcher, must not wait for the work.

        Cancelling the future (a timeout, a cancel) must stop the work if the backend
        can, and let go of it at once either way. ``report(task_id, attempt, fraction,
        message)`` is where the work's ``current_task().report_progress`` must arrive.
        An executor that implements ``_start_call`` instead has this from it.
        """
        if type(self)._start_call is Executor._start_call:
            raise NotImplementedError(f"{type(self).__name__} runs its attempts in this process")
        return future_of(self._start_call, call, report)

    def _start_call(self, call: Call, report: ProgressSink, done: Done) -> Callable[[], object]:
        """What a task actor calls: start one attempt (as ``submit``), tell its end to
        ``done`` (see actors.core.call.Done), and return what lets the work go (a timeout, a
        cancel: called at most once, under the attempt's lock, must not wait). By default
        through ``submit``'s future; the executors of this package settle ``done`` from
        their backend directly (one ``concurrent.futures.Future`` less per attempt)."""
        future = self.submit(call, report)

        def settled(future: concurrent.futures.Future[Any]) -> None:
            if future.cancelled():
                # Not by our let-go (that attempt has ended already): by the backend.
                done(None, _cancelled_by_backend(self, call))
                return
            error = future.exception()
            if error is not None:
                done(None, error)
            else:
                done(future.result(), None)

        future.add_done_callback(settled)
        return future.cancel

    # -- used by the system -------------------------------------------------------------------

    def _claim(self, system: object, system_name: str, *, check_only: bool = False) -> None:
        """Make ``system`` this executor's one owner; ValueError if another has it.

        An executor's threads or loop are started and shut down with one system: a
        second system would find it closed when the first stops, and its tasks would
        wait forever.
        """
        with self._lock:
            owner = None if self._owner is None else self._owner()
            if owner is system:
                return
            if self._closed or self._owner is not None:
                raise ValueError(
                    f"executor {self.name!r} belongs to actor system {self._owner_name!r}"
                    f"{' (shut down)' if self._closed else ''}; an executor serves one "
                    "system: make a new one for this system"
                )
            if not check_only:
                self._owner, self._owner_name = weakref.ref(system), system_name

    def _dispatcher_for(self, coroutine: bool) -> Dispatcher | None:
        """Where an attempt runs: our dispatcher, or None for a coroutine that must go to
        the system's loop. RuntimeError if the executor is not open."""
        dispatcher = self._dispatcher
        if dispatcher is None:
            raise RuntimeError(f"executor {self.name} is not open")
        if coroutine and not dispatcher.runs_a_loop:
            return None
        return dispatcher

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, capacity={self.capacity})"


def _cancelled_by_backend(executor: Executor, call: Call) -> Exception:
    return TaskExecutionError(
        f"task {call.task_name!r} ({call.task_id}): executor {executor.name!r} cancelled "
        f"its work (attempt {call.attempt})",
        call.task_id,
        {"attempt": call.attempt},
    )
