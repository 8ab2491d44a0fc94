"""The journal across processes: a SIGKILL loses no task, and one process holds a journal."""

from __future__ import annotations

import json
import os
import selectors
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from actors import JournalError, TaskManager

from .conftest import WAIT

JOB = '''
import sys
import time


def append(path, n, mark):
    """Append n to the file (the work's effect), then take a little time."""
    with open(path, "a") as out:
        out.write(f"{n}\\n")
    if n == mark:
        print("marker", flush=True)
    time.sleep(0.005)  # the work itself: long enough for a kill to land partway
'''

FIRST = """
import json, sys, threading
from actors import TaskManager
from job import append

journal, out = sys.argv[1], sys.argv[2]
tm = TaskManager(journal=journal, max_concurrent_tasks=4)
ids = [tm.register_task("append", append, out, n, 40, key=f"n{n}") for n in range(200)]
print(json.dumps(ids), flush=True)
tm.start_sync()
threading.Event().wait()  # until killed
"""

SECOND = """
import json, sys
from actors import TaskManager
from job import append

journal, out = sys.argv[1], sys.argv[2]
with TaskManager(journal=journal, max_concurrent_tasks=4) as tm:
    again = [tm.register_task("append", append, out, n, -1, key=f"n{n}") for n in range(200)]
    for task in tm.get_all_tasks():
        tm.future(task.task_id).result(timeout=60)
    print(json.dumps({"ids": again, "tasks": len(tm.get_all_tasks())}), flush=True)
"""


def start(code: str, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def read_line(process: subprocess.Popen[str], timeout: float = WAIT * 2) -> str:
    """The process's next line of output, waited for at most ``timeout`` seconds."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            process.kill()
            pytest.fail(f"no output within {timeout}s; stderr: {process.communicate()[1]}")
    return process.stdout.readline().strip()


def statuses(journal: Path) -> dict[str, str]:
    db = sqlite3.connect(f"{journal.as_uri()}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT task_id, status FROM tasks").fetchall())
    finally:
        db.close()


def test_a_killed_process_loses_nothing_and_the_next_one_finishes_the_rest(
    tmp_path: Path,
) -> None:
    (tmp_path / "job.py").write_text(JOB)
    journal, out = tmp_path / "tasks.sqlite", tmp_path / "numbers.txt"
    first = start(FIRST, tmp_path, str(journal), str(out))
    ids = json.loads(read_line(first))
    assert read_line(first) == "marker"  # task 40 ran: the kill lands partway
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=WAIT)

    at_kill = statuses(journal)  # what the journal held when the process died
    assert sorted(at_kill) == sorted(ids)  # every registered task survived
    number = {task_id: n for n, task_id in enumerate(ids)}
    done_at_kill = {task_id for task_id, status in at_kill.items() if status == "COMPLETED"}
    started = {int(line) for line in out.read_text().split()}
    # Running at the kill, as far as the journal knows: started (its number is written)
    # and not finished. An attempt's end is journaled a moment after it (not waited
    # for), so this is the slots' 4 and the few that ended just before the kill.
    running_at_kill = {t for t in ids if number[t] in started and t not in done_at_kill}
    assert 0 < len(done_at_kill) < 200, "the kill came too late to test anything"
    assert len(running_at_kill) < 50

    second = start(SECOND, tmp_path, str(journal), str(out))
    stdout, stderr = second.communicate(timeout=WAIT * 6)
    assert second.returncode == 0, stderr
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report == {"ids": ids, "tasks": 200}  # each key gave its first id back

    runs = Counter(int(line) for line in out.read_text().split())
    assert set(runs) == set(range(200))  # every number appears
    assert all(runs[number[task_id]] == 1 for task_id in done_at_kill)
    twice = {task_id for task_id in ids if runs[number[task_id]] > 1}
    assert twice <= running_at_kill  # at most those running at the kill ran twice
    assert max(runs.values()) <= 2
    assert set(statuses(journal).values()) == {"COMPLETED"}


HOLDER = """
import sys
from actors import TaskManager
tm = TaskManager(journal=sys.argv[1])
print("ready", flush=True)
sys.stdin.read()
"""


def test_a_journal_held_by_a_live_process_is_refused_until_it_dies(tmp_path: Path) -> None:
    journal = tmp_path / "tasks.sqlite"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(journal)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert read_line(holder) == "ready"
        before = journal.read_bytes()
        held = rf"in use by another live process \(pid {holder.pid} "
        with pytest.raises(JournalError, match=held):
            TaskManager(journal=journal)
        assert journal.read_bytes() == before  # nothing written
    finally:
        holder.kill()
        holder.communicate(timeout=WAIT)
    # The kernel let the lock go with the process: the journal opens again.
    tm = TaskManager(journal=journal)
    try:
        assert tm.get_all_tasks() == []
    finally:
        tm.stop_sync()


TIMED_JOB = '''
import time


def stamp(path, tag):
    """Append the tag and the time it ran."""
    with open(path, "a") as out:
        out.write(f"{tag} {time.time()}\\n")
'''

TIMED = """
import sys, threading
from actors import TaskManager
from timed import stamp

journal, out = sys.argv[1], sys.argv[2]
tm = TaskManager(journal=journal)
tm.start_sync()
delayed = tm.register_task("delayed", stamp, out, "delayed", delay=1.5)
schedule = tm.schedule("tick", stamp, out, "tick", every=0.1)
print(delayed, schedule, flush=True)
threading.Event().wait()  # until killed
"""


def test_a_kill_keeps_schedules_and_delays(tmp_path: Path) -> None:
    (tmp_path / "timed.py").write_text(TIMED_JOB)
    journal, out = tmp_path / "tasks.sqlite", tmp_path / "stamps.txt"
    first = start(TIMED, tmp_path, str(journal), str(out))
    delayed, schedule = read_line(first).split()
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=WAIT)
    sys.path.insert(0, str(tmp_path))  # the tasks' module, for this process's restart
    try:
        with TaskManager(journal=journal) as tm:
            [kept] = tm.schedules()
            assert (kept.schedule_id, kept.name, kept.every) == (schedule, "tick", 0.1)
            task = tm.get_task(delayed)
            assert task is not None
            assert task.not_before is not None
            tm.future(delayed).result(WAIT)
            fired_before = kept.fired  # the runs the killed process journaled
            deadline = task.not_before.timestamp()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("timed", None)
    lines = [line.split() for line in out.read_text().splitlines()]
    [ran] = [float(at) for tag, at in lines if tag == "delayed"]
    assert ran >= deadline  # not run early after the kill
    assert sum(tag == "tick" for tag, _ in lines) > fired_before  # it fired again
