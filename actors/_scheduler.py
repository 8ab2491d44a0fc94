"""The scheduler actor: dependency graph, ready queues by priority, concurrency slots.

It keeps only indices derived from the task store (reverse edges, unmet counts, one
ready heap per executor, retry timers), and rebuilds them from the store when it
starts, so a restarted scheduler loses no task. Finishing a task wakes only its
dependents; each start of an attempt costs O(log n) plus one look at each executor.
"""

from __future__ import annotations

import contextlib
import heapq
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pykka

from actors import messages
from actors._faults import faults
from actors._protocol import (
    Address,
    Drain,
    Notice,
    Notices,
    Registered,
    RetryDue,
    Wake,
)
from actors._store import Attempt, Subscription, TaskStore
from actors._task import TERMINAL, TaskStatus
from supervision import TimerService

__all__ = ["DependencyGraph", "ExecutorEntry", "ReadyQueue", "SchedulerActor"]


@dataclass(frozen=True, slots=True)
class ExecutorEntry:
    """An executor as the scheduler sees it: its capacity, and how to start an attempt on it.

    ``launch(attempt, continuation)`` starts a task actor for the attempt on the
    executor's threads or loop; it never blocks. ``continuation``: the caller is a
    finishing attempt about to free its thread, which may run the new one itself.
    """

    name: str
    capacity: int
    launch: Callable[[Attempt, bool], None]


class SchedulerActor(pykka.ThreadingActor):
    """Decides which task runs next and where. All methods run on its own thread.

    Accepts the requests of :mod:`actors.messages` (SubmitTask, CancelTask, GetTask,
    GetStatus, Start, Pause, Subscribe, Unsubscribe) and the task system's internal
    notices (a task registered, settled, an attempt returned, a retry due).
    """

    use_daemon_thread = True

    def __init__(
        self,
        store: TaskStore,
        address: Address,
        notices: Notices,
        executors: Mapping[str, ExecutorEntry],
        graph: DependencyGraph,
        ready: ReadyQueue,
        timer: TimerService,
        submit: Callable[[messages.SubmitTask], str],
        cancel: Callable[[str], bool],
    ) -> None:
        super().__init__()
        self.store = store
        self.address = address
        self.notices = notices
        self.executors = executors  # the system's live table: executors may be added
        self.timer = timer
        self._submit = submit
        self._cancel = cancel
        self.graph = graph
        self.ready = ready

    def on_start(self) -> None:
        store = self.store
        with self.graph.rebuilding():
            with store.locked():
                # From here on every registration is followed by a notice to us, so
                # whatever the copy below misses arrives in our inbox.
                self.address.ref = self.actor_ref
                self.ready.clear()
                unfinished = [task.task_id for task, _seq, _retry in store.rebuild_view()]
            for task_id in unfinished:
                self.graph.register(task_id)
        self._handle_notices(self.notices.take())  # what the last incarnation left
        self._dispatch()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Drain):
            self._handle_notices(self.notices.take())
            self._dispatch()
        elif isinstance(message, RetryDue):
            self._retry_due(message)
        elif isinstance(message, Wake):
            self._dispatch()
        else:
            return self._request(message)
        return None

    def _handle_notices(self, notices: list[Notice]) -> None:
        graph = self.graph
        if notices:
            # The worst moment: the notices are out of their queue and not yet handled.
            faults.hit("scheduler.notices")
        for notice in notices:
            if isinstance(notice, Registered):
                graph.register(notice.task_id)
            else:
                graph.settled(notice.task_id)

    # -- the public protocol ----------------------------------------------------------------

    def _request(self, message: Any) -> Any:
        store = self.store
        if isinstance(message, messages.SubmitTask):
            return self._submit(message)
        if isinstance(message, messages.CancelTask):
            return self._cancel(message.task_id)
        if isinstance(message, messages.GetTask):
            return store.snapshot(message.task_id)
        if isinstance(message, messages.GetStatus):
            return store.status(message.task_id)
        if isinstance(message, messages.Start):
            store.dispatching = True
            self._dispatch()
            return None
        if isinstance(message, messages.Pause):
            store.dispatching = False
            return None
        if isinstance(message, messages.Subscribe):
            if not isinstance(message.subscriber, pykka.ActorRef):
                raise TypeError(f"Subscribe takes an ActorRef, got {message.subscriber!r}")
            if message.task_ids is not None and not isinstance(message.task_ids, frozenset):
                raise TypeError(f"Subscribe.task_ids must be a frozenset, got {message.task_ids!r}")
            store.subscribe(Subscription(message.subscriber, message.task_ids))
            return None
        if isinstance(message, messages.Unsubscribe):
            store.unsubscribe(message.subscriber)
            return None
        raise TypeError(f"the scheduler does not understand {message!r}")

    def _retry_due(self, message: RetryDue) -> None:
        if self.store.retry_ready(message.task_id, message.attempt):
            self.ready.push(message.task_id)
            self._dispatch()

    # -- ready queues and slots -------------------------------------------------------------

    def _dispatch(self) -> None:
        self.ready.dispatch()


class ReadyQueue:
    """Tasks ready to run, one heap per executor by (priority, registration order).

    Shared by the scheduler (which pushes the tasks it finds ready) and the threads that
    finish attempts: a thread that frees a slot starts the next ready task itself, so
    independent tasks never wait for the scheduler's thread. Lives outside the scheduler
    actor; a restarted scheduler clears and refills it from the store. Thread-safe.
    """

    def __init__(self, store: TaskStore, executors: Mapping[str, ExecutorEntry]) -> None:
        self.store = store
        self.executors = executors
        self._heaps: dict[str, list[tuple[int, int, str]]] = {}
        self._lock = threading.Lock()
        self._again = False  # a dispatch found the lock taken: the holder goes again

    def push(self, task_id: str) -> None:
        task = self.store.task(task_id)
        item = (-task.priority, self.store.seq(task_id), task_id)
        with self._lock:
            heapq.heappush(self._heaps.setdefault(task.executor, []), item)

    def clear(self) -> None:
        with self._lock:
            self._heaps.clear()

    def dispatch(self, continuation: bool = False) -> None:
        """Start ready tasks while slots are free (on the calling thread; never blocks).

        ``continuation``: called by an attempt that has just finished on a pool thread;
        the first task started may run next on that thread instead of waking another.

        Many threads call this, each time an attempt ends. None of them waits for the
        lock: a thread that finds it taken leaves a note, and the holder dispatches again
        for it before it leaves. Waiting would be worse than useless under the GIL: the
        woken waiter owns the lock but not the GIL, the GIL's holder then blocks on the
        lock, and the threads fall into a convoy of one context switch per attempt.
        """
        store = self.store
        if not store.dispatching:
            return
        lock = self._lock
        while True:
            if not lock.acquire(blocking=False):
                self._again = True
                # The holder may have released it between our try and the note; if so,
                # nobody would read the note: try once more.
                if not lock.acquire(blocking=False):
                    return
            try:
                self._again = False
                started = self._take_ready()
            finally:
                lock.release()
            for executor, attempt, item in started:
                store.announce(attempt)
                try:
                    executor.launch(attempt, continuation)
                    continuation = False
                except RuntimeError:
                    # The executor is shut down (the system is stopping): put it back.
                    store.undo_attempt(attempt)
                    with lock:
                        heapq.heappush(self._heaps[executor.name], item)
            if not self._again:
                return

    def _take_ready(self) -> list[tuple[ExecutorEntry, Attempt, tuple[int, int, str]]]:
        """Under the lock: begin the best ready attempts while slots are free."""
        store = self.store
        started: list[tuple[ExecutorEntry, Attempt, tuple[int, int, str]]] = []
        while store.busy() < store.max_concurrent:
            best: tuple[int, int, str] | None = None
            best_executor: ExecutorEntry | None = None
            for name, heap in self._heaps.items():
                if not heap:
                    continue
                executor = self.executors.get(name)
                if executor is None or not store.has_slot(name, executor.capacity):
                    continue
                if best is None or heap[0] < best:
                    best, best_executor = heap[0], executor
            if best is None or best_executor is None:
                break
            heapq.heappop(self._heaps[best_executor.name])
            attempt = store.begin_attempt(best[2])
            if attempt is not None:  # None: cancelled while it waited in the queue
                started.append((best_executor, attempt, best))
        return started


class DependencyGraph:
    """Reverse edges and unmet counts: finishing a task wakes only its dependents.

    Owned by the scheduler actor, which fills it from the store when it starts (so a
    restarted scheduler loses nothing) and feeds it registrations; a finishing attempt
    settles its task here on its own thread, so a dependent can start without a round
    trip through the scheduler's thread. Thread-safe (one lock, taken before the ready
    queue's and the store's).
    """

    def __init__(
        self, store: TaskStore, ready: ReadyQueue, address: Address, timer: TimerService
    ) -> None:
        self.store = store
        self.ready = ready
        self.address = address
        self.timer = timer
        self._lock = threading.RLock()
        self._unmet: dict[str, int] = {}
        self._dependents: dict[str, list[str]] = {}

    @contextlib.contextmanager
    def rebuilding(self) -> Iterator[None]:
        """Hold the graph, emptied, while the caller registers every unfinished task."""
        with self._lock:
            self._unmet.clear()
            self._dependents.clear()
            yield

    def register(self, task_id: str) -> None:
        """Take a registered task into the graph: ready now, waiting, or failed."""
        with self._lock:
            self._register(task_id)

    def _register(self, task_id: str) -> None:
        # A task may be registered twice (a notice drained after a rebuild that saw it
        # already). Waiting: it is in _unmet, skip it. Otherwise every step is
        # conditional: a second push of a ready task finds it started (begin_attempt
        # refuses), a second settle finds nothing left to wake or fail.
        if task_id in self._unmet:
            return
        store = self.store
        task = store.task(task_id)
        if task.status in TERMINAL or (
            task.status is TaskStatus.PENDING and store.retry_at(task_id) is not None
        ):
            self._settled(task_id)
            return
        if task.status is TaskStatus.RUNNING:
            return  # its attempt reports back when it ends
        unmet = 0
        for dependency in task.dependencies:
            status = store.status(dependency)
            if status is TaskStatus.COMPLETED:
                continue
            if status in TERMINAL:
                if store.fail_dependency(task_id, dependency):
                    self._settled(task_id)
                return
            unmet += 1
            self._dependents.setdefault(dependency, []).append(task_id)
        if unmet:
            self._unmet[task_id] = unmet
        elif store.mark_ready(task_id):
            self.ready.push(task_id)

    def settled(self, task_id: str) -> None:
        """React to a task that left RUNNING, WAITING or PENDING in the store."""
        with self._lock:
            self._settled(task_id)

    def _settled(self, task_id: str) -> None:
        store = self.store
        stack = [task_id]
        while stack:
            current = stack.pop()
            status = store.status(current)
            if status is TaskStatus.PENDING:
                self._arm_retry(current)
                continue
            if status not in TERMINAL:
                continue
            self._unmet.pop(current, None)
            dependents = self._dependents.pop(current, ())
            if status is TaskStatus.COMPLETED:
                for dependent in dependents:
                    left = self._unmet.get(dependent)
                    if left is None:
                        continue
                    if left > 1:
                        self._unmet[dependent] = left - 1
                        continue
                    del self._unmet[dependent]
                    if store.mark_ready(dependent):
                        self.ready.push(dependent)
            else:
                for dependent in dependents:
                    if store.fail_dependency(dependent, current):
                        stack.append(dependent)

    def _arm_retry(self, task_id: str) -> None:
        retry_at = self.store.retry_at(task_id)
        if retry_at is None:
            self.ready.push(task_id)
            return
        attempt = self.store.task(task_id).attempt
        delay = max(0.0, retry_at - self.store.now())
        address, due = self.address, RetryDue(task_id, attempt)
        # Delivered to whichever scheduler runs then; one that starts later re-arms it.
        self.timer.call_later(delay, lambda: address.tell(due))
