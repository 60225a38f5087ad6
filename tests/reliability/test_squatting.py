"""Squatting: a file, symlink or semaphore already at the name a writer wants is never adopted.

``WriterPool`` (one exact name) fails closed and leaves the squatter untouched;
``DataWriter`` (free to choose) picks a fresh name. Its guids are forced here by replacing
``os.urandom`` while it is created: that only decides which names it tries.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from collections.abc import Iterator
from typing import Any

import pytest

import loanbus
from loanbus._shm import SegmentError
from loanbus.pool import WriterPool, segment_name, socket_path
from tests.helpers import SMALL
from tests.reliability import shm_path

SECRET = b"not yours" * 100


def _squat_file(name: str) -> str:
    path = shm_path(name)
    with open(path, "xb") as f:
        f.write(SECRET)
    os.chmod(path, 0o644)
    return path


def _untouched(path: str) -> None:
    with open(path, "rb") as f:
        assert f.read() == SECRET
    assert os.stat(path).st_mode & 0o777 == 0o644


def test_a_writer_pool_never_adopts_a_file_at_its_name() -> None:
    name = segment_name(0, "squat", os.urandom(16))
    path = _squat_file(name)
    try:
        with pytest.raises(SegmentError) as info:
            WriterPool(name, SMALL, slot_count=2, reader_rows=1, writer_guid=b"w" * 16)
        assert info.value.errno == errno.EEXIST and "already exists" in str(info.value)
        _untouched(path)
    finally:
        os.unlink(path)


def test_a_writer_pool_never_follows_a_symlink_at_its_name(tmp_path: Any) -> None:
    name = segment_name(0, "squat", os.urandom(16))
    target = tmp_path / "target"
    target.write_bytes(SECRET)
    dangling = tmp_path / "not-yet"
    for dest in (target, dangling):
        os.symlink(dest, shm_path(name))
        try:
            with pytest.raises(SegmentError) as info:
                WriterPool(name, SMALL, slot_count=2, reader_rows=1, writer_guid=b"w" * 16)
            assert info.value.errno == errno.EEXIST
        finally:
            os.unlink(shm_path(name))
    assert target.read_bytes() == SECRET and not dangling.exists()


class _LiveSquatter:
    """Files at chosen names, held by a live lock: what a live hostile process leaves there.

    (An unlocked squatter of the topic's prefix is reaped as dead by the next DataWriter.)
    """

    def __init__(self) -> None:
        self.fds: list[int] = []
        self.paths: list[str] = []

    def file(self, name: str) -> None:
        path = _squat_file(name)
        fd = os.open(path, os.O_RDONLY)
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_RDLCK, 0, 0, 0, 0))
        self.fds.append(fd)
        self.paths.append(path)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        for path in self.paths:
            os.unlink(path)


@pytest.fixture
def squatter() -> Iterator[_LiveSquatter]:
    s = _LiveSquatter()
    yield s
    s.close()


def _forced_guids(monkeypatch: pytest.MonkeyPatch, guids: list[bytes]) -> None:
    queue = list(guids)

    def new_guid() -> bytes:
        return queue.pop(0) if queue else os.urandom(16)  # then real randomness again

    monkeypatch.setattr(loanbus.pub, "new_guid", new_guid)


def test_a_data_writer_picks_a_fresh_name_when_its_names_are_taken(
    domain_id: int, monkeypatch: pytest.MonkeyPatch, squatter: _LiveSquatter
) -> None:
    taken, free = b"\x01" * 16, b"\x02" * 16
    squatter.file(segment_name(domain_id, "squat", taken))
    _forced_guids(monkeypatch, [taken, free])
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        topic = loanbus.Topic(dp, "squat", SMALL)
        writer = loanbus.DataWriter(topic)
        assert writer.segment_name == segment_name(domain_id, "squat", free)
        assert writer.guid == free
        _untouched(squatter.paths[0])
        reader = loanbus.DataReader(topic)
        assert writer.wait_for_readers(1, 30) and reader.wait_for_writers(1, 30)
        loan = writer.get_loan()
        loan.data["value"] = 7
        writer.write(loan)
        got = reader.take(timeout=10)
        assert [int(s.data["value"]) for s in got] == [7]  # from the fresh pool, not the squatter


def test_a_data_writer_never_adopts_a_file_at_its_registration_socket_name(
    domain_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken, free = b"\x04" * 16, b"\x05" * 16
    planted = socket_path(segment_name(domain_id, "squat", taken), taken)
    with open(planted, "xb") as f:
        f.write(SECRET)
    os.chmod(planted, 0o644)
    _forced_guids(monkeypatch, [taken, free])
    try:
        with loanbus.DomainParticipant(domain_id=domain_id) as dp:
            topic = loanbus.Topic(dp, "squat", SMALL)
            writer = loanbus.DataWriter(topic)
            assert writer.guid == free  # the name next to the planted file was given up
            assert not os.path.exists(shm_path(segment_name(domain_id, "squat", taken)))
            reader = loanbus.DataReader(topic)
            assert writer.wait_for_readers(1, 30) and reader.wait_for_writers(1, 30)
            loan = writer.get_loan()
            loan.data["value"] = 8
            writer.write(loan)
            assert [int(s.data["value"]) for s in reader.take(timeout=10)] == [8]
        _untouched(planted)
    finally:
        os.unlink(planted)


def test_a_data_writer_gives_up_clearly_when_every_name_it_tries_is_taken(
    domain_id: int, monkeypatch: pytest.MonkeyPatch, squatter: _LiveSquatter
) -> None:
    guids = [bytes([i]) * 16 for i in range(1, 4)]
    for guid in guids:
        squatter.file(segment_name(domain_id, "squat", guid))
    _forced_guids(monkeypatch, guids)
    with (
        loanbus.DomainParticipant(domain_id=domain_id) as dp,
        pytest.raises(loanbus.PoolFormatError, match="every name tried was taken"),
    ):
        loanbus.DataWriter(loanbus.Topic(dp, "squat", SMALL))
    for path in squatter.paths:
        _untouched(path)


def test_a_dead_squatter_in_a_topics_namespace_is_reaped_never_adopted(
    domain_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    guid = b"\x03" * 16
    name = segment_name(domain_id, "squat", guid)
    path = _squat_file(name)
    os.utime(path, (0, 0))  # not a segment being created right now
    _forced_guids(monkeypatch, [guid])
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "squat", SMALL))
        # The unlocked leftover was removed as dead; the writer's own segment is a new file.
        assert writer.segment_name == name
        with open(path, "rb") as f:
            assert f.read(8) == b"LOANBUS1"
        assert os.stat(path).st_mode & 0o777 == 0o600
