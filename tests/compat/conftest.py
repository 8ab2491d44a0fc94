"""Compat tests: fresh shared instances for every test, deprecation warnings silenced."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from actors.compat.task_manager import TaskManager
from actors.compat.thread_pool_manager import ThreadPoolManager
from tests.store_check import counts_kept_right  # noqa: F401 - autouse: every test checks

WAIT = 5.0


@pytest.fixture(autouse=True)
def _fresh_compat_state() -> Iterator[None]:
    with warnings.catch_warnings():
        # The warnings themselves are tested in test_deprecations.py (pytest.warns records
        # them whatever the filters around it say).
        warnings.simplefilter("ignore", DeprecationWarning)
        yield
    TaskManager.reset_instance(timeout=WAIT)
    ThreadPoolManager.reset_instance()
