"""The task record, its legal transitions, the errors and the failure messages."""

from __future__ import annotations

import pickle
import threading
from typing import Any

import pytest

from actors import (
    InvalidTaskStateError,
    Task,
    TaskCancellationError,
    TaskDependencyError,
    TaskError,
    TaskExecutionError,
    TaskManager,
    TaskNotFoundError,
    TaskPriority,
    TaskStatus,
    TaskTimeoutError,
    messages,
)
from actors.core.task import check_transition
from actors.errors import StandInError

from .conftest import WAIT

S = TaskStatus


def test_the_old_values() -> None:
    assert [(p.name, p.value) for p in TaskPriority] == [
        ("LOW", 1),
        ("NORMAL", 2),
        ("HIGH", 3),
        ("CRITICAL", 4),
    ]
    assert [(s.name, s.value) for s in TaskStatus] == [
        ("PENDING", 1),
        ("RUNNING", 2),
        ("COMPLETED", 3),
        ("FAILED", 4),
        ("CANCELLED", 5),
        ("WAITING", 6),
    ]


LEGAL = {
    (S.WAITING, S.PENDING),
    (S.WAITING, S.FAILED),
    (S.WAITING, S.CANCELLED),
    (S.PENDING, S.RUNNING),
    (S.PENDING, S.FAILED),
    (S.PENDING, S.CANCELLED),
    (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.CANCELLED),
    (S.RUNNING, S.PENDING),
}


@pytest.mark.parametrize("current", list(TaskStatus))
@pytest.mark.parametrize("new", list(TaskStatus))
def test_only_legal_transitions_pass(current: TaskStatus, new: TaskStatus) -> None:
    if (current, new) in LEGAL:
        check_transition("t", current, new)
    else:
        with pytest.raises(InvalidTaskStateError, match=f"task t is {current.name}"):
            check_transition("t", current, new)


def test_task_to_dict() -> None:
    task = Task("id-1", "fetch", len, args=("abc",), tags=("a",), priority=TaskPriority.HIGH)
    data = task.to_dict()
    assert data["task_id"] == "id-1"
    assert data["func"] == "len"
    assert data["priority"] == "HIGH"
    assert data["status"] == "PENDING"
    assert data["tags"] == ["a"]
    assert data["error"] is None
    assert data["started_at"] is None


ERRORS = [
    TaskError("base", "t1", {"k": 1}),
    TaskDependencyError("dep", "t2", {"dependency": "t1"}),
    TaskCancellationError("cancelled", "t3"),
    TaskTimeoutError("slow", "t4", {"timeout": 1.0}),
    TaskNotFoundError("where", "t5"),
    InvalidTaskStateError("bad", "t6"),
    TaskExecutionError("raised", "t7", {"attempt": 2}, original_error=ValueError("v")),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_errors_pickle_and_describe_themselves(error: TaskError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert copy.to_dict() == error.to_dict()
    assert error.to_dict()["type"] == type(error).__name__
    assert str(error) == error.message


def test_execution_error_keeps_its_cause() -> None:
    original = KeyError("x")
    error = TaskExecutionError("failed", "t", original_error=original)
    assert error.__cause__ is original
    assert error.to_dict()["original_error"] == "KeyError('x')"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (TaskExecutionError("e", "t", original_error=OSError("disk")), "EXECUTION"),
        (TaskTimeoutError("slow", "t", {"timeout": 2.0}), "TIMEOUT"),
        (TaskCancellationError("c", "t"), "CANCELLED"),
        (TaskDependencyError("d", "t", {"dependency": "a"}), "DEPENDENCY"),
    ],
)
def test_failure_messages_map_one_to_one_onto_errors(error: TaskError, kind: str) -> None:
    message = messages.TaskFailed.from_error(error)
    assert message.kind is messages.FailureKind[kind]
    rebuilt = message.to_error()
    assert type(rebuilt) is type(error)
    assert rebuilt.to_dict() == error.to_dict()
    copy = pickle.loads(pickle.dumps(message))
    assert copy.to_error().to_dict() == error.to_dict()


def test_not_every_error_is_a_failure_message() -> None:
    with pytest.raises(TypeError, match="TaskNotFoundError is not a kind of task failure"):
        messages.TaskFailed.from_error(TaskNotFoundError("x"))


def test_messages_are_frozen() -> None:
    request = messages.CancelTask("t")
    with pytest.raises(AttributeError):
        request.task_id = "u"  # type: ignore[misc]


class NeedsTwoError(Exception):
    """Unpickles badly: its __init__ takes two arguments, its args hold one."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code


class LockHoldingError(Exception):
    def __init__(self) -> None:
        super().__init__("locked")
        self.lock = threading.Lock()


def _raised(error: Exception) -> Exception:
    try:
        raise error
    except Exception as caught:  # noqa: BLE001 - to give it a traceback
        return caught


@pytest.mark.parametrize(
    ("original", "type_name", "text"),
    [
        (NeedsTwoError(404, "gone"), "NeedsTwoError", "404: gone"),
        (LockHoldingError(), "LockHoldingError", "locked"),
    ],
)
def test_execution_errors_round_trip_whatever_they_wrap(
    original: Exception, type_name: str, text: str
) -> None:
    error = TaskExecutionError("failed", "t", {"attempt": 1}, original_error=_raised(original))
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is TaskExecutionError
    assert (copy.message, copy.task_id, copy.details) == ("failed", "t", {"attempt": 1})
    stand_in = copy.original_error
    assert isinstance(stand_in, StandInError)
    assert stand_in.type_name.endswith(type_name)
    assert stand_in.message == text
    assert str(stand_in) == f"{stand_in.type_name}: {text}"
    assert "_raised" in stand_in.traceback_text  # the traceback, as text
    assert copy.__cause__ is stand_in
    again = pickle.loads(pickle.dumps(copy))  # a stand-in travels as well
    assert str(again.original_error) == str(stand_in)
    assert error.original_error is not None  # the sender keeps the real one


def test_an_original_error_that_pickles_is_kept_as_it_is() -> None:
    error = TaskExecutionError("failed", "t", original_error=KeyError("k"))
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy.original_error) is KeyError
    assert copy.original_error.args == ("k",)


def test_nested_metadata_of_a_snapshot_cannot_change_the_task(tm: TaskManager) -> None:
    metadata: dict[str, Any] = {"a": {"b": 1}, "seen": ["x"], "n": 1}
    task_id = tm.register_task("x", abs, -1, metadata=metadata)
    metadata["a"]["b"] = 5  # the caller's nested dict is theirs: the task kept a deep copy
    metadata["seen"].append("caller")
    snapshot = tm.get_task(task_id)
    assert snapshot is not None
    snapshot.metadata["a"]["b"] = 2  # a reader's copy, changed freely
    snapshot.metadata["seen"].append("reader")
    listed = tm.get_tasks_by_status(snapshot.status) + tm.get_all_tasks()
    for other in listed:
        other.metadata["a"]["b"] = 3
    again = tm.get_task(task_id)
    assert again is not None
    assert again.metadata == {"a": {"b": 1}, "seen": ["x"], "n": 1}
    assert tm.future(task_id).result(timeout=WAIT) == 1


def test_metadata_that_cannot_be_copied_is_refused(tm: TaskManager) -> None:
    with pytest.raises(TypeError, match=r"metadata\['guard'\] must be data that can be copied"):
        tm.register_task("x", abs, -1, metadata={"guard": {"lock": threading.Lock()}})
    assert tm.get_all_tasks() == []
