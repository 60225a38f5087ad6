"""Shared lifetime helpers: idempotent close, context managers and a forgotten-object net.

Learned from ``tempfile.TemporaryDirectory`` (a ``weakref.finalize`` whose callback never
references ``self``) and pyzmq (a forgotten resource warns with ``ResourceWarning``).
"""

from __future__ import annotations

import time
import warnings
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any

from loanbus.errors import ClosedError


def _forgotten(what: str, release: Callable[[], None]) -> None:
    warnings.warn(f"{what} was never closed; loanbus closed it", ResourceWarning, stacklevel=2)
    release()


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.005) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


class Closeable:
    """Base of every entity: ``close()`` once, a context manager, a finalizer safety net."""

    _finalizer: weakref.finalize[Any, Any] | None = None
    _closed: bool = True

    def _arm(self, what: str, release: Callable[[], None]) -> None:
        """Register ``release`` (which must not reference ``self``) to run if we are forgotten."""
        self._finalizer = weakref.finalize(self, _forgotten, what, release)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"{self!r} is closed")

    def close(self) -> None:
        """Release everything this entity holds (idempotent)."""
        self._closed = True
        fin = self._finalizer
        if fin is not None:
            detached = fin.detach()
            if detached is not None:
                _, _, (_, release), _ = detached
                release()

    def __enter__(self: Any) -> Any:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
