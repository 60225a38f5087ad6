"""A DataWriter's local readers: registrations, hold rows, and delivering references to them.

A reader on this host registers through the writer's registration socket
(``_transport.registry``): that proves it could read the pool and that it is this user (or
in the pool's group). The writer attaches it to its pool at once (a hold row, and its hold
cells when it returns holds); a DDS advert alone never gets a row. DDS must then match the
same reader from the same process, or it is detached again. References go to attached
readers as records in their inboxes. A reader whose inbox is gone (it died: ``EPIPE``) or
whose connection hung up is detached at once, and its holds no longer count.

Everything here runs on the writer's thread, except ``wake`` (any thread).
"""

from __future__ import annotations

import logging
import os
import select
import time
from dataclasses import dataclass

from loanbus import _advert
from loanbus import _layout as L
from loanbus._transport import Link, Refusal, Registry, wire
from loanbus._transport.registry import FULL, GONE
from loanbus.pool import WriterPool

log = logging.getLogger("loanbus")
_write = os.write
_pack = wire.RECORD.pack
_MAGIC = wire.RECORD_MAGIC
_UNMATCHED_GRACE = 10.0  # how long a registration may wait for its reader to appear on DDS
_PENDING_EVERY = 0.001  # how often a writer looks for a registration it is still waiting for
_EAGER_FOR = 1.0  # how long get_loan looks every time


@dataclass
class SinkCounters:
    """What the writer counts about its local readers (see ``WriterStatistics``)."""

    refused_registrations: int = 0
    lost_readers: int = 0  # detached because their inbox or connection was gone
    dropped_references: int = 0  # best effort: a reader's inbox was full
    unattached_readers: int = 0  # matched and registered, but every hold row was taken


class Sinks:
    """The local readers of one writer (its registry, and the readers attached to its pool)."""

    def __init__(self, pool: WriterPool, registry: Registry, topic: str) -> None:
        self._pool = pool
        self._registry = registry
        self._topic = topic
        self.attached: dict[bytes, Link] = {}
        self._matched: dict[bytes, _advert.ReaderAdvert] = {}  # what DDS matched last time we asked
        self.receivers: list[Link] = []  # attached readers that take records from the local path
        self.counters = SinkCounters()
        self.pending = False  # a registration or a match is waiting for its other half
        self._pending_since = 0.0
        self._next_look = 0.0
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    # -- registrations and attachment --------------------------------------------------

    def due(self, *, eager: bool = False) -> bool:
        """Whether to look for a pending registration now: at most once a millisecond, or every
        time (``eager``) during the first second of the wait, when it most likely arrives."""
        now = time.monotonic()
        if eager and now - self._pending_since < _EAGER_FOR:
            return True
        if now < self._next_look:
            return False
        self._next_look = now + _PENDING_EVERY
        return True

    def sync(self, matched: dict[bytes, _advert.ReaderAdvert] | None) -> None:
        """Attach new registrations; check attached readers against what DDS matched.

        ``matched`` (reader id -> advert of the zero-copy readers DDS matches now) is None when
        DDS has nothing new to say. A registration is attached at once: it proved that the
        reader could read the pool and is this user (or the pool's group). DDS must then match
        the same reader, from the same process, within ``_UNMATCHED_GRACE`` s; a reader DDS
        stops matching (closed, or its lease expired) is detached.
        """
        for got in self._registry.accept():
            if isinstance(got, Refusal):
                self.counters.refused_registrations += 1
                log.warning(
                    "writer on %r refused a registration from pid %d (uid %d): %s",
                    self._topic,
                    got.pid,
                    got.uid,
                    got.reason,
                )
                continue
            if got.reader_id in self.attached:  # a reader registering again: the new one counts
                self.detach(got.reader_id)
            if not self._attach(got):
                got.close()
        fresh = matched is not None
        if matched is None:
            matched = self._matched
        else:
            self._matched = matched
        now = time.monotonic()
        for rid, link in list(self.attached.items()):
            ad = matched.get(rid)
            if ad is not None:
                if ad.pid != link.pid:
                    self._refuse(link, f"it registered from pid {link.pid} but DDS knows it as pid {ad.pid}")
                else:
                    link.matched = True
            elif fresh and link.matched:
                self.detach(rid)  # DDS lost it: closed, or its lease expired
            elif not link.matched and now - link.since > _UNMATCHED_GRACE:
                self._refuse(link, f"DDS did not match it within {_UNMATCHED_GRACE:g} s of its registration")
        unregistered = any(rid not in self.attached for rid in matched)
        pending = (
            unregistered
            or self._registry.pending > 0
            or any(not link.matched for link in self.attached.values())
        )
        if pending and not self.pending:
            self._pending_since = now
        self.pending = pending
        self.receivers = [link for link in self.attached.values() if not link.dds_refs]

    def _refuse(self, link: Link, why: str) -> None:
        self.counters.refused_registrations += 1
        log.warning("writer on %r detached reader %s: %s", self._topic, link.reader_id.hex(), why)
        self.detach(link.reader_id)

    def _attach(self, link: Link) -> bool:
        flags = (L.OWNER_RELIABLE if link.reliable else 0) | (L.OWNER_DDS_REFS if link.dds_refs else 0)
        holds = link.holds
        row = self._pool.attach_reader(
            link.reader_id,
            pid=link.pid,
            flags=flags,
            cells=holds.cells if holds is not None else None,
            waiting=holds.waiting if holds is not None else None,
        )
        if row is None:
            self.counters.unattached_readers += 1
            log.error(
                "writer on %r: reader %s (pid %d) gets no references: all %d hold rows are taken "
                "(raise Qos(reader_rows=...))",
                self._topic,
                link.reader_id.hex(),
                link.pid,
                self._pool.layout.reader_rows,
            )
            return False
        self.attached[link.reader_id] = link
        return True

    def detach(self, reader_id: bytes) -> None:
        """Forget a reader: its row and holds are freed at once."""
        link = self.attached.pop(reader_id, None)
        self._pool.release_row(reader_id)
        if link is not None:
            link.close()
            self.receivers = [x for x in self.receivers if x is not link]

    # -- delivery ----------------------------------------------------------------------

    def deliver(
        self, slot: int, seq: int, size: int, timestamp_ns: int, max_blocking_time: float
    ) -> list[Link] | None:
        """Send the reference to every local receiver; returns the reliable readers whose inbox
        stayed full for ``max_blocking_time`` (they did not get it; their hold is cleared)."""
        stuck: list[Link] | None = None
        for link in self.receivers:
            try:
                _write(link.pipe_fd, _pack(_MAGIC, link.index, slot, 0, seq, size, timestamp_ns))
            except BlockingIOError:
                result = self._full(link, slot, seq, size, timestamp_ns, max_blocking_time)
                if result == FULL:
                    stuck = [*(stuck or ()), link]
                elif result == GONE:
                    self.lost(link)
            except OSError:  # EPIPE: nobody reads its inbox any more (it died or closed)
                self.lost(link)
        return stuck

    def _full(self, link: Link, slot: int, seq: int, size: int, ts: int, max_blocking_time: float) -> int:
        """A full inbox: best effort drops the reference, reliable waits for room first."""
        if link.holds is None:
            link.dropped += 1
            self.counters.dropped_references += 1
            return 0
        deadline = time.monotonic() + max_blocking_time
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not link.wait_writable(remaining):
                if link.holds.cells[slot] == seq:
                    link.holds.cells[slot] = 0  # it will never see this reference
                return FULL
            result = link.send(wire.encode_record(link.index, slot, seq, size, ts))
            if result != FULL:
                return result

    def lost(self, link: Link) -> None:
        """A reader whose inbox or connection is gone (it died or closed): detach it now."""
        if self.attached.get(link.reader_id) is link:
            self.counters.lost_readers += 1
            log.info("writer on %r: reader pid %d is gone; its holds are freed", self._topic, link.pid)
            self.detach(link.reader_id)

    # -- waiting for returned slots ----------------------------------------------------

    def wait(self, seconds: float) -> None:
        """Block up to ``seconds`` until a reader rings, hangs up, registers, or ``wake`` is called."""
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        poller.register(self._registry.fileno(), select.POLLIN)
        links = {link.conn.fileno(): link for link in self.attached.values() if link.holds is not None}
        for fd in links:
            poller.register(fd, select.POLLIN)
        events = poller.poll(max(int(seconds * 1000.0 + 0.999), 0))
        for fd, _ in events:
            if fd == self._wake_r:
                try:
                    os.read(self._wake_r, 4096)
                except BlockingIOError:
                    pass
            elif fd in links:
                if not links[fd].drain():
                    self.lost(links[fd])
            else:
                self.pending = True  # a registration is waiting on the socket

    def wake(self) -> None:
        """Wake a ``wait`` in progress (from any thread: Cyclone's, when matches change)."""
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        """Detach every reader, close the registry (its socket's name goes), idempotent."""
        for rid in list(self.attached):
            self.detach(rid)
        self._registry.close()
        r, w, self._wake_r, self._wake_w = self._wake_r, self._wake_w, -1, -1
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)
