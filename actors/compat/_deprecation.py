"""Warn DeprecationWarning once per compat class, naming what replaces it."""

from __future__ import annotations

import threading
import warnings

__all__ = ["warn_once"]

_warned: set[str] = set()
_lock = threading.Lock()


def warn_once(old: str, replacement: str) -> None:
    """Warn that ``old`` is deprecated in favour of ``replacement``, the first time only."""
    with _lock:
        if old in _warned:
            return
        _warned.add(old)
    warnings.warn(
        f"{old} is deprecated; use {replacement} instead (see docs/MIGRATION.md)",
        DeprecationWarning,
        stacklevel=3,
    )


def _forget_warnings() -> None:
    """Let every class warn again (for tests)."""
    with _lock:
        _warned.clear()
