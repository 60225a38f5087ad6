"""DataReader, LoanedSample and SampleInfo: take read-only views of a writer's pool."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Generic, NamedTuple, TypeVar, cast

import numpy as np

from loanbus import _advert, _aio, _statsfeed
from loanbus._byvalue import DecodeError
from loanbus._export import DLPackField, field_view
from loanbus._lifetime import Closeable, wait_until
from loanbus._notify import DataNotifier
from loanbus._proc import host_identity
from loanbus._transport import EndpointQos, RefMessage, RefReader, ValueMessage, ValueReader, value_type
from loanbus.errors import BrokenError, InvalidReferenceError, LoanStateError, PoolFormatError, TransportError
from loanbus.pool import ReaderPool
from loanbus.qos import Qos
from loanbus.stats import LATENCY_MASK, LatencyWindow, ReaderStatistics
from loanbus.topic import Topic, by_value_gap, check_endpoint_args

T = TypeVar("T")
log = logging.getLogger("loanbus")


class SampleInfo(NamedTuple):
    """What came with a sample: its writer's sequence number, source time and slot."""

    sequence_number: int
    source_timestamp: int
    valid: bool
    slot: int
    publication_handle: int
    reception_timestamp: int


_new_tuple = tuple.__new__  # builds a SampleInfo without the Python-level NamedTuple __new__


class LoanedSample:
    """A taken sample: ``data`` is a read-only view of the writer's shared memory.

    Use it, then ask ``reader.is_data_consistent(sample)``, then ``return_loan`` it. After
    the return, touching ``data`` raises ``LoanStateError``.
    """

    __slots__ = ("_data", "_pool", "_reader", "_returned", "info")

    def __init__(
        self, reader: DataReader[Any], pool: _PoolEntry, data: np.ndarray[Any, Any], info: SampleInfo
    ) -> None:
        self._reader = reader
        self._pool = pool
        self._data = data
        self.info = info
        self._returned = False

    @property
    def data(self) -> np.ndarray[Any, Any]:
        if self._returned:
            raise LoanStateError("this sample was already returned")
        return self._data

    @property
    def returned(self) -> bool:
        return self._returned

    def dlpack(self, field: str) -> DLPackField:
        """Field ``field`` for ``np.from_dlpack`` / ``torch.from_dlpack``: zero-copy, read-only.

        See docs/ecosystem.md. Valid like ``data``: until the sample is returned.
        """
        return DLPackField(field_view(self.data, field), field)

    def __repr__(self) -> str:
        state = "returned" if self._returned else "taken"
        return f"LoanedSample(seq={self.info.sequence_number}, slot={self.info.slot}, {state})"


class _PoolEntry:
    """A mapped writer pool plus how many of our samples still point into it."""

    __slots__ = ("outstanding", "pool", "retired", "row")

    def __init__(self, pool: ReaderPool) -> None:
        self.pool = pool
        self.outstanding = 0
        self.retired = False
        self.row: int | None = None

    def maybe_close(self) -> None:
        if self.retired and self.outstanding == 0:
            self.pool.close()


class _CopyPool:
    """Stands in for a pool behind by-value samples: a private copy is always consistent."""

    def is_consistent(self, slot: int, seq: int) -> bool:
        return True

    def release(self, slot: int, seq: int, *, wake: bool = True) -> None:
        pass

    def wake_writer(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class WriterMatch:
    """A writer matched by a reader; ``shm`` says whether its pool is mapped zero-copy."""

    guid: str
    segment: str | None
    pid: int | None
    shm: bool
    path: str = "zero-copy"  # "zero-copy" (maps the pool) or "by-value" (plain DDS topic)
    host: str | None = None  # the writer's host identity, None for a plain DDS writer


def _release_reader(
    refs: RefReader, pools: dict[int, _PoolEntry], notifier: DataNotifier, values: ValueReader | None
) -> None:
    notifier.stop()
    if notifier.inside_callback():
        # Cyclone cannot delete a reader from inside its own listener: finish on a short-lived
        # thread, which deletes it (waiting for this callback to return) and then the pools.
        threading.Thread(
            target=_release_later, args=(refs, pools, values), name="loanbus-reader-close", daemon=True
        ).start()
        return
    if values is not None:
        values.close()
    _release_pools(pools)
    refs.close()


def _release_later(refs: RefReader, pools: dict[int, _PoolEntry], values: ValueReader | None) -> None:
    refs.close()
    if values is not None:
        values.close()
    _release_pools(pools)


def _release_pools(pools: dict[int, _PoolEntry]) -> None:
    for entry in pools.values():
        entry.pool.release_all()
        entry.retired = True
        entry.pool.close()
    pools.clear()


class DataReader(Closeable, Generic[T]):
    """Takes references from DDS and hands out read-only views of the writers' pools.

    ``on_data_available(reader)`` is called from a Cyclone thread when references arrive
    (docs/ecosystem.md); ``await take_async()`` and ``async for`` serve asyncio.
    """

    _notifier: DataNotifier | None = None
    _listening = False  # the data-available listener is installed

    def __init__(
        self,
        topic: Topic[T],
        qos: Qos | None = None,
        *,
        on_data_available: Callable[[DataReader[T]], None] | None = None,
    ) -> None:
        if on_data_available is not None and not callable(on_data_available):
            raise TypeError(f"on_data_available must be callable, not {on_data_available!r}")
        self.qos = qos = check_endpoint_args(topic, qos)
        self.topic = topic
        self._stype = topic.shmem_type
        self._reliable = qos.reliable
        self.reader_id = os.urandom(16)
        self._host = host_identity()
        advert = _advert.ReaderAdvert(
            reader_id=self.reader_id.hex(),
            host=self._host,
            uid=os.getuid(),
            pid=os.getpid(),
            shm=not qos.by_value,
            reliable=qos.reliable,
            group=-1 if qos.shm_group is None else qos.shm_group,
            by_value=qos.by_value,
            type_hash=self._stype.type_hash.hex(),
        )
        self._advert = advert
        endpoint_qos = EndpointQos(
            reliable=qos.reliable,
            depth=qos.reader_depth,
            transient_local=qos.protected_slots > 0,
            max_blocking_time=qos.max_blocking_time,
            user_data=_advert.encode_reader(advert),
            name=f"loanbus reader {topic.name} (references)",
        )
        self._refs = RefReader(topic.participant.transport, topic.reference_topic_name, endpoint_qos)
        # The plain topic: samples of writers this reader cannot (or must not) map, and of
        # plain Cyclone DDS writers. Cyclone's thread drains it into _value_queue.
        self._value_queue: deque[ValueMessage] = deque(maxlen=qos.reader_depth)
        self._value_accept: dict[int, bool] = {}  # plain-topic publication handle -> keep?
        self._by_value_taken = self._by_value_dropped = self._by_value_refused = self._map_failures = 0
        self._values: ValueReader | None = None
        gap = by_value_gap(self._stype)
        if gap is not None:
            if qos.by_value:
                self._refs.close()
                raise ValueError(f"Qos(by_value=True) on {topic.name!r}: {gap}")
            log.warning("reader on %r: %s", topic.name, gap)
        try:
            if gap is None:
                self._value_type = value_type(self._stype.name, self._stype.dtype, self._stype.by_value)
                self._values = ValueReader(
                    topic.participant.transport,
                    topic.name,
                    self._value_type,
                    replace(endpoint_qos, name=f"loanbus reader {topic.name} (by value)"),
                    matches=self._refs.matches,  # one dirty flag for both topics
                    on_data=_drainer(self),
                )
        except BaseException:
            self._refs.close()
            raise
        self._copies = _PoolEntry(cast(ReaderPool, _CopyPool()))
        self._pools: dict[int, _PoolEntry] = {}
        self._unmappable: dict[int, str] = {}
        self._taken = self._returned = self._checks = self._inconsistent = self._refused = 0
        self._lost_writers = 0
        self._gone: set[int] = set()  # publication handles of writers whose pools we retired
        self._latency = LatencyWindow()
        self._lat = self._latency.values  # write->take ns, stored by _admit at taken & LATENCY_MASK
        self._notifier = notifier = DataNotifier(self, on_data_available)
        release = partial(_release_reader, self._refs, self._pools, notifier, self._values)
        self._arm(f"DataReader on {topic.name!r}", release)
        topic.participant._adopt(self)
        try:
            _statsfeed.register(self, topic.participant.transport, self._stats_identity())
        except BaseException:
            self.close()
            raise
        if on_data_available is not None:
            self._notifications()

    # -- taking ------------------------------------------------------------------------

    def take(self, max_samples: int = 16, timeout: float | None = None) -> list[LoanedSample]:
        """Up to ``max_samples`` samples; with ``timeout`` wait that long for the first one."""
        if self._closed:
            self._check_open()
        if max_samples < 1:
            raise ValueError(f"max_samples must be >= 1, not {max_samples}")
        refs = self._refs
        deadline = None
        while True:
            if refs.matches.dirty:
                self._prune_writers()
            msgs = refs.take(max_samples)
            samples = self._admit(msgs) if msgs else []
            if self._value_queue and len(samples) < max_samples:
                samples += self._take_by_value(max_samples - len(samples))
            if samples:
                return samples
            if timeout is None:
                return []
            if deadline is None:
                deadline = time.monotonic() + timeout
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            refs.wait(remaining)

    def _admit(self, msgs: list[RefMessage]) -> list[LoanedSample]:
        """Samples for the references that are valid; refused ones are logged and counted."""
        out: list[LoanedSample] = []
        pools = self._pools
        now = time.time_ns()
        sized: set[int] = set()  # pools whose size was checked in this batch (one lseek each)
        lat, at, mask = self._lat, self._taken, LATENCY_MASK
        for handle, slot, seq, size, timestamp in msgs:
            entry = pools.get(handle)
            if entry is None:
                entry = self._open_pool(handle)
                if entry is None:
                    continue
            pool = entry.pool
            try:
                pool.check(slot, seq, size, sized=handle in sized)
                sized.add(handle)
            except (InvalidReferenceError, BrokenError) as exc:
                self._refused += 1
                log.warning("refused a reference: %s", exc)
                continue
            if entry.row is None and self._reliable:
                entry.row = pool.find_row(self.reader_id)
            entry.outstanding += 1
            lat[at & mask] = now - timestamp  # write->take latency, for statistics()
            at += 1
            info = _new_tuple(SampleInfo, (seq, timestamp, True, slot, handle, now))
            out.append(LoanedSample(self, entry, pool.view(slot), info))
        self._taken += len(out)
        return out

    def _take_by_value(self, n: int) -> list[LoanedSample]:
        """Up to ``n`` queued by-value samples, decoded into private copies of the dtype."""
        queue, refs = self._value_queue, self._refs
        refs.wake(False)  # reset before popping: an arrival after this sets it again
        out: list[LoanedSample] = []
        while queue and len(out) < n:
            msg = queue.popleft()
            try:
                data = self._value_type.decode(msg.data)
            except DecodeError as exc:
                self._by_value_refused += 1
                log.warning("refused a by-value sample on %r: %s", self.topic.name, exc)
                continue
            data.flags.writeable = False
            now = time.time_ns()
            info = SampleInfo(0, msg.timestamp_ns, True, -1, msg.publication, now)
            self._lat[(self._taken + len(out)) & LATENCY_MASK] = now - msg.timestamp_ns
            self._copies.outstanding += 1
            out.append(LoanedSample(self, self._copies, data, info))
        if queue:
            refs.wake(True)
        self._taken += len(out)
        self._by_value_taken += len(out)
        return out

    def _drain_values(self) -> None:
        """On Cyclone's thread: queue by-value samples; drop copies of what we map zero-copy."""
        values = self._values
        if values is None or self._closed:
            return
        try:
            while msgs := values.take():
                for msg in msgs:
                    if self._keeps(msg.publication):
                        self._value_queue.append(msg)
                    else:
                        self._by_value_dropped += 1
        except TransportError:
            return  # closed under us
        if self._value_queue:
            self._refs.wake(True)
            if self._listening and self._notifier is not None:
                self._notifier.on_data()  # async waiters and on_data_available hear copies too

    def _keeps(self, handle: int) -> bool:
        """Whether by-value samples of this plain-topic writer are ours (it is not mapped)."""
        keep = self._value_accept.get(handle)
        if keep is None:
            assert self._values is not None
            peer = self._values.writer_info(handle)
            advert = _advert.decode_writer(peer.user_data) if peer is not None else None
            keep = advert is None or not _advert.maps_zero_copy(advert, self._advert)
            self._value_accept[handle] = keep
        return keep

    def _open_pool(self, handle: int) -> _PoolEntry | None:
        """Map the pool of a newly seen writer; remember writers whose pool we cannot map."""
        if handle in self._unmappable or handle in self._gone:
            return None  # a late reference from a writer already gone is dropped
        peer = self._refs.writer_info(handle)
        advert = _advert.decode_writer(peer.user_data) if peer is not None else None
        reason = None
        if advert is None:
            reason = "the writer does not advertise a loanbus pool"
        elif not _advert.maps_zero_copy(advert, self._advert):
            # Not ours to map (another host, user, type, or by value asked): its samples
            # arrive on the plain topic. The writer applies the same rule.
            self._unmappable[handle] = "by value"
            log.debug("writer %x of %r is read by value", handle, self.topic.name)
            return None
        else:
            try:
                pool = ReaderPool(
                    advert.segment,
                    self._stype,
                    writer_guid=bytes.fromhex(advert.writer_guid),
                    trusted_group=self.qos.shm_group,
                )
            except (PoolFormatError, ValueError) as exc:
                reason = str(exc)
            else:
                entry = _PoolEntry(pool)
                self._pools[handle] = entry
                return entry
        self._unmappable[handle] = reason
        if advert is not None:
            # The writer counts on us mapping it and sends nothing by value: an error.
            self._map_failures += 1
            log.error("cannot map the pool of writer %x on %r: %s", handle, self.topic.name, reason)
        else:
            log.warning("cannot map the pool of writer %x on %r: %s", handle, self.topic.name, reason)
        return None

    def _prune_writers(self) -> None:
        """Retire the pools of writers that are no longer matched (closed or dead)."""
        self._refs.matches.dirty = False
        alive = {peer.handle for peer in self._refs.matched_writers()}
        for handle in [h for h in self._pools if h not in alive]:
            entry = self._pools.pop(handle)
            self._gone.add(handle)
            entry.retired = True
            entry.maybe_close()
            self._lost_writers += 1
            log.info(
                "writer %x of %r is gone (closed or dead); its pool is released", handle, self.topic.name
            )
        for handle in [h for h in self._unmappable if h not in alive]:
            del self._unmappable[handle]
        if self._values is not None and self._value_accept:
            value_alive = {peer.handle for peer in self._values.matched_writers()}
            for handle in [h for h in self._value_accept if h not in value_alive]:
                self._value_accept.pop(handle, None)

    # -- returning ---------------------------------------------------------------------

    def is_data_consistent(self, sample: LoanedSample) -> bool:
        """True iff the writer has not reused the sample's slot since it was written.

        Ask *after* using the data: a True answer covers every byte read before it.
        """
        if sample._returned:
            raise LoanStateError("this sample was already returned")
        self._checks += 1
        ok = sample._pool.pool.is_consistent(sample.info.slot, sample.info.sequence_number)
        if not ok:
            self._inconsistent += 1
        return ok

    def return_loan(self, samples: LoanedSample | Iterable[LoanedSample]) -> None:
        """Give taken samples back; in reliable mode this lets the writer reuse their slots."""
        if self._closed:
            self._check_open()
        batch: Sequence[LoanedSample]
        if isinstance(samples, LoanedSample):
            batch = (samples,)
        elif isinstance(samples, list):
            batch = samples
        else:
            batch = tuple(samples)
        for sample in batch:  # check every sample before returning any
            if sample.__class__ is not LoanedSample or sample._reader is not self or sample._returned:
                self._refuse_return(sample)
        reliable = self._reliable
        woken = None
        for sample in batch:
            sample._returned = True
            entry = sample._pool
            entry.outstanding -= 1
            if reliable:
                info = sample.info
                entry.pool.release(info.slot, info.sequence_number, wake=False)
                if entry is not woken:
                    if woken is not None:
                        woken.pool.wake_writer()  # a batch from several writers: one post each
                    woken = entry
            if entry.retired:
                entry.maybe_close()
        if woken is not None:
            woken.pool.wake_writer()  # one post per batch, after every hold is cleared
        self._returned += len(batch)

    def _refuse_return(self, sample: object) -> None:
        """Raise the error that says why ``sample`` cannot be returned to this reader."""
        if type(sample) is not LoanedSample:
            raise TypeError(f"expected LoanedSample, not {sample!r}")
        if sample._reader is not self:
            raise ValueError("this sample was taken by another DataReader")
        raise LoanStateError("this sample was already returned")

    # -- push and asyncio (docs/ecosystem.md) ------------------------------------------

    def _notifications(self) -> DataNotifier:
        """The reader's notifier, its data-available listener installed on first use."""
        self._check_open()
        notifier = self._notifier
        assert notifier is not None
        if not self._listening:
            self._refs.set_data_listener(notifier.on_data)
            self._listening = True
        return notifier

    async def take_async(self, max_samples: int = 16, timeout: float | None = None) -> list[LoanedSample]:
        """Like ``take`` but awaits the first sample: up to ``timeout`` s, or without limit if None.

        ``[]`` when the timeout passes; ``ClosedError`` if the reader is closed meanwhile. The
        caller owns the samples and returns them with ``return_loan``.
        """
        return await _aio.take_async(self, max_samples, timeout)

    def __aiter__(self) -> _aio.SampleStream:
        """``async for sample in reader``: each sample is returned when the next is asked for."""
        self._check_open()
        return _aio.SampleStream(self)

    def close(self) -> None:
        """Stop callbacks (waiting for one in progress), wake async waiters, release everything."""
        notifier = self._notifier
        if notifier is not None:
            notifier.stop()  # first: a callback in progress still sees an open reader
        super().close()

    # -- observability -----------------------------------------------------------------

    def wait_for_writers(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until at least ``count`` writers are matched on the path that will carry them."""
        self._check_open()
        return wait_until(lambda: len(self._ready_writers()) >= count, timeout)

    def _ready_writers(self) -> list[WriterMatch]:
        """Matched writers whose samples can reach us now (by-value ones: on the plain topic)."""
        return [m for m, on_plain in self._writer_matches() if m.path == "zero-copy" or on_plain]

    def matched_writers(self) -> list[WriterMatch]:
        """Every writer matched now and the path its samples take: "zero-copy" or "by-value".

        A loanbus writer is listed once (by its reference-topic GUID); a plain Cyclone DDS
        writer appears with ``segment=None``, ``host=None`` and path "by-value".
        """
        self._check_open()
        return [m for m, _ in self._writer_matches()]

    def _match(self, guid: str, handle: int, ad: _advert.WriterAdvert | None) -> WriterMatch:
        zero_copy = ad is not None and _advert.maps_zero_copy(ad, self._advert)
        return WriterMatch(
            guid=guid,
            segment=ad.segment if ad else None,
            pid=ad.pid if ad else None,
            shm=zero_copy and handle not in self._unmappable,
            path="zero-copy" if zero_copy else "by-value",
            host=ad.host if ad else None,
        )

    def _writer_matches(self) -> list[tuple[WriterMatch, bool]]:
        """(match, whether it is matched on the plain topic) for every matched writer.

        A loanbus writer has two DDS writers, one per topic; both carry its advert, whose
        ``writer_guid`` pairs them up."""
        plain: dict[str, tuple[int, _advert.WriterAdvert | None]] = {}
        if self._values is not None:
            for peer in self._values.matched_writers():
                ad = _advert.decode_writer(peer.user_data)
                plain.setdefault(ad.writer_guid if ad else peer.guid, (peer.handle, ad))
        out = []
        for peer in self._refs.matched_writers():
            ad = _advert.decode_writer(peer.user_data)
            # A reference writer without a loanbus advert has no plain twin to wait for.
            on_plain = ad is None or plain.pop(ad.writer_guid, None) is not None
            out.append((self._match(peer.guid, peer.handle, ad), on_plain))
        for key, (handle, ad) in plain.items():  # plain DDS writers, or loanbus ones seen only there
            out.append((self._match(key, handle, ad), True))
        return out

    def statistics(self) -> ReaderStatistics:
        """The reader's counters and recent write->take latency (see ``loanbus.ReaderStatistics``)."""
        taken = self._taken
        return ReaderStatistics(
            taken=taken,
            returned=self._returned,
            consistency_checks=self._checks,
            inconsistent=self._inconsistent,
            refused_references=self._refused,
            unmappable_writers=len(self._unmappable),
            mapped_pools=len(self._pools),
            lost_writers=self._lost_writers,
            by_value_taken=self._by_value_taken,
            by_value_dropped=self._by_value_dropped,
            by_value_refused=self._by_value_refused,
            map_failures=self._map_failures,
            incompatible_qos=self._refs.qos_alarm.count
            + (self._values.qos_alarm.count if self._values else 0),
            bytes_taken=(taken - self._by_value_taken) * self._stype.itemsize,
            **self._latency.summary(taken),
        )

    def _stats_identity(self) -> dict[str, Any]:
        """Who this reader is, for the statistics that ``loanbus top`` shows."""
        return {
            "kind": "reader",
            "id": self.reader_id.hex(),
            "topic": self.topic.name,
            "type": self._stype.name,
            "pid": os.getpid(),
            "reliable": self._reliable,
            "sample_size": self._stype.itemsize,
        }

    def __repr__(self) -> str:
        return f"DataReader({self.topic.name!r}{', closed' if self.closed else ''})"


def _drainer(reader: DataReader[Any]) -> Callable[[], None]:
    """The plain topic's data-available callback, without keeping the reader alive."""
    ref = weakref.ref(reader)

    def drain() -> None:
        r = ref()
        if r is not None:
            r._drain_values()

    return drain
