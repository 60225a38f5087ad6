"""The public API in one process: real Cyclone DDS, real shared memory."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import loanbus
from tests.helpers import FRAME, SMALL

pytestmark = pytest.mark.portable  # .ci/run runs it on every supported Python

BE1 = loanbus.Qos(reliability=loanbus.Reliability.BEST_EFFORT, max_samples=1)
RELIABLE = loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, max_samples=1, max_blocking_time=5.0)


@pytest.fixture
def dp(domain_id: int) -> Iterator[loanbus.DomainParticipant]:
    with loanbus.DomainParticipant(domain_id=domain_id) as participant:
        yield participant


def _pair(dp: loanbus.DomainParticipant, qos: loanbus.Qos = BE1, stype: loanbus.ShmemType = SMALL):
    topic = loanbus.Topic(dp, "api", stype)
    writer = loanbus.DataWriter(topic, qos=qos)
    reader = loanbus.DataReader(topic, qos=qos)
    assert writer.wait_for_readers(1, timeout=10) and reader.wait_for_writers(1, timeout=10)
    return writer, reader


def test_the_issue_example_runs_as_written(dp: loanbus.DomainParticipant) -> None:
    topic = loanbus.Topic(dp, "frames", FRAME)
    writer = loanbus.DataWriter(topic, qos=BE1)
    reader = loanbus.DataReader(topic, qos=BE1)
    assert writer.wait_for_readers(1, timeout=10)
    loan = writer.get_loan()
    assert loan.data.shape == () and loan.data["pixels"].shape == (1080, 1920, 3)
    loan.data["seq"] = 10000
    loan.data["pixels"][0, 0] = (1, 2, 3)
    writer.write(loan)
    with pytest.raises(loanbus.LoanStateError):
        loan.data["seq"] = 1
    samples = reader.take(max_samples=8, timeout=5.0)
    assert len(samples) == 1
    s = samples[0]
    assert int(s.data["seq"]) == 10000 and tuple(s.data["pixels"][0, 0]) == (1, 2, 3)
    assert s.info.sequence_number == 1 and s.info.valid
    assert abs(s.info.source_timestamp - time.time_ns()) < 60e9
    assert reader.is_data_consistent(s)
    reader.return_loan(samples)


def test_the_reference_scenario_reports_the_overwritten_sample(dp: loanbus.DomainParticipant) -> None:
    writer, reader = _pair(dp)
    loan1 = writer.get_loan()
    loan1.data["value"] = 10000
    writer.write(loan1)
    loan2 = writer.get_loan()
    loan2.data["value"] = 20000
    writer.write(loan2)
    samples = reader.take(max_samples=8, timeout=5.0)
    while len(samples) < 2:
        more = reader.take(max_samples=8, timeout=5.0)
        assert more, "the second sample never arrived"
        samples += more
    first, second = samples
    assert int(first.data["value"]) == 10000
    loan3 = writer.get_loan()
    assert loan3.slot == loan1.slot  # slot 1 again: the oldest written one
    loan3.data["value"] = 999
    assert int(first.data["value"]) == 999  # the same RAM: the overwrite shows
    assert reader.is_data_consistent(first) is False
    assert reader.is_data_consistent(second) is True
    reader.return_loan(samples)
    writer.discard_loan(loan3)
    assert reader.statistics().inconsistent == 1


def test_samples_are_views_of_the_writers_memory_not_copies(dp: loanbus.DomainParticipant) -> None:
    writer, reader = _pair(dp)
    loan = writer.get_loan()
    waddr = loan.data.__array_interface__["data"][0]
    writer.write(loan)
    (sample,) = reader.take(timeout=5.0)
    with pytest.raises(ValueError, match="read-only"):
        sample.data["value"] = 1
    # Same segment, same offset: the reader's view starts at the same offset of the pool.
    assert sample.data.nbytes == SMALL.itemsize and not sample.data.flags.owndata
    assert waddr != 0
    reader.return_loan(sample)


def test_get_loan_fails_when_every_slot_is_on_loan(dp: loanbus.DomainParticipant) -> None:
    writer, _ = _pair(dp)
    writer.get_loan()
    writer.get_loan()
    with pytest.raises(loanbus.LoanError, match="every slot"):
        writer.get_loan()


def test_a_discarded_loan_is_never_delivered_and_cannot_be_used(dp: loanbus.DomainParticipant) -> None:
    writer, reader = _pair(dp)
    loan = writer.get_loan()
    writer.discard_loan(loan)
    with pytest.raises(loanbus.LoanStateError):
        loan.data
    with pytest.raises(loanbus.LoanStateError):
        writer.write(loan)
    with pytest.raises(loanbus.LoanStateError):
        writer.discard_loan(loan)
    assert reader.take(timeout=0.3) == []


def test_writing_a_loan_twice_raises(dp: loanbus.DomainParticipant) -> None:
    writer, _ = _pair(dp)
    loan = writer.get_loan()
    writer.write(loan)
    with pytest.raises(loanbus.LoanStateError, match="already written"):
        writer.write(loan)


def test_a_returned_sample_cannot_be_used(dp: loanbus.DomainParticipant) -> None:
    writer, reader = _pair(dp)
    writer.write(writer.get_loan())
    (sample,) = reader.take(timeout=5.0)
    reader.return_loan(sample)
    with pytest.raises(loanbus.LoanStateError):
        sample.data
    with pytest.raises(loanbus.LoanStateError):
        reader.is_data_consistent(sample)
    with pytest.raises(loanbus.LoanStateError):
        reader.return_loan([sample])


def test_take_without_data_returns_an_empty_list_at_once(dp: loanbus.DomainParticipant) -> None:
    _, reader = _pair(dp)
    started = time.monotonic()
    assert reader.take() == []
    assert time.monotonic() - started < 1.0


def test_take_with_a_timeout_blocks_until_data_arrives(dp: loanbus.DomainParticipant) -> None:
    import threading

    writer, reader = _pair(dp)

    def later() -> None:
        time.sleep(0.3)
        loan = writer.get_loan()
        loan.data["value"] = 42
        writer.write(loan)

    thread = threading.Thread(target=later)
    thread.start()
    started = time.monotonic()
    samples = reader.take(timeout=20.0)
    elapsed = time.monotonic() - started
    thread.join()
    assert [int(s.data["value"]) for s in samples] == [42]
    assert elapsed >= 0.2  # it really waited for the write
    reader.return_loan(samples)


def test_take_with_a_timeout_returns_empty_after_the_timeout(dp: loanbus.DomainParticipant) -> None:
    _, reader = _pair(dp)
    started = time.monotonic()
    assert reader.take(timeout=0.3) == []
    assert time.monotonic() - started >= 0.25


def test_closed_entities_refuse_to_work(dp: loanbus.DomainParticipant) -> None:
    writer, reader = _pair(dp)
    loan = writer.get_loan()
    segment = writer.segment_name
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(loanbus.ClosedError):
        writer.get_loan()
    with pytest.raises(loanbus.LoanStateError):
        loan.data
    assert not os.path.exists("/dev/shm" + segment)
    reader.close()
    with pytest.raises(loanbus.ClosedError):
        reader.take()


def test_closing_the_participant_closes_its_writers_and_readers(domain_id: int) -> None:
    dp = loanbus.DomainParticipant(domain_id=domain_id)
    topic = loanbus.Topic(dp, "api", SMALL)
    writer = loanbus.DataWriter(topic)
    reader = loanbus.DataReader(topic)
    dp.close()
    assert writer.closed and reader.closed and dp.closed
    assert not os.path.exists("/dev/shm" + writer.segment_name)


def test_a_forgotten_writer_warns_and_releases_its_pool(domain_id: int) -> None:
    import gc

    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "api", SMALL))
        segment = writer.segment_name
        with pytest.warns(ResourceWarning, match="never closed"):
            del writer
            gc.collect()
        assert not os.path.exists("/dev/shm" + segment)


def test_bad_arguments_are_type_and_value_errors(dp: loanbus.DomainParticipant) -> None:
    with pytest.raises(ValueError):
        loanbus.Topic(dp, "bad name!", SMALL)
    with pytest.raises(TypeError):
        loanbus.Topic(dp, "ok", np.dtype("u1"))
    with pytest.raises(ValueError):
        loanbus.Qos(max_samples=0)
    with pytest.raises(ValueError):
        loanbus.ShmemType("x::Y", np.dtype([("a", ">u4")]))
    with pytest.raises(ValueError):
        loanbus.ShmemType("x::Y", np.dtype([("a", "O")]))
    writer, reader = _pair(dp)
    with pytest.raises(TypeError):
        writer.write("not a loan")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        reader.take(max_samples=0)


def test_every_error_derives_from_one_root() -> None:
    for name in loanbus.__all__:
        obj = getattr(loanbus, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, loanbus.LoanbusError), name
            assert name.endswith("Error"), name
    assert issubclass(loanbus.LoanTimeoutError, TimeoutError)


def test_the_public_names_are_pinned() -> None:
    assert set(loanbus.__all__) == {
        "BrokenError",
        "ClosedError",
        "DataReader",
        "DataWriter",
        "DomainParticipant",
        "Durability",
        "InvalidReferenceError",
        "Loan",
        "LoanError",
        "LoanStateError",
        "LoanTimeoutError",
        "LoanbusError",
        "LoanedSample",
        "PoolFormatError",
        "Qos",
        "ReaderMatch",
        "ReaderStatistics",
        "Reliability",
        "SampleInfo",
        "ShmemType",
        "Topic",
        "TransportError",
        "WriterMatch",
        "WriterStatistics",
        "__version__",
        "play",
        "record",
        "view",
    }
    for name in loanbus.__all__:
        assert hasattr(loanbus, name)


def test_a_best_effort_reader_never_pins_a_reliable_writers_slots(dp: loanbus.DomainParticipant) -> None:
    topic = loanbus.Topic(dp, "mixed", SMALL)
    writer = loanbus.DataWriter(
        topic, qos=loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, max_samples=1, max_blocking_time=0.2)
    )
    reader = loanbus.DataReader(topic, qos=BE1)
    assert writer.wait_for_readers(1, timeout=10) and reader.wait_for_writers(1, timeout=10)
    for value in range(5):  # more writes than slots, and the reader takes nothing
        loan = writer.get_loan()
        loan.data["value"] = value
        writer.write(loan)
    assert writer.statistics().loan_timeouts == 0
    assert [m.shm for m in writer.matched_readers()] == [True]  # it maps the pool ...
    assert writer.statistics().held_slots == 0  # ... but holds nothing
    samples = reader.take(timeout=5.0)
    assert samples and int(samples[-1].data["value"]) == 4  # it still reads zero-copy
    reader.return_loan(samples)


def test_transient_local_without_reliable_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="RELIABLE"):
        loanbus.Qos(durability=loanbus.Durability.TRANSIENT_LOCAL)


def test_a_closed_participant_refuses_new_writers_and_readers(domain_id: int, shm_prefix: str) -> None:
    dp = loanbus.DomainParticipant(domain_id=domain_id)
    topic = loanbus.Topic(dp, "late", SMALL)
    dp.close()
    with pytest.raises(loanbus.ClosedError):
        loanbus.DataWriter(topic)
    with pytest.raises(loanbus.ClosedError):
        loanbus.DataReader(topic)
    assert not [n for n in os.listdir("/dev/shm") if shm_prefix in n]


def test_shaped_samples_say_they_do_not_travel_by_value(
    dp: loanbus.DomainParticipant, caplog: pytest.LogCaptureFixture
) -> None:
    shaped = loanbus.ShmemType("api::Shaped", np.uint16, shape=(4, 8))
    topic = loanbus.Topic(dp, "shaped", shaped)
    with pytest.raises(ValueError, match=r"by_value=True.*do not travel by value"):
        loanbus.DataReader(topic, qos=loanbus.Qos(by_value=True))
    with caplog.at_level("WARNING", logger="loanbus"):
        writer = loanbus.DataWriter(topic)
        reader = loanbus.DataReader(topic)
    assert sum("do not travel by value" in r.getMessage() for r in caplog.records) == 2
    assert writer.wait_for_readers(1, timeout=10) and reader.wait_for_writers(1, timeout=10)
    loan = writer.get_loan()
    loan.data[...] = np.arange(32, dtype=np.uint16).reshape(4, 8)
    writer.write(loan)
    [sample] = reader.take(timeout=10)
    assert sample.data.shape == (4, 8) and int(sample.data[3, 7]) == 31  # zero-copy still works
    reader.return_loan(sample)


# -- API edges: duplicate returns, closed readers, timeouts and QoS values -------------------


def test_returning_one_sample_twice_in_one_call_is_refused_and_counts_nothing(
    dp: loanbus.DomainParticipant,
) -> None:
    writer, reader = _pair(dp, RELIABLE)
    for value in (1, 2):
        loan = writer.get_loan()
        loan.data["value"] = value
        writer.write(loan)
    got: list[loanbus.LoanedSample] = []
    while len(got) < 2:
        got += reader.take(timeout=10)
    s, other = got
    with pytest.raises(loanbus.LoanStateError, match="more than once"):
        reader.return_loan([s, s])
    assert not s.returned and reader.statistics().returned == 0  # nothing of the batch was returned
    assert reader.is_data_consistent(other)  # the reader is intact
    reader.return_loan([s, other])
    assert reader.statistics().returned == 2


def test_is_data_consistent_after_the_reader_closed_raises_closed_error(
    dp: loanbus.DomainParticipant,
) -> None:
    writer, reader = _pair(dp)
    loan = writer.get_loan()
    writer.write(loan)
    (sample,) = reader.take(timeout=10)
    reader.close()
    with pytest.raises(loanbus.ClosedError):
        reader.is_data_consistent(sample)
    with pytest.raises(loanbus.ClosedError):
        reader.return_loan(sample)


def test_an_infinite_timeout_waits_until_a_sample_arrives(dp: loanbus.DomainParticipant) -> None:
    writer, reader = _pair(dp, RELIABLE)

    def later() -> None:
        time.sleep(0.2)
        loan = writer.get_loan(timeout=math.inf)
        loan.data["value"] = 9
        writer.write(loan)

    thread = threading.Thread(target=later)
    thread.start()
    got = reader.take(timeout=math.inf)
    thread.join(30)
    assert [int(s.data["value"]) for s in got] == [9]
    reader.return_loan(got)
    assert reader.take(timeout=1e10 * 0) == []  # zero is zero
    thread = threading.Thread(target=later)
    thread.start()
    got = reader.take(timeout=1e10)  # more than any poll() can wait at once
    thread.join(30)
    assert [int(s.data["value"]) for s in got] == [9]
    reader.return_loan(got)


@pytest.mark.parametrize("bad", [-1, -0.5, math.nan, "1", True])
def test_a_bad_timeout_is_one_clear_error_naming_it(dp: loanbus.DomainParticipant, bad: object) -> None:
    writer, reader = _pair(dp, RELIABLE)
    error = TypeError if isinstance(bad, (str, bool)) else ValueError
    for call in (
        lambda: writer.get_loan(timeout=bad),  # type: ignore[arg-type]
        lambda: reader.take(timeout=bad),  # type: ignore[arg-type]
        lambda: writer.wait_for_readers(1, timeout=bad),  # type: ignore[arg-type]
        lambda: reader.wait_for_writers(1, timeout=bad),  # type: ignore[arg-type]
    ):
        with pytest.raises(error, match="timeout"):
            call()
    assert writer.statistics().loans == 0


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("max_blocking_time", math.nan, ValueError),
        ("max_blocking_time", -1.0, ValueError),
        ("max_blocking_time", "1", TypeError),
        ("max_samples", 2.0, TypeError),
        ("max_samples", True, TypeError),
        ("max_samples", 70000, ValueError),
        ("history_depth", 1.5, TypeError),
        ("reader_rows", 4.0, TypeError),
        ("pool_slots", 3.0, TypeError),
        ("shm_group", "x", TypeError),
        ("shm_group", -5, ValueError),
        ("shm_group", 2**40, ValueError),
        ("shm_group", False, TypeError),
        ("by_value", 1, TypeError),
        ("dds_references", "yes", TypeError),
    ],
)
def test_a_bad_qos_value_is_one_clear_error_naming_its_field(field: str, value: object, error: type) -> None:
    with pytest.raises(error, match=field):
        loanbus.Qos(**{field: value})  # type: ignore[arg-type]


def test_an_infinite_max_blocking_time_is_accepted_as_wait_for_ever(dp: loanbus.DomainParticipant) -> None:
    qos = loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, max_blocking_time=math.inf)
    writer, reader = _pair(dp, qos)
    loan = writer.get_loan()
    writer.write(loan)
    got = reader.take(timeout=10)
    assert len(got) == 1
    reader.return_loan(got)


def test_a_shape_of_bools_is_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        loanbus.ShmemType("x::Flags", np.uint8, shape=(True,))


# -- a writer and a reader that disagree on the type ----------------------------------------------


OTHER = loanbus.ShmemType("test::Other", np.dtype([("value", "<i8")]))


def test_two_topics_of_one_name_and_two_types_in_one_participant_are_refused(
    dp: loanbus.DomainParticipant,
) -> None:
    loanbus.Topic(dp, "typed", SMALL)
    loanbus.Topic(dp, "typed", SMALL)  # the same type again is fine
    with pytest.raises(ValueError, match=r"already has type 'test::Small'.*a topic has one type"):
        loanbus.Topic(dp, "typed", OTHER)


def _other_type_reader(domain_id: int, out: Any, done: Any) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, "typed", OTHER))
        out.put(reader.wait_for_writers(1, timeout=3))
        out.put([(m.path, m.incompatible) for m in reader.matched_writers()])
        out.put(reader.statistics().incompatible_writers)
        done.wait(60)


def test_a_writer_and_a_reader_of_two_types_say_so_on_both_sides_and_match_nothing(
    domain_id: int, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.helpers import CTX, join_ok, start

    out, done = CTX.Queue(), CTX.Event()
    proc = start(_other_type_reader, domain_id, out, done)
    try:
        with caplog.at_level("WARNING", logger="loanbus"), loanbus.DomainParticipant(domain_id) as dp:
            writer = loanbus.DataWriter(loanbus.Topic(dp, "typed", SMALL))
            assert writer.wait_for_readers(1, timeout=3) is False
            assert out.get(timeout=60) is False  # the reader gave up too
            (match,) = writer.matched_readers()
            assert match.path == "incompatible" and match.shm is False
            stats = writer.statistics()
            assert (stats.matched_readers, stats.incompatible_readers) == (0, 1)
            ((path, why),) = out.get(timeout=30)
            assert path == "incompatible"
            assert out.get(timeout=30) == 1
        for text in (match.incompatible, why):
            assert text is not None
            assert "'test::Small'" in text and "'test::Other'" in text
            assert SMALL.type_hash.hex() in text and OTHER.type_hash.hex() in text
            assert f"pid {proc.pid}" in text and f"pid {os.getpid()}" in text
        told = [r.getMessage() for r in caplog.records if "do not communicate" in r.getMessage()]
        assert len([m for m in told if "writer on 'typed': the writer" in m]) == 1  # said once
        assert any("gave up waiting for 1 reader(s)" in m for m in told)
        assert not [r for r in caplog.records if "policy" in r.getMessage()]  # no DDS jargon
    finally:
        done.set()
        join_ok(proc)
