"""Hostile or broken references over DDS, each in its own test: the reader survives and says why.

A plain Cyclone DDS writer on the derived reference topic plays the hostile peer: it sends
any (slot, seq, size) it likes, with any user data it likes (a copy of a genuine writer's
advert, none at all, or one naming a segment that is missing or broken). The reader takes
its references through DDS (``Qos(dds_references=True)``), where such references arrive;
the local path's own hostile input is in test_hostile_local.py.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cyclonedds._clayer import ddspy_write_ts
from cyclonedds.domain import DomainParticipant as RawParticipant
from cyclonedds.pub import DataWriter as RawWriter
from cyclonedds.qos import Policy
from cyclonedds.qos import Qos as RawQos
from cyclonedds.topic import Topic as RawTopic
from cyclonedds.util import duration

import loanbus
from loanbus import _advert
from loanbus._layout import ABI_VERSION
from loanbus._proc import host_identity
from loanbus._transport.dds import _delete
from loanbus._transport.refs import _CDR_LE, _REF, LoanRef
from loanbus.pool import ReaderPool, WriterPool, segment_name
from tests.helpers import SMALL
from tests.reliability import poke_header, shm_path, wait_for

QOS = loanbus.Qos(pool_slots=2)  # best effort: slot 0 and 1
READER_QOS = loanbus.Qos(pool_slots=2, dds_references=True)
TOPIC = "hostile"


class HostileWriter:
    """A raw Cyclone writer of references with user data of our choosing."""

    def __init__(self, domain_id: int, user_data: bytes) -> None:
        self.dp = RawParticipant(domain_id)
        topic = RawTopic(self.dp, "loanbus_ref/" + TOPIC, LoanRef)
        qos = RawQos(
            Policy.Userdata(user_data),
            Policy.Reliability.Reliable(duration(seconds=1)),
            Policy.History.KeepAll,
        )
        self.writer = RawWriter(self.dp, topic, qos=qos)

    def send(self, slot: int, seq: int, size: int) -> None:
        """Send a reference encoded exactly as loanbus's own writers encode it."""
        assert ddspy_write_ts(self.writer._ref, _CDR_LE + _REF.pack(seq, size, slot), time.time_ns()) == 0

    def send_serialized(self, slot: int, seq: int, size: int) -> None:
        """Send a reference as an ordinary Cyclone DDS application would (unpadded, 24 bytes)."""
        self.writer.write(LoanRef(seq=seq, size=size, slot=slot))

    def close(self) -> None:
        _delete(self.dp)  # deletes the topic and writer with it


@dataclass
class Bus:
    domain_id: int
    writer: loanbus.DataWriter[Any]
    reader: loanbus.DataReader[Any]

    def advert(self, **changes: Any) -> bytes:
        """The genuine writer's advert (what a hostile peer can copy), with ``changes``."""
        pool = self.writer._pool
        fields = {
            "segment": self.writer.segment_name,
            "host": host_identity(),
            "abi": ABI_VERSION,
            "type_hash": SMALL.type_hash.hex(),
            "slots": pool.slot_count,
            "stride": pool.layout.slot_stride,
            "writer_guid": self.writer.guid.hex(),
            "pid": os.getpid(),
            "uid": os.getuid(),
            "type_name": SMALL.name,
            **changes,
        }
        return json.dumps({_advert.TAG: _advert.VERSION, "kind": "writer", **fields}).encode()

    def hostile(self, user_data: bytes) -> HostileWriter:
        peer = HostileWriter(self.domain_id, user_data)
        wait_for(lambda: len(self.reader.matched_writers()) == 2, 30, "the hostile writer to match")
        return peer

    def write(self, value: int) -> tuple[int, int]:
        loan = self.writer.get_loan()
        loan.data["value"] = value
        loan.data["seq"] = loan.sequence_number
        self.writer.write(loan)
        return loan.slot, loan.sequence_number

    def take_until(self, condition: Any, what: str, until: Any = None) -> list[Any]:
        """Take until ``condition()`` (or ``until(taken)``) holds; returns what was taken."""
        taken: list[Any] = []

        def poll() -> bool:
            taken.extend(self.reader.take(timeout=0.02))
            return bool(until(taken) if until is not None else condition())

        wait_for(poll, 30, what)
        return taken

    def still_works(self) -> None:
        """The reader (and the process) survived: a genuine sample still arrives intact."""
        self.reader.return_loan(self.take_until(lambda: True, "nothing"))
        _, seq = self.write(4242)
        got: list[Any] = []

        def arrived() -> bool:
            got.extend(self.reader.take(timeout=0.02))
            return bool(got)

        wait_for(arrived, 30, "a genuine sample")
        assert [s.info.sequence_number for s in got] == [seq]
        assert int(got[0].data["value"]) == 4242 and self.reader.is_data_consistent(got[0])
        self.reader.return_loan(got)


@pytest.fixture
def bus(domain_id: int, caplog: pytest.LogCaptureFixture) -> Iterator[Bus]:
    caplog.set_level(logging.INFO, logger="loanbus")
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        topic = loanbus.Topic(dp, TOPIC, SMALL)
        writer = loanbus.DataWriter(topic, qos=QOS)
        reader = loanbus.DataReader(topic, qos=READER_QOS)
        assert writer.wait_for_readers(1, timeout=30) and reader.wait_for_writers(1, timeout=30)
        yield Bus(domain_id, writer, reader)


# -- references into a genuine pool ---------------------------------------------------------

BAD_REFERENCES = {
    # name: (slot, seq or None for "the slot's current seq", size, what the refusal says)
    "slot -1 (0xffffffff as a u32 on the wire)": (
        2**32 - 1,
        None,
        SMALL.itemsize,
        "slot 4294967295 outside 0..1",
    ),
    "slot just past the pool": (2, None, SMALL.itemsize, "slot 2 outside 0..1"),
    "slot 2**31": (2**31, None, SMALL.itemsize, "slot 2147483648 outside 0..1"),
    "size 2**63": (0, None, 2**63, f"size 9223372036854775808 outside 1..{SMALL.itemsize}"),
    "size larger than a slot": (0, None, SMALL.itemsize + 1, f"size {SMALL.itemsize + 1} outside"),
    "size 0": (0, None, 0, "size 0 outside"),
    "seq 2**63 (future)": (
        0,
        2**63,
        SMALL.itemsize,
        "sequence number 9223372036854775808 of slot 0 was never",
    ),
    "seq 0": (0, 0, SMALL.itemsize, "sequence number 0 of slot 0 was never issued"),
}


@pytest.mark.parametrize("case", list(BAD_REFERENCES))
def test_a_reference_that_cannot_be_valid_is_refused_and_named(
    bus: Bus, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    slot, seq, size, says = BAD_REFERENCES[case]
    bus.write(1)
    current = bus.writer._pool.slot_sequence(0)
    peer = bus.hostile(bus.advert())
    try:
        bus.take_until(lambda: True, "nothing")
        peer.send(slot, current if seq is None else seq, size)
        taken = bus.take_until(lambda: bus.reader.statistics().refused_references == 1, "the refusal")
        assert taken == []
        assert says in caplog.text, caplog.text
        bus.still_works()
    finally:
        peer.close()


def test_a_future_sequence_number_is_refused(bus: Bus, caplog: pytest.LogCaptureFixture) -> None:
    slot, seq = bus.write(1)
    peer = bus.hostile(bus.advert())
    try:
        bus.take_until(lambda: True, "nothing")
        peer.send(slot, seq + 1, SMALL.itemsize)  # issued to nobody yet
        assert bus.take_until(lambda: bus.reader.statistics().refused_references == 1, "the refusal") == []
        assert f"sequence number {seq + 1} of slot {slot} was never issued" in caplog.text
        bus.still_works()
    finally:
        peer.close()


def test_a_stale_sequence_number_is_taken_but_inconsistent_not_an_error(bus: Bus) -> None:
    slot, stale = bus.write(1)
    bus.write(2)
    reused, fresh = bus.write(3)  # two slots: the third write reuses the first one's slot
    assert reused == slot and fresh > stale
    peer = bus.hostile(bus.advert())
    try:
        genuine = bus.take_until(
            lambda: False, "never", until=lambda got: any(s.info.sequence_number == fresh for s in got)
        )
        bus.reader.return_loan(genuine)
        peer.send(slot, stale, SMALL.itemsize)
        got = bus.take_until(lambda: False, "never", until=lambda got: bool(got))
        assert [s.info.sequence_number for s in got] == [stale]
        assert got[0].info.publication_handle not in {s.info.publication_handle for s in genuine}
        assert not bus.reader.is_data_consistent(got[0])  # the slot now holds a newer sample
        assert bus.reader.statistics().refused_references == 0
        bus.reader.return_loan(got)
        bus.still_works()
    finally:
        peer.close()


@pytest.mark.parametrize(
    ("slot", "seq", "size", "says"),
    [
        (-1, 1, 8, "slot -1 outside 0..1"),
        (2, 1, 8, "slot 2 outside"),
        (2**63, 1, 8, "slot 9223372036854775808 outside"),
        (0, 1, -1, "size -1 outside"),
        (0, 1, 2**63, "size 9223372036854775808 outside"),
        (0, -1, 8, "sequence number -1 of slot 0 was never issued"),
        (0, 2**64, 8, "sequence number 18446744073709551616 of slot 0 was never issued"),
    ],
)
def test_check_reference_refuses_any_python_int_outside_the_pool(
    slot: int, seq: int, size: int, says: str
) -> None:
    name = segment_name(0, "refs", os.urandom(16))
    writer = WriterPool(name, SMALL, slot_count=2, reader_rows=1, writer_guid=b"w" * 16)
    reader = ReaderPool(name, SMALL)
    try:
        s = writer.try_acquire()
        assert s is not None
        writer.publish(s, 0)
        with pytest.raises(loanbus.InvalidReferenceError, match=says.replace("..", r"\.\.")):
            reader.check_reference(slot, seq, size)
        reader.check_reference(0, 1, 8)  # and a valid one passes
    finally:
        reader.close()
        writer.close()


# -- references into unknown or broken pools -----------------------------------------------


def _unmappable(bus: Bus, user_data: bytes, says: str, caplog: pytest.LogCaptureFixture) -> None:
    peer = bus.hostile(user_data)
    try:
        bus.take_until(lambda: True, "nothing")
        peer.send(0, 1, SMALL.itemsize)
        got = bus.take_until(lambda: bus.reader.statistics().unmappable_writers == 1, "the refusal")
        assert got == []
        assert says in caplog.text, caplog.text
        assert bus.reader.statistics().mapped_pools == 1  # only the genuine writer's pool
        bus.still_works()
    finally:
        peer.close()


def test_a_writer_whose_user_data_advertises_no_pool_is_unmappable(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    _unmappable(bus, b"", "does not advertise a loanbus pool", caplog)


def test_a_writer_advertising_garbage_is_unmappable(bus: Bus, caplog: pytest.LogCaptureFixture) -> None:
    _unmappable(bus, b'{"loanbus": 1, "kind": "writer", "segment": "/x"}', "does not advertise", caplog)


def test_a_pool_name_that_does_not_exist_is_refused(bus: Bus, caplog: pytest.LogCaptureFixture) -> None:
    missing = segment_name(bus.domain_id, TOPIC, b"\x42" * 16)
    _unmappable(bus, bus.advert(segment=missing), f"no such segment: {missing}", caplog)


def test_a_pool_name_that_is_a_symlink_is_refused(bus: Bus, caplog: pytest.LogCaptureFixture) -> None:
    link = segment_name(bus.domain_id, TOPIC, b"\x43" * 16)
    os.symlink(shm_path(bus.writer.segment_name), shm_path(link))  # points at the genuine pool
    try:
        _unmappable(bus, bus.advert(segment=link), "Too many levels of symbolic links", caplog)
    finally:
        os.unlink(shm_path(link))


def test_a_pool_name_outside_dev_shm_is_refused(bus: Bus, caplog: pytest.LogCaptureFixture) -> None:
    _unmappable(bus, bus.advert(segment="/../../etc/passwd"), "is not a loanbus pool name", caplog)


@pytest.mark.parametrize(
    "name",
    [
        "/x\u0000y",
        "x\u0000",
        "/a/b",
        "",
        "/",
        "/" + "a" * 300,
        "/loanbus.d1.t-00000000." + "0" * 31 + "\u0000",
    ],
    ids=[
        "NUL inside",
        "NUL at the end",
        "a second slash",
        "empty",
        "only a slash",
        "too long",
        "NUL in a pool name",
    ],
)
def test_a_pool_name_with_a_nul_byte_or_path_tricks_is_refused_before_any_system_call(
    bus: Bus, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    # A NUL byte used to reach posix_ipc and kill the reader with SIGSEGV; the name is checked
    # against the pattern loanbus makes (docs/shm-layout.md) first.
    _unmappable(bus, bus.advert(segment=name), "is not a loanbus pool name", caplog)


def test_an_advertised_pool_with_a_bad_header_is_refused(bus: Bus, caplog: pytest.LogCaptureFixture) -> None:
    other = segment_name(bus.domain_id, TOPIC, b"\x44" * 16)
    fake = WriterPool(other, SMALL, slot_count=2, reader_rows=1, writer_guid=b"\x44" * 16)
    try:
        poke_header(other, "magic", b"EVILBUS!")
        advert = bus.advert(segment=other, writer_guid=(b"\x44" * 16).hex())
        _unmappable(bus, advert, "bad magic b'EVILBUS!'", caplog)
    finally:
        fake.close()


def test_an_advert_naming_another_writers_pool_is_refused(bus: Bus, caplog: pytest.LogCaptureFixture) -> None:
    # The genuine segment, but claimed by a writer with another guid.
    _unmappable(bus, bus.advert(writer_guid="55" * 16), "belongs to another writer", caplog)


def test_an_advert_with_fields_of_the_wrong_type_is_refused(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    _unmappable(bus, bus.advert(writer_guid=5, segment=7), "does not advertise", caplog)


def test_a_reference_from_an_ordinary_cyclone_writer_is_understood(bus: Bus) -> None:
    slot, seq = bus.write(7)
    genuine = bus.take_until(lambda: False, "never", until=lambda got: bool(got))
    bus.reader.return_loan(genuine)
    peer = bus.hostile(bus.advert())
    try:
        peer.send_serialized(slot, seq, SMALL.itemsize)  # the binding's serializer: 24 bytes
        got = bus.take_until(lambda: False, "never", until=lambda got: bool(got))
        assert [(s.info.slot, s.info.sequence_number) for s in got] == [(slot, seq)]
        assert int(got[0].data["value"]) == 7 and bus.reader.is_data_consistent(got[0])
        bus.reader.return_loan(got)
    finally:
        peer.close()


@pytest.mark.parametrize("encapsulation", [b"\x00\x00", b"\x00\x06"], ids=["CDR_BE", "XCDR2_BE"])
def test_a_big_endian_reference_is_understood(bus: Bus, encapsulation: bytes) -> None:
    # Cyclone DDS turns a big-endian sample into the reader's byte order on arrival.
    slot, seq = bus.write(5)
    bus.reader.return_loan(bus.take_until(lambda: False, "never", until=lambda got: bool(got)))
    peer = bus.hostile(bus.advert())
    try:
        big_endian = encapsulation + b"\x00\x00" + struct.pack(">QQI4x", seq, SMALL.itemsize, slot)
        assert ddspy_write_ts(peer.writer._ref, big_endian, time.time_ns()) == 0
        got = bus.take_until(lambda: False, "never", until=lambda got: bool(got))
        assert [(s.info.slot, s.info.sequence_number) for s in got] == [(slot, seq)]
        assert bus.reader.statistics().refused_references == 0
        bus.reader.return_loan(got)
    finally:
        peer.close()


def test_a_reference_in_no_little_endian_encoding_is_counted_as_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The filter itself, for what no Cyclone DDS hands over today (a unit test of pure logic)."""
    from loanbus._transport import refs

    class Info:
        valid_data = True
        publication_handle = 7
        source_timestamp = 1

    good = _CDR_LE + _REF.pack(3, 8, 1)
    arrived = [(b"\x00\x00\x00\x00" + _REF.pack(3, 8, 1), Info()), (b"\x00\x01", Info()), (good, Info())]
    monkeypatch.setattr(refs, "ddspy_take", lambda *_: arrived)
    reader = refs.RefReader.__new__(refs.RefReader)
    reader._dr, reader._ref, reader.refused = object(), 0, 0
    assert reader.take(16) == [(7, 1, 3, 8, 1)]
    assert reader.refused == 2


def test_a_forged_writer_claiming_the_genuine_pool_leaves_and_the_genuine_one_stays(bus: Bus) -> None:
    peer = bus.hostile(bus.advert())  # the same pool, claimed by another DDS writer
    peer.close()
    wait_for(lambda: len(bus.reader.matched_writers()) == 1, 30, "the forged writer to go")
    bus.still_works()
    stats = bus.reader.statistics()
    assert (stats.mapped_pools, stats.lost_writers) == (1, 0)
