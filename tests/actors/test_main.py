"""``python -m actors inspect``: a journal's tasks as a table or JSON, while a manager runs."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from actors import TaskExecutionError, TaskManager
from actors.durability.inspect import main

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


@pytest.mark.slow  # python -m actors in subprocesses
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


@pytest.mark.slow  # python -m actors in subprocesses
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


def _journal_with_names(path: Path, names: list[str]) -> list[str]:
    """A journal whose tasks have ``names`` (written to the file directly: whatever a
    registration refuses, inspect must still show safely what a file holds)."""
    tm = TaskManager(journal=path)
    ids = [tm.register_task("add", add, 1, 1) for _ in names]
    tm.stop_sync()
    db = sqlite3.connect(path)
    try:
        for task_id, name in zip(ids, names, strict=True):
            db.execute("UPDATE tasks SET name = ? WHERE task_id = ?", (name, task_id))
        db.commit()
    finally:
        db.close()
    return ids


HOSTILE = ["copy [reports/q3.csv]", "[bold red]loud", "\x1b[31mred", "line1\nforged-row"]


@pytest.mark.parametrize("terminal", [True, False])
def test_inspect_shows_names_as_text_never_as_markup_or_control(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, terminal: bool
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    journal = tmp_path / "tasks.sqlite"
    ids = _journal_with_names(journal, HOSTILE)
    out = _Terminal() if terminal else io.StringIO()
    assert main(["inspect", str(journal)], out) == 0
    text = out.getvalue()
    assert "copy [reports/q3.csv]" in text
    assert "[bold red]loud" in text
    assert "\\x1b[31mred" in text
    assert "\x1b[31mred" not in text
    assert "line1\\nforged-row" in text
    lines = text.splitlines()
    assert not any(line.lstrip("│ ").startswith("forged-row") for line in lines)
    assert sum(1 for line in lines if any(task_id[:8] in line for task_id in ids)) == 4


@pytest.mark.slow  # python -m actors in subprocesses
def test_inspect_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    journal = tmp_path / "tasks.sqlite"
    tm = TaskManager(journal=journal)
    for _ in range(2000):  # far more than a pipe holds
        tm.register_task("add", add, 1, 1)
    tm.stop_sync()
    reader = subprocess.Popen(
        [sys.executable, "-m", "actors", "inspect", str(journal)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reader.stdout is not None
    assert reader.stdout.readline().split()[0] == b"task_id"
    reader.stdout.close()  # as head does after its lines
    _, stderr = reader.communicate(timeout=WAIT * 4)
    assert b"Traceback" not in stderr, stderr.decode()
    assert reader.returncode == 1


def test_inspect_lists_the_schedules(tmp_path: Path) -> None:
    journal = tmp_path / "tasks.sqlite"
    with TaskManager(journal=journal) as tm:
        hourly = tm.schedule("hourly", add, 1, 2, cron="0 * * * *", timezone="Europe/Berlin")
        often = tm.schedule("often", add, 2, 3, every=3600)
        tm.pause_schedule(often)
        out = io.StringIO()
        assert main(["inspect", str(journal)], out) == 0
        assert out.getvalue().splitlines()[-1] == "2 schedules (--schedules lists them)"
        listed = inspect(str(journal), "--schedules", "--json")  # while the manager runs
        assert listed.returncode == 0, listed.stderr
        schedules = json.loads(listed.stdout)
        assert [(s["schedule_id"], s["name"], s["cron"], s["every"]) for s in schedules] == [
            (hourly, "hourly", "0 * * * *", None),
            (often, "often", None, 3600.0),
        ]
        assert schedules[0]["timezone"] == "Europe/Berlin"
        assert schedules[0]["next_run"].endswith(":00:00.000+00:00")
        assert (schedules[1]["paused"], schedules[1]["next_run"]) == (True, None)
        assert schedules[0]["func"] == "tests.actors.test_journal.add"
        table = io.StringIO()
        assert main(["inspect", str(journal), "--schedules"], table) == 0
        header, *lines = table.getvalue().splitlines()
        assert header.split()[:4] == ["schedule_id", "name", "every", "cron"]
        assert [line.split()[1] for line in lines] == ["hourly", "often"]


def test_python_m_actors_lists_its_commands(capsys: pytest.CaptureFixture[str]) -> None:
    from actors.__main__ import main as actors_main

    assert actors_main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert "inspect JOURNAL" in listed
    assert "dashboard JOURNAL" in listed
    assert actors_main(["nope"]) == 2
    assert "no command 'nope'" in capsys.readouterr().err
    assert actors_main([]) == 2
