"""Reliability tests: the time limit of their waits (fault points belong to each system)."""

from __future__ import annotations

from pathlib import Path

import pytest

WAIT = 10.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every reliability test is a slow scenario (processes, kills, chaos): CI runs them apart."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.slow)
