"""A DataReader's writers: mapping their pools and registering with them.

When DDS matches a writer whose advert says this reader maps its pool, the reader opens the
pool read-only, checks its header, makes a hold block (reliable QoS) and registers through
the writer's socket: it proves it read the pool (the registration key), checks that the
process listening there is the pool's writer, and hands over its inbox and hold block. The
writer then sends its references into the inbox (or through DDS, for ``dds_references``).

Registration runs on Cyclone's listener thread as soon as DDS reports the match, so a
writer in the same thread as its reader (waiting in ``wait_for_readers``) sees it register;
the reader's own thread registers too (``take``), for anything the listener could not do.
A lock serialises both; the hot path only reads the dictionaries.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable

from loanbus import _advert
from loanbus._shm import SealedWords, SegmentError
from loanbus._transport import HoldBlock, Inbox, PeerInfo, Record, RegistrationError, ring, wire
from loanbus.errors import PoolFormatError
from loanbus.pool import ReaderPool, is_pool_name
from loanbus.types import ShmemType

log = logging.getLogger("loanbus")
_types_log = logging.getLogger("loanbus.types")  # two types on one topic (tools that say it silence it)
_GONE_FOR = 600.0  # how long the handle of a gone writer is remembered (its late references dropped)
_RETRY_EVERY = 0.05  # how often a registration the writer could not accept yet is tried again


class Source:
    """One writer's pool as one reader uses it: the mapping, the hold block, the connection."""

    __slots__ = (
        "cells",
        "conn",
        "copy",
        "floor",
        "handle",
        "holds",
        "index",
        "local",
        "outstanding",
        "pool",
        "retired",
        "seqs",
        "waiting",
        "welcomed",
    )

    def __init__(
        self,
        pool: ReaderPool,
        *,
        index: int,
        handle: int,
        holds: HoldBlock | None,
        conn: socket.socket | None,
        local: bool,
    ) -> None:
        self.pool = pool
        self.index = index
        self.handle = handle
        self.holds = holds
        self.cells = holds.cells if holds is not None else None
        self.waiting = holds.waiting if holds is not None else None
        self.conn = conn
        self.local = local  # its references come through the inbox (else through DDS)
        self.outstanding = 0
        self.retired = False
        self.floor = 0  # DDS references up to this sequence number were taken already (history)
        #: The writer's sealed copy of its slots' sequence numbers, once its welcome arrived.
        self.copy: SealedWords | None = None
        self.seqs: memoryview | None = None
        self.welcomed = False

    def sequences(self) -> memoryview | None:
        """The sealed sequence numbers (after reading the writer's welcome), or None: then the
        pool's own words are read, after a size check."""
        if self.seqs is not None:
            return self.seqs
        conn = self.conn
        if conn is None or self.welcomed:
            return None
        try:
            msg, fds, _flags, _ = socket.recv_fds(conn, 64, 1, socket.MSG_DONTWAIT | socket.MSG_CMSG_CLOEXEC)
        except BlockingIOError:
            return None  # not arrived yet
        except OSError:
            msg, fds = b"", []
        self.welcomed = True  # one welcome per registration: whatever came, do not ask again
        if msg != wire.WELCOME or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            return None
        try:
            self.copy = SealedWords.adopt(fds[0], self.pool.slot_count)
        except SegmentError as exc:
            log.warning("writer of pool %s sent an unusable sequence copy: %s", self.pool.name, exc)
            return None
        self.seqs = self.copy.words
        return self.seqs

    def release(self, slot: int, seq: int) -> bool:
        """Give back our hold on ``slot`` if it is ours for ``seq``; True if one was given back."""
        cells = self.cells
        if cells is not None and 0 <= slot < len(cells) and cells[slot] == seq:
            cells[slot] = 0
            return True
        return False

    def ring_if_waiting(self) -> None:
        """Wake the writer if it is blocked in ``get_loan`` (after holds were given back)."""
        waiting, conn = self.waiting, self.conn
        if waiting is not None and conn is not None and waiting[0]:
            ring(conn)

    def retire(self) -> None:
        """The writer is gone (or we close): drop the connection and holds; the mapping stays
        while taken samples point into it."""
        self.retired = True
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()
        self.cells = self.waiting = None
        holds, self.holds = self.holds, None
        if holds is not None:
            holds.close()
        self.maybe_close()

    def maybe_close(self) -> None:
        if self.retired and self.outstanding == 0:
            self.seqs = None
            copy, self.copy = self.copy, None
            if copy is not None:
                copy.close()
            self.pool.close()


class _CopyPool:
    """Where a by-value sample's copy lives: nowhere shared, so it is always consistent."""

    def is_consistent(self, slot: int, seq: int) -> bool:
        return True

    def close(self) -> None:
        pass


class CopySource(Source):
    """Stands in for a writer's pool behind by-value samples (private copies)."""

    def __init__(self) -> None:
        self.pool = _CopyPool()  # type: ignore[assignment]
        self.index = -1
        self.handle = 0
        self.holds = self.cells = self.waiting = None
        self.conn = None
        self.local = False
        self.outstanding = 0
        self.retired = False
        self.floor = 0
        self.copy = None
        self.seqs = None
        self.welcomed = True

    def release(self, slot: int, seq: int) -> bool:
        return False

    def maybe_close(self) -> None:
        pass


class Sources:
    """Every writer one reader takes from, by the index its records carry and by DDS handle."""

    def __init__(
        self,
        *,
        reader_id: bytes,
        stype: ShmemType,
        advert: _advert.ReaderAdvert,
        inbox: Inbox,
        writer_info: Callable[[int], PeerInfo | None],
        trusted_group: int | None,
        dds_refs: bool,
        topic: str,
        history: int = 0,
        replay: Callable[[list[Record]], None] | None = None,
    ) -> None:
        self.lock = threading.Lock()
        self.by_index: dict[int, Source] = {}
        self.by_handle: dict[int, Source] = {}
        self.unmappable: dict[int, str] = {}  # handle -> why its samples do not come zero-copy
        self.incompatible: dict[int, str] = {}  # handle -> why it never reaches us (another type)
        self.gone: dict[int, float] = {}  # handle -> when it went (late references are dropped)
        self.retiring: dict[int, Source] = {}  # handle -> a writer gone, its last references queued
        self.map_failures = 0
        self.lost_writers = 0
        #: handle -> when to try registering again (non-empty: a registration waits for it)
        self.retry_at: dict[int, float] = {}
        self._reader_id = reader_id
        self._stype = stype
        self._advert = advert
        self._inbox = inbox
        self._writer_info = writer_info
        self._trusted_group = trusted_group
        self._dds_refs = dds_refs
        self._topic = topic
        self._history = history
        self._replay = replay
        self.next_index = 0
        self.closed = False

    # -- registering -------------------------------------------------------------------

    def add(self, handles: Iterable[int]) -> None:
        """Map and register with every writer in ``handles`` not known yet (any thread)."""
        with self.lock:
            if self.closed:
                return
            for handle in handles:
                if handle in self.by_handle or handle in self.unmappable or handle in self.gone:
                    continue
                self._register(handle)

    @property
    def retry_due(self) -> bool:
        return bool(self.retry_at) and min(self.retry_at.values()) <= time.monotonic()

    def retry(self) -> None:
        """Register again with writers that could not accept us a moment ago."""
        now = time.monotonic()
        due = [h for h, at in self.retry_at.items() if at <= now]
        for h in due:
            self.retry_at.pop(h, None)
        self.add(due)

    def _register(self, handle: int) -> None:
        peer = self._writer_info(handle)
        ad = _advert.decode_writer(peer.user_data) if peer is not None else None
        if ad is None:
            self.unmappable[handle] = "the writer does not advertise a loanbus pool"
            log.warning("writer %x of %r does not advertise a loanbus pool; ignored", handle, self._topic)
            return
        mismatch = _advert.type_mismatch(ad, self._advert)
        if mismatch is not None:
            self.unmappable[handle] = self.incompatible[handle] = mismatch
            _types_log.warning("reader on %r: %s", self._topic, mismatch)
            return
        if not _advert.maps_zero_copy(ad, self._advert):
            # Not ours to map (another host, user, type, or by value asked): its samples arrive
            # on the plain topic. The writer applies the same rule.
            self.unmappable[handle] = "by value"
            return
        for source in self.by_index.values():
            if source.pool.name == ad.segment and source.pool.header.writer_guid.hex() == ad.writer_guid:
                # Another DDS writer claiming a pool we registered with already: one pool, one
                # registration. Its references (DDS path) are checked against that pool.
                self.by_handle[handle] = source
                return
        try:
            if not is_pool_name(ad.segment):
                raise PoolFormatError(f"{ad.segment!r} is not a loanbus pool name")
            pool = ReaderPool(
                ad.segment,
                self._stype,
                writer_guid=bytes.fromhex(ad.writer_guid),
                trusted_group=self._trusted_group,
            )
        except (PoolFormatError, ValueError) as exc:
            self._fail(handle, str(exc))
            return
        holds: HoldBlock | None = None
        try:
            holds = HoldBlock.create(pool.slot_count) if self._advert.reliable else None
            index = self.next_index
            history = self._history_of(pool, index, holds)
            flags = (wire.HELLO_RELIABLE if holds is not None else 0) | (
                wire.HELLO_DDS_REFS if self._dds_refs else 0
            )
            hello = wire.Hello(self._reader_id, pool.header.registration_key, index, flags, pool.slot_count)
            conn = self._inbox.register(
                pool.socket_path,
                hello,
                holds.fd if holds is not None else None,
                writer_pid=pool.header.writer_pid,
                writer_uid=pool.header.writer_uid,
            )
        except (RegistrationError, OSError) as exc:
            if holds is not None:
                holds.close()
            pool.close()
            if isinstance(exc, RegistrationError) and exc.errno == errno.EAGAIN:
                self.retry_at[handle] = time.monotonic() + _RETRY_EVERY
                return
            self._fail(handle, str(exc))
            return
        self.next_index += 1
        source = Source(pool, index=index, handle=handle, holds=holds, conn=conn, local=not self._dds_refs)
        self.by_index[index] = source
        self.by_handle[handle] = source
        if history and self._replay is not None:
            source.floor = history[-1][2]
            self._replay(history)

    def _history_of(self, pool: ReaderPool, index: int, holds: HoldBlock | None) -> list[Record]:
        """Transient local: the newest written slots the writer keeps, taken from the pool itself
        (so an idle writer serves a late joiner too), held in our hold block before the writer
        ever sees it."""
        count = min(self._history, pool.header.protected_slots)
        if count <= 0:
            return []
        records = []
        for slot, seq, ts in pool.newest_written(count):
            if holds is not None:
                holds.cells[slot] = seq  # ours alone until the hello hands the block over
            records.append((index, slot, seq, pool.layout.sample_size, ts))
        return records

    def _fail(self, handle: int, reason: str) -> None:
        """A writer counts on us mapping its pool and sends nothing by value: an error."""
        self.unmappable[handle] = reason
        self.map_failures += 1
        log.error("cannot map the pool of writer %x on %r: %s", handle, self._topic, reason)

    # -- writers going away ------------------------------------------------------------

    def prune(self, alive: set[int]) -> None:
        """Retire the writers DDS no longer matches (closed, or their lease expired)."""
        now = time.monotonic()
        with self.lock:
            for handle in [h for h in self.by_handle if h not in alive and h not in self.retiring]:
                source = self.by_handle[handle]
                self.gone[handle] = now
                if source.handle != handle:
                    del self.by_handle[handle]
                    continue  # another DDS writer that claimed this pool: the pool stays
                # What it wrote before it went may still wait in the inbox: those references
                # are taken first, then ``finish`` releases the pool.
                self.retiring[handle] = source
                self.lost_writers += 1
                log.info(
                    "writer %x of %r is gone (closed or dead); its pool is released", handle, self._topic
                )
            for handle in [h for h in self.unmappable if h not in alive]:
                del self.unmappable[handle]
                self.incompatible.pop(handle, None)
            for handle in [h for h in self.retry_at if h not in alive]:
                del self.retry_at[handle]
            for handle in [h for h, at in self.gone.items() if now - at > _GONE_FOR]:
                del self.gone[handle]

    def finish(self) -> None:
        """Release the writers that went, once nothing of theirs waits to be taken."""
        with self.lock:
            retiring, self.retiring = self.retiring, {}
            for handle, source in retiring.items():
                self.by_index.pop(source.index, None)
                for alias in [h for h, s in self.by_handle.items() if s is source]:
                    del self.by_handle[alias]
                self.by_handle.pop(handle, None)
        for source in retiring.values():
            source.retire()

    def close(self) -> None:
        """Retire every writer (their pools close once no taken sample points into them)."""
        with self.lock:
            self.closed = True
            sources = list(self.by_index.values())
            self.by_handle.clear()
            self.by_index.clear()
        for source in sources:
            if source.holds is not None:
                source.holds.clear()  # give everything back before we go
                source.ring_if_waiting()
            source.retire()
