"""Push notification for a DataReader: its ``on_data_available`` callback and asyncio waiters.

A reader's inbox (one pipe) becomes readable whenever something arrives for it: references
from local writers, and wake records for what comes through DDS. Readers with an
``on_data_available`` callback are watched by one process-wide thread, ``loanbus-callbacks``
(edge-triggered epoll: one call per arrival burst, as DDS's data-available listener), which
calls ``DataNotifier.on_data``. That runs the user's callback; callbacks of one reader never
overlap: an arrival during a callback makes the running one go round once more. ``stop()``
refuses new calls and waits for one in progress, so once a reader's ``close()`` returns no
callback runs. asyncio waiters park their futures here too, so that ``stop()`` wakes them;
``loanbus._aio`` waits on the inbox with ``loop.add_reader``.
"""

from __future__ import annotations

import asyncio
import logging
import select
import threading
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger("loanbus")


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class DataNotifier:
    """Wakes async waiters and runs one user callback per arrival burst, never two at once."""

    def __init__(self, owner: object, callback: Callable[[Any], None] | None = None) -> None:
        self._owner = weakref.ref(owner)  # the DataReader; never kept alive by its own listener
        self._callback = callback
        self._cond = threading.Condition(threading.Lock())
        self._waiters: dict[asyncio.Future[None], asyncio.AbstractEventLoop] = {}
        self._stopped = False
        self._running = False  # a callback is in progress ...
        self._runner = 0  # ... on this thread
        self._again = False  # references arrived while it ran
        self.calls = 0
        self.errors = 0

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def waiting(self) -> int:
        """How many ``take_async`` calls are parked on this reader now."""
        return len(self._waiters)

    # -- Cyclone's listener thread -------------------------------------------------------

    def on_data(self) -> None:
        """References arrived (called on a Cyclone thread)."""
        with self._cond:
            if self._stopped:
                return
            for fut, loop in self._waiters.items():
                try:
                    loop.call_soon_threadsafe(_wake, fut)
                except RuntimeError:  # that loop is closed; its waiter is gone with it
                    pass
            if self._callback is None:
                return
            if self._running:
                self._again = True
                return
            self._running, self._runner = True, threading.get_ident()
        try:
            self._run_callbacks()
        except BaseException:
            with self._cond:
                self._finish()
            raise

    def _finish(self) -> None:
        """End the callback run (hold ``_cond``): ``stop()`` may be waiting for it."""
        self._running, self._runner, self._again = False, 0, False
        self._cond.notify_all()

    def _run_callbacks(self) -> None:
        """Call back until no reference arrived meanwhile; ``_running`` ends in the same lock."""
        callback = self._callback
        assert callback is not None
        while True:
            owner = self._owner()
            alive = owner is not None
            if alive:
                self.calls += 1
                try:
                    callback(owner)
                except Exception:
                    self.errors += 1
                    log.exception("the on_data_available callback of %r raised", owner)
                del owner
            with self._cond:
                if not alive or self._stopped or not self._again:
                    self._finish()
                    return
                self._again = False

    # -- the owner's threads -------------------------------------------------------------

    def add_waiter(self, fut: asyncio.Future[None], loop: asyncio.AbstractEventLoop) -> bool:
        """Park ``fut`` until references arrive or the reader closes; False if it already did."""
        with self._cond:
            if self._stopped:
                return False
            self._waiters[fut] = loop
            return True

    def remove_waiter(self, fut: asyncio.Future[None]) -> None:
        with self._cond:
            self._waiters.pop(fut, None)

    def inside_callback(self) -> bool:
        """True when the calling thread is running this notifier's callback."""
        with self._cond:
            return self._running and self._runner == threading.get_ident()

    def stop(self) -> None:
        """No more callbacks; wake every waiter; wait for a callback in progress (not our own)."""
        with self._cond:
            self._stopped = True
            waiters, self._waiters = self._waiters, {}
            me = threading.get_ident()
            while self._running and self._runner != me:
                self._cond.wait()
        for fut, loop in waiters.items():
            try:
                loop.call_soon_threadsafe(_wake, fut)
            except RuntimeError:
                pass


class _Watcher:
    """The process's callback thread: waits on the inboxes of readers that have a callback."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._epoll: select.epoll | None = None
        self._targets: dict[int, DataNotifier] = {}

    def watch(self, fd: int, notifier: DataNotifier) -> None:
        with self._lock:
            if self._epoll is None:
                self._epoll = select.epoll()
                threading.Thread(
                    target=self._run, args=(self._epoll,), name="loanbus-callbacks", daemon=True
                ).start()
            self._targets[fd] = notifier
            self._epoll.register(fd, select.EPOLLIN | select.EPOLLET)

    def unwatch(self, fd: int) -> None:
        with self._lock:
            if self._targets.pop(fd, None) is not None and self._epoll is not None:
                try:
                    self._epoll.unregister(fd)
                except OSError:
                    pass

    def _run(self, epoll: select.epoll) -> None:
        while True:
            for fd, _events in epoll.poll():
                notifier = self._targets.get(fd)
                if notifier is not None:
                    try:
                        notifier.on_data()
                    except BaseException:  # pragma: no cover - on_data counts callback errors itself
                        log.exception("the callback thread met an error")


_watcher = _Watcher()


def watch(fd: int, notifier: DataNotifier) -> None:
    """Call ``notifier.on_data()`` on the callback thread whenever ``fd`` gets new data."""
    _watcher.watch(fd, notifier)


def unwatch(fd: int) -> None:
    """Stop watching ``fd`` (idempotent; call before closing it)."""
    _watcher.unwatch(fd)
