"""Torn-read stress: best effort, 2 slots of 1 MiB, a writer flat out and slow readers.

Accepted torn samples (consistent, yet bytes of two generations) must be 0, and detected
inconsistent samples must be > 0: the race was really exercised, and always caught.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np
import pytest

import loanbus
from tests.helpers import CTX, fill_value, join_ok, start
from tests.reliability import record, stress, tally

MIB = 1 << 20
TORN = loanbus.ShmemType("rel::Torn", np.dtype([("seq", "<u8"), ("payload", "u1", (MIB - 8,))]))
QOS = loanbus.Qos(pool_slots=2)  # best effort
READERS = 2


def _writer(domain_id: int, count: int, go: Any, done: Any, finish: Any) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id, lease_duration=1.0) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "torn", TORN), qos=QOS)
        assert writer.wait_for_readers(READERS, timeout=60)
        go.wait(60)
        for _ in range(count):
            loan = writer.get_loan()
            seq = loan.sequence_number
            loan.data["seq"] = seq
            loan.data["payload"].fill(fill_value(seq))
            writer.write(loan)
        done.set()
        finish.wait(60)


def _reader(domain_id: int, out: Any, done: Any) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id, lease_duration=1.0) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, "torn", TORN), qos=QOS)
        assert reader.wait_for_writers(1, timeout=60)
        out.put("ready")
        counts: Counter[str] = Counter()
        idle_since = None
        while True:
            samples = reader.take(max_samples=1, timeout=0.1)
            if not samples:
                if done.is_set():
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > 0.5:
                        break
                continue
            for sample in samples:
                seq = sample.info.sequence_number
                payload = sample.data["payload"]
                # Read slowly: the whole megabyte, in pieces, the seq word first and last.
                whole = int(sample.data["seq"]) == seq
                for part in np.array_split(payload, 8):
                    whole &= not np.any(part != fill_value(seq))
                whole &= int(sample.data["seq"]) == seq
                tally(counts, reader.is_data_consistent(sample), whole)
                reader.return_loan(sample)
        out.put(dict(counts))


@pytest.mark.long
@pytest.mark.timeout(1800)
def test_slow_readers_of_a_two_slot_pool_never_accept_a_torn_megabyte(domain_id: int) -> None:
    count = stress(20_000, 100_000)
    out, go, done, finish = CTX.Queue(), CTX.Event(), CTX.Event(), CTX.Event()
    readers = [start(_reader, domain_id, out, done) for _ in range(READERS)]
    writer = start(_writer, domain_id, count, go, done, finish)
    try:
        assert [out.get(timeout=60) for _ in readers] == ["ready"] * READERS
        started = time.monotonic()
        go.set()
        results = [out.get(timeout=1500) for _ in readers]
        elapsed = time.monotonic() - started
        finish.set()
        join_ok(writer)
        for proc in readers:
            join_ok(proc)
    finally:
        finish.set()
        for proc in [writer, *readers]:
            if proc.is_alive():
                proc.kill()
    total = Counter[str]()
    for res in results:
        total.update(res)
    record("torn_reads", writes=count, seconds=round(elapsed, 1), readers=results, total=dict(total))
    assert total["torn_accepted"] == 0, f"torn samples were accepted as consistent: {results}"
    assert total["inconsistent"] > 0, f"the race was never exercised: {results}"
    assert total["consistent"] > 0, f"no sample was ever read intact: {results}"
