"""The wording of the compat layers' DeprecationWarning: what is deprecated, what replaces it.

Each compat entry point calls ``warnings.warn(deprecation_message(...), DeprecationWarning,
stacklevel=2)`` itself, on every use: the warnings filters, not this package, decide how
often a warning shows, so ``pytest.warns`` always sees it, and ``stacklevel=2`` (counted
from the entry point) names the caller's line.
"""

from __future__ import annotations

__all__ = ["deprecation_message"]


def deprecation_message(old: str, replacement: str) -> str:
    """The message saying that ``old`` is deprecated in favour of ``replacement``."""
    return f"{old} is deprecated; use {replacement} instead (see docs/MIGRATION.md)"
