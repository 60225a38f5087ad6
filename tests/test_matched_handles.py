"""Matched-writer handles and the publication handles of samples are the same numbers.

Cyclone DDS hands out 64-bit instance handles; the binding lists matched endpoints as signed
and sample infos as unsigned integers. A reader compares the two when a match changes
(writers no longer matched are retired), so a mismatch in sign would retire live writers.
"""

from __future__ import annotations

import loanbus
from tests.helpers import SMALL

RELIABLE = loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, max_samples=2, max_blocking_time=5.0)
WRITERS = 8  # handles are random 64-bit numbers: one above 2**63 is all but certain among 8


def _take(reader: loanbus.DataReader[object], count: int) -> list[int]:
    got: list[loanbus.LoanedSample] = []
    for _ in range(200):
        if len(got) >= count:
            break
        got += reader.take(max_samples=64, timeout=0.1)
    values = sorted(int(s.data["value"]) for s in got)
    reader.return_loan(got)
    return values


def _write(writers: list[loanbus.DataWriter[object]], base: int) -> None:
    for i, writer in enumerate(writers):
        loan = writer.get_loan()
        loan.data["value"] = base + i
        writer.write(loan)


def test_a_match_change_never_retires_the_pools_of_writers_still_matched(domain_id: int) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        topic = loanbus.Topic(dp, "handles", SMALL)
        reader = loanbus.DataReader(topic, qos=RELIABLE)
        writers = [loanbus.DataWriter(topic, qos=RELIABLE) for _ in range(WRITERS)]
        assert all(w.wait_for_readers(1, timeout=30) for w in writers)
        assert reader.wait_for_writers(WRITERS, timeout=30)
        _write(writers, 0)
        assert _take(reader, WRITERS) == list(range(WRITERS))
        assert all(m.shm for m in reader.matched_writers())

        late = loanbus.DataWriter(topic, qos=RELIABLE)  # a match change: the reader re-checks its writers
        assert reader.wait_for_writers(WRITERS + 1, timeout=30) and late.wait_for_readers(1, timeout=30)
        _write(writers, 100)
        assert _take(reader, WRITERS) == [100 + i for i in range(WRITERS)]
        stats = reader.statistics()
        assert (stats.lost_writers, stats.mapped_pools) == (0, WRITERS + 1)  # the late one is mapped too
