"""Flow control (issue 26): per-key concurrency and rate limits, resources, backpressure."""

from __future__ import annotations

import asyncio
import heapq
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors import ActorSystem, Task, TaskManager, TaskStatus
from actors.core.attempt import Attempt
from actors.core.limits import Gate, Group, Limit, LimitTable
from supervision import ConfigError

from .conftest import WAIT, run


class Recorder:
    """Counts attempts running per key, and the peak."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: dict[str, int] = defaultdict(int)
        self.peak: dict[str, int] = defaultdict(int)

    def enter(self, key: str) -> None:
        with self.lock:
            self.running[key] += 1
            self.peak[key] = max(self.peak[key], self.running[key])

    def leave(self, key: str) -> None:
        with self.lock:
            self.running[key] -= 1


def short(recorder: Recorder, key: str) -> str:
    recorder.enter(key)
    time.sleep(0.002)  # the work itself: a request's few milliseconds
    recorder.leave(key)
    return key


def _starts(tm: TaskManager, ids: list[str]) -> list[float]:
    moments = []
    for task_id in ids:
        task = tm.get_task(task_id)
        assert task is not None
        assert task.started_at is not None
        moments.append(task.started_at.timestamp())
    return sorted(moments)


def _check_rate(starts: list[float], rate: float, burst: int) -> None:
    """No window holds more starts than the bucket allows. ``started_at`` is read a
    moment after the decision, and a busy machine can delay that moment by a thread
    switch or two (15 ms of slack): the check holds over long windows all the same."""
    for i in range(len(starts)):
        for j in range(i + burst, len(starts)):
            assert starts[j] - starts[i] >= (j - i - burst + 1) / rate - 0.015, (i, j)


def _three_keys(per_key: int) -> None:
    recorder = Recorder()
    with TaskManager(max_concurrent_tasks=8) as tm:
        tm.limit("*", concurrency=2, rate="20/s")
        ids: dict[str, list[str]] = {k: [] for k in ("a.org", "b.org", "c.org")}
        for _ in range(per_key):
            for key, mine in ids.items():
                mine.append(tm.register_task("get", short, recorder, key, limit_key=key))
        for mine in ids.values():
            for task_id in mine:
                assert tm.future(task_id).result(per_key / 20 + WAIT) is not None
        for key, mine in ids.items():
            assert recorder.peak[key] <= 2
            _check_rate(_starts(tm, mine), 20.0, 1)


def test_three_keys_keep_their_concurrency_and_rate() -> None:
    _three_keys(8)


@pytest.mark.slow
def test_three_keys_sixty_tasks_each_keep_their_concurrency_and_rate() -> None:
    _three_keys(60)


def test_a_held_back_key_does_not_delay_an_unkeyed_task_or_another_key() -> None:
    recorder = Recorder()
    with TaskManager(max_concurrent_tasks=2) as tm:
        tm.limit("slow.org", concurrency=0)  # holds every task of the key back
        held = [tm.register_task("h", short, recorder, "slow", limit_key="slow.org")]
        held += [tm.register_task("h", short, recorder, "slow", limit_key="slow.org")]
        free = tm.register_task("free", short, recorder, "free")
        other = tm.register_task("other", short, recorder, "o", limit_key="fast.org")
        assert tm.future(free).result(WAIT) == "free"
        assert tm.future(other).result(WAIT) == "o"
        assert [tm.get_task_status(t) for t in held] == [TaskStatus.PENDING] * 2
        metrics = tm.get_metrics()
        assert metrics["limits"]["slow.org"]["waiting"] == 2
        assert metrics["running_tasks"] == 0  # held back: no slot taken
        tm.limit("slow.org", concurrency=1)  # changed while running: they go
        assert [tm.future(t).result(WAIT) for t in held] == ["slow", "slow"]


def test_keys_take_turns_once_the_queue_is_full() -> None:
    order: list[str] = []
    tm = TaskManager(max_concurrent_tasks=1, default_executor_type="sequential")
    ids = [tm.register_task("x", order.append, "a", limit_key="a") for _ in range(3)]
    ids += [tm.register_task("x", order.append, "b", limit_key="b") for _ in range(3)]
    with tm:
        for task_id in ids:
            tm.future(task_id).result(WAIT)
    assert order == ["a", "b", "a", "b", "a", "b"]


def test_priorities_still_order_tasks_within_a_key() -> None:
    order: list[int] = []
    tm = TaskManager(max_concurrent_tasks=1, default_executor_type="sequential")
    ids = [tm.register_task("x", order.append, p, limit_key="k", priority=p) for p in (1, 3, 2)]
    with tm:
        for task_id in ids:
            tm.future(task_id).result(WAIT)
    assert order == [3, 2, 1]


def test_resources_are_never_over_committed_and_too_much_is_refused() -> None:
    recorder = Recorder()
    with TaskManager(max_concurrent_tasks=6, resources={"gpu": 2}) as tm:
        with pytest.raises(ValueError, match="gpu=3"):
            tm.register_task("big", short, recorder, "gpu", resources={"gpu": 3})
        with pytest.raises(ValueError, match="'disk'"):
            tm.register_task("odd", short, recorder, "gpu", resources={"disk": 1})
        ids = [
            tm.register_task("g", short, recorder, "gpu", resources={"gpu": 1 + i % 2})
            for i in range(12)
        ]
        plain = tm.register_task("p", short, recorder, "plain")
        assert tm.future(plain).result(WAIT) == "plain"
        for task_id in ids:
            assert tm.future(task_id).result(WAIT) == "gpu"
        assert recorder.peak["gpu"] <= 2
        assert tm.get_metrics()["resources"] == {"gpu": {"capacity": 2, "free": 2}}


def test_max_pending_holds_under_eight_producers() -> None:
    release = threading.Semaphore(0)
    bound = 5

    def blocked() -> None:
        assert release.acquire(timeout=WAIT)

    with TaskManager(max_concurrent_tasks=4, max_pending=bound, pending_timeout=WAIT) as tm:
        ids: list[str] = []
        lock = threading.Lock()

        def produce() -> None:
            for _ in range(5):
                task_id = tm.register_task("b", blocked)
                with lock:
                    ids.append(task_id)

        producers = [threading.Thread(target=produce) for _ in range(8)]
        for producer in producers:
            producer.start()
        for _ in range(40):
            metrics = tm.get_metrics()
            unfinished = metrics["pending_tasks"] + metrics["running_tasks"]
            assert unfinished <= bound
            release.release()
        for producer in producers:
            producer.join(WAIT)
            assert not producer.is_alive()
        for task_id in ids:
            tm.future(task_id).result(WAIT)
        assert len(ids) == 40


def test_a_registration_without_room_fails_clearly_after_pending_timeout() -> None:
    hold = threading.Event()
    with TaskManager(max_pending=1, pending_timeout=0.05) as tm:
        first = tm.register_task("first", hold.wait, WAIT)
        with pytest.raises(TimeoutError, match=r"max_pending=1 .*pending_timeout=0.05"):
            tm.register_task("second", hold.wait, WAIT)
        assert len(tm.get_all_tasks()) == 1
        hold.set()
        tm.future(first).result(WAIT)
        tm.register_task("third", hold.wait, WAIT)  # room again


def test_an_awaiting_registration_waits_for_room_without_blocking_the_loop() -> None:
    async def main() -> None:
        hold = threading.Event()
        async with TaskManager(max_pending=1, pending_timeout=WAIT) as tm:
            first = await tm.register_task_async("first", hold.wait, WAIT)
            second = asyncio.ensure_future(tm.register_task_async("second", hold.wait, WAIT))
            await asyncio.sleep(0)  # the loop runs on while it waits
            assert not second.done()
            hold.set()
            await tm.execute_task(first)
            assert await tm.execute_task(await second) is True

    run(main())


def test_limit_key_and_resources_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    tm = TaskManager(journal=path, resources={"gpu": 1})
    task_id = tm.register_task("j", str, 1, limit_key="host", resources={"gpu": 1})
    tm.stop_sync()  # never started: the next run runs it
    with TaskManager(journal=path, resources={"gpu": 1}) as again:
        again.limit("host", concurrency=1)
        task = again.get_task(task_id)
        assert task is not None
        assert (task.limit_key, dict(task.resources)) == ("host", {"gpu": 1})
        assert again.future(task_id).result(WAIT) == "1"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda tm: tm.limit("k", rate="10/x"), r'rate must be .*"10/s".*got \'10/x\''),
        (lambda tm: tm.limit("k", rate=0), "rate must be"),
        (lambda tm: tm.limit("k", concurrency=-1), "concurrency"),
        (lambda tm: tm.limit("k", burst=0), "burst"),
        (lambda tm: tm.limit("", concurrency=1), "key"),
        (lambda tm: tm.register_task("x", str, limit_key=""), "limit_key"),
        (lambda tm: tm.register_task("x", str, resources={"gpu": -1}), r"resources\['gpu'\]"),
        (lambda tm: tm.options(resources=[1]), "resources must be a mapping"),
    ],
)
def test_bad_input_is_refused_naming_the_parameter(call: object, message: str) -> None:
    tm = TaskManager()
    try:
        with pytest.raises((TypeError, ValueError), match=message):
            call(tm)  # type: ignore[operator]
        assert tm.get_all_tasks() == []
    finally:
        tm.stop_sync()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_pending": 0}, "max_pending"),
        ({"pending_timeout": -1}, "pending_timeout"),
        ({"resources": {"gpu": -1}}, r"resources\['gpu'\]"),
        ({"resources": ["gpu"]}, "resources must be a mapping"),
    ],
)
def test_bad_settings_are_refused_naming_them(options: dict[str, Any], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        TaskManager(**options)


def test_a_rate_of_one_a_century_waits_without_overflowing_the_timer() -> None:
    with TaskManager() as tm:
        tm.limit("slow", rate=1e-12)
        first = tm.register_task("a", str, 1, limit_key="slow")
        second = tm.register_task("b", str, 2, limit_key="slow")
        assert tm.future(first).result(WAIT) == "1"  # a full bucket: one token
        assert tm.get_task_status(second) is TaskStatus.PENDING
        tm.limit("slow")  # no limits any more: it goes
        assert tm.future(second).result(WAIT) == "2"


def test_rates_read_as_numbers_or_strings() -> None:
    from actors.core.limits import parse_rate

    assert parse_rate("rate", "600/m") == 10.0
    assert parse_rate("rate", "3600/h") == 1.0
    assert parse_rate("rate", 2.5) == 2.5


def test_limits_resources_and_max_pending_from_the_configuration() -> None:
    system = ActorSystem.from_config(
        {
            "resources": {"gpu": 2},
            "max_pending": 10,
            "limits": {"*": {"concurrency": 4}, "example.org": {"rate": "5/s", "burst": 2}},
        },
        autostart=False,
    )
    try:
        assert system.resources == {"gpu": 2}
        assert system.max_pending == 10
        assert system.limits.of("other").concurrency == 4  # type: ignore[union-attr]
        assert system.limits.of("example.org").rate == 5.0  # type: ignore[union-attr]
    finally:
        system.shutdown()
    with pytest.raises(ConfigError, match=r"limits\.example\.org"):
        ActorSystem.from_config({"limits": {"example.org": {"rate": "fast"}}}, autostart=False)


@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,  # seeded: the same examples every run
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    limits=st.lists(st.integers(0, 3), min_size=3, max_size=3),
    rates=st.lists(st.sampled_from([200.0, 500.0, 1e6]), min_size=3, max_size=3),
    tasks=st.lists(
        st.tuples(st.integers(0, 3), st.integers(1, 4), st.booleans()), min_size=1, max_size=16
    ),
    slots=st.integers(1, 4),
)
def test_random_limits_priorities_and_cancels_lose_no_task(
    limits: list[int], rates: list[float], tasks: list[tuple[int, int, bool]], slots: int
) -> None:
    """No key runs more than its concurrency or starts faster than its rate, and every
    task ends as it should. Key 3 has no limits; a key limited to 0 gets 1 at the end
    (so that all end)."""
    recorder = Recorder()
    with TaskManager(max_concurrent_tasks=slots) as tm:
        for key, concurrency in enumerate(limits):
            tm.limit(f"k{key}", concurrency=concurrency, rate=rates[key])
        ids = []
        for key, priority, cancel in tasks:
            task_id = tm.register_task(
                "t", short, recorder, f"k{key}", limit_key=f"k{key}", priority=priority
            )
            ids.append(task_id)
            if cancel:
                tm.cancel_task_sync(task_id)
        for key, concurrency in enumerate(limits):
            if concurrency == 0:
                tm.limit(f"k{key}", concurrency=1, rate=rates[key])
        for task_id in ids:
            tm.future(task_id).exception(WAIT)
        for (_key, _priority, cancel), task_id in zip(tasks, ids, strict=True):
            status = tm.get_task_status(task_id)
            assert status is (TaskStatus.CANCELLED if cancel else TaskStatus.COMPLETED) or (
                cancel and status is TaskStatus.COMPLETED
            )
        for key, concurrency in enumerate(limits):
            assert recorder.peak[f"k{key}"] <= max(concurrency, 1)
            started = [  # (a task cancelled once it started counts too)
                task_id
                for (k, _p, _c), task_id in zip(tasks, ids, strict=True)
                if k == key and getattr(tm.get_task(task_id), "started_at", None) is not None
            ]
            _check_rate(_starts(tm, started), rates[key], 1)
        assert all(entry["running"] == 0 for entry in tm.get_metrics()["limits"].values())


def span(seconds: float) -> tuple[float, float]:
    """The attempt's start and end on the machine's monotonic clock (any process)."""
    start = time.monotonic()
    time.sleep(seconds)  # the work
    return start, time.monotonic()


def _overlap(spans: list[tuple[float, float]]) -> int:
    """The most spans open at once."""
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


@pytest.mark.slow
def test_limits_hold_on_worker_processes() -> None:
    from actors import ProcessExecutor

    system = ActorSystem(executors=[ProcessExecutor(3, name="procs")], max_concurrent_tasks=6)
    tm = TaskManager(system=system)
    try:
        tm.start_sync()
        tm.limit("host", concurrency=1)
        keyed = [
            tm.register_task("s", span, 0.05, executor_type="procs", limit_key="host")
            for _ in range(4)
        ]
        free = [tm.register_task("s", span, 0.05, executor_type="procs") for _ in range(2)]
        spans = [tm.future(t).result(WAIT * 2) for t in keyed]
        for task_id in free:
            tm.future(task_id).result(WAIT * 2)
        assert _overlap(spans) == 1
    finally:
        tm.stop_sync()
        system.shutdown()


def test_a_restarted_scheduler_keeps_counting_a_keys_running_attempts() -> None:
    with TaskManager(max_concurrent_tasks=4) as tm:
        tm.limit("host", concurrency=1)
        tm.system.faults.arm("scheduler.notices")
        ids = [tm.register_task("s", span, 0.005, limit_key="host") for _ in range(8)]
        spans = [tm.future(t).result(WAIT) for t in ids]
        assert tm.system.faults.hits("scheduler.notices") == 1
        assert _overlap(spans) == 1


def test_the_graph_and_the_event_log_show_the_limit_key(tmp_path: Path) -> None:
    from actors import JsonLinesEventLog

    log_path = tmp_path / "events.jsonl"
    with TaskManager() as tm:
        log = JsonLinesEventLog.start(log_path, scheduler=tm.system.scheduler)
        try:
            task_id = tm.register_task("fetch", str, 1, limit_key="example.org")
            tm.future(task_id).result(WAIT)
            assert '["fetch @example.org"]' in tm.graph("mermaid")
            assert 'label="fetch @example.org"' in tm.graph("dot")
        finally:
            log.stop()
    started = [line for line in log_path.read_text().splitlines() if '"started"' in line]
    assert '"limit_key": "example.org"' in started[0]


def test_a_submit_message_beyond_max_pending_is_refused() -> None:
    """The scheduler never waits for room: the room would come from itself."""
    from actors import messages

    hold = threading.Event()
    with TaskManager(max_pending=1, pending_timeout=WAIT) as tm:
        first = tm.register_task("first", hold.wait, WAIT)
        with pytest.raises(TimeoutError, match="max_pending=1"):
            tm.system.scheduler.ask(messages.SubmitTask("second", hold.wait), timeout=WAIT)
        hold.set()
        tm.future(first).result(WAIT)


def test_a_schedules_runs_obey_their_limit_key() -> None:
    ran = threading.Semaphore(0)

    def tick() -> None:
        ran.release()

    with TaskManager(resources={"gpu": 1}) as tm:
        with pytest.raises(ValueError, match="gpu=2"):
            tm.schedule("big", tick, every=1, resources={"gpu": 2})
        schedule_id = tm.schedule(
            "tick", tick, every=0.02, limit_key="example.org", resources={"gpu": 1}
        )
        assert ran.acquire(timeout=WAIT)
        assert ran.acquire(timeout=WAIT)
        tm.unschedule(schedule_id)
        runs = [t for t in tm.get_all_tasks() if t.name == "tick"]
        assert runs
        assert all(t.limit_key == "example.org" for t in runs)
        assert all(dict(t.resources) == {"gpu": 1} for t in runs)


@pytest.mark.slow
def test_limits_hold_on_dask_workers() -> None:
    from actors import DaskExecutor

    executor = DaskExecutor(
        name="dask", processes=False, n_workers=1, threads_per_worker=3, dashboard_address=":0"
    )
    system = ActorSystem(executors=[executor], max_concurrent_tasks=6)
    tm = TaskManager(system=system)
    try:
        tm.start_sync()
        tm.limit("host", concurrency=1, rate="100/s")
        keyed = [
            tm.register_task("s", span, 0.02, executor_type="dask", limit_key="host")
            for _ in range(5)
        ]
        free = [tm.register_task("s", span, 0.02, executor_type="dask") for _ in range(2)]
        spans = [tm.future(t).result(WAIT * 6) for t in keyed]
        for task_id in free:
            tm.future(task_id).result(WAIT * 6)
        assert _overlap(spans) == 1
        _check_rate(_starts(tm, keyed), 100.0, 1)
    finally:
        tm.stop_sync()
        system.shutdown()


# -- the gate on its own (the scheduler's state, driven by hand) ---------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _gate(**limits: Limit) -> tuple[Gate, dict[str, list[Any]], _Clock, list[float]]:
    table = LimitTable({"gpu": 1})
    for key, limit in limits.items():
        table.set(key, limit)
    heaps: dict[str, list[Any]] = {}
    clock, armed = _Clock(), []
    return Gate(table, heaps, clock, armed.append), heaps, clock, armed


def _task(n: int, key: str | None, priority: int = 2) -> tuple[Task, tuple[int, int, str]]:
    task = Task(task_id=f"t{n}", name="t", func=str, limit_key=key)
    return task, (-priority, n, task.task_id)


def _ignore(*_: Any) -> None:
    pass


def _next(gate: Gate, heaps: dict[str, list[Any]]) -> tuple[Group, tuple[int, int, str]] | None:
    """What the scheduler's dispatch does: pop the best, let the gate decide."""
    heap = heaps["thread_pool"]
    while heap:
        rep = heapq.heappop(heap)
        admitted = gate.admit(rep, "thread_pool")
        if admitted is not None:
            return admitted
    return None


def test_the_gate_lets_keys_take_turns_and_parks_a_full_key() -> None:
    gate, heaps, clock, armed = _gate(a=Limit(concurrency=1))
    tasks = dict(_task(n, "a" if n < 3 else "b") for n in range(6))
    for task, item in tasks.items():
        gate.add(task, "thread_pool", item)
    group, item = _next(gate, heaps) or (None, None)
    assert item is not None
    assert item[2] == "t0"
    attempt = Attempt(next(t for t in tasks if t.task_id == "t0"), 1, _ignore)
    gate.started(group, attempt)  # type: ignore[arg-type]
    # a is full (concurrency 1): b's tasks go, a is parked without a representative.
    order = []
    while (found := _next(gate, heaps)) is not None:
        group_b, item_b = found
        order.append(item_b[2])
        gate.started(group_b, Attempt(Task(task_id=item_b[2], name="t", func=str), 1, _ignore))
    assert order == ["t3", "t4", "t5"]
    gate.finished(attempt)  # a has room again
    found = _next(gate, heaps)
    assert found is not None
    assert found[1][2] == "t1"
    assert armed == []  # no rate: no timer
    del clock


def test_the_gate_parks_a_key_out_of_tokens_and_arms_a_recheck() -> None:
    gate, heaps, clock, armed = _gate(a=Limit(rate=10.0, burst=1))
    tasks = [_task(n, "a") for n in range(2)]
    for task, item in tasks:
        gate.add(task, "thread_pool", item)
    group, _item = _next(gate, heaps) or (None, None)
    gate.started(group, Attempt(tasks[0][0], 1, _ignore))  # type: ignore[arg-type]
    assert _next(gate, heaps) is None  # no token: parked
    assert armed == [pytest.approx(0.1)]
    clock.now += 0.1
    gate.due()  # the timer's LimitsDue
    found = _next(gate, heaps)
    assert found is not None
    assert found[1][2] == "t1"


def test_an_attempt_handed_back_keeps_its_key_in_one_group() -> None:
    """Guards the order in Gate.undo: the task is back in its group before the group's
    end is counted, so that an emptied group is not forgotten while it is used."""
    gate, heaps, _clock, _armed = _gate(a=Limit(concurrency=1))
    task, item = _task(0, "a")
    gate.add(task, "thread_pool", item)
    group, head = _next(gate, heaps) or (None, None)
    attempt = Attempt(task, 1, _ignore)
    gate.started(group, attempt)  # type: ignore[arg-type]
    gate.undo(group, attempt, "thread_pool", head)  # type: ignore[arg-type]
    assert list(gate.groups.values()) == [group]
    assert _next(gate, heaps) == (group, head)


ATTEMPTS: list[float] = []


def fail_first(_key: str) -> str:
    ATTEMPTS.append(time.monotonic())
    if len(ATTEMPTS) == 1:
        raise ConnectionError("refused")
    return "ok"


def test_a_retry_counts_against_its_keys_rate() -> None:
    ATTEMPTS.clear()
    with TaskManager() as tm:
        tm.limit("host", rate="10/s")
        task_id = tm.register_task(
            "r", fail_first, "host", limit_key="host", max_retries=1, retry_delay=0.0
        )
        assert tm.future(task_id).result(WAIT) == "ok"
    assert len(ATTEMPTS) == 2
    assert ATTEMPTS[1] - ATTEMPTS[0] >= 0.1 - 0.015  # the retry waited for a token
