"""Writers and readers in separate processes: real Cyclone DDS, real shared memory.

Each behaviour is tested on both reference paths: readers take references from their
inbox (the local path, the default) or through Cyclone DDS (``Qos(dds_references=True)``).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

import loanbus
from tests.helpers import CTX, FRAME, SMALL, fill_value, join_ok, start

pytestmark = pytest.mark.portable  # .ci/run runs it on every supported Python

RELIABLE = loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, max_samples=4, max_blocking_time=10.0)
PATHS = pytest.mark.parametrize("dds", [False, True], ids=["local path", "DDS path"])


def _reading(qos: loanbus.Qos, dds: bool) -> loanbus.Qos:
    """A reader's QoS on the path under test."""
    return replace(qos, dds_references=dds)


def _frame_writer(domain_id: int, count: int, ready: Any, done: Any) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "frames", FRAME), qos=RELIABLE)
        assert writer.wait_for_readers(1, timeout=30)
        ready.wait(30)
        for _ in range(count):
            loan = writer.get_loan()
            loan.data["seq"] = loan.sequence_number
            loan.data["pixels"].fill(fill_value(loan.sequence_number))
            writer.write(loan)
        done.wait(120)  # stay until the reader has everything


@PATHS
def test_1000_frames_of_6_mb_cross_processes_and_every_byte_is_checked(domain_id: int, dds: bool) -> None:
    count = 1000
    ready, done = CTX.Event(), CTX.Event()
    proc = start(_frame_writer, domain_id, count, ready, done)
    try:
        with loanbus.DomainParticipant(domain_id=domain_id) as dp:
            reader = loanbus.DataReader(loanbus.Topic(dp, "frames", FRAME), qos=_reading(RELIABLE, dds))
            assert reader.wait_for_writers(1, timeout=30)
            ready.set()
            seen = []
            deadline = time.monotonic() + 120
            while len(seen) < count and time.monotonic() < deadline:
                for s in reader.take(max_samples=8, timeout=1.0):
                    pixels = s.data["pixels"]
                    seq = int(s.data["seq"])
                    ok = seq == s.info.sequence_number and not np.any(pixels != fill_value(seq))
                    assert reader.is_data_consistent(s)  # reliable: the writer never reused it
                    assert ok, f"sample {seq} is torn or wrong"
                    assert pixels.size == 1080 * 1920 * 3
                    seen.append(seq)
                    reader.return_loan(s)
            assert seen == list(range(1, count + 1))
    finally:
        done.set()
        join_ok(proc)


def _holding_reader(domain_id: int, out: Any, release: Any, lease: float | None, dds: bool) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id, lease_duration=lease) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, "hold", SMALL), qos=_reading(RELIABLE, dds))
        assert reader.wait_for_writers(1, timeout=30)
        out.put(("id", reader.reader_id.hex()))
        held: list[Any] = []
        while len(held) < 5:
            held += reader.take(timeout=1.0)
        out.put(("held", len(held)))
        release.wait(60)
        reader.return_loan(held)
        out.put(("returned", len(held)))
        time.sleep(0.5)


def _reliable_writer(dp: loanbus.DomainParticipant) -> loanbus.DataWriter[Any]:
    writer = loanbus.DataWriter(loanbus.Topic(dp, "hold", SMALL), qos=RELIABLE)
    assert writer.wait_for_readers(1, timeout=30)
    for value in range(5):  # fill every slot: max_samples=4 -> 5 slots
        loan = writer.get_loan()
        loan.data["value"] = value
        writer.write(loan)
    return writer


@PATHS
def test_a_held_sample_blocks_a_reliable_writer_until_another_process_returns_it(
    domain_id: int, dds: bool
) -> None:
    out, release = CTX.Queue(), CTX.Event()
    proc = start(_holding_reader, domain_id, out, release, None, dds)
    try:
        with loanbus.DomainParticipant(domain_id=domain_id) as dp:
            writer = _reliable_writer(dp)
            assert out.get(timeout=30)[0] == "id"
            assert out.get(timeout=30) == ("held", 5)
            started = time.monotonic()
            with pytest.raises(loanbus.LoanTimeoutError) as info:
                writer.get_loan(timeout=0.5)
            assert time.monotonic() - started >= 0.45
            assert len(info.value.holders) == 1 and info.value.holders[0] in str(info.value)
            assert "pid" in str(info.value)
            release.set()
            started = time.monotonic()
            loan = writer.get_loan(timeout=60)  # unblocked by the other process's return
            waited = time.monotonic() - started
            assert out.get(timeout=30) == ("returned", 5)
            assert waited < 30
            writer.discard_loan(loan)
            assert writer.statistics().blocked_loans >= 1
    finally:
        release.set()
        join_ok(proc)


@PATHS
def test_killing_a_reader_that_holds_loans_gives_the_writer_every_slot_back(
    domain_id: int, dds: bool
) -> None:
    out, release = CTX.Queue(), CTX.Event()
    proc = start(_holding_reader, domain_id, out, release, 1.0, dds)
    try:
        with loanbus.DomainParticipant(domain_id=domain_id) as dp:
            writer = _reliable_writer(dp)
            out.get(timeout=30)
            assert out.get(timeout=30) == ("held", 5)
            with pytest.raises(loanbus.LoanTimeoutError):
                writer.get_loan(timeout=0.2)
            os.kill(proc.pid or 0, signal.SIGKILL)
            proc.join(10)
            started = time.monotonic()
            loans = [writer.get_loan(timeout=30)]  # released when the lease (1 s) expires
            elapsed = time.monotonic() - started
            loans += [writer.get_loan(timeout=0) for _ in range(4)]
            assert len({loan.slot for loan in loans}) == 5  # every slot is back
            assert elapsed < 15, f"slots came back only after {elapsed:.1f} s"
            assert writer.statistics().attached_readers == 0
            for loan in loans:
                writer.discard_loan(loan)
    finally:
        if proc.is_alive():
            proc.kill()


def _many_writer(domain_id: int, index: int, count: int, go: Any, finished: Any) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "many", SMALL), qos=RELIABLE)
        assert writer.wait_for_readers(3, timeout=60)
        go.wait(60)
        for _ in range(count):
            loan = writer.get_loan(timeout=30)
            loan.data["seq"] = loan.sequence_number
            loan.data["value"] = index
            loan.data["blob"].fill(fill_value(loan.sequence_number + 1000 * index))
            writer.write(loan)
        finished.wait(120)  # stay alive until every reader has everything


def _many_reader(domain_id: int, expected: int, out: Any, dds: bool) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, "many", SMALL), qos=_reading(RELIABLE, dds))
        assert reader.wait_for_writers(2, timeout=60)
        out.put("ready")
        got: set[tuple[int, int]] = set()
        torn = 0
        deadline = time.monotonic() + 120
        while len(got) < expected and time.monotonic() < deadline:
            for s in reader.take(timeout=1.0):
                seq, index = int(s.data["seq"]), int(s.data["value"])
                blob = s.data["blob"]
                good = not np.any(blob != fill_value(seq + 1000 * index))
                if not (good and reader.is_data_consistent(s)):
                    torn += 1
                got.add((index, seq))
                reader.return_loan(s)
        out.put((len(got), torn))


@PATHS
def test_two_writers_and_three_readers_deliver_everything_to_everyone_untorn(
    domain_id: int, dds: bool
) -> None:
    count = 200
    go, finished, out = CTX.Event(), CTX.Event(), CTX.Queue()
    readers = [start(_many_reader, domain_id, 2 * count, out, dds) for _ in range(3)]
    writers = [start(_many_writer, domain_id, i, count, go, finished) for i in range(2)]
    try:
        assert [out.get(timeout=60) for _ in range(3)] == ["ready"] * 3
        go.set()
        results = [out.get(timeout=120) for _ in range(3)]
        assert results == [(2 * count, 0)] * 3
    finally:
        finished.set()
        for proc in readers + writers:
            join_ok(proc, timeout=90)


def _late_writer(domain_id: int, out: Any, done: Any) -> None:
    qos = loanbus.Qos(
        reliability=loanbus.Reliability.RELIABLE,
        durability=loanbus.Durability.TRANSIENT_LOCAL,
        history_depth=4,
        max_samples=4,
    )
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "late", SMALL), qos=qos)
        for value in range(1, 11):
            loan = writer.get_loan()
            loan.data["value"] = value
            writer.write(loan)
        out.put("written")
        done.wait(60)


@PATHS
def test_a_late_joiner_with_transient_local_depth_4_takes_the_last_4_samples(
    domain_id: int, dds: bool
) -> None:
    out, done = CTX.Queue(), CTX.Event()
    proc = start(_late_writer, domain_id, out, done)
    try:
        assert out.get(timeout=60) == "written"
        qos = loanbus.Qos(
            reliability=loanbus.Reliability.RELIABLE,
            durability=loanbus.Durability.TRANSIENT_LOCAL,
            history_depth=4,
            max_samples=4,
            dds_references=dds,
        )
        with loanbus.DomainParticipant(domain_id=domain_id) as dp:
            reader = loanbus.DataReader(loanbus.Topic(dp, "late", SMALL), qos=qos)
            got: list[int] = []
            deadline = time.monotonic() + 30
            while len(got) < 4 and time.monotonic() < deadline:
                for s in reader.take(timeout=1.0):
                    assert reader.is_data_consistent(s)
                    got.append(int(s.data["value"]))
                    reader.return_loan(s)
            assert got == [7, 8, 9, 10]
            assert reader.take(timeout=0.3) == []
    finally:
        done.set()
        join_ok(proc)
