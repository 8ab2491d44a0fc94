"""The compat layers' DeprecationWarning: what is deprecated, what replaces it.

Each compat entry point calls :func:`warn_deprecated` on every use: the warnings filters,
not this package, decide how often a warning shows, so ``pytest.warns`` always sees it,
and the warning names the line that called the entry point.
"""

from __future__ import annotations

import warnings

__all__ = ["warn_deprecated"]


def warn_deprecated(old: str, replacement: str) -> None:
    """Warn that ``old`` is deprecated in favour of ``replacement``, at the line that
    called the compat entry point that calls this."""
    warnings.warn(
        f"{old} is deprecated; use {replacement} instead (see docs/guides/migration.md)",
        DeprecationWarning,
        stacklevel=3,  # this function, the entry point, its caller
    )
