"""Light actor runtimes: pykka actors hosted on a shared thread pool or an asyncio loop.

A :class:`HostedActor` owns no thread: a :class:`Dispatcher` that many actors share runs
its mailbox a slice at a time. Its messages are never handled by two threads at once, and
are handled in the order they were sent. Refs, proxies, futures and the registry work as
for any pykka actor.
"""

from __future__ import annotations

import abc
import asyncio
import itertools
import logging
import os
import queue
import random
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, ClassVar, Self, TypeAlias

import pykka
from pykka import ActorDeadError

from actors.runtime.pykka_shim import ActorStop, Envelope
from actors.runtime.sync import Burst
from supervision._validate import check_int

__all__ = [
    "AsyncioDispatcher",
    "Dispatcher",
    "HostedActor",
    "Mailbox",
    "StoppedEvent",
    "ThreadPoolDispatcher",
    "uuid4_text",
    "uuid4_urn",
]

_logger = logging.getLogger("actors")
_pykka_logger = logging.getLogger("pykka")  # what a pykka actor logs, a hosted one logs there
_worker = threading.local()  # on a pool thread: its pool, and the callable kept for it
_names = itertools.count(1)
_CLEANUP_SECONDS = 5.0  # how long a stopping loop waits for its cancelled coroutines

OptExcInfo: TypeAlias = tuple[
    type[BaseException] | None, BaseException | None, TracebackType | None
]


class Dispatcher(abc.ABC):
    """Runs callables for hosted actors; one dispatcher serves many actors."""

    name: str
    runs_a_loop: ClassVar[bool] = False
    """Whether the callables run on an asyncio event loop (an :class:`AsyncioDispatcher`):
    a class attribute, read per attempt instead of an ABC ``isinstance`` check."""

    @abc.abstractmethod
    def execute(self, run: Callable[[], None]) -> None:
        """Run ``run()`` soon on one of the dispatcher's threads (or its loop)."""

    def execute_next(self, run: Callable[[], None]) -> None:
        """Like execute; a dispatcher may run ``run`` right after the current callable, on
        the same thread, when called from one of its own threads (no hand-off)."""
        self.execute(run)

    @abc.abstractmethod
    def shutdown(self, *, wait: bool = True) -> None:
        """Stop accepting work; with ``wait``, return once the threads have exited."""

    @property
    @abc.abstractmethod
    def capacity(self) -> int:
        """How many callables can run at the same time."""


class ThreadPoolDispatcher(Dispatcher):
    """Runs actors on a pool of up to ``max_workers`` threads, started on demand.

    Leaner than ``concurrent.futures.ThreadPoolExecutor`` for this job: a mailbox slice
    needs no Future and no work item, only a place in one queue. Threads are daemons (a
    forgotten shutdown never hangs interpreter exit) and exit at ``shutdown``.
    """

    def __init__(self, max_workers: int = 4, name: str | None = None) -> None:
        check_int("max_workers", max_workers, minimum=1)
        self.name = name or f"pool-{next(_names)}"
        self._max_workers = max_workers
        self._blocked = 0  # threads waiting inside a callable (see blocking): one more each
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        # One token per thread that is (or is about to be) waiting for work and that no
        # queued callable has claimed yet. deque.append and deque.pop are atomic, so
        # neither the threads nor the callers take a lock for them (a lock shared by
        # every pool thread and every caller is where GIL convoys start).
        self._idle: deque[None] = deque()
        self._lock = threading.Lock()  # starting threads and shutting down
        self._closed = False

    @property
    def capacity(self) -> int:
        return self._max_workers

    def execute(self, run: Callable[[], None]) -> None:
        if self._closed:
            raise RuntimeError(f"dispatcher {self.name} is shut down")
        self._queue.put(run)
        # Each queued callable needs a thread of its own: an idle thread that nobody has
        # claimed yet, or a new one (as concurrent.futures does with its idle semaphore).
        # Counting idle threads by "waiting in get()" instead would let two quick puts
        # share one thread while the first callable blocks.
        try:
            self._idle.pop()
            return
        except IndexError:
            pass
        if len(self._threads) >= self._max_workers + self._blocked:
            return  # every thread is busy: the first one back takes it
        self._add_thread()

    def _add_thread(self) -> None:
        """Start one more thread if the pool may have it (it takes a queued callable)."""
        with self._lock:
            if len(self._threads) < self._max_workers + self._blocked and not self._closed:
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}_{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def blocking(self, delta: int) -> None:
        """One of our threads starts (+1) or stops (-1) waiting inside its callable for
        work that needs a thread of this pool: the pool may start one more thread for
        each such waiter (as Dask's secede/rejoin, ForkJoinPool's managed blocking), so a
        waiter never starves what it waits for. Threads started so stay in the pool."""
        with self._lock:
            self._blocked += delta
        if delta > 0 and not self._queue.empty():
            self._add_thread()  # work already queued while every thread waits: run it now

    def execute_next(self, run: Callable[[], None]) -> None:
        """Run ``run`` on this thread once the current callable returns, if called from
        one of our threads (and nothing else is kept for it yet); else ``execute``.

        Only for a caller that is about to return: ``run`` waits for the rest of it.
        It saves waking another thread (and handing it the GIL) for work this thread
        is about to be free for.
        """
        local = _worker
        if getattr(local, "pool", None) is self and local.next is None and not self._closed:
            local.next = run
        else:
            self.execute(run)

    def _work(self) -> None:
        get, idle, local = self._queue.get, self._idle.append, _worker
        local.pool, local.next = self, None
        while True:
            run = get()  # a new thread's first callable was claimed when it was started
            if run is None:
                return
            while run is not None:  # then whatever execute_next kept for this thread
                try:
                    run()
                except BaseException:
                    _logger.exception("dispatcher %s: a task raised", self.name)
                run, local.next = local.next, None
            idle(None)

    def shutdown(self, *, wait: bool = True) -> None:
        with self._lock:
            if self._closed:
                threads: list[threading.Thread] = []
            else:
                self._closed = True
                threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)  # after the work already queued
        if wait:
            current = threading.current_thread()
            for thread in threads:
                if thread is not current:
                    thread.join()

    def __repr__(self) -> str:
        return f"ThreadPoolDispatcher({self._max_workers}, name={self.name!r})"


class AsyncioDispatcher(Dispatcher):
    """Runs actors on an asyncio event loop: one in a thread of its own, or ``loop``.

    Hosted actors' hooks run on the loop thread: they may schedule coroutines with
    ``asyncio.get_running_loop()`` but must not block. ``loop`` is usable from any thread
    with ``call_soon_threadsafe`` / ``asyncio.run_coroutine_threadsafe``.

    Given a ``loop`` (the application's, running in the application's thread), the
    dispatcher starts no thread and never stops or closes that loop; ``shutdown`` only
    refuses further work. While the application blocks its loop, nothing hosted on it
    runs.
    """

    runs_a_loop = True
    owns_loop = False
    """Whether the loop runs on a thread of this dispatcher's own (else it is borrowed: the
    application's, which may block it at any time)."""

    def __init__(
        self, name: str | None = None, *, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self.name = name or f"loop-{next(_names)}"
        self._closed = False
        self._incoming: Burst[Callable[[], None]] = Burst()  # queued from other threads
        self._local: deque[Callable[[], None]] = deque()  # queued on the loop's own thread
        self._keeping = False  # inside run_with_next, on the loop thread
        self._kept: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None
        self._thread_ident: int | None = None  # our own thread's (read per launch)
        if loop is not None:
            self.loop = loop
            return
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name=self.name, daemon=True
        )
        self._thread.start()
        ready.wait()
        self._thread_ident = self._thread.ident
        self.owns_loop = True

    @property
    def capacity(self) -> int:
        return sys.maxsize

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        try:
            self.loop.run_forever()
        finally:
            # Run what was scheduled before the stop, then cancel what is left so that
            # every coroutine gets to clean up.
            self.loop.run_until_complete(asyncio.sleep(0))
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            if pending:
                # Bounded: a coroutine that swallows its cancellation is abandoned, not
                # waited for forever (this thread is a daemon; nobody joins it then).
                self.loop.run_until_complete(asyncio.wait(pending, timeout=_CLEANUP_SECONDS))
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()

    def in_loop_thread(self) -> bool:
        if self._thread_ident is not None:
            return threading.get_ident() == self._thread_ident
        return asyncio.events._get_running_loop() is self.loop

    def execute(self, run: Callable[[], None]) -> None:
        if self.in_loop_thread():
            # From the loop itself: one loop callback for a burst (a scheduler slice that
            # starts many task actors), not a Handle each.
            local = self._local
            local.append(run)
            if len(local) == 1:
                self.loop.call_soon(self._run_local)
            return
        # From another thread: queue it, and wake the loop once per burst (each
        # call_soon_threadsafe writes to the loop's self-pipe: a system call).
        if not self._incoming.put(run):
            return
        try:
            self.loop.call_soon_threadsafe(self._run_incoming)
        except RuntimeError:  # the loop is closed
            self._incoming.wake_failed()
            raise

    def execute_next(self, run: Callable[[], None]) -> None:
        """Inside :meth:`run_with_next` on the loop thread, run ``run`` when its function
        returns, in the same loop callback; anywhere else, ``execute``."""
        if self._keeping and self._kept is None and self.in_loop_thread():
            self._kept = run
        else:
            self.execute(run)

    def run_with_next(self, body: Callable[[], None]) -> None:
        """Call ``body`` (the work of a loop callback that is about to return); what it
        hands to execute_next runs right after it, with no callback of its own."""
        self._keeping = True
        try:
            body()
        finally:
            self._keeping = False
            run, self._kept = self._kept, None
            if run is not None:
                try:
                    run()
                except Exception:
                    _logger.exception("dispatcher %s: a callable raised", self.name)

    def _run_local(self) -> None:
        local, self._local = self._local, deque()
        self._run_all(local)

    def _run_incoming(self) -> None:
        self._run_all(self._incoming.take())

    def _run_all(self, runs: Iterable[Callable[[], None]]) -> None:
        for run in runs:
            try:
                run()
            except Exception:
                _logger.exception("dispatcher %s: a callable raised", self.name)

    def shutdown(self, *, wait: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is None:
            return  # the application's loop: not ours to stop
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:  # the loop is already closed
            return
        if wait and not self.in_loop_thread():
            thread.join()

    def __repr__(self) -> str:
        return f"AsyncioDispatcher(name={self.name!r})"


class StoppedEvent(threading.Event):
    """A threading.Event whose Condition is made only when somebody waits on it.

    Every hosted actor has one (``actor_stopped``), most are never waited on, and a
    Condition is the priciest part of an Event (it and its bound methods are several
    objects for the cyclic collector to walk). Same semantics, one plain lock.
    """

    def __init__(self) -> None:  # no super().__init__(): no Condition until a wait
        self._lock = threading.Lock()
        self._flag = False
        self._cond: threading.Condition | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {'set' if self._flag else 'unset'}>"

    def is_set(self) -> bool:
        return self._flag

    isSet = is_set  # noqa: N815 - threading.Event's old alias

    def set(self) -> None:
        with self._lock:
            self._flag = True
            if self._cond is not None:
                self._cond.notify_all()

    def clear(self) -> None:
        with self._lock:
            self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        with self._lock:
            if self._flag:
                return True
            if self._cond is None:
                self._cond = threading.Condition(self._lock)
            self._cond.wait(timeout)
            return self._flag


class Mailbox:
    """A hosted actor's inbox: a deque plus a flag saying whether a slice is scheduled.

    ``put`` schedules a slice on the dispatcher when none is scheduled; the slice runs
    the actor until the deque is empty (or the slice's throughput is spent, and then it
    schedules the next slice itself). Thread-safe.
    """

    __slots__ = ("_closed", "_items", "_lock", "_scheduled", "_signalled", "_wake")

    def __init__(self) -> None:
        self._items: deque[Envelope[Any]] = deque()
        self._lock = threading.Lock()
        self._scheduled = True  # the first slice is scheduled when the actor starts
        self._closed = False
        self._signalled = False  # see signal()
        self._wake: Callable[[], None] | None = None

    def signal(self) -> bool:
        """Have the actor's ``on_signal`` run in a slice soon (once, however many signals
        come before it runs); False if the actor is gone. No envelope, no message: for
        an actor that keeps its own queue of notices (the scheduler's)."""
        with self._lock:
            wake = self._wake
            if self._closed or wake is None:
                return False
            self._signalled = True
            if self._scheduled:
                return True
            self._scheduled = True
        wake()
        return True

    def put(self, envelope: Envelope[Any], /) -> None:
        with self._lock:
            wake = self._wake
            if not self._closed:
                self._items.append(envelope)
                if self._scheduled:
                    return
                self._scheduled = True
        if wake is None:  # closed
            _reply_dead(envelope)
            return
        wake()

    def get(self) -> Envelope[Any]:
        return self._items.popleft()

    def empty(self) -> bool:
        return not self._items

    def start(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        wake()

    def end_slice(self) -> bool:
        """True if more messages wait (the caller schedules another slice)."""
        with self._lock:
            if self._items or self._signalled:
                return True
            self._scheduled = False
            return False

    def close(self) -> bool:
        """Refuse further messages; True the first time. Drops the wake-up callable: it
        refers to the actor, which refers to this mailbox, and without that cycle a
        stopped actor is freed at once instead of waiting for the cyclic collector."""
        with self._lock:
            first = not self._closed
            self._closed = True
            self._wake = None
            return first


def _reply_dead(envelope: Envelope[Any]) -> None:
    """Answer a message that reached a mailbox after its actor's teardown, as pykka's
    ``_actor_loop_teardown`` answers what it finds left: a stop with None (the actor is
    stopped, as asked), any other ask with ActorDeadError, a tell not at all."""
    if envelope.reply_to is None:
        return
    if isinstance(envelope.message, ActorStop):
        envelope.reply_to.set(None)
        return
    error = ActorDeadError("actor stopped before handling the message")
    envelope.reply_to.set_exception(exc_info=(ActorDeadError, error, None))


# A private random stream for URNs and task ids: a random.seed() elsewhere cannot make it
# repeat, and a forked child reseeds it rather than repeating its parent's ids.
_private_random = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_private_random.seed)
_private_bits = _private_random.getrandbits
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))  # the version and variant bits
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


def uuid4_text() -> str:
    """A random (version 4) UUID in its usual text form, as ``str(uuid.uuid4())``, without
    a system call each: the bits come from a private Mersenne Twister seeded from
    os.urandom (no state the application controls)."""
    digits = f"{(_private_bits(128) & _UUID4_CLEAR) | _UUID4_SET:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def uuid4_urn() -> str:
    """A random (version 4) UUID URN, as pykka's ``uuid.uuid4().urn``, without a system
    call per actor: the bits come from a Mersenne Twister seeded from os.urandom."""
    digits = f"{(_private_bits(128) & _UUID4_CLEAR) | _UUID4_SET:032x}"
    return f"urn:uuid:{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


class HostedActor(pykka.Actor):
    """A pykka actor without a thread of its own, run by a shared :class:`Dispatcher`.

    Start one with ``MyActor.start_on(dispatcher, *args, **kwargs)``, or set the class
    attribute ``dispatcher`` and use ``MyActor.start(...)``. Everything else is pykka:
    ``on_start``, ``on_receive``, proxies, ``on_failure``, ``on_stop``, ``stop``, the
    registry, the log messages. The hooks run on a dispatcher thread (on the loop thread
    for an AsyncioDispatcher), one message at a time.

    It passes pykka's own test suite as a ``ThreadingActor`` does (run it with
    ``tests/pykka_suite/run.py``), but for these differences, each on purpose:

    * An exception that is not an ``Exception`` (``SystemExit``, ``GeneratorExit``, a test
      framework's outcome) fails only this actor, as an ``Exception`` in a tell does: it
      is logged at ERROR, ``on_failure`` runs (not ``on_stop``), the actor stops and the
      asks queued for it get ``ActorDeadError``; an ask that raised it gets it as its
      answer. A ThreadingActor runs ``on_stop`` and then stops every actor in the process
      (``ActorRegistry.stop_all``), and never answers that ask; in ``on_start`` it lets it
      end its thread and stays registered. Task actors run user code: one task must not
      stop the whole process's actors, nor leave its actor half alive. Asserted by
      ``tests/actors/test_runtime.py::test_a_base_exception_fails_only_its_own_hosted_actor``;
      pykka's two tests of the other behaviour are expected failures in the pykka suite.
    * A class may set ``registered = False`` to stay out of pykka's ActorRegistry.
    * Hosted actors share threads: one that blocks holds a pool thread (or the loop) while
      it waits. Never ``ask`` and wait from inside an actor for an actor hosted on the
      same loop, nor on the same pool with all its threads so blocked: it would wait on
      itself.
    """

    dispatcher: ClassVar[Dispatcher | None] = None
    throughput: ClassVar[int] = 32
    """Messages handled in one slice before the thread is handed to other actors."""
    registered: ClassVar[bool] = True
    """Whether the actors appear in pykka's ActorRegistry while they run. An actor class
    that is started by the thousand and reached only through its own bookkeeping may
    opt out: the registry is one process-wide lock, taken at every start and stop."""

    _dispatcher: Dispatcher
    _mailbox: Mailbox  # actor_inbox, typed
    _stopped: StoppedEvent  # actor_stopped, typed
    _booted: bool = False
    _first_slice_here: bool = False
    """Set before start by a starter that is about to free its pool thread: the first
    slice may then run on that thread (Dispatcher.execute_next)."""

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        # What pykka's Actor.__init__ sets (pykka_shim.ACTOR_INIT_ATTRIBUTES, checked
        # against the installed pykka), more cheaply, which counts for actors started
        # per task: a uuid4 URN without a system call (uuid4_urn), and a stopped
        # event without a Condition until somebody waits on it (StoppedEvent).
        self.actor_urn = uuid4_urn()
        self.actor_inbox = self._mailbox = self._create_actor_inbox()
        self.actor_stopped = self._stopped = StoppedEvent()
        self._actor_ref = pykka.ActorRef(self)

    @staticmethod
    def _create_actor_inbox() -> Mailbox:
        return Mailbox()

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return pykka.ThreadingFuture()

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> pykka.ActorRef[Self]:
        if cls.dispatcher is None:
            raise TypeError(
                f"{cls.__name__} has no dispatcher: set {cls.__name__}.dispatcher "
                "or start it with start_on(dispatcher, ...)"
            )
        return cls.start_on(cls.dispatcher, *args, **kwargs)

    @classmethod
    def start_on(cls, dispatcher: Dispatcher, *args: Any, **kwargs: Any) -> pykka.ActorRef[Self]:
        """Start the actor on ``dispatcher``; ``args``/``kwargs`` go to the constructor.

        The steps of pykka's ``Actor.start``, with the dispatcher, and with the registry
        only for a class that is ``registered``.
        """
        if not isinstance(dispatcher, Dispatcher):
            raise TypeError(f"start_on takes a Dispatcher, got {dispatcher!r}")
        return cls._start_on(dispatcher, *args, **kwargs).actor_ref

    @classmethod
    def _start_on(cls, dispatcher: Dispatcher, *args: Any, **kwargs: Any) -> Self:
        """``start_on`` for a caller whose dispatcher is known to be one (the task path);
        returns the actor itself."""
        obj = cls(*args, **kwargs)
        obj._dispatcher = dispatcher
        if cls.registered:
            pykka.ActorRegistry.register(obj.actor_ref)
        if cls.registered:  # as pykka logs it; an actor started per task logs nothing here
            _pykka_logger.debug("Starting %s", obj)
        try:
            obj._start_actor_loop()
        except BaseException:
            # The dispatcher refused the work (shut down): leave nothing registered.
            if cls.registered:
                pykka.ActorRegistry.unregister(obj.actor_ref)
            obj.actor_stopped.set()
            raise
        return obj

    def _stop(self) -> None:
        if self.registered:
            super()._stop()
            return
        # pykka's _stop, minus the registry this actor was never in (unregistering would
        # take the registry's process-wide lock at the end of every task).
        self.actor_stopped.set()
        try:
            self.on_stop()
        except Exception:  # noqa: BLE001 - routed as pykka routes it
            self._handle_failure(*sys.exc_info())

    def _start_actor_loop(self) -> None:
        if not hasattr(self, "_dispatcher"):
            if type(self).dispatcher is None:
                raise TypeError(f"{type(self).__name__} has no dispatcher")
            self._dispatcher = type(self).dispatcher  # type: ignore[assignment]
        self._mailbox.start(self._schedule_slice)

    def _schedule_slice(self) -> None:
        if self._first_slice_here:
            self._first_slice_here = False
            self._dispatcher.execute_next(self._run_slice)
        else:
            self._dispatcher.execute(self._run_slice)

    def _run_slice(self) -> None:
        """pykka's ``_actor_loop``, one slice at a time, on a dispatcher thread.

        The first slice runs ``_actor_loop_setup`` (on_start); each handles up to
        ``throughput`` messages; the one that finds the actor stopped closes the mailbox
        and runs ``_actor_loop_teardown``. The hooks are called through self, so that a
        monitor wrapping them on the instance (supervision) sees them.
        """
        mailbox = self._mailbox
        if not self._booted:
            self._booted = True
            try:
                self._actor_loop_setup()
            except BaseException:  # noqa: BLE001 - pykka's setup lets these through
                self._handle_failure(*sys.exc_info())
        stopped, items, handle = self._stopped, mailbox._items, self._handle_envelope
        budget = self.throughput
        while True:
            while budget and items and not stopped._flag:
                budget -= 1
                handle(items.popleft())
            if mailbox._signalled and not stopped._flag:
                budget -= 1
                mailbox._signalled = False
                try:
                    self.on_signal()
                except BaseException:  # noqa: BLE001 - a failure of the actor, as a tell's
                    self._fail(sys.exc_info())
            if stopped._flag:
                if mailbox.close():  # a slice a late message scheduled finds it closed
                    self._actor_loop_teardown()
                return
            if not mailbox.end_slice():
                return
            if budget <= 0:
                # More came in and this slice has had its share: hand the thread on.
                self._schedule_slice()
                return
            # More came in while this slice ran: go on here, on this thread (handing the
            # rest to another thread would cost a wake-up and a GIL hand-off).

    def on_signal(self) -> None:
        """Called in a slice after ``signal()`` (on the actor's mailbox's thread). An
        exception in it fails the actor, as one in handling a ``tell`` does."""

    def signal(self) -> bool:
        """Wake this actor for its ``on_signal``; False if it has stopped. Thread-safe."""
        return self._mailbox.signal()

    def _stop_now(self) -> None:
        """Stop from the actor's own context while no slice runs (a callback the actor
        scheduled on its loop, say): no stop message, no extra slice."""
        self._stop()
        if self._mailbox.close():
            self._actor_loop_teardown()

    def _handle_envelope(self, envelope: Envelope[Any]) -> None:
        """Handle one message as pykka's ``_actor_loop_running`` does: an ask's error goes
        to the caller (logged at INFO), a tell's fails the actor (on_failure). A
        BaseException fails this actor only: see the class docstring."""
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            if envelope.reply_to is not None:
                _pykka_logger.info("Exception returned from %s to caller:", self, exc_info=True)
                envelope.reply_to.set_exception()
            else:
                self._fail(sys.exc_info())
        except BaseException:  # noqa: BLE001 - contained: see the class docstring
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception()
            self._fail(sys.exc_info())

    def _fail(self, exc_info: OptExcInfo) -> None:
        """A failure nobody asked for: pykka's ``_handle_failure``, then ``on_failure``."""
        self._handle_failure(*exc_info)
        try:
            self.on_failure(*exc_info)
        except BaseException:  # noqa: BLE001 - this actor fails, nothing else
            self._handle_failure(*sys.exc_info())
