"""64-bit words of a mapping as memoryviews: what the consistency protocol loads and stores."""

from __future__ import annotations

from typing import Any


def words(buf: Any, offset: int, count: int) -> memoryview:
    """``count`` little-endian 64-bit words at ``offset``, as a memoryview of format 'Q'.

    Indexing it is one aligned 8-byte load or store (what the consistency protocol needs on
    x86-64) and costs far less than a numpy scalar access on the hot path.
    """
    return memoryview(buf)[offset : offset + 8 * count].cast("Q")


def release_views(*views: memoryview | None) -> None:
    """Release views of a mapping so that it can be closed."""
    for view in views:
        if view is not None:
            try:
                view.release()
            except BufferError:  # pragma: no cover - nothing re-exports these views
                pass
