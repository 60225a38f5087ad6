"""A writer SIGKILLed at random points of get_loan / fill / write, with 3 readers running.

No reader ever accepts (``is_data_consistent() == True``) a sample whose bytes are not all
of its own generation, no reader crashes, readers drop the dead writers' pools, the next
writer of the topic reaps the previous one's segment, and ``loanbus clean`` removes the rest.
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import time
from collections import Counter
from typing import Any

import numpy as np
import pytest

import loanbus
from loanbus._shm import Segment
from loanbus.inspect import list_pools
from tests.helpers import CTX, fill_value, join_ok, start
from tests.reliability import python, record, run_cli, shm_entries, stress, tally

PAYLOAD = 256 * 1024
CRASH = loanbus.ShmemType("rel::Crash", np.dtype([("seq", "<u8"), ("payload", "u1", (PAYLOAD,))]))
QOS = loanbus.Qos(max_samples=2)  # best effort, 3 slots: the writer reuses slots readers still read
TOPIC = "crash"

# Where a writer dies. The first five are injected exactly in the writer itself; "external" is
# a SIGKILL from the test at a random moment of a writer writing flat out.
PHASES = ("loan", "fill", "filled", "write", "external", "sent", "create", "init", "external")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def writer_main(domain_id: int, phase: str, after: int) -> None:
    """Write flat out; SIGKILL ourselves at ``phase`` of the ``after``-th sample."""
    written = [0]
    if phase == "create":  # the segment exists and is sized, its header is still all zero

        def create_then_die(cls: type[Segment], *args: Any, **kwargs: Any) -> Segment:
            create(cls, *args, **kwargs)
            _die()
            raise AssertionError("unreachable")

        create = Segment.create.__func__  # type: ignore[attr-defined]
        Segment.create = classmethod(create_then_die)  # type: ignore[method-assign,assignment]
    if phase == "init":  # the header is written with state INIT, READY is not

        def header_then_die(*args: Any, **kwargs: Any) -> None:
            _die()

        loanbus.pool.writer.words = header_then_die  # type: ignore[attr-defined,assignment]
    with loanbus.DomainParticipant(domain_id=domain_id, lease_duration=1.0) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, TOPIC, CRASH), qos=QOS)
        pool = writer._pool
        if phase == "loan":  # inside get_loan: the slot is stamped with a new seq, no Loan yet
            acquire = pool.try_acquire

            def try_acquire() -> int | None:
                slot = acquire()
                if written[0] >= after:
                    _die()
                return slot

            pool.try_acquire = try_acquire  # type: ignore[method-assign]
        if phase == "write":  # inside write: the slot is WRITTEN, the reference not sent

            def publish_then_die(slot: int, timestamp_ns: int) -> int:
                seq = publish(slot, timestamp_ns)
                if written[0] >= after:
                    _die()
                return seq

            publish = pool.publish
            pool.publish = publish_then_die  # type: ignore[method-assign]
        assert writer.wait_for_readers(3, timeout=60)
        print("ready", writer.segment_name, flush=True)
        while True:
            loan = writer.get_loan()
            seq = loan.sequence_number
            data = loan.data
            value = fill_value(seq)
            data["seq"] = seq
            if phase == "fill" and written[0] >= after:
                data["payload"][: PAYLOAD // 2] = value
                _die()
            data["payload"].fill(value)
            if phase == "filled" and written[0] >= after:
                _die()
            writer.write(loan)
            written[0] += 1
            if phase == "sent" and written[0] >= after:
                _die()


def reader_main(domain_id: int, out: Any, stop: Any) -> None:
    """Take everything, check every byte, then ask whether the sample was consistent."""
    with loanbus.DomainParticipant(domain_id=domain_id, lease_duration=1.0) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, TOPIC, CRASH), qos=QOS)
        out.put("ready")
        counts: Counter[str] = Counter()
        writers: set[int] = set()
        while not stop.is_set():
            for sample in reader.take(max_samples=4, timeout=0.1):
                seq = sample.info.sequence_number
                data = sample.data
                whole = int(data["seq"]) == seq and not np.any(data["payload"] != fill_value(seq))
                tally(counts, reader.is_data_consistent(sample), whole)
                writers.add(sample.info.publication_handle)
                reader.return_loan(sample)
        # Every writer is dead by now: DDS reports them gone and the reader drops their pools.
        deadline = time.monotonic() + 30
        while reader.statistics().mapped_pools and time.monotonic() < deadline:
            reader.take(timeout=0.05)
        stats = reader.statistics()
        out.put(
            {
                **counts,
                "writers_seen": len(writers),
                "lost_writers": stats.lost_writers,
                "mapped_pools": stats.mapped_pools,
                "refused": stats.refused_references,
            }
        )


def _line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else ""


@pytest.mark.long
@pytest.mark.timeout(3600)
def test_a_writer_killed_anywhere_never_makes_a_reader_accept_torn_data(
    domain_id: int, shm_prefix: str
) -> None:
    iterations = stress(18, 200)
    seed = int(os.environ.get("LOANBUS_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    out, stop = CTX.Queue(), CTX.Event()
    readers = [start(reader_main, domain_id, out, stop) for _ in range(3)]
    phases: Counter[str] = Counter()
    writer = None
    try:
        assert [out.get(timeout=60) for _ in readers] == ["ready"] * 3
        for i in range(iterations):
            phase = PHASES[i % len(PHASES)]
            after = rng.randint(1, 120)
            writer = python(
                "from tests.reliability.test_writer_crash import writer_main; "
                f"writer_main({domain_id}, {phase!r}, {after})",
                stdout=subprocess.PIPE,
            )
            if phase not in ("create", "init"):
                line = _line(writer, 60)
                assert line.startswith("ready"), f"writer {i} ({phase}) never got ready: {line!r}"
                if phase == "external":
                    time.sleep(rng.uniform(0.0, 0.3))  # a random moment, on purpose
                    writer.kill()
            assert writer.wait(60) == -signal.SIGKILL, f"writer {i} ({phase}) was not killed"
            assert writer.stdout is not None
            writer.stdout.close()
            phases[phase] += 1
            dead = [r for r in readers if not r.is_alive()]
            assert not dead, f"reader(s) died at iteration {i} ({phase}): {[r.exitcode for r in dead]}"
        # The next writer of the topic reaped every earlier pool: only the last one is left.
        left = [p for p in list_pools(f"loanbus{shm_prefix}.") if not p.semaphore_only]
        assert len(left) == 1 and not left[0].alive, left
        stop.set()
        results = [out.get(timeout=90) for _ in readers]
        for proc in readers:
            join_ok(proc, timeout=30)
    finally:
        stop.set()
        if writer is not None and writer.poll() is None:
            writer.kill()
            writer.wait(10)
        for proc in readers:
            if proc.is_alive():
                proc.kill()
    record("writer_crash", seed=seed, iterations=iterations, phases=dict(phases), readers=results)
    data_phases = iterations - phases["create"] - phases["init"]
    for res in results:
        assert res.get("torn_accepted", 0) == 0, f"a reader accepted torn data: {res}"
        assert res["taken"] > 0 and res["writers_seen"] >= data_phases // 2, res
        assert res["mapped_pools"] == 0, f"a reader kept the pool of a dead writer: {res}"
        assert res["lost_writers"] >= res["writers_seen"], res
    clean = run_cli("clean")
    assert clean.returncode == 0, clean.stderr
    assert shm_entries(shm_prefix) == [], clean.stdout
