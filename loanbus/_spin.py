"""Spinning before sleeping: how long a waiting ``take`` or ``get_loan`` keeps looking.

A process that sleeps in ``poll()`` is woken by the kernel when a reference arrives, and on
many machines that wake-up costs more than everything else on the path: the waker has to
interrupt an idle CPU, and in a virtual machine an idle virtual CPU is halted by the
hypervisor. A waiter that keeps looking for a short while first (a non-blocking ``poll`` or a
look at the hold cells, in a loop) sees a reference that comes within that time at once, and
its writer's ``write`` has nobody to wake. Past the spin it sleeps as before, so a wait for a
sample that comes later costs at most the spin in CPU.

Between two looks the spinner yields its CPU (``sched_yield``): when the process it waits
for shares that CPU (both bound to one CPU, or a machine with one), the other process runs
at once instead of after the spin; with nothing else to run there the yield returns at once.
Measured in docs/performance.md.

``LOANBUS_SPIN_US`` sets the spin in microseconds (default 50; 0: sleep at once).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

SPIN_ENV = "LOANBUS_SPIN_US"
_yield = os.sched_yield
DEFAULT_SPIN_US = 50
_MAX_SPIN_US = 1_000_000


def spin_ns() -> int:
    """The spin of this process in nanoseconds: ``LOANBUS_SPIN_US``, or the default."""
    text = os.environ.get(SPIN_ENV, "").strip()
    if not text:
        return DEFAULT_SPIN_US * 1000
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= _MAX_SPIN_US:
        raise ValueError(f"{SPIN_ENV}={text!r}: give the spin in whole microseconds, 0 to {_MAX_SPIN_US}")
    return value * 1000


def spin(look: Callable[[], object], ns: int) -> Any:
    """Call ``look`` until it returns something true (then that) or ``ns`` nanoseconds passed
    (then None), yielding the CPU between two calls."""
    if ns <= 0:
        return None
    clock = time.perf_counter_ns
    end = clock() + ns
    while True:
        found = look()
        if found:
            return found
        if clock() >= end:
            return None
        _yield()


__all__ = ["DEFAULT_SPIN_US", "SPIN_ENV", "spin", "spin_ns"]
