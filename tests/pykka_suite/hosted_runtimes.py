"""A pytest plugin that runs pykka's own test suite on HostedActor's two runtimes.

pykka's ``tests/conftest.py`` parametrizes every actor test with a session-scoped
``runtime`` fixture (one ``Runtime`` per actor type: ``threading`` only). This plugin
replaces that fixture, before pytest reads it, with one that also has:

* ``pool``: a ``HostedActor`` subclass on a ``ThreadPoolDispatcher`` of 4 threads;
* ``loop``: a ``HostedActor`` subclass on an ``AsyncioDispatcher``.

``--runtimes`` picks which of ``threading``, ``pool`` and ``loop`` run (default: all).
The pykka tests in ``DEVIATIONS`` are expected (strictly) to fail on the hosted runtimes:
each is a documented difference (see HostedActor's docstring) that a test of ours asserts
instead. Loaded by ``run.py``, which also fetches pykka's tests; never a conftest of ours,
so the default test run does not see it.
"""

from __future__ import annotations

import importlib.util
import threading
import time
import types
import unittest.mock
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest

from actors import AsyncioDispatcher, Dispatcher, HostedActor, ThreadPoolDispatcher

RUNTIMES = ("threading", "pool", "loop")
HOSTED = ("pool", "loop")
POOL_SIZE = 4

_BASE_EXCEPTION = (
    "deliberate: a BaseException fails only the hosted actor that raised it (on_failure "
    "runs, not on_stop) and does not stop every actor in the process; see HostedActor's "
    "docstring and tests/actors/test_runtime.py::"
    "test_a_base_exception_fails_only_its_own_hosted_actor"
)
DEVIATIONS: dict[str, str] = {
    "test_all_actors_are_stopped_on_base_exception": _BASE_EXCEPTION,
    "test_base_exception_is_logged": _BASE_EXCEPTION,
}
"""pykka tests (by function name) that are expected to fail on the hosted runtimes."""

_dispatchers: list[Dispatcher] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--runtimes",
        default=",".join(RUNTIMES),
        help=f"comma-separated runtimes to run pykka's tests on, of {', '.join(RUNTIMES)}",
    )


def _hosted_actor_class(name: str, dispatcher: Dispatcher) -> type[HostedActor]:
    return type(f"Hosted{name.title()}Actor", (HostedActor,), {"dispatcher": dispatcher})


@pytest.hookimpl(tryfirst=True)
def pytest_plugin_registered(plugin: object, plugin_name: str) -> None:
    """Give pykka's conftest a ``runtime`` fixture with the hosted runtimes in it.

    Runs before pytest parses the conftest's fixtures (tryfirst; pytest 9 also parses
    conftests only when their directory is collected), so pytest sees ours only.
    """
    if not (
        isinstance(plugin, types.ModuleType)
        and plugin_name.endswith("conftest.py")
        and hasattr(plugin, "RUNTIMES")
        and hasattr(plugin, "Runtime")
    ):
        return
    conftest: Any = plugin
    pool = ThreadPoolDispatcher(POOL_SIZE, name="pykka-suite-pool")
    loop = AsyncioDispatcher(name="pykka-suite-loop")
    _dispatchers.extend([pool, loop])
    runtime_type = conftest.Runtime

    def hosted(name: str, dispatcher: Dispatcher) -> Any:
        return pytest.param(
            runtime_type(
                name=name,
                actor_class=_hosted_actor_class(name, dispatcher),
                event_class=threading.Event,
                future_class=pykka.ThreadingFuture,
                sleep_func=time.sleep,
            ),
            id=name,
        )

    params = [*conftest.RUNTIMES.values(), hosted("pool", pool), hosted("loop", loop)]

    @pytest.fixture(scope="session", params=params, name="runtime")
    def runtime_fixture(request: pytest.FixtureRequest) -> Any:
        return request.param

    conftest.runtime = runtime_fixture


def _runtime_name(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None or "runtime" not in callspec.params:
        return None
    name: str = callspec.params["runtime"].name
    return name


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = {name.strip() for name in str(config.getoption("runtimes")).split(",")}
    unknown = wanted - set(RUNTIMES)
    if unknown:
        raise pytest.UsageError(f"--runtimes: unknown {sorted(unknown)}; known: {RUNTIMES}")
    kept, deselected = [], []
    for item in items:
        runtime = _runtime_name(item)
        if runtime is not None and runtime not in wanted:
            deselected.append(item)
            continue
        kept.append(item)
        name = getattr(item, "originalname", item.name)
        if runtime in HOSTED and name in DEVIATIONS:
            item.add_marker(pytest.mark.xfail(reason=DEVIATIONS[name], strict=True))
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def pytest_unconfigure(config: pytest.Config) -> None:
    while _dispatchers:
        _dispatchers.pop().shutdown()


class _Patch:
    """``mocker.patch.object``, undone when the test ends."""

    def __init__(self, undo: list[Callable[[], object]]) -> None:
        self._undo = undo

    def object(self, target: object, attribute: str, *args: Any, **kwargs: Any) -> Any:
        patcher = unittest.mock.patch.object(target, attribute, *args, **kwargs)
        mock = patcher.start()
        self._undo.append(patcher.stop)
        return mock


class Mocker:
    """The part of pytest-mock's ``mocker`` that pykka's tests use (pytest-mock is not
    one of our test dependencies; when it is installed, its own fixture is used)."""

    Mock = unittest.mock.Mock
    MagicMock = unittest.mock.MagicMock
    NonCallableMock = unittest.mock.NonCallableMock

    def __init__(self) -> None:
        self._undo: list[Callable[[], object]] = []
        self.patch = _Patch(self._undo)

    def stopall(self) -> None:
        while self._undo:
            self._undo.pop()()


if importlib.util.find_spec("pytest_mock") is None:

    @pytest.fixture
    def mocker() -> Iterator[Mocker]:
        mocker = Mocker()
        yield mocker
        mocker.stopall()
