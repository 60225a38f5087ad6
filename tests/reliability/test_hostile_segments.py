"""Broken or hostile segments, each in its own test: attaching refuses, naming the cause.

Every refusal is a ``PoolFormatError`` (or ``BrokenError`` for a segment shrunk under a
live reader), raised before anything is read through a payload mapping.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import posix_ipc
import pytest

import loanbus
from loanbus import _layout as L
from loanbus._shm import Segment
from loanbus.inspect import describe
from loanbus.pool import ReaderPool, WriterPool, segment_name
from tests.helpers import CTX, SMALL, join_ok, start
from tests.reliability import poke_header, python, run_cli, shm_entries, shm_path, wait_for

OTHER = loanbus.ShmemType("test::Other", SMALL.dtype)  # same layout, another type


@pytest.fixture
def pool() -> Iterator[WriterPool]:
    name = segment_name(0, "segments", os.urandom(16))
    writer = WriterPool(name, SMALL, slot_count=2, reader_rows=2, writer_guid=b"w" * 16)
    yield writer
    writer.close()


def _refused(name: str, says: str, stype: loanbus.ShmemType = SMALL, **kw: Any) -> None:
    with pytest.raises(loanbus.PoolFormatError) as info:
        ReaderPool(name, stype, **kw)
    assert says in str(info.value), str(info.value)


def test_the_genuine_pool_attaches(pool: WriterPool) -> None:
    ReaderPool(pool.name, SMALL, writer_guid=b"w" * 16).close()  # the baseline of every test here


def test_wrong_magic_is_refused(pool: WriterPool) -> None:
    poke_header(pool.name, "magic", b"NOTLOANB")
    _refused(pool.name, "bad magic b'NOTLOANB'")


def test_another_abi_version_is_refused(pool: WriterPool) -> None:
    poke_header(pool.name, "abi_version", L.ABI_VERSION + 1)
    _refused(pool.name, f"abi version {L.ABI_VERSION + 1} is not {L.ABI_VERSION}")


def test_another_type_hash_is_refused(pool: WriterPool) -> None:
    _refused(pool.name, f"holds type 'test::Small' with hash {SMALL.type_hash.hex()}", stype=OTHER)


def test_a_type_hash_word_changed_in_place_is_refused(pool: WriterPool) -> None:
    poke_header(pool.name, "type_hash", b"\x00" * 16)
    _refused(pool.name, "with hash 00000000000000000000000000000000")


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_a_segment_owned_by_another_uid_than_its_header_claims_is_refused(pool: WriterPool) -> None:
    os.chown(shm_path(pool.name), 4242, -1)
    _refused(pool.name, f"owned by uid 4242 but claims writer uid {os.getuid()}")


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_another_users_well_formed_pool_is_trusted_only_through_a_named_group(pool: WriterPool) -> None:
    os.chown(shm_path(pool.name), 4242, 4343)
    poke_header(pool.name, "writer_uid", 4242)  # consistent: a genuine pool of user 4242
    _refused(pool.name, "belongs to uid 4242, not to this user")
    _refused(pool.name, "belongs to uid 4242", trusted_group=1234)  # not its group
    ReaderPool(pool.name, SMALL, trusted_group=4343).close()  # the group the reader names


def test_a_header_claiming_another_writer_uid_is_refused(pool: WriterPool) -> None:
    poke_header(pool.name, "writer_uid", os.getuid() + 4242)
    _refused(pool.name, f"owned by uid {os.getuid()} but claims writer uid {os.getuid() + 4242}")


@pytest.mark.parametrize("delta", [L.PAGE, -L.PAGE, -1])
def test_a_size_that_does_not_match_fstat_is_refused(pool: WriterPool, delta: int) -> None:
    size = pool.layout.segment_size
    os.truncate(shm_path(pool.name), size + delta)
    _refused(pool.name, f"segment size {size + delta} from fstat does not match the header ({size})")


def test_a_geometry_word_that_does_not_add_up_is_refused(pool: WriterPool) -> None:
    poke_header(pool.name, "payload_offset", pool.layout.payload_offset - L.PAGE)
    _refused(pool.name, "payload_offset")


def test_a_slot_count_that_does_not_fit_the_file_is_refused(pool: WriterPool) -> None:
    poke_header(pool.name, "slot_count", 2**40)
    _refused(pool.name, "impossible geometry")


def test_an_unknown_state_is_refused(pool: WriterPool) -> None:
    poke_header(pool.name, "state", 7)
    _refused(pool.name, "unknown state 7")


def test_a_closed_pool_is_refused(pool: WriterPool) -> None:
    poke_header(pool.name, "state", L.SegmentState.CLOSED)
    _refused(pool.name, "is CLOSED, not READY")


def test_another_writers_pool_is_refused(pool: WriterPool) -> None:
    _refused(pool.name, "belongs to another writer", writer_guid=b"x" * 16)


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory", "empty file"])
def test_a_name_that_is_not_a_segment_is_refused(pool: WriterPool, kind: str) -> None:
    name = segment_name(0, "segments", os.urandom(16))
    path = shm_path(name)
    says = {
        "symlink": "Too many levels of symbolic links",
        "fifo": "empty or not a regular file",  # opened without blocking, then refused
        "directory": "empty or not a regular file",
        "empty file": "empty or not a regular file",
    }[kind]
    make = {
        "symlink": lambda: os.symlink(shm_path(pool.name), path),
        "fifo": lambda: os.mkfifo(path, 0o600),
        "directory": lambda: os.mkdir(path, 0o700),
        "empty file": lambda: open(path, "xb").close(),
    }[kind]
    make()
    try:
        _refused(name, says)
    finally:
        os.rmdir(path) if kind == "directory" else os.unlink(path)


# -- half-initialised segments -------------------------------------------------------------


def _init_only(name: str) -> Segment:
    """What a creator has done just before it marks the segment READY."""
    layout = L.Layout.compute(2, 1, SMALL.itemsize)
    seg = Segment.create(name, layout.segment_size)
    seg.mapping[: L.HEADER_SIZE] = L.encode_header(
        layout,
        type_hash=SMALL.type_hash,
        type_name=SMALL.name,
        writer_guid=b"h" * 16,
        writer_pid=os.getpid(),
        writer_start_time=0,
        writer_uid=os.getuid(),
        created_ns=0,
        protected_slots=0,
    )
    return seg


def test_a_half_initialised_segment_of_a_live_creator_is_refused_and_left_alone() -> None:
    name = segment_name(0, "init", os.urandom(16))
    seg = _init_only(name)
    try:
        _refused(name, "is INIT, not READY")
        entry = describe(name.lstrip("/"))
        assert entry.alive and entry.state == "INIT"  # its creator holds the lock: not ours to remove
        dry = run_cli("clean", "--dry-run").stdout
        assert not [line for line in dry.splitlines() if name in line], dry
        assert os.path.exists(shm_path(name))
    finally:
        seg.unlink()
        seg.close()


def creator_main(name: str, stage: str) -> None:
    """Create a segment, stop at ``stage`` and wait to be killed."""
    if stage == "opened":  # killed between shm_open and anything else: an empty file, no lock
        posix_ipc.SharedMemory(name, flags=posix_ipc.O_CREX, mode=0o600, size=0)
    else:
        _init_only(name)
    print("ready", flush=True)
    signal.pause()


@pytest.mark.parametrize(("stage", "says"), [("init", "is INIT"), ("opened", "empty or not a regular file")])
def test_a_segment_whose_creator_was_killed_before_ready_is_refused_and_cleaned(
    shm_prefix: str, stage: str, says: str
) -> None:
    name = segment_name(0, "killed", os.urandom(16))
    proc = python(
        "from tests.reliability.test_hostile_segments import creator_main; "
        f"creator_main({name!r}, {stage!r})",
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("ready")
        proc.kill()
        proc.wait(10)
        proc.stdout.close()
        _refused(name, says)
        # An empty, unlocked file may be microseconds from being locked by a live creator: it
        # counts as being created for 1 s, then as dead.
        wait_for(lambda: not describe(name.lstrip("/")).alive, 10, "the dead creator's segment to look dead")
        result = run_cli("clean")
        assert result.returncode == 0, result.stderr
        assert not os.path.exists(shm_path(name)) and shm_entries(shm_prefix) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


# -- truncation under a live reader --------------------------------------------------------


def test_a_segment_shrunk_while_mapped_fails_check_size(pool: WriterPool) -> None:
    reader = ReaderPool(pool.name, SMALL)
    try:
        reader.check_size()
        os.truncate(shm_path(pool.name), pool.layout.payload_offset)
        with pytest.raises(loanbus.BrokenError, match=f"truncated to {pool.layout.payload_offset} bytes"):
            reader.check_size()
    finally:
        reader.close()


def _truncated_take(domain_id: int, out: Any) -> None:
    """Writer and reader in one process; the pool is shrunk between write and take."""
    import logging

    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logging.getLogger("loanbus").addHandler(Keep())
    qos = loanbus.Qos(pool_slots=2)
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        topic = loanbus.Topic(dp, "shrunk", SMALL)
        writer = loanbus.DataWriter(topic, qos=qos)
        reader = loanbus.DataReader(topic, qos=loanbus.Qos(pool_slots=2, dds_references=True))
        assert writer.wait_for_readers(1, 30) and reader.wait_for_writers(1, 30)
        loan = writer.get_loan()
        loan.data["value"] = 1
        writer.write(loan)
        first = reader.take(timeout=10)
        assert len(first) == 1 and int(first[0].data["value"]) == 1
        reader.return_loan(first)
        loan = writer.get_loan()
        writer.write(loan)  # a reference now waits in the reader's inbox
        payload = writer._pool.layout.payload_offset
        os.truncate(shm_path(writer.segment_name), payload)  # this user shrinks it under both
        got: list[Any] = []
        wait_for(
            lambda: bool(
                got.extend(reader.take(timeout=0.05)) or got or reader.statistics().refused_references
            ),
            30,
            "the reference",
        )
        # Its view is not read here (that would fault, in this code); loanbus's own check reads
        # the writer's sealed copy of the sequence numbers, which no truncation reaches.
        consistent = [reader.is_data_consistent(s) for s in got]
        out.put((len(got), consistent, reader.statistics().refused_references, messages))
        os.truncate(shm_path(writer.segment_name), writer._pool.layout.segment_size)


def test_take_and_is_data_consistent_never_fault_on_a_shrunk_pool(domain_id: int) -> None:
    out = CTX.Queue()
    proc = start(_truncated_take, domain_id, out)
    join_ok(proc)  # a SIGBUS would show as exit code -7
    taken, consistent, refused, messages = out.get(timeout=10)
    assert (taken, consistent, refused) == (1, [True], 0)
    assert not [m for m in messages if "refused" in m], messages


def test_reading_a_view_taken_before_the_shrink_is_the_one_sigbus_left(pool: WriterPool) -> None:
    """Documented limit: a view handed out before the shrink faults; check_size cannot help."""
    code = (
        "import os, numpy as np\n"
        "from loanbus.pool import ReaderPool\n"
        "from tests.helpers import SMALL\n"
        f"r = ReaderPool({pool.name!r}, SMALL)\n"
        "v = r.view(1)\n"
        f"os.truncate('/dev/shm' + {pool.name!r}, {pool.layout.payload_offset})\n"
        "print(int(np.asarray(v['blob']).sum()))\n"
    )
    proc = python(code, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGBUS, err
    os.truncate(shm_path(pool.name), pool.layout.segment_size)  # or the writer would fault too
