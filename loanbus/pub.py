"""DataWriter and Loan: fill a sample in place in shared memory, then publish a reference."""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any, Generic, TypeVar

import numpy as np

from loanbus import _advert, _statsfeed
from loanbus._args import check_seconds
from loanbus._export import DLPackField, field_view
from loanbus._layout import ABI_VERSION
from loanbus._lifetime import Closeable, wait_until
from loanbus._proc import host_identity
from loanbus._shm import SegmentError
from loanbus._sinks import Sinks
from loanbus._spin import spin_ns
from loanbus._transport import (
    EndpointQos,
    Link,
    PeerInfo,
    RefWriter,
    Registry,
    RegistryError,
    ValueWriter,
    value_type,
)
from loanbus.errors import LoanStateError, LoanTimeoutError, PoolFormatError
from loanbus.inspect import reap_dead
from loanbus.pool import WriterPool, segment_name, socket_path, topic_prefix
from loanbus.qos import Qos
from loanbus.stats import WriterStatistics
from loanbus.topic import Topic, by_value_gap, check_endpoint_args
from loanbus.types import ShmemType

log = logging.getLogger("loanbus")
_types_log = logging.getLogger("loanbus.types")  # two types on one topic (tools that say it silence it)

T = TypeVar("T")

_ACTIVE, _WRITTEN, _DISCARDED = "active", "written", "discarded"


def new_guid() -> bytes:
    """A fresh 16-byte writer id (it names the pool and its registration socket)."""
    return os.urandom(16)


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
    """A reader matched by a writer, and whether it maps the pool (``shm``) or not.

    ``references`` says how a zero-copy reader gets its references: ``"local"`` (through its
    inbox on this host), ``"dds"`` (the reference topic), or None for a by-value reader.
    """

    guid: str
    pid: int | None
    shm: bool
    path: str = "zero-copy"  # "zero-copy" (maps the pool), "by-value" (plain DDS topic), "incompatible"
    references: str | None = None
    incompatible: str | None = None  # why it never gets this writer's samples (another type), or None


def _release_writer(
    refs: RefWriter | None, pool: WriterPool, values: ValueWriter | None = None, sinks: Sinks | None = None
) -> None:
    if sinks is not None:
        sinks.close()
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

    Readers on this host get references through the local path (their inbox); readers that
    asked for the DDS path, and programs that read the reference topic, through Cyclone DDS,
    which the writer uses only while such a reader is matched.
    """

    _sinks: Sinks | None = None

    def __init__(self, topic: Topic[T], qos: Qos | None = None) -> None:
        self.qos = qos = check_endpoint_args(topic, qos)
        self.topic = topic
        participant = topic.participant
        stype = topic.shmem_type
        self._spin_ns = spin_ns()  # a get_loan that waits for a returned slot looks this long first
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
        self._sinks = sinks = self._sinks_of(pool, stype, qos)
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
                participant.transport, topic.reference_topic_name, endpoint_qos, on_match_change=sinks.wake
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
            _release_writer(self._refs, pool, self._values, sinks)
            raise
        self._arm(
            f"DataWriter on {topic.name!r}", partial(_release_writer, self._refs, pool, self._values, sinks)
        )
        self._loans: dict[int, Loan] = {}  # slot -> the loan out on it
        self._readers: dict[bytes, Link] = {}  # attached zero-copy readers
        self._incompatible: dict[str, str] = {}  # DDS guid -> why that reader never gets samples
        self._matched = 0
        self._size = pool.layout.sample_size
        self._writes_bytes = 0
        self._by_value_readers = 0  # write() serialises by value only while this is non-zero
        self._by_value_writes = self._by_value_bytes = 0
        self._dds_readers = 0  # write() publishes on the reference topic only while this is non-zero
        self._dds_writes = 0
        self._receivers: list[Link] = []  # readers that get references through the local path
        self._raw: dict[int, memoryview] = {}
        participant._adopt(self)
        try:
            _statsfeed.register(self, participant.transport, self._stats_identity())
        except BaseException:
            self.close()
            raise

    def _sinks_of(self, pool: WriterPool, stype: ShmemType, qos: Qos) -> Sinks:
        """The registration socket next to the pool, and the local readers behind it."""
        try:
            registry = Registry(
                socket_path(pool.name, self.guid),
                key=pool.registration_key,
                slot_count=pool.slot_count,
                writer_uid=os.getuid(),
                group=qos.shm_group,
                sequence_fd=pool.sequence_copy.fd if pool.sequence_copy is not None else -1,
            )
        except (RegistryError, OSError) as exc:
            pool.close()
            raise PoolFormatError(f"cannot make the registration socket of pool {pool.name}: {exc}") from exc
        return Sinks(pool, registry, self.topic.name)

    def _create_pool(self, domain_id: int, stype: ShmemType, qos: Qos) -> WriterPool:
        """Create the pool under a fresh name; a name someone squats on is never adopted."""
        for _attempt in range(3):
            self.guid = new_guid()
            name = segment_name(domain_id, self.topic.name, self.guid)
            if os.path.lexists(socket_path(name, self.guid)):
                log.warning("registration socket name of %s is already taken; choosing another name", name)
                continue
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
                    raise PoolFormatError(f"cannot create pool {name}: {exc.strerror or exc}") from exc
                log.warning("pool name %s is already taken; choosing another name", name)
        raise PoolFormatError(f"could not create a pool for {self.topic.name!r}: every name tried was taken")

    # -- the loan cycle ----------------------------------------------------------------

    def get_loan(self, timeout: float | None = None) -> Loan:
        """A slot of the pool, stamped with a fresh sequence number, to fill in place.

        Reliable writers wait up to ``timeout`` seconds (default ``qos.max_blocking_time``;
        ``math.inf``: for ever) for readers to return slots, then raise ``LoanTimeoutError``
        naming the holders.
        """
        if self._closed:
            self._check_open()
        if timeout is not None:
            timeout = check_seconds(timeout, "timeout")
        pool = self._pool
        refs, sinks = self._refs, self._sinks
        if refs is not None and (
            refs.matches.dirty
            or (sinks is not None and sinks.pending and self._sinks_pending(throttle=False))
        ):
            self._sync_readers()
        slot = pool.try_acquire()  # best effort never returns None
        if slot is None:
            wait = self.qos.max_blocking_time if timeout is None else timeout
            sinks = self._sinks
            assert sinks is not None
            try:
                slot = pool.acquire(
                    wait, before_try=self._sync_readers, wait=sinks.wait, spin_ns=self._spin_ns
                )
            except LoanTimeoutError as exc:
                raise LoanTimeoutError(self._describe_holders(exc.holders), exc.holders) from None
        loan = Loan(self, slot, pool.sequences[slot], pool.payloads[slot])
        self._loans[slot] = loan
        return loan

    def write(self, loan: Loan, *, timestamp_ns: int | None = None) -> None:
        """Publish the loan's slot (only a small reference leaves this process); consumes the loan.

        Raises ``LoanTimeoutError`` when a reliable reader's inbox stayed full for
        ``max_blocking_time``: every other reader got the sample, that reader did not.
        """
        if self._closed:
            self._check_open()
        if loan.__class__ is not Loan or loan._writer is not self or loan._state is not _ACTIVE:
            self._own(loan)  # raises the precise error
        refs = self._refs
        assert refs is not None
        sinks = self._sinks
        if refs.matches.dirty or (sinks is not None and sinks.pending and self._sinks_pending()):
            self._sync_readers()
        ts = time.time_ns() if timestamp_ns is None else timestamp_ns
        slot = loan.slot
        if self._by_value_readers:
            # By value first: if Cyclone refuses it (a reliable write that timed out), nothing
            # was published and the loan is still yours to write again or discard.
            self._write_by_value(slot, ts)
        seq = self._pool.publish(slot, ts)  # state and holds are in place before the reference leaves
        stuck = None
        try:
            if self._receivers:
                assert sinks is not None
                stuck = sinks.deliver(slot, seq, self._size, ts, self.qos.max_blocking_time)
                if sinks.receivers is not self._receivers:
                    self._receivers = sinks.receivers  # a reader was lost meanwhile
            if self._dds_readers:
                refs.write(slot, seq, self._size, ts)
                self._dds_writes += 1
        finally:
            loan._state = _WRITTEN  # the slot is WRITTEN either way; the loan is consumed
            del self._loans[slot]
        self._writes_bytes += self._size
        if stuck:
            names = [f"{link.reader_id.hex()} (pid {link.pid})" for link in stuck]
            raise LoanTimeoutError(
                f"write() on {self.topic.name!r}: the inbox of reader(s) {', '.join(names)} stayed "
                f"full for {self.qos.max_blocking_time:g} s (they stopped taking); every other "
                "reader got the sample",
                [link.reader_id.hex() for link in stuck],
            )

    def _sinks_pending(self, *, throttle: bool = True) -> bool:
        """A registration or a match waits for its other half, and it is time to look again.

        ``get_loan`` looks every time at first (a registered reader's holds must count before
        a slot is reused); ``write`` at most once a millisecond."""
        sinks = self._sinks
        return sinks is not None and sinks.pending and sinks.due(eager=not throttle)

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
        """Attach newly matched and registered local readers, detach those gone, and count the
        readers that need references through DDS or samples by value."""
        refs, sinks = self._refs, self._sinks
        if refs is None or sinks is None or not (refs.matches.dirty or sinks.pending):
            return
        if not refs.matches.dirty:  # only a registration (or a reader DDS has not shown yet) waits
            sinks.sync(None)
            self._readers = dict(sinks.attached)
            self._receivers = sinks.receivers
            return
        refs.matches.dirty = False  # cleared first: a change during the scan sets it again
        peers = refs.matched_readers()
        local: dict[bytes, _advert.ReaderAdvert] = {}
        incompatible: dict[str, str] = {}
        dds = 0
        for peer in peers:
            ad = _advert.decode_reader(peer.user_data)
            if ad is None:
                dds += 1  # a plain DDS reader of the reference topic (a C program, a tool)
                continue
            mismatch = _advert.type_mismatch(self._advert, ad)
            if mismatch is not None:
                incompatible[peer.guid] = mismatch
                if peer.guid not in self._incompatible:
                    _types_log.warning("writer on %r: %s", self.topic.name, mismatch)
                continue
            if not _advert.maps_zero_copy(self._advert, ad):
                continue  # it reads by value (another host, user or type, or by choice)
            try:
                rid = bytes.fromhex(ad.reader_id)
            except ValueError:
                continue
            local[rid] = ad
            if ad.refs != "local":
                dds += 1
        self._incompatible = incompatible
        self._matched = len(peers) - len(incompatible)
        sinks.sync(local)
        self._readers = dict(sinks.attached)
        self._receivers = sinks.receivers
        before, self._dds_readers = self._dds_readers, dds
        if self.qos.protected_slots and dds and not before:
            self._replay_references()
        before = self._by_value_readers
        self._by_value_readers = now = sum(1 for _ in self._by_value_peers())
        if self.qos.protected_slots and self._values is not None and bool(before) != bool(now):
            if now:
                self._replay_history()
            else:
                self._values.renew()  # its history went stale: nothing is serialised from now on

    def _replay_references(self) -> None:
        """The first reader on the DDS path arrived: the reference topic's history is stale (no
        reference was written there meanwhile), so start it afresh with the newest slots."""
        refs = self._refs
        assert refs is not None
        refs.renew()
        for slot, seq in self._pool.newest_written(self.qos.protected_slots):
            refs.write(slot, seq, self._size, self._pool.timestamp(slot))

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
        timeout = check_seconds(timeout, "timeout")
        refs = self._refs
        assert refs is not None

        def enough() -> bool:
            if self._sinks is not None:
                self._sinks.pending = True  # look at the registration socket in any case
            self._sync_readers()
            return self._ready_readers() >= count

        if wait_until(enough, timeout):
            return True
        for why in set(self._incompatible.values()):
            log.warning("writer on %r gave up waiting for %d reader(s): %s", self.topic.name, count, why)
        return False

    def _ready_readers(self) -> int:
        """Readers that will receive the next write: zero-copy ones matched on the reference
        topic and attached to the pool, by-value ones (loanbus or plain DDS) matched on the
        plain topic, and plain readers of the reference topic."""
        assert self._refs is not None
        ready = set()
        for peer in self._refs.matched_readers():
            ad = _advert.decode_reader(peer.user_data)
            if ad is None:
                ready.add(peer.guid)
            elif _advert.maps_zero_copy(self._advert, ad) and bytes.fromhex(ad.reader_id) in self._readers:
                ready.add(ad.reader_id)
        ready.update(ad.reader_id if ad is not None else peer.guid for peer, ad in self._by_value_peers())
        return len(ready)

    def _describe_holders(self, holders: tuple[str, ...]) -> str:
        names = []
        for rid in holders:
            link = self._readers.get(bytes.fromhex(rid))
            names.append(f"{rid} (pid {link.pid})" if link is not None else rid)
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
            link = self._readers.get(bytes.fromhex(ad.reader_id)) if ad is not None else None
            if peer.guid in self._incompatible:
                why = self._incompatible[peer.guid]
                out.append(ReaderMatch(peer.guid, ad.pid if ad else None, False, "incompatible", None, why))
                continue
            if ad is None:  # a plain reader of the reference topic: DDS references, no pool rows
                path, references = "zero-copy", "dds"
            elif ad.reader_id in by_value or not _advert.maps_zero_copy(self._advert, ad):
                path, references = "by-value", None
            else:
                path, references = "zero-copy", "dds" if ad.refs != "local" else "local"
            out.append(
                ReaderMatch(
                    guid=peer.guid,
                    pid=ad.pid if ad else None,
                    shm=link is not None,
                    path=path,
                    references=references,
                )
            )
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
        sinks = self._sinks
        counters = sinks.counters if sinks is not None else None
        return WriterStatistics(
            **asdict(pool.stats),
            matched_readers=self._matched,
            attached_readers=len(pool.attached_readers()),
            bytes_written=self._writes_bytes,
            by_value_readers=self._by_value_readers,
            by_value_writes=self._by_value_writes,
            by_value_bytes=self._by_value_bytes,
            incompatible_qos=sum(e.qos_alarm.count for e in (self._refs, self._values) if e is not None),
            incompatible_readers=len(self._incompatible),
            slots=pool.slot_count,
            free_slots=free,
            loaned_slots=loaned,
            written_slots=written,
            held_slots=held,
            local_readers=len(self._receivers),
            dds_reference_readers=self._dds_readers,
            dds_reference_writes=self._dds_writes,
            dropped_references=counters.dropped_references if counters else 0,
            lost_readers=counters.lost_readers if counters else 0,
            refused_registrations=counters.refused_registrations if counters else 0,
            unattached_readers=counters.unattached_readers if counters else 0,
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
