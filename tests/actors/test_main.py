"""``python -m actors inspect``: a journal's tasks as a table or JSON, while a manager runs."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from actors import TaskExecutionError, TaskManager
from actors.__main__ import main

from .conftest import WAIT
from .test_journal import EVENTS, add, fail, wait_for


def inspect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actors", "inspect", *args],
        capture_output=True,
        text=True,
        timeout=WAIT * 4,
        check=False,
    )


def test_inspect_prints_a_table_and_json_while_the_manager_runs(tmp_path: Path) -> None:
    journal = tmp_path / "tasks.sqlite"
    EVENTS["inspect"] = threading.Event()
    with TaskManager(journal=journal) as tm:
        done = tm.register_task("add", add, 1, 2, key="add:1+2")
        failed = tm.register_task("fail", fail, "disk full")
        held = tm.register_task("hold", wait_for, "inspect")
        tm.future(done).result(WAIT)
        with pytest.raises(TaskExecutionError):
            tm.future(failed).result(WAIT)

        table = inspect(str(journal))  # another process, the manager still running
        assert table.returncode == 0, table.stderr
        header, *lines = table.stdout.splitlines()
        assert header.split() == [
            "task_id",
            "name",
            "status",
            "attempts",
            "last_error",
            "created",
            "started",
            "ended",
        ]
        assert len(lines) == 3
        assert lines[0].split()[:4] == [done, "add", "COMPLETED", "1"]
        assert lines[1].split()[:4] == [failed, "fail", "FAILED", "1"]
        assert "TaskExecutionError: task 'fail'" in lines[1]  # cut at 60 characters

        as_json = inspect(str(journal), "--json")
        assert as_json.returncode == 0, as_json.stderr
        tasks = json.loads(as_json.stdout)
        assert [(t["task_id"], t["status"]) for t in tasks[:2]] == [
            (done, "COMPLETED"),
            (failed, "FAILED"),
        ]
        assert tasks[0]["key"] == "add:1+2"
        assert tasks[0]["func"] == "tests.actors.test_journal.add"
        assert tasks[0]["result_kept"] is True
        assert "disk full" in tasks[1]["last_error"]
        assert tasks[2]["task_id"] == held
        assert tasks[2]["status"] in ("PENDING", "RUNNING")

        only_failed = json.loads(inspect(str(journal), "--status", "FAILED", "--json").stdout)
        assert [t["task_id"] for t in only_failed] == [failed]
        EVENTS["inspect"].set()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_inspect_on_a_terminal_draws_a_rich_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # rich's width, as a terminal's
    journal = tmp_path / "tasks.sqlite"
    with TaskManager(journal=journal) as tm:
        tm.future(tm.register_task("add", add, 1, 2)).result(WAIT)
    out = _Terminal()
    assert main(["inspect", str(journal)], out) == 0
    text = out.getvalue()
    assert f"{journal}: 1 tasks" in text
    assert "COMPLETED" in text
    assert "┃" in text  # rich's box drawing, not the plain table


def test_inspect_refuses_what_is_not_a_journal(tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    refused = inspect(str(other))
    assert refused.returncode == 2
    assert "is not a task journal" in refused.stderr
    missing = inspect(str(tmp_path / "missing.sqlite"))
    assert missing.returncode == 2
    assert "no journal at" in missing.stderr
    assert not (tmp_path / "missing.sqlite").exists()
    bad_status = inspect(str(other), "--status", "lost")
    assert bad_status.returncode == 2
    assert "invalid choice: 'lost'" in bad_status.stderr
