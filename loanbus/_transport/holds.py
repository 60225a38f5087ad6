"""A reader's hold block: the hold cells of one (writer, reader) pair in a sealed memfd.

The reader creates the block, seals it against shrinking and growing, and hands the file
descriptor to the writer when it registers. Both map it shared: the writer stores a sample's
sequence number into a cell before it publishes the reference (reliable QoS), the reader
stores 0 when it returns the sample, and the writer sets the waiting word while it blocks in
``get_loan``. Because of the seals nobody, not even the reader that made it, can truncate
the block under the writer's mapping: a hostile reader cannot make the writer fault. Only
the two processes hold the descriptor, so no other reader can touch these cells.

Layout (``loanbus._layout``): a 64-byte header (magic, slot count, writer waiting), then one
64-bit cell per slot.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import stat

from loanbus import _layout as L

_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
_NEEDED = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW


class HoldBlockError(OSError):
    """A hold block that a writer must not map; the text says why."""


class HoldBlock:
    """One mapped hold block. ``cells[slot]`` is a hold cell; ``waiting`` a one-word view."""

    _mapping: mmap.mmap | None = None
    _fd: int = -1

    def __init__(self, fd: int, slot_count: int) -> None:
        self._fd = fd
        self.slot_count = slot_count
        self.size = L.hold_block_size(slot_count)
        self._mapping = mmap.mmap(fd, self.size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        words = memoryview(self._mapping).cast("Q")
        self._words = words
        self.cells = words[L.HOLD_CELLS_WORD : L.HOLD_CELLS_WORD + slot_count]
        self.waiting = words[L.HOLD_WAITING_WORD : L.HOLD_WAITING_WORD + 1]

    @classmethod
    def create(cls, slot_count: int) -> HoldBlock:
        """A new block for a pool of ``slot_count`` slots (the reader's side)."""
        if not 1 <= slot_count <= L.MAX_SLOTS:
            raise ValueError(f"slot_count must be within 1..{L.MAX_SLOTS}, not {slot_count}")
        fd = os.memfd_create("loanbus-holds", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, L.hold_block_size(slot_count))
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
            block = cls(fd, slot_count)
        except BaseException:
            os.close(fd)
            raise
        block._words[L.HOLD_SLOTS_WORD] = slot_count
        block._words[L.HOLD_MAGIC_WORD] = L.HOLD_MAGIC
        return block

    @classmethod
    def adopt(cls, fd: int, slot_count: int) -> HoldBlock:
        """Map a block received from a reader (the writer's side), after checking that it is a
        sealed memfd of exactly the right size and header. Takes ownership of ``fd``."""
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise HoldBlockError(errno.EINVAL, "the hold block is not a regular file")
            try:
                seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
            except OSError:
                seals = 0
            if seals & _NEEDED != _NEEDED:
                raise HoldBlockError(
                    errno.EPERM, "the hold block is not sealed against shrinking and growing"
                )
            if info.st_size != L.hold_block_size(slot_count):
                raise HoldBlockError(
                    errno.EINVAL,
                    f"the hold block has {info.st_size} bytes, not {L.hold_block_size(slot_count)}",
                )
            block = cls(fd, slot_count)
        except BaseException:
            os.close(fd)
            raise
        words = block._words
        if words[L.HOLD_MAGIC_WORD] != L.HOLD_MAGIC or words[L.HOLD_SLOTS_WORD] != slot_count:
            block.close()
            raise HoldBlockError(errno.EINVAL, "the hold block's header does not match the pool")
        return block

    @property
    def fd(self) -> int:
        return self._fd

    def clear(self) -> None:
        """Every cell back to 0 (a reader giving everything back, or a writer forgetting it)."""
        self.cells[:] = memoryview(bytes(8 * self.slot_count)).cast("Q")

    def held(self) -> int:
        """How many cells are set now."""
        return sum(1 for c in self.cells if c)

    def close(self) -> None:
        """Unmap and close (idempotent)."""
        for name in ("cells", "waiting", "_words"):
            view = self.__dict__.pop(name, None)
            if view is not None:
                view.release()
        mapping, self._mapping = self._mapping, None
        if mapping is not None:
            try:
                mapping.close()
            except BufferError:  # a view of it is still alive somewhere: unmapped when it dies
                pass
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
