"""What is in /dev/shm: loanbus pools, their owners, whether those live, and leftovers.

Used by ``loanbus ls`` and ``loanbus clean``; reads headers without mapping payloads.
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
from loanbus._shm import SHM_DIR, unlink_segment, unlink_semaphore, writer_alive_by_lock
from loanbus._slotstate import SlotState
from loanbus.pool import semaphore_name

_SEM_PREFIX = "sem."
_DOMAIN = re.compile(r"^/?(?:sem\.)?loanbus[A-Za-z0-9_-]*\.d(\d+)\.")


@dataclass(frozen=True)
class SlotView:
    """One slot of a pool as read from /dev/shm: its state, sequence number and holders.

    ``held_by`` lists the hold rows whose cell for this slot is set; ``PoolEntry.readers``
    names the reader that owns each row.
    """

    slot: int
    state: str
    seq: int
    timestamp_ns: int
    held_by: tuple[int, ...]


@dataclass(frozen=True)
class PoolEntry:
    """One segment (or orphan semaphore) found in /dev/shm."""

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
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


def describe(name: str) -> PoolEntry:
    """Read one segment's header (and hold table) from /dev/shm without mapping it."""
    path = os.path.join(SHM_DIR, name)
    shm_name = "/" + name
    info: os.stat_result | None = None
    try:
        info = os.stat(path, follow_symlinks=False)
        size = info.st_size
        raw = _read(path, L.HEADER_SIZE)
        header = L.decode_header(raw, size)
    except PermissionError:
        # Another user's pool: we cannot tell whether it lives, so it is never ours to remove.
        owner = info.st_uid if info is not None else "?"
        return PoolEntry(shm_name, info.st_size if info else 0, True, problem=f"owned by uid {owner}")
    except (OSError, L.HeaderError) as exc:
        lock = writer_alive_by_lock(shm_name)
        if not lock and info is not None and _being_created(info):
            return PoolEntry(shm_name, 0, True, problem="being created (empty, not locked yet)")
        return PoolEntry(shm_name, info.st_size if info else 0, bool(lock), problem=str(exc))
    lay = header.layout
    # The liveness lock is authoritative; pid + start time only where the lock cannot be read.
    lock = writer_alive_by_lock(shm_name)
    alive = lock if lock is not None else process_alive(header.writer_pid, header.writer_start_time)
    held = None
    slots: tuple[SlotView, ...] = ()
    readers: tuple[str, ...] = ()
    try:
        holds = np.frombuffer(
            _read(path, lay.reader_rows * lay.hold_row_stride, lay.hold_table_offset), dtype="<u8"
        ).reshape(lay.reader_rows, -1)[:, : lay.slot_count]
        held = int(np.count_nonzero(holds.any(axis=0)))
        slots = _slots(path, lay, holds)
        readers = _row_owners(path, lay)
    except (OSError, ValueError):
        pass
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
        readers=readers,
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


def _row_owners(path: str, lay: L.Layout) -> tuple[str, ...]:
    """The reader id owning each hold row ("" where the row is free)."""
    raw = _read(path, lay.reader_rows * L.OWNER_RECORD_SIZE, lay.owner_table_offset)
    ids = (raw[i * L.OWNER_RECORD_SIZE : i * L.OWNER_RECORD_SIZE + 16] for i in range(lay.reader_rows))
    return tuple("" if not any(rid) else rid.hex() for rid in ids)


def list_pools(prefix: str = "loanbus") -> list[PoolEntry]:
    """Every loanbus segment, plus semaphores whose segment is gone."""
    try:
        names = sorted(os.listdir(SHM_DIR))
    except OSError:
        return []
    entries = [describe(n) for n in names if n.startswith(prefix)]
    segments = {e.name for e in entries}
    for n in names:
        if n.startswith(_SEM_PREFIX + prefix):
            sem = "/" + n[len(_SEM_PREFIX) :]
            if not any(semaphore_name(seg) == sem for seg in segments):
                entries.append(
                    PoolEntry(sem, 0, False, problem="semaphore without a pool", semaphore_only=True)
                )
    return entries


def reap_dead(prefix: str) -> list[str]:
    """Remove the pools (and semaphores) under ``prefix`` whose writer is dead."""
    removed: list[str] = []
    for entry in list_pools(prefix.lstrip("/")):
        if not entry.alive:
            removed += remove_pool(entry)
    return removed


def remove_pool(entry: PoolEntry) -> list[str]:
    """Unlink a dead pool's segment and semaphore; returns what was removed."""
    removed = []
    if entry.semaphore_only:
        if unlink_semaphore(entry.name):
            removed.append(entry.name)
        return removed
    if unlink_segment(entry.name):
        removed.append(entry.name)
    if unlink_semaphore(semaphore_name(entry.name)):
        removed.append(semaphore_name(entry.name))
    return removed


__all__ = ["PoolEntry", "SlotView", "describe", "list_pools", "reap_dead", "remove_pool"]
