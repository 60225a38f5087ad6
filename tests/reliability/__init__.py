"""Crashes, hostile input, permissions and cleanup, proven with real processes.

Sizes: with ``LOANBUS_STRESS_SCALE`` unset (or ``ci``) the long tests run in a bounded CI
form; ``full`` runs the full form (200 writer kills, 100,000 torn-read writes, 50 reader
kills); a number multiplies the CI form. ``LOANBUS_FIGURES=FILE`` appends the
figures each stress test measured to FILE as JSON lines (docs/reliability.md quotes them).
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from loanbus import _layout as L

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOANBUS = [sys.executable, "-m", "loanbus.cli.main"]


def stress(ci: int, full: int) -> int:
    """The size of a long test: ``ci`` by default, ``full`` with LOANBUS_STRESS_SCALE=full."""
    scale = os.environ.get("LOANBUS_STRESS_SCALE", "ci").strip().lower()
    if scale in ("", "ci"):
        return ci
    if scale == "full":
        return full
    return max(1, round(ci * float(scale)))


def full_scale() -> bool:
    return os.environ.get("LOANBUS_STRESS_SCALE", "").strip().lower() == "full"


def record(test: str, **figures: Any) -> None:
    """Print the figures a stress test measured (and append them to $LOANBUS_FIGURES)."""
    line = json.dumps({"test": test, "scale": os.environ.get("LOANBUS_STRESS_SCALE", "ci"), **figures})
    print(f"FIGURES {line}")
    path = os.environ.get("LOANBUS_FIGURES")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def tally(counts: Any, consistent: bool, whole: bool) -> None:
    """Count one taken sample: consistent or not, and whether its bytes were all one generation.

    ``torn_accepted`` (consistent but mixed bytes) is what must stay 0; ``torn_detected``
    shows the race was really exercised.
    """
    if consistent:
        counts["consistent"] += 1
        counts["torn_accepted"] += not whole
    else:
        counts["inconsistent"] += 1
        counts["torn_detected"] += not whole
    counts["taken"] += 1


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.01) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def run_cli(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m loanbus.cli.main ARGS`` as a user would (wide terminal, no colour)."""
    env = {**os.environ, "COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb", **(env or {})}
    return subprocess.run(
        [*LOANBUS, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO
    )


def python(code: str, **kwargs: Any) -> subprocess.Popen[str]:
    """A plain ``python -c CODE`` child (its own resource tracker, nothing inherited)."""
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, text=True, **kwargs)


def shm_entries(tag: str) -> list[str]:
    """Entries of /dev/shm that belong to this test (its LOANBUS_SHM_PREFIX tag)."""
    return sorted(n for n in os.listdir("/dev/shm") if f"loanbus{tag}." in n)


def shm_path(name: str) -> str:
    return "/dev/shm/" + name.lstrip("/")


def poke_header(name: str, field: str, value: Any) -> None:
    """Overwrite one header word of a segment through a mapping of our own."""
    offset, fmt = L.HEADER_FIELDS[field]
    fd = os.open(shm_path(name), os.O_RDWR | os.O_NOFOLLOW)
    try:
        with mmap.mmap(fd, L.HEADER_SIZE) as mm:
            struct.pack_into(fmt, mm, offset, value)
    finally:
        os.close(fd)


def peek_header(name: str, field: str) -> Any:
    offset, fmt = L.HEADER_FIELDS[field]
    fd = os.open(shm_path(name), os.O_RDONLY | os.O_NOFOLLOW)
    try:
        return struct.unpack(fmt, os.pread(fd, struct.calcsize(fmt), offset))[0]
    finally:
        os.close(fd)
