"""DaskExecutor: each attempt is one task on a Dask cluster (``distributed``, an optional extra).

The manager keeps the graph, priorities, retries and timeouts; Dask only runs attempts.
The client's event loop owns the table of running attempts. A timeout or cancel ends the
attempt at once, but a worker thread already running it runs on: Dask cannot stop it.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import itertools
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from actors.core.call import (
    MAX_MESSAGE_CHARS,
    Call,
    Done,
    ProgressSink,
    WorkerTimedOut,
    WorkLetGo,
    check_pickles,
    run_call,
)
from actors.core.executor import Executor
from actors.errors import TaskExecutionError
from actors.runtime.hosted import Dispatcher, ThreadPoolDispatcher
from supervision._log import get_logger
from supervision._timer import TimerHandle, timer_service
from supervision._validate import check_int, check_seconds, check_text, show

if TYPE_CHECKING:
    import distributed

__all__ = ["INSTALL_HINT", "DaskExecutor"]

INSTALL_HINT = "pip install 'actors-taskmanager[dask]'"

_log = get_logger("actors")

# Capacity is re-read at each worker added or removed (the scheduler's ``all`` topic), and
# also this often: a worker that joins while the subscription is on its way (its event
# sent before the scheduler knew of us) or while the client reconnects is not missed.
CAPACITY_READ_EVERY = 2.0

# A cluster we start: a task whose worker dies fails at once (KilledWorker), it is not
# re-run by Dask on another worker (the task's own retry policy decides).
_LOCAL_CONFIG = {"distributed.scheduler.allowed-failures": 0}


def _require_distributed() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"DaskExecutor needs the distributed package ({error}): {INSTALL_HINT}"
        ) from None


DEFAULT_START_WAIT = 60.0
"""Seconds an attempt handed to the cluster may wait to start once worker threads are
held by work the manager let go (a timeout): then it fails (retried under its policy)
rather than wait behind threads that may never return."""

_CLOSED = ("closing", "closed")  # a client's status once it no longer carries work


DEFAULT_PREFETCH = 16
"""Attempts handed to the cluster per worker thread beyond the one it runs, by default:
Dask's scheduler keeps them queued (by priority) and a thread that finishes starts the
next without a round trip to the manager; a deeper queue than the process executor's
(4) gives the client's loop larger batches (see docs/guides/executors.md, Dask)."""


def _run_on_worker(call: Call, topic: str) -> Any:
    """What a Dask worker runs for one attempt: the call, with its progress sent home as
    events on ``topic`` (and, for an attempt with a timeout, that it has started: its
    timeout counts from here; and that it returned: a thread the manager let go at its
    timeout is busy until then). Events are fire-and-forget: one can be lost (a worker
    drops what it sends while not connected to its scheduler) or late; the client does
    not rely on the start event alone (``DaskExecutor._look_for``)."""
    from distributed import get_worker

    worker = get_worker()

    def report(fraction: float, message: str) -> None:
        worker.log_event(topic, [call.task_id, call.attempt, fraction, message[:MAX_MESSAGE_CHARS]])

    if call.timeout is None:
        return run_call(call, report)
    worker.log_event(topic, [call.key])
    try:
        return run_call(call, report)
    finally:
        # Its thread is free again: one the manager let go (a timeout) counts no more.
        worker.log_event(topic, [call.key, "returned"])


_Running = tuple[Done, Call, "distributed.Future[Any]"]


_NO_SLOT = object()


class _Ended(asyncio.Event):
    """A Dask future's event (``FutureState._event``, which the client sets when the
    scheduler reports the key's end), that also calls ``ended(key)`` the first time it
    is set: the end of an attempt is learned without a coroutine waiting for it."""

    def __init__(self, ended: Callable[[str], None], key: str) -> None:
        super().__init__()
        self._ended: Callable[[str], None] | None = ended
        self._key = key

    def set(self) -> None:
        super().set()
        ended, self._ended = self._ended, None
        if ended is not None:
            ended(self._key)


class DaskExecutor(Executor):
    """Runs each attempt as one task on a Dask cluster.

    ``DaskExecutor()`` starts a ``distributed.LocalCluster`` when the system starts (the
    keyword arguments go to it: ``processes=False``, ``n_workers=2``, ...) and closes it at
    shutdown; ``DaskExecutor("tcp://host:8786")`` connects to a running scheduler (its
    client is closed at shutdown); ``DaskExecutor(client=client)`` uses a synchronous
    client you made, and leaves it open (it sets that client's handler for the ``all``
    topic).

    Capacity is the cluster's total worker threads, re-read as workers join and leave.
    The function and its arguments must pickle with cloudpickle (checked at
    registration). Workers must be able to import ``actors`` and the task's module.
    Needs the ``dask`` extra: ``pip install 'actors-taskmanager[dask]'``.
    """

    kind = "dask"
    runs_elsewhere = True
    enforces_timeouts = True
    # The client's loop also carries the client's traffic (and, in a LocalCluster with
    # processes=False, the scheduler's and the workers'): attempts end on the dispatcher.
    ends_attempts_where_learned = False

    def __init__(
        self,
        address: str | None = None,
        *,
        client: distributed.Client | None = None,
        prefetch: int = DEFAULT_PREFETCH,
        start_wait: float = DEFAULT_START_WAIT,
        name: str | None = None,
        **local_cluster_kwargs: Any,
    ) -> None:
        check_int("prefetch", prefetch, minimum=0, maximum=1000)
        check_seconds("start_wait", start_wait, allow_zero=False)
        if address is not None:
            check_text("address", address, allow_empty=False)
            if client is not None:
                raise ValueError(
                    f"give address or client, not both (got address={address!r} and "
                    f"client={show(client)})"
                )
        if local_cluster_kwargs and (address is not None or client is not None):
            options = ", ".join(sorted(local_cluster_kwargs))
            raise ValueError(
                f"cluster options ({options}) are for the LocalCluster DaskExecutor starts: "
                "give them without address or client"
            )
        _require_distributed()
        import distributed

        if client is not None and (
            not isinstance(client, distributed.Client) or client.asynchronous
        ):
            raise TypeError(f"client must be a synchronous distributed.Client, got {show(client)}")
        if client is not None and client.status in _CLOSED:
            raise ValueError(f"client must be open, got {show(client)} (status {client.status!r})")
        super().__init__(name)
        self.prefetch = prefetch
        self.start_wait = start_wait
        self.address = address
        self._given_client = client
        self._cluster_kwargs = dict(local_cluster_kwargs)
        self._client: distributed.Client | None = None
        self._cluster: distributed.LocalCluster | None = None
        self._topic = f"actors-progress-{uuid.uuid4().hex}"
        self._capacity = 0
        self._report: ProgressSink | None = None
        self._closing = False
        # The client loop's own: attempts on the cluster, and capacity reads in order.
        self._running: dict[str, _Running] = {}
        # Armed timeouts of started attempts, cancelled when the attempt ends first (a
        # timer left for a task that ended long before its timeout would be held until
        # then: memory that grows with every timed attempt).
        self._timers: dict[str, asyncio.TimerHandle] = {}
        # Timed attempts whose start was not heard of yet: when to look for them on the
        # workers (the start event may be lost); and those to look for in the next ask.
        self._looks: dict[str, asyncio.TimerHandle] = {}
        self._to_find: list[str] = []
        self._finding = False  # an ask of the workers is on its way
        self._reads = itertools.count(1)
        self._last_read = 0
        # Coroutines of ours on the loop (a fetch, a cancel, the capacity poll), held
        # until they end; cancelled at close.
        self._waiting: set[asyncio.Future[Any]] = _Held()
        # Calls handed over by the dispatcher threads, and keys of attempts let go (by a
        # timeout or a cancel, on whatever thread), for the loop to take in order
        # (appending and popping from the two ends of a deque are atomic).
        self._to_loop: collections.deque[tuple[Done, Call] | str] = collections.deque()
        self._loop_due = False
        self._finished: list[_Running] = []  # finished attempts whose results are not fetched
        self._gathering = False  # a fetch of them is on its way
        # Keys of attempts let go (a timeout) while their worker thread runs on, until it
        # returns; and of timed attempts whose thread returned before they ended.
        self._abandoned: set[str] = set()
        self._returned: set[str] = set()
        # While threads are held: attempts on the cluster not seen started, and since when.
        self._queued_since: dict[str, float] = {}
        self._resubscribing = False  # the client reconnects: our topics are sent again
        self._watcher: TimerHandle | None = None  # the timer thread's look at the client

    @property
    def capacity(self) -> int:
        """The cluster's worker threads, less those still running work let go."""
        return max(0, self._capacity - len(self._abandoned))

    @property
    def abandoned(self) -> int:
        return len(self._abandoned)

    @property
    def client(self) -> distributed.Client | None:
        """The client attempts go through (None until the executor is open)."""
        return self._client

    @property
    def cluster(self) -> distributed.LocalCluster | None:
        """The LocalCluster this executor started, if it started one (None until open)."""
        return self._cluster

    @classmethod
    def check_call(
        cls, func: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any] | None
    ) -> None:
        import cloudpickle  # type: ignore[import-untyped]

        check_pickles(
            func,
            args,
            kwargs,
            dumps=cloudpickle.dumps,
            hint="Dask ships work with cloudpickle: a closure must capture only picklable objects",
        )

    def create_dispatcher(self) -> Dispatcher:
        # Hosts the task actors, which only hand calls over and record outcomes.
        return ThreadPoolDispatcher(2, name=f"{self.name}-worker")

    def open(self) -> None:
        super().open()
        _require_distributed()
        import dask
        import distributed

        with self._lock:
            if self._client is not None or self._closed:
                return
            if self._given_client is not None:
                client = self._given_client
                if client.status in _CLOSED:
                    raise RuntimeError(
                        f"executor {self.name}: its Dask client is {client.status}: "
                        "give an open client"
                    )
            elif self.address is not None:
                client = distributed.Client(self.address, set_as_default=False)
            else:
                with dask.config.set(_LOCAL_CONFIG):
                    self._cluster = distributed.LocalCluster(**self._cluster_kwargs)
                client = distributed.Client(self._cluster, set_as_default=False)
            self._client = client
        client.subscribe_topic(self._topic, self._progress)
        client.subscribe_topic("all", self._cluster_event)
        self._capacity = sum(client.nthreads().values())
        _on_loop(client.loop, self._start_polling)
        self._watcher = timer_service().call_later(CAPACITY_READ_EVERY, self._watch_client)
        _log.info("executor.opened", executor=self.name, capacity=self._capacity)

    def _start_call(self, call: Call, report: ProgressSink, done: Done) -> Callable[[], None]:
        client = self._client
        if client is None:
            raise RuntimeError(f"executor {self.name} is not open")
        if client.status in _CLOSED:
            raise RuntimeError(f"executor {self.name}: its Dask client is {client.status}")
        self._report = report  # the same sink for every call: the store's
        self._hand_over(client, (done, call))
        key = call.key

        def let_go() -> None:
            # Under the attempt's lock (a timeout or a cancel): only hand it to the loop,
            # after the call itself (one queue: a call let go before the loop submitted
            # it is never submitted).
            self._hand_over(client, key)

        return let_go

    def _hand_over(self, client: distributed.Client, item: tuple[Done, Call] | str) -> None:
        """Queue a call (or the key of an attempt to let go) for the loop, which takes
        everything queued in one callback: one wake-up of the loop for many attempts,
        and no message to the scheduler sent from another thread (each of those wakes
        the loop too)."""
        self._to_loop.append(item)
        if not self._loop_due:
            self._loop_due = True
            loop = client.loop
            if loop is not None:  # None: the client closed, and with it what ran on it
                _on_loop(loop, self._take_handed_over, client)

    # -- on the client's loop ----------------------------------------------------------------

    def _take_handed_over(self, client: distributed.Client) -> None:
        """Submit the calls handed over since the last time, and let go of the attempts
        the manager let go (on the loop). The flag is lowered before the queue is read:
        an item added after this read finds it lowered and schedules another pass, one
        added before is in this one.

        The calls of one pass go in one ``Client.map`` per priority: one graph update
        for the scheduler (each costs it a deserialisation and two hops to its offload
        thread; the baseline pays that per ``submit``), keys in the order handed over."""
        self._loop_due = False
        queue = self._to_loop
        calls: dict[str, tuple[Done, Call]] = {}
        let_go: list[distributed.Future[Any]] = []
        while queue:
            item = queue.popleft()
            if isinstance(item, str):  # a timeout or cancel: before or after submission
                if calls.pop(item, None) is None:
                    started = item in self._timers and item not in self._returned
                    entry = self._take(item)
                    if entry is not None:
                        let_go.append(entry[2])
                        if started:  # its timeout armed, and its thread not returned
                            self._abandon(item)
                continue
            calls[item[1].key] = item
        if let_go:
            self._waiting.add(asyncio.ensure_future(_cancel(client, *let_go)))
        by_priority: dict[int, list[tuple[Done, Call]]] = {}
        for done, call in calls.values():
            batch = by_priority.get(call.priority)
            if batch is None:
                by_priority[call.priority] = [(done, call)]
            else:
                batch.append((done, call))
        for priority, batch in by_priority.items():
            try:
                futures = client.map(
                    # Always the same function object; the Call is an argument Dask's
                    # graph does not look into (not a tuple, list or dict).
                    _run_on_worker,
                    [call for _done, call in batch],
                    key=[call.key for _done, call in batch],
                    topic=self._topic,
                    pure=False,
                    retries=0,
                    priority=priority,
                )
            except Exception:  # noqa: BLE001 - one by one: only a refused call fails
                for done, call in batch:
                    self._submit_one(client, done, call)
                continue
            for (done, call), running in zip(batch, futures, strict=True):
                self._watch(done, call, running)

    def _submit_one(self, client: distributed.Client, done: Done, call: Call) -> None:
        try:
            running = client.submit(
                _run_on_worker,
                call,
                topic=self._topic,
                key=call.key,
                pure=False,
                retries=0,
                priority=call.priority,
            )
        except Exception as error:  # noqa: BLE001 - a refused call is the attempt's failure
            done(None, error)
            return
        self._watch(done, call, running)

    def _watch(self, done: Done, call: Call, running: distributed.Future[Any]) -> None:
        """Enter the attempt in the table, and learn its Dask future's end without a
        coroutine of its own: the client sets the future's event when the scheduler
        tells it the key's end; that event, ours, also tells us (see ``_Ended``)."""
        key = call.key
        self._running[key] = (done, call, running)
        if self._abandoned:  # threads are held: how long this one waits to start counts
            self._queued_since[key] = asyncio.get_running_loop().time()
        # Its timeout is armed by its start event; if that is not heard of by the time it
        # could have run its whole timeout (not before: it cannot have), it is looked for
        # on the workers (test_a_timeout_is_kept_when_the_start_event_of_the_attempt_is_lost).
        if call.timeout is not None:
            self._looks[key] = asyncio.get_running_loop().call_later(
                call.timeout, self._look_for, key
            )
        state = running._state
        assert state is not None  # a future the client holds
        # FutureState makes its event on first use (distributed since 2019); a version
        # without that slot, or an event made already, gets a coroutine that waits.
        event: object = getattr(state, "_event", _NO_SLOT)
        if event is None:  # made on first use: ours is the one it gets
            state._event = _Ended(self._ended, key)  # type: ignore[assignment]
        else:
            self._waiting.add(asyncio.ensure_future(self._wait_for(state, key)))

    async def _wait_for(self, state: Any, key: str) -> None:
        await state.wait()
        self._ended(key)

    def _ended(self, key: str) -> None:
        """The Dask future of attempt ``key`` ended (on the loop, in the client's handling
        of the scheduler's report): a result is fetched with others; anything else is
        read on its own."""
        entry = self._running.get(key)
        if entry is None:
            return  # ended already (a timeout, a cancel, a lost worker)
        if entry[2].status == "finished":
            self._finished.append(entry)
            if not self._gathering:  # its first step comes after this report's others
                self._gathering = True
                self._waiting.add(asyncio.ensure_future(self._gather_finished()))
            return
        self._waiting.add(asyncio.ensure_future(self._gather_one(entry)))

    async def _gather_finished(self) -> None:
        """Fetch the results of the attempts that finished, together, and settle each:
        one fetch at a time, each of every attempt that finished while the last one was
        on its way (the batch grows with the round trip; one fetch per attempt made a
        round trip to the workers each).

        Each fetch asks the scheduler for the keys (``gather``, what ``Client.gather``
        sends): these futures are known to have finished, and ``Client.gather`` would
        first wait on each in a task of its own. Anything but a full answer (a result
        lost in between, a connection gone) goes through ``Client.gather``, one by one."""
        client = self._client
        try:
            while self._finished and client is not None:
                batch, self._finished = self._finished, []
                data: dict[str, Any] = {}
                scheduler = client.scheduler
                if scheduler is not None:  # None: the client is closing
                    try:
                        response = await scheduler.gather(keys=[entry[1].key for entry in batch])
                    except Exception:  # noqa: BLE001 - the client's own way, below
                        _log.debug("dask.gather_failed", executor=self.name, exc_info=True)
                    else:
                        if response.get("status") == "OK":
                            data = response["data"]
                for entry in batch:
                    done, call, _future = entry
                    key = call.key
                    if key not in data:
                        await self._gather_one(entry)
                    elif self._take(key) is not None:
                        done(data[key], None)
        finally:
            self._gathering = False
            self._finished.clear()

    async def _gather_one(self, entry: _Running) -> None:
        """Fetch one attempt's result (or its error); settle it."""
        from distributed import KilledWorker

        done, call, running = entry
        client = self._client
        if client is None:
            return
        result: Any = None
        error: BaseException | None = None
        try:
            result = (await client.gather([running], asynchronous=True))[0]
        except KilledWorker as killed:
            error = _lost_error(call, f"died ({killed})")
        except asyncio.CancelledError:
            if running.status != "cancelled":  # this fetch was cancelled: the loop closes
                raise
            error = _cancelled_error(call, None)
        except concurrent.futures.CancelledError as cancelled:
            if running.status != "cancelled":
                error = cancelled  # the task raised it itself: its own failure
            else:  # not by us (that attempt left the table): a lost scheduler, another client
                reason = getattr(cancelled, "reason", None)
                if reason == "scheduler-connection-lost":
                    self._resubscribe(client)
                if client.status in _CLOSED:
                    error = _client_closed_error(call, client.status)
                else:
                    error = _cancelled_error(call, reason)
        except Exception as raised:  # noqa: BLE001 - the task's own error, or Dask's
            error = raised
        if self._take(call.key) is not None:
            done(result, error)

    def _arm_timeout(self, key: str, ran: float = 0.0) -> None:
        """The attempt ``key`` has started on a worker (``ran`` seconds ago, by the
        worker's clock): its timeout counts from its start. Armed once: by its start
        event, or by a look on the workers (whichever comes first; the other finds it
        armed)."""
        entry = self._running.get(key)
        if entry is None or entry[1].timeout is None or key in self._timers:
            return
        look = self._looks.pop(key, None)
        if look is not None:
            look.cancel()
        if self._queued_since:
            self._queued_since.pop(key, None)
        self._timers[key] = asyncio.get_running_loop().call_later(
            max(0.0, entry[1].timeout - ran), self._time_out, key
        )

    def _look_for(self, key: str) -> None:
        """Timed attempt ``key`` was handed to the cluster at least its timeout ago, and
        its start was not heard of (on the loop): its start event may be lost, and a
        lost event must not mean no timeout. Ask the workers whether they run it (all
        attempts due are asked for in one ``Client.run``)."""
        self._looks.pop(key, None)
        if key not in self._running or key in self._timers:
            return
        self._to_find.append(key)
        if not self._finding:
            self._finding = True
            self._waiting.add(asyncio.ensure_future(self._find_started()))

    async def _find_started(self) -> None:
        """Ask the workers how long they have run the attempts looked for: one that runs
        gets its timeout armed from its start on the worker (so it fires at once if it
        ran it all); one that waits for a worker thread, or whose end is on its way, is
        looked for again later. Its wait on the cluster never counts: a timeout measures
        the run (``Call.timeout``; guarded by
        test_waiting_for_a_worker_thread_does_not_count_against_the_timeout).

        Looked for again after its timeout, or CAPACITY_READ_EVERY if longer: found
        within its timeout of its start, it times out on time; the floor bounds how often
        the workers are asked while short-timeout attempts wait for threads."""
        client = self._client
        try:
            while self._to_find and client is not None:
                keys, self._to_find = self._to_find, []
                try:
                    found = await client.run(
                        _running_for, keys, on_error="ignore", asynchronous=True
                    )
                except Exception:  # noqa: BLE001 - not found: looked for again
                    _log.debug("dask.start_unknown", executor=self.name, exc_info=True)
                    found = {}
                ran: dict[str, float] = {}
                for seconds in found.values():
                    ran.update(seconds)
                loop = asyncio.get_running_loop()
                for key in keys:
                    entry = self._running.get(key)
                    if entry is None or key in self._timers:
                        continue  # ended, or its start was heard of meanwhile
                    running = key in ran
                    _log.debug("dask.start_unseen", executor=self.name, key=key, running=running)
                    if running:
                        _log.warning(
                            "dask.start_event_lost", executor=self.name, key=key, ran=ran[key]
                        )
                        self._arm_timeout(key, ran[key])
                    elif key not in self._looks:
                        timeout = entry[1].timeout
                        assert timeout is not None  # only timed attempts are looked for
                        self._looks[key] = loop.call_later(
                            max(timeout, CAPACITY_READ_EVERY), self._look_for, key
                        )
        finally:
            self._finding = False

    def _take(self, key: str) -> _Running | None:
        """Attempt ``key`` ends: out of the table, its timer (if armed) cancelled."""
        entry = self._running.pop(key, None)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if self._looks:
            look = self._looks.pop(key, None)
            if look is not None:
                look.cancel()
        if self._returned:
            self._returned.discard(key)
        if self._queued_since:
            self._queued_since.pop(key, None)
        return entry

    def _time_out(self, key: str) -> None:
        returned = key in self._returned
        entry = self._take(key)
        if entry is None:
            return  # ended in time
        if not returned:  # its worker thread runs on: held until it returns
            self._abandon(key)
        done, call, running = entry
        done(None, WorkerTimedOut(f"ran more than {call.timeout}s on its worker"))
        self._waiting.add(asyncio.ensure_future(_cancel(running.client, running)))

    def _progress(self, event: tuple[float, Any]) -> None:
        if len(event[1]) == 1:  # [key]: an attempt with a timeout has started
            self._arm_timeout(event[1][0])
            return
        if len(event[1]) == 2:  # [key, "returned"]: its thread is free again
            self._thread_returned(event[1][0])
            return
        report = self._report
        if report is None:
            return
        try:
            task_id, attempt, fraction, message = event[1]
            report(task_id, attempt, fraction, message)
        except Exception:  # noqa: BLE001 - one bad report never stops the others
            _log.error("progress.failed", executor=self.name, exc_info=True)

    def _cluster_event(self, event: tuple[float, Any]) -> None:
        """The scheduler's ``all`` topic: workers come and go (other events, such as one
        per gather, are ignored). Called in the client's reading of its stream: what
        waits for the scheduler runs on its own."""
        message = event[1]
        action = message.get("action") if isinstance(message, dict) else None
        if action not in ("add-worker", "remove-worker"):
            return
        if action == "remove-worker":
            worker = message.get("worker")
            lost = []
            for key in message.get("processing-tasks") or ():
                entry = self._take(key)
                if entry is None:
                    continue
                done, call, running = entry
                _log.warning(
                    "dask.worker_lost",
                    executor=self.name,
                    worker=worker,
                    task_id=call.task_id,
                    task_name=call.task_name,
                    attempt=call.attempt,
                )
                done(None, _lost_error(call, f"{worker} left while running it"))
                lost.append(running)
            if lost:
                self._waiting.add(asyncio.ensure_future(_cancel(lost[0].client, *lost)))
        self._waiting.add(asyncio.ensure_future(self._read_capacity()))

    def _start_polling(self) -> None:
        if not self._closing:
            self._waiting.add(asyncio.ensure_future(self._poll_capacity()))

    async def _poll_capacity(self) -> None:
        while not self._closing:
            await asyncio.sleep(CAPACITY_READ_EVERY)
            await self._read_capacity()
            if self._abandoned:
                await self._check_held()

    def _abandon(self, key: str) -> None:
        """Attempt ``key`` was let go while a worker thread runs it (on the loop): that
        thread counts as abandoned, not as capacity, until it returns. The attempts on
        the cluster not started yet may wait behind it: from now, their wait is timed."""
        if not self._abandoned:
            now = asyncio.get_running_loop().time()
            self._queued_since = dict.fromkeys(self._running, now)
        self._abandoned.add(key)
        _log.warning("dask.thread_abandoned", executor=self.name, key=key)
        self.capacity_changed()

    def _thread_returned(self, key: str) -> None:
        """The worker thread that ran attempt ``key`` (one with a timeout) is free."""
        if key in self._abandoned:
            self._abandoned.discard(key)
            if not self._abandoned:
                self._queued_since = {}
            self.capacity_changed()
        elif key in self._running:  # returned; its end is on its way (timer: not abandoned)
            self._returned.add(key)

    async def _check_held(self) -> None:
        """While threads are held (on the loop, every CAPACITY_READ_EVERY): forget held
        threads no worker runs any more (their worker left), and fail the attempts that
        waited ``start_wait`` seconds to start (retried under their policy)."""
        client = self._client
        if client is None:
            return
        try:
            found = await client.run(_executing_keys, asynchronous=True)
        except Exception:  # noqa: BLE001 - the next poll asks again
            _log.debug("dask.executing_unknown", executor=self.name, exc_info=True)
            return
        executing = {key for keys in found.values() for key in keys}
        gone = self._abandoned - executing
        if gone:
            for key in gone:
                self._thread_returned(key)
        now = asyncio.get_running_loop().time()
        late: list[distributed.Future[Any]] = []
        for key, since in list(self._queued_since.items()):
            if key in executing:
                del self._queued_since[key]
            elif now - since > self.start_wait:
                entry = self._take(key)
                if entry is None:
                    continue
                done, call, running = entry
                late.append(running)
                done(
                    None,
                    TaskExecutionError(
                        f"task {call.task_name!r} ({call.task_id}): waited more than "
                        f"{self.start_wait:g}s to start on the Dask cluster while "
                        f"{len(self._abandoned)} worker thread(s) still ran work let go at "
                        f"its timeout (attempt {call.attempt})",
                        call.task_id,
                        {"attempt": call.attempt, "key": call.key},
                    ),
                )
        if late:
            await _cancel(client, *late)

    def _resubscribe(self, client: distributed.Client) -> None:
        """The client lost its scheduler and reconnects (on the loop): a restarted
        scheduler has never heard of our topics. The client holds what we send until it
        is connected again."""
        if self._resubscribing or self._closing:
            return
        self._resubscribing = True
        client.subscribe_topic(self._topic, self._progress)
        client.subscribe_topic("all", self._cluster_event)
        self._waiting.add(asyncio.ensure_future(self._reconnected(client)))

    async def _reconnected(self, client: distributed.Client) -> None:
        while client.status == "connecting":
            await asyncio.sleep(0.1)
        self._resubscribing = False
        await self._read_capacity()

    def _watch_client(self) -> None:
        """On the timer thread, every CAPACITY_READ_EVERY: a client closed under us (by
        its owner, or after it failed to reconnect) fails every attempt it carried, as a
        lost connection does. Not left to the client's loop: that may have stopped too."""
        client = self._client
        if client is None or self._closing:
            return
        if client.status not in _CLOSED:
            self._watcher = timer_service().call_later(CAPACITY_READ_EVERY, self._watch_client)
            return
        _log.warning("dask.client_closed", executor=self.name, status=client.status)
        # The loop may still run (appends and pops of the deque and the table are atomic;
        # a task actor takes one end only): whoever pops an attempt ends it.
        while self._to_loop:
            try:
                item = self._to_loop.popleft()
            except IndexError:
                break
            if not isinstance(item, str):
                item[0](None, _client_closed_error(item[1], client.status))
        for key in list(self._running):
            entry = self._running.pop(key, None)
            if entry is not None:
                entry[0](None, _client_closed_error(entry[1], client.status))

    async def _read_capacity(self) -> None:
        client = self._client
        if client is None:
            return
        number = next(self._reads)
        try:
            nthreads = await client.nthreads(asynchronous=True)
        except Exception:  # noqa: BLE001 - the next event reads it again
            _log.warning("dask.capacity_unknown", executor=self.name, exc_info=True)
            return
        if number < self._last_read:
            return  # a later read came back first
        self._last_read = number
        capacity = sum(nthreads.values())
        if capacity != self._capacity:
            self._capacity = capacity
            _log.info("executor.capacity_changed", executor=self.name, capacity=capacity)
            self.capacity_changed()

    async def _let_go(self, client: distributed.Client) -> None:
        """At close: stop listening, cancel what still runs on the cluster."""
        for task in list(self._waiting):
            task.cancel()
        for topic in (self._topic, "all"):
            client.unsubscribe_topic(topic)
        interrupted = WorkLetGo(f"executor {self.name} closed")
        while self._to_loop:  # handed over, never submitted: let go too
            item = self._to_loop.popleft()
            if not isinstance(item, str):
                item[0](None, interrupted)
        running = list(self._running.values())
        self._running.clear()
        for timer in (*self._timers.values(), *self._looks.values()):
            timer.cancel()
        self._timers.clear()
        self._looks.clear()
        for done, _call, _future in running:
            done(None, interrupted)
        if running:
            await _cancel(client, *(future for _done, _call, future in running))

    # -- closing -----------------------------------------------------------------------------

    def close(self, *, wait: bool = True) -> None:
        super().close(wait=wait)
        with self._lock:
            client, self._client = self._client, None
            cluster, self._cluster = self._cluster, None
            self._closing = client is not None or self._closing
            watch, self._watcher = self._watcher, None
        if watch is not None:
            watch.cancel()
        if client is None:
            return
        try:
            client.sync(self._let_go, client)
        except Exception:  # noqa: BLE001 - closing goes on: the cluster may be gone
            _log.warning("executor.close_failed", executor=self.name, exc_info=True)
        if client is not self._given_client:
            client.close()
        if cluster is not None:
            cluster.close()

    def __repr__(self) -> str:
        where = self.address or ("a given client" if self._given_client else "a LocalCluster")
        return f"DaskExecutor({where}, name={self.name!r})"


def _on_loop(loop: Any, callback: Callable[..., Any], *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: so is the cluster's work for us
        loop.add_callback(callback, *args)


async def _cancel(client: distributed.Client, *futures: distributed.Future[Any]) -> None:
    try:
        await client.cancel(list(futures), asynchronous=True, reason="timeout or cancel")
    except Exception:  # noqa: BLE001 - a client closing or gone cancels everything anyway
        _log.debug("dask.cancel_failed", exc_info=True)


class _Held(set[asyncio.Future[Any]]):
    """Tasks held until they end (the loop keeps only weak references to them)."""

    def add(self, task: asyncio.Future[Any]) -> None:
        super().add(task)
        task.add_done_callback(self.discard)


def _running_for(keys: list[str], dask_worker: Any) -> dict[str, float]:
    """On a worker (``Client.run``): how long it has run each of ``keys`` it runs now,
    in seconds by its own clock (Dask's record of the task's start, as its heartbeat
    reads it): no clock is compared across machines. ``dask_worker`` comes by keyword."""
    from distributed.metrics import time

    state = dask_worker.state
    now = time()
    ran: dict[str, float] = {}
    for key in keys:
        task = state.tasks.get(key)
        if task is not None and (task in state.executing or task in state.long_running):
            start = getattr(task, "start_time", None)
            ran[key] = 0.0 if start is None else max(0.0, now - start)
    return ran


def _executing_keys(dask_worker: Any) -> list[str]:
    """On a worker (``Client.run``): the keys its threads run, those let go included."""
    state = dask_worker.state
    return [task.key for task in (*state.executing, *state.long_running)]


def _cancelled_error(call: Call, reason: str | None) -> TaskExecutionError:
    if reason == "scheduler-connection-lost":
        why = "the client lost its scheduler"
    elif reason in (None, "unknown"):  # distributed's default reason
        why = "not by this manager"
    else:
        why = reason
    return TaskExecutionError(
        f"task {call.task_name!r} ({call.task_id}): its Dask task {call.key!r} was "
        f"cancelled on the cluster ({why}; attempt {call.attempt})",
        call.task_id,
        {"attempt": call.attempt, "key": call.key, "reason": reason},
    )


def _attempt_error(call: Call, what: str) -> TaskExecutionError:
    """An attempt that failed because of its Dask side (``what``: its client, its worker)."""
    return TaskExecutionError(
        f"task {call.task_name!r} ({call.task_id}): {what} (attempt {call.attempt})",
        call.task_id,
        {"attempt": call.attempt, "key": call.key},
    )


def _client_closed_error(call: Call, status: str) -> TaskExecutionError:
    return _attempt_error(call, f"its Dask client is {status}")


def _lost_error(call: Call, what: str) -> TaskExecutionError:
    return _attempt_error(call, f"its Dask worker {what}")
