"""Task events to the pages: one subscriber actor per dashboard, a batch per open page.

A page names the tasks it shows (``watch``) and the subscription asks the event bus for
those only: a manager running thousands of tasks a second tells the dashboard about the
fifty on screen, not about every one (a subscription to all events cost the manager
about a seventh of its throughput: docs/performance.md). A stream without ``watch``
gets every event. The actor only appends each event to the batches of the pages that
watch its task; a page's stream is woken once per batch, not once per event.
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
        self.wake = asyncio.Event()
        self.closed = False


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

    def open(self, watch: frozenset[str] | None) -> _Stream:
        """A stream for a page (on the page's event loop) of the events of ``watch``."""
        stream = _Stream(asyncio.get_running_loop(), watch)
        with self._lock:
            if self._closed:
                stream.closed = True
                return stream
            self._streams.append(stream)
            if self._relay is None:
                self._dispatcher = ThreadPoolDispatcher(1, name="dashboard-events")
                self._relay = _Relay.start_on(self._dispatcher, self)
        self._subscribe()
        return stream

    def _subscribe(self) -> None:
        """Tell the scheduler which tasks the open pages watch (their union)."""
        with self._subscribing:
            with self._lock:
                relay = self._relay
                watched: set[str] | None = set()
                for stream in self._streams:
                    if stream.watch is None:
                        watched = None
                        break
                    assert watched is not None
                    watched |= stream.watch
            scheduler = self._scheduler()
            if relay is None or scheduler is None:
                return
            wanted = None if watched is None else frozenset(watched)
            with contextlib.suppress(pykka.ActorDeadError):
                scheduler.ask(messages.Subscribe(relay, wanted), timeout=10)

    def leave(self, stream: _Stream) -> None:
        with self._lock:
            if stream in self._streams:
                self._streams.remove(stream)
            relay, dispatcher = (
                (self._relay, self._dispatcher) if not self._streams else (None, None)
            )
            if relay is not None:
                self._relay = self._dispatcher = None
        if relay is not None and dispatcher is not None:
            self._stop(relay, dispatcher)
        else:
            self._subscribe()

    def _stop(self, relay: pykka.ActorRef[Any], dispatcher: ThreadPoolDispatcher) -> None:
        scheduler = self._scheduler()
        if scheduler is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                scheduler.tell(messages.Unsubscribe(relay))
        relay.stop()
        dispatcher.shutdown()

    def take(self, stream: _Stream) -> list[dict[str, Any]]:
        """The stream's batch so far (on its loop), emptied."""
        with self._lock:
            stream.wake.clear()
            batch, stream.batch = stream.batch, []
            return batch

    def publish(self, task_id: str, record: dict[str, Any]) -> None:
        """On the relay's thread: add the event to the batch of each page that watches its
        task, waking a page whose batch was empty."""
        with self._lock:
            for stream in self._streams:
                if stream.watch is not None and task_id not in stream.watch:
                    continue
                stream.batch.append(record)
                if len(stream.batch) == 1:
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
            self._stop(relay, dispatcher)
