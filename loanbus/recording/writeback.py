"""Writing back a growing file and dropping it from the page cache, as it grows.

A recording of full-HD frames grows by hundreds of MB a second. Left to the kernel, every
written byte stays in the page cache: the cache takes free memory page by page (each new page
is cleared first, which costs more CPU than the write's own copy) until reclaim has to evict
it again, and writers get throttled in bursts once the dirty limit is reached. A
``Writeback`` thread instead asks the kernel every ``interval`` seconds to write what the file
holds to the disk (``fdatasync``) and then to drop those pages (``POSIX_FADV_DONTNEED``), so
the pages the next writes need come back from what was just dropped. Measured in
docs/record.md; on a file system without a page cache (tmpfs) both calls change nothing.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("loanbus.recording")

#: Seconds between two write-backs.
DEFAULT_INTERVAL = 0.5


class Writeback:
    """Writes back and drops the pages of the file open as ``fd`` every ``interval`` seconds,
    until ``close()`` (which leaves ``fd`` open: it belongs to the caller)."""

    def __init__(self, fd: int, interval: float = DEFAULT_INTERVAL) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval}")
        self._fd = fd
        self._interval = interval
        self._stop = threading.Event()
        self.synced = 0  # bytes written back and dropped so far
        self._thread = threading.Thread(target=self._run, name="loanbus writeback", daemon=True)
        self._thread.start()

    def _once(self) -> None:
        size = os.fstat(self._fd).st_size
        os.fdatasync(self._fd)
        os.posix_fadvise(self._fd, 0, size, os.POSIX_FADV_DONTNEED)
        self.synced = size

    def _run(self) -> None:
        try:
            while not self._stop.wait(self._interval):
                self._once()
        except OSError:
            log.exception("writing back the recording failed; the kernel keeps it in its page cache")

    def close(self) -> None:
        """Stop the thread. Idempotent."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


__all__ = ["DEFAULT_INTERVAL", "Writeback"]
