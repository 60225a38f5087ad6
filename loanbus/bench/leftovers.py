"""Names of the files a ``loanbus bench`` run shares between its processes, and the removal of
those a killed run left behind (``loanbus clean``).

A run's POSIX segments and semaphores are named ``bench.<loanbus prefix>.<pid>-<n>...``
after the main process that made them; its iceoryx2 files ``lb-iox<pid>-<n>.`` and its
iceoryx2 root directory ``<tmp>/lb-iox<pid>-...`` (short: iceoryx2 puts the root and the
prefix into socket paths, which may not exceed 108 bytes). The main process removes them when
the run ends, also on an exception or Ctrl-C; only a process killed outright leaves them, and
then the pid in the name tells that nobody uses them any more.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass

from loanbus.pool import shm_prefix

SHM_DIR = "/dev/shm"
IOX_STEM = "lb-iox"


def run_base() -> str:
    """The name stem of one run's shared files (no leading slash)."""
    return f"bench.{shm_prefix()}.{os.getpid()}-{time.monotonic_ns() % 10**9}"


def iox_names() -> tuple[str, str]:
    """(file prefix, fresh root directory ending in '/') of one run's iceoryx2 configuration."""
    stem = f"{IOX_STEM}{os.getpid()}-"
    return f"{stem}{time.monotonic_ns() % 10**6}.", tempfile.mkdtemp(prefix=stem) + "/"


@dataclass(frozen=True)
class Leftover:
    """A file or directory of a bench run whose main process is gone."""

    path: str
    pid: int


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, and not ours to judge
    return True


def dead_runs() -> list[Leftover]:
    """Files of bench runs (under this user's loanbus prefix) whose main process has exited."""
    posix = r"(?:sem\.)?bench\." + re.escape(shm_prefix()) + r"\.(\d+)-\d+\."
    stem = re.compile(posix + "|" + IOX_STEM + r"(\d+)-")
    root = re.compile(IOX_STEM + r"(\d+)-")
    found = []
    for directory, pattern in ((SHM_DIR, stem), (tempfile.gettempdir(), root)):
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            m = pattern.match(name)
            if m is None:
                continue
            pid = int(next(g for g in m.groups() if g is not None))
            if not _alive(pid):
                found.append(Leftover(os.path.join(directory, name), pid))
    return found


def remove_run(prefix: str, root: str) -> None:
    """Remove one finished run's iceoryx2 files: /dev/shm entries under its prefix (the
    node-management segment outlives every node) and its root directory."""
    for name in os.listdir(SHM_DIR):
        if name.startswith(prefix):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(SHM_DIR, name))
    shutil.rmtree(root, ignore_errors=True)


def remove(leftover: Leftover) -> bool:
    """Remove one leftover; False if it was gone already."""
    try:
        if os.path.isdir(leftover.path):
            shutil.rmtree(leftover.path)
        else:
            os.unlink(leftover.path)
    except FileNotFoundError:
        return False
    return True
