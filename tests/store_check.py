"""A check run in every test of the task system: the store's counts by status, kept as
tasks change, always equal a count of its records (metrics read the kept counts)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from actors.core.store import TaskStore


def _check(store: TaskStore) -> None:
    with store.locked():
        kept = +Counter(store._counts)
        counted = Counter(e.task.status for e in store._entries.values())
    assert kept == counted, f"the store's kept counts {kept} differ from its records {counted}"


@pytest.fixture(autouse=True)
def counts_kept_right(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checks the counts each time metrics read them and each time a store closes."""
    counts, close = TaskStore.counts, TaskStore.close

    def checked_counts(store: TaskStore) -> Counter[Any]:
        _check(store)
        return counts(store)

    def checked_close(store: TaskStore, *args: Any, **kwargs: Any) -> list[str]:
        closed = close(store, *args, **kwargs)
        _check(store)
        return closed

    monkeypatch.setattr(TaskStore, "counts", checked_counts)
    monkeypatch.setattr(TaskStore, "close", checked_close)
