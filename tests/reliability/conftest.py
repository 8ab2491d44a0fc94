"""Reliability tests: the time limit of their waits (fault points belong to each system)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.store_check import counts_kept_right  # noqa: F401 - autouse: every test checks

WAIT = 10.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every reliability test is a slow scenario (processes, kills, chaos): CI runs them apart."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.slow)
