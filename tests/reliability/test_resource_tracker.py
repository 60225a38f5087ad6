"""Attaching never registers with multiprocessing's resource tracker.

Python's tracker unlinks, when a process exits, every segment that process registered; a
reader that registered the writer's segment would destroy it on a normal exit. The readers
here are plain ``python -c`` processes with a tracker of their own, as in production.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

import loanbus
from loanbus.pool import ReaderPool, WriterPool, segment_name
from tests.helpers import SMALL
from tests.reliability import python, shm_path, wait_for

_READER = """
import json
import multiprocessing.resource_tracker as rt
import loanbus
from tests.helpers import SMALL

calls = []
_register = rt.register
def register(name, rtype):
    calls.append([name, rtype])
    _register(name, rtype)
rt.register = register

with loanbus.DomainParticipant(domain_id={domain_id}) as dp:
    reader = loanbus.DataReader(loanbus.Topic(dp, "tracker", SMALL))
    assert reader.wait_for_writers(1, timeout=30)
    print("ready", flush=True)
    samples = reader.take(timeout=30)
    values = [int(s.data["value"]) for s in samples]
    reader.return_loan(samples)
print(json.dumps({{"values": values, "calls": calls, "tracker": rt._resource_tracker._pid}}))
"""


def test_a_reader_exiting_normally_leaves_the_writers_segment_alone(domain_id: int) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "tracker", SMALL))
        proc = python(_READER.format(domain_id=domain_id), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            assert writer.wait_for_readers(1, timeout=30)
            loan = writer.get_loan()
            loan.data["value"] = 5
            writer.write(loan)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, stderr
        report = json.loads(stdout.strip().splitlines()[-1])
        assert report == {"values": [5], "calls": [], "tracker": None}  # no tracker was ever started
        assert "resource_tracker" not in stderr and "leaked" not in stderr
        assert os.path.exists(shm_path(writer.segment_name))
        ReaderPool(writer.segment_name, SMALL).close()  # still a valid, attachable pool
        loan = writer.get_loan()
        writer.write(loan)


_STDLIB_ATTACH = """
from multiprocessing import shared_memory
shm = shared_memory.SharedMemory({name!r})
shm.close()
"""


@pytest.mark.filterwarnings("ignore")
def test_control_the_standard_librarys_attach_would_have_unlinked_it() -> None:
    """The hazard is real: the check above would catch a reader that attached this way."""
    name = segment_name(0, "tracker", os.urandom(16))
    writer = WriterPool(name, SMALL, slot_count=2, reader_rows=1, writer_guid=b"w" * 16)
    try:
        proc = python(_STDLIB_ATTACH.format(name=name.lstrip("/")), stderr=subprocess.PIPE)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
        wait_for(lambda: not os.path.exists(shm_path(name)), 30, "the tracker to unlink the segment")
        assert "leaked shared_memory" in stderr
    finally:
        writer.close()
