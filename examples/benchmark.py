"""Throughput of no-op tasks: the task manager on each executor against the standard library.

Run it:  python examples/benchmark.py [--tasks 10000] [--repeat 3] [--json]

Every row runs the same no-op work in the same process: plain
``concurrent.futures.ThreadPoolExecutor`` and ``asyncio.gather`` as the baselines, then
TaskManager on each executor (register all, start, wait for all). The best of
``--repeat`` runs is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import sys
import time
from collections.abc import Callable

from actors import TaskManager


def noop() -> None:
    return None


async def async_noop() -> None:
    return None


def plain_thread_pool(tasks: int, workers: int) -> float:
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(noop) for _ in range(tasks)]
        for future in futures:
            future.result()
    return time.perf_counter() - start


def plain_asyncio(tasks: int, _workers: int) -> float:
    async def main() -> None:
        await asyncio.gather(*(async_noop() for _ in range(tasks)))

    start = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - start


def task_manager(executor: str, func: Callable[[], object]) -> Callable[[int, int], float]:
    def run(tasks: int, workers: int) -> float:
        start = time.perf_counter()
        tm = TaskManager(max_concurrent_tasks=workers if executor != "async" else tasks)
        ids = [tm.register_task("noop", func, executor_type=executor) for _ in range(tasks)]
        futures = [tm.future(task_id) for task_id in ids]
        for future in futures:
            future.result()
        tm.stop_sync()
        return time.perf_counter() - start

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    options = parser.parse_args(argv)
    cases: list[tuple[str, Callable[[int, int], float]]] = [
        ("concurrent.futures.ThreadPoolExecutor", plain_thread_pool),
        ("asyncio.gather", plain_asyncio),
        ("TaskManager thread_pool", task_manager("thread_pool", noop)),
        ("TaskManager async", task_manager("async", async_noop)),
        ("TaskManager sequential", task_manager("sequential", noop)),
    ]
    rows = []
    for name, case in cases:
        best = min(case(options.tasks, options.workers) for _ in range(options.repeat))
        rows.append(
            {
                "case": name,
                "tasks": options.tasks,
                "seconds": round(best, 4),
                "tasks_per_second": round(options.tasks / best),
                "us_per_task": round(best / options.tasks * 1e6, 1),
            }
        )
    if options.json:
        json.dump(
            {"python": sys.version.split()[0], "workers": options.workers, "results": rows},
            sys.stdout,
            indent=2,
        )
        print()
        return 0
    print(f"{options.tasks} no-op tasks, {options.workers} workers, best of {options.repeat}")
    print(f"{'case':40} {'seconds':>9} {'tasks/s':>10} {'us/task':>9}")
    for row in rows:
        print(
            f"{row['case']:40} {row['seconds']:9.3f} {row['tasks_per_second']:10,d} "
            f"{row['us_per_task']:9.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
