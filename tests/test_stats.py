"""statistics(): typed, frozen snapshots with pool occupancy and write->take latency, and the
statistics feed that lets another participant (``loanbus top``) see them."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import pytest

import loanbus
from loanbus._lifetime import wait_until
from loanbus.observe import StatsRecord, StatsWatch
from tests.helpers import SMALL

RELIABLE = loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, max_samples=2, max_blocking_time=1.0)
OLD_WRITER_COUNTERS = {
    "loans", "writes", "discards", "overwrites", "blocked_loans", "loan_timeouts", "exhausted",
    "matched_readers", "attached_readers", "bytes_written",
}  # fmt: skip
OLD_READER_COUNTERS = {
    "taken", "returned", "consistency_checks", "inconsistent", "refused_references",
    "unmappable_writers", "mapped_pools", "lost_writers",
}  # fmt: skip


@pytest.fixture
def pair(domain_id: int) -> Iterator[tuple[loanbus.DataWriter[object], loanbus.DataReader[object]]]:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        topic = loanbus.Topic(dp, "stats", SMALL)
        writer = loanbus.DataWriter(topic, qos=RELIABLE)
        reader = loanbus.DataReader(topic, qos=RELIABLE)
        assert writer.wait_for_readers(1, timeout=30) and reader.wait_for_writers(1, timeout=30)
        yield writer, reader


def _write(writer: loanbus.DataWriter[object], value: int, age_ns: int = 0) -> None:
    loan = writer.get_loan()
    loan.data["value"] = value
    writer.write(loan, timestamp_ns=time.time_ns() - age_ns)


def _take(reader: loanbus.DataReader[object], count: int) -> list[loanbus.LoanedSample]:
    got: list[loanbus.LoanedSample] = []
    deadline = time.monotonic() + 30
    while len(got) < count and time.monotonic() < deadline:
        got += reader.take(timeout=1.0)
    assert len(got) == count
    return got


def test_statistics_are_frozen_typed_snapshots_that_keep_every_counter(pair) -> None:  # type: ignore[no-untyped-def]
    writer, reader = pair
    ws, rs = writer.statistics(), reader.statistics()
    assert isinstance(ws, loanbus.WriterStatistics) and isinstance(rs, loanbus.ReaderStatistics)
    assert set(ws.as_dict()) >= OLD_WRITER_COUNTERS and set(rs.as_dict()) >= OLD_READER_COUNTERS
    assert all(
        isinstance(v, (int, float)) or v is None for v in [*ws.as_dict().values(), *rs.as_dict().values()]
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        ws.writes = 5  # type: ignore[misc]
    assert ws.as_dict() == dataclasses.asdict(ws)


def test_writer_statistics_show_pool_occupancy_and_the_slots_readers_hold(pair) -> None:  # type: ignore[no-untyped-def]
    writer, reader = pair
    assert (writer.statistics().slots, writer.statistics().free_slots) == (3, 3)
    _write(writer, 1)
    _write(writer, 2)
    taken = _take(reader, 2)
    reader.return_loan(taken[0])
    loan = writer.get_loan()
    st = writer.statistics()
    assert (st.free_slots, st.loaned_slots, st.written_slots, st.held_slots) == (0, 1, 2, 1)
    assert (st.writes, st.bytes_written, st.attached_readers) == (2, 2 * SMALL.itemsize, 1)
    writer.discard_loan(loan)
    reader.return_loan(taken[1])
    st = writer.statistics()
    assert (st.free_slots, st.loaned_slots, st.written_slots, st.held_slots) == (1, 0, 2, 0)


def test_reader_statistics_give_write_to_take_latency_percentiles(pair) -> None:  # type: ignore[no-untyped-def]
    writer, reader = pair
    assert reader.statistics().latency_p50_us is None and reader.statistics().latency_samples == 0
    for value in range(6):
        _write(writer, value, age_ns=5_000_000)  # written "5 ms ago": latency is at least 5,000 µs
        reader.return_loan(_take(reader, 1))
    st = reader.statistics()
    assert (st.taken, st.returned, st.bytes_taken, st.latency_samples) == (6, 6, 6 * SMALL.itemsize, 6)
    assert st.latency_p50_us is not None and st.latency_p90_us is not None and st.latency_p99_us is not None
    assert 5_000 <= st.latency_p50_us <= st.latency_p90_us <= st.latency_p99_us <= (st.latency_max_us or 0)


def _records(watch: StatsWatch, topic: str) -> dict[str, StatsRecord]:
    return {r.kind: r for r in watch.records() if r.topic == topic}


def test_another_participant_sees_each_entitys_statistics_until_it_closes(
    domain_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOANBUS_STATS_INTERVAL", "0.1")
    with loanbus.DomainParticipant(domain_id=domain_id) as dp, loanbus.DomainParticipant(domain_id) as tool:
        watch = StatsWatch(tool.transport)
        topic = loanbus.Topic(dp, "fed", SMALL)
        writer = loanbus.DataWriter(topic, qos=RELIABLE)
        reader = loanbus.DataReader(topic, qos=RELIABLE)
        assert writer.wait_for_readers(1, timeout=30)
        for value in range(4):
            _write(writer, value)
            reader.return_loan(_take(reader, 1))
        assert wait_until(
            lambda: (
                (r := _records(watch, "fed")).keys() == {"writer", "reader"}
                and r["reader"].stats["taken"] == 4
                and r["writer"].stats["writes"] == 4
            ),
            30,
        )
        recs = _records(watch, "fed")
        assert recs["writer"].id == writer.guid.hex() and recs["reader"].id == reader.reader_id.hex()
        assert recs["writer"].segment == writer.segment_name and recs["reader"].type_name == SMALL.name
        assert recs["reader"].stats == {**reader.statistics().as_dict(), **recs["reader"].stats}
        writer.close()
        assert wait_until(lambda: _records(watch, "fed").keys() == {"reader"}, 30)  # disposed on close
        watch.close()


def test_a_bad_statistics_interval_is_refused_naming_the_variable(
    domain_id: int, monkeypatch: pytest.MonkeyPatch, shm_prefix: str
) -> None:
    import os

    monkeypatch.setenv("LOANBUS_STATS_INTERVAL", "soon")
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        with pytest.raises(ValueError, match="LOANBUS_STATS_INTERVAL"):
            loanbus.DataWriter(loanbus.Topic(dp, "bad", SMALL))
        with pytest.raises(ValueError, match="LOANBUS_STATS_INTERVAL"):
            loanbus.DataReader(loanbus.Topic(dp, "bad", SMALL))
    assert not [n for n in os.listdir("/dev/shm") if shm_prefix in n]
