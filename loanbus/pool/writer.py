"""WriterPool: one writer's slots in shared memory, slot choice, holds and pool statistics.

No DDS here: two processes and a pool are enough to exercise everything. The consistency
protocol of docs/shm-layout.md is implemented here:

* ``try_acquire`` stores a fresh sequence number into the slot *before* the user writes;
* ``publish`` marks it WRITTEN and, in reliable mode, stores the sequence number into each
  attached reader's hold cell for that slot (a reader stores 0 there when it returns it);
* a reliable writer reuses a written slot only when every attached reader's cell for it is 0.

Hold cells live in each reader's own hold block (``loanbus._transport.holds``), handed to
the pool as a ``memoryview`` of 64-bit words when the reader attaches; the pool's hold table
is only the writer's copy of them for tools such as ``loanbus ls``.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from loanbus import _layout as L
from loanbus._proc import process_start_time
from loanbus._shm import SealedWords, Segment, huge_page_bytes
from loanbus._slotstate import SlotEvent, SlotState, SlotTransitionError, next_state, transitions_on
from loanbus._spin import spin
from loanbus.errors import BrokenError, LoanError, LoanTimeoutError
from loanbus.pool.words import release_views, words
from loanbus.types import ShmemType

_ON_LOAN = transitions_on(SlotEvent.LOAN)
_ON_REUSE = transitions_on(SlotEvent.REUSE)
_ON_WRITE = transitions_on(SlotEvent.WRITE)
_LOANED, _WRITTEN = int(SlotState.LOANED), int(SlotState.WRITTEN)  # plain ints: cheaper to store
log = logging.getLogger("loanbus")


def _step(table: dict[SlotState, SlotState], state: SlotState, event: SlotEvent) -> SlotState:
    """``table[state]``, or the lifecycle's error for an event the state does not allow."""
    after = table.get(state)
    if after is None:
        raise SlotTransitionError(state, event)
    return after


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


@dataclass
class _Reader:
    """An attached reader: its hold row, and its hold cells and waiting word (reliable only)."""

    row: int
    cells: memoryview | None
    waiting: memoryview | None


class WriterPool:
    """The writer's side: creates the segment, chooses slots, stamps sequence numbers."""

    _segment: Segment | None = None
    sequence_copy: SealedWords | None = None

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
        self._spinning = True  # the last wait for a returned slot was short enough to spin for
        self._fd = -1
        #: What a reader proves it read when it registers (docs/shm-layout.md).
        self.registration_key = os.urandom(L.KEY_SIZE)
        self._segment = seg = Segment.create(
            name, layout.segment_size, mode=0o600, group=group, huge_pages=huge_pages
        )
        refused = seg.huge_pages_refused
        #: ``"on"``, ``"off"`` (not asked for) or ``"refused: <why>"``: what came of Qos.huge_pages.
        self.huge_pages = "off" if not huge_pages else "on" if refused is None else f"refused: {refused}"
        if huge_pages and refused is not None:
            log.warning("pool %s uses normal pages: huge pages were refused: %s", name, refused)
        try:
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
                registration_key=self.registration_key,
            )
            mm = seg.mapping
            self._fd = seg.fd
            self._size = layout.segment_size
            mm[: L.HEADER_SIZE] = header
            self._header = words(mm, 0, L.HEADER_SIZE // 8)
            self._slots = words(mm, layout.slot_table_offset, slot_count * L.SLOT_WORDS)
            self._owners = np.frombuffer(
                mm, dtype=np.uint8, count=reader_rows * L.OWNER_RECORD_SIZE, offset=layout.owner_table_offset
            ).reshape(reader_rows, L.OWNER_RECORD_SIZE)
            self._row_words = layout.hold_row_stride // 8
            self._mirror = words(mm, layout.hold_table_offset, reader_rows * self._row_words)
            # slot -> its writable payload view (read-only to callers: DataWriter.get_loan indexes it)
            self.payloads = [stype.view(mm, layout.payload_start(i)) for i in range(slot_count)]
            #: A copy of the slots' sequence numbers that nobody can truncate: registered readers
            #: get its descriptor and check consistency there (docs/shm-layout.md).
            self.sequence_copy = SealedWords.create(slot_count)
            self._seq_copy = self.sequence_copy.words
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
        self._readers: dict[bytes, _Reader] = {}
        self._cells: list[memoryview] = []  # hold cells of attached reliable readers (hot path)
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

    def _try_slot(self) -> int | None:
        """``try_acquire`` for a spin: the slot plus one (never false), or None."""
        slot = self.try_acquire()
        return None if slot is None else slot + 1

    def try_acquire(self) -> int | None:
        """A slot stamped with a fresh sequence number, None to wait (reliable), or LoanError.

        Only the writer's own user (or root) can shrink the pool (readers open it read-only,
        its group may only read it): the stores below are not guarded by a size check."""
        free = self._free
        event = SlotEvent.LOAN
        if free:
            slot = free.popleft()
            after = _ON_LOAN.get(self._state[slot])
        else:
            event = SlotEvent.REUSE
            picked = self._pick_written()
            if picked is None:
                return None
            slot = picked
            del self._written[slot]
            after = _ON_REUSE.get(self._state[slot])
            self.stats.overwrites += 1
        if after is None:  # the lifecycle does not allow it: a bug, said in its own words
            raise SlotTransitionError(self._state[slot], event)
        self._state[slot] = after
        seq = next(self._seq)
        self.sequences[slot] = seq
        base = slot * L.SLOT_WORDS
        self._seq_copy[slot] = seq
        self._slots[base + L.SLOT_SEQ] = seq  # from here on every older reference is invalid
        self._slots[base + L.SLOT_STATE] = _LOANED
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
        cells = self._cells
        if not self.reliable or not cells:
            return next(iter(self._written))
        for slot in self._written:
            for row in cells:
                if row[slot]:
                    break
            else:
                return slot  # a hold cell of 0 for every attached reader
            limit -= 1
            if limit == 0:
                break
        return None

    def acquire(
        self,
        timeout: float,
        before_try: Callable[[], None] | None = None,
        wait: Callable[[float], object] | None = None,
        spin_ns: int = 0,
    ) -> int:
        """Like ``try_acquire`` but waits up to ``timeout`` s for readers to return slots.

        ``before_try`` runs before every attempt (the DataWriter attaches and detaches readers
        there); ``wait(seconds)`` blocks until a reader may have returned a slot (the DataWriter
        polls its readers' connections), or sleeps when None. While waiting, every attached
        reader's waiting word is 1, so a reader that returns a slot rings the writer. Before it
        waits it looks for a returned slot for ``spin_ns`` nanoseconds (loanbus._spin), when
        the previous wait was that short.
        """
        if before_try is not None:
            before_try()
        slot = self.try_acquire()
        if slot is not None:
            return slot
        self.stats.blocked_loans += 1
        clock = time.perf_counter_ns
        start = clock()
        if spin_ns > 0 and self._spinning:
            slot = spin(self._try_slot, spin_ns if timeout * 1e9 >= spin_ns else int(timeout * 1e9))
            if slot is not None:
                return int(slot) - 1
        slot = self._wait_for_slot(timeout, before_try, wait)
        if spin_ns > 0:
            self._spinning = clock() - start < spin_ns
        if slot is not None:
            return slot
        self.stats.loan_timeouts += 1
        holders = self.holders()
        raise LoanTimeoutError(
            f"get_loan() timed out after {timeout:g} s: every reusable slot of pool "
            f"{self.name} is held by reader(s) {', '.join(holders) or '(none)'}",
            holders,
        )

    def _wait_for_slot(
        self,
        timeout: float,
        before_try: Callable[[], None] | None,
        wait: Callable[[float], object] | None,
    ) -> int | None:
        """A slot once a reader returned one, or None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        # The handshake (waiting word vs. hold cells) is a store followed by a load on both
        # sides, which x86-64 may reorder; a missed wake-up costs at most one re-check interval,
        # never a failure. The interval starts short (~0.5 ms) and doubles up to 50 ms.
        interval = 0.0005
        self._set_waiting(1)  # set before re-checking: no return can be missed
        try:
            while True:
                if before_try is not None:
                    before_try()
                    self._set_waiting(1)  # readers attached meanwhile must ring too
                slot = self.try_acquire()
                if slot is not None:
                    return slot
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                step = min(remaining, interval)
                if wait is not None:
                    wait(step)
                else:
                    time.sleep(step)
                interval = min(interval * 2, 0.05)
        finally:
            self._set_waiting(0)

    def _set_waiting(self, value: int) -> None:
        for reader in self._readers.values():
            if reader.waiting is not None:
                reader.waiting[0] = value

    def publish(self, slot: int, timestamp_ns: int) -> int:
        """Mark a loaned slot WRITTEN and set attached readers' holds; returns its sequence number.

        Like ``try_acquire``, it stores into the pool without a size check: no reader can
        shrink it (docs/reliability.md)."""
        after = _ON_WRITE.get(self._state[slot])
        if after is None:
            raise SlotTransitionError(self._state[slot], SlotEvent.WRITE)
        self._state[slot] = after
        seq = self.sequences[slot]
        words_, base = self._slots, slot * L.SLOT_WORDS
        words_[base + L.SLOT_TIMESTAMP] = timestamp_ns
        words_[base + L.SLOT_STATE] = _WRITTEN
        if self.reliable:
            for cells in self._cells:
                cells[slot] = seq  # the cell is 0: we own it until the reader returns the sample
        self._written[slot] = None
        self.stats.writes += 1
        return seq

    def _truncated(self) -> None:
        """Someone with write access to the pool (this user, or root) shrank it: its words are
        gone, and storing into them would be SIGBUS. Refuse instead."""
        size = os.lseek(self._fd, 0, os.SEEK_END) if self._segment is not None else 0
        raise BrokenError(
            f"pool {self.name} was truncated to {size} bytes (expected {self._size}) by another "
            "process of this user; close this writer and make a new one"
        )

    def discard(self, slot: int) -> None:
        """Give a loaned slot back unpublished."""
        self._state[slot] = next_state(self._state[slot], SlotEvent.DISCARD)
        if os.lseek(self._fd, 0, os.SEEK_END) >= self._size:
            self._slots[slot * L.SLOT_WORDS + L.SLOT_STATE] = SlotState.FREE
        self._free.append(slot)
        self.stats.discards += 1

    def occupancy(self) -> tuple[int, int, int, int]:
        """(free, loaned, written, held) slot counts now; held = some reader's hold cell is set.

        Off the hot path (statistics): it also refreshes the pool's hold table, the copy of
        the readers' cells that ``loanbus ls`` shows.
        """
        loaned = sum(1 for s in self._state if s == SlotState.LOANED)
        written = len(self._written)
        held_slots: set[int] = set()
        mirror, stride, count = self._mirror, self._row_words, self.slot_count
        for rid, reader in list(self._readers.items()):
            cells = reader.cells
            if cells is None:
                continue
            try:  # another thread (statistics) may meet a reader being detached: skip it then
                copy = memoryview(cells.tobytes()).cast("Q")
                if self._readers.get(rid) is reader and self._intact():
                    start = reader.row * stride
                    mirror[start : start + count] = copy
            except (ValueError, TypeError, AttributeError):
                continue
            held_slots.update(i for i, c in enumerate(copy) if c)
        return self.slot_count - loaned - written, loaned, written, len(held_slots)

    def _intact(self) -> bool:
        return self._segment is not None and os.lseek(self._fd, 0, os.SEEK_END) >= self._size

    def timestamp(self, slot: int) -> int:
        """The write timestamp (ns) of a written slot."""
        if not self._intact():
            self._truncated()
        return int(self._slots[slot * L.SLOT_WORDS + L.SLOT_TIMESTAMP])

    def newest_written(self, count: int) -> list[tuple[int, int]]:
        """(slot, seq) of up to ``count`` newest written slots, oldest first."""
        slots = list(self._written)[-count:] if count > 0 else []
        return [(s, self.sequences[s]) for s in slots]

    # -- readers -----------------------------------------------------------------------

    def attach_reader(
        self,
        reader_id: bytes,
        *,
        pid: int = 0,
        flags: int = 0,
        cells: memoryview | None = None,
        waiting: memoryview | None = None,
    ) -> int | None:
        """Give a reader a row (idempotent); None when every row is taken.

        ``cells`` are its hold cells (one 64-bit word per slot) when it returns holds
        (reliable readers of a reliable pool); the pool sets and checks them from now on.
        """
        if len(reader_id) != 16:
            raise ValueError("reader ids are 16 bytes")
        known = self._readers.get(reader_id)
        if known is not None:
            return known.row
        if cells is not None and (cells.format != "Q" or len(cells) != self.slot_count):
            raise ValueError(f"hold cells must be {self.slot_count} 64-bit words")
        used = {r.row for r in self._readers.values()}
        if not self._intact():
            self._truncated()
        for row in range(self.layout.reader_rows):
            if row not in used:
                owner = self._owners[row]
                owner[L.OWNER_ID : L.OWNER_ID + 16] = np.frombuffer(reader_id, dtype=np.uint8)
                owner[L.OWNER_PID : L.OWNER_PID + 8] = np.frombuffer(pid.to_bytes(8, "little"), np.uint8)
                owner[L.OWNER_FLAGS : L.OWNER_FLAGS + 8] = np.frombuffer(
                    flags.to_bytes(8, "little"), np.uint8
                )
                keep = cells if self.reliable else None
                self._readers[reader_id] = _Reader(row, keep, waiting if keep is not None else None)
                self._cells = [r.cells for r in self._readers.values() if r.cells is not None]
                return row
        return None

    def release_row(self, reader_id: bytes) -> None:
        """Forget a reader (closed or dead): its holds no longer count, its row is free."""
        reader = self._readers.pop(reader_id, None)
        if reader is None:
            return
        self._cells = [r.cells for r in self._readers.values() if r.cells is not None]
        if self._intact():
            start = reader.row * self._row_words
            count = self.slot_count
            self._mirror[start : start + count] = memoryview(bytes(8 * count)).cast("Q")
            self._owners[reader.row, :] = 0

    def attached_readers(self) -> dict[bytes, int]:
        """Reader id -> its row."""
        return {rid: r.row for rid, r in self._readers.items()}

    def holders(self) -> list[str]:
        """Reader ids (hex) that hold any reusable slot."""
        reusable = self._reusable()
        return [
            rid.hex()
            for rid, r in self._readers.items()
            if r.cells is not None and any(r.cells[s] for s in reusable)
        ]

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        """Mark the segment CLOSED, unlink it, and detach (idempotent)."""
        seg, self._segment = self._segment, None
        self._readers = {}
        self._cells = []
        copy, self.sequence_copy = self.sequence_copy, None
        if copy is not None:
            self.__dict__.pop("_seq_copy", None)
            copy.close()
        if seg is not None:
            header = getattr(self, "_header", None)
            if header is not None and os.lseek(seg.fd, 0, os.SEEK_END) >= L.HEADER_SIZE:
                header[L.STATE_WORD] = L.SegmentState.CLOSED
            seg.unlink()
            release_views(*(self.__dict__.pop(n, None) for n in ("_header", "_slots", "_mirror")))
            # Every view of the mapping goes: a closed pool must not keep the mapping alive;
            # only the user's own views may (docs/ecosystem.md).
            for name in ("_owners", "payloads"):
                self.__dict__.pop(name, None)
            seg.close()

    @property
    def closed(self) -> bool:
        return self._segment is None
