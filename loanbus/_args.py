"""Argument checks shared by the public API: one clear TypeError or ValueError naming the argument."""

from __future__ import annotations

import math


def check_int(value: object, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` if it is an int (not a bool) within ``low..high``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"within {low}..{high}" if low is not None and high is not None else f">= {low}"
        raise ValueError(f"{name} must be {span}, not {value}")
    return value


def check_seconds(value: object, name: str) -> float:
    """A duration in seconds: a real number >= 0; ``math.inf`` means for ever."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    seconds = float(value)
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"{name} must be >= 0 seconds (math.inf: wait for ever), not {value!r}")
    return seconds


def check_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {value!r}")
    return value
