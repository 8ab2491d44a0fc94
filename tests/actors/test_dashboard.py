"""The dashboard's JSON API and event stream, served for real (uvicorn on its own thread)
and read with a real HTTP client (httpx2): listing, filters, paging, a task's detail,
cancel and retry, who may act, server-sent events, a journal read-only, the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pykka
import pytest

from actors import JournalError, TaskManager, TaskStatus, current_task
from actors.dashboard import app, journal_app, serve

from .conftest import WAIT

GATES: dict[str, threading.Event] = {}
ENTERED: dict[str, threading.Event] = {}
SEEN: dict[str, float] = {}


def add(a: int, b: int) -> int:
    return a + b


def explode(message: str) -> None:
    raise ValueError(message)


def gated(gate: str) -> str:
    """Report half-way, then wait for the test to open the gate."""
    if gate in ENTERED:
        ENTERED[gate].set()
    SEEN[f"{gate}:progress"] = time.monotonic()
    current_task().report_progress(0.5, "half way")
    GATES[gate].wait(WAIT)
    SEEN[f"{gate}:end"] = time.monotonic()
    return gate


def blocked_until_cancelled() -> None:
    task = current_task()
    deadline = time.monotonic() + WAIT
    while not task.cancelled and time.monotonic() < deadline:
        GATES["cancel"].wait(0.01)


@pytest.fixture
def tm() -> Iterator[TaskManager]:
    manager = TaskManager()
    manager.start_sync()
    try:
        yield manager
    finally:
        for gate in GATES.values():
            gate.set()
        manager.stop_sync()
        GATES.clear()


@pytest.fixture
def client(tm: TaskManager) -> Iterator[httpx.Client]:
    with serve(tm) as served, httpx.Client(base_url=served.url, timeout=WAIT) as http:
        yield http


ACT = {"X-Dashboard-Token": ""}


def test_the_api_lists_filters_sorts_and_pages_tasks(tm: TaskManager, client: httpx.Client) -> None:
    ids = [
        tm.register_task(f"add-{n}", add, n, 1, tags=["even" if n % 2 == 0 else "odd"])
        for n in range(30)
    ]
    failed = tm.register_task("explode", explode, "disk full", tags=["odd"])
    for task_id in ids:
        tm.future(task_id).result(WAIT)
    with pytest.raises(Exception, match="disk full"):
        tm.future(failed).result(WAIT)

    everything = client.get("api/tasks").json()
    assert everything["total"] == 31
    assert len(everything["tasks"]) == 50 or len(everything["tasks"]) == 31
    assert everything["tasks"][0]["task_id"] == failed  # newest first by default

    by_status = client.get("api/tasks", params={"status": "failed"}).json()
    assert [t["task_id"] for t in by_status["tasks"]] == [failed]
    assert by_status["tasks"][0]["error"].endswith("ValueError: disk full")

    by_tag = client.get("api/tasks", params={"tag": "odd", "status": "completed"}).json()
    assert by_tag["total"] == 15
    by_name = client.get("api/tasks", params={"name": "ADD-2"}).json()  # a substring, any case
    assert {t["name"] for t in by_name["tasks"]} == {"add-2", *(f"add-2{n}" for n in range(10))}

    first = client.get("api/tasks", params={"sort": "created", "limit": 10}).json()
    second = client.get("api/tasks", params={"sort": "created", "limit": 10, "offset": 10}).json()
    assert [t["task_id"] for t in first["tasks"] + second["tasks"]] == ids[:20]
    names = [t["name"] for t in client.get("api/tasks", params={"sort": "name"}).json()["tasks"]]
    assert names == sorted(names)


BAD_PARAMETERS = [
    ({"status": "lost"}, "status must be one of pending, running"),
    ({"limit": "0"}, "limit must be between 1 and 500, got 0"),
    ({"offset": "x"}, "offset must be an integer, got 'x'"),
    ({"sort": "size"}, "sort must be one of created"),
]


def test_a_bad_parameter_is_a_400_naming_it(client: httpx.Client) -> None:
    for params, message in BAD_PARAMETERS:
        response = client.get("api/tasks", params=params)
        assert response.status_code == 400
        assert message in response.json()["error"]


def test_a_task_shows_its_arguments_outcome_traceback_and_neighbours(
    tm: TaskManager, client: httpx.Client
) -> None:
    first = tm.register_task("first", add, 2, kwargs={"b": 3})
    second = tm.register_task("second", explode, "no <space>", dependencies=[first])
    with pytest.raises(Exception, match="space"):
        tm.future(second).result(WAIT)

    shown = client.get(f"api/tasks/{first}").json()
    assert shown["args"] == ["2"]
    assert shown["kwargs"] == {"b": "3"}
    assert shown["result"] == "5"
    assert shown["status"] == "COMPLETED"
    assert shown["dependents"] == [{"task_id": second, "name": "second", "status": "FAILED"}]

    failed = client.get(f"api/tasks/{second}").json()
    assert failed["dependencies"][0]["task_id"] == first
    assert "ValueError: no <space>" in failed["traceback"]
    assert "raise ValueError(message)" in failed["traceback"]
    assert client.get("api/tasks/nothing-here").status_code == 404


def test_the_graph_draws_a_tasks_neighbourhood(tm: TaskManager, client: httpx.Client) -> None:
    chain = [tm.register_task("link-0", add, 0, 0)]
    for n in range(1, 6):
        chain.append(tm.register_task(f"link-{n}", add, n, 0, dependencies=[chain[-1]]))
    tm.future(chain[-1]).result(WAIT)
    around = client.get("api/graph", params={"task": chain[3], "depth": 1}).json()
    assert around["shown"] == 3
    assert [f'data-task="{t}"' in around["svg"] for t in chain] == [
        False,
        False,
        True,
        True,
        True,
        False,
    ]
    assert around["svg"].count('class="edge"') == 2
    whole = client.get("api/graph").json()
    assert whole["shown"] == whole["total"] == 6
    assert whole["svg"].count('class="node completed"') == 6


def test_cancel_from_the_api_cancels_a_running_task(tm: TaskManager, client: httpx.Client) -> None:
    GATES["cancel"] = threading.Event()
    task_id = tm.register_task("blocked", blocked_until_cancelled)
    refused = client.post(f"api/tasks/{task_id}/cancel")  # no header: a cross-site form
    assert refused.status_code == 403
    assert "X-Dashboard-Token" in refused.json()["error"]
    response = client.post(f"api/tasks/{task_id}/cancel", headers=ACT)
    assert response.json() == {"task_id": task_id, "cancelled": True}
    assert tm.get_task_status(task_id) is TaskStatus.CANCELLED
    again = client.post(f"api/tasks/{task_id}/cancel", headers=ACT).json()
    assert again["cancelled"] is False
    assert client.post("api/tasks/nothing/cancel", headers=ACT).status_code == 404


def test_retry_registers_a_new_task_linked_to_the_failed_one(
    tm: TaskManager, client: httpx.Client
) -> None:
    failed = tm.register_task("explode", explode, "once", tags=["t"], max_retries=0)
    with pytest.raises(Exception, match="once"):
        tm.future(failed).result(WAIT)
    made = client.post(f"api/tasks/{failed}/retry", headers=ACT).json()
    assert made["retry_of"] == failed
    assert made["task_id"] != failed
    again = tm.get_task(made["task_id"])
    assert again is not None
    assert (again.name, again.args, again.tags) == ("explode", ("once",), ("t",))
    assert again.metadata["retry_of"] == failed
    assert tm.get_task_status(failed) is TaskStatus.FAILED  # its outcome stays
    done = tm.register_task("add", add, 1, 1)
    tm.future(done).result(WAIT)
    refused = client.post(f"api/tasks/{done}/retry", headers=ACT)
    assert refused.status_code == 409
    assert "not FAILED or CANCELLED" in refused.json()["error"]


def test_actions_are_off_beyond_localhost_unless_a_token_is_given(tm: TaskManager) -> None:
    task_id = tm.register_task("add", add, 1, 1)
    with serve(app(tm, actions=False)) as off, httpx.Client(base_url=off.url) as http:
        refused = http.post(f"api/tasks/{task_id}/cancel", headers=ACT)
        assert refused.status_code == 403
        assert refused.json()["error"] == "actions are off for this dashboard"
        assert http.get("api/info").json()["actions"] is False
    with serve(tm, token="s3cret") as guarded, httpx.Client(base_url=guarded.url) as http:
        wrong = http.post(f"api/tasks/{task_id}/cancel", headers={"X-Dashboard-Token": "guess"})
        assert wrong.status_code == 403
        right = http.post(f"api/tasks/{task_id}/cancel", headers={"X-Dashboard-Token": "s3cret"})
        assert right.status_code == 200
    with (
        serve(tm, host="0.0.0.0") as wide,
        httpx.Client(base_url=wide.url.replace("0.0.0.0", "127.0.0.1")) as http,
    ):  # every address: beyond this machine
        assert http.get("api/info").json()["actions"] is False


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda tm: app("tm"), "tm must be a TaskManager, got 'tm'"),
        (lambda tm: app(tm, token=""), "token must be a non-empty string, got ''"),
        (lambda tm: serve(tm, port=70000), "port"),
        (lambda tm: serve(tm, host=""), "host must be a non-empty string"),
        (lambda tm: journal_app(str(Path("no-such.sqlite"))), "no journal at no-such.sqlite"),
    ],
)
def test_bad_arguments_name_the_parameter(tm: TaskManager, call: Any, message: str) -> None:
    with pytest.raises((TypeError, ValueError, JournalError), match=message):
        call(tm)


def _frames(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    event = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield event, json.loads(line.removeprefix("data: "))


@contextlib.contextmanager
def task_batches(
    http: httpx.Client, register: Callable[[], str]
) -> Iterator[tuple[str, Iterator[list[dict[str, Any]]]]]:
    """Open the event stream; once it is subscribed (its first frame), register a task.
    Its id, and its records in each batch of task events the stream sends."""
    with http.stream("GET", "api/events") as response:
        frames = _frames(response)
        assert next(frames)[0] == "metrics"  # subscribed: the stream has begun
        task_id = register()

        def batches() -> Iterator[list[dict[str, Any]]]:
            for event, data in frames:
                if event == "tasks":
                    yield [record for record in data if record["task_id"] == task_id]

        yield task_id, batches()


def test_events_deliver_a_tasks_progress_and_end_within_250_ms(
    tm: TaskManager, client: httpx.Client
) -> None:
    GATES["sse"] = threading.Event()
    with task_batches(client, partial(tm.register_task, "gated", gated, "sse")) as (_, batches):
        kinds: dict[str, float] = {}
        for batch in batches:
            for record in batch:
                kinds.setdefault(record["kind"], time.monotonic())
            if "progress" in kinds and not GATES["sse"].is_set():
                assert batch[-1].get("fraction", 0.5) == 0.5
                GATES["sse"].set()
            if "succeeded" in kinds:
                break
    assert kinds["progress"] - SEEN["sse:progress"] < 0.25
    assert kinds["succeeded"] - SEEN["sse:end"] < 0.25


def chatty(gate: str) -> str:
    task = current_task()
    for step in range(1, 2001):
        task.report_progress(step / 2000, f"step {step}")
    GATES[gate].wait(WAIT)
    return gate


def test_a_batch_carries_one_progress_report_per_task(
    tm: TaskManager, client: httpx.Client
) -> None:
    # A task reporting thousands of times a second costs a page one line per batch, the
    # newest; its events keep their order.
    GATES["chatty"] = threading.Event()
    register = partial(tm.register_task, "chatty", chatty, "chatty")
    with task_batches(client, register) as (_, batches):
        kinds: list[str] = []
        for mine in batches:
            progress = [record for record in mine if record["kind"] == "progress"]
            assert len(progress) <= 1, progress
            kinds += [record["kind"] for record in mine]
            if progress and progress[0]["fraction"] == 1.0:
                assert progress[0]["message"] == "step 2000"
                GATES["chatty"].set()
            if "succeeded" in kinds:
                break
    assert (kinds[0], kinds[-1]) == ("started", "succeeded")
    assert set(kinds[1:-1]) == {"progress"}
    assert len(kinds) < 200


def test_a_slow_read_does_not_hold_the_servers_loop(
    tm: TaskManager, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The manager's reads take tens of milliseconds at 100,000 tasks: they run on a
    # worker thread, so that a dashboard mounted in an application's service never holds
    # the application's event loop.
    from actors.dashboard._views import LiveView

    entered, release = threading.Event(), threading.Event()
    page = LiveView.page

    def slow_page(view: LiveView, **query: Any) -> Any:
        entered.set()
        release.wait(WAIT)
        return page(view, **query)

    monkeypatch.setattr(LiveView, "page", slow_page)
    listed: queue.Queue[int] = queue.Queue()
    reader = threading.Thread(target=lambda: listed.put(client.get("api/tasks").status_code))
    reader.start()
    try:
        assert entered.wait(WAIT)
        assert client.get("api/info", timeout=WAIT / 4).json()["source"] == "live"
        assert listed.empty()  # the slow read still waits meanwhile
    finally:
        release.set()
        reader.join(WAIT)
    assert listed.get(timeout=WAIT) == 200


def test_metrics_and_the_supervision_tree(tm: TaskManager, client: httpx.Client) -> None:
    metrics = client.get("api/metrics").json()
    assert metrics["executors"]["thread_pool"]["capacity"] >= 1
    tree = client.get("api/supervision").json()
    assert {c["id"] for c in tree} >= {"scheduler", "executors"}
    executors = next(c for c in tree if c["id"] == "executors")
    assert executors["kind"] == "supervisor"
    assert {c["id"] for c in executors["children"]} >= {"thread_pool", "async"}
    assert all(c["restarts"] == 0 and c["alive"] for c in executors["children"])


class Fragile(pykka.ThreadingActor):
    """Fails on "crash"; tells ``started`` each time it starts (a restart starts it again)."""

    def __init__(self, started: queue.Queue[str]) -> None:
        super().__init__()
        self.started = started

    def on_start(self) -> None:
        self.started.put(self.actor_urn)

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash")
        return None


def test_the_supervision_tree_counts_a_restart(tm: TaskManager, client: httpx.Client) -> None:
    started: queue.Queue[str] = queue.Queue()
    ref = tm.system.spawn(Fragile, started, name="fragile")
    first = started.get(timeout=WAIT)

    def fragile() -> dict[str, Any]:
        tree = client.get("api/supervision").json()
        apps = next(c for c in tree if c["id"] == "actors")
        return dict(next(c for c in apps["children"] if c["id"] == "fragile"))

    assert (fragile()["actor"], fragile()["restarts"]) == (first, 0)
    ref.tell("crash")
    second = started.get(timeout=WAIT)  # the supervisor started it again
    assert second != first
    shown = fragile()
    assert (shown["actor"], shown["restarts"], shown["alive"]) == (second, 1, True)
    # Two more restarts between two looks: both count (the supervisor keeps the count).
    current = second
    for _ in range(2):
        now = pykka.ActorRegistry.get_by_urn(current)
        assert now is not None
        now.tell("crash")
        current = started.get(timeout=WAIT)
    assert fragile()["restarts"] == 3


def test_a_journal_has_no_schedules_to_show(tmp_path: Path) -> None:
    with TaskManager(journal=tmp_path / "tasks.sqlite"):
        pass
    with serve(journal_app(str(tmp_path / "tasks.sqlite"))) as served:
        assert httpx.get(f"{served.url}api/info").json()["schedules"] is False
        assert httpx.get(f"{served.url}api/schedules").status_code == 404


def test_the_page_and_its_files_are_served_from_the_package(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert '<script src="static/app.js">' in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from elsewhere
    assert "EventSource" in client.get("static/app.js").text
    assert client.get("static/app.css").status_code == 200


@pytest.mark.slow
def test_mounted_in_the_applications_own_service(tm: TaskManager) -> None:
    from fastapi import FastAPI

    service = FastAPI()

    @service.get("/health")
    def health() -> dict[str, str]:
        return {"ok": "yes"}

    service.mount("/tasks", app(tm))
    task_id = tm.register_task("add", add, 2, 2)
    tm.future(task_id).result(WAIT)
    with serve(service) as served, httpx.Client(base_url=served.url) as http:
        assert http.get("health").json() == {"ok": "yes"}
        assert http.get("tasks/api/tasks").json()["tasks"][0]["task_id"] == task_id
        assert 'src="static/app.js"' in http.get("tasks/").text


@pytest.mark.slow
def test_mounted_in_a_service_on_the_managers_own_event_loop() -> None:
    """The natural web service: one event loop runs the application, its manager and
    its HTTP server, with the dashboard mounted in it. Listing, the event stream and
    cancel all answer; nothing waits on the loop it runs on."""
    import uvicorn
    from fastapi import FastAPI

    async def main() -> tuple[dict[str, Any], list[str], bool]:
        async with TaskManager() as manager:
            service = FastAPI()
            service.mount("/tasks", app(manager))
            listening = socket.create_server(("127.0.0.1", 0))  # connections wait in
            port = listening.getsockname()[1]  # its backlog until the server serves
            server = uvicorn.Server(uvicorn.Config(service, log_level="warning", lifespan="off"))
            serving = asyncio.create_task(server.serve(sockets=[listening]))
            try:
                url = f"http://127.0.0.1:{port}/tasks/"
                async with httpx.AsyncClient(base_url=url, timeout=WAIT) as http:
                    done = await manager.register_task_async("add", add, 1, 2)
                    await manager.execute_task(done)
                    shown = (await http.get(f"api/tasks/{done}")).json()
                    GATES["loop"] = threading.Event()
                    kinds: list[str] = []
                    gated_id = None
                    async with http.stream("GET", "api/events") as response:
                        async for line in response.aiter_lines():
                            if gated_id is None and line.startswith("data: "):
                                # The first frame (metrics): the stream is subscribed.
                                gated_id = await manager.register_task_async("gated", gated, "loop")
                            elif line.startswith("data: ") and '"kind"' in line:
                                data = json.loads(line.removeprefix("data: "))
                                kinds += [r["kind"] for r in data if r["task_id"] == gated_id]
                            if "progress" in kinds:
                                break
                    cancel = await http.post(f"api/tasks/{gated_id}/cancel", headers=ACT)
                    return shown, kinds, cancel.json()["cancelled"]
            finally:
                GATES["loop"].set()
                server.should_exit = True
                await asyncio.wait_for(serving, WAIT)
                listening.close()

    shown, kinds, cancelled = asyncio.run(asyncio.wait_for(main(), WAIT * 4))
    assert shown["result"] == "3"
    assert kinds == ["started", "progress"]
    assert cancelled is True
    GATES.clear()


# -- a journal ------------------------------------------------------------------------------


def _journal(tmp_path: Path) -> tuple[Path, str, str]:
    journal = tmp_path / "tasks.sqlite"
    with TaskManager(journal=journal) as manager:
        done = manager.register_task("add", add, 1, 2, tags=["sum"])
        failed = manager.register_task("explode", explode, "disk full", dependencies=[done])
        manager.future(done).result(WAIT)
        with pytest.raises(Exception, match="disk full"):
            manager.future(failed).result(WAIT)
    return journal, done, failed


@pytest.mark.slow
def test_a_journal_is_shown_read_only_and_again_after_a_restart(tmp_path: Path) -> None:
    journal, done, failed = _journal(tmp_path)
    with serve(journal_app(str(journal))) as served, httpx.Client(base_url=served.url) as http:
        info = http.get("api/info").json()
        assert (info["source"], info["actions"]) == ("journal", False)
        listed = http.get("api/tasks", params={"sort": "created"}).json()
        assert [(t["task_id"], t["status"]) for t in listed["tasks"]] == [
            (done, "COMPLETED"),
            (failed, "FAILED"),
        ]
        assert http.get("api/tasks", params={"tag": "sum"}).json()["total"] == 1
        assert http.get("api/tasks", params={"tag": "su"}).json()["total"] == 0  # a whole tag
        by_name = http.get("api/tasks", params={"name": "PLOD", "status": "failed"}).json()
        assert [t["task_id"] for t in by_name["tasks"]] == [failed]
        ordered = http.get("api/tasks", params={"sort": "-name", "limit": 1}).json()
        assert (ordered["total"], ordered["tasks"][0]["name"]) == (2, "explode")
        assert http.get("api/tasks", params={"offset": 1}).json()["tasks"][0]["task_id"] == done
        assert http.get(f"api/tasks/{done}").json()["dependents"][0]["task_id"] == failed
        shown = http.get(f"api/tasks/{failed}").json()
        assert shown["error"].endswith("failed: ValueError: disk full")
        assert shown["dependencies"][0]["task_id"] == done
        assert http.get("api/metrics").json()["failed_tasks"] == 1
        assert http.post(f"api/tasks/{failed}/cancel", headers=ACT).status_code == 403
    with TaskManager(journal=journal) as manager, serve(manager) as served:  # the restart
        recovered = httpx.get(f"{served.url}api/tasks/{failed}").json()
        assert recovered["status"] == "FAILED"
        assert recovered["dependencies"][0]["task_id"] == done


@pytest.mark.slow
def test_python_m_actors_dashboard_serves_a_journal(tmp_path: Path) -> None:
    journal, done, _ = _journal(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "actors", "dashboard", str(journal), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the process has WAIT*4 (pytest's timeout) to say
        url = line.split(" at ")[1].split()[0]
        with httpx.Client(base_url=url, timeout=WAIT) as http:
            assert http.get(f"api/tasks/{done}").json()["status"] == "COMPLETED"
    finally:
        process.terminate()
        process.communicate(timeout=WAIT * 2)
    missing = subprocess.run(
        [sys.executable, "-m", "actors", "dashboard", str(tmp_path / "none.sqlite")],
        capture_output=True,
        text=True,
        timeout=WAIT * 4,
        check=False,
    )
    assert missing.returncode == 2
    assert "no journal at" in missing.stderr


def test_a_stream_that_watches_some_tasks_gets_only_their_events(
    tm: TaskManager, client: httpx.Client
) -> None:
    GATES["watched"], GATES["other"] = threading.Event(), threading.Event()
    watched = tm.register_task("watched", gated, "watched")
    other = tm.register_task("other", gated, "other")
    with client.stream("GET", "api/events", params={"watch": f"{watched},unknown"}) as response:
        frames = _frames(response)
        assert next(frames)[0] == "metrics"  # subscribed to those two ids
        GATES["other"].set()
        tm.future(other).result(WAIT)  # its end came before the watched one's
        GATES["watched"].set()
        seen: list[tuple[str, str]] = []
        for event, data in frames:
            if event == "tasks":
                seen += [(record["task_id"], record["kind"]) for record in data]
            if (watched, "succeeded") in seen:
                break
    assert {task_id for task_id, _ in seen} == {watched}


@pytest.mark.slow
def test_a_worker_processes_progress_reaches_the_page() -> None:
    """A task on the process executor: its progress (sent from the worker process) and its
    end come through the same stream."""
    from actors import ActorSystem, ProcessExecutor

    from .test_process_executor import who_am_i

    manager = TaskManager(system=ActorSystem(executors=[ProcessExecutor(1, name="procs")]))
    manager.start_sync()
    try:
        with serve(manager) as served, httpx.Client(base_url=served.url, timeout=WAIT) as http:
            register = partial(manager.register_task, "who", who_am_i, executor_type="procs")
            with task_batches(http, register) as (task_id, batches):
                kinds = []
                for batch in batches:
                    kinds += [record["kind"] for record in batch]
                    if "succeeded" in kinds:
                        break
            assert kinds == ["started", "progress", "succeeded"]
            shown = http.get(f"api/tasks/{task_id}").json()
            assert (shown["progress_message"], shown["executor"]) == ("half way", "procs")
    finally:
        manager.stop_sync()
        manager.system.shutdown()


@pytest.mark.slow
def test_a_dask_tasks_progress_and_load_reach_the_page() -> None:
    """A task on a Dask cluster (a real LocalCluster): its events come through the page's
    stream, and the executors page shows the Dask executor busy while it runs."""
    from actors import ActorSystem

    from .test_dask_executor import local, release, report_then_block, started

    started.clear()
    release.clear()
    manager = TaskManager(system=ActorSystem(executors=[local()]))
    manager.start_sync()
    try:
        with serve(manager) as served, httpx.Client(base_url=served.url, timeout=WAIT) as http:
            register = partial(
                manager.register_task, "report", report_then_block, executor_type="dask"
            )
            with task_batches(http, register) as (task_id, batches):
                kinds: list[str] = []
                for batch in batches:
                    kinds += [record["kind"] for record in batch]
                    if "progress" in kinds and not release.is_set():
                        assert started.wait(WAIT)
                        load = http.get("api/metrics").json()["executors"]["dask"]
                        assert (load["type"], load["busy"]) == ("dask", 1)
                        release.set()
                    if "succeeded" in kinds:
                        break
            assert kinds == ["started", "progress", "succeeded"]
            shown = http.get(f"api/tasks/{task_id}").json()
            assert (shown["status"], shown["executor"], shown["result"]) == (
                "COMPLETED",
                "dask",
                "'done'",
            )
    finally:
        release.set()
        manager.stop_sync()
        manager.system.shutdown()


def test_schedules_are_listed_paused_and_resumed(tm: TaskManager, client: httpx.Client) -> None:
    schedule_id = tm.schedule("tick", add, 1, 1, every=3600)
    assert client.get("api/info").json()["schedules"] is True
    listed = client.get("api/schedules").json()
    assert [(s["schedule_id"], s["name"], s["paused"]) for s in listed] == [
        (schedule_id, "tick", False)
    ]
    paused = client.post(f"api/schedules/{schedule_id}/pause", headers=ACT)
    assert paused.json() == {"schedule_id": schedule_id, "pause": True}
    assert [s.paused for s in tm.schedules()] == [True]
    client.post(f"api/schedules/{schedule_id}/resume", headers=ACT).raise_for_status()
    assert [s.paused for s in tm.schedules()] == [False]
    assert client.post("api/schedules/nothing/pause", headers=ACT).status_code == 404
    assert client.post(f"api/schedules/{schedule_id}/pause").status_code == 403


def test_limits_show_with_the_load(tm: TaskManager, client: httpx.Client) -> None:
    GATES["limited"] = threading.Event()
    tm.limit("example.org", concurrency=2)
    ENTERED["limited"] = threading.Event()
    running = tm.register_task("crawl", gated, "limited", limit_key="example.org")
    assert ENTERED["limited"].wait(WAIT)
    limits = client.get("api/metrics").json()["limits"]
    assert limits["example.org"]["limit"]["concurrency"] == 2
    assert limits["example.org"]["running"] == 1
    GATES["limited"].set()
    tm.future(running).result(WAIT)


@pytest.mark.slow  # seconds of real waiting
def test_a_stream_ends_when_the_manager_stops() -> None:
    """A dashboard mounted in a service outlives nothing: once its manager stops, its
    pages' streams end (after their last figures), so the service can stop."""
    manager = TaskManager()
    manager.start_sync()
    with serve(app(manager)) as served, httpx.Client(base_url=served.url, timeout=WAIT) as http:
        with http.stream("GET", "api/events") as response:
            frames = _frames(response)
            assert next(frames)[0] == "metrics"
            manager.stop_sync()
            last = [data for event, data in frames if event == "metrics"]
        assert last[-1]["is_running"] is False
