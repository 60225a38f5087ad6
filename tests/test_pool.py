"""The pool without DDS: slot choice, sequence numbers, holds, and two processes sharing it."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

import loanbus
from loanbus._transport import HoldBlock
from loanbus.pool import ReaderPool, WriterPool, segment_name
from tests.helpers import CTX, SMALL, join_ok

pytestmark = pytest.mark.portable  # .ci/run runs it on every supported Python


def _make(slots: int = 2, **kw: object) -> tuple[WriterPool, ReaderPool]:
    name = segment_name(0, "pool_test", os.urandom(16))
    writer = WriterPool(name, SMALL, slot_count=slots, reader_rows=4, writer_guid=b"w" * 16, **kw)  # type: ignore[arg-type]
    return writer, ReaderPool(name, SMALL, writer_guid=b"w" * 16)


@pytest.fixture
def pools() -> Iterator[tuple[WriterPool, ReaderPool]]:
    writer, reader = _make()
    yield writer, reader
    reader.close()
    writer.close()


def _write(pool: WriterPool, value: int) -> tuple[int, int]:
    slot = pool.try_acquire()
    assert slot is not None
    pool.payload(slot)["value"] = value
    return slot, pool.publish(slot, time.time_ns())


def test_the_reference_scenario_invalidates_the_first_sample_at_the_third_loan(
    pools: tuple[WriterPool, ReaderPool],
) -> None:
    writer, reader = pools
    slot1, seq1 = _write(writer, 10000)
    slot2, seq2 = _write(writer, 20000)
    view = reader.view(slot1)
    assert int(view["value"]) == 10000 and reader.is_consistent(slot1, seq1)
    slot3 = writer.try_acquire()
    assert slot3 == slot1  # the oldest written slot is reused
    assert not reader.is_consistent(slot1, seq1)  # invalid from get_loan on, before any write
    writer.payload(slot3)["value"] = 999
    assert int(view["value"]) == 999
    assert reader.is_consistent(slot2, seq2)


def test_sequence_numbers_start_at_one_and_never_repeat(pools: tuple[WriterPool, ReaderPool]) -> None:
    writer, _ = pools
    seqs = [_write(writer, i)[1] for i in range(50)]
    assert seqs == list(range(1, 51))


def test_get_loan_fails_at_once_when_every_slot_is_on_loan(pools: tuple[WriterPool, ReaderPool]) -> None:
    writer, _ = pools
    writer.try_acquire()
    writer.try_acquire()
    started = time.monotonic()
    with pytest.raises(loanbus.LoanError, match="every slot"):
        writer.try_acquire()
    with pytest.raises(loanbus.LoanError):
        writer.acquire(5.0)
    assert time.monotonic() - started < 4.0  # exhaustion never waits for max_blocking_time


def test_discard_frees_the_slot_without_publishing(pools: tuple[WriterPool, ReaderPool]) -> None:
    writer, _ = pools
    a = writer.try_acquire()
    b = writer.try_acquire()
    assert a is not None and b is not None
    writer.discard(a)
    assert writer.try_acquire() == a
    assert writer.stats.discards == 1 and writer.stats.writes == 0


def test_reader_views_are_read_only(pools: tuple[WriterPool, ReaderPool]) -> None:
    writer, reader = pools
    slot, _ = _write(writer, 5)
    with pytest.raises(ValueError, match="read-only"):
        reader.view(slot)["value"] = 6
    assert int(writer.payload(slot)["value"]) == 5


def test_a_reference_outside_the_pool_is_refused(pools: tuple[WriterPool, ReaderPool]) -> None:
    writer, reader = pools
    slot, seq = _write(writer, 1)
    for bad_slot in (-1, 2, 2**63):
        with pytest.raises(loanbus.InvalidReferenceError, match="outside"):
            reader.check_reference(bad_slot, seq, SMALL.itemsize)
    with pytest.raises(loanbus.InvalidReferenceError, match="never issued"):
        reader.check_reference(slot, seq + 5, SMALL.itemsize)
    with pytest.raises(loanbus.InvalidReferenceError, match="size"):
        reader.check_reference(slot, seq, SMALL.itemsize + 1)
    reader.check_reference(slot, seq, SMALL.itemsize)


def test_reliable_pool_waits_for_a_held_slot_and_names_the_holder() -> None:
    writer, reader = _make(reliable=True)
    holds = HoldBlock.create(writer.slot_count)  # what a reader registers with (no DDS here)
    try:
        rid = b"r" * 16
        assert writer.attach_reader(rid, cells=holds.cells, waiting=holds.waiting) == 0
        slot1, seq1 = _write(writer, 1)
        slot2, seq2 = _write(writer, 2)
        assert (holds.cells[slot1], holds.cells[slot2]) == (seq1, seq2)  # set before publishing
        with pytest.raises(loanbus.LoanTimeoutError) as info:
            writer.acquire(0.2)
        assert info.value.holders == (rid.hex(),)
        assert rid.hex() in str(info.value)
        assert holds.waiting[0] == 0  # the writer says it waits only while it waits

        waiting_seen: list[int] = []

        def give_back() -> None:  # a reader returning the sample, from another thread
            waiting_seen.append(holds.waiting[0])
            holds.cells[slot1] = 0

        threading.Timer(0.2, give_back).start()
        started = time.monotonic()
        assert writer.acquire(30.0) == slot1
        assert time.monotonic() - started < 20.0
        assert waiting_seen == [1]  # the reader would have rung the writer
    finally:
        writer.close()
        holds.close()
        reader.close()


def test_releasing_a_gone_readers_row_frees_its_slots() -> None:
    writer, reader = _make(reliable=True)
    holds = HoldBlock.create(writer.slot_count)
    try:
        writer.attach_reader(b"r" * 16, cells=holds.cells, waiting=holds.waiting)
        _write(writer, 1)
        _write(writer, 2)
        assert writer.try_acquire() is None
        writer.release_row(b"r" * 16)
        assert writer.try_acquire() is not None
    finally:
        reader.close()
        writer.close()
        holds.close()


def test_a_best_effort_pool_never_waits_for_holds() -> None:
    writer, reader = _make(reliable=False)
    holds = HoldBlock.create(writer.slot_count)
    try:
        writer.attach_reader(b"r" * 16, cells=holds.cells, waiting=holds.waiting)
        _write(writer, 1)
        _write(writer, 2)
        assert list(holds.cells) == [0, 0]  # no hold is ever set ...
        assert writer.try_acquire() is not None  # ... and the oldest slot is reused at once
    finally:
        reader.close()
        writer.close()
        holds.close()


def test_history_keeps_the_newest_written_slots_from_reuse() -> None:
    writer, reader = _make(slots=3, protected_slots=2)
    try:
        written = [_write(writer, i) for i in range(3)]
        # 3 written, 2 protected: only the oldest may be reused, again and again.
        for _ in range(3):
            slot = writer.try_acquire()
            assert slot is not None
            newest = writer.newest_written(2)
            assert slot not in [s for s, _ in newest]
            writer.publish(slot, 0)
        assert len(written) == 3
    finally:
        reader.close()
        writer.close()


def test_a_closed_pool_leaves_nothing_in_dev_shm(shm_prefix: str) -> None:
    writer, reader = _make()
    names = [n for n in os.listdir("/dev/shm") if shm_prefix in n]
    assert len(names) == 1  # the segment (DataWriter adds its registration socket)
    reader.close()
    writer.close()
    writer.close()
    assert not [n for n in os.listdir("/dev/shm") if shm_prefix in n]


def _reader_process(name: str, refs: list[tuple[int, int, int]], out: object) -> None:
    pool = ReaderPool(name, SMALL, writer_guid=b"w" * 16)
    try:
        results = []
        for slot, seq, value in refs:
            view = pool.view(slot)
            results.append((int(view["value"]) == value, pool.is_consistent(slot, seq)))
        out.put(results)  # type: ignore[attr-defined]
    finally:
        pool.close()


def test_a_pool_is_shared_with_another_process_without_dds() -> None:
    name = segment_name(0, "two_procs", os.urandom(16))
    writer = WriterPool(name, SMALL, slot_count=4, reader_rows=2, writer_guid=b"w" * 16)
    try:
        refs = []
        for value in (11, 22, 33):
            slot, seq = _write(writer, value)
            refs.append((slot, seq, value))
        stale_slot = refs[0][0]
        writer.try_acquire()  # free slot 3
        reused = writer.try_acquire()  # reuses the oldest: the first written
        assert reused == stale_slot
        out = CTX.Queue()
        proc = CTX.Process(target=_reader_process, args=(name, refs, out), daemon=True)
        proc.start()
        results = out.get(timeout=60)
        join_ok(proc)
        assert results[0][1] is False  # the reused slot is reported inconsistent
        assert results[1] == (True, True) and results[2] == (True, True)
    finally:
        writer.close()


class PoolModel(RuleBasedStateMachine):
    """The pool against a model: sequence numbers, reuse order and consistency agree."""

    samples = Bundle("samples")

    def __init__(self) -> None:
        super().__init__()
        self.writer, self.reader = _make(slots=3)
        self.loaned: list[int] = []
        self.written: list[int] = []  # oldest first
        self.slot_seq: dict[int, int] = {}

    def teardown(self) -> None:
        self.reader.close()
        self.writer.close()

    @rule()
    def loan(self) -> None:
        free = [s for s in range(3) if s not in self.loaned and s not in self.written]
        if not free and not self.written:
            with pytest.raises(loanbus.LoanError):
                self.writer.try_acquire()
            return
        slot = self.writer.try_acquire()
        assert slot is not None
        if free:
            assert slot in free
        else:
            assert slot == self.written.pop(0)
        self.loaned.append(slot)
        self.slot_seq[slot] = self.writer.slot_sequence(slot)

    @precondition(lambda self: self.loaned)
    @rule(data=st.data())
    def write(self, data: st.DataObject) -> None:
        slot = data.draw(st.sampled_from(self.loaned))
        self.loaned.remove(slot)
        self.written.append(slot)
        assert self.writer.publish(slot, 0) == self.slot_seq[slot]

    @precondition(lambda self: self.loaned)
    @rule(data=st.data())
    def discard(self, data: st.DataObject) -> None:
        slot = data.draw(st.sampled_from(self.loaned))
        self.loaned.remove(slot)
        self.writer.discard(slot)

    @precondition(lambda self: self.written)
    @rule(target=samples)
    def take_newest(self) -> tuple[int, int]:
        slot = self.written[-1]
        return slot, self.slot_seq[slot]

    @rule(sample=samples)
    def consistency_matches_the_model(self, sample: tuple[int, int]) -> None:
        slot, seq = sample
        assert self.reader.is_consistent(slot, seq) == (self.slot_seq[slot] == seq)

    @invariant()
    def sequence_numbers_are_unique(self) -> None:
        seqs = list(self.slot_seq.values())
        assert len(seqs) == len(set(seqs))


TestPoolModel = PoolModel.TestCase
TestPoolModel.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


def test_numpy_views_keep_a_closed_pool_mapped() -> None:
    writer, reader = _make()
    slot, _ = _write(writer, 77)
    view = reader.view(slot)
    wview = writer.payload(slot)
    reader.close()
    writer.close()
    # The mapping outlives close() while views exist: reading must not crash.
    assert int(view["value"]) == 77 and int(wview["value"]) == 77
    assert np.asarray(view["blob"]).sum() == 0
