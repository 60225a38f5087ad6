"""Hostile peers and broken resources on one host: no signal, no hang, no stalled writer.

Each test reproduces one way loanbus was attacked or broken (docs/reliability.md, "hostile
peers and resources"): a truncated pool, a FIFO or another user's file planted in /dev/shm,
a /dev/shm that is too small, forged reader adverts from a plain Cyclone DDS participant, a
reader that cannot map a pool, a pool too big to map. Real processes, real Cyclone DDS, real
/dev/shm; another user is ``nobody`` (setpriv), a small /dev/shm a private mount namespace.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from cyclonedds.domain import DomainParticipant as RawParticipant
from cyclonedds.pub import DataWriter as RawWriter
from cyclonedds.qos import Policy
from cyclonedds.qos import Qos as RawQos
from cyclonedds.sub import DataReader as RawReader
from cyclonedds.topic import Topic as RawTopic
from cyclonedds.util import duration

import loanbus
from loanbus import _advert
from loanbus import _layout as L
from loanbus._proc import host_identity
from loanbus._transport import wire
from loanbus._transport.dds import _delete
from loanbus._transport.refs import LoanRef
from loanbus.pool import segment_name, socket_path, topic_prefix
from tests.helpers import CTX, SMALL, join_ok, start
from tests.reliability import REPO, poke_header, python, run_cli, shm_entries, shm_path, wait_for

RELIABLE = loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, max_samples=2, max_blocking_time=2.0)
ROOT_ONLY = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv to be another user"
)
# nobody cannot enter root's home, where the interpreter lives: it may read (never write) files.
AS_NOBODY = [
    "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
    "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
]  # fmt: skip


def _as_nobody(code: str, *, groups: str = "", timeout: float = 120) -> subprocess.CompletedProcess[str]:
    prefix = AS_NOBODY if not groups else [*AS_NOBODY[:3], f"--groups={groups}", *AS_NOBODY[4:]]
    return subprocess.run(
        [*prefix, sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


# -- 2. a pool truncated while in use -----------------------------------------------------------


def _truncation_writer(domain_id: int, out: Any, go: Any) -> None:
    os.environ["LOANBUS_STATS_INTERVAL"] = "0.05"  # the statistics thread reads holds all the time
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "cut", SMALL), qos=RELIABLE)
        assert writer.wait_for_readers(1, timeout=60)
        for value in (1, 2):
            loan = writer.get_loan()
            loan.data["value"] = value
            writer.write(loan)
        out.put(("writer", writer.segment_name, writer._pool.layout.segment_size))
        assert go.wait(60)
        time.sleep(0.3)  # several statistics ticks over the truncated pool: they skip its words
        outcome = "statistics: " + str(writer.statistics().slots)
        out.put(("writer done", outcome))


def _truncation_reader(domain_id: int, out: Any, go: Any) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, "cut", SMALL), qos=RELIABLE)
        taken: list[loanbus.LoanedSample] = []
        while len(taken) < 1:
            taken += reader.take(max_samples=1, timeout=10)  # one is taken, one waits in the inbox
        out.put(("reader", int(taken[0].data["value"])))
        assert go.wait(60)
        # The waiting reference came from the pool's own writer: it is handed out without
        # reading the pool (its view would fault in this code, had it read it); consistency is
        # checked in the writer's sealed copy of the sequence numbers, which no truncation
        # reaches: neither slot was reused.
        later = reader.take(timeout=0.5)
        consistent = [reader.is_data_consistent(s) for s in taken + later]
        reader.return_loan(taken + later)
        out.put(("reader done", len(later), consistent, reader.statistics().refused_references))
        reader.close()


def test_a_pool_truncated_to_one_page_faults_neither_side_inside_loanbus(domain_id: int) -> None:
    out, go = CTX.Queue(), CTX.Event()
    procs = [start(_truncation_writer, domain_id, out, go), start(_truncation_reader, domain_id, out, go)]
    try:
        got = dict((m[0], m[1:]) for m in (out.get(timeout=90), out.get(timeout=90)))
        segment, size = got["writer"]
        assert got["reader"] == (1,)
        os.truncate(shm_path(segment), L.PAGE)  # the header page alone is left
        go.set()
        done = dict((m[0], m[1:]) for m in (out.get(timeout=90), out.get(timeout=90)))
        if os.path.exists(shm_path(segment)):  # back, in case the writer has not closed yet
            os.truncate(shm_path(segment), size)
        for proc in procs:
            join_ok(proc)  # a SIGBUS would show as exit code -7
    finally:
        go.set()
        for proc in procs:
            if proc.is_alive():
                proc.kill()
    (outcome,) = done["writer done"]
    assert outcome == "statistics: 3"
    taken_later, consistent, refused = done["reader done"]
    assert (taken_later, consistent, refused) == (1, [True, True], 0)


@ROOT_ONLY
def test_a_member_of_the_pools_group_opens_it_read_only_and_cannot_truncate_it(domain_id: int) -> None:
    gid = 4242
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "grouped", SMALL), qos=loanbus.Qos(shm_group=gid))
        path = shm_path(writer.segment_name)
        code = (
            "import errno, json, os\n"
            f"path = {path!r}\n"
            "out = {}\n"
            "fd = os.open(path, os.O_RDONLY)\n"
            "out['read'] = len(os.pread(fd, 8, 0))\n"
            "for what, act in (('open for writing', lambda: os.open(path, os.O_RDWR)),\n"
            "                  ('truncate', lambda: os.truncate(path, 4096)),\n"
            "                  ('ftruncate', lambda: os.ftruncate(fd, 4096))):\n"
            "    try:\n"
            "        act(); out[what] = 'done'\n"
            "    except OSError as exc:\n"
            "        out[what] = errno.errorcode[exc.errno]\n"
            "print(json.dumps(out))\n"
        )
        result = _as_nobody(code, groups=str(gid))
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report == {
            "read": 8,
            "open for writing": "EACCES",
            "truncate": "EACCES",
            "ftruncate": "EINVAL",
        }
        assert os.stat(path).st_size == writer._pool.layout.segment_size


# -- 3. the wake-up semaphore is gone ---------------------------------------------------------


def test_no_semaphore_exists_and_a_file_planted_at_its_old_name_changes_nothing(domain_id: int) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        topic = loanbus.Topic(dp, "nosem", SMALL)
        writer = loanbus.DataWriter(topic, qos=RELIABLE)
        planted = "/dev/shm/sem." + writer.segment_name.lstrip("/") + ".wake"
        with open(planted, "xb"):
            pass  # an empty (truncated) semaphore file: sem_open on it used to kill both sides
        try:
            reader = loanbus.DataReader(topic, qos=RELIABLE)
            assert writer.wait_for_readers(1, 30) and reader.wait_for_writers(1, 30)
            for value in range(20):  # 3 slots: the writer waits for returns again and again
                loan = writer.get_loan(timeout=10)
                loan.data["value"] = value
                writer.write(loan)
                got = reader.take(timeout=10)
                assert [int(s.data["value"]) for s in got] == [value]
                reader.return_loan(got)
            assert os.path.getsize(planted) == 0  # nobody opened it as a semaphore
        finally:
            os.unlink(planted)
        assert not [n for n in os.listdir("/dev/shm") if n.startswith("sem.") and "nosem" in n]


# -- 4. a /dev/shm that is too small ----------------------------------------------------------

_SMALL_SHM = """
import json, os, numpy as np, loanbus
from loanbus import _shm
from loanbus.pool import WriterPool, segment_name
big = loanbus.ShmemType("test::Big", np.uint8, shape=(31 << 20,))
out = {}
with loanbus.DomainParticipant(domain_id=DOMAIN) as dp:
    try:
        loanbus.DataWriter(loanbus.Topic(dp, "big", big), loanbus.Qos(max_samples=3))  # 124 MiB
        out["writer"] = "created"
    except loanbus.PoolFormatError as exc:
        out["writer"] = str(exc)
# When the free space looked sufficient (another writer may take it meanwhile), the
# reservation itself is what refuses: posix_fallocate fails, never a SIGBUS later.
_shm.shm_free_bytes = lambda: 1 << 40
try:
    name = segment_name(0, "big", os.urandom(16))
    WriterPool(name, big, slot_count=4, reader_rows=1, writer_guid=os.urandom(16))
    out["pool"] = "created"
except _shm.SegmentError as exc:
    out["pool"] = str(exc)
out["left"] = sorted(os.listdir("/dev/shm"))
print(json.dumps(out))
"""


def test_a_pool_that_does_not_fit_in_dev_shm_is_refused_saying_what_it_needs_and_what_is_free(
    domain_id: int,
) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1)")
    script = 'mount -t tmpfs -o size=64M,mode=1777 tmpfs /dev/shm && exec "$0" -c "$1"'
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, sys.executable, _SMALL_SHM.replace("DOMAIN", str(domain_id))],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    if result.returncode != 0 and ("mount" in result.stderr or "unshare" in result.stderr):
        pytest.skip(f"cannot make a private /dev/shm here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr  # a SIGBUS would be -7
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "no room for 130," in report["writer"] and "bytes free" in report["writer"], report
    assert "no room for" in report["pool"] and "bytes free" in report["pool"], report
    assert report["left"] == []  # the half-made pools were removed again


# -- 5. and 6. files planted in /dev/shm ------------------------------------------------------

_WRITER_AND_TOOLS = """
import json, sys, loanbus
from tests.helpers import SMALL
with loanbus.DomainParticipant(domain_id=DOMAIN) as dp:
    w = loanbus.DataWriter(loanbus.Topic(dp, "planted", SMALL))
    print(json.dumps({"segment": w.segment_name}), flush=True)
"""


def test_a_fifo_planted_under_a_topic_prefix_hangs_neither_a_writer_nor_ls_nor_clean(domain_id: int) -> None:
    fifo = shm_path(topic_prefix(domain_id, "planted") + "f" * 32)
    os.mkfifo(fifo, 0o666)  # anyone may do this in /dev/shm; a plain open() would block for ever
    try:
        writer = subprocess.run(
            [sys.executable, "-c", _WRITER_AND_TOOLS.replace("DOMAIN", str(domain_id))],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert writer.returncode == 0, writer.stderr
        listing = run_cli("ls", timeout=60)
        assert listing.returncode == 0, listing.stderr
        assert "FIFO" in listing.stdout  # listed with what it is, not opened
        cleaned = run_cli("clean", timeout=60)
        assert cleaned.returncode == 0, cleaned.stderr
        assert os.path.exists(fifo)  # not a pool: left alone
    finally:
        os.unlink(fifo)


@ROOT_ONLY
def test_another_users_file_under_a_topic_prefix_never_fails_a_writer(domain_id: int) -> None:
    planted = shm_path(topic_prefix(domain_id, "planted") + "e" * 32)
    with open(planted, "wb") as f:
        f.write(b"not a pool of yours")
    os.chmod(planted, 0o644)
    os.utime(planted, (0, 0))  # old: no creation grace
    try:
        result = _as_nobody(_WRITER_AND_TOOLS.replace("DOMAIN", str(domain_id)))
        assert result.returncode == 0, result.stderr  # it used to fail with a PermissionsError
        assert "segment" in json.loads(result.stdout)
        assert os.path.exists(planted)
    finally:
        os.unlink(planted)


# -- 7. forged reader adverts -----------------------------------------------------------------


def _genuine_reader(domain_id: int, count: int, out: Any) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, "forged", SMALL), qos=RELIABLE)
        out.put("ready")
        values: list[int] = []
        deadline = time.monotonic() + 120
        while len(values) < count and time.monotonic() < deadline:
            got = reader.take(timeout=1)
            values += [int(s.data["value"]) for s in got]
            reader.return_loan(got)
        out.put(values)


def test_forged_reader_adverts_from_a_plain_participant_get_no_rows_and_stall_nothing(domain_id: int) -> None:
    count = 200
    out = CTX.Queue()
    proc = start(_genuine_reader, domain_id, count, out)
    fakes_dp = None
    try:
        assert out.get(timeout=60) == "ready"
        with loanbus.DomainParticipant(domain_id=domain_id) as dp:
            writer = loanbus.DataWriter(loanbus.Topic(dp, "forged", SMALL), qos=RELIABLE)
            fakes_dp = RawParticipant(domain_id)  # in the domain loanbus configured (loopback)
            fakes = []
            for _ in range(16):  # as many as the writer has hold rows: they used to take every one
                advert = _advert.ReaderAdvert(
                    reader_id=os.urandom(16).hex(),
                    host=host_identity(),
                    uid=os.getuid(),
                    pid=os.getpid(),
                    shm=True,
                    reliable=True,
                    type_hash=SMALL.type_hash.hex(),
                    refs="local",
                )
                qos = RawQos(
                    Policy.Userdata(_advert.encode_reader(advert)),
                    Policy.Reliability.Reliable(duration(seconds=1)),
                    Policy.History.KeepAll,
                )
                fakes.append(RawReader(fakes_dp, RawTopic(fakes_dp, "loanbus_ref/forged", LoanRef), qos=qos))
            wait_for(lambda: len(writer.matched_readers()) == 17, 30, "the fakes and the reader to match")
            assert writer.wait_for_readers(1, timeout=30)  # the genuine reader registered
            for value in range(count):
                loan = writer.get_loan()  # the fakes never registered: they hold nothing
                loan.data["value"] = value
                writer.write(loan)
            assert out.get(timeout=120) == list(range(count))
            stats = writer.statistics()
            assert stats.loan_timeouts == 0 and stats.attached_readers == 1
            join_ok(proc)
            _delete(fakes_dp)
            fakes_dp = None
    finally:
        if fakes_dp is not None:
            _delete(fakes_dp)
        if proc.is_alive():
            proc.kill()


# -- 8. a reader that cannot map a pool, or refuses a reference ---------------------------------


def test_a_reader_that_cannot_map_a_pool_registers_nothing_and_pins_no_slot(domain_id: int) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        topic = loanbus.Topic(dp, "unmapped", SMALL)
        writer = loanbus.DataWriter(topic, qos=RELIABLE)
        poke_header(writer.segment_name, "magic", b"BROKEN!!")  # readers joining now cannot map it
        reader = loanbus.DataReader(topic, qos=RELIABLE)
        wait_for(lambda: reader.statistics().map_failures == 1, 30, "the reader to give up on the pool")
        for value in range(10):  # 3 slots: a hold of that reader would stall the writer at once
            loan = writer.get_loan(timeout=0.5)
            loan.data["value"] = value
            writer.write(loan)
        stats = writer.statistics()
        assert (stats.loan_timeouts, stats.attached_readers, stats.held_slots) == (0, 0, 0)


def test_a_reference_a_reliable_reader_refuses_gives_its_hold_back(domain_id: int) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        topic = loanbus.Topic(dp, "refused", SMALL)
        qos = replace(RELIABLE, max_samples=1, max_blocking_time=0.5)  # 2 slots
        writer = loanbus.DataWriter(topic, qos=qos)
        reader = loanbus.DataReader(topic, qos=qos)
        assert writer.wait_for_readers(1, 30) and reader.wait_for_writers(1, 30)
        held = []
        for _ in range(2):
            loan = writer.get_loan()
            held.append((loan.slot, loan.sequence_number))
            writer.write(loan)
        (link,) = writer._sinks.attached.values()
        assert [link.holds.cells[slot] for slot, _ in held] == [seq for _, seq in held]
        # The second reference reaches the reader damaged (a size no sample has): it is refused.
        fd = reader.fileno()
        records = os.read(fd, 2 * wire.RECORD_SIZE)
        index = wire.RECORD.unpack(records[wire.RECORD_SIZE :])[1]
        slot, seq = held[1]
        os.write(reader._inbox.write_fd, records[: wire.RECORD_SIZE])
        os.write(reader._inbox.write_fd, wire.encode_record(index, slot, seq, 0, 0))
        first = reader.take(max_samples=8, timeout=1)
        assert [s.info.sequence_number for s in first] == [held[0][1]]
        assert reader.statistics().refused_references == 1
        assert link.holds.cells[slot] == 0  # the refused reference's hold was given back ...
        reader.return_loan(first)
        loans = [writer.get_loan(), writer.get_loan()]  # ... so both slots can be loaned again
        assert sorted(loan.slot for loan in loans) == sorted(slot for slot, _ in held)
        for loan in loans:
            writer.discard_loan(loan)


# -- 9. a pool too big to map -----------------------------------------------------------------

MIB = loanbus.ShmemType("test::MiB", np.uint8, shape=(1 << 20,))


def _limited_reader(domain_id: int, out: Any) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, resource.RLIM_INFINITY))  # as `ulimit -v` does
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, "huge", MIB))
        out.put("ready")
        values: list[int] = []
        stats = reader.statistics()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (values and stats.map_failures):
            got = reader.take(timeout=0.1)
            values += [int(s.data[0]) for s in got]
            reader.return_loan(got)
            stats = reader.statistics()
        out.put((values, stats.map_failures, stats.mapped_pools))


def _plant_huge_pool(name: str, guid: bytes) -> L.Layout:
    """A sparse segment (no memory used) whose valid header describes 64 GiB of slots."""
    layout = L.Layout.compute(65536, 1, MIB.itemsize)
    header = L.encode_header(
        layout,
        type_hash=MIB.type_hash,
        type_name=MIB.name,
        writer_guid=guid,
        writer_pid=os.getpid(),
        writer_start_time=0,
        writer_uid=os.getuid(),
        created_ns=0,
        protected_slots=0,
    )
    fd = os.open(shm_path(name), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        os.ftruncate(fd, layout.segment_size)
        os.pwrite(fd, header, 0)
        os.pwrite(fd, int(L.SegmentState.READY).to_bytes(8, "little"), L.HEADER_FIELDS["state"][0])
    finally:
        os.close(fd)
    return layout


def test_a_pool_too_big_to_map_is_refused_once_and_counted_while_other_writers_are_taken(
    domain_id: int,
) -> None:
    guid = b"\x66" * 16
    name = segment_name(domain_id, "planted", guid)  # not the topic's: its writer would reap it
    layout = _plant_huge_pool(name, guid)
    out = CTX.Queue()
    proc = start(_limited_reader, domain_id, out)
    dp = loanbus.DomainParticipant(domain_id=domain_id)
    raw = RawParticipant(domain_id)  # in the domain loanbus configured (loopback)
    try:
        assert out.get(timeout=60) == "ready"
        advert = {
            "segment": name,
            "host": host_identity(),
            "abi": L.ABI_VERSION,
            "type_hash": MIB.type_hash.hex(),
            "slots": 65536,
            "stride": layout.slot_stride,
            "writer_guid": guid.hex(),
            "pid": os.getpid(),
            "uid": os.getuid(),
            "type_name": MIB.name,
        }
        user_data = json.dumps({_advert.TAG: _advert.VERSION, "kind": "writer", **advert}).encode()
        RawWriter(  # a plain participant advertises the planted pool
            raw, RawTopic(raw, "loanbus_ref/huge", LoanRef), qos=RawQos(Policy.Userdata(user_data))
        )
        writer = loanbus.DataWriter(loanbus.Topic(dp, "huge", MIB), qos=loanbus.Qos(pool_slots=1))
        assert writer.wait_for_readers(1, timeout=60)
        for value in range(1, 200):
            loan = writer.get_loan()
            loan.data[0] = value
            writer.write(loan)
            if not out.empty():
                break
            time.sleep(0.05)
        values, failures, mapped = out.get(timeout=60)
        assert failures == 1 and mapped == 1 and values, (values, failures, mapped)
        join_ok(proc)
    finally:
        _delete(raw)
        dp.close()
        os.unlink(shm_path(name))
        if proc.is_alive():
            proc.kill()


# -- 12. leftovers of a prefix, fairness between writers ---------------------------------------


def test_clean_removes_only_dead_pools_of_the_prefix_it_is_given(shm_prefix: str, domain_id: int) -> None:
    proc = _killed_writer(domain_id, "prefixed")
    segment, guid = _segment_of(proc)
    sock = socket_path(segment, bytes.fromhex(guid))
    _kill(proc)
    other = run_cli("clean", env={"LOANBUS_SHM_PREFIX": shm_prefix + "zz"})
    assert other.returncode == 0, other.stderr
    assert os.path.exists(shm_path(segment)) and os.path.exists(sock), other.stdout  # not its prefix
    mine = run_cli("clean")
    assert mine.returncode == 0, mine.stderr
    assert not os.path.exists(shm_path(segment)) and not os.path.exists(sock)
    assert shm_entries(shm_prefix) == []


def test_best_effort_delivery_keeps_the_newest_of_every_writer_alike(domain_id: int) -> None:
    writers_n, each = 20, 12
    qos = loanbus.Qos(max_samples=1, history_depth=1)
    depth = qos.reader_depth  # what a best-effort reader keeps of each writer (2)
    assert depth == 2
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        topic = loanbus.Topic(dp, "fair", SMALL)
        reader = loanbus.DataReader(topic, qos=qos)
        writers = [loanbus.DataWriter(topic, qos=qos) for _ in range(writers_n)]
        assert all(w.wait_for_readers(1, 30) for w in writers)
        for i, w in enumerate(writers):
            for n in range(each):
                loan = w.get_loan()
                loan.data["value"] = i * 1000 + n
                w.write(loan)
        got: list[int] = []
        for _ in range(50):
            batch = reader.take(max_samples=1000, timeout=0.1)
            got += [int(s.data["value"]) for s in batch]
            reader.return_loan(batch)
            if len(got) >= writers_n * depth:
                break
        by_writer = {i: sorted(v % 1000 for v in got if v // 1000 == i) for i in range(writers_n)}
        assert all(v == list(range(each - depth, each)) for v in by_writer.values()), by_writer
        assert reader.statistics().history_dropped == writers_n * (each - depth)


def test_the_set_of_gone_writers_is_forgotten_after_a_while(
    domain_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loanbus import _sources

    monkeypatch.setattr(_sources, "_GONE_FOR", 0.2)
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        topic = loanbus.Topic(dp, "gone", SMALL)
        reader = loanbus.DataReader(topic)
        for gone in range(1, 4):
            writer = loanbus.DataWriter(topic)
            assert reader.wait_for_writers(1, 30)
            writer.close()
            wait_for(
                lambda n=gone: (reader.take(), reader.statistics().lost_writers)[1] >= n,
                30,
                "the writer to go",
            )
        assert reader._sources.gone  # remembered for a while: its late references are dropped
        time.sleep(0.3)
        writer = loanbus.DataWriter(topic)  # a match change makes the reader look again
        assert reader.wait_for_writers(1, 30)
        reader.take()
        assert len(reader._sources.gone) == 0
        writer.close()


# -- kill -9 of a writer leaves its pool and socket for clean --------------------------------------


def _killed_writer(domain_id: int, topic: str) -> subprocess.Popen[str]:
    """A writer process that prints its pool and waits to be killed."""
    return python(
        "import signal, loanbus\n"
        "from tests.helpers import SMALL\n"
        f"dp = loanbus.DomainParticipant(domain_id={domain_id})\n"
        f"w = loanbus.DataWriter(loanbus.Topic(dp, {topic!r}, SMALL))\n"
        "print(w.segment_name, w.guid.hex(), flush=True)\n"
        "signal.pause()\n",
        stdout=subprocess.PIPE,
    )


def _segment_of(proc: subprocess.Popen[str]) -> tuple[str, str]:
    assert proc.stdout is not None
    segment, guid = proc.stdout.readline().split()
    return segment, guid


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


def test_clean_removes_the_pool_and_registration_socket_a_killed_writer_left(
    shm_prefix: str, domain_id: int
) -> None:
    proc = _killed_writer(domain_id, "killed")
    try:
        segment, guid = _segment_of(proc)
        sock = socket_path(segment, bytes.fromhex(guid))
        assert os.path.exists(shm_path(segment)) and os.path.exists(sock)
        _kill(proc)
        dry = run_cli("clean", "--dry-run")
        assert segment in dry.stdout, dry.stdout
        done = run_cli("clean")
        assert done.returncode == 0, done.stderr
        assert not os.path.exists(shm_path(segment)) and not os.path.exists(sock)
        assert shm_entries(shm_prefix) == []
    finally:
        _kill(proc)
