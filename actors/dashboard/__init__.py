"""A dashboard in the browser: see and operate a running task manager (or read a journal).

``app(tm)`` is an ASGI app (Starlette) to mount in a service; ``serve(tm)`` runs it with
uvicorn on a thread of its own. The page and its JSON API are the same app; the page's
files ship in the package (nothing from a CDN). Needs the ``dashboard`` extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import secrets
import threading
from collections.abc import AsyncIterator, Callable
from importlib.resources import files
from typing import TYPE_CHECKING, Any

try:
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
except ImportError as missing:  # pragma: no cover - the extra is not installed
    raise ImportError(
        f"actors.dashboard needs the dashboard extra: pip install 'actors-taskmanager[dashboard]' "
        f"({missing})"
    ) from None

from actors.core.task import TaskStatus
from actors.dashboard._events import Hub
from actors.dashboard._svg import draw
from actors.dashboard._views import SORTS, JournalView, LiveView, View, neighbourhood
from actors.errors import TaskNotFoundError
from actors.manager import TaskManager
from supervision._validate import check_int, check_text, show

if TYPE_CHECKING:
    import uvicorn

__all__ = ["Served", "app", "journal_app", "serve"]

_STATIC = files("actors.dashboard") / "static"
_MOST_PER_PAGE = 500
_GRAPH_MOST = 200
_METRICS_EVERY = 1.0  # seconds between the load figures a page's stream sends
_BATCH_EVERY = 0.1  # seconds at least between two batches of task events to a page


class _BadParameterError(ValueError):
    pass


class _RefusedError(Exception):
    """A request the dashboard refuses: answered ``status`` with the message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _integer(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadParameterError(f"{name} must be an integer, got {show(raw)}") from None
    if not low <= value <= high:
        raise _BadParameterError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _text(request: Request, name: str, choices: tuple[str, ...] | None = None) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if choices is not None and raw not in choices:
        raise _BadParameterError(f"{name} must be one of {', '.join(choices)}, got {show(raw)}")
    return raw


def _sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


class _Dashboard:
    """The routes of one dashboard over one view."""

    def __init__(
        self,
        view: View,
        token: str | None,
        scheduler: Callable[[], Any],
    ) -> None:
        self.view = view
        self.token = token
        self.hub = Hub(scheduler)
        self._statuses = tuple(s.name.lower() for s in TaskStatus)

    def routes(self) -> list[Route | Mount]:
        return [
            Route("/", self.index),
            Route("/api/info", self.info),
            Route("/api/tasks", self.tasks),
            Route("/api/tasks/{task_id:path}/cancel", self.cancel, methods=["POST"]),
            Route("/api/tasks/{task_id:path}/retry", self.retry, methods=["POST"]),
            Route("/api/tasks/{task_id:path}", self.task),
            Route("/api/metrics", self.metrics),
            Route("/api/graph", self.graph),
            Route("/api/supervision", self.supervision),
            Route("/api/schedules", self.schedules),
            Route(
                "/api/schedules/{schedule_id:path}/{action:str}", self.schedule, methods=["POST"]
            ),
            Route("/api/events", self.events),
            Mount("/static", StaticFiles(directory=str(_STATIC)), name="static"),
        ]

    # -- pages and reading -----------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        return FileResponse(str(_STATIC / "index.html"), headers={"Cache-Control": "no-cache"})

    async def info(self, request: Request) -> Response:
        return JSONResponse(
            {
                "source": "live" if isinstance(self.view, LiveView) else "journal",
                "actions": self.view.actions,
                "token_required": self.token is not None,
                "schedules": isinstance(self.view, LiveView),
                "sorts": list(SORTS),
                "statuses": list(self._statuses),
            }
        )

    async def tasks(self, request: Request) -> Response:
        page = await run_in_threadpool(
            self.view.page,
            status=_text(request, "status", self._statuses),
            name=_text(request, "name"),
            tag=_text(request, "tag"),
            sort=_text(request, "sort", SORTS) or "-created",
            offset=_integer(request, "offset", 0, 0, 10**12),
            limit=_integer(request, "limit", 50, 1, _MOST_PER_PAGE),
        )
        return JSONResponse({"total": page.total, "tasks": page.tasks})

    async def task(self, request: Request) -> Response:
        found = await run_in_threadpool(self.view.task, request.path_params["task_id"])
        if found is None:
            return _error(404, f"no task {request.path_params['task_id']!r}")
        return JSONResponse(found)

    async def metrics(self, request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(self.view.metrics))

    async def graph(self, request: Request) -> Response:
        focus = _text(request, "task")
        depth = _integer(request, "depth", 2, 0, 50)

        def drawn() -> tuple[list[Any], str, int]:
            rows = self.view.rows()
            near = neighbourhood(rows, focus, depth, _GRAPH_MOST)
            return near, draw(near, focus), len(rows)

        near, svg, total = await run_in_threadpool(drawn)
        if focus is not None and not near:
            return _error(404, f"no task {focus!r}")
        return JSONResponse({"svg": svg, "shown": len(near), "total": total, "task": focus})

    async def supervision(self, request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(self.view.supervision))

    async def schedules(self, request: Request) -> Response:
        listed = await run_in_threadpool(self.view.schedules)
        if listed is None:
            return _error(404, "this manager has no schedules")
        return JSONResponse(listed)

    async def events(self, request: Request) -> Response:
        """Server-sent events: ``tasks`` (a batch of task events, each as the event log
        writes it) as they happen, ``metrics`` (as /api/metrics) every second.
        ``watch``: the task ids (comma-separated) whose events the page wants; without
        it, every task's."""
        raw = request.query_params.get("watch")
        watch = None if raw is None else frozenset(t for t in raw.split(",") if t)
        loop = asyncio.get_running_loop()

        async def frames() -> AsyncIterator[str]:
            stream = None
            try:
                stream = await run_in_threadpool(self.hub.open, loop, watch)
                yield "retry: 1000\n\n"
                yield _sse("metrics", await run_in_threadpool(self.view.metrics))
                due = loop.time() + _METRICS_EVERY
                ready = loop.time()  # when the next batch may go
                while not stream.closed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stream.wake.wait(), max(0.0, due - loop.time()))
                    if stream.closed:  # set by Hub.close meanwhile
                        break  # type: ignore[unreachable]
                    if stream.wake.is_set() and loop.time() < ready:
                        # At most ten batches a second: events gather meanwhile (a page
                        # draws a batch at once, one frame, however long it is).
                        await asyncio.sleep(ready - loop.time())
                    batch = self.hub.take(stream)
                    if batch:
                        yield _sse("tasks", batch)
                        ready = loop.time() + _BATCH_EVERY
                    if loop.time() >= due:
                        yield _sse("metrics", await run_in_threadpool(self.view.metrics))
                        due = loop.time() + _METRICS_EVERY
                        if self.view.ended():
                            break
            finally:
                if stream is not None:
                    self.hub.leave(stream)

        return StreamingResponse(
            frames(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # -- actions ---------------------------------------------------------------------------

    def _acting(self, request: Request) -> LiveView:
        """The live view to act on, once the request may act (else a 403): actions must
        be on, and the request must carry the header X-Dashboard-Token (the token where
        there is one). A page of another site cannot send that header without the
        browser asking first, so it cannot act through a visitor's browser."""
        if not self.view.actions:
            raise _RefusedError(403, "actions are off for this dashboard")
        given = request.headers.get("x-dashboard-token")
        if given is None:
            raise _RefusedError(403, "an action needs the X-Dashboard-Token header")
        if self.token is not None and not secrets.compare_digest(given, self.token):
            raise _RefusedError(403, "wrong token")
        assert isinstance(self.view, LiveView)
        return self.view

    async def cancel(self, request: Request) -> Response:
        view = self._acting(request)
        task_id = request.path_params["task_id"]
        cancelled = await run_in_threadpool(view.cancel, task_id)  # 404: _no_task
        return JSONResponse({"task_id": task_id, "cancelled": cancelled})

    async def retry(self, request: Request) -> Response:
        view = self._acting(request)
        task_id = request.path_params["task_id"]
        try:
            new = await run_in_threadpool(view.retry, task_id)  # 404: _no_task
        except ValueError as error:
            return _error(409, str(error))
        return JSONResponse({"task_id": new, "retry_of": task_id})

    async def schedule(self, request: Request) -> Response:
        view = self._acting(request)
        action = request.path_params["action"]
        schedule_id = request.path_params["schedule_id"]
        if action not in ("pause", "resume"):
            return _error(404, f"no action {action!r} (pause or resume)")
        done = await run_in_threadpool(view.schedule_action, schedule_id, action)
        if not done:
            return _error(404, f"no schedule {schedule_id!r}")
        return JSONResponse({"schedule_id": schedule_id, action: True})


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


async def _bad_parameter(request: Request, error: Exception) -> Response:
    return _error(400, str(error))


async def _refused(request: Request, error: Exception) -> Response:
    assert isinstance(error, _RefusedError)
    return _error(error.status, str(error))


async def _no_task(request: Request, error: Exception) -> Response:
    assert isinstance(error, TaskNotFoundError)
    return _error(404, f"no task {error.task_id!r}")


def _starlette(dashboard: _Dashboard) -> Starlette:
    made = Starlette(
        routes=dashboard.routes(),
        exception_handlers={
            _BadParameterError: _bad_parameter,
            _RefusedError: _refused,
            TaskNotFoundError: _no_task,
        },
    )
    made.state.dashboard = dashboard
    return made


def app(tm: TaskManager, *, actions: bool = True, token: str | None = None) -> Starlette:
    """The dashboard of ``tm`` as an ASGI app (mount it: ``Mount("/tasks", app(tm))``).

    ``actions``: the page may cancel and retry tasks and pause schedules (each request
    carrying the header ``X-Dashboard-Token``, which the page sends). ``token``: actions
    need it in that header (open the page as ``.../?token=...``). Mounted in a service
    reachable beyond this machine, give a token or ``actions=False``.
    """
    if not isinstance(tm, TaskManager):
        raise TypeError(f"tm must be a TaskManager, got {show(tm)}")
    if not isinstance(actions, bool):
        raise TypeError(f"actions must be True or False, got {show(actions)}")
    if token is not None:
        check_text("token", token, allow_empty=False)

    def scheduler() -> Any:
        try:
            return tm.system.scheduler
        except RuntimeError:  # not running (yet, or any more): no events
            return None

    return _starlette(_Dashboard(LiveView(tm, actions=actions), token, scheduler))


def journal_app(path: str) -> Starlette:
    """A read-only dashboard of a journal file (no actions; its pages poll the file).

    Raises:
        JournalError: no such file, or it is not a journal.
    """
    check_text("path", path, allow_empty=False)
    return _starlette(_Dashboard(JournalView(path), None, lambda: None))


class Served:
    """A dashboard running on a thread of its own: open ``url``; ``close()`` stops it."""

    def __init__(
        self, server: uvicorn.Server, thread: threading.Thread, url: str, served: Starlette
    ) -> None:
        self._server = server
        self._served = served
        self._thread = thread
        self.url = url

    def close(self, timeout: float = 10.0) -> None:
        """End the pages' streams, stop the server and wait for its thread."""
        for dashboard in _dashboards_in(self._served):
            dashboard.hub.close()
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _dashboards_in(served: Any) -> list[_Dashboard]:
    """The dashboards in an app: itself, or mounted in it (at any depth)."""
    found = getattr(getattr(served, "state", None), "_state", {}).get("dashboard")
    inside = [found] if isinstance(found, _Dashboard) else []
    for route in getattr(served, "routes", ()):
        if isinstance(route, Mount) and route.app is not served:
            inside += _dashboards_in(route.app)
    return inside


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    tm: TaskManager | Starlette,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    token: str | None = None,
    actions: bool | None = None,
) -> Served:
    """Serve ``tm``'s dashboard with uvicorn on a thread of its own; returns once it listens.

    ``port`` 0 picks a free one (see ``url``). Actions are on for a loopback ``host``,
    off beyond it unless a ``token`` is given (then they need it); ``actions`` overrides.
    ``tm`` may also be an app made by ``app`` or ``journal_app``.
    """
    import uvicorn

    check_text("host", host, allow_empty=False)
    check_int("port", port, minimum=0, maximum=65535)
    if token is not None:
        check_text("token", token, allow_empty=False)
    if isinstance(tm, Starlette):
        made = tm
    else:
        allowed = actions if actions is not None else (_loopback(host) or token is not None)
        made = app(tm, actions=allowed, token=token)
    config = uvicorn.Config(
        made,
        host=host,
        port=port,
        log_level="warning",
        lifespan="auto" if made.state._state.get("dashboard") is None else "off",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    failed: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except BaseException as error:  # noqa: BLE001 - told to the caller below
            failed.append(error)

    thread = threading.Thread(target=run, name=f"dashboard-{host}:{port}", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        thread.join(0.01)
    if not server.started:
        raise OSError(f"the dashboard could not listen on {host}:{port}: {failed or 'see log'}")
    bound = server.servers[0].sockets[0].getsockname()
    shown_host = f"[{host}]" if ":" in host else host
    return Served(server, thread, f"http://{shown_host}:{bound[1]}/", made)
