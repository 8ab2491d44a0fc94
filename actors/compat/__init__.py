"""The old WiseFlow task-manager APIs, kept working on top of the unified TaskManager.

Switch the import, keep the calls, migrate at your own pace (see docs/guides/migration.md).
Every construction and helper call warns DeprecationWarning naming the replacement; each
manager exposes the TaskManager it delegates to as ``.manager``.
"""

from __future__ import annotations

__all__: list[str] = []
