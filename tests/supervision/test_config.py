"""tree_from_config: TOML and mappings into specs; every error names its exact place."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import pykka
import pytest

from supervision import (
    AutoShutdown,
    Backoff,
    ConfigError,
    Directive,
    Restart,
    Shutdown,
    Strategy,
    Supervisor,
    SupervisorSpec,
    tree_from_config,
)

from .conftest import WAIT


class Echo(pykka.ThreadingActor):
    def __init__(self, prefix: str = "", *, suffix: str = "") -> None:
        super().__init__()
        self.prefix, self.suffix = prefix, suffix

    def on_receive(self, message: Any) -> Any:
        return f"{self.prefix}{message}{self.suffix}"


ECHO = "tests.supervision.test_config:Echo"

TREE = f"""
strategy = "rest_for_one"
max_restarts = 5
within_seconds = 2.5
backoff = {{ min_delay = 0.5, max_delay = 4, factor = 3 }}

[[children]]
id = "echo"
start = "{ECHO}"
args = ["<"]
kwargs = {{ suffix = ">" }}
restart = "transient"
shutdown_timeout = 1.5

[[children]]
id = "inner"
restart = "permanent"

[children.supervisor]
strategy = "one_for_all"

[[children.supervisor.children]]
id = "leaf"
start = "{ECHO}"
"""


def test_a_toml_file_becomes_a_nested_spec(tmp_path: Path) -> None:
    path = tmp_path / "tree.toml"
    path.write_text(TREE)
    spec = tree_from_config(path)
    assert spec.strategy is Strategy.REST_FOR_ONE
    assert (spec.max_restarts, spec.within_seconds) == (5, 2.5)
    assert spec.backoff == Backoff(min_delay=0.5, max_delay=4.0, factor=3.0)
    echo, inner = spec.children
    assert (echo.id, echo.start, echo.args, echo.kwargs) == ("echo", Echo, ("<",), {"suffix": ">"})
    assert (echo.restart, echo.shutdown_timeout) == (Restart.TRANSIENT, 1.5)
    assert isinstance(inner.start, SupervisorSpec)
    assert inner.start.strategy is Strategy.ONE_FOR_ALL
    assert [c.id for c in inner.start.children] == ["leaf"]


def test_the_built_tree_runs() -> None:
    spec = tree_from_config(
        {"children": [{"id": "echo", "start": ECHO, "args": ["["], "kwargs": {"suffix": "]"}}]}
    )
    ref = Supervisor.start(spec)
    try:
        child = ref.proxy().which_children().get(timeout=WAIT)[0]
        assert child.ref is not None
        assert child.ref.ask("x", timeout=WAIT) == "[x]"
    finally:
        ref.stop(timeout=WAIT)


def test_defaults_apply_when_keys_are_absent() -> None:
    spec = tree_from_config({})
    assert spec == SupervisorSpec()


def test_names_are_case_insensitive() -> None:
    spec = tree_from_config({"strategy": "ONE_FOR_ALL"})
    assert spec.strategy is Strategy.ONE_FOR_ALL


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {
                "children": [
                    {"id": "a", "start": ECHO},
                    {"id": "b", "start": ECHO, "restart": "sometimes"},
                ]
            },
            "children[1].restart: 'sometimes' is not one of permanent, transient, temporary",
        ),
        (
            {"strategy": "all_for_none"},
            "strategy: 'all_for_none' is not one of one_for_one, one_for_all, rest_for_one, "
            "simple_one_for_one",
        ),
        (
            {"children": [{"id": "a", "start": ECHO, "colour": "red"}]},
            "children[0].colour: unknown key (expected one of args, decider, id, kwargs, name, "
            "restart, restart_buffer, shutdown, shutdown_timeout, significant, start, supervisor)",
        ),
        (
            {"max_restart": 3},
            "max_restart: unknown key (expected one of auto_shutdown, backoff, children, "
            "max_children, max_restarts, strategy, within_seconds)",
        ),
        (
            {"children": [{"id": "a", "start": "nomodule"}]},
            "children[0].start: 'nomodule' is not of the form 'package.module:Name'",
        ),
        (
            {"children": [{"id": "a", "start": "tests.no_such_module:X"}]},
            "children[0].start: cannot import 'tests.no_such_module': "
            "No module named 'tests.no_such_module'",
        ),
        (
            {"children": [{"id": "a", "start": "tests.supervision.test_config:Nope"}]},
            "children[0].start: module 'tests.supervision.test_config' has no attribute 'Nope'",
        ),
        ({"children": [{"start": ECHO}]}, "children[0].id: missing required key"),
        (
            {"children": [{"id": "a"}]},
            "children[0]: give exactly one of 'start' or 'supervisor'",
        ),
        ({"max_restarts": "three"}, "max_restarts: expected an integer, got 'three'"),
        ({"max_restarts": -1}, "max_restarts: must be >= 0, got -1"),
        ({"within_seconds": 0}, "within_seconds: must be > 0, got 0"),
        (
            {"backoff": {"min_delay": 1, "max_delay": 5, "speed": 2}},
            "backoff.speed: unknown key (expected one of factor, jitter, max_delay, "
            "min_delay, reset_after)",
        ),
        (
            {"children": [{"id": "a", "start": ECHO}, {"id": "a", "start": ECHO}]},
            "children[1].id: duplicate child id 'a'",
        ),
        (
            {
                "children": [
                    {
                        "id": "in",
                        "supervisor": {"children": [{"id": "x", "start": ECHO, "restart": 1}]},
                    }
                ]
            },
            "children[0].supervisor.children[0].restart: 1 is not one of permanent, "
            "transient, temporary",
        ),
        (
            {"children": [{"id": "a", "start": "tests.supervision.test_config:ECHO"}]},
            "children[0].start: 'tests.supervision.test_config:ECHO' is a str, not a callable: "
            "start must name a pykka Actor class, a SupervisorSpec, or a function annotated "
            "to return pykka.ActorRef",
        ),
        ({"children": {"id": "a"}}, "children: expected a list of tables, got {'id': 'a'}"),
    ],
)
def test_errors_name_their_place(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        tree_from_config(config)
    assert str(caught.value) == message


def start_echo(prefix: str = "") -> pykka.ActorRef[Echo]:
    return Echo.start(prefix)


def start_echo_unmarked(prefix: str = "") -> Any:
    return Echo.start(prefix)


def test_start_names_only_actor_classes_specs_and_factories_marked_as_such(
    tmp_path: Path,
) -> None:
    # Nothing named by a file is called to find out what it is: "os:system" with a
    # shell command as its argument runs nothing.
    touched = tmp_path / "touched"
    path = tmp_path / "tree.toml"
    path.write_text(f'[[children]]\nid = "x"\nstart = "os:system"\nargs = ["touch {touched}"]\n')
    with pytest.raises(ConfigError) as caught:
        tree_from_config(path)
    assert (caught.value.source, caught.value.where) == (str(path), "children[0].start")
    assert "'os:system' is a callable not annotated to return pykka.ActorRef" in str(caught.value)
    assert not touched.exists()
    for name, problem in [
        ("start_echo_unmarked", "a callable not annotated to return pykka.ActorRef"),
        ("ConfigError", "a class that is not a pykka Actor (ConfigError)"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(problem)):
            tree_from_config({"children": [{"id": "a", "start": f"{__name__}:{name}"}]})
    # A factory marked as returning an ActorRef is what it says.
    spec = tree_from_config({"children": [{"id": "a", "start": f"{__name__}:start_echo"}]})
    assert spec.children[0].start is start_echo


def test_a_module_that_fails_to_import_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_actors_module.py").write_text("raise RuntimeError('half written')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "tree.toml"
    path.write_text('[[children]]\nid = "a"\nstart = "broken_actors_module:Actor"\n')
    with pytest.raises(ConfigError) as caught:
        tree_from_config(path)
    assert str(caught.value) == (
        f"{path}: children[0].start: cannot import 'broken_actors_module': half written"
    )


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[children]]\nid = "a"\nstart = "x"\n')
    with pytest.raises(ConfigError) as caught:
        tree_from_config(path)
    assert (
        str(caught.value) == f"{path}: children[0].start: 'x' is not of the form "
        "'package.module:Name'"
    )
    assert (caught.value.source, caught.value.where) == (str(path), "children[0].start")


def test_invalid_toml_and_missing_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("strategy = \n")
    with pytest.raises(ConfigError, match=r"broken\.toml: invalid TOML"):
        tree_from_config(broken)
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read file"):
        tree_from_config(tmp_path / "missing.toml")
    with pytest.raises(TypeError, match="mapping or the path"):
        tree_from_config(42)  # type: ignore[arg-type]


def test_config_errors_pickle() -> None:
    error = ConfigError("children[0].id", "missing required key", "tree.toml")
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.where, copy.source) == (str(error), error.where, error.source)


def decide(error: BaseException) -> Directive:
    return Directive.RESUME


def decide_unmarked(error: BaseException) -> Any:
    return Directive.RESUME


OTP_TREE = f"""
auto_shutdown = "any_significant"

[[children]]
id = "cache"
start = "{ECHO}"
name = "cache"
shutdown = "brutal_kill"
decider = "tests.supervision.test_config:decide"
restart_buffer = 50

[[children]]
id = "job"
start = "{ECHO}"
restart = "temporary"
significant = true
shutdown = 0.5

[[children]]
id = "pool"
shutdown = "infinity"
[children.supervisor]
strategy = "simple_one_for_one"
max_children = 3
[[children.supervisor.children]]
id = "w"
start = "{ECHO}"
"""


def test_the_otp_keys_are_read(tmp_path: Path) -> None:
    path = tmp_path / "tree.toml"
    path.write_text(OTP_TREE)
    spec = tree_from_config(path)
    assert spec.auto_shutdown is AutoShutdown.ANY_SIGNIFICANT
    cache, job, pool = spec.children
    assert (cache.name, cache.shutdown, cache.decider, cache.restart_buffer) == (
        "cache",
        Shutdown.BRUTAL_KILL,
        decide,
        50,
    )
    assert (job.significant, job.shutdown) == (True, 0.5)
    assert pool.shutdown is Shutdown.INFINITY
    assert isinstance(pool.start, SupervisorSpec)
    assert pool.start.max_children == 3


@pytest.mark.parametrize(
    ("child", "message"),
    [
        ({"shutdown": "sometimes"}, "children[0].shutdown: 'sometimes' is not one of brutal_kill"),
        ({"shutdown": -2}, "children[0].shutdown: must be >= 0, got -2"),
        ({"name": 7}, "children[0].name: expected a non-empty string, got 7"),
        ({"significant": "yes"}, "children[0].significant: expected true or false, got 'yes'"),
        ({"restart_buffer": -1}, "children[0].restart_buffer: must be >= 0, got -1"),
        (
            {"decider": "tests.supervision.test_config:decide_unmarked"},
            "children[0].decider: 'tests.supervision.test_config:decide_unmarked' is a callable "
            "not annotated to return supervision.Directive: decider must name a function "
            "annotated to return supervision.Directive",
        ),
        (
            {"restart": "permanent", "significant": True},
            "children[0]: ChildSpec 'a': a significant child must be TRANSIENT or TEMPORARY",
        ),
    ],
)
def test_otp_key_errors_name_their_place(child: dict[str, Any], message: str) -> None:
    config = {"auto_shutdown": "all_significant", "children": [{"id": "a", "start": ECHO, **child}]}
    with pytest.raises(ConfigError, match=re.escape(message)):
        tree_from_config(config)


def test_supervisor_otp_key_errors_name_their_place() -> None:
    with pytest.raises(ConfigError, match=re.escape("auto_shutdown: 'some' is not one of never")):
        tree_from_config({"auto_shutdown": "some"})
    with pytest.raises(ConfigError, match=re.escape("max_children: must be >= 1, got 0")):
        tree_from_config({"max_children": 0})
