"""ReaderPool: a reader's read-only view of one writer's pool.

The segment is opened read-only: a reader cannot truncate it, and it never writes to it.
Its hold cells live in its own hold block (``loanbus._transport.holds``), not here. Before
loanbus reads one of the pool's own words (a slot's sequence number) it checks that the
segment still has its size, so a segment someone truncated is refused instead of faulting
inside loanbus; a view handed out before the truncation faults only in the code that reads
it (docs/reliability.md).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from loanbus import _layout as L
from loanbus._shm import Segment, SegmentError
from loanbus._slotstate import SlotState
from loanbus.errors import BrokenError, InvalidReferenceError, LoanbusError, PoolFormatError
from loanbus.pool.names import is_pool_name, socket_path
from loanbus.pool.words import release_views, words
from loanbus.types import ShmemType

L_WRITTEN = int(SlotState.WRITTEN)


class ReaderPool:
    """A reader's view of one writer's pool: payloads and slot table read-only."""

    _segment: Segment | None = None
    fd: int = -1

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
        if not isinstance(name, str) or not is_pool_name(name):
            raise PoolFormatError(f"{name!r} is not a loanbus pool name")
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
            # Plain ints, the descriptor and the views that take() reads for every sample.
            self.fd = seg.fd
            self.slot_count = layout.slot_count
            self.sample_size = layout.sample_size
            self.segment_size = layout.segment_size
            mm = seg.mapping
            self._header = words(mm, 0, L.HEADER_SIZE // 8)
            self._slots = words(mm, layout.slot_table_offset, layout.slot_count * L.SLOT_WORDS)
            #: Each slot's sequence number word (read only after the size was checked).
            self.seqs = self._slots[L.SLOT_SEQ :: L.SLOT_WORDS]
            #: Each slot's payload view once made (``view``), else None.
            self.views: list[np.ndarray[Any, Any] | None] = [None] * layout.slot_count
            self._stype = stype
        except BaseException:
            self.close()
            raise

    @property
    def socket_path(self) -> str:
        """The writer's registration socket (docs/shm-layout.md)."""
        return socket_path(self.name, self.header.writer_guid)

    def reference_error(self, slot: int, seq: int, size: int) -> LoanbusError | None:
        """Why a reference cannot be valid (None if it can), checked before anything is read."""
        if not 0 <= slot < self.slot_count:
            return InvalidReferenceError(f"pool {self.name}: slot {slot} outside 0..{self.slot_count - 1}")
        if not 0 < size <= self.sample_size:
            return InvalidReferenceError(f"pool {self.name}: size {size} outside 1..{self.sample_size}")
        broken = self.size_error()
        if broken is not None:
            return broken
        if seq <= 0 or seq > self.seqs[slot]:
            return InvalidReferenceError(
                f"pool {self.name}: sequence number {seq} of slot {slot} was never issued"
            )
        return None

    def check_reference(self, slot: int, seq: int, size: int) -> None:
        """Refuse a reference that cannot be valid, before anything is read through it."""
        error = self.reference_error(slot, seq, size)
        if error is not None:
            raise error

    def size_error(self) -> LoanbusError | None:
        """Why the segment cannot be read now (shrunk by someone, or closed), or None."""
        seg = self._segment
        if seg is None:
            return PoolFormatError(f"pool {self.name} is closed")
        size = seg.current_size()
        if size < self.segment_size:
            return BrokenError(
                f"pool {self.name} was truncated to {size} bytes (expected {self.segment_size})"
            )
        return None

    def check_size(self) -> None:
        """Refuse to read a segment someone shrank (reading it would be SIGBUS)."""
        error = self.size_error()
        if error is not None:
            raise error

    def view(self, slot: int) -> np.ndarray[Any, Any]:
        """The read-only view of a slot's payload (made once per slot)."""
        arr = self.views[slot]
        if arr is None:
            if self._segment is None:
                raise PoolFormatError(f"pool {self.name} is closed")
            arr = self._stype.view(self._segment.mapping, self.layout.payload_start(slot))
            self.views[slot] = arr
        return arr

    def is_consistent(self, slot: int, seq: int) -> bool:
        """Whether the slot still holds sequence number ``seq`` (False for a truncated pool)."""
        if os.lseek(self.fd, 0, os.SEEK_END) < self.segment_size or self._segment is None:
            return False
        return bool(self.seqs[slot] == seq)

    def newest_written(self, count: int) -> list[tuple[int, int, int]]:
        """(slot, seq, timestamp) of up to ``count`` newest WRITTEN slots, oldest first.

        What a late-joining reader takes when its durability is transient local: the writer
        keeps its newest written slots from reuse (the header's ``protected_slots``)."""
        self.check_size()
        slots = self._slots
        written = []
        for slot in range(self.slot_count):
            base = slot * L.SLOT_WORDS
            if slots[base + L.SLOT_STATE] == L_WRITTEN:
                written.append((int(slots[base + L.SLOT_SEQ]), slot, int(slots[base + L.SLOT_TIMESTAMP])))
        written.sort()
        return [(slot, seq, ts) for seq, slot, ts in written[-count:]] if count > 0 else []

    def slot_sequence(self, slot: int) -> int:
        self.check_size()
        return int(self.seqs[slot])

    def writer_state(self) -> L.SegmentState:
        self.check_size()
        return L.SegmentState(int(self._header[L.STATE_WORD]))

    def close(self) -> None:
        """Detach (idempotent). Views handed out stay readable until they are dropped."""
        seg, self._segment = self._segment, None
        self.fd = -1
        release_views(*(self.__dict__.pop(n, None) for n in ("seqs", "_header", "_slots")))
        self.__dict__.pop("views", None)
        if seg is not None:
            seg.close()
