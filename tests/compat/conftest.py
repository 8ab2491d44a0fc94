"""Compat tests: fresh shared instances and fresh deprecation warnings for every test."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from actors.compat._deprecation import _forget_warnings
from actors.compat.task_manager import TaskManager
from actors.compat.thread_pool_manager import ThreadPoolManager

WAIT = 5.0


@pytest.fixture(autouse=True)
def _fresh_compat_state() -> Iterator[None]:
    _forget_warnings()
    with warnings.catch_warnings():
        # The warnings themselves are tested in test_deprecations.py.
        warnings.simplefilter("ignore", DeprecationWarning)
        yield
    TaskManager.reset_instance(timeout=WAIT)
    ThreadPoolManager.reset_instance()
    _forget_warnings()
