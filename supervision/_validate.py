"""Checks for the values users hand in: one place, one wording, for both packages.

Every check names the parameter and the value it refused, and refuses absurd numbers
too: nan, infinities, and durations beyond ``threading.TIMEOUT_MAX`` (a wait that long
overflows the platform's clock and kills the thread that waits). ``actors`` uses these
as well (``supervision`` never imports ``actors``).
"""

from __future__ import annotations

import math
import threading
from typing import Any

__all__ = [
    "MAX_SECONDS",
    "check_flag",
    "check_int",
    "check_number",
    "check_seconds",
    "check_text",
    "show",
]

MAX_SECONDS: float = threading.TIMEOUT_MAX
"""The longest delay or timeout accepted anywhere: what ``Condition.wait`` can take."""


def show(value: object) -> str:
    """``repr(value)``, cut short: a message must stay readable for a 400-digit int."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}...{text[-12:]} ({len(text)} chars)"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float = 0.0,
    above_minimum: bool = False,
    maximum: float = MAX_SECONDS,
) -> float:
    """``value`` as a float, if it is a real finite number in the range; else raise.

    Raises:
        TypeError: not an int or float (a bool is not a number here).
        ValueError: nan, infinite, below ``minimum`` (or equal, with ``above_minimum``),
            or above ``maximum``.
    """
    if not _is_number(value):
        raise TypeError(f"{name} must be a number, got {show(value)}")
    low = f"> {minimum:g}" if above_minimum else f">= {minimum:g}"
    high = "threading.TIMEOUT_MAX" if maximum == MAX_SECONDS else f"{maximum:g}"
    # Compare before converting: an int too large for a float raises OverflowError there.
    # Guarded by
    # tests/supervision/test_bad_values.py::test_a_huge_delay_is_refused_and_later_timers_still_fire
    in_range = (value > minimum if above_minimum else value >= minimum) and value <= maximum
    if (isinstance(value, float) and math.isnan(value)) or not in_range:
        raise ValueError(f"{name} must be a finite number {low} and <= {high}, got {show(value)}")
    return float(value)


def check_seconds(name: str, value: Any, *, allow_zero: bool = True) -> float:
    """A duration in seconds: finite, >= 0 (> 0 without ``allow_zero``), <= MAX_SECONDS."""
    return check_number(name, value, minimum=0.0, above_minimum=not allow_zero)


def check_int(
    name: str, value: Any, *, minimum: int = 0, maximum: int | None = None, why: str = ""
) -> int:
    """``value`` if it is an int (not a bool) from ``minimum`` to ``maximum``; else raise.

    ``why`` says, in the message, why the bound is there.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {show(value)}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        because = f" ({why})" if why else ""
        raise ValueError(f"{name} must be an integer {bound}{because}, got {show(value)}")
    return value


def check_text(name: str, value: Any, *, allow_empty: bool = True, storable: bool = False) -> str:
    """``value`` if it is a str (non-empty unless ``allow_empty``); else raise TypeError.

    With ``storable``, also ValueError for a NUL character or a lone surrogate: text that
    UTF-8 files (a journal, a graph) and C strings cannot hold.
    """
    if not isinstance(value, str) or (not allow_empty and not value):
        kind = "a string" if allow_empty else "a non-empty string"
        raise TypeError(f"{name} must be {kind}, got {show(value)}")
    if storable and ("\x00" in value or not (value.isascii() or _encodes(value))):
        raise ValueError(
            f"{name} must not contain a NUL character or a lone surrogate (a journal or "
            f"graph file cannot hold it), got {show(value)}"
        )
    return value


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_flag(name: str, value: Any) -> bool:
    """``value`` if it is a bool; else raise TypeError (a truthy string is not a yes)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {show(value)}")
    return value
