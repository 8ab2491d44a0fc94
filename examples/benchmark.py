"""How fast the task path is, against the standard library doing the same work, in one run.

Run it:  python examples/benchmark.py [--scale 1.0] [--repeat 3] [--scenario N ...] [--json]
         (each scenario runs in a fresh interpreter; --in-process runs them all in this one)

Scenarios (sizes are multiplied by --scale; each pair alternates ours and the baseline
and keeps the best of --repeat runs):
  1. independent no-op sync tasks, thread pool, 4 slots    vs ThreadPoolExecutor(4)
  2. independent no-op coroutine tasks, async executor      vs asyncio.gather
  3. a chain of tasks, each depending on the previous       vs submit-and-wait in a loop
  4. a wide DAG: layers of tasks, each on 2 of the layer before
  5. scaling: scenario 1 at 20,000 and at 200,000 tasks (time per task)
  6. memory per waiting task and per finished task kept for its result (tracemalloc)
  7. start and stop of a task actor (hosted, not in the registry) vs a pykka ThreadingActor;
     also a hosted actor that is in pykka's registry
  8. scenario 1 awaited from asyncio: gather(execute_task(...)) in `async with`
                                                              vs ThreadPoolExecutor(4)
  9. scenario 2 awaited the same way                          vs asyncio.gather
 10. soak: 1,000,000 no-op tasks in batches of 10,000 with the default keep_finished;
     resident memory after the last batch against after the first
 11. no-op tasks on ProcessExecutor(2)                    vs ProcessPoolExecutor(2)
 12. CPU-bound tasks (~20 ms of pure Python) on ProcessExecutor(2)
                                                          vs the thread pool, 2 slots
 13. kill latency: time.sleep(60) with timeout=0.5 on ProcessExecutor(2), then a task
 14. no-op tasks on DaskExecutor over a LocalCluster (in-process, 2 workers x 2 threads)
                                      vs client.submit + client.gather on the same cluster
     (needs the dask extra: pip install 'actors-taskmanager[dask]')

 15. scenario 1 with a journal (an SQLite file in a temporary directory, default sync)
                                                              vs scenario 1 without one;
     and memory per waiting task with a journal
 16. registrations per second with journal_sync="full" from 8 threads at once
                                                       vs the same from one thread
 17. 20,000 no-op tasks registered from a coroutine (register_task_async, gathered) and
     awaited, with a journal                           vs the same without one
 18. scenario 1 with a limit key per task, 1,000 keys, limits that never bind
                                                       vs scenario 1 in the same sitting

Run only some:  python examples/benchmark.py --scenario 11 --scenario 13
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import gc
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pykka

from actors import (
    ActorSystem,
    HostedActor,
    ProcessExecutor,
    TaskManager,
    TaskTimeoutError,
    ThreadPoolDispatcher,
)


def noop() -> None:
    return None


async def async_noop() -> None:
    return None


def burn(loops: int) -> int:
    """CPU-bound pure Python (about 20 ms for BURN_LOOPS on the machine measured)."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


BURN_LOOPS = 250_000


def burn_once(loops: int) -> float:
    start = time.perf_counter()
    burn(loops)
    return time.perf_counter() - start


def process_manager(workers: int) -> TaskManager:
    """A started manager with a warm ProcessExecutor named "cpu" (its workers spawned).

    max_concurrent_tasks leaves room for the executor's prefetch (its default: 4 queued
    per worker), as the baseline's pool queues all of its work at once."""
    system = ActorSystem(max_concurrent_tasks=64, executors=[ProcessExecutor(workers, name="cpu")])
    tm = TaskManager(system=system)
    tm.start_sync()
    warm = [tm.register_task("warm", burn, 10, executor_type="cpu") for _ in range(workers * 2)]
    for task_id in warm:
        tm.future(task_id).result()
    return tm


def stop_process_manager(tm: TaskManager) -> None:
    tm.stop_sync()
    tm.system.shutdown()


def ours_process(tm: TaskManager, tasks: int, loops: int) -> float:
    start = time.perf_counter()
    ids = [tm.register_task("burn", burn, loops, executor_type="cpu") for _ in range(tasks)]
    for task_id in ids:
        tm.future(task_id).result()
    return time.perf_counter() - start


def plain_process_pool(
    pool: concurrent.futures.ProcessPoolExecutor, tasks: int, loops: int
) -> float:
    start = time.perf_counter()
    futures = [pool.submit(burn, loops) for _ in range(tasks)]
    for future in futures:
        future.result()
    return time.perf_counter() - start


def ours_threads(tasks: int, loops: int) -> float:
    tm = TaskManager(max_concurrent_tasks=2, keep_finished=None)
    start = time.perf_counter()
    ids = [tm.register_task("burn", burn, loops) for _ in range(tasks)]
    for task_id in ids:
        tm.future(task_id).result()
    elapsed = time.perf_counter() - start
    tm.stop_sync()
    return elapsed


def kill_latency(tm: TaskManager) -> tuple[float, float]:
    """(seconds until time.sleep(60) with timeout=0.5 ended, seconds for a task after it)."""
    start = time.perf_counter()
    stuck = tm.register_task("stuck", time.sleep, 60, executor_type="cpu", timeout=0.5)
    with contextlib.suppress(TaskTimeoutError):
        tm.future(stuck).result()
    ended = time.perf_counter() - start
    start = time.perf_counter()
    tm.future(tm.register_task("after", burn, 10, executor_type="cpu")).result()
    return ended, time.perf_counter() - start


def ours_dask(tm: TaskManager, tasks: int) -> float:
    start = time.perf_counter()
    ids = [tm.register_task("noop", noop, executor_type="dask") for _ in range(tasks)]
    for task_id in ids:
        tm.future(task_id).result()
    return time.perf_counter() - start


def plain_dask(client: Any, tasks: int) -> float:
    start = time.perf_counter()
    client.gather([client.submit(noop, pure=False) for _ in range(tasks)])
    return time.perf_counter() - start


def dask_scenario(size: int, pair: Callable[..., None]) -> None:
    """Scenario 14: ours and plain Dask on one LocalCluster, through one client."""
    import distributed

    from actors import DaskExecutor

    with (
        distributed.LocalCluster(  # type: ignore[no-untyped-call]
            processes=False, n_workers=2, threads_per_worker=2, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,  # type: ignore[no-untyped-call]
    ):
        executor = DaskExecutor(client=client, name="dask")
        tm = TaskManager(system=ActorSystem(max_concurrent_tasks=64, executors=[executor]))
        tm.start_sync()
        try:
            plain_dask(client, 20)  # warm both paths
            ours_dask(tm, 20)
            pair(
                "14 no-op tasks on DaskExecutor",
                "tasks/s",
                size,
                lambda: ours_dask(tm, size),
                lambda: plain_dask(client, size),
                ">= 0.8x client.submit + gather",
            )
        finally:
            tm.stop_sync()
            tm.system.shutdown()


def fresh(run: Callable[[], float]) -> float:
    """One run, on a collected heap: garbage an earlier run left must not be collected
    (and paid for) during this one. Ours and the baselines alike."""
    gc.collect()
    return run()


def best(repeat: int, run: Callable[[], float]) -> float:
    return min(fresh(run) for _ in range(repeat))


def ours_independent(
    tasks: int, executor: str, slots: int, journal: bool = False, via: str = "ids"
) -> float:
    """Register every task, then wait for each: by id (register_task, future) or by
    handle (submit, result). The default keep_finished: the held ids keep their tasks."""
    func: Callable[[], Any] = async_noop if executor == "async" else noop
    with tempfile.TemporaryDirectory() as directory:
        tm = TaskManager(
            max_concurrent_tasks=slots,
            journal=os.path.join(directory, "tasks.sqlite") if journal else None,
        )
        start = time.perf_counter()
        if via == "submit":  # "auto" runs noop on the thread pool, async_noop on the loop
            handles = [tm.submit(func) for _ in range(tasks)]
            for handle in handles:
                handle.result()
        else:
            ids = [tm.register_task("noop", func, executor_type=executor) for _ in range(tasks)]
            futures = [tm.future(task_id) for task_id in ids]
            for future in futures:
                future.result()
        elapsed = time.perf_counter() - start
        tm.stop_sync()
    return elapsed


def keyed_independent(tasks: int, keys: int) -> float:
    """Scenario 1 with a limit key per task (``keys`` keys, in turn) and limits that
    never bind: what the gate costs when it holds nothing back."""
    tm = TaskManager(max_concurrent_tasks=4)
    tm.limit("*", concurrency=1_000, rate=1e9, burst=1_000)
    start = time.perf_counter()
    ids = [
        tm.register_task("noop", noop, executor_type="thread_pool", limit_key=f"k{i % keys}")
        for i in range(tasks)
    ]
    futures = [tm.future(task_id) for task_id in ids]
    for future in futures:
        future.result()
    elapsed = time.perf_counter() - start
    tm.stop_sync()
    return elapsed


def journaled_registrations(tasks: int, threads: int) -> float:
    """Seconds for ``threads`` threads to register ``tasks`` tasks in all, each waiting
    for its commit (journal_sync="full": an fsync per commit), on a paused manager."""
    with tempfile.TemporaryDirectory() as directory:
        tm = TaskManager(
            keep_finished=None,
            journal=os.path.join(directory, "tasks.sqlite"),
            journal_sync="full",
        )
        ready = threading.Barrier(threads + 1)

        def register(count: int) -> None:
            ready.wait()
            for _ in range(count):
                tm.register_task("noop", noop)

        workers = [
            threading.Thread(target=register, args=(tasks // threads,)) for _ in range(threads)
        ]
        for worker in workers:
            worker.start()
        ready.wait()
        start = time.perf_counter()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - start
        tm.stop_sync()
    return elapsed


def registered_from_a_coroutine(tasks: int, journal: bool) -> float:
    async def main(path: str | None) -> float:
        async with TaskManager(keep_finished=None, journal=path) as tm:
            start = time.perf_counter()
            ids = await asyncio.gather(
                *(tm.register_task_async("noop", noop) for _ in range(tasks))
            )
            await tm.wait(ids)
            return time.perf_counter() - start

    with tempfile.TemporaryDirectory() as directory:
        return asyncio.run(main(os.path.join(directory, "tasks.sqlite") if journal else None))


def ours_awaited(tasks: int, executor: str, slots: int, via: str = "ids") -> float:
    func: Callable[[], Any] = async_noop if executor == "async" else noop

    async def main() -> float:
        async with TaskManager(max_concurrent_tasks=slots) as tm:
            start = time.perf_counter()
            if via == "submit":
                await asyncio.gather(*[tm.submit(func) for _ in range(tasks)])
            else:
                ids = [tm.register_task("noop", func, executor_type=executor) for _ in range(tasks)]
                await asyncio.gather(*(tm.execute_task(task_id) for task_id in ids))
            return time.perf_counter() - start

    return asyncio.run(main())


def resident_bytes() -> int:
    """This process's resident memory now (Linux: /proc; elsewhere the peak, from rusage)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def soak(batches: int, batch: int) -> tuple[float, float, float]:
    """(MB resident after the first batch, after the last, tasks/s over all of them)."""
    tm = TaskManager(max_concurrent_tasks=4)  # the default keep_finished
    first = last = 0.0
    start = time.perf_counter()
    for n in range(batches):
        ids = [tm.register_task("noop", noop) for _ in range(batch)]
        tm.future(ids[-1]).result()
        for task_id in ids[-8:]:  # the last few may still run: wait for them too
            future = tm.future(task_id) if tm.get_task_status(task_id) else None
            if future is not None:
                future.result()
        gc.collect()
        if n == 0:
            first = resident_bytes() / 2**20
    last = resident_bytes() / 2**20
    elapsed = time.perf_counter() - start
    tm.stop_sync()
    return first, last, batches * batch / elapsed


def plain_pool(tasks: int) -> float:
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(noop) for _ in range(tasks)]
        for future in futures:
            future.result()
    return time.perf_counter() - start


def plain_gather(tasks: int) -> float:
    async def main() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(async_noop() for _ in range(tasks)))
        return time.perf_counter() - start

    return asyncio.run(main())


def ours_chain(links: int) -> float:
    tm = TaskManager(max_concurrent_tasks=4)
    start = time.perf_counter()
    previous: list[str] = []
    for _ in range(links):
        previous = [tm.register_task("link", noop, dependencies=previous)]
    tm.future(previous[0]).result()
    elapsed = time.perf_counter() - start
    tm.stop_sync()
    return elapsed


def plain_chain(links: int) -> float:
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(links):
            pool.submit(noop).result()
    return time.perf_counter() - start


def ours_dag(layers: int, width: int) -> float:
    tm = TaskManager(max_concurrent_tasks=4)
    start = time.perf_counter()
    layer: list[str] = []
    for _ in range(layers):
        layer = [
            tm.register_task(
                "node", noop, dependencies=[layer[i], layer[(i + 1) % width]] if layer else None
            )
            for i in range(width)
        ]
    for task_id in layer:
        tm.future(task_id).result()
    elapsed = time.perf_counter() - start
    tm.stop_sync()
    return elapsed


def memory_per_waiting_task(tasks: int, journal: str | None = None) -> float:
    """Bytes per task waiting on a dependency (``journal``: with one at that path)."""
    # In a running system, so that the scheduler's own bookkeeping of each waiting task
    # (its dependency graph) is counted, not only the task store's.
    tm = TaskManager(max_concurrent_tasks=4, journal=journal)
    _RELEASE.clear()
    blocker = tm.register_task("blocker", blocked)
    tm.start_sync()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(tasks):
        tm.register_task("waiting", noop, dependencies=[blocker])
    # The scheduler takes registrations in order: once this one has run, it has put
    # every waiting task into its graph.
    tm.future(tm.register_task("sentinel", noop)).result()
    waiting = (tracemalloc.get_traced_memory()[0] - before) / tasks
    tracemalloc.stop()
    tm.cancel_task_sync(blocker)  # its dependents fail at once, none of them runs
    _RELEASE.set()
    tm.stop_sync()
    return waiting


_RELEASE = threading.Event()


def blocked() -> None:
    """Holds a slot until released (module-level: a journal can keep it)."""
    _RELEASE.wait()


def memory_per_task(tasks: int) -> tuple[float, float]:
    """(bytes per task waiting on a dependency, bytes per finished task kept)."""
    waiting = memory_per_waiting_task(tasks)
    tm = TaskManager(max_concurrent_tasks=4)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    ids = [tm.register_task("done", noop) for _ in range(tasks)]
    for task_id in ids:
        tm.future(task_id).result()
    gc.collect()
    finished = (tracemalloc.get_traced_memory()[0] - before) / tasks
    tracemalloc.stop()
    tm.stop_sync()
    return waiting, finished


_STOP = "stop"


class _StopsOnRequest:
    def on_receive(self, message: Any) -> None:
        if message == _STOP:
            self.stop()  # type: ignore[attr-defined]


class _Hosted(_StopsOnRequest, HostedActor):
    registered = False  # as a task actor: reached through the task store, not the registry


class _HostedRegistered(_StopsOnRequest, HostedActor):
    pass  # in pykka's ActorRegistry, as hosted actors are by default


class _Threaded(_StopsOnRequest, pykka.ThreadingActor):
    pass


def actor_start_stop(actors: int, hosted: bool, registered: bool = False) -> float:
    """Seconds per actor to start it and have it stop (all started, all stopped, waited)."""
    pool = ThreadPoolDispatcher(4)
    kind = _HostedRegistered if registered else _Hosted
    start = time.perf_counter()
    refs = []
    for _ in range(actors):
        ref = kind.start_on(pool) if hosted else _Threaded.start()
        ref.tell(_STOP)
        refs.append(ref)
    for ref in refs:
        ref.actor_stopped.wait()
    elapsed = time.perf_counter() - start
    pykka.ActorRegistry.stop_all()  # ThreadingActor threads finish exiting
    pool.shutdown()
    return elapsed / actors


def run(scale: float, repeat: int, scenarios: set[int] | None = None) -> dict[str, Any]:
    """Run the scenarios (all, or those numbered in ``scenarios``)."""

    def wanted(number: int) -> bool:
        return scenarios is None or number in scenarios

    def size(n: int) -> int:
        return max(10, int(n * scale))

    rows: list[dict[str, Any]] = []

    def pair(
        name: str,
        unit: str,
        count: int,
        ours: Callable[[], float],
        base: Callable[[], float],
        target: str,
        runs: int = repeat,
        submit: Callable[[], float] | None = None,
    ) -> None:
        """Ours against the baseline, alternating; ``submit``: ours again through
        handles (submit and its handles instead of register_task and ids), in turn."""
        ours_t: list[float] = []
        base_t: list[float] = []
        submit_t: list[float] = []
        for _ in range(runs):  # alternate, so drift hits both alike
            ours_t.append(fresh(ours))
            base_t.append(fresh(base))
            if submit is not None:
                submit_t.append(fresh(submit))
        o, b = min(ours_t), min(base_t)
        if unit == "tasks/s":
            ours_v, base_v = count / o, count / b
        else:
            ours_v, base_v = o / count * 1e6, b / count * 1e6
        row: dict[str, Any] = {
            "scenario": name,
            "unit": unit,
            "count": count,
            "ours": round(ours_v, 1),
            "baseline": round(base_v, 1),
            "ratio": round(ours_v / base_v, 3),
            "target": target,
        }
        if submit_t:
            submit_v = count / min(submit_t)
            row["submit"] = round(submit_v, 1)
            row["submit_vs_ids"] = round(submit_v / ours_v, 3)
            row["target"] += f"; submit: {submit_v:,.0f} ({submit_v / ours_v:.2f}x the ids)"
        rows.append(row)

    n1 = size(20_000)
    if wanted(1):
        pair(
            "1 independent sync tasks (4 slots)",
            "tasks/s",
            n1,
            lambda: ours_independent(n1, "thread_pool", 4),
            lambda: plain_pool(n1),
            ">= 0.25x ThreadPoolExecutor(4)",
            submit=lambda: ours_independent(n1, "thread_pool", 4, via="submit"),
        )
    if wanted(2):
        pair(
            "2 independent coroutine tasks",
            "tasks/s",
            n1,
            lambda: ours_independent(n1, "async", n1),
            lambda: plain_gather(n1),
            ">= 0.10x asyncio.gather",
            submit=lambda: ours_independent(n1, "async", n1, via="submit"),
        )
    if wanted(3):
        n3 = size(1_000)
        pair(
            "3 chain of dependent tasks",
            "us/link",
            n3,
            lambda: ours_chain(n3),
            lambda: plain_chain(n3),
            "<= 2x submit-and-wait",
        )
    if wanted(4):
        layers, width = max(2, int(100 * scale)), max(4, int(1_000 * scale))
        dag = best(repeat, lambda: ours_dag(layers, width))
        rows.append(
            {
                "scenario": f"4 wide DAG ({layers} layers x {width})",
                "unit": "tasks/s",
                "count": layers * width,
                "ours": round(layers * width / dag, 1),
                "baseline": None,
                "ratio": None,
                "target": f"total {dag:.2f}s",
            }
        )
    if wanted(5):
        small, large = n1, size(200_000)
        per_small = best(repeat, lambda: ours_independent(small, "thread_pool", 4)) / small
        per_large = best(repeat, lambda: ours_independent(large, "thread_pool", 4)) / large
        # The plain pool's own growth, in the same run: the interpreter's share (the cyclic
        # collector walks every live future, caches miss more), which no task manager avoids.
        plain_growth = best(repeat, lambda: plain_pool(large) / large) / best(
            repeat, lambda: plain_pool(small) / small
        )
        rows.append(
            {
                "scenario": f"5 scaling {small} -> {large} tasks",
                "unit": "us/task",
                "count": large,
                "ours": round(per_large * 1e6, 1),
                "baseline": round(per_small * 1e6, 1),
                "ratio": round(per_large / per_small, 3),
                "baseline_ratio": round(plain_growth, 3),
                "target": (
                    "<= 1.3x (per task, large vs small; "
                    f"ThreadPoolExecutor(4) grows {plain_growth:.2f}x)"
                ),
            }
        )
    if wanted(6):
        waiting, finished = memory_per_task(size(100_000))
        rows.append(
            {
                "scenario": "6 memory per waiting task / finished task",
                "unit": "bytes",
                "count": size(100_000),
                "ours": round(waiting),
                "baseline": round(finished),
                "ratio": None,
                "target": "<= 1024 B per waiting task (baseline column: per finished task)",
            }
        )
    if wanted(7):
        n7 = size(2_000)
        pair(
            "7 start+stop: task actor vs ThreadingActor",
            "us/actor",
            1,
            lambda: actor_start_stop(n7, hosted=True),
            lambda: actor_start_stop(max(10, n7 // 10), hosted=False),
            "<= 0.05x a ThreadingActor",
            # A run takes about 10 ms, so one collection of the cyclic GC in it doubles it:
            # more runs (best of them, both sides alike), as timeit does.
            runs=repeat * 3,
        )
        # A hosted actor that stays in pykka's registry (the default for application actors).
        registered = best(repeat * 3, lambda: actor_start_stop(n7, hosted=True, registered=True))
        rows[-1]["registered_hosted"] = round(registered * 1e6, 1)
        rows[-1]["target"] += f" (in the registry: {registered * 1e6:.1f} us)"
    if wanted(8):
        pair(
            "8 sync tasks awaited: gather(execute_task)",
            "tasks/s",
            n1,
            lambda: ours_awaited(n1, "thread_pool", 4),
            lambda: plain_pool(n1),
            ">= 0.25x ThreadPoolExecutor(4)",
            submit=lambda: ours_awaited(n1, "thread_pool", 4, via="submit"),
        )
    if wanted(9):
        pair(
            "9 coroutine tasks awaited: gather(execute_task)",
            "tasks/s",
            n1,
            lambda: ours_awaited(n1, "async", n1),
            lambda: plain_gather(n1),
            ">= 0.10x asyncio.gather",
            submit=lambda: ours_awaited(n1, "async", n1, via="submit"),
        )
    if wanted(10):
        batches = max(2, int(100 * scale))
        first, last, rate = soak(batches, 10_000)
        rows.append(
            {
                "scenario": f"10 soak: {batches} x 10,000 tasks",
                "unit": "MB",
                "count": batches * 10_000,
                "ours": round(last, 1),
                "baseline": round(first, 1),
                "ratio": round(last / first, 3),
                "target": f"last - first <= 50 MB ({last - first:+.1f} MB; {rate:,.0f} tasks/s)",
            }
        )
    if wanted(11) or wanted(12) or wanted(13):
        tm = process_manager(2)
        spawn = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=spawn) as pool:
            for future in [pool.submit(burn, 10) for _ in range(4)]:
                future.result()  # warm: its workers spawned, as ours are
            n11 = size(2_000)
            if wanted(11):
                pair(
                    "11 no-op tasks on ProcessExecutor(2)",
                    "tasks/s",
                    n11,
                    lambda: ours_process(tm, n11, 0),
                    lambda: plain_process_pool(pool, n11, 0),
                    ">= 0.8x ProcessPoolExecutor(2)",
                )
        n12 = max(4, int(40 * scale))
        if wanted(12):
            one = best(repeat, lambda: burn_once(BURN_LOOPS))
            pair(
                f"12 CPU-bound tasks ({one * 1e3:.0f} ms each)",
                "tasks/s",
                n12,
                lambda: ours_process(tm, n12, BURN_LOOPS),
                lambda: ours_threads(n12, BURN_LOOPS),
                ">= 1.6x the thread pool (2 slots)",
            )
        if wanted(13):
            ended, after = kill_latency(tm)
            rows.append(
                {
                    "scenario": "13 kill: sleep(60), timeout=0.5",
                    "unit": "s",
                    "count": 1,
                    "ours": round(ended, 3),
                    "baseline": None,
                    "ratio": None,
                    "target": f"<= 1.0 s (a task after it: {after:.2f} s)",
                }
            )
        stop_process_manager(tm)
    if wanted(14):
        dask_scenario(size(1_000), pair)
    if wanted(15):
        n15 = size(20_000)
        pair(
            "15 sync tasks with a journal (scenario 1)",
            "tasks/s",
            n15,
            lambda: ours_independent(n15, "thread_pool", 4, journal=True),
            lambda: ours_independent(n15, "thread_pool", 4),
            ">= 0.5x the same without a journal",
        )
        with tempfile.TemporaryDirectory() as directory:
            journaled = memory_per_waiting_task(
                size(100_000), os.path.join(directory, "tasks.sqlite")
            )
        plain = memory_per_waiting_task(size(100_000))
        rows[-1]["waiting_task_bytes"] = {"journal": round(journaled), "none": round(plain)}
        rows[-1]["target"] += (
            f"; bytes per waiting task {journaled:.0f} with it, {plain:.0f} without"
        )
    if wanted(16):
        n16 = size(2_000)
        pair(
            '16 journaled registrations, sync="full"',
            "tasks/s",
            n16,
            lambda: journaled_registrations(n16, 8),
            lambda: journaled_registrations(n16, 1),
            ">= 2x one thread (8 threads share commits)",
        )
    if wanted(17):
        n17 = size(20_000)
        pair(
            "17 registered from a coroutine, with a journal",
            "tasks/s",
            n17,
            lambda: registered_from_a_coroutine(n17, journal=True),
            lambda: registered_from_a_coroutine(n17, journal=False),
            ">= 0.5x the same without a journal",
        )
    if wanted(18):
        pair(
            "18 scenario 1 with 1,000 limit keys that never bind",
            "tasks/s",
            n1,
            lambda: keyed_independent(n1, 1_000),
            lambda: ours_independent(n1, "thread_pool", 4),
            ">= 0.8x scenario 1 (no keys), same sitting",
        )
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "scale": scale,
        "repeat": repeat,
        "results": rows,
    }


SCENARIOS = range(1, 19)


def run_each_apart(scale: float, repeat: int, scenarios: set[int] | None) -> dict[str, Any]:
    """``run``, each scenario in a fresh interpreter (as pyperf runs each benchmark): a
    scenario that leaves a large or fragmented heap (5 and 6 build 200,000 and 100,000
    tasks) must not slow the ones after it. Measured: scenario 9 after 1-8 in one process
    ran at 0.07x asyncio.gather, alone at 0.106x; scenario 7 at 14 us, alone at 8 us."""
    rows: list[dict[str, Any]] = []
    report: dict[str, Any] = {}
    for number in sorted(scenarios) if scenarios is not None else SCENARIOS:
        command = [
            sys.executable, __file__, "--in-process", "--json", "--scenario", str(number),
            "--scale", str(scale), "--repeat", str(repeat),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"scenario {number} failed:\n{done.stderr}")
        report = json.loads(done.stdout)
        rows.extend(report["results"])
    return {**report, "results": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every size")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--scenario",
        type=int,
        action="append",
        choices=SCENARIOS,
        metavar="N",
        help="run scenario N only (1-18; repeat the option for several)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run every scenario in this process (default: each in a fresh one)",
    )
    options = parser.parse_args(argv)
    wanted = set(options.scenario or ()) or None
    if options.in_process:
        report = run(options.scale, options.repeat, wanted)
    else:
        report = run_each_apart(options.scale, options.repeat, wanted)
    if options.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return 0
    machine = report["machine"]
    print(f"{machine['cpus']} cpus, Python {machine['python']}, scale {options.scale}")
    print(f"{'scenario':46} {'unit':9} {'ours':>11} {'baseline':>11} {'ratio':>7}  target")
    for row in report["results"]:
        baseline = "-" if row["baseline"] is None else f"{row['baseline']:,.1f}"
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.3f}"
        print(
            f"{row['scenario']:46} {row['unit']:9} {row['ours']:>11,.1f} {baseline:>11} "
            f"{ratio:>7}  {row['target']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
