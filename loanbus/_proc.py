"""Facts about processes and the host, read from /proc: liveness and host identity."""

from __future__ import annotations

import functools
import os


def _stat_fields(pid: int) -> list[bytes] | None:
    """Fields 3.. of /proc/PID/stat (the command name, field 2, may hold spaces and ')')."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rfind(b")") + 2 :].split()


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields is not None else None
    except (IndexError, ValueError):
        return None


def process_state(pid: int) -> str | None:
    """The one-letter state of /proc/PID/stat ('Z' for a zombie), or None if there is none."""
    fields = _stat_fields(pid)
    return fields[0].decode() if fields else None


def process_alive(pid: int, start_time: int) -> bool:
    """True if ``pid`` runs, is not a zombie, and started at ``start_time`` (no pid reuse)."""
    if pid <= 0:
        return False
    state = process_state(pid)
    if state is None or state in ("Z", "X"):
        return False
    return process_start_time(pid) == start_time


@functools.lru_cache(maxsize=1)
def host_identity() -> str:
    """Who can share memory with us: boot id, IPC namespace, and the /dev/shm file system.

    The device of /dev/shm (not the mount namespace) decides whether two processes see the
    same POSIX segments: ``ip netns exec`` makes a new mount namespace but keeps /dev/shm.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        boot = "unknown-boot"
    parts = [boot]
    try:
        parts.append(f"ipc:{os.stat('/proc/self/ns/ipc').st_ino}")
    except OSError:
        parts.append("ipc:?")
    try:
        parts.append(f"shm:{os.stat('/dev/shm').st_dev}")
    except OSError:
        parts.append("shm:?")
    return "/".join(parts)
