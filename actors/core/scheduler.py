"""The scheduler actor: the one owner of the dependency graph, the ready queues and the slots.

Hosted inline (see :mod:`actors.runtime.inline`), it never waits for a thread or loop the
application may block. It keeps only state derived from the task store and rebuilds it
from the store when it starts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pykka

from actors.core import messages
from actors.core.events import EventBus, Subscription
from actors.core.faults import FaultPoints
from actors.core.limits import Gate, LimitTable
from actors.core.protocol import (
    Address,
    DelayDue,
    Finished,
    LimitsDue,
    Notice,
    Notices,
    Registered,
    RetryDue,
    Settled,
    Waiting,
    Wake,
)
from actors.core.scheduling import DependencyGraph, ExecutorSlot, ReadyQueues, Slots
from actors.core.store import TaskStore
from actors.runtime.hosted import Dispatcher, HostedActor
from supervision import TimerHandle, TimerService
from supervision._validate import MAX_SECONDS

__all__ = ["SchedulerActor"]


class SchedulerActor(HostedActor):
    """Decides which task runs next and where.

    Accepts the requests of :mod:`actors.messages` (SubmitTask, CancelTask, GetTask,
    GetStatus, Start, Pause, Subscribe, Unsubscribe) and the task system's own messages
    (:mod:`actors.core.protocol`: a task registered, settled, an attempt finished, a retry
    due). Its hooks run on the thread that runs its slice (see the module docstring),
    one message at a time.
    """

    throughput = 512

    def __init__(
        self,
        dispatcher: Dispatcher,
        store: TaskStore,
        events: EventBus,
        address: Address,
        notices: Notices,
        max_concurrent: int,
        executors: Mapping[str, ExecutorSlot],
        timer: TimerService,
        submit: Callable[[messages.SubmitTask], str],
        cancel: Callable[[str], bool],
        faults: FaultPoints,
        limits: LimitTable,
    ) -> None:
        super().__init__()
        self._dispatcher = dispatcher
        self.store = store
        self.events = events
        self.address = address
        self.notices = notices
        self.executors = executors  # the system's table (it adds executors, then wakes us)
        self.timer = timer
        self._submit = submit
        self._cancel = cancel
        self.faults = faults
        self.slots = Slots(max_concurrent)
        self.ready = ReadyQueues()
        self.limits = limits
        self.gate = self.ready.gate = Gate(limits, self.ready.heaps, store.now, self._arm_limits)
        self.graph = DependencyGraph(
            store, self.ready, self._arm_retry, self._arm_delay, self._disarm_delay
        )
        self._delays: dict[str, TimerHandle] = {}  # delayed tasks' timers, by task id
        self._limit_timers: list[TimerHandle] = []  # rechecks armed for rate limits

    def on_start(self) -> None:
        store = self.store
        with store.locked():
            # From here on every registration and every finished attempt is told to us,
            # so whatever the copy below misses arrives in our mailbox.
            self.address.ref = self.actor_ref
            self.address.signal = self._mailbox.signal  # HostedActor.signal, one call less
            unfinished, held = store.rebuild_view()
        self.slots.reset(held)
        self.gate.reset(held)
        self.limits.gate = self.gate
        for task_id in unfinished:
            self.graph.register(task_id)
        self._handle(self.notices.take())  # what the last incarnation left unread
        self._dispatch()

    def on_receive(self, message: Any) -> Any:
        if self.faults.armed:
            self.faults.hit("scheduler.receive")
        if isinstance(message, Wake):
            return None
        return self._request(message)

    def _handle(self, notices: list[Notice]) -> None:
        graph, slots, store = self.graph, self.slots, self.store
        for notice in notices:
            if isinstance(notice, Finished):
                slots.give_back(notice.attempt)
                if self.gate.held:  # (counted from start to end, waiting or not)
                    self.gate.finished(notice.attempt)
                if notice.settle:
                    graph.settled(notice.attempt.task_id)
            elif isinstance(notice, Registered):
                graph.register(notice.task_id)
            elif isinstance(notice, Settled):
                graph.settled(notice.task_id)
            elif isinstance(notice, Waiting):
                slots.wait(notice.attempt, notice.waiting)
            elif isinstance(notice, DelayDue):
                self._delay_due(notice.task_id)
            elif isinstance(notice, LimitsDue):
                self.gate.due()
            elif store.retry_ready(notice.task_id, notice.attempt):
                self.ready.push(store, notice.task_id)

    def on_signal(self) -> None:
        # The hot path: notices queued by other threads, past pykka's message routing.
        faults = self.faults
        if faults.armed:
            faults.hit("scheduler.receive")
        notices = self.notices.take()
        if notices and faults.armed:
            # The worst moment: the notices are out of their queue and not yet handled
            # (a restarted scheduler recovers them from the store).
            faults.hit("scheduler.notices")
        self._handle(notices)
        if self._mailbox.empty():
            self._dispatch()

    def _handle_receive(self, message: Any) -> Any:
        # Every message, pykka's own too (a proxy's ask), may be the last of a burst:
        # look at the ready queues once the mailbox is empty, not once per message.
        try:
            return super()._handle_receive(message)
        finally:
            if self._mailbox.empty():
                self._dispatch()

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
            return None
        if isinstance(message, messages.Pause):
            store.dispatching = False
            return None
        if isinstance(message, messages.Subscribe):
            if not isinstance(message.subscriber, pykka.ActorRef):
                raise TypeError(f"Subscribe takes an ActorRef, got {message.subscriber!r}")
            if message.task_ids is not None and not isinstance(message.task_ids, frozenset):
                raise TypeError(f"Subscribe.task_ids must be a frozenset, got {message.task_ids!r}")
            self.events.subscribe(Subscription(message.subscriber, message.task_ids))
            return None
        if isinstance(message, messages.Unsubscribe):
            self.events.unsubscribe(message.subscriber)
            return None
        raise TypeError(f"the scheduler does not understand {message!r}")

    # -- starting attempts ------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Start ready attempts while slots are free (never blocks: launching hands over)."""
        store = self.store
        if not store.dispatching:
            return
        slots, ready, executors = self.slots, self.ready, self.executors
        refused: set[str] | None = None
        while slots.busy_total < slots.max_concurrent:
            taken = ready.next_ready(slots, executors, refused)
            if taken is None:
                return
            executor, item = taken
            group = None
            if len(item) == 4:  # a limit key's representative: the gate decides
                admitted = self.gate.admit(item, executor.name)
                if admitted is None:
                    continue  # its key has no room now: held back, holding no slot
                group, item = admitted
            attempt = store.begin_attempt(item[2])
            if attempt is None:
                if group is not None:
                    self.gate.skipped(group)
                continue  # cancelled while it waited in the queue
            slots.take(attempt)
            if group is not None:
                self.gate.started(group, attempt)
            store.announce(attempt)
            try:
                executor.launch(attempt)
            except RuntimeError:
                # The executor is shut down (the system is stopping, or the loop it ran
                # on was closed): put the attempt back, go on with the other executors.
                slots.give_back(attempt)
                store.undo_attempt(attempt)
                if group is not None:
                    self.gate.undo(group, attempt, executor.name, item)
                else:
                    ready.add(executor.name, item)  # back in the queue
                if refused is None:
                    refused = set()
                refused.add(executor.name)

    def on_stop(self) -> None:
        for handle in self._delays.values():
            handle.cancel()  # (a new scheduler arms them again: rebuilt from the store)
        self._delays.clear()
        for handle in self._limit_timers:
            handle.cancel()
        self._limit_timers.clear()

    def _arm_delay(self, task_id: str, seconds: float) -> None:
        """Tell us ``DelayDue`` once a delayed task's ``not_before`` comes (the timer's
        longest wait at most: then we look again)."""
        old = self._delays.pop(task_id, None)
        if old is not None:
            old.cancel()
        notices, due = self.notices, DelayDue(task_id)
        self._delays[task_id] = self.timer.call_later(
            min(max(0.0, seconds), MAX_SECONDS), lambda: notices.post(due)
        )

    def _disarm_delay(self, task_id: str) -> None:
        handle = self._delays.pop(task_id, None)
        if handle is not None:
            handle.cancel()

    def _delay_due(self, task_id: str) -> None:
        self._delays.pop(task_id, None)
        left = self.store.delay_left(task_id)
        if left is None:
            return  # cancelled meanwhile, or told twice
        if left > 0:  # the wall clock went back, or the wait was capped
            self._arm_delay(task_id, left)
        elif self.store.delay_over(task_id):
            self.graph.delay_over(task_id)

    def _arm_limits(self, delay: float) -> None:
        notices = self.notices
        # Delivered to whichever scheduler runs then (a LimitsDue is harmless to any).
        # (Capped: a rate of one a century waits in steps; each LimitsDue looks again.)
        handle = self.timer.call_later(min(delay, MAX_SECONDS), lambda: notices.post(LimitsDue()))
        self._limit_timers = [h for h in self._limit_timers if not h.fired] + [handle]

    def _arm_retry(self, task_id: str) -> None:
        retry_at = self.store.retry_at(task_id)
        task = self.store.task(task_id)
        if retry_at is None or task is None:
            return  # its retry is no longer pending
        attempt = task.attempt
        delay = max(0.0, retry_at - self.store.now())
        notices, due = self.notices, RetryDue(task_id, attempt)
        # Delivered to whichever scheduler runs then; one that starts later re-arms it.
        self.timer.call_later(delay, lambda: notices.post(due))
