"""Reliability tests: fault points are disarmed after every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from actors._faults import faults

WAIT = 10.0


@pytest.fixture(autouse=True)
def _disarm_faults() -> Iterator[None]:
    faults.reset()
    yield
    faults.reset()
