"""Named children: whereis, named references, and the buffer that outlives a restart."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import defaultdict
from typing import Any

import pykka
import pytest

from supervision import (
    Backoff,
    ChildSpec,
    ChildStartError,
    Restart,
    RestartBufferFull,
    Supervisor,
    SupervisorSpec,
    named,
    whereis,
)
from tests.supervision.conftest import WAIT, FakeTimer, wait_exit


class Recorder(pykka.ThreadingActor):
    """Records ``(incarnation, message)``; "crash" fails it, "block" waits for a gate."""

    incarnations = 0

    def __init__(self, seen: queue.Queue[tuple[int, Any]], gate: threading.Event) -> None:
        super().__init__()
        self.seen = seen
        self.gate = gate
        self.count = 0

    def on_start(self) -> None:
        type(self).incarnations += 1
        self.incarnation = type(self).incarnations

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crashed on purpose")
        if message == "block":
            self.gate.wait(WAIT)
            return None
        if message == "exit":
            self.stop()
            return None
        self.count += 1
        self.seen.put((self.incarnation, message))
        return (self.incarnation, message)

    def whoami(self) -> int:
        return self.incarnation


def recorder_spec(
    seen: queue.Queue[tuple[int, Any]], gate: threading.Event | None = None, **options: Any
) -> ChildSpec:
    return ChildSpec("rec", Recorder, args=(seen, gate or threading.Event()), name="rec", **options)


def drain(seen: queue.Queue[tuple[int, Any]], count: int) -> list[tuple[int, Any]]:
    return [seen.get(timeout=WAIT) for _ in range(count)]


def test_whereis_follows_the_running_incarnation() -> None:
    seen: queue.Queue[tuple[int, Any]] = queue.Queue()
    sup = Supervisor.start(SupervisorSpec(max_restarts=5, children=[recorder_spec(seen)]))
    first = whereis("rec")
    assert first is not None
    assert first.is_alive()
    assert sup.proxy().which_children().get(timeout=WAIT)[0].name == "rec"
    first.tell("crash")
    wait_exit(first)
    assert named("rec").ask("ping", timeout=WAIT)[1] == "ping"  # the next incarnation answers
    second = whereis("rec")
    assert second is not None
    assert second != first
    sup.proxy().terminate_child("rec").get(timeout=WAIT)
    assert whereis("rec") is None
    with pytest.raises(pykka.ActorDeadError, match="no actor is named 'rec'"):
        named("rec").tell("hello")
    sup.stop()
    assert whereis("rec") is None


def test_messages_survive_restarts_in_order() -> None:
    """Those queued behind the failing message reach the next incarnation; it is lost."""
    seen: queue.Queue[tuple[int, Any]] = queue.Queue()
    gate = threading.Event()
    sup = Supervisor.start(SupervisorSpec(children=[recorder_spec(seen, gate)]))
    ref = named("rec")
    first = ref.proxy().whoami().get(timeout=WAIT)
    ref.tell("block")  # holds the actor while the rest queue up behind it
    ref.tell("crash")
    for i in range(5):
        ref.tell(i)
    gate.set()
    got = drain(seen, 5)
    assert [m for _, m in got] == [0, 1, 2, 3, 4]
    assert {inc for inc, _ in got} == {first + 1}
    sup.stop()


def test_messages_sent_during_the_backoff_wait_for_the_next_incarnation() -> None:
    seen: queue.Queue[tuple[int, Any]] = queue.Queue()
    timer = FakeTimer()
    spec = SupervisorSpec(backoff=Backoff(min_delay=1.0), children=[recorder_spec(seen)])
    sup = Supervisor.start(spec, timer=timer)
    ref = named("rec")
    ref.tell("crash")
    _, fire = timer.next_delay()  # the child is down, waiting out its backoff
    assert whereis("rec") is None
    assert not ref.is_alive()
    futures = [ref.ask(i, block=False) for i in range(3)]
    ref.tell(3)
    fire()
    assert [m for _, m in drain(seen, 4)] == [0, 1, 2, 3]
    assert [f.get(timeout=WAIT)[1] for f in futures] == [0, 1, 2]
    sup.stop()


def test_the_buffer_has_a_bound_and_says_so() -> None:
    seen: queue.Queue[tuple[int, Any]] = queue.Queue()
    timer = FakeTimer()
    spec = SupervisorSpec(
        backoff=Backoff(min_delay=1.0), children=[recorder_spec(seen, restart_buffer=2)]
    )
    sup = Supervisor.start(spec, timer=timer)
    ref = named("rec")
    ref.tell("crash")
    timer.next_delay()
    ref.tell(1)
    ref.tell(2)
    with pytest.raises(RestartBufferFull, match=r"'rec' is restarting .* 2 messages"):
        ref.tell(3)
    sup.stop()


def test_messages_carried_from_the_inbox_do_not_count_against_the_bound() -> None:
    seen: queue.Queue[tuple[int, Any]] = queue.Queue()
    gate, timer = threading.Event(), FakeTimer()
    spec = SupervisorSpec(
        backoff=Backoff(min_delay=1.0), children=[recorder_spec(seen, gate, restart_buffer=1)]
    )
    sup = Supervisor.start(spec, timer=timer)
    ref = named("rec")
    for message in ("block", "crash", "a", "b", "c"):
        ref.tell(message)
    gate.set()
    _, fire = timer.next_delay()
    ref.tell("d")  # three carried, one sent since: within the bound of one
    with pytest.raises(RestartBufferFull):
        ref.tell("e")
    fire()
    assert [m for _, m in drain(seen, 4)] == ["a", "b", "c", "d"]
    sup.stop()


def test_messages_waiting_for_a_child_that_will_not_return_fail() -> None:
    seen: queue.Queue[tuple[int, Any]] = queue.Queue()
    timer = FakeTimer()
    spec = SupervisorSpec(backoff=Backoff(min_delay=1.0), children=[recorder_spec(seen)])
    sup = Supervisor.start(spec, timer=timer)
    named("rec").tell("crash")
    timer.next_delay()
    waiting = named("rec").ask("late", block=False)
    sup.proxy().terminate_child("rec").get(timeout=WAIT)
    with pytest.raises(pykka.ActorDeadError, match="'rec' stopped before handling"):
        waiting.get(timeout=WAIT)
    sup.stop()


def test_a_normal_final_exit_frees_the_name() -> None:
    seen: queue.Queue[tuple[int, Any]] = queue.Queue()
    sup = Supervisor.start(
        SupervisorSpec(children=[recorder_spec(seen, restart=Restart.TRANSIENT)])
    )
    ref = whereis("rec")
    assert ref is not None
    ref.tell("exit")
    wait_exit(ref)
    sup.proxy().which_children().get(timeout=WAIT)  # the supervisor has seen the exit
    assert whereis("rec") is None
    sup.stop()


def test_a_taken_name_is_refused_naming_both_children() -> None:
    seen: queue.Queue[tuple[int, Any]] = queue.Queue()
    first = Supervisor.start(SupervisorSpec(children=[recorder_spec(seen)]), name="one")
    spec = SupervisorSpec(children=[ChildSpec("other", Recorder, args=(seen, None), name="rec")])
    with pytest.raises(ChildStartError) as caught:
        Supervisor.start(spec, name="two")
    message = str(caught.value)
    assert "child 'rec' of supervisor one" in message
    assert "child 'other' of supervisor two" in message
    assert whereis("rec") is not None  # the holder is untouched
    first.stop()


def test_two_children_of_one_spec_cannot_share_a_name() -> None:
    with pytest.raises(ValueError, match="two children are named 'x'"):
        SupervisorSpec(
            children=[ChildSpec("a", Recorder, name="x"), ChildSpec("b", Recorder, name="x")]
        )


def test_a_named_proxy_reaches_each_incarnation() -> None:
    seen: queue.Queue[tuple[int, Any]] = queue.Queue()
    sup = Supervisor.start(SupervisorSpec(children=[recorder_spec(seen)]))
    proxy = named("rec").proxy()
    first = proxy.whoami().get(timeout=WAIT)
    proxy.on_receive.defer("crash")
    assert proxy.whoami().get(timeout=WAIT) == first + 1
    assert proxy.count.get(timeout=WAIT) == 0  # an attribute, read from the new one
    sup.stop()


def test_the_application_event_loop_awaits_a_named_ask() -> None:
    seen: queue.Queue[tuple[int, Any]] = queue.Queue()
    sup = Supervisor.start(SupervisorSpec(children=[recorder_spec(seen)]))

    async def main() -> Any:
        named("rec").tell("crash")
        return await named("rec").ask("after", block=False)

    assert asyncio.run(main())[1] == "after"
    sup.stop()


def test_pykka_private_names_still_exist() -> None:
    """supervision._names builds envelopes and knows the stop marker: pin them."""
    from pykka._envelope import Envelope
    from pykka.messages import _ActorStop

    envelope = Envelope("m", reply_to=None)
    assert (envelope.message, envelope.reply_to) == ("m", None)
    assert _ActorStop() is not None


def test_bad_names_are_refused() -> None:
    with pytest.raises(TypeError, match="name must be a non-empty string, got ''"):
        named("")
    with pytest.raises(TypeError, match="name must be a non-empty string, got 3"):
        whereis(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ChildSpec 'a': name must be a non-empty string"):
        ChildSpec("a", Recorder, name="")


class Sequencer(pykka.ThreadingActor):
    """Records ``(sender, n)`` in a shared log; counts its starts; "crash" fails it."""

    def __init__(
        self, log: list[tuple[int, int]], starts: list[int], done: threading.Event
    ) -> None:
        super().__init__()
        self.log, self.starts, self.done = log, starts, done

    def on_start(self) -> None:
        self.starts.append(1)

    def on_receive(self, message: Any) -> None:
        if message == "crash":
            raise RuntimeError("crash")
        if message == "ping":
            return
        self.log.append(message)
        if len(self.log) == 10_000:
            self.done.set()


def test_ten_thousand_messages_through_fifty_restarts_arrive_in_order() -> None:
    log: list[tuple[int, int]] = []
    starts: list[int] = []
    done = threading.Event()
    spec = SupervisorSpec(
        max_restarts=100,
        within_seconds=60,
        # A bound above the 10,000 sent: none can be refused, however slow a restart.
        children=[
            ChildSpec("seq", Sequencer, args=(log, starts, done), name="seq", restart_buffer=20_000)
        ],
    )
    sup = Supervisor.start(spec)
    ref = named("seq")
    go = threading.Barrier(3)

    def send(sender: int) -> None:
        go.wait(WAIT)
        for n in range(5_000):
            ref.tell((sender, n))

    def crash() -> None:
        go.wait(WAIT)
        for _ in range(50):
            ref.tell("crash")
            # The next incarnation answers: each crash is a restart of its own.
            ref.ask("ping", timeout=WAIT)

    threads = [threading.Thread(target=send, args=(s,)) for s in (1, 2)]
    threads.append(threading.Thread(target=crash))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 4)
    assert done.wait(WAIT * 4), f"only {len(log)} of 10000 arrived"
    per_sender: dict[int, list[int]] = defaultdict(list)
    for sender, n in log:
        per_sender[sender].append(n)
    assert per_sender[1] == list(range(5_000))
    assert per_sender[2] == list(range(5_000))
    assert len(starts) == 51
    sup.stop()
