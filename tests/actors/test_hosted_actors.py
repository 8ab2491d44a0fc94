"""The same actor behaviour over every actor runtime: pykka's threads, a pool, a loop.

Hosted actors plug into pykka through its hooks for new actor types, so everything a
ThreadingActor does, they must do too; the ``runtime`` fixture runs each test on each.
"""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest

from actors import AsyncioDispatcher, Dispatcher, HostedActor, ThreadPoolDispatcher
from supervision import ChildSpec, ExitReason, Supervisor, SupervisorSpec, Terminated, watch
from tests.supervision.conftest import Watcher

from .conftest import WAIT


class Runtime:
    """Starts a behaviour class as a ThreadingActor or as a HostedActor on a dispatcher."""

    def __init__(self, name: str, dispatcher: Dispatcher | None) -> None:
        self.name = name
        self.dispatcher = dispatcher
        self._classes: dict[type, type[pykka.Actor]] = {}

    def actor_class(self, behaviour: type) -> type[pykka.Actor]:
        if behaviour not in self._classes:
            base = pykka.ThreadingActor if self.dispatcher is None else HostedActor
            self._classes[behaviour] = type(
                f"{behaviour.__name__}On{self.name}", (behaviour, base), {}
            )
        return self._classes[behaviour]

    def starter(self, behaviour: type) -> Callable[..., pykka.ActorRef[Any]]:
        cls = self.actor_class(behaviour)
        if self.dispatcher is None:
            return cls.start
        return functools.partial(cls.start_on, self.dispatcher)  # type: ignore[attr-defined]

    def start(self, behaviour: type, *args: Any, **kwargs: Any) -> pykka.ActorRef[Any]:
        return self.starter(behaviour)(*args, **kwargs)


@pytest.fixture(params=["threading", "pool", "loop"])
def runtime(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    dispatcher: Dispatcher | None = None
    if request.param == "pool":
        dispatcher = ThreadPoolDispatcher(4, name="test-pool")
    elif request.param == "loop":
        dispatcher = AsyncioDispatcher(name="test-loop")
    yield Runtime(request.param, dispatcher)
    pykka.ActorRegistry.stop_all(block=True, timeout=WAIT)
    if dispatcher is not None:
        dispatcher.shutdown()


class Recorder:
    """Records its life in a queue; answers (name, message); crashes on "crash"."""

    def __init__(self, events: queue.Queue[Any], fail_start: bool = False) -> None:
        super().__init__()
        self.events = events
        self.fail_start = fail_start
        self.value = 7

    def on_start(self) -> None:
        if self.fail_start:
            raise RuntimeError("cannot start")
        self.events.put("started")

    def on_stop(self) -> None:
        self.events.put("stopped")

    def on_failure(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        self.events.put(("failure", exc_value))

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crashed")
        if message == "ask-error":
            raise ValueError("bad question")
        if message == "stop-yourself":
            self.stop()  # type: ignore[attr-defined]
            return None
        self.events.put(("got", message))
        return ("reply", message)

    def double(self, n: int) -> int:
        return 2 * n


def test_on_start_runs_before_the_first_message(runtime: Runtime) -> None:
    events: queue.Queue[Any] = queue.Queue()
    ref = runtime.start(Recorder, events)
    ref.tell("hello")
    assert events.get(timeout=WAIT) == "started"
    assert events.get(timeout=WAIT) == ("got", "hello")
    ref.stop()


def test_ask_and_tell(runtime: Runtime) -> None:
    ref = runtime.start(Recorder, queue.Queue())
    assert ref.ask("ping", timeout=WAIT) == ("reply", "ping")
    future = ref.ask("later", block=False)
    assert future.get(timeout=WAIT) == ("reply", "later")
    ref.stop()


def test_messages_are_handled_in_order_one_at_a_time(runtime: Runtime) -> None:
    class Sequencer:
        def __init__(self) -> None:
            super().__init__()
            self.busy = False
            self.seen: dict[int, list[int]] = {}
            self.overlaps = 0

        def on_receive(self, message: tuple[int, int]) -> None:
            if self.busy:
                self.overlaps += 1
            self.busy = True
            sender, n = message
            self.seen.setdefault(sender, []).append(n)
            self.busy = False

        def result(self) -> tuple[dict[int, list[int]], int]:
            return self.seen, self.overlaps

    ref = runtime.start(Sequencer)
    start = threading.Barrier(4, timeout=WAIT)

    def send(sender: int) -> None:
        start.wait()
        for n in range(100):
            ref.tell((sender, n))

    threads = [threading.Thread(target=send, args=(s,)) for s in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    seen, overlaps = ref.proxy().result().get(timeout=WAIT)
    assert overlaps == 0
    assert seen == {s: list(range(100)) for s in range(4)}
    ref.stop()


def test_an_ask_that_raises_goes_to_the_caller_and_the_actor_lives(runtime: Runtime) -> None:
    ref = runtime.start(Recorder, queue.Queue())
    with pytest.raises(ValueError, match="bad question"):
        ref.ask("ask-error", timeout=WAIT)
    assert ref.ask("still here", timeout=WAIT) == ("reply", "still here")
    ref.stop()


def test_a_tell_that_raises_fails_the_actor(runtime: Runtime) -> None:
    events: queue.Queue[Any] = queue.Queue()
    ref = runtime.start(Recorder, events)
    assert events.get(timeout=WAIT) == "started"
    ref.tell("crash")
    kind, error = events.get(timeout=WAIT)
    assert kind == "failure"
    assert str(error) == "crashed"
    assert ref.actor_stopped.wait(WAIT)
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("anyone?", timeout=WAIT)
    assert ref not in pykka.ActorRegistry.get_all()


def test_a_failing_on_start_stops_the_actor(runtime: Runtime) -> None:
    ref = runtime.start(Recorder, queue.Queue(), fail_start=True)
    assert ref.actor_stopped.wait(WAIT)
    assert ref not in pykka.ActorRegistry.get_all()


def test_stop_runs_on_stop_and_unregisters(runtime: Runtime) -> None:
    events: queue.Queue[Any] = queue.Queue()
    ref = runtime.start(Recorder, events)
    assert events.get(timeout=WAIT) == "started"
    assert ref in pykka.ActorRegistry.get_all()
    ref.stop(timeout=WAIT)
    assert events.get(timeout=WAIT) == "stopped"
    assert ref not in pykka.ActorRegistry.get_all()
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("too late")


def test_an_actor_can_stop_itself(runtime: Runtime) -> None:
    events: queue.Queue[Any] = queue.Queue()
    ref = runtime.start(Recorder, events)
    ref.tell("stop-yourself")
    assert events.get(timeout=WAIT) == "started"
    assert events.get(timeout=WAIT) == "stopped"
    assert ref.actor_stopped.wait(WAIT)


def test_proxies(runtime: Runtime) -> None:
    ref = runtime.start(Recorder, queue.Queue())
    proxy = ref.proxy()
    assert proxy.double(21).get(timeout=WAIT) == 42
    assert proxy.value.get(timeout=WAIT) == 7
    ref.stop()


def test_many_actors_share_the_dispatchers_threads(runtime: Runtime) -> None:
    if runtime.dispatcher is None:
        pytest.skip("a ThreadingActor has a thread of its own by design")
    before = threading.active_count()
    refs = [runtime.start(Recorder, queue.Queue()) for _ in range(200)]
    assert [ref.ask(n, timeout=WAIT) for n, ref in enumerate(refs)] == [
        ("reply", n) for n in range(200)
    ]
    assert threading.active_count() - before <= 4  # the pool's threads, not one per actor
    for ref in refs:
        ref.stop()


def test_supervisors_restart_hosted_actors(runtime: Runtime) -> None:
    events: queue.Queue[Any] = queue.Queue()
    start = runtime.starter(Recorder)
    spec = SupervisorSpec(children=[ChildSpec("recorder", start, args=(events,))])
    supervisor = Supervisor.start(spec)
    try:
        assert events.get(timeout=WAIT) == "started"
        first = supervisor.proxy().which_children().get(timeout=WAIT)[0].ref
        first.tell("crash")
        assert events.get(timeout=WAIT)[0] == "failure"
        assert events.get(timeout=WAIT) == "started"  # a new incarnation
        second = supervisor.proxy().which_children().get(timeout=WAIT)[0].ref
        assert second is not first
        assert second.ask("x", timeout=WAIT) == ("reply", "x")
    finally:
        supervisor.stop()


def test_watchers_are_told_of_a_failure(runtime: Runtime) -> None:
    inbox: queue.Queue[Any] = queue.Queue()
    watcher = Watcher.start(inbox)
    ref = runtime.start(Recorder, queue.Queue())
    try:
        watch(ref, watcher)
        ref.tell("crash")
        record = inbox.get(timeout=WAIT)
        assert isinstance(record, Terminated)
        assert record.reason is ExitReason.FAILED
        assert str(record.error) == "crashed"
    finally:
        watcher.stop()


class Fatal(BaseException):
    pass


@pytest.mark.parametrize("kind", ["pool", "loop"])
def test_a_base_exception_fails_only_its_own_hosted_actor(kind: str) -> None:
    dispatcher: Dispatcher = ThreadPoolDispatcher(2) if kind == "pool" else AsyncioDispatcher()

    class Doomed(HostedActor):
        def on_receive(self, message: Any) -> Any:
            raise Fatal("out")

    class Survivor(HostedActor):
        def on_receive(self, message: Any) -> Any:
            return message

    try:
        doomed = Doomed.start_on(dispatcher)
        survivor = Survivor.start_on(dispatcher)
        doomed.tell("die")
        assert doomed.actor_stopped.wait(WAIT)
        assert survivor.ask("alive?", timeout=WAIT) == "alive?"
        assert survivor in pykka.ActorRegistry.get_all()
        survivor.stop()
    finally:
        dispatcher.shutdown()


def test_start_needs_a_dispatcher() -> None:
    class Homeless(HostedActor):
        pass

    with pytest.raises(TypeError, match="has no dispatcher"):
        Homeless.start()
    with pytest.raises(TypeError, match="takes a Dispatcher"):
        Homeless.start_on("pool")  # type: ignore[arg-type]
    assert pykka.ActorRegistry.get_all() == []


def test_a_pool_gives_each_queued_callable_a_thread_of_its_own() -> None:
    # Three callables put back to back must run at the same time: none may queue behind
    # a thread that another one has already claimed.
    pool = ThreadPoolDispatcher(3)
    together = threading.Barrier(3, timeout=WAIT)
    met: queue.Queue[bool] = queue.Queue()
    try:
        for _ in range(2):  # the second round reuses the idle threads
            for _ in range(3):
                pool.execute(lambda: met.put(together.wait() >= 0))
            assert [met.get(timeout=WAIT) for _ in range(3)] == [True] * 3
    finally:
        pool.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.execute(lambda: None)
