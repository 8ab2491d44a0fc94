"""Absurd numbers are refused where they come in, and the timer thread survives anything."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import supervision._timer as timer_module
from supervision import (
    Backoff,
    ChildSpec,
    ConfigError,
    SupervisorSpec,
    TimerService,
    send_after,
    timer_service,
    tree_from_config,
)
from supervision._validate import MAX_SECONDS
from tests.supervision.conftest import WAIT, Worker

NAN, INF = float("nan"), float("inf")
HUGE_INT = 10**400  # too large even to convert to a float

# What a structlog event must not carry: stdlib logging refuses these as `extra` keys.
LOG_RECORD_KEYS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class Boom(BaseException):
    """Not an Exception: ``except Exception`` does not catch it."""


def fresh_service() -> TimerService:
    return TimerService(name="supervision-timer-test")


# -- the timer thread -------------------------------------------------------------------


@pytest.mark.parametrize("error", [Boom("boom"), SystemExit(3), KeyboardInterrupt()])
def test_a_base_exception_in_a_callback_does_not_stop_the_timer(
    error: BaseException, log_events: list[dict[str, Any]]
) -> None:
    service = fresh_service()
    fired = threading.Event()

    def raise_it() -> None:
        raise error

    service.call_later(0, raise_it)
    service.call_later(0.001, fired.set)
    assert fired.wait(WAIT)
    [event] = log_events
    assert (event["event"], event["level"]) == ("timer.callback_failed", "error")
    assert event["error_type"] == type(error).__qualname__
    assert type(error).__qualname__ in event["traceback"]
    assert not (set(event) - {"level"}) & LOG_RECORD_KEYS


def test_an_error_in_the_loop_itself_drops_that_timer_only(
    monkeypatch: pytest.MonkeyPatch, log_events: list[dict[str, Any]]
) -> None:
    service = fresh_service()
    failed_once = threading.Event()

    def monotonic() -> float:  # fails once, on the timer thread, in the loop's bookkeeping
        if threading.current_thread().name == "supervision-timer-test" and not failed_once.is_set():
            failed_once.set()
            raise RuntimeError("clock broke")
        return time.monotonic()

    class FakeTime:
        pass

    fake_time = FakeTime()
    fake_time.monotonic = monotonic  # type: ignore[attr-defined]
    monkeypatch.setattr(timer_module, "time", fake_time)

    victim_called = threading.Event()
    victim = service.call_later(0, victim_called.set)
    assert failed_once.wait(WAIT)
    fired = threading.Event()
    service.call_later(0, fired.set)
    assert fired.wait(WAIT)
    assert not victim_called.is_set()
    assert victim.cancelled
    [event] = log_events
    assert (event["event"], event["level"]) == ("timer.loop_failed", "error")
    assert event["error"] == "RuntimeError('clock broke')"
    assert not (set(event) - {"level"}) & LOG_RECORD_KEYS


BAD_DELAYS = [
    (1e10, ValueError),
    (MAX_SECONDS * 2, ValueError),
    (INF, ValueError),
    (NAN, ValueError),
    (-INF, ValueError),
    pytest.param(HUGE_INT, ValueError, id="10**400"),
    (True, TypeError),
    (None, TypeError),
]


@pytest.mark.parametrize(("delay", "error"), BAD_DELAYS)
def test_a_huge_delay_is_refused_and_later_timers_still_fire(
    delay: Any, error: type[Exception]
) -> None:
    service = fresh_service()
    with pytest.raises(error, match=r"^delay must be a .*got "):
        service.call_later(delay, lambda: None)
    with pytest.raises(error, match=r"^delay must be a .*got "):
        service.send_after(None, "never", delay)  # type: ignore[arg-type]
    assert service.pending == 0
    fired = threading.Event()
    service.call_later(0, fired.set)
    assert fired.wait(WAIT)


def test_the_process_wide_send_after_refuses_an_infinite_delay() -> None:
    with pytest.raises(ValueError, match=r"delay must be a finite number .* got inf"):
        send_after(None, "never", INF)  # type: ignore[arg-type]
    assert timer_service().pending == 0


def test_the_longest_delay_is_accepted_and_does_not_block_shorter_ones() -> None:
    service = fresh_service()
    longest = service.call_later(MAX_SECONDS, lambda: None)
    fired = threading.Event()
    service.call_later(0.001, fired.set)
    assert fired.wait(WAIT)
    assert longest.cancel()


def test_the_loop_caps_its_wait_whatever_a_deadline_says() -> None:
    # Defence in depth: a deadline no check let through must not overflow the clock.
    service = fresh_service()
    far = service._schedule(time.monotonic() + 1e12, lambda: None)
    fired = threading.Event()
    service.call_later(0.001, fired.set)
    assert fired.wait(WAIT)
    assert service.pending == 1
    assert far.cancel()


# -- Backoff ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"factor": NAN}, ValueError, "Backoff.factor must be a finite number >= 1 .* got nan"),
        ({"factor": INF}, ValueError, "Backoff.factor .* got inf"),
        ({"factor": 1e10}, ValueError, "Backoff.factor .* got 10000000000.0"),
        ({"factor": True}, TypeError, "Backoff.factor must be a number, got True"),
        ({"factor": 0.5}, ValueError, "Backoff.factor must be a finite number >= 1"),
        ({"min_delay": INF}, ValueError, "Backoff.min_delay .* got inf"),
        pytest.param(
            {"min_delay": HUGE_INT}, ValueError, r"Backoff.min_delay .* \(401 chars\)", id="10**400"
        ),
        ({"max_delay": INF}, ValueError, "Backoff.max_delay .* got inf"),
        ({"max_delay": 1e10}, ValueError, "Backoff.max_delay .* got 10000000000.0"),
        ({"max_delay": NAN}, ValueError, "Backoff.max_delay .* got nan"),
        ({"jitter": INF}, ValueError, "Backoff.jitter .* got inf"),
        ({"jitter": NAN}, ValueError, "Backoff.jitter .* got nan"),
        ({"reset_after": NAN}, ValueError, "Backoff.reset_after .* got nan"),
        ({"reset_after": INF}, ValueError, "Backoff.reset_after .* got inf"),
        ({"reset_after": 1e300}, ValueError, "Backoff.reset_after .* got 1e\\+300"),
    ],
)
def test_absurd_backoffs_are_refused(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Backoff(**kwargs)


def test_the_largest_backoff_is_accepted() -> None:
    backoff = Backoff(min_delay=MAX_SECONDS, max_delay=MAX_SECONDS, reset_after=MAX_SECONDS)
    assert backoff.delay(10**9) == MAX_SECONDS


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [
        (Backoff(factor=10), 30.0),
        (Backoff(min_delay=0), 0.0),  # tenacity's overflow fallback would say max_delay
        (Backoff(min_delay=1e-300, max_delay=MAX_SECONDS, factor=1e6), MAX_SECONDS),
        (Backoff(min_delay=1.0, max_delay=2.0, factor=1), 1.0),
        (Backoff(min_delay=0.5, max_delay=0.5, factor=3), 0.5),
    ],
)
def test_a_large_attempt_number_gives_a_capped_delay(backoff: Backoff, expected: float) -> None:
    for attempt in (10_000, 10**9, HUGE_INT):
        assert backoff.delay(attempt) == expected


def test_jitter_never_takes_the_delay_above_max_delay() -> None:
    backoff = Backoff(min_delay=1.0, max_delay=5.0, factor=10, jitter=100.0)
    assert all(backoff.delay(n) <= 5.0 for n in (1, 2, 3, 10_000) for _ in range(20))


@pytest.mark.parametrize(("attempt", "error"), [(0, ValueError), (True, TypeError)])
def test_bad_attempt_numbers_are_refused(attempt: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="attempt must be an integer"):
        Backoff().delay(attempt)


# -- SupervisorSpec and ChildSpec -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"within_seconds": NAN}, ValueError, "SupervisorSpec.within_seconds .* got nan"),
        ({"within_seconds": INF}, ValueError, "SupervisorSpec.within_seconds .* got inf"),
        ({"within_seconds": 1e10}, ValueError, "SupervisorSpec.within_seconds .* got 1"),
        ({"within_seconds": 0}, ValueError, "SupervisorSpec.within_seconds .* > 0 .* got 0"),
        ({"within_seconds": -1.0}, ValueError, "SupervisorSpec.within_seconds .* got -1.0"),
        ({"within_seconds": "5"}, TypeError, "SupervisorSpec.within_seconds .* got '5'"),
        ({"max_restarts": True}, TypeError, "SupervisorSpec.max_restarts .* got True"),
        ({"max_restarts": 2.0}, TypeError, "SupervisorSpec.max_restarts .* got 2.0"),
        ({"max_restarts": -1}, ValueError, "SupervisorSpec.max_restarts .* got -1"),
    ],
)
def test_absurd_supervisor_specs_are_refused(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        SupervisorSpec(**kwargs)


@pytest.mark.parametrize(
    ("timeout", "error", "message"),
    [
        ("5", TypeError, "ChildSpec 'x': shutdown_timeout must be a number, got '5'"),
        (NAN, ValueError, "ChildSpec 'x': shutdown_timeout .* got nan"),
        (INF, ValueError, "ChildSpec 'x': shutdown_timeout .* got inf"),
        (1e10, ValueError, "ChildSpec 'x': shutdown_timeout .* got 1"),
        (-1, ValueError, "ChildSpec 'x': shutdown_timeout .* got -1"),
    ],
)
def test_absurd_shutdown_timeouts_are_refused(
    timeout: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        ChildSpec("x", Worker, shutdown_timeout=timeout)


def test_limits_themselves_are_accepted() -> None:
    spec = SupervisorSpec(
        max_restarts=0,
        within_seconds=MAX_SECONDS,
        children=[ChildSpec("x", Worker, shutdown_timeout=MAX_SECONDS)],
    )
    assert spec.within_seconds == MAX_SECONDS
    assert ChildSpec("y", Worker, shutdown_timeout=0).shutdown_timeout == 0


# -- configuration files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "where", "value"),
    [
        ("within_seconds = nan\n", "within_seconds", "nan"),
        ("within_seconds = inf\n", "within_seconds", "inf"),
        ("within_seconds = 1e10\n", "within_seconds", "10000000000.0"),
        ("backoff = { factor = inf }\n", "backoff.factor", "inf"),
        ("backoff = { reset_after = nan }\n", "backoff.reset_after", "nan"),
        (
            '[[children]]\nid = "a"\nstart = "tests.supervision.conftest:Worker"\n'
            "shutdown_timeout = inf\n",
            "children[0].shutdown_timeout",
            "inf",
        ),
    ],
)
def test_config_files_name_the_key_of_an_absurd_number(
    tmp_path: Path, toml: str, where: str, value: str
) -> None:
    path = tmp_path / "tree.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        tree_from_config(path)
    assert (caught.value.source, caught.value.where) == (str(path), where)
    assert caught.value.problem.startswith("must be a finite number")
    assert caught.value.problem.endswith(f"got {value}")


def test_config_keeps_its_wording_for_ordinary_mistakes() -> None:
    with pytest.raises(ConfigError) as caught:
        tree_from_config({"backoff": {"factor": 0.5}})
    assert str(caught.value).startswith("backoff: Backoff.factor must be a finite number >= 1")


def test_an_error_that_cannot_even_be_shown_does_not_stop_the_timer() -> None:
    class UnprintableError(Exception):
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    def raise_it() -> None:
        raise UnprintableError

    service = fresh_service()
    fired = threading.Event()
    service.call_later(0, raise_it)
    service.call_later(0.001, fired.set)
    assert fired.wait(WAIT)
