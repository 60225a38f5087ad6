"""Permissions: file modes from ``stat``, read-only payload mappings from ``/proc/self/maps``."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import loanbus
from loanbus import _layout as L
from loanbus.pool import WriterPool, segment_name, socket_path
from tests.helpers import CTX, SMALL, fill_value, join_ok, start
from tests.reliability import python, shm_path

RELIABLE = loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, max_samples=2, max_blocking_time=5.0)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask of 0: the modes below come from loanbus itself, not from the umask."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_pools_and_registration_sockets_are_0600_by_default(domain_id: int, open_umask: None) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "modes", SMALL))
        for path in (shm_path(writer.segment_name), socket_path(writer.segment_name, writer.guid)):
            st = os.stat(path)
            assert st.st_mode & 0o777 == 0o600, f"{path}: {oct(st.st_mode)}"
            assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())


def test_the_group_option_lets_one_group_read_the_pool_and_register_never_write_it(
    domain_id: int, open_umask: None
) -> None:
    gid = 4321 if os.geteuid() == 0 else os.getgid()
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "modes", SMALL), qos=loanbus.Qos(shm_group=gid))
        pool = os.stat(shm_path(writer.segment_name))
        sock = os.stat(socket_path(writer.segment_name, writer.guid))
        assert pool.st_mode & 0o777 == 0o640, oct(pool.st_mode)  # readers never write a pool
        assert sock.st_mode & 0o777 == 0o660, oct(sock.st_mode)  # connecting needs write access
        assert pool.st_gid == sock.st_gid == gid


def _all_maps() -> list[tuple[str, int, int, str]]:
    """(perms, file offset, length, path) of every mapping of this process."""
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            if len(parts) == 6:
                start, end = (int(x, 16) for x in parts[0].split("-"))
                out.append((parts[1], int(parts[2], 16), end - start, parts[5].strip()))
    return out


def _maps_of(path: str) -> list[tuple[str, int, int]]:
    """(perms, file offset, length) of every mapping of ``path`` in this process."""
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].strip() == path:
                start, end = (int(x, 16) for x in parts[0].split("-"))
                out.append((parts[1], int(parts[2], 16), end - start))
    return sorted(out, key=lambda m: m[1])


def _mapping_reader(domain_id: int, out: Any) -> None:
    """A reliable reader: report its mappings of the pool and try to write through a sample."""
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, "maps", SMALL), qos=RELIABLE)
        assert reader.wait_for_writers(1, timeout=30)
        out.put("ready")
        samples = reader.take(timeout=30)
        assert len(samples) == 1
        sample = samples[0]
        entry = sample._pool
        errors = []
        for attempt in (
            lambda: sample.data.__setitem__("value", 1),
            lambda: sample.data["blob"].fill(0),
            lambda: np.copyto(sample.data["blob"], 0),
            lambda: sample.data.setflags(write=True),
        ):
            try:
                attempt()
                errors.append(None)
            except ValueError as exc:
                errors.append(str(exc))
        out.put(
            {
                "maps": _maps_of("/dev/shm/" + entry.pool.name.lstrip("/")),
                "holds": [m for m in _all_maps() if "loanbus-holds" in m[3]],
                "pool_fd_mode": __import__("fcntl").fcntl(entry.pool.fd, __import__("fcntl").F_GETFL) & 3,
                "errors": errors,
                "value": int(sample.data["value"]),
            }
        )
        reader.return_loan(sample)


def test_a_reader_maps_the_pool_read_only_and_only_its_own_hold_block_writable(domain_id: int) -> None:
    out = CTX.Queue()
    proc = start(_mapping_reader, domain_id, out)
    try:
        with loanbus.DomainParticipant(domain_id=domain_id) as dp:
            writer = loanbus.DataWriter(loanbus.Topic(dp, "maps", SMALL), qos=RELIABLE)
            assert out.get(timeout=60) == "ready"
            assert writer.wait_for_readers(1, timeout=30)
            loan = writer.get_loan()
            loan.data["value"] = 99
            writer.write(loan)
            report = out.get(timeout=60)
            layout = writer._pool.layout
            assert int(writer._pool.payload(loan.slot)["value"]) == 99  # nothing changed it
            join_ok(proc)
    finally:
        if proc.is_alive():
            proc.kill()
    assert report["maps"] == [("r--s", 0, layout.segment_size)], report["maps"]  # nothing writable
    assert report["pool_fd_mode"] == os.O_RDONLY  # so it cannot truncate the pool either
    holds = report["holds"]  # its own hold block: a sealed memfd of its own
    assert [(perms, size) for perms, _, size, _ in holds] == [("rw-s", L.hold_block_size(layout.slot_count))]
    assert report["errors"] == ["assignment destination is read-only"] * 3 + [
        "cannot set WRITEABLE flag to True of this array"
    ]
    assert report["value"] == 99


def test_writing_below_numpy_into_a_readers_mapping_is_stopped_by_the_kernel() -> None:
    """Even ctypes cannot write through the reader's mapping: the process gets SIGSEGV."""
    name = segment_name(0, "vandal", os.urandom(16))
    writer = WriterPool(name, SMALL, slot_count=2, reader_rows=1, writer_guid=b"w" * 16)
    try:
        slot = writer.try_acquire()
        assert slot is not None
        writer.payload(slot)["blob"].fill(fill_value(1))
        writer.publish(slot, 0)
        code = (
            "import ctypes\n"
            "from loanbus.pool import ReaderPool\n"
            "from tests.helpers import SMALL\n"
            f"view = ReaderPool({name!r}, SMALL).view({slot})\n"
            "address = view.__array_interface__['data'][0]\n"
            "print('writing', flush=True)\n"
            "ctypes.memset(address, 0, 64)\n"
            "print('wrote', flush=True)\n"
        )
        proc = python(code, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stdout, _ = proc.communicate(timeout=30)
        assert stdout.splitlines() == ["writing"] and proc.returncode == -signal.SIGSEGV
        assert np.all(writer.payload(slot)["blob"] == fill_value(1))
    finally:
        writer.close()
