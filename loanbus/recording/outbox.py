"""Messages on their way to a sink: a bounded queue and one thread that logs them.

Copying a sample out of shared memory is quick; compressing and writing it is not. The
taps copy, check consistency and return the loan at once, and hand the message here, so a
slot is free again long before its bytes reach the disk. When the queue holds ``limit``
bytes the recorder is behind: a best-effort tap then counts the samples it cannot queue as
dropped (and keeps taking, so it never falls further behind its writers), while a reliable
tap waits here, and its writers wait for it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Protocol

log = logging.getLogger("loanbus.recording")

#: Bytes of messages an outbox holds before ``put`` waits (about 40 full-HD RGB frames).
DEFAULT_LIMIT = 256 << 20


class Loggable(Protocol):
    topic: str

    def log(self, message: bytes, log_time: int) -> None: ...


class Outbox:
    """A FIFO of ``(channel, message, log_time)`` drained by one thread into each channel."""

    def __init__(self, limit: int = DEFAULT_LIMIT, name: str = "loanbus outbox") -> None:
        if limit <= 0:
            raise ValueError(f"limit must be positive, not {limit}")
        self._limit = limit
        self._queue: deque[tuple[Loggable, bytes, int]] = deque()
        self._held = 0
        self._cond = threading.Condition()
        self._closing = False
        self.failures = 0
        self._thread = threading.Thread(target=self._drain, name=name, daemon=True)
        self._thread.start()

    def room(self, size: int) -> bool:
        """Whether ``size`` more bytes fit now (one message always fits an empty queue)."""
        return not self._held or self._held + size <= self._limit

    def put(self, channel: Loggable, message: bytes, log_time: int) -> None:
        """Queue one message; waits while the queue is full."""
        size = len(message)
        with self._cond:
            while not self.room(size) and not self._closing:
                self._cond.wait()
            self._queue.append((channel, message, log_time))
            self._held += size
            self._cond.notify_all()

    @property
    def held(self) -> int:
        """Bytes waiting to be logged."""
        return self._held

    def _drain(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                channel, message, log_time = self._queue.popleft()
            try:
                channel.log(message, log_time)
            except Exception:
                self.failures += 1
                log.exception("could not log a message of %r", channel.topic)
            with self._cond:
                self._held -= len(message)
                self._cond.notify_all()

    def close(self) -> None:
        """Log what is queued, then stop the thread. Idempotent."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()


__all__ = ["DEFAULT_LIMIT", "Loggable", "Outbox"]
