"""DataWriter and Loan: fill a sample in place in shared memory, then publish a reference."""

from __future__ import annotations

import errno
import logging
import os
import time
import weakref
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any, Generic, TypeVar

import numpy as np

from loanbus import _advert, _statsfeed
from loanbus._export import DLPackField, field_view
from loanbus._layout import ABI_VERSION
from loanbus._lifetime import Closeable, wait_until
from loanbus._proc import host_identity
from loanbus._shm import SegmentError
from loanbus._transport import EndpointQos, PeerInfo, RefWriter, ValueWriter, value_type
from loanbus.errors import LoanStateError, LoanTimeoutError, PoolFormatError
from loanbus.inspect import reap_dead
from loanbus.pool import WriterPool, segment_name, topic_prefix
from loanbus.qos import Qos
from loanbus.stats import WriterStatistics
from loanbus.topic import Topic, by_value_gap, check_endpoint_args
from loanbus.types import ShmemType

log = logging.getLogger("loanbus")

T = TypeVar("T")

_ACTIVE, _WRITTEN, _DISCARDED = "active", "written", "discarded"


class Loan:
    """A slot of the writer's pool on loan to you: fill ``data`` in place, then ``write`` it.

    ``data`` is a writable 0-d structured numpy view into shared memory. After ``write`` or
    ``discard_loan`` the loan is consumed and touching ``data`` raises ``LoanStateError``.
    """

    __slots__ = ("__weakref__", "_data", "_state", "_writer", "sequence_number", "slot")

    def __init__(self, writer: DataWriter[Any], slot: int, seq: int, data: np.ndarray[Any, Any]) -> None:
        self._writer = writer
        self.slot = slot
        self.sequence_number = seq
        self._data = data
        self._state = _ACTIVE

    @property
    def data(self) -> np.ndarray[Any, Any]:
        if self._state is not _ACTIVE:
            raise LoanStateError(f"this loan was already {self._state}; get a new loan")
        return self._data

    @property
    def active(self) -> bool:
        return self._state is _ACTIVE

    def dlpack(self, field: str) -> DLPackField:
        """Field ``field`` for ``torch.from_dlpack`` / ``np.from_dlpack``: zero-copy, writable.

        Fill the pool in place from an array library (docs/ecosystem.md); valid like ``data``.
        """
        return DLPackField(field_view(self.data, field), field)

    def __repr__(self) -> str:
        return f"Loan(slot={self.slot}, seq={self.sequence_number}, {self._state})"


@dataclass(frozen=True)
class ReaderMatch:
    """A reader matched by a writer, and whether it maps the pool (``shm``) or not."""

    guid: str
    pid: int | None
    shm: bool
    path: str = "zero-copy"  # "zero-copy" (maps the pool) or "by-value" (plain DDS topic)


def _release_writer(refs: RefWriter | None, pool: WriterPool, values: ValueWriter | None = None) -> None:
    if values is not None:
        values.close()
    if refs is not None:
        refs.close()
    pool.close()


class DataWriter(Closeable, Generic[T]):
    """Loans slots of its own shared-memory pool and publishes references to them.

    ``get_loan()`` -> fill ``loan.data`` -> ``write(loan)``. Best effort reuses the oldest
    written slot when none is free; reliable waits up to ``qos.max_blocking_time`` for
    readers to return the slots they hold, then raises ``LoanTimeoutError``.
    """

    def __init__(self, topic: Topic[T], qos: Qos | None = None) -> None:
        self.qos = qos = check_endpoint_args(topic, qos)
        self.topic = topic
        participant = topic.participant
        stype = topic.shmem_type
        # A crashed writer of this topic may have left its pool behind: the next writer reaps it.
        reap_dead(topic_prefix(participant.domain_id, topic.name))
        self._pool = pool = self._create_pool(participant.domain_id, stype, qos)
        name = pool.name
        self._host = host_identity()
        advert = _advert.WriterAdvert(
            segment=name,
            host=self._host,
            abi=ABI_VERSION,
            type_hash=stype.type_hash.hex(),
            slots=pool.slot_count,
            stride=pool.layout.slot_stride,
            writer_guid=self.guid.hex(),
            pid=os.getpid(),
            uid=os.getuid(),
            type_name=stype.name,
            group=-1 if qos.shm_group is None else qos.shm_group,
        )
        self._advert = advert
        self._refs: RefWriter | None = None
        self._values: ValueWriter | None = None
        endpoint_qos = EndpointQos(
            reliable=qos.reliable,
            depth=qos.writer_depth,
            transient_local=qos.protected_slots > 0,
            max_blocking_time=qos.max_blocking_time,
            user_data=_advert.encode_writer(advert),
            name=f"loanbus writer {topic.name} (references)",
        )
        try:
            self._refs = refs = RefWriter(
                participant.transport, topic.reference_topic_name, endpoint_qos, on_match_change=_waker(pool)
            )
            # The plain topic: readers that cannot map the pool, and plain Cyclone DDS readers.
            gap = by_value_gap(stype)
            if gap is not None:
                log.warning("writer on %r: %s", topic.name, gap)
            else:
                self._value_type = value_type(stype.name, stype.dtype, stype.by_value)
                self._values = ValueWriter(
                    participant.transport,
                    topic.name,
                    self._value_type,
                    replace(endpoint_qos, name=f"loanbus writer {topic.name} (by value)"),
                    on_match_change=refs.matches,  # one dirty flag: write() checks it already
                )
        except BaseException:
            _release_writer(self._refs, pool)
            raise
        self._arm(f"DataWriter on {topic.name!r}", partial(_release_writer, self._refs, pool, self._values))
        self._loans: dict[int, Loan] = {}  # slot -> the loan out on it
        self._readers: dict[bytes, PeerInfo] = {}
        self._matched = 0
        self._size = pool.layout.sample_size
        self._writes_bytes = 0
        self._by_value_readers = 0  # write() serialises by value only while this is non-zero
        self._by_value_writes = self._by_value_bytes = 0
        self._raw: dict[int, memoryview] = {}
        participant._adopt(self)
        try:
            _statsfeed.register(self, participant.transport, self._stats_identity())
        except BaseException:
            self.close()
            raise

    def _create_pool(self, domain_id: int, stype: ShmemType, qos: Qos) -> WriterPool:
        """Create the pool under a fresh name; a name someone squats on is never adopted."""
        for _attempt in range(3):
            self.guid = os.urandom(16)
            name = segment_name(domain_id, self.topic.name, self.guid)
            try:
                return WriterPool(
                    name,
                    stype,
                    slot_count=qos.slot_count,
                    reader_rows=qos.reader_rows,
                    protected_slots=qos.protected_slots,
                    reliable=qos.reliable,
                    writer_guid=self.guid,
                    group=qos.shm_group,
                    huge_pages=qos.huge_pages,
                )
            except SegmentError as exc:
                if exc.errno != errno.EEXIST:
                    raise PoolFormatError(f"cannot create pool {name}: {exc}") from exc
                log.warning("pool name %s is already taken; choosing another name", name)
        raise PoolFormatError(f"could not create a pool for {self.topic.name!r}: every name tried was taken")

    # -- the loan cycle ----------------------------------------------------------------

    def get_loan(self, timeout: float | None = None) -> Loan:
        """A slot of the pool, stamped with a fresh sequence number, to fill in place.

        Reliable writers wait up to ``timeout`` seconds (default ``qos.max_blocking_time``)
        for readers to return slots, then raise ``LoanTimeoutError`` naming the holders.
        """
        if self._closed:
            self._check_open()
        pool = self._pool
        if self._refs is not None and self._refs.matches.dirty:
            self._sync_readers()
        slot = pool.try_acquire()  # best effort never returns None
        if slot is None:
            wait = self.qos.max_blocking_time if timeout is None else timeout
            try:
                slot = pool.acquire(wait, before_try=self._sync_readers)
            except LoanTimeoutError as exc:
                raise LoanTimeoutError(self._describe_holders(exc), exc.holders) from None
        loan = Loan(self, slot, pool.sequences[slot], pool.payloads[slot])
        self._loans[slot] = loan
        return loan

    def write(self, loan: Loan, *, timestamp_ns: int | None = None) -> None:
        """Publish the loan's slot (only a small reference crosses DDS); consumes the loan."""
        if self._closed:
            self._check_open()
        if loan.__class__ is not Loan or loan._writer is not self or loan._state is not _ACTIVE:
            self._own(loan)  # raises the precise error
        refs = self._refs
        assert refs is not None
        if refs.matches.dirty:
            self._sync_readers()
        ts = time.time_ns() if timestamp_ns is None else timestamp_ns
        slot = loan.slot
        if self._by_value_readers:
            # By value first: if Cyclone refuses it (a reliable write that timed out), nothing
            # was published and the loan is still yours to write again or discard.
            self._write_by_value(slot, ts)
        seq = self._pool.publish(slot, ts)  # state and holds are in place before the reference leaves
        try:
            refs.write(slot, seq, self._size, ts)
        finally:
            loan._state = _WRITTEN  # the slot is WRITTEN either way; the loan is consumed
            del self._loans[slot]
        self._writes_bytes += self._size

    def _write_by_value(self, slot: int, ts: int) -> None:
        """Serialise the slot onto the plain topic (only while a by-value reader is matched)."""
        payload = self._pool.payload(slot)
        raw = self._raw.get(slot)
        if raw is None:
            raw = self._raw[slot] = memoryview(payload.reshape(1).view(np.uint8).data)
        data = self._value_type.encode(payload, raw)
        assert self._values is not None
        self._values.write(data, ts)
        self._by_value_writes += 1
        self._by_value_bytes += len(data)

    def discard_loan(self, loan: Loan) -> None:
        """Give a loan back without publishing it."""
        self._check_open()
        self._own(loan)
        self._pool.discard(loan.slot)
        loan._state = _DISCARDED
        del self._loans[loan.slot]

    def _own(self, loan: Loan) -> None:
        if type(loan) is not Loan:
            raise TypeError(f"expected a Loan, not {loan!r}")
        if loan._writer is not self:
            raise ValueError("this loan belongs to another DataWriter")
        if loan._state is not _ACTIVE:
            raise LoanStateError(f"this loan was already {loan._state}")

    # -- readers -----------------------------------------------------------------------

    def _sync_readers(self) -> None:
        """Give hold rows to newly matched local readers and clear those of readers gone."""
        refs = self._refs
        if refs is None or not refs.matches.dirty:
            return
        refs.matches.dirty = False  # cleared first: a change during the scan sets it again
        peers = refs.matched_readers()
        self._matched = len(peers)
        local: dict[bytes, PeerInfo] = {}
        for peer in peers:
            ad = _advert.decode_reader(peer.user_data)
            if ad is None or not _advert.maps_zero_copy(self._advert, ad):
                continue  # it reads by value (another host, user or type, or by choice)
            if self.qos.reliable and not ad.reliable:
                continue  # a best-effort reader never returns holds: it must not pin slots
            try:
                local[bytes.fromhex(ad.reader_id)] = peer
            except ValueError:
                continue
        for rid in list(self._pool.attached_readers()):
            if rid not in local:
                self._pool.release_row(rid)
        for rid in local:
            self._pool.assign_row(rid)
        self._readers = local
        before = self._by_value_readers
        self._by_value_readers = now = sum(1 for _ in self._by_value_peers())
        if self.qos.protected_slots and self._values is not None and bool(before) != bool(now):
            if now:
                self._replay_history()
            else:
                self._values.renew()  # its history went stale: nothing is serialised from now on

    def _replay_history(self) -> None:
        """Write the newest written slots by value for the first by-value reader to join.

        Transient-local durability on the by-value path: those slots are kept from reuse, so
        they are consistent; readers joining later get them from the DDS writer's history.
        """
        for slot, _seq in self._pool.newest_written(self.qos.protected_slots):
            self._write_by_value(slot, self._pool.timestamp(slot))

    def _by_value_peers(self) -> Iterator[tuple[PeerInfo, _advert.ReaderAdvert | None]]:
        """Plain-topic readers that will not map the pool (plain DDS readers always count)."""
        if self._values is None:
            return
        for peer in self._values.matched_readers():
            ad = _advert.decode_reader(peer.user_data)
            if ad is None or not _advert.maps_zero_copy(self._advert, ad):
                yield peer, ad

    def wait_for_readers(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until at least ``count`` readers are matched (and local ones attached)."""
        self._check_open()
        refs = self._refs
        assert refs is not None

        def enough() -> bool:
            self._sync_readers()
            return self._ready_readers() >= count

        return wait_until(enough, timeout)

    def _ready_readers(self) -> int:
        """Readers that will receive the next write: zero-copy ones matched on the reference
        topic, by-value ones (loanbus or plain DDS) matched on the plain topic."""
        assert self._refs is not None
        ready = set()
        for peer in self._refs.matched_readers():
            ad = _advert.decode_reader(peer.user_data)
            if ad is None:
                ready.add(peer.guid)
            elif _advert.maps_zero_copy(self._advert, ad):
                ready.add(ad.reader_id)
        ready.update(ad.reader_id if ad is not None else peer.guid for peer, ad in self._by_value_peers())
        return len(ready)

    def _describe_holders(self, exc: LoanTimeoutError) -> str:
        names = []
        for rid in exc.holders:
            peer = self._readers.get(bytes.fromhex(rid))
            ad = _advert.decode_reader(peer.user_data) if peer is not None else None
            names.append(f"{rid} (pid {ad.pid}, {peer.guid})" if ad and peer else rid)
        return (
            f"get_loan() on {self.topic.name!r} timed out: every reusable slot is held by "
            f"reader(s) {', '.join(names)}"
        )

    def matched_readers(self) -> list[ReaderMatch]:
        """Every reader matched now, and whether it reads from the pool."""
        self._check_open()
        self._refs.matches.dirty = True  # type: ignore[union-attr]
        self._sync_readers()
        assert self._refs is not None
        out = []
        by_value = {ad.reader_id: peer for peer, ad in self._by_value_peers() if ad is not None}
        for peer in self._refs.matched_readers():
            ad = _advert.decode_reader(peer.user_data)
            shm = ad is not None and bytes.fromhex(ad.reader_id) in self._readers
            path = "by-value" if ad is None or ad.reader_id in by_value else "zero-copy"
            out.append(ReaderMatch(guid=peer.guid, pid=ad.pid if ad else None, shm=shm, path=path))
        for peer, ad in self._by_value_peers():
            if ad is None:  # a plain Cyclone DDS reader: it matches only the plain topic
                out.append(ReaderMatch(guid=peer.guid, pid=None, shm=False, path="by-value"))
        return out

    # -- observability -----------------------------------------------------------------

    @property
    def segment_name(self) -> str:
        return self._pool.name

    def statistics(self) -> WriterStatistics:
        """The writer's counters and its pool's occupancy now (see ``loanbus.WriterStatistics``)."""
        pool = self._pool
        free, loaned, written, held = pool.occupancy()
        return WriterStatistics(
            **asdict(pool.stats),
            matched_readers=self._matched,
            attached_readers=len(pool.attached_readers()),
            bytes_written=self._writes_bytes,
            by_value_readers=self._by_value_readers,
            by_value_writes=self._by_value_writes,
            by_value_bytes=self._by_value_bytes,
            incompatible_qos=sum(e.qos_alarm.count for e in (self._refs, self._values) if e is not None),
            slots=pool.slot_count,
            free_slots=free,
            loaned_slots=loaned,
            written_slots=written,
            held_slots=held,
        )

    def _stats_identity(self) -> dict[str, Any]:
        """Who this writer is, for the statistics that ``loanbus top`` shows."""
        return {
            "kind": "writer",
            "id": self.guid.hex(),
            "topic": self.topic.name,
            "type": self.topic.shmem_type.name,
            "pid": os.getpid(),
            "reliable": self.qos.reliable,
            "sample_size": self._size,
            "segment": self._pool.name,
        }

    def close(self) -> None:
        """Stop publishing, invalidate outstanding loans, unlink the pool (idempotent)."""
        loans = getattr(self, "_loans", {})
        for loan in loans.values():
            loan._state = "invalidated by close()"
        loans.clear()  # a closed writer must not pin its mapping: the last user view unmaps it
        super().close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"pool {self._pool.name}"
        return f"DataWriter({self.topic.name!r}, {state})"


def _waker(pool: WriterPool) -> Any:
    """A match-change callback that wakes a blocked get_loan without keeping the writer alive."""
    ref = weakref.ref(pool)

    def wake() -> None:
        p = ref()
        if p is not None and not p.closed:
            p.wake()

    return wake
