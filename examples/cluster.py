"""The demo pipeline's CPU-heavy step on worker processes: fetch on threads, score on processes.

Run it:  python examples/cluster.py [--dask]

Each page of a small fake site (in memory) is fetched on the thread pool; its text is then
scored on a ProcessExecutor, a CPU-bound pure-Python step that threads cannot run in
parallel; one task reports progress from inside its worker, and one step that hangs is
killed by its timeout while the pool keeps working. The report shows which process ran
what. With ``--dask`` (needs ``pip install 'actors-taskmanager[dask]'``) the scoring also
fans out on a Dask LocalCluster of two worker processes through a DaskExecutor, and its
digests are checked against the process executor's.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time

from actors import ActorSystem, ProcessExecutor, TaskManager, TaskTimeoutError, current_task

SITE = {f"/page/{n}": " ".join(f"word{(n * k) % 97}" for k in range(400)) for n in range(1, 7)}


def fetch(path: str) -> str:
    """I/O-bound: runs on the thread pool."""
    return SITE[path]


def score(text: str, rounds: int = 2_000) -> tuple[str, int]:
    """CPU-bound: a digest of the text, stretched; runs in a worker process."""
    digest = text.encode()
    for done in range(rounds):
        digest = hashlib.sha256(digest).digest()
        if done == rounds // 2:
            current_task().report_progress(0.5, "half way")
    return digest.hex()[:12], os.getpid()


def hang() -> None:
    time.sleep(60)  # stuck: only killing its process stops it


def score_on_dask(expected: dict[str, str]) -> None:
    """The same scoring fanned out on a Dask LocalCluster (two worker processes)."""
    from actors import DaskExecutor

    executor = DaskExecutor(
        name="dask", n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    system = ActorSystem(max_concurrent_tasks=4, executors=[executor])
    with TaskManager(system=system) as tm:
        print(f"dask: {executor.capacity} worker threads")
        ids = {
            path: tm.register_task(f"dask score {path}", score, text, executor_type="dask")
            for path, text in SITE.items()
        }
        workers = set()
        same = True
        for path, task_id in ids.items():
            digest, worker = tm.future(task_id).result(timeout=120)
            workers.add(worker)
            same = same and digest == expected[path]
            print(f"dask {path}: {digest} (progress {tm.get_task_progress(task_id)})")
        print(f"dask digests match the process executor's: {same}")
        print(
            f"dask: scored in worker processes, none of them this one: {os.getpid() not in workers}"
        )
    system.shutdown()


def main() -> int:
    system = ActorSystem(max_concurrent_tasks=4, executors=[ProcessExecutor(2, name="cpu")])
    with TaskManager(system=system) as tm:
        scores = {}
        digests = {}
        for path in SITE:
            fetched = tm.register_task(f"fetch {path}", fetch, path)
            text = tm.future(fetched).result(timeout=30)
            scores[path] = tm.register_task(f"score {path}", score, text, executor_type="cpu")
        stuck = tm.register_task("hang", hang, executor_type="cpu", timeout=1.0)
        workers = set()
        for path, task_id in scores.items():
            digest, worker = tm.future(task_id).result(timeout=60)
            workers.add(worker)
            digests[path] = digest
            print(f"{path}: {digest} (progress {tm.get_task_progress(task_id)})")
        try:
            tm.future(stuck).result(timeout=60)
        except TaskTimeoutError:
            print("hang: killed by its timeout")
        after = tm.register_task("score after the kill", score, "again", executor_type="cpu")
        print(f"after the kill: {tm.future(after).result(timeout=60)[0]}")
        elsewhere = os.getpid() not in workers
        print(f"scored in worker processes, none of them this one: {elsewhere}")
    system.shutdown()
    if "--dask" in sys.argv[1:]:
        score_on_dask(digests)
    return 0


if __name__ == "__main__":  # required: worker processes import this module
    raise SystemExit(main())
