"""Task events to the pages: one subscriber actor per dashboard, a queue per open page.

The actor is told each event (as the event log is) and only appends it to each page's
batch; a page's stream is woken once per batch, not once per event, so a busy manager
pays a tell and an append per event whatever the number of pages open.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import pykka

from actors.core import messages
from actors.observe.event_log import event_record

__all__ = ["Hub"]

_EVENTS = (
    messages.TaskStarted
    | messages.TaskProgress
    | messages.TaskRetrying
    | messages.TaskSucceeded
    | messages.TaskFailed
)


class _Stream:
    """One open page: its batch and how to wake it on its own loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.batch: list[dict[str, Any]] = []
        self.wake = asyncio.Event()
        self.closed = False

    def take(self) -> list[dict[str, Any]]:
        self.wake.clear()
        batch, self.batch = self.batch, []  # swapped under the hub's lock (see Hub.take)
        return batch


class _Relay(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self, hub: Hub) -> None:
        super().__init__()
        self.hub = hub

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _EVENTS):
            self.hub.publish(event_record(message))
            return None
        return super().on_receive(message)


class Hub:
    """The open pages of one dashboard and the subscription that feeds them.

    The subscriber starts with the first page and stops with the last (or ``close``):
    a dashboard nobody looks at costs the manager nothing.
    """

    def __init__(self, scheduler: Any) -> None:
        self._scheduler = scheduler  # () -> the scheduler's ref, None when there is none
        self._lock = threading.Lock()
        self._streams: list[_Stream] = []
        self._relay: pykka.ActorRef[Any] | None = None
        self._closed = False

    def open(self) -> _Stream:
        stream = _Stream(asyncio.get_running_loop())
        with self._lock:
            if self._closed:
                stream.closed = True
                return stream
            self._streams.append(stream)
            relay = None
            if self._relay is None:
                relay = self._relay = _Relay.start(self)
        if relay is not None:
            scheduler = self._scheduler()
            if scheduler is not None:
                with contextlib.suppress(pykka.ActorDeadError):
                    scheduler.ask(messages.Subscribe(relay), timeout=10)
        return stream

    def leave(self, stream: _Stream) -> None:
        with self._lock:
            if stream in self._streams:
                self._streams.remove(stream)
            relay = self._relay if not self._streams else None
            if relay is not None:
                self._relay = None
        if relay is not None:
            self._stop(relay)

    def _stop(self, relay: pykka.ActorRef[Any]) -> None:
        scheduler = self._scheduler()
        if scheduler is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                scheduler.tell(messages.Unsubscribe(relay))
        relay.stop()

    def take(self, stream: _Stream) -> list[dict[str, Any]]:
        with self._lock:
            return stream.take()

    def publish(self, record: dict[str, Any]) -> None:
        """On the relay's thread: add the event to each page's batch, waking a page whose
        batch was empty."""
        with self._lock:
            for stream in self._streams:
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
        for stream in streams:
            stream.closed = True
            with contextlib.suppress(RuntimeError):
                stream.loop.call_soon_threadsafe(stream.wake.set)
        if relay is not None:
            self._stop(relay)
