"""The library's structlog logger: silent until the application configures structlog."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import structlog

__all__ = ["Logger", "get_logger"]


class Logger:
    """Emits structlog events only once the application has called ``structlog.configure``.

    A library must not print by default, and structlog's unconfigured default prints to
    stdout; checking ``structlog.is_configured()`` per event costs one global read, so a
    disabled log call costs next to nothing on hot paths. Event keys never clash with
    ``logging.LogRecord``'s attributes (``task_name``, never ``name``), so routing
    structlog into the standard library works; a processor that raises never breaks
    the caller.
    """

    __slots__ = ("_context", "_logger", "_name")

    def __init__(self, name: str, **context: Any) -> None:
        self._name = name
        self._context = context
        # A lazy proxy: it reads structlog's configuration at each event, so an
        # application that configures structlog after importing us still gets our events.
        self._logger: Any = structlog.get_logger(name, component=name, **context)

    @property
    def enabled(self) -> bool:
        return structlog.is_configured()

    def bind(self, **context: Any) -> Logger:
        return Logger(self._name, **{**self._context, **context})

    def debug(self, event: str, **fields: Any) -> None:
        if structlog.is_configured():
            self._emit("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        if structlog.is_configured():
            self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        if structlog.is_configured():
            self._emit("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        if structlog.is_configured():
            self._emit("error", event, fields)

    def _emit(self, method: str, event: str, fields: dict[str, Any]) -> None:
        # Log calls sit on the paths that end tasks and restart actors: an application's
        # processor or handler that raises must never break those. Its error is reported
        # through the standard library's logging instead, and the work goes on.
        try:
            getattr(self._logger, method)(event, **fields)
        except Exception:  # noqa: BLE001 - see above
            with contextlib.suppress(Exception):  # nothing is left to report it with
                _fallback.error("a log processor failed on %s", event, exc_info=True)


_fallback = logging.getLogger("actors.logging")


def get_logger(name: str, **context: Any) -> Logger:
    """Return the library's logger called ``name`` with ``context`` bound."""
    return Logger(name, **context)
