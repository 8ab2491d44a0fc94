"""Reliability tests: the time limit of their waits (fault points belong to each system)."""

from __future__ import annotations

WAIT = 10.0
