"""The local reference path: references between processes of one host without Cyclone DDS.

A reader registers with each writer of its host through the writer's registration socket,
and the writer sends references into the reader's inbox (a pipe). These tests run real
processes over real Cyclone DDS (discovery, liveliness) and real shared memory.
"""

from __future__ import annotations

import array
import fcntl
import os
import signal
import socket
import subprocess
import termios
import time
from dataclasses import replace
from typing import Any

import pytest

import loanbus
from loanbus._transport import wire
from loanbus.pool import WriterPool, segment_name, socket_path
from tests.helpers import CTX, SMALL, join_ok, start
from tests.reliability import python, wait_for

RELIABLE = loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, max_samples=2, max_blocking_time=5.0)


def _write(writer: loanbus.DataWriter[Any], value: int) -> int:
    loan = writer.get_loan()
    loan.data["value"] = value
    seq = loan.sequence_number
    writer.write(loan)
    return seq


def _take_values(reader: loanbus.DataReader[Any], count: int, timeout: float = 30) -> list[int]:
    values: list[int] = []
    deadline = time.monotonic() + timeout
    while len(values) < count and time.monotonic() < deadline:
        got = reader.take(timeout=0.5)
        values += [int(s.data["value"]) for s in got]
        reader.return_loan(got)
    return values


def test_a_local_reader_gets_every_reference_and_nothing_goes_through_dds(domain_id: int) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        topic = loanbus.Topic(dp, "local", SMALL)
        writer = loanbus.DataWriter(topic, qos=RELIABLE)
        reader = loanbus.DataReader(topic, qos=RELIABLE)
        assert writer.wait_for_readers(1, 30) and reader.wait_for_writers(1, 30)
        for value in range(50):
            _write(writer, value)
            assert _take_values(reader, 1) == [value]
        w, r = writer.statistics(), reader.statistics()
        assert (w.local_readers, w.dds_reference_readers, w.dds_reference_writes) == (1, 0, 0)
        assert r.local_writers == 1 and r.taken == 50
        assert [m.references for m in writer.matched_readers()] == ["local"]
        assert [m.references for m in reader.matched_writers()] == ["local"]


def test_a_dds_reader_and_a_local_reader_of_one_writer_both_get_everything(domain_id: int) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        topic = loanbus.Topic(dp, "both", SMALL)
        writer = loanbus.DataWriter(topic, qos=RELIABLE)
        local = loanbus.DataReader(topic, qos=RELIABLE)
        dds = loanbus.DataReader(topic, qos=replace(RELIABLE, dds_references=True))
        assert writer.wait_for_readers(2, 30)
        assert local.wait_for_writers(1, 30) and dds.wait_for_writers(1, 30)
        for value in range(30):  # 3 slots: holds of both readers are honoured
            _write(writer, value)
            assert _take_values(local, 1) == [value]
            assert _take_values(dds, 1) == [value]
        w = writer.statistics()
        assert (w.local_readers, w.dds_reference_readers, w.dds_reference_writes) == (1, 1, 30)
        assert local.statistics().taken == 30  # the DDS copies it also hears are dropped
        assert sorted(m.references or "" for m in writer.matched_readers()) == ["dds", "local"]


def test_a_reader_beyond_the_writers_rows_gets_nothing_and_is_counted(domain_id: int) -> None:
    qos = replace(RELIABLE, reader_rows=1)
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        topic = loanbus.Topic(dp, "rows", SMALL)
        writer = loanbus.DataWriter(topic, qos=qos)
        first = loanbus.DataReader(topic, qos=qos)
        assert writer.wait_for_readers(1, 30) and first.wait_for_writers(1, 30)
        second = loanbus.DataReader(topic, qos=qos)
        # the writer looks at registrations when it is used (matched_readers here)
        refused = lambda: bool(writer.matched_readers()) and writer.statistics().unattached_readers == 1  # noqa: E731
        wait_for(refused, 30, "a refusal")
        _write(writer, 5)
        assert _take_values(first, 1) == [5]
        assert second.take(timeout=0.5) == []
        stats = writer.statistics()
        assert (stats.attached_readers, stats.unattached_readers) == (1, 1)


def _queued_bytes(fd: int) -> int:
    return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4), "little")


def test_a_dds_reader_taking_fewer_than_arrived_gets_the_rest_on_its_next_takes(domain_id: int) -> None:
    qos = loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, max_samples=8, dds_references=True)
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        topic = loanbus.Topic(dp, "batch", SMALL)
        writer = loanbus.DataWriter(topic, qos=qos)
        reader = loanbus.DataReader(topic, qos=qos)
        assert writer.wait_for_readers(1, 30) and reader.wait_for_writers(1, 30)
        for value in range(6):
            _write(writer, value)
        # every reference has arrived once each wrote its wake record into the reader's inbox
        wait_for(lambda: _queued_bytes(reader.fileno()) >= 6 * wire.RECORD_SIZE, 30, "six arrivals")
        values: list[int] = []
        for _ in range(3):  # nothing arrives any more: each take must find the rest in DDS
            got = reader.take(max_samples=2, timeout=5.0)
            values += [int(s.data["value"]) for s in got]
            reader.return_loan(got)
        assert values == list(range(6))


def _holding_reader(domain_id: int, out: Any) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id, lease_duration=60.0) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, "kill", SMALL), qos=RELIABLE)
        held: list[loanbus.LoanedSample] = []
        while len(held) < 3:
            held += reader.take(timeout=10)  # hold every slot, return nothing
        out.put(os.getpid())
        signal.pause()


def test_a_killed_reader_is_noticed_at_the_next_write_long_before_its_lease_ends(domain_id: int) -> None:
    out = CTX.Queue()
    proc = start(_holding_reader, domain_id, out)
    try:
        with loanbus.DomainParticipant(domain_id=domain_id) as dp:
            writer = loanbus.DataWriter(loanbus.Topic(dp, "kill", SMALL), qos=RELIABLE)
            assert writer.wait_for_readers(1, 60)
            for value in range(3):
                _write(writer, value)
            out.get(timeout=60)
            with pytest.raises(loanbus.LoanTimeoutError):
                writer.get_loan(timeout=0.2)  # every slot is held
            os.kill(proc.pid or 0, signal.SIGKILL)
            proc.join(10)
            started = time.monotonic()
            loan = writer.get_loan(timeout=30)  # it waits on the reader's connection: hang-up
            waited = time.monotonic() - started
            writer.write(loan)
            stats = writer.statistics()
            assert stats.lost_readers == 1 and stats.attached_readers == 0 and stats.held_slots == 0
            assert waited < 30  # the lease is 60 s: DDS has not noticed yet
            assert len(writer.matched_readers()) == 1  # indeed, DDS still matches the dead reader
    finally:
        if proc.is_alive():
            proc.kill()


def _stopped_reader(domain_id: int, qos: loanbus.Qos, out: Any, done: Any) -> None:
    os.environ["LOANBUS_INBOX_BYTES"] = "4096"  # the smallest pipe: 102 records
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, "full", SMALL), qos=qos)
        out.put((reader.reader_id.hex(), reader._inbox.capacity))
        done.wait(120)  # takes nothing


@pytest.mark.parametrize("reliable", [True, False], ids=["reliable", "best effort"])
def test_a_full_inbox_times_out_a_reliable_writer_naming_the_reader_and_a_best_effort_one_drops(
    domain_id: int, reliable: bool
) -> None:
    kind = loanbus.Reliability.RELIABLE if reliable else loanbus.Reliability.BEST_EFFORT
    qos = loanbus.Qos(reliability=kind, pool_slots=400, max_blocking_time=0.3, history_depth=None)
    out, done = CTX.Queue(), CTX.Event()
    proc = start(_stopped_reader, domain_id, qos, out, done)
    try:
        reader_id, capacity = out.get(timeout=60)
        records = capacity // wire.RECORD_SIZE
        with loanbus.DomainParticipant(domain_id=domain_id) as dp:
            writer = loanbus.DataWriter(loanbus.Topic(dp, "full", SMALL), qos=qos)
            assert writer.wait_for_readers(1, 60)
            for value in range(records):
                _write(writer, value)  # fills the inbox exactly
            if reliable:
                started = time.monotonic()
                with pytest.raises(loanbus.LoanTimeoutError) as info:
                    _write(writer, records)
                assert time.monotonic() - started >= 0.3
                assert reader_id in str(info.value) and info.value.holders == (reader_id,)
                assert writer.statistics().dropped_references == 0
            else:
                for value in range(records, records + 10):
                    _write(writer, value)
                assert writer.statistics().dropped_references == 10
    finally:
        done.set()
        join_ok(proc)


def test_records_that_are_not_loanbus_records_are_refused_and_counted(domain_id: int) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        topic = loanbus.Topic(dp, "junk", SMALL)
        writer = loanbus.DataWriter(topic, qos=RELIABLE)
        reader = loanbus.DataReader(topic, qos=RELIABLE)
        assert writer.wait_for_readers(1, 30) and reader.wait_for_writers(1, 30)
        inbox = reader._inbox.write_fd  # what any holder of the write end could send
        os.write(inbox, b"\xff" * wire.RECORD_SIZE)  # wrong magic
        os.write(inbox, wire.encode_record(77, 0, 1, SMALL.itemsize, 0))  # an index never given out
        os.write(inbox, wire.encode_record(0, 5, 1, SMALL.itemsize, 0))  # a slot outside the pool
        assert reader.take(timeout=0.5) == []
        stats = reader.statistics()
        assert (stats.malformed_records, stats.refused_references) == (2, 1)
        _write(writer, 3)
        assert _take_values(reader, 1) == [3]  # and the reader goes on


def _hello(pool: WriterPool, key: bytes, reliable: bool = False) -> tuple[bytes, list[int]]:
    r, w = os.pipe()
    flags = wire.HELLO_RELIABLE if reliable else 0
    hello = wire.Hello(os.urandom(16), key, 0, flags, pool.slot_count)
    os.close(r)
    return hello.encode(), [w]


def test_a_registration_without_the_pools_key_is_refused(domain_id: int) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "keyed", SMALL), qos=RELIABLE)
        path = socket_path(writer.segment_name, writer.guid)
        for key in (b"\0" * 16, os.urandom(16)):
            msg, fds = _hello(writer._pool, key)
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
                s.connect(path)
                s.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
                os.close(fds[0])
                wait_for(
                    lambda: (
                        (writer.wait_for_readers(1, 0.01), writer.statistics().refused_registrations)[1] > 0
                    ),
                    10,
                    "the refusal",
                )
        stats = writer.statistics()
        assert (stats.refused_registrations, stats.attached_readers) == (2, 0)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to be another user")
def test_another_user_cannot_even_connect_to_a_writers_registration_socket(domain_id: int) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "private", SMALL))
        path = socket_path(writer.segment_name, writer.guid)
        os.seteuid(65534)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s, pytest.raises(PermissionError):
                s.connect(path)
        finally:
            os.seteuid(0)


def test_a_reader_never_registers_with_a_socket_that_is_not_its_pools_writer(domain_id: int) -> None:
    # A pool whose writer process is not the one listening on the socket next to it (a dead
    # writer's name taken over by another process): the reader checks the listener's pid.
    guid = os.urandom(16)
    name = segment_name(domain_id, "impostor", guid)
    pool = WriterPool(name, SMALL, slot_count=2, reader_rows=1, writer_guid=guid)
    impostor = python(
        "import socket, sys, time\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
        f"s.bind({socket_path(name, guid)!r}); s.listen(8)\n"
        "print('listening', flush=True)\n"
        "time.sleep(60)\n",
        stdout=subprocess.PIPE,
    )
    try:
        assert impostor.stdout is not None and impostor.stdout.readline().strip() == "listening"
        from loanbus._transport import Inbox, RegistrationError
        from loanbus.pool import ReaderPool

        inbox = Inbox()
        reader_pool = ReaderPool(name, SMALL, writer_guid=guid)
        try:
            hello = wire.Hello(os.urandom(16), reader_pool.header.registration_key, 0, 0, 2)
            with pytest.raises(RegistrationError, match="not to the pool's writer"):
                inbox.register(
                    reader_pool.socket_path,
                    hello,
                    None,
                    writer_pid=reader_pool.header.writer_pid,
                    writer_uid=reader_pool.header.writer_uid,
                )
        finally:
            reader_pool.close()
            inbox.close()
    finally:
        impostor.kill()
        impostor.wait(10)
        if impostor.stdout is not None:
            impostor.stdout.close()
        os.unlink(socket_path(name, guid))
        pool.close()


def _stream_reader(domain_id: int, dds: bool, count: int, out: Any) -> None:
    qos = replace(RELIABLE, dds_references=dds)
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, "stream", SMALL), qos=qos)
        out.put("ready")
        values = _take_values(reader, count, timeout=120)
        out.put((values, reader.statistics().local_writers))


@pytest.mark.parametrize("dds", [False, True], ids=["local path", "DDS path"])
def test_a_reliable_stream_between_processes_loses_nothing_on_either_path(domain_id: int, dds: bool) -> None:
    count = 2000
    out = CTX.Queue()
    proc = start(_stream_reader, domain_id, dds, count, out)
    try:
        assert out.get(timeout=60) == "ready"
        with loanbus.DomainParticipant(domain_id=domain_id) as dp:
            writer = loanbus.DataWriter(loanbus.Topic(dp, "stream", SMALL), qos=RELIABLE)
            assert writer.wait_for_readers(1, 60)
            for value in range(count):
                _write(writer, value)
            values, local_writers = out.get(timeout=120)
            stats = writer.statistics()
        assert values == list(range(count))
        assert local_writers == (0 if dds else 1)
        assert (stats.dds_reference_writes > 0) == dds and stats.loan_timeouts == 0
        join_ok(proc)
    finally:
        if proc.is_alive():
            proc.kill()


@pytest.mark.parametrize("dds", [False, True], ids=["local path", "DDS path"])
def test_what_a_writer_wrote_just_before_it_closed_is_still_taken(domain_id: int, dds: bool) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        topic = loanbus.Topic(dp, "last", SMALL)
        reader = loanbus.DataReader(topic, qos=replace(RELIABLE, dds_references=dds))
        writer = loanbus.DataWriter(topic, qos=RELIABLE)
        assert writer.wait_for_readers(1, 30) and reader.wait_for_writers(1, 30)
        for value in range(3):
            _write(writer, value)
        writer.close()  # before the reader took anything
        wait_for(lambda: not reader.matched_writers(), 30, "the reader to see the writer go")
        got = reader.take(timeout=5)
        assert [int(s.data["value"]) for s in got] == [0, 1, 2]
        assert all(reader.is_data_consistent(s) for s in got)  # its pool is still mapped here
        reader.return_loan(got)
        assert reader.take() == [] and reader.statistics().lost_writers == 1
        assert reader.statistics().mapped_pools == 0  # released once everything was taken


@pytest.mark.parametrize("value", ["4095", "1MiB", "-1"])
def test_an_inbox_size_that_is_not_a_pipe_size_is_refused_by_the_reader(
    domain_id: int, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOANBUS_INBOX_BYTES", value)
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        topic = loanbus.Topic(dp, "sizes", SMALL)
        with pytest.raises(ValueError, match=f"LOANBUS_INBOX_BYTES='{value}': give a pipe size in bytes"):
            loanbus.DataReader(topic)
        monkeypatch.setenv("LOANBUS_INBOX_BYTES", "65536")
        with loanbus.DataReader(topic) as reader:
            assert reader._inbox.capacity == 65536
