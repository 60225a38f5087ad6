"""A reliable reader SIGKILLed while it holds every slot of the pool, again and again.

Each time, a writer blocked in ``get_loan()`` on that reader is released as soon as the dead
reader's registration connection hangs up (before its 1 s DDS lease, long before
``max_blocking_time``); it gets every slot back, and its
next 100 ``get_loan()`` + ``write()`` calls succeed with a live reader still attached.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import numpy as np
import pytest

import loanbus
from tests.helpers import CTX, SMALL, fill_value, start
from tests.reliability import record, stress, wait_for

SLOTS = 5
RELIABLE = loanbus.Qos(
    reliability=loanbus.Reliability.RELIABLE, max_samples=SLOTS - 1, max_blocking_time=60.0
)


def _holder(domain_id: int, out: Any) -> None:
    """Take every sample and never return one: wait to be killed."""
    with loanbus.DomainParticipant(domain_id=domain_id, lease_duration=1.0) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, "hold", SMALL), qos=RELIABLE)
        assert reader.wait_for_writers(1, timeout=60)
        out.put("ready")
        held: list[Any] = []
        while len(held) < SLOTS:
            held += reader.take(timeout=1.0)
        out.put(("held", len(held)))
        threading.Event().wait()


def _write(writer: loanbus.DataWriter[Any], timeout: float) -> int:
    loan = writer.get_loan(timeout=timeout)
    seq = loan.sequence_number
    loan.data["seq"] = seq
    loan.data["blob"].fill(fill_value(seq))
    writer.write(loan)
    return seq


def _take_one(reader: loanbus.DataReader[Any], seq: int) -> None:
    samples = reader.take(max_samples=1, timeout=10.0)
    assert len(samples) == 1, f"sample {seq} never arrived"
    s = samples[0]
    assert s.info.sequence_number == seq and int(s.data["seq"]) == seq
    assert not np.any(s.data["blob"] != fill_value(seq)) and reader.is_data_consistent(s)
    reader.return_loan(s)


@pytest.mark.long
@pytest.mark.timeout(1800)
def test_killing_a_reader_that_holds_every_slot_releases_the_blocked_writer(domain_id: int) -> None:
    iterations = stress(5, 50)
    releases: list[float] = []
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "hold", SMALL), qos=RELIABLE)
        good = loanbus.DataReader(loanbus.Topic(dp, "hold", SMALL), qos=RELIABLE)
        for i in range(iterations):
            out = CTX.Queue()
            proc = start(_holder, domain_id, out)
            try:
                assert out.get(timeout=60) == "ready"
                wait_for(
                    lambda: sum(r.shm for r in writer.matched_readers()) == 2,
                    30,
                    "the writer to attach both readers",
                )
                for _ in range(SLOTS):
                    _take_one(good, _write(writer, timeout=10))  # the good reader returns at once
                assert out.get(timeout=60) == ("held", SLOTS)
                with pytest.raises(loanbus.LoanTimeoutError):
                    writer.get_loan(timeout=0.1)  # every slot is held by the other process
                proc.kill()
                started = time.monotonic()
                loans = [writer.get_loan(timeout=60)]  # blocked until the dead reader's connection hangs up
                releases.append(time.monotonic() - started)
                loans += [writer.get_loan(timeout=0) for _ in range(SLOTS - 1)]
                assert len({loan.slot for loan in loans}) == SLOTS, f"iteration {i}: not every slot came back"
                for loan in loans:
                    writer.discard_loan(loan)
                assert writer.statistics().attached_readers == 1
                for _ in range(100):
                    _take_one(good, _write(writer, timeout=5))
            finally:
                if proc.is_alive():
                    proc.kill()
                proc.join(10)
                out.close()
        stats = writer.statistics()
    record(
        "reader_crash",
        iterations=iterations,
        release_s_median=round(statistics.median(releases), 2),
        release_s_max=round(max(releases), 2),
        loan_timeouts=stats.loan_timeouts,
    )
    assert max(releases) < 10, f"a blocked writer waited {max(releases):.1f} s for a dead reader"
    assert stats.writes == iterations * (SLOTS + 100)
