"""The yielding lock: mutual exclusion, and a waiter that sleeps once yielding fails."""

from __future__ import annotations

import threading
import time

from actors.runtime.sync import YieldingLock

from .conftest import WAIT


def test_the_yielding_lock_lets_one_thread_in_at_a_time() -> None:
    lock = YieldingLock()
    inside, most, rounds = [0], [0], 500
    start = threading.Barrier(4, timeout=WAIT)

    def work() -> None:
        start.wait()
        for _ in range(rounds):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
                time.sleep(0)  # give the GIL away inside: without the lock, others get in
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads)
    assert most == [1]
    assert not lock.locked()


def test_a_waiter_that_cannot_get_the_lock_waits_for_its_release() -> None:
    lock = YieldingLock()
    acquired = threading.Event()

    def take() -> None:
        with lock:
            acquired.set()

    lock.acquire()
    taker = threading.Thread(target=take)
    taker.start()
    # Well past its yields, it is still waiting: the lock is ours.
    assert not acquired.wait(0.2)
    lock.release()
    assert acquired.wait(WAIT)
    taker.join(WAIT)
    assert not lock.locked()
