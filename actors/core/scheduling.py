"""The scheduler actor's own state: the dependency graph, the ready queues and the slots.

Plain objects with no locks: only the scheduler actor touches them, one message at a
time. Finishing a task wakes only its dependents; starting an attempt costs O(log n)
plus one look at each executor.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from actors.core.attempt import Attempt
from actors.core.limits import Gate
from actors.core.store import TaskStore
from actors.core.task import TERMINAL, Task, TaskStatus

__all__ = ["DependencyGraph", "ExecutorSlot", "ReadyQueues", "Slots"]

_PENDING = TaskStatus.PENDING  # a global, not an enum lookup: see actors.core.store._PENDING


class ExecutorSlot(Protocol):
    """An executor as the scheduler sees it: a name, a capacity, a way to start attempts."""

    @property
    def name(self) -> str: ...

    @property
    def capacity(self) -> int: ...

    def launch(self, attempt: Attempt) -> None:
        """Start the attempt on the executor; never blocks. RuntimeError if it is closed."""


class Slots:
    """Which attempts hold a slot, per executor and in all.

    The scheduler actor's own: read and written by it only (metrics count from the
    store's live attempts instead).
    """

    __slots__ = ("_held", "_waiting", "busy", "busy_total", "max_concurrent")

    def __init__(self, max_concurrent: int) -> None:
        self.max_concurrent = max_concurrent
        self._held: set[Attempt] = set()
        self._waiting: set[Attempt] = set()  # running, but waiting for other tasks: no slot
        self.busy: dict[str, int] = {}
        """Attempts holding a slot, per executor name (read by ReadyQueues.next_ready)."""
        self.busy_total = 0

    def reset(self, held: list[Attempt]) -> None:
        """Start over from the store's attempts still holding a slot (a restarted scheduler)."""
        self._held = set(held)
        self.busy = {}
        for attempt in held:
            self.busy[attempt.executor] = self.busy.get(attempt.executor, 0) + 1
        self.busy_total = len(held)

    def take(self, attempt: Attempt) -> None:
        self._held.add(attempt)
        self.busy[attempt.executor] = self.busy.get(attempt.executor, 0) + 1
        self.busy_total += 1

    def wait(self, attempt: Attempt, waiting: bool) -> None:
        """The attempt waits for other tasks (its slot is free meanwhile), or resumes (it
        takes a slot again, past the limit if need be: it is running already)."""
        if waiting:
            if self.give_back(attempt):
                self._waiting.add(attempt)
        elif attempt in self._waiting:
            self._waiting.remove(attempt)
            self.take(attempt)

    def give_back(self, attempt: Attempt) -> bool:
        """The attempt's work returned; False if it held no slot here (already given back,
        or taken before this scheduler's rebuild and given back before it)."""
        try:
            self._held.remove(attempt)
        except KeyError:
            self._waiting.discard(attempt)
            return False
        self.busy[attempt.executor] -= 1
        self.busy_total -= 1
        return True


class ReadyQueues:
    """Tasks ready to run, one heap per executor by (priority, registration order).

    A task with a limit key or resources goes through the gate (``gate``, set by the
    scheduler), which puts one representative of each key with room in these heaps.
    """

    __slots__ = ("gate", "heaps")

    def __init__(self) -> None:
        # (priority, seq, task_id), or a gate's (priority, turn, task_id, number)
        self.heaps: dict[str, list[Any]] = {}
        self.gate: Gate | None = None

    def push(self, store: TaskStore, task_id: str) -> None:
        found = store.task_and_place(task_id)
        if found is None:
            return  # ended and forgotten in the meantime
        task, item, _retry_pending = found
        self.put(task, item)

    def add(self, executor: str, item: tuple[int, int, str]) -> None:
        """Queue ``item`` (from ``store.task_and_place``) on ``executor``'s heap."""
        heapq.heappush(self.heaps.setdefault(executor, []), item)

    def put(self, task: Task, item: tuple[int, int, str]) -> None:
        """Queue a ready ``task`` (``item`` from ``store.task_and_place``): on its
        executor's heap, or through the gate if it has a limit key or resources."""
        if task.limit_key is None and not task.resources:
            heapq.heappush(self.heaps.setdefault(task.executor, []), item)
        elif self.gate is not None:
            self.gate.add(task, task.executor, item)

    def clear(self) -> None:
        self.heaps.clear()

    def next_ready(
        self, slots: Slots, executors: Mapping[str, ExecutorSlot], refused: set[str] | None
    ) -> tuple[ExecutorSlot, Any] | None:
        """Take the best ready item, across executors, on one that has a slot free; None
        if there is none. The caller checks the overall limit first and begins the
        attempt (``store.begin_attempt``); ``refused``: executors to pass over.

        A plain call, not a generator: the scheduler makes it once per attempt it starts,
        and usually stops after one (a finished attempt frees one slot).
        """
        best: Any = None
        best_executor: ExecutorSlot | None = None
        busy = slots.busy
        for name, heap in self.heaps.items():
            if not heap or (refused is not None and name in refused):
                continue
            executor = executors.get(name)
            if executor is None or busy.get(name, 0) >= executor.capacity:
                continue
            if best is None or heap[0] < best:
                best, best_executor = heap[0], executor
        if best is None or best_executor is None:
            return None
        heapq.heappop(self.heaps[best_executor.name])
        return best_executor, best


class DependencyGraph:
    """Reverse edges and unmet counts: finishing a task wakes only its dependents."""

    def __init__(
        self,
        store: TaskStore,
        ready: ReadyQueues,
        arm_retry: Callable[[str], None],
        arm_delay: Callable[[str, float], None],
        disarm_delay: Callable[[str], None],
    ) -> None:
        self.store = store
        self.ready = ready
        self.arm_retry = arm_retry
        self.arm_delay = arm_delay
        self.disarm_delay = disarm_delay
        self._unmet: dict[str, int] = {}
        self._dependents: dict[str, list[str]] = {}

    def clear(self) -> None:
        self._unmet.clear()
        self._dependents.clear()

    def register(self, task_id: str) -> None:
        """Take a registered task into the graph: ready now, waiting, or failed."""
        # A task may be registered twice (a notice handled after a rebuild that saw it
        # already). Waiting: it is in _unmet, skip it. Otherwise every step is
        # conditional: a second push of a ready task finds it started (begin_attempt
        # refuses), a second settle finds nothing left to wake or fail.
        if task_id in self._unmet:
            return
        store = self.store
        found = store.task_and_place(task_id)
        if found is None:
            return  # ended and forgotten before we heard of it: nothing waits on it
        task, item, retry_pending = found
        if not task.dependencies and task.status is _PENDING:
            # Most tasks: no dependency, registered PENDING. Unless a retry waits (a
            # rebuild may see one), straight onto its executor's queue.
            if not retry_pending:
                self.ready.put(task, item)
            else:
                self.settled(task_id)
            return
        if task.status in TERMINAL or (
            task.status is TaskStatus.PENDING and store.retry_at(task_id) is not None
        ):
            self.settled(task_id)
            return
        if task.status is TaskStatus.RUNNING:
            return  # its attempt reports back when it ends
        unmet = 0
        delay = store.delay_left(task_id)
        if delay is not None:
            unmet += 1  # the delay counts as one more unmet dependency (delay_over)
        for dependency in task.dependencies:
            status = store.status(dependency)
            if status is TaskStatus.COMPLETED:
                continue
            if status in TERMINAL:
                if store.fail_dependency(task_id, dependency):
                    self.settled(task_id)
                return
            unmet += 1
            self._dependents.setdefault(dependency, []).append(task_id)
        if delay is not None:
            self.arm_delay(task_id, delay)
        if unmet:
            self._unmet[task_id] = unmet
        elif task.status is TaskStatus.PENDING or store.mark_ready(task_id):
            # (PENDING already, as a task with no dependency is registered: no lock.)
            self.ready.push(store, task_id)

    def delay_over(self, task_id: str) -> None:
        """A delayed task's ``not_before`` came (the store says so): one unmet less."""
        self._one_less(task_id)

    def _one_less(self, task_id: str) -> None:
        """One unmet need of a waiting task is met: ready once none is left."""
        left = self._unmet.get(task_id)
        if left is None:
            return
        if left > 1:
            self._unmet[task_id] = left - 1
            return
        del self._unmet[task_id]
        if self.store.mark_ready(task_id):
            self.ready.push(self.store, task_id)

    def settled(self, task_id: str) -> None:
        """React to a task that left RUNNING, WAITING or PENDING in the store."""
        store = self.store
        stack = [task_id]
        while stack:
            current = stack.pop()
            status = store.status(current)
            if status is None:  # forgotten: it finished, and so did all that needed it
                if self._unmet.pop(current, None) is not None:
                    self.disarm_delay(current)  # (a delayed task ended while it waited)
                self._dependents.pop(current, None)
                continue
            if status is TaskStatus.PENDING:
                if store.retry_at(current) is None:
                    self.ready.push(store, current)
                else:
                    self.arm_retry(current)
                continue
            if status not in TERMINAL:
                continue
            if self._unmet.pop(current, None) is not None:
                self.disarm_delay(current)  # (a delayed task ended while it waited)
            dependents = self._dependents.pop(current, ())
            if status is TaskStatus.COMPLETED:
                for dependent in dependents:
                    self._one_less(dependent)
            else:
                for dependent in dependents:
                    if store.fail_dependency(dependent, current):
                        stack.append(dependent)
