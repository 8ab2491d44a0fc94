"""Task events to the pages: one subscriber actor per dashboard, a batch per open page.

A page names the tasks it shows (``watch``) and the subscription asks the event bus for
those only: a manager running thousands of tasks a second tells the dashboard about the
fifty on screen, and makes no event at all for the others (docs/performance.md). A
stream without ``watch`` gets every event. The actor only adds each event to the batches
of the pages that watch its task, a task's newer progress in place of its older; a
page's stream is woken once per batch, and sends at most ten batches a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import pykka

from actors.core import messages
from actors.observe.event_log import event_record
from actors.runtime.hosted import HostedActor, ThreadPoolDispatcher

__all__ = ["Hub"]

_EVENTS = (
    messages.TaskStarted
    | messages.TaskProgress
    | messages.TaskRetrying
    | messages.TaskSucceeded
    | messages.TaskFailed
)


class _Stream:
    """One open page: the tasks it watches (None: all), its batch, how to wake it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, watch: frozenset[str] | None) -> None:
        self.loop = loop
        self.watch = watch
        self.batch: list[dict[str, Any]] = []
        self.last: dict[str, int] = {}  # task id -> where its latest record is in the batch
        self.wake = asyncio.Event()
        self.closed = False

    def add(self, task_id: str, record: dict[str, Any]) -> bool:
        """Put the record in the batch (True if the batch was empty). A progress report
        replaces the task's previous one if nothing of that task came after it: a task
        that reports a thousand times a second costs a page one line per batch (the
        order of a task's events stays as it was: test_dashboard.py guards both)."""
        batch = self.batch
        at = self.last.get(task_id)
        if at is not None and record["kind"] == "progress" and batch[at]["kind"] == "progress":
            batch[at] = record
            return False
        self.last[task_id] = len(batch)
        batch.append(record)
        return len(batch) == 1


class _Relay(HostedActor):
    """Hosted on a one-thread pool of its own: a tell appends to its mailbox and wakes
    the thread once per burst, not once per event as a ThreadingActor's queue does."""

    registered = False

    def __init__(self, hub: Hub) -> None:
        super().__init__()
        self.hub = hub

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _EVENTS):
            self.hub.publish(message.task_id, event_record(message))
            return None
        return super().on_receive(message)


class Hub:
    """The open pages of one dashboard and the subscription that feeds them.

    The subscriber starts with the first page and stops with the last (or ``close``):
    a dashboard nobody looks at costs the manager nothing.
    """

    def __init__(self, scheduler: Any) -> None:
        self._scheduler = scheduler  # () -> the scheduler's ref, None when there is none
        self._lock = threading.Lock()  # the streams and their batches
        self._subscribing = threading.Lock()  # one Subscribe at a time, the latest last
        self._streams: list[_Stream] = []
        self._relay: pykka.ActorRef[Any] | None = None
        self._dispatcher: ThreadPoolDispatcher | None = None
        self._closed = False

    def open(self, loop: asyncio.AbstractEventLoop, watch: frozenset[str] | None) -> _Stream:
        """A stream for a page (served on ``loop``) of the events of ``watch``; it waits
        for the scheduler: call it off the loop."""
        stream = _Stream(loop, watch)
        with self._lock:
            if self._closed:
                stream.closed = True
                return stream
            self._streams.append(stream)
            if self._relay is None:
                self._dispatcher = ThreadPoolDispatcher(1, name="dashboard-events")
                self._relay = _Relay.start_on(self._dispatcher, self)
        self._subscribe(wait=True)
        return stream

    def _subscribe(self, *, wait: bool) -> None:
        """Tell the scheduler which tasks the open pages watch (their union); ``wait``
        for it to take them in (a new page's stream begins subscribed)."""
        answer = None
        with self._subscribing:  # sends in order; nobody waits for an answer holding it
            with self._lock:
                relay = self._relay
                watches = [stream.watch for stream in self._streams]
            scheduler = self._scheduler()
            if relay is None or scheduler is None:
                return
            wanted = None
            if None not in watches:
                wanted = frozenset(t for watch in watches if watch is not None for t in watch)
            with contextlib.suppress(pykka.ActorDeadError):
                subscribe = messages.Subscribe(relay, wanted)
                if wait:
                    answer = scheduler.ask(subscribe, block=False)
                else:
                    scheduler.tell(subscribe)  # after any earlier one: the latest last
        if answer is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                answer.get(timeout=10)

    def leave(self, stream: _Stream) -> None:
        """A page's stream ended (on its loop, as its response ends: waits for nothing)."""
        with self._lock:
            if stream in self._streams:
                self._streams.remove(stream)
            relay, dispatcher = (
                (self._relay, self._dispatcher) if not self._streams else (None, None)
            )
            if relay is not None:
                self._relay = self._dispatcher = None
        if relay is not None and dispatcher is not None:
            self._stop(relay, dispatcher, wait=False)
        else:
            self._subscribe(wait=False)

    def _stop(
        self, relay: pykka.ActorRef[Any], dispatcher: ThreadPoolDispatcher, *, wait: bool
    ) -> None:
        """Unsubscribe and stop the relay; its thread ends after the stop (``wait``: join)."""
        scheduler = self._scheduler()
        if scheduler is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                scheduler.tell(messages.Unsubscribe(relay))
        relay.stop(block=wait)
        dispatcher.shutdown(wait=wait)

    def take(self, stream: _Stream) -> list[dict[str, Any]]:
        """The stream's batch so far (on its loop), emptied."""
        with self._lock:
            stream.wake.clear()
            batch, stream.batch = stream.batch, []
            stream.last.clear()
            return batch

    def publish(self, task_id: str, record: dict[str, Any]) -> None:
        """On the relay's thread: add the event to the batch of each page that watches its
        task, waking a page whose batch was empty."""
        with self._lock:
            for stream in self._streams:
                if stream.watch is not None and task_id not in stream.watch:
                    continue
                if stream.add(task_id, record):
                    with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                        stream.loop.call_soon_threadsafe(stream.wake.set)

    def close(self) -> None:
        """End every page's stream (the server can then stop) and the subscription."""
        with self._lock:
            self._closed = True
            streams, self._streams = self._streams, []
            relay, self._relay = self._relay, None
            dispatcher, self._dispatcher = self._dispatcher, None
        for stream in streams:
            stream.closed = True
            with contextlib.suppress(RuntimeError):
                stream.loop.call_soon_threadsafe(stream.wake.set)
        if relay is not None and dispatcher is not None:
            self._stop(relay, dispatcher, wait=True)
