"""Publishes every writer's and reader's statistics on the DDS topic ``loanbus_stats``.

This is how ``loanbus top`` in another process sees them. One daemon thread per process,
started with the first entity and gone with the last, wakes every
``LOANBUS_STATS_INTERVAL`` seconds (default 1; 0 turns publishing off), and publishes one
JSON document per live entity: who it is, its ``statistics().as_dict()``, and its rates
over the last interval. Nothing of this runs on the hot path: the thread only reads
counters that ``get_loan``/``write``/``take`` increment anyway.

A closed entity's document is disposed at the next tick; a closed participant's documents
vanish with its DDS writer at once.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
import weakref
from typing import Any, Protocol

from loanbus._transport import StatsWriter, TransportParticipant
from loanbus.errors import LoanbusError
from loanbus.stats import ReaderStatistics, WriterStatistics

log = logging.getLogger("loanbus")

INTERVAL_ENV = "LOANBUS_STATS_INTERVAL"
DEFAULT_INTERVAL = 1.0
TAG = "loanbus_stats"
VERSION = 1
#: Which counters the rates are made of, per kind: (samples, payload bytes).
RATE_FIELDS = {"writer": ("writes", "bytes_written"), "reader": ("taken", "bytes_taken")}


class Source(Protocol):
    """What the feed needs of an entity."""

    @property
    def closed(self) -> bool: ...

    def statistics(self) -> WriterStatistics | ReaderStatistics: ...


def interval() -> float:
    """The publishing interval in seconds from ``LOANBUS_STATS_INTERVAL`` (0: off)."""
    text = os.environ.get(INTERVAL_ENV, "").strip()
    if not text:
        return DEFAULT_INTERVAL
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise ValueError(f"{INTERVAL_ENV}={text!r}: give seconds within 0..3600 (0 turns statistics off)")
    return value


class _Handle:
    """One entity's place in the feed: its identity, its interval and what it published last."""

    def __init__(self, entity: Source, writer: StatsWriter, identity: dict[str, Any], every: float) -> None:
        self._ref = weakref.ref(entity)
        self._writer = writer
        self.entity_id = str(identity["id"])
        self._identity = {TAG: VERSION, **identity}
        self._fields = RATE_FIELDS[str(identity["kind"])]
        now = time.monotonic()
        self._last = (now, 0, 0)
        self.every = every
        self.due = now + every

    def publish(self) -> bool:
        """Publish the entity's document; False once the entity is closed or gone (then dispose)."""
        entity = self._ref()
        if entity is None or entity.closed:
            self._writer.dispose(self.entity_id)
            return False
        stats = entity.statistics().as_dict()
        now = time.monotonic()
        self.due = now + self.every
        count, size = stats[self._fields[0]], stats[self._fields[1]]
        then, last_count, last_size = self._last
        dt = max(now - then, 1e-9)
        self._last = (now, count, size)
        doc = {
            **self._identity,
            "time_ns": time.time_ns(),
            "interval_s": round(dt, 3),
            "samples_per_s": round((count - last_count) / dt, 2),
            "bytes_per_s": round((size - last_size) / dt, 1),
            "stats": stats,
        }
        self._writer.publish(self.entity_id, json.dumps(doc, separators=(",", ":")))
        return True


class _Feed:
    """The process's publishing thread and the entities it serves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handles: list[_Handle] = []
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()  # a new entity may be due sooner than the thread sleeps
        self._stopped = False

    def add(self, handle: _Handle) -> None:
        with self._lock:
            if self._stopped:
                return
            self._handles.append(handle)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="loanbus-stats", daemon=True)
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.clear()  # before reading the handles: an add() after this wakes the wait
            with self._lock:
                if self._stopped or not self._handles:
                    self._thread = None
                    return
                handles = list(self._handles)
            now = time.monotonic()
            gone = [h for h in handles if h.due <= now and not self._publish(h)]
            with self._lock:
                self._handles = [h for h in self._handles if h not in gone]
                due = min((h.due for h in self._handles), default=now)
            self._wake.wait(max(due - time.monotonic(), 0.0))

    @staticmethod
    def _publish(handle: _Handle) -> bool:
        try:
            return handle.publish()
        except (LoanbusError, ValueError, AttributeError) as exc:
            # The entity or its participant closed under us; the next tick disposes it.
            handle.due = time.monotonic() + handle.every
            log.debug("statistics of %s not published: %s", handle.entity_id, exc)
            return True

    def stop(self) -> None:
        """At exit: stop the thread before the interpreter tears Cyclone DDS down."""
        with self._lock:
            self._stopped = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(2.0)

    def reset_after_fork(self) -> None:
        self._lock = threading.Lock()
        self._handles = []
        self._thread = None
        self._wake = threading.Event()


_feed = _Feed()
atexit.register(_feed.stop)
os.register_at_fork(after_in_child=_feed.reset_after_fork)


def register(entity: Source, transport: TransportParticipant, identity: dict[str, Any]) -> None:
    """Publish ``entity``'s statistics every interval while it is open.

    ``identity`` says who it is (``kind`` "writer" or "reader", ``id``, ``topic``, ...); it
    goes into every document unchanged.
    """
    every = interval()
    if every == 0:
        return
    _feed.add(_Handle(entity, transport.stats_writer(), identity, every))


def decode(body: str) -> dict[str, Any] | None:
    """A statistics document, or None if ``body`` is not one this version understands."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get(TAG) != VERSION or doc.get("kind") not in RATE_FIELDS:
        return None
    if not isinstance(doc.get("stats"), dict):
        return None
    return doc
