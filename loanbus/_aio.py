"""asyncio for DataReader: ``await reader.take_async()`` and ``async for sample in reader``.

No polling and no thread of ours: a waiting coroutine watches the reader's inbox (its one
file descriptor) with ``loop.add_reader``, and parks its future with the reader's
``DataNotifier`` so that closing the reader wakes it. Taking always happens on the loop's
thread. A cancelled wait removes its future and has taken nothing; closing the reader wakes
every waiter with ``ClosedError`` (``take_async``) or ends the ``async for``.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, Protocol

from loanbus._args import check_seconds
from loanbus._notify import DataNotifier, _wake
from loanbus.errors import ClosedError


class _Reader(Protocol):
    """What this module needs of a DataReader (sub.py imports us, not the other way round)."""

    @property
    def closed(self) -> bool: ...

    def take(self, max_samples: int = 16, timeout: float | None = None) -> list[Any]: ...

    def return_loan(self, samples: Any) -> None: ...

    def _notifications(self) -> DataNotifier: ...

    def fileno(self) -> int: ...


class _LoopWatch:
    """One ``add_reader`` per (loop, inbox), shared by every coroutine of that loop waiting on
    the reader; the callback wakes them all, and the last one to leave removes it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        self.loop = loop
        self.fd = fd
        self.futures: set[asyncio.Future[None]] = set()
        loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        for fut in self.futures:
            _wake(fut)

    def leave(self, fut: asyncio.Future[None]) -> bool:
        """Forget ``fut``; True when no future is left (the watch was removed)."""
        self.futures.discard(fut)
        if self.futures:
            return False
        self.loop.remove_reader(self.fd)
        return True


_watches: dict[tuple[int, int], _LoopWatch] = {}  # (id(loop), fd) -> its watch; loop thread only


async def take_async(reader: _Reader, max_samples: int, timeout: float | None) -> list[Any]:
    """Up to ``max_samples`` samples, waiting up to ``timeout`` s (None: until some arrive).

    Returns ``[]`` when the timeout passes; raises ``ClosedError`` when the reader closes.
    """
    if max_samples < 1:
        raise ValueError(f"max_samples must be >= 1, not {max_samples}")
    if timeout is not None:
        timeout = check_seconds(timeout, "timeout")
        if math.isinf(timeout):
            timeout = None
    samples = reader.take(max_samples)
    if samples or timeout == 0:
        return samples
    notifier = reader._notifications()
    fd = reader.fileno()
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    key = (id(loop), fd)
    while True:
        fut: asyncio.Future[None] = loop.create_future()
        if not notifier.add_waiter(fut, loop):
            raise ClosedError(f"{reader!r} is closed")
        watch = _watches.get(key)
        if watch is None or watch.loop is not loop:
            watch = _watches[key] = _LoopWatch(loop, fd)
        watch.futures.add(fut)
        timer = None if deadline is None else loop.call_at(deadline, _wake, fut)
        try:
            # Watched first, then taken: anything that arrived since the last take wakes us.
            samples = reader.take(max_samples)
            if samples:
                return samples
            if deadline is not None and loop.time() >= deadline:
                return []
            await fut
        finally:
            notifier.remove_waiter(fut)
            if watch.leave(fut) and _watches.get(key) is watch:
                del _watches[key]
            if timer is not None:
                timer.cancel()
        if notifier.stopped:
            raise ClosedError(f"{reader!r} is closed")


class SampleStream:
    """``async for sample in reader``: one LoanedSample at a time, returned for you.

    The sample yielded is held (in reliable mode the writer cannot reuse its slot) while the
    loop body runs. The stream returns it when the next sample is asked for, when the loop
    is left (``break``, an exception, ``aclose()``, or the stream being dropped), or leaves it
    alone if the body already called ``reader.return_loan(sample)``. Keep a copy of the
    data, not the sample, past its iteration: touching a returned sample raises
    ``LoanStateError``. The loop ends when the reader is closed.
    """

    def __init__(self, reader: _Reader) -> None:
        self._reader = reader
        self._current: Any = None
        self._done = False

    def __aiter__(self) -> SampleStream:
        return self

    async def __anext__(self) -> Any:
        self._release()
        if self._done:
            raise StopAsyncIteration
        try:
            samples = await take_async(self._reader, 1, None)
        except ClosedError:
            self._done = True
            raise StopAsyncIteration from None
        self._current = samples[0]
        return self._current

    def _release(self) -> None:
        sample, self._current = self._current, None
        if sample is not None and not sample.returned and not self._reader.closed:
            self._reader.return_loan(sample)

    async def aclose(self) -> None:
        """Return the sample held and end the stream (idempotent)."""
        self._done = True
        self._release()

    async def __aenter__(self) -> SampleStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # ``break`` out of ``async for`` drops the stream at once (CPython): give the sample back.
        try:
            self._release()
        except Exception:  # pragma: no cover - the reader is half torn down at exit
            pass
