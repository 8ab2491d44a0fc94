"""JsonLinesEventLog: every task event as one JSON object per line, to a file or a stream."""

from __future__ import annotations

import io
import json
import queue
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors import ActorSystem, JsonLinesEventLog, TaskManager, current_task
from supervision import Restart

from .conftest import WAIT


def reports_progress() -> str:
    current_task().report_progress(0.5, "half way")
    return "done"


def flaky() -> str:
    if current_task().attempt == 1:
        raise ConnectionError("reset by peer")
    return "second time lucky"


def broken() -> None:
    raise KeyError("missing")


def parse(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert len(records) == len(lines)
    return records


def run_every_kind(tm: TaskManager, gate: threading.Event) -> dict[str, str]:
    """Tasks that between them emit every kind of event; waits until each has ended."""
    ids = {
        "ok": tm.register_task("ok", reports_progress),
        "flaky": tm.register_task("flaky", flaky, max_retries=1, retry_delay=0.01),
        "broken": tm.register_task("broken", broken),
    }
    ids["after broken"] = tm.register_task("after broken", abs, -1, dependencies=[ids["broken"]])
    ids["held"] = tm.register_task("held", gate.wait, WAIT)
    ids["never"] = tm.register_task("never", abs, -1, dependencies=[ids["held"]])
    assert tm.cancel_task_sync(ids["never"])  # cancelled while it waited: never started
    gate.set()
    for task_id in ids.values():
        tm.future(task_id).exception(timeout=WAIT)
    return ids


def test_every_event_kind_is_one_json_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    tm = TaskManager(max_concurrent_tasks=2)
    try:
        tm.start_sync()
        tm.system.spawn(JsonLinesEventLog, path, name="event-log")
        ids = run_every_kind(tm, threading.Event())
    finally:
        tm.stop_sync(timeout=WAIT)  # stops the log too: every line is written and closed
    records = parse(path)
    by_task: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        assert set(record) >= {"time", "kind", "task_id", "task_name", "attempt"}
        assert datetime.fromisoformat(record["time"]).tzinfo is not None
        by_task.setdefault(record["task_name"], []).append(record)
        assert record["task_id"] == ids[record["task_name"]]
    assert {r["kind"] for r in records} == {
        "started",
        "progress",
        "retrying",
        "succeeded",
        "failed",
    }

    def kinds(name: str) -> list[tuple[str, int]]:
        return [(r["kind"], r["attempt"]) for r in by_task[name]]

    assert kinds("ok") == [("started", 1), ("progress", 1), ("succeeded", 1)]
    assert by_task["ok"][1]["fraction"] == 0.5
    assert by_task["ok"][1]["message"] == "half way"
    assert kinds("flaky") == [("started", 1), ("retrying", 1), ("started", 2), ("succeeded", 2)]
    retrying = by_task["flaky"][1]
    assert retrying["error_type"] == "ConnectionError"
    assert "reset by peer" in retrying["error_message"]
    assert retrying["delay"] == pytest.approx(0.01)
    assert kinds("broken") == [("started", 1), ("failed", 1)]
    failed = by_task["broken"][1]
    assert (failed["failure"], failed["error_type"]) == ("execution", "KeyError")
    assert "'missing'" in failed["error_message"]
    (dependent,) = by_task["after broken"]
    assert (dependent["kind"], dependent["attempt"], dependent["failure"]) == (
        "failed",
        0,
        "dependency",
    )
    assert dependent["error_type"] == "TaskDependencyError"
    assert "its dependency 'broken'" in dependent["error_message"]
    (never,) = by_task["never"]
    assert (never["failure"], never["error_type"]) == ("cancelled", "TaskCancellationError")


def test_a_stream_and_a_filter(tmp_path: Path) -> None:
    stream = io.StringIO()
    with TaskManager() as tm:
        log = JsonLinesEventLog.start(stream, scheduler=tm.system.scheduler, task_ids=["kept"])
        try:
            for name in ("kept", "other"):
                tm.future(tm.register_task(name, abs, -2, task_id=name)).result(timeout=WAIT)
        finally:
            log.stop(timeout=WAIT)
    assert not stream.closed  # the caller's stream: flushed, never closed
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(r["kind"], r["task_name"]) for r in records] == [
        ("started", "kept"),
        ("succeeded", "kept"),
    ]


def test_started_from_a_toml_tree(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    config = tmp_path / "system.toml"
    config.write_text(
        "[actors]\n"
        "[[actors.children]]\n"
        'id = "event-log"\n'
        'start = "actors:JsonLinesEventLog"\n'
        f"args = [{json.dumps(str(path))}]\n"
    )
    with ActorSystem.from_config(config) as system:
        tm = system.task_manager
        tm.start_sync()
        assert tm.future(tm.register_task("from toml", abs, -3)).result(timeout=WAIT) == 3
    assert [(r["kind"], r["task_name"]) for r in parse(path)] == [
        ("started", "from toml"),
        ("succeeded", "from toml"),
    ]


class BrokenOnce(io.StringIO):
    """A stream whose first write fails (a full disk, say)."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def write(self, text: str) -> int:
        if not self.failed:
            self.failed = True
            raise OSError("no space left on device")
        return super().write(text)


class WatchedLog(JsonLinesEventLog):
    """Says when each incarnation has subscribed (its constructor has returned)."""

    def __init__(self, target: io.StringIO, subscribed: queue.Queue[pykka.ActorRef[Any]]) -> None:
        super().__init__(target)
        subscribed.put(self.actor_ref)


def test_a_restarted_log_subscribes_again() -> None:
    stream = BrokenOnce()
    subscribed: queue.Queue[pykka.ActorRef[Any]] = queue.Queue()
    with TaskManager() as tm:
        tm.system.spawn(WatchedLog, stream, subscribed, restart=Restart.PERMANENT)
        first = subscribed.get(timeout=WAIT)
        tm.future(tm.register_task("lost", abs, -1)).result(timeout=WAIT)  # its write fails
        second = subscribed.get(timeout=WAIT)  # the supervisor started a new one
        assert first.actor_stopped.is_set()
        assert second != first
        tm.future(tm.register_task("after restart", abs, -1)).result(timeout=WAIT)
    assert [json.loads(line)["task_name"] for line in stream.getvalue().splitlines()] == [
        "after restart",
        "after restart",
    ]


def test_bad_targets_are_refused_before_anything_starts(tmp_path: Path) -> None:
    with TaskManager() as tm:
        scheduler = tm.system.scheduler
        with pytest.raises(TypeError, match="target must be a path or a text stream, got 3"):
            JsonLinesEventLog.start(3, scheduler=scheduler)  # type: ignore[arg-type]
        with pytest.raises(FileNotFoundError):
            JsonLinesEventLog.start(tmp_path / "no" / "such" / "dir.jsonl", scheduler=scheduler)
        with pytest.raises(TypeError, match="task_ids must be a list of task ids, got 'a'"):
            JsonLinesEventLog.start(io.StringIO(), scheduler=scheduler, task_ids="a")
        assert not tm.system.events.subscriptions
    with pytest.raises(RuntimeError, match="no actor system is running; pass scheduler="):
        JsonLinesEventLog.start(io.StringIO())


class FailingStream(io.StringIO):
    """A stream whose write raises (a full disk), or blocks until released (a pipe)."""

    def __init__(self, release: threading.Event | None) -> None:
        super().__init__()
        self.release = release

    def write(self, text: str) -> int:
        if self.release is None:
            raise OSError("no space left on device")
        self.release.wait(WAIT)
        return len(text)


@pytest.mark.parametrize("blocks", [False, True])
def test_an_event_log_that_raises_or_blocks_changes_no_task(blocks: bool) -> None:
    release = threading.Event()
    with TaskManager() as tm:
        log = JsonLinesEventLog.start(
            FailingStream(release if blocks else None), scheduler=tm.system.scheduler
        )
        try:
            ids = [tm.register_task(f"t{i}", abs, -i) for i in range(20)]
            assert [tm.future(i).result(timeout=WAIT) for i in ids] == list(range(20))
        finally:
            release.set()
            if log.is_alive():
                log.stop(timeout=WAIT)
