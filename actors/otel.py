"""OpenTelemetry tracing of task attempts (defined in :mod:`actors.observe.otel`)."""

from __future__ import annotations

from actors.observe.otel import ActorsInstrumentor

__all__ = ["ActorsInstrumentor"]
