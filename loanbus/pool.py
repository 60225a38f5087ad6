"""SamplePool: one writer's slots in shared memory, slot choice, holds and statistics.

No DDS here: two processes and a pool are enough to exercise everything. ``WriterPool``
owns and creates the segment; ``ReaderPool`` attaches to it read-only and writes only its
own hold row. The consistency protocol of docs/shm-layout.md is implemented here:

* ``acquire`` stores a fresh sequence number into the slot *before* the user writes;
* ``publish`` marks it WRITTEN and, in reliable mode, sets each attached reader's hold cell;
* a reader's ``is_consistent`` compares the slot's sequence number with its reference.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from loanbus import _layout as L
from loanbus._proc import process_start_time
from loanbus._shm import Segment, SegmentError, Semaphore, advise_huge_pages, huge_page_bytes
from loanbus._slotstate import SlotEvent, SlotState, SlotTransitionError, next_state, transitions_on
from loanbus.errors import BrokenError, InvalidReferenceError, LoanError, LoanTimeoutError, PoolFormatError
from loanbus.types import ShmemType

_ON_LOAN = transitions_on(SlotEvent.LOAN)
_ON_REUSE = transitions_on(SlotEvent.REUSE)
_ON_WRITE = transitions_on(SlotEvent.WRITE)
_WAITING = L.WAITING_WORD
log = logging.getLogger("loanbus")


def _step(table: dict[SlotState, SlotState], state: SlotState, event: SlotEvent) -> SlotState:
    """``table[state]``, or the lifecycle's error for an event the state does not allow."""
    after = table.get(state)
    if after is None:
        raise SlotTransitionError(state, event)
    return after


def shm_prefix() -> str:
    """The name prefix of every loanbus segment; ``LOANBUS_SHM_PREFIX`` adds a tag (tests)."""
    tag = os.environ.get("LOANBUS_SHM_PREFIX", "")
    return "loanbus" + (re.sub(r"[^A-Za-z0-9_-]", "_", tag)[:32] if tag else "")


def segment_name(domain_id: int, topic_name: str, writer_guid: bytes) -> str:
    """``/loanbus[tag].d<domain>.<topic>-<hash>.<writer guid>``: unique, readable, short."""
    return topic_prefix(domain_id, topic_name) + writer_guid.hex()


def topic_prefix(domain_id: int, topic_name: str) -> str:
    """The part of ``segment_name`` shared by every writer of one topic in one domain."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", topic_name)[:40]
    digest = hashlib.blake2b(topic_name.encode(), digest_size=4).hexdigest()
    return f"/{shm_prefix()}.d{domain_id}.{safe}-{digest}."


def semaphore_name(segment: str) -> str:
    return segment + ".wake"


@dataclass
class WriterPoolStatistics:
    """Counters of one writer pool (plain ints, cheap to copy out)."""

    loans: int = 0
    writes: int = 0
    discards: int = 0
    overwrites: int = 0
    blocked_loans: int = 0
    loan_timeouts: int = 0
    exhausted: int = 0


def _words(buf: Any, offset: int, count: int) -> memoryview:
    """``count`` little-endian 64-bit words at ``offset``, as a memoryview of format 'Q'.

    Indexing it is one aligned 8-byte load or store (what the consistency protocol needs on
    x86-64) and costs far less than a numpy scalar access on the hot path.
    """
    return memoryview(buf)[offset : offset + 8 * count].cast("Q")


def _release_views(*views: memoryview | None) -> None:
    for view in views:
        if view is not None:
            try:
                view.release()
            except BufferError:  # pragma: no cover - nothing re-exports these views
                pass


class WriterPool:
    """The writer's side: creates the segment, chooses slots, stamps sequence numbers."""

    _segment: Segment | None = None
    _semaphore: Semaphore | None = None

    def __init__(
        self,
        name: str,
        stype: ShmemType,
        *,
        slot_count: int,
        reader_rows: int,
        protected_slots: int = 0,
        reliable: bool = False,
        writer_guid: bytes,
        group: int | None = None,
        huge_pages: bool = False,
    ) -> None:
        if protected_slots >= slot_count:
            raise ValueError(f"protected_slots ({protected_slots}) must be < slot_count ({slot_count})")
        self.name = name
        self.stype = stype
        self.reliable = reliable
        self.protected_slots = protected_slots
        self.writer_guid = writer_guid
        self.layout = layout = L.Layout.compute(slot_count, reader_rows, stype.itemsize)
        self.stats = WriterPoolStatistics()
        mode = 0o600
        self._segment = seg = Segment.create(name, layout.segment_size, mode=mode, group=group)
        #: ``"on"``, ``"off"`` (not asked for) or ``"refused: <why>"``: what came of Qos.huge_pages.
        self.huge_pages = "off"
        try:
            if huge_pages:
                refused = advise_huge_pages(seg.mapping)
                self.huge_pages = "on" if refused is None else f"refused: {refused}"
                if refused is not None:
                    log.warning("pool %s uses normal pages: huge pages were refused: %s", name, refused)
            pid = os.getpid()
            header = L.encode_header(
                layout,
                type_hash=stype.type_hash,
                type_name=stype.name,
                writer_guid=writer_guid,
                writer_pid=pid,
                writer_start_time=process_start_time(pid) or 0,
                writer_uid=os.getuid(),
                created_ns=time.time_ns(),
                protected_slots=protected_slots,
            )
            mm = seg.mapping
            mm[: L.HEADER_SIZE] = header
            self._semaphore = Semaphore(semaphore_name(name), create=True, mode=mode, group=group)
            self._header = _words(mm, 0, L.HEADER_SIZE // 8)
            self._slots = _words(mm, layout.slot_table_offset, slot_count * L.SLOT_WORDS)
            self._owners = np.frombuffer(
                mm, dtype=np.uint8, count=reader_rows * L.OWNER_RECORD_SIZE, offset=layout.owner_table_offset
            ).reshape(reader_rows, L.OWNER_RECORD_SIZE)
            self._row_words = layout.hold_row_stride // 8
            self._holds = _words(mm, layout.hold_table_offset, reader_rows * self._row_words)
            # slot -> its writable payload view (read-only to callers: DataWriter.get_loan indexes it)
            self.payloads = [stype.view(mm, layout.payload_start(i)) for i in range(slot_count)]
        except BaseException:
            self.close()
            raise
        for slot in range(slot_count):  # the size word never changes: samples are fixed-size
            self._slots[slot * L.SLOT_WORDS + L.SLOT_SIZE] = layout.sample_size
        # Writer-private mirrors of what it alone writes: no shared-memory reads on the hot path.
        self._state = [SlotState.FREE] * slot_count
        self.sequences = [0] * slot_count  # slot -> seq of its last get_loan (read-only to callers)
        self._free: deque[int] = deque(range(slot_count))
        self._written: dict[int, None] = {}  # insertion order = write order, oldest first
        self._row_ids: dict[bytes, int] = {}
        self._attached_rows: list[int] = []
        self._seq = itertools.count(1)
        # Everything is initialised: advertise readiness last.
        self._header[L.STATE_WORD] = L.SegmentState.READY

    # -- slots -------------------------------------------------------------------------

    @property
    def slot_count(self) -> int:
        return self.layout.slot_count

    def huge_page_bytes(self) -> int:
        """Bytes of the pool this process maps with huge pages now (0 without them)."""
        return huge_page_bytes(self._segment.mapping) if self._segment is not None else 0

    def payload(self, slot: int) -> np.ndarray[Any, Any]:
        """The writable view of a slot's payload (0-d structured, or of the type's shape)."""
        return self.payloads[slot]

    def slot_sequence(self, slot: int) -> int:
        return self.sequences[slot]

    def slot_state(self, slot: int) -> SlotState:
        return self._state[slot]

    def _reusable(self) -> list[int]:
        """WRITTEN slots that may be reused, oldest first (the newest ones stay for history)."""
        count = len(self._written) - self.protected_slots
        return list(itertools.islice(self._written, max(count, 0)))

    def try_acquire(self) -> int | None:
        """A slot stamped with a fresh sequence number, None to wait (reliable), or LoanError."""
        free = self._free
        if free:
            slot = free.popleft()
            table, event = _ON_LOAN, SlotEvent.LOAN
        else:
            picked = self._pick_written()
            if picked is None:
                return None
            slot = picked
            del self._written[slot]
            table, event = _ON_REUSE, SlotEvent.REUSE
            self.stats.overwrites += 1
        self._state[slot] = _step(table, self._state[slot], event)
        seq = next(self._seq)
        self.sequences[slot] = seq
        base = slot * L.SLOT_WORDS
        self._slots[base + L.SLOT_SEQ] = seq  # from here on every older reference is invalid
        self._slots[base + L.SLOT_STATE] = SlotState.LOANED
        self.stats.loans += 1
        return slot

    def _pick_written(self) -> int | None:
        """The oldest reusable WRITTEN slot; in reliable mode the oldest no reader holds."""
        limit = len(self._written) - self.protected_slots
        if limit <= 0:
            self.stats.exhausted += 1
            raise LoanError(
                f"every slot of pool {self.name} is on loan ({self.slot_count} slots, "
                f"{self.protected_slots} kept for history); write or discard a loan first"
            )
        rows = self._attached_rows
        if not self.reliable or not rows:
            return next(iter(self._written))
        holds, stride = self._holds, self._row_words
        for slot in self._written:
            for row in rows:
                if holds[row * stride + slot]:
                    break
            else:
                return slot  # a hold cell of 0 in every attached row
            limit -= 1
            if limit == 0:
                break
        return None

    def acquire(self, timeout: float, before_try: Callable[[], None] | None = None) -> int:
        """Like ``try_acquire`` but waits up to ``timeout`` s for readers to return slots.

        ``before_try`` runs before every attempt (the DataWriter syncs matched readers there).
        While waiting, the header's ``writer_waiting`` word is 1 so that readers returning a
        slot, and ``wake()``, post the pool's semaphore.
        """
        if before_try is not None:
            before_try()
        slot = self.try_acquire()
        if slot is not None:
            return slot
        self.stats.blocked_loans += 1
        deadline = time.monotonic() + timeout
        assert self._semaphore is not None
        self._header[L.WAITING_WORD] = 1  # set before re-checking: no return can be missed
        # The wake-up handshake (writer_waiting vs. hold cells) is a store followed by a load on
        # both sides, which x86-64 may reorder; a missed post costs at most one re-check
        # interval, never a failure. The interval starts short (a missed post under a fast
        # stream costs ~0.5 ms, not 50) and doubles up to 50 ms for a long wait.
        interval = 0.0005
        try:
            while True:
                if before_try is not None:
                    before_try()
                slot = self.try_acquire()
                if slot is not None:
                    return slot
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._semaphore.wait(min(remaining, interval))
                interval = min(interval * 2, 0.05)
        finally:
            self._header[L.WAITING_WORD] = 0
        self.stats.loan_timeouts += 1
        holders = self.holders()
        raise LoanTimeoutError(
            f"get_loan() timed out after {timeout:g} s: every reusable slot of pool "
            f"{self.name} is held by reader(s) {', '.join(holders) or '(none)'}",
            holders,
        )

    def publish(self, slot: int, timestamp_ns: int) -> int:
        """Mark a loaned slot WRITTEN and set attached readers' holds; returns its sequence number."""
        self._state[slot] = _step(_ON_WRITE, self._state[slot], SlotEvent.WRITE)
        seq = self.sequences[slot]
        words, base = self._slots, slot * L.SLOT_WORDS
        words[base + L.SLOT_TIMESTAMP] = timestamp_ns
        words[base + L.SLOT_STATE] = SlotState.WRITTEN
        if self.reliable:
            holds, stride = self._holds, self._row_words
            for row in self._attached_rows:
                holds[row * stride + slot] = seq  # the cell is 0: we own it until the reader
        self._written[slot] = None
        self.stats.writes += 1
        return seq

    def discard(self, slot: int) -> None:
        """Give a loaned slot back unpublished."""
        self._state[slot] = next_state(self._state[slot], SlotEvent.DISCARD)
        self._slots[slot * L.SLOT_WORDS + L.SLOT_STATE] = SlotState.FREE
        self._free.append(slot)
        self.stats.discards += 1

    def occupancy(self) -> tuple[int, int, int, int]:
        """(free, loaned, written, held) slot counts now; held = a reader's hold cell is set.

        For statistics, off the hot path: it scans the hold rows of attached readers.
        """
        loaned = sum(1 for s in self._state if s == SlotState.LOANED)
        written = len(self._written)
        held = 0
        rows = self._attached_rows
        if rows and self._segment is not None:
            holds = np.asarray(self._holds).reshape(self.layout.reader_rows, self._row_words)
            held = int(np.count_nonzero(holds[rows, : self.slot_count].any(axis=0)))
        return self.slot_count - loaned - written, loaned, written, held

    def timestamp(self, slot: int) -> int:
        """The write timestamp (ns) of a written slot."""
        return int(self._slots[slot * L.SLOT_WORDS + L.SLOT_TIMESTAMP])

    def newest_written(self, count: int) -> list[tuple[int, int]]:
        """(slot, seq) of up to ``count`` newest written slots, oldest first."""
        slots = list(self._written)[-count:] if count > 0 else []
        return [(s, self.sequences[s]) for s in slots]

    # -- reader rows -------------------------------------------------------------------

    def assign_row(self, reader_id: bytes) -> int | None:
        """Give a reader a hold row (idempotent); None when every row is taken."""
        if len(reader_id) != 16:
            raise ValueError("reader ids are 16 bytes")
        if reader_id in self._row_ids:
            return self._row_ids[reader_id]
        used = set(self._row_ids.values())
        for row in range(self.layout.reader_rows):
            if row not in used:
                self._owners[row, :16] = np.frombuffer(reader_id, dtype=np.uint8)
                self._row_ids[reader_id] = row
                self._attached_rows = sorted(self._row_ids.values())
                return row
        return None

    def release_row(self, reader_id: bytes) -> None:
        """Forget a reader (closed or dead): clear its holds and wake a waiting writer."""
        row = self._row_ids.pop(reader_id, None)
        if row is None:
            return
        self._attached_rows = sorted(self._row_ids.values())
        start = row * self._row_words
        count = self.layout.slot_count
        self._holds[start : start + count] = memoryview(bytes(8 * count)).cast("Q")
        self._owners[row, :] = 0
        self.wake()

    def attached_readers(self) -> dict[bytes, int]:
        return dict(self._row_ids)

    def holders(self) -> list[str]:
        """Reader ids (hex) that hold any reusable slot."""
        stride = self._row_words
        rows = {r for r in self._attached_rows for s in self._reusable() if self._holds[r * stride + s]}
        return [rid.hex() for rid, row in self._row_ids.items() if row in rows]

    def wake(self) -> None:
        """Wake a writer blocked in ``acquire`` (for example when a reader went away)."""
        sem = self._semaphore
        if sem is not None and self._header[L.WAITING_WORD]:
            sem.post()

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        """Mark the segment CLOSED, unlink it and its semaphore, and detach (idempotent)."""
        seg, self._segment = self._segment, None
        sem, self._semaphore = self._semaphore, None
        if seg is not None:
            header = getattr(self, "_header", None)
            if header is not None:
                header[L.STATE_WORD] = L.SegmentState.CLOSED
            seg.unlink()
            _release_views(*(self.__dict__.pop(n, None) for n in ("_header", "_slots", "_holds")))
            # Every view of the mapping goes: a closed pool must not keep the mapping alive;
            # only the user's own views may (docs/ecosystem.md).
            for name in ("_owners", "payloads"):
                self.__dict__.pop(name, None)
            seg.close()
        if sem is not None:
            sem.close()

    @property
    def closed(self) -> bool:
        return self._segment is None


class ReaderPool:
    """A reader's view of one writer's pool: payloads read-only, its own hold row writable."""

    _segment: Segment | None = None
    _semaphore: Semaphore | None = None
    # Class-level defaults: close() after a half-failed __init__ must not raise AttributeError
    # (which would hide the PoolFormatError that names the cause).
    _row: memoryview | None = None
    _row_index: int | None = None

    def __init__(
        self,
        name: str,
        stype: ShmemType,
        *,
        writer_guid: bytes | None = None,
        trusted_group: int | None = None,
    ) -> None:
        """Attach to ``name``. A pool is trusted only if this user owns it, or if its group is
        ``trusted_group`` (the reader's ``Qos.shm_group``): another user cannot slip us data."""
        self.name = name
        try:
            self._segment = seg = Segment.attach(name)
        except SegmentError as exc:
            raise PoolFormatError(f"cannot open pool {name}: {exc}") from exc
        try:
            try:
                header = L.decode_header(seg.mapping[: L.HEADER_SIZE], seg.size)
            except L.HeaderError as exc:
                raise PoolFormatError(f"pool {name}: {exc}") from None
            if header.type_hash != stype.type_hash:
                raise PoolFormatError(
                    f"pool {name} holds type {header.type_name!r} with hash "
                    f"{header.type_hash.hex()}, not {stype.name!r} ({stype.type_hash.hex()})"
                )
            if header.state != L.SegmentState.READY:
                state = L.SegmentState(header.state).name
                raise PoolFormatError(f"pool {name} is {state}, not READY")
            if header.layout.sample_size != stype.itemsize:
                raise PoolFormatError(
                    f"pool {name} has {header.layout.sample_size}-byte slots, but {stype.name} "
                    f"samples are {stype.itemsize} bytes"
                )
            if writer_guid is not None and header.writer_guid != writer_guid:
                raise PoolFormatError(f"pool {name} belongs to another writer")
            owner = seg.owner_uid()
            if owner != header.writer_uid:
                raise PoolFormatError(
                    f"pool {name} is owned by uid {owner} but claims writer uid {header.writer_uid}"
                )
            if owner != os.geteuid() and (trusted_group is None or seg.owner_gid() != trusted_group):
                raise PoolFormatError(
                    f"pool {name} belongs to uid {owner}, not to this user; a reader trusts another "
                    "user's pool only through a group it names in Qos(shm_group=...)"
                )
            self.header = header
            self.layout = layout = header.layout
            # Plain ints and the descriptor for check(), which runs on every take.
            self._fd = seg.fd
            self._slot_count = layout.slot_count
            self._sample_size = layout.sample_size
            self._segment_size = layout.segment_size
            mm = seg.mapping
            self._header = _words(mm, 0, L.HEADER_SIZE // 8)
            self._slots = _words(mm, layout.slot_table_offset, layout.slot_count * L.SLOT_WORDS)
            self._owners = np.frombuffer(
                mm,
                dtype=np.uint8,
                count=layout.reader_rows * L.OWNER_RECORD_SIZE,
                offset=layout.owner_table_offset,
            ).reshape(layout.reader_rows, L.OWNER_RECORD_SIZE)
            self._slot_seq = self._slots[L.SLOT_SEQ :: L.SLOT_WORDS]
            self._payloads: list[np.ndarray[Any, Any] | None] = [None] * layout.slot_count
            self._stype = stype
            try:
                self._semaphore = Semaphore(semaphore_name(name), create=False)
            except SegmentError as exc:
                raise PoolFormatError(f"pool {name} has no usable wake-up semaphore: {exc}") from exc
        except BaseException:
            self.close()
            raise
        self._row = None
        self._row_index = None

    def check_reference(self, slot: int, seq: int, size: int) -> None:
        """Refuse a reference that cannot be valid, before anything is read through it."""
        if not 0 <= slot < self.layout.slot_count:
            raise InvalidReferenceError(
                f"pool {self.name}: slot {slot} outside 0..{self.layout.slot_count - 1}"
            )
        if not 0 < size <= self.layout.sample_size:
            raise InvalidReferenceError(f"pool {self.name}: size {size} outside 1..{self.layout.sample_size}")
        if seq <= 0 or seq > self._slot_seq[slot]:
            raise InvalidReferenceError(
                f"pool {self.name}: sequence number {seq} of slot {slot} was never issued"
            )

    def check(self, slot: int, seq: int, size: int, *, sized: bool = False) -> None:
        """``check_reference`` and ``check_size`` in one call, for the hot path of take();
        ``sized=True`` skips the size check, done already for this batch of references."""
        ok = 0 <= slot < self._slot_count and 0 < size <= self._sample_size
        if not (ok and 0 < seq <= self._slot_seq[slot]):
            self.check_reference(slot, seq, size)  # raises with the precise reason
        if sized:
            return
        if self._segment is None or os.lseek(self._fd, 0, os.SEEK_END) < self._segment_size:
            self.check_size()  # raises BrokenError (or PoolFormatError when closed)

    def check_size(self) -> None:
        """Refuse to hand out views of a segment someone shrank (reading it would be SIGBUS)."""
        seg = self._segment
        if seg is None:
            raise PoolFormatError(f"pool {self.name} is closed")
        size = seg.current_size()
        if size < self.layout.segment_size:
            raise BrokenError(
                f"pool {self.name} was truncated to {size} bytes (expected {self.layout.segment_size})"
            )

    def view(self, slot: int) -> np.ndarray[Any, Any]:
        """The read-only view of a slot's payload (made once per slot)."""
        arr = self._payloads[slot]
        if arr is None:
            arr = self._stype.view(self._mapping(), self.layout.payload_start(slot))
            self._payloads[slot] = arr
        return arr

    def is_consistent(self, slot: int, seq: int) -> bool:
        return self._slot_seq[slot] == seq

    def slot_sequence(self, slot: int) -> int:
        return int(self._slot_seq[slot])

    def writer_state(self) -> L.SegmentState:
        return L.SegmentState(int(self._header[L.STATE_WORD]))

    def find_row(self, reader_id: bytes) -> int | None:
        """Our hold row, once the writer assigned one; mapped writable on first sight."""
        if self._row_index is not None:
            return self._row_index
        wanted = np.frombuffer(reader_id, dtype=np.uint8)
        matches = np.nonzero((self._owners[:, :16] == wanted).all(axis=1))[0]
        if len(matches) == 0:
            return None
        row = int(matches[0])
        assert self._segment is not None
        window = self._segment.map_writable(self.layout.hold_row_start(row), self.layout.hold_row_stride)
        self._row = _words(window, 0, self.layout.slot_count)
        self._row_index = row
        return row

    def holds(self, slot: int, seq: int) -> bool:
        return self._row is not None and self._row[slot] == seq

    def release(self, slot: int, seq: int, *, wake: bool = True) -> None:
        """Return our hold on a slot (only if it is ours for this sequence number).

        ``wake=False`` leaves the writer's wake-up to one ``wake_writer()`` after a batch."""
        row = self._row
        if row is not None and row[slot] == seq:
            row[slot] = 0
            if wake:
                self.wake_writer()

    def wake_writer(self) -> None:
        """Post the pool's semaphore if its writer is blocked in get_loan() (no-op once closed)."""
        sem = self._semaphore
        if sem is not None and self._header[_WAITING]:
            sem.post()

    def release_all(self) -> None:
        row = self._row
        if row is not None:
            row[:] = memoryview(bytes(8 * len(row))).cast("Q")
            if self._semaphore is not None:
                self._semaphore.post()

    def _mapping(self) -> Any:
        if self._segment is None:
            raise PoolFormatError(f"pool {self.name} is closed")
        return self._segment.mapping

    def close(self) -> None:
        """Detach (idempotent). Views handed out stay readable until they are dropped."""
        seg, self._segment = self._segment, None
        sem, self._semaphore = self._semaphore, None
        row, self._row = self._row, None
        _release_views(row, *(self.__dict__.pop(n, None) for n in ("_slot_seq", "_header", "_slots")))
        for name in ("_owners", "_payloads"):
            self.__dict__.pop(name, None)
        if seg is not None:
            seg.close()
        if sem is not None:
            sem.close()
