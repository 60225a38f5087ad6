"""DataReader: take read-only views of writers' pools; SampleInfo and LoanedSample come with it."""

from __future__ import annotations

import logging
import os
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Generic, TypeVar

from loanbus import _advert, _aio, _statsfeed
from loanbus._args import check_seconds
from loanbus._byvalue import DecodeError
from loanbus._lifetime import Closeable, wait_until
from loanbus._notify import DataNotifier, unwatch, watch
from loanbus._proc import host_identity
from loanbus._sources import CopySource, Source, Sources
from loanbus._spin import spin_ns
from loanbus._transport import EndpointQos, Inbox, Record, RefReader, ValueMessage, ValueReader, value_type
from loanbus.errors import LoanStateError, TransportError
from loanbus.qos import Qos
from loanbus.sample import LoanedSample, SampleInfo, new_info
from loanbus.stats import LATENCY_MASK, LatencyWindow, ReaderStatistics
from loanbus.topic import Topic, by_value_gap, check_endpoint_args

T = TypeVar("T")
log = logging.getLogger("loanbus")

__all__ = ["DataReader", "LoanedSample", "SampleInfo", "WriterMatch"]


@dataclass(frozen=True)
class WriterMatch:
    """A writer matched by a reader; ``shm`` says whether its pool is mapped zero-copy.

    ``references`` says how references of a zero-copy writer arrive: ``"local"`` (this
    reader's inbox) or ``"dds"``; None for a by-value writer. A writer of another type on the
    topic is listed with path ``"incompatible"`` and ``incompatible`` saying why.
    """

    guid: str
    segment: str | None
    pid: int | None
    shm: bool
    path: str = "zero-copy"  # "zero-copy" (maps the pool) or "by-value" (plain DDS topic)
    host: str | None = None  # the writer's host identity, None for a plain DDS writer
    references: str | None = None
    incompatible: str | None = None  # why it never reaches this reader (another type), or None


def _release_reader(
    refs: RefReader, sources: Sources, notifier: DataNotifier, values: ValueReader | None, inbox: Inbox
) -> None:
    notifier.stop()
    unwatch(inbox.fileno())
    with sources.lock:
        sources.closed = True  # Cyclone's listener registers nothing from now on
    if values is not None:
        values.close()
    refs.close()
    sources.close()
    inbox.close()


class DataReader(Closeable, Generic[T]):
    """Takes references (from its inbox, or from DDS) and hands out read-only views of pools.

    ``on_data_available(reader)`` is called on loanbus's callback thread when samples arrive
    (docs/ecosystem.md); ``await take_async()`` and ``async for`` serve asyncio.
    """

    _notifier: DataNotifier | None = None
    _inbox: Inbox | None = None
    _watched = False  # the callback thread watches the inbox (on_data_available)

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
        self._depth = qos.reader_depth
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
            refs="dds" if qos.dds_references else "local",
            type_name=self._stype.name,
        )
        self._advert = advert
        gap = by_value_gap(self._stype)
        if gap is not None and qos.by_value:
            raise ValueError(f"Qos(by_value=True) on {topic.name!r}: {gap}")
        endpoint_qos = EndpointQos(
            reliable=qos.reliable,
            depth=qos.reader_depth,
            transient_local=qos.protected_slots > 0,
            max_blocking_time=qos.max_blocking_time,
            user_data=_advert.encode_reader(advert),
            name=f"loanbus reader {topic.name} (references)",
        )
        self._inbox = inbox = Inbox(spin_ns())  # a waiting take looks this long before it sleeps
        self._read = inbox.read
        self._wait = inbox.wait
        self._queue: deque[Record] = deque()  # records read from the inbox, not handed out yet
        # Best effort keeps only the newest ``reader_depth`` references of each writer.
        self._trim = 0 if qos.reliable or qos.reader_depth is None else qos.reader_depth
        self._dds_ready = False  # references arrived through DDS (set on Cyclone's thread)
        self._value_queue: deque[ValueMessage] = deque(maxlen=qos.reader_depth)
        self._value_accept: dict[int, bool] = {}  # plain-topic publication handle -> keep?
        self._by_value_taken = self._by_value_dropped = self._by_value_refused = 0
        self._taken = self._returned = self._checks = self._inconsistent = self._refused = 0
        self._history_dropped = 0
        self._values: ValueReader | None = None
        me = weakref.ref(self)
        try:
            self._refs = RefReader(
                topic.participant.transport,
                topic.reference_topic_name,
                endpoint_qos,
                on_match_change=partial(_writers_changed, me),
                on_data=partial(_dds_arrived, me),
            )
        except BaseException:
            inbox.close()
            raise
        self._sources = Sources(
            reader_id=self.reader_id,
            stype=self._stype,
            advert=advert,
            inbox=inbox,
            writer_info=self._refs.writer_info,
            trusted_group=qos.shm_group,
            dds_refs=qos.dds_references,
            topic=topic.name,
            history=qos.protected_slots,
            replay=self._queue.extend,
        )
        if gap is not None:
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
                    on_data=partial(_values_arrived, me),
                )
        except BaseException:
            self._refs.close()
            inbox.close()
            raise
        self._copies = CopySource()
        self._latency = LatencyWindow()
        self._lat = self._latency.values  # write->take ns, stored by _admit at taken & LATENCY_MASK
        self._notifier = notifier = DataNotifier(self, on_data_available)
        release = partial(_release_reader, self._refs, self._sources, notifier, self._values, inbox)
        self._arm(f"DataReader on {topic.name!r}", release)
        topic.participant._adopt(self)
        try:
            _statsfeed.register(self, topic.participant.transport, self._stats_identity())
            self._refresh()  # writers Cyclone matched before the listener could see this reader
            if on_data_available is not None:
                watch(inbox.fileno(), notifier)
                self._watched = True
        except BaseException:
            self.close()
            raise

    # -- taking ------------------------------------------------------------------------

    def take(self, max_samples: int = 16, timeout: float | None = None) -> list[LoanedSample]:
        """Up to ``max_samples`` samples; with ``timeout`` wait that long for the first one
        (``math.inf``: until one arrives)."""
        if self._closed:
            self._check_open()
        if max_samples.__class__ is not int or max_samples < 1:
            _check_count(max_samples)
        if self._refs.matches.dirty or self._sources.retry_at:
            self._refresh()
        if timeout is None:
            return self._take_now(max_samples)
        if timeout.__class__ is not float or not 0.0 <= timeout < 1e9:
            timeout = check_seconds(timeout, "timeout")
        wait = self._wait
        deadline = None
        remaining = timeout
        while True:
            # With nothing in hand, wait on the inbox first: poll() returns at once when
            # records are there, so a take that waits costs one poll and one read.
            if self._queue or self._dds_ready or self._value_queue or wait(remaining):
                samples = self._take_now(max_samples)
                if samples:
                    return samples
            if self._closed:
                self._check_open()
            if self._refs.matches.dirty or self._sources.retry_at:
                self._refresh()
            if deadline is None:
                deadline = time.monotonic() + remaining
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                # Nothing came: a writer that went is released now (its references are taken).
                return self._take_now(max_samples) if self._sources.retiring else []

    def _take_now(self, n: int) -> list[LoanedSample]:
        """What is there now, without waiting: inbox records, DDS references, by-value copies."""
        queue = self._queue
        records = self._read()
        if queue or len(records) > n or (self._trim and len(records) > self._trim):
            queue.extend(records)
            if self._trim and len(queue) > self._trim:
                self._keep_newest(queue, self._trim)
            records = [queue.popleft() for _ in range(min(n, len(queue)))]
        out = self._admit(records, self._sources.by_index, dds=False) if records else []
        if self._dds_ready and len(out) < n:
            self._dds_ready = False  # reset before taking: an arrival after this sets it again
            refs = self._refs
            msgs = refs.take(n - len(out))
            if refs.more:  # no arrival will say so again: the next take looks at DDS too
                self._dds_ready = True
            if msgs:
                out += self._admit(msgs, self._sources.by_handle, dds=True)
        if self._value_queue and len(out) < n:
            out += self._take_by_value(n - len(out))
        if self._sources.retiring and not records and not queue and not self._dds_ready:
            self._sources.finish()  # writers gone, and everything they sent was taken
        return out

    def _keep_newest(self, queue: deque[Record], depth: int) -> None:
        """Best effort: of each writer, only the newest ``depth`` references wait (history depth)."""
        kept: list[Record] = []
        seen: dict[int, int] = {}
        for record in reversed(queue):
            count = seen.get(record[0], 0)
            if count < depth:
                seen[record[0]] = count + 1
                kept.append(record)
        dropped = len(queue) - len(kept)
        if dropped:
            self._history_dropped += dropped
            queue.clear()
            queue.extend(reversed(kept))

    def _admit(self, records: list[Record], sources: dict[int, Source], *, dds: bool) -> list[LoanedSample]:
        """Samples for the valid references of ``records``; refused ones are logged and counted,
        and their holds given back. ``sources`` maps a record's first field (an inbox index, or
        a DDS publication handle) to the writer's pool.

        Inbox records come from the pool's own writer (checked when it registered), so only
        their slot and size are checked here; a reference from DDS may come from anyone and is
        also checked against the slot's sequence number. Nothing reads a pool's words before
        its size is checked: ``is_data_consistent`` does the same."""
        out: list[LoanedSample] = []
        now = time.time_ns()
        sized = None  # the pool whose size was checked last in this batch (one lseek per pool)
        lat, at, mask = self._lat, self._taken, LATENCY_MASK
        lseek, reader = os.lseek, self
        for key, slot, seq, size, timestamp in records:
            source = sources.get(key)
            if source is None:
                source = self._unknown(key, dds)
                if source is None:
                    continue
            elif dds and (source.local or 0 < seq <= source.floor):
                continue  # a copy of what our inbox brings, or of history taken from the pool
            pool = source.pool
            if not (0 <= slot < pool.slot_count and 0 < size <= pool.sample_size and seq > 0):
                self._refuse(
                    source, slot, seq, pool.reference_error(slot, seq, size), dds and key != source.handle
                )
                continue
            if dds:
                # From any DDS writer: also checked against the slot's sequence number, in the
                # writer's sealed copy, or in the pool after a size check (a shrunk pool is
                # refused, not faulted on).
                seqs = source.seqs or source.sequences()
                if seqs is None:
                    if pool is not sized:
                        if lseek(pool.fd, 0, 2) < pool.segment_size:
                            self._refuse(source, slot, seq, pool.size_error(), dds and key != source.handle)
                            continue
                        sized = pool
                    seqs = pool.seqs
                if seq > seqs[slot]:
                    self._refuse(
                        source, slot, seq, pool.reference_error(slot, seq, size), dds and key != source.handle
                    )
                    continue
            view = pool.views[slot]
            if view is None:
                view = pool.view(slot)
            source.outstanding += 1
            lat[at & mask] = now - timestamp  # write->take latency, for statistics()
            at += 1
            info = new_info(SampleInfo, (seq, timestamp, True, slot, key if dds else source.handle, now))
            out.append(LoanedSample(reader, source, view, info))
        self._taken += len(out)
        return out

    def _unknown(self, key: int, dds: bool) -> Source | None:
        """The pool of a reference whose writer is not known: one DDS has just matched (map
        it now), one that is gone (drop its late references), or none at all (refuse)."""
        sources = self._sources
        if dds:
            if key in sources.gone or key in sources.unmappable:
                return None
            sources.add([key])
            source = sources.by_handle.get(key)
            return None if source is None or source.local else source
        if key >= sources.next_index:
            self._inbox.malformed += 1  # type: ignore[union-attr]
            log.warning("refused an inbox record of writer index %d, which was never given out", key)
        return None

    def _refuse(self, source: Source, slot: int, seq: int, exc: Exception | None, forged: bool) -> None:
        """A reference that cannot be valid: count it, and give back the hold it came with.

        ``forged``: it came from another DDS writer than the pool's own, which set no hold
        for it; a hold of that slot belongs to the genuine reference and is kept."""
        self._refused += 1
        if not forged and source.release(slot, seq):
            source.ring_if_waiting()
            log.warning("refused a reference (its hold was given back): %s", exc)
        else:
            log.warning("refused a reference: %s", exc)

    def _take_by_value(self, n: int) -> list[LoanedSample]:
        """Up to ``n`` queued by-value samples, decoded into private copies of the dtype."""
        queue = self._value_queue
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
        if self._value_queue and self._inbox is not None:
            self._inbox.wake()  # take(), async waiters and on_data_available hear copies too

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

    def _refresh(self) -> None:
        """Register with newly matched writers, retire those gone (closed or dead)."""
        self._refs.matches.dirty = False
        alive = {peer.handle for peer in self._refs.matched_writers()}
        sources = self._sources
        sources.prune(alive)
        sources.add(alive)
        if sources.retry_due:
            sources.retry()
        if self._values is not None and self._value_accept:
            value_alive = {peer.handle for peer in self._values.matched_writers()}
            for handle in [h for h in self._value_accept if h not in value_alive]:
                self._value_accept.pop(handle, None)

    # -- returning ---------------------------------------------------------------------

    def is_data_consistent(self, sample: LoanedSample) -> bool:
        """True iff the writer has not reused the sample's slot since it was written.

        Ask *after* using the data: a True answer covers every byte read before it.
        """
        if self._closed:
            self._check_open()
        if sample._returned:
            raise LoanStateError("this sample was already returned")
        self._checks += 1
        info = sample.info
        source = sample._pool
        seqs = source.seqs or source.sequences()
        if seqs is not None:  # the writer's sealed copy: nothing to check before reading it
            ok: bool = seqs[info.slot] == info.sequence_number
        else:  # the pool's own word, read only after the pool's size is checked
            ok = source.pool.is_consistent(info.slot, info.sequence_number)
        if not ok:
            self._inconsistent += 1
        return ok

    def return_loan(self, samples: LoanedSample | Iterable[LoanedSample]) -> None:
        """Give taken samples back; in reliable mode this lets the writer reuse their slots."""
        if self._closed:
            self._check_open()
        batch: Sequence[LoanedSample]
        if samples.__class__ is list:
            batch = samples
        elif samples.__class__ is LoanedSample:
            batch = (samples,)
        else:
            batch = tuple(samples)  # type: ignore[arg-type]
        for sample in batch:  # check every sample before returning any
            if sample.__class__ is not LoanedSample or sample._reader is not self or sample._returned:
                self._refuse_return(sample)
        if len(batch) > 1 and len({id(s) for s in batch}) != len(batch):
            raise LoanStateError("the same sample appears more than once in this return_loan")
        woken: Source | None = None
        for sample in batch:
            sample._returned = True
            source = sample._pool
            source.outstanding -= 1
            cells = source.cells
            if cells is not None:
                info = sample.info
                if cells[info.slot] == info.sequence_number:
                    cells[info.slot] = 0  # the writer may reuse the slot
                if source is not woken:
                    if woken is not None:
                        woken.ring_if_waiting()  # a batch from several writers: one ring each
                    woken = source
            if source.retired:
                source.maybe_close()
        if woken is not None and woken.waiting[0]:  # type: ignore[index]
            woken.ring_if_waiting()  # one ring per batch, after every hold is cleared
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
        """The reader's notifier (asyncio waiters park with it)."""
        self._check_open()
        notifier = self._notifier
        assert notifier is not None
        return notifier

    def fileno(self) -> int:
        """The one file descriptor that becomes readable when samples may be there to take.

        For event loops (``loop.add_reader``, ``select``): readable means "call take()"; take
        what is there, then wait again. ``take_async`` and ``async for`` use it for you.
        """
        self._check_open()
        assert self._inbox is not None
        return self._inbox.fileno()

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
        """Wait until at least ``count`` writers are matched on the path that will carry them
        (zero-copy ones: their pool mapped and this reader registered with them)."""
        self._check_open()
        timeout = check_seconds(timeout, "timeout")

        def enough() -> bool:
            if self._refs.matches.dirty or self._sources.retry_at:
                self._refresh()
            return len(self._ready_writers()) >= count

        if wait_until(enough, timeout):
            return True
        for why in {m.incompatible for m in self.matched_writers() if m.incompatible}:
            log.warning("reader on %r gave up waiting for %d writer(s): %s", self.topic.name, count, why)
        return False

    def _ready_writers(self) -> list[WriterMatch]:
        """Matched writers whose samples can reach us now (by-value ones: on the plain topic)."""
        return [m for m, on_plain in self._writer_matches() if m.shm or (m.path == "by-value" and on_plain)]

    def matched_writers(self) -> list[WriterMatch]:
        """Every writer matched now and the path its samples take: "zero-copy" or "by-value".

        A loanbus writer is listed once (by its reference-topic GUID); a plain Cyclone DDS
        writer appears with ``segment=None``, ``host=None`` and path "by-value".
        """
        self._check_open()
        return [m for m, _ in self._writer_matches()]

    def _match(self, guid: str, handle: int, ad: _advert.WriterAdvert | None) -> WriterMatch:
        mismatch = _advert.type_mismatch(ad, self._advert) if ad is not None else None
        zero_copy = ad is not None and mismatch is None and _advert.maps_zero_copy(ad, self._advert)
        source = self._sources.by_handle.get(handle)
        references = None
        if zero_copy:
            references = "dds" if self.qos.dds_references else "local"
        return WriterMatch(
            guid=guid,
            segment=ad.segment if ad else None,
            pid=ad.pid if ad else None,
            shm=zero_copy and source is not None,
            path="incompatible" if mismatch else "zero-copy" if zero_copy else "by-value",
            host=ad.host if ad else None,
            references=references,
            incompatible=mismatch,
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
            refused_references=self._refused + self._refs.refused,
            unmappable_writers=len(self._sources.unmappable),
            mapped_pools=len(self._sources.by_index),
            lost_writers=self._sources.lost_writers,
            by_value_taken=self._by_value_taken,
            by_value_dropped=self._by_value_dropped,
            by_value_refused=self._by_value_refused,
            map_failures=self._sources.map_failures,
            incompatible_qos=self._refs.qos_alarm.count
            + (self._values.qos_alarm.count if self._values else 0),
            bytes_taken=(taken - self._by_value_taken) * self._stype.itemsize,
            malformed_records=self._inbox.malformed if self._inbox is not None else 0,
            history_dropped=self._history_dropped,
            local_writers=sum(1 for s in list(self._sources.by_index.values()) if s.local),
            incompatible_writers=len(self._sources.incompatible),
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


def _check_count(max_samples: object) -> None:
    if not isinstance(max_samples, int) or isinstance(max_samples, bool):
        raise TypeError(f"max_samples must be an int, not {max_samples!r}")
    raise ValueError(f"max_samples must be >= 1, not {max_samples}")


# Cyclone's listener thread calls these; they hold the reader only weakly and never raise.


def _writers_changed(ref: weakref.ref[DataReader[Any]]) -> None:
    """Matched writers changed: register with new ones now, so that a writer waiting for this
    reader (maybe on this reader's own thread) sees it. Writers gone are retired by the
    reader's own thread (the match flag is set)."""
    reader = ref()
    if reader is None or reader._closed:
        return
    sources = reader.__dict__.get("_sources")
    if sources is not None:
        try:
            sources.add(peer.handle for peer in reader._refs.matched_writers())
        except Exception:  # the reader is closing under us; its own thread registers otherwise
            log.debug("registration on the listener thread failed", exc_info=True)


def _dds_arrived(ref: weakref.ref[DataReader[Any]]) -> None:
    """References arrived through DDS."""
    reader = ref()
    if reader is not None and reader._inbox is not None:
        reader._dds_ready = True
        reader._inbox.wake()


def _values_arrived(ref: weakref.ref[DataReader[Any]]) -> None:
    """By-value samples arrived on the plain topic."""
    reader = ref()
    if reader is not None:
        reader._drain_values()
