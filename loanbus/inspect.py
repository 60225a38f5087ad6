"""What is in /dev/shm: loanbus pools, their owners, whether those live, and leftovers.

Used by ``loanbus ls`` and ``loanbus clean`` and by a new writer (which removes the dead
pools of its topic); reads headers with ``pread`` and never maps a segment. Anyone can
create files in /dev/shm, so nothing here follows a link, blocks on a FIFO, or takes another
user's file for a dead pool of ours: such entries are listed with the reason and left alone.
"""

from __future__ import annotations

import os
import re
import stat
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from loanbus import _layout as L
from loanbus._proc import process_alive
from loanbus._shm import SHM_DIR, open_regular, writer_alive_by_lock
from loanbus._slotstate import SlotState
from loanbus.pool import shm_prefix
from loanbus.pool.names import SOCKET_SUFFIX

_SEM_PREFIX = "sem."
_DOMAIN = re.compile(r"^/?(?:sem\.)?loanbus[A-Za-z0-9_-]*\.d(\d+)\.")
_SOCKET = re.compile(r"(loanbus[A-Za-z0-9_-]{0,32})\.([0-9a-f]{32})" + re.escape(SOCKET_SUFFIX))
_SAFE = re.compile(r"[A-Za-z0-9._-]{1,255}")


@dataclass(frozen=True)
class SlotView:
    """One slot of a pool as read from /dev/shm: its state, sequence number and holders.

    ``held_by`` lists the hold rows whose cell for this slot is set (as the writer last copied
    them, see docs/shm-layout.md); ``PoolEntry.readers`` names the reader that owns each row.
    """

    slot: int
    state: str
    seq: int
    timestamp_ns: int
    held_by: tuple[int, ...]


@dataclass(frozen=True)
class PoolEntry:
    """One segment (or a leftover: an orphan socket or semaphore) found in /dev/shm."""

    name: str
    size: int
    alive: bool
    type_name: str | None = None
    slot_count: int | None = None
    held_slots: int | None = None
    writer_pid: int | None = None
    state: str | None = None
    problem: str | None = None
    semaphore_only: bool = False
    type_hash: str | None = None
    writer_guid: str | None = None
    sample_size: int | None = None
    slots: tuple[SlotView, ...] = ()
    #: The reader id (hex) owning each hold row, "" for a free row.
    readers: tuple[str, ...] = ()
    #: Not ours to remove: another user's file, or not a regular file (a FIFO, a directory...).
    foreign: bool = False
    #: The writer's registration socket (a path in /dev/shm) when it has one.
    socket: str | None = None
    socket_only: bool = False
    #: Per hold row: the reader's pid and whether it takes references locally or through DDS.
    reader_pids: tuple[int, ...] = ()
    reader_paths: tuple[str, ...] = ()

    @property
    def domain_id(self) -> int | None:
        """The DDS domain the pool's name says it belongs to (``/loanbus[tag].d<N>.<topic>...``)."""
        match = _DOMAIN.match(self.name)
        return int(match.group(1)) if match else None


#: How long an empty, unlocked segment counts as being created. Its creator takes the liveness
#: lock right after ``shm_open`` and sizes the file only after that, so a non-empty unlocked
#: segment is dead for sure, but an empty one may be microseconds old and about to be locked.
CREATION_GRACE = 1.0


def _being_created(info: os.stat_result) -> bool:
    return (
        stat.S_ISREG(info.st_mode) and info.st_size == 0 and abs(time.time() - info.st_mtime) < CREATION_GRACE
    )


def _read(path: str, length: int, offset: int = 0) -> bytes:
    """Read without mapping (a truncated or hostile segment cannot SIGBUS us this way)."""
    fd = open_regular(path)
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def describe(name: str) -> PoolEntry:
    """Read one segment's header (and hold table) from /dev/shm without mapping it."""
    shm_name = "/" + name
    if not isinstance(name, str) or not _SAFE.fullmatch(name):
        return PoolEntry(shm_name, 0, True, problem="not a segment name loanbus makes", foreign=True)
    path = os.path.join(SHM_DIR, name)
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError as exc:
        return PoolEntry(shm_name, 0, False, problem=exc.strerror or str(exc), foreign=True)
    if not stat.S_ISREG(info.st_mode):
        return PoolEntry(shm_name, 0, True, problem=f"{_kind(info.st_mode)}, left alone", foreign=True)
    foreign = info.st_uid != os.geteuid()
    size = info.st_size
    try:
        raw = _read(path, L.HEADER_SIZE)
        header = L.decode_header(raw, size)
    except PermissionError:
        # Another user's pool: we cannot tell whether it lives, so it is never ours to remove.
        return PoolEntry(shm_name, size, True, problem=f"owned by uid {info.st_uid}", foreign=True)
    except (OSError, L.HeaderError) as exc:
        lock = writer_alive_by_lock(shm_name)
        if not lock and _being_created(info):
            return PoolEntry(
                shm_name, 0, True, problem="being created (empty, not locked yet)", foreign=foreign
            )
        return PoolEntry(shm_name, size, bool(lock), problem=str(exc), foreign=foreign)
    lay = header.layout
    # The liveness lock is authoritative; pid + start time only where the lock cannot be read.
    lock = writer_alive_by_lock(shm_name)
    alive = lock if lock is not None else process_alive(header.writer_pid, header.writer_start_time)
    held = None
    slots: tuple[SlotView, ...] = ()
    owners: tuple[tuple[str, int, str], ...] = ()
    try:
        holds = np.frombuffer(
            _read(path, lay.reader_rows * lay.hold_row_stride, lay.hold_table_offset), dtype="<u8"
        ).reshape(lay.reader_rows, -1)[:, : lay.slot_count]
        held = int(np.count_nonzero(holds.any(axis=0)))
        slots = _slots(path, lay, holds)
        owners = _row_owners(path, lay)
    except (OSError, ValueError):
        pass
    prefix = name.split(".", 1)[0]
    sock = os.path.join(SHM_DIR, f"{prefix}.{header.writer_guid.hex()}{SOCKET_SUFFIX}")
    return PoolEntry(
        name=shm_name,
        size=size,
        alive=bool(alive) and header.state != L.SegmentState.CLOSED,
        type_name=header.type_name,
        slot_count=lay.slot_count,
        held_slots=held,
        writer_pid=header.writer_pid,
        state=L.SegmentState(header.state).name,
        type_hash=header.type_hash.hex(),
        writer_guid=header.writer_guid.hex(),
        sample_size=lay.sample_size,
        slots=slots,
        readers=tuple(rid for rid, _, _ in owners),
        reader_pids=tuple(pid for _, pid, _ in owners),
        reader_paths=tuple(p for _, _, p in owners),
        foreign=foreign,
        socket=sock if os.path.lexists(sock) else None,
    )


_SLOT_STATES = {int(s): s.name for s in SlotState}


def _slots(path: str, lay: L.Layout, holds: np.ndarray[Any, Any]) -> tuple[SlotView, ...]:
    """Every slot's record (state, seq, timestamp) and the rows holding it."""
    table = np.frombuffer(
        _read(path, lay.slot_count * L.SLOT_RECORD_SIZE, lay.slot_table_offset), dtype="<u8"
    ).reshape(lay.slot_count, L.SLOT_WORDS)
    return tuple(
        SlotView(
            slot=i,
            state=_SLOT_STATES.get(int(rec[L.SLOT_STATE]), f"?{int(rec[L.SLOT_STATE])}"),
            seq=int(rec[L.SLOT_SEQ]),
            timestamp_ns=int(rec[L.SLOT_TIMESTAMP]),
            held_by=tuple(int(r) for r in np.nonzero(holds[:, i])[0]),
        )
        for i, rec in enumerate(table)
    )


def _row_owners(path: str, lay: L.Layout) -> tuple[tuple[str, int, str], ...]:
    """(reader id, pid, path) of each hold row ("", 0, "" where the row is free)."""
    raw = _read(path, lay.reader_rows * L.OWNER_RECORD_SIZE, lay.owner_table_offset)
    out = []
    for i in range(lay.reader_rows):
        rec = raw[i * L.OWNER_RECORD_SIZE : (i + 1) * L.OWNER_RECORD_SIZE]
        rid = rec[L.OWNER_ID : L.OWNER_ID + 16]
        if not any(rid):
            out.append(("", 0, ""))
            continue
        pid = int.from_bytes(rec[L.OWNER_PID : L.OWNER_PID + 8], "little")
        flags = int.from_bytes(rec[L.OWNER_FLAGS : L.OWNER_FLAGS + 8], "little")
        out.append((rid.hex(), pid, "dds" if flags & L.OWNER_DDS_REFS else "local"))
    return tuple(out)


def list_pools(prefix: str | None = None) -> list[PoolEntry]:
    """Every loanbus segment under ``prefix`` (default: this process's ``LOANBUS_SHM_PREFIX``),
    plus registration sockets and semaphores whose pool is gone."""
    prefix = shm_prefix() if prefix is None else prefix
    try:
        names = sorted(os.listdir(SHM_DIR))
    except OSError:
        return []
    entries = [
        describe(n) for n in names if n.startswith(prefix) and not n.endswith(SOCKET_SUFFIX) and "." in n
    ]
    guids = {e.writer_guid for e in entries if e.writer_guid}
    for n in names:
        match = _SOCKET.fullmatch(n)
        if match and n.startswith(prefix) and match.group(2) not in guids:
            entries.append(_orphan_socket(n))
        elif n.startswith(_SEM_PREFIX + prefix):
            entries.append(
                PoolEntry(
                    "/" + n[len(_SEM_PREFIX) :],
                    0,
                    False,
                    problem="semaphore of an older loanbus",
                    semaphore_only=True,
                )
            )
    return entries


def _orphan_socket(name: str) -> PoolEntry:
    """A registration socket whose pool is gone: its writer is dead (a writer removes its socket
    before its pool, and makes its pool before its socket)."""
    path = os.path.join(SHM_DIR, name)
    try:
        info = os.lstat(path)
    except OSError:
        return PoolEntry(
            "/" + name, 0, False, problem="registration socket without a pool", socket_only=True, foreign=True
        )
    young = abs(time.time() - info.st_mtime) < CREATION_GRACE
    return PoolEntry(
        "/" + name,
        0,
        young,
        problem="registration socket without a pool",
        socket_only=True,
        socket=path,
        foreign=not stat.S_ISSOCK(info.st_mode) or info.st_uid != os.geteuid(),
    )


def may_remove(entry: PoolEntry) -> bool:
    """Whether ``loanbus clean`` may remove ``entry``: a dead pool of this user (root: of any
    user). FIFOs, links and other non-regular files count as alive: they are never removed."""
    return not entry.alive and (not entry.foreign or os.geteuid() == 0)


def reap_dead(prefix: str) -> list[str]:
    """Remove this user's dead pools (and their sockets) under ``prefix``; others are left alone."""
    removed: list[str] = []
    for entry in list_pools(prefix.lstrip("/")):
        if not entry.alive and not entry.foreign:
            removed += remove_pool(entry)
    return removed


def remove_pool(entry: PoolEntry) -> list[str]:
    """Unlink a dead pool's segment and registration socket; returns what was removed.

    What this user may not remove (another user's file in the sticky /dev/shm) is skipped.
    """
    removed = []
    targets: list[str] = []
    if entry.semaphore_only:
        targets.append(os.path.join(SHM_DIR, _SEM_PREFIX + entry.name.lstrip("/")))
    elif not entry.socket_only:
        try:
            os.unlink(os.path.join(SHM_DIR, entry.name.lstrip("/")))
            removed.append(entry.name)
        except (FileNotFoundError, PermissionError):
            pass
    if entry.socket is not None:
        targets.append(entry.socket)
    for path in targets:
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        except PermissionError:
            continue
        removed.append(
            path if path.endswith(SOCKET_SUFFIX) else "/" + os.path.basename(path)[len(_SEM_PREFIX) :]
        )
    return removed


__all__ = ["PoolEntry", "SlotView", "describe", "list_pools", "may_remove", "reap_dead", "remove_pool"]
