"""Write-back: what a recording wrote reaches the disk and leaves the page cache as it grows.

The file lives in the checkout (a disk-backed file system; on tmpfs the page cache is the file
and dropping it is meaningless). Which pages are resident is asked of the kernel (mincore).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import tempfile
from pathlib import Path

import pytest

from loanbus.recording.writeback import Writeback
from tests.idl.ctools import REPO
from tests.reliability import wait_for

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]


def resident_pages(path: Path) -> int:
    """How many pages of ``path`` are in the page cache."""
    size = path.stat().st_size
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert addr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        try:
            pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
            vec = ctypes.create_string_buffer(pages)
            assert _libc.mincore(addr, size, vec) == 0, os.strerror(ctypes.get_errno())
            return sum(b & 1 for b in vec.raw)
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)


def test_written_pages_are_written_back_and_dropped_while_the_file_grows() -> None:
    chunk = os.urandom(1 << 20)
    with tempfile.TemporaryDirectory(dir=REPO, prefix=".writeback-") as d:
        path = Path(d) / "growing.bin"
        with path.open("wb", buffering=0) as f:
            writeback = Writeback(f.fileno(), interval=0.05)
            try:
                for _ in range(32):
                    f.write(chunk)
                assert resident_pages(path) > 0  # written, still cached
                wait_for(lambda: writeback.synced == 32 << 20, 30, "the whole file to be written back")
                wait_for(lambda: resident_pages(path) == 0, 10, "the written pages to leave the page cache")
                f.write(chunk)  # the file goes on growing: the next round drops the new part too
                wait_for(lambda: writeback.synced == 33 << 20, 30, "the new megabyte to be written back")
            finally:
                writeback.close()
            writeback.close()  # idempotent
        assert path.read_bytes() == chunk * 33


def test_an_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval must be positive"):
        Writeback(0, interval=0)
