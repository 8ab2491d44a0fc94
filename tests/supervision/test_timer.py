"""The process-wide timer service: one thread for every timer, cancellable, on demand."""

from __future__ import annotations

import queue
import threading
from typing import Any

import pytest

from supervision import TimerService, send_after, timer_service
from tests.supervision.conftest import WAIT, Watcher


def timer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("supervision-timer")]


def test_send_after_tells_the_actor() -> None:
    inbox: queue.Queue[Any] = queue.Queue()
    ref = Watcher.start(inbox)
    try:
        handle = send_after(ref, "ding", 0.001)
        assert inbox.get(timeout=WAIT) == "ding"
        assert handle.fired
        assert not handle.cancel()
    finally:
        ref.stop()


def test_timers_fire_in_deadline_order_on_one_thread() -> None:
    service = TimerService(name="supervision-timer-test")
    fired: queue.Queue[tuple[str, str]] = queue.Queue()
    for name, delay in [("c", 0.03), ("a", 0.0), ("b", 0.01)]:
        service.call_later(delay, lambda n=name: fired.put((n, threading.current_thread().name)))
    got = [fired.get(timeout=WAIT) for _ in range(3)]
    assert [n for n, _ in got] == ["a", "b", "c"]
    assert {t for _, t in got} == {"supervision-timer-test"}
    assert len(timer_threads()) <= 1


def test_a_cancelled_timer_does_not_fire() -> None:
    service = TimerService(name="supervision-timer-test")
    fired: queue.Queue[str] = queue.Queue()
    cancelled = service.call_later(0.01, lambda: fired.put("cancelled"))
    service.call_later(0.02, lambda: fired.put("kept"))
    assert cancelled.cancel() is True
    assert cancelled.cancel() is False
    assert fired.get(timeout=WAIT) == "kept"
    assert service.pending == 0
    assert fired.empty()


def test_the_thread_exits_when_no_timer_is_pending() -> None:
    service = TimerService(name="supervision-timer-idle")
    service.call_later(3600, lambda: None).cancel()  # nothing pending: the thread goes
    for thread in timer_threads():
        thread.join(WAIT)
    assert not [t for t in threading.enumerate() if t.name == "supervision-timer-idle"]


def test_a_failing_callback_does_not_stop_the_others(log_events: list[dict[str, Any]]) -> None:
    service = TimerService(name="supervision-timer-test")
    fired = threading.Event()

    def boom() -> None:
        raise RuntimeError("boom")

    service.call_later(0, boom)
    service.call_later(0.001, fired.set)
    assert fired.wait(WAIT)
    assert [e["event"] for e in log_events] == ["timer.callback_failed"]


def test_many_cancelled_timers_do_not_pile_up() -> None:
    service = TimerService(name="supervision-timer-test")
    keep = service.call_later(3600, lambda: None)
    for _ in range(5000):
        service.call_later(3600, lambda: None).cancel()
    assert service.pending == 1
    assert len(service._heap) < 2100  # compacted as it went
    keep.cancel()


@pytest.mark.parametrize(("delay", "error"), [(-1, ValueError), ("1", TypeError)])
def test_bad_delays_are_refused(delay: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="delay"):
        timer_service().call_later(delay, lambda: None)
    assert timer_service().pending == 0
