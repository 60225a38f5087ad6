"""``loanbus ls`` shows a live pool's owner, liveness, slots and holds, as a user runs it."""

from __future__ import annotations

import os
import re

import loanbus
from tests.helpers import SMALL
from tests.reliability import run_cli, wait_for

RELIABLE = loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, max_samples=2, max_blocking_time=1.0)


def _row(listing: str, name: str) -> dict[str, str]:
    header = next(line for line in listing.splitlines() if "segment" in line and "alive" in line)
    row = next(line for line in listing.splitlines() if name.lstrip("/") in line)
    cells = [c.strip() for c in re.split(r"[│┃|]", row)]
    names = [c.strip() for c in re.split(r"[│┃|]", header)]
    return dict(zip(names, cells, strict=True))


def test_ls_shows_owner_liveness_slots_and_a_slot_a_reader_holds(domain_id: int) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        topic = loanbus.Topic(dp, "listed", SMALL)
        writer = loanbus.DataWriter(topic, qos=RELIABLE)
        reader = loanbus.DataReader(topic, qos=RELIABLE)
        assert writer.wait_for_readers(1, 30) and reader.wait_for_writers(1, 30)
        for value in (1, 2):
            loan = writer.get_loan()
            loan.data["value"] = value
            writer.write(loan)
        taken: list[loanbus.LoanedSample] = []
        while len(taken) < 2:
            taken += reader.take(timeout=10)
        reader.return_loan(taken[0])  # keep holding the second one

        # ls shows the holds as the writer last copied them (every LOANBUS_STATS_INTERVAL).
        rows: list[dict[str, str]] = []

        def listed(held: str) -> bool:
            result = run_cli("ls")
            assert result.returncode == 0, result.stderr
            rows.append(_row(result.stdout, writer.segment_name))
            return rows[-1]["held"] == held

        wait_for(lambda: listed("1"), 30, "ls to show the held slot")
        row = rows[-1]
        assert row["type"] == SMALL.name
        assert row["slots"] == "3"
        assert row["held"] == "1"
        assert row["owner pid"] == str(os.getpid())
        assert row["alive"] == "yes"
        assert row["state"] == "READY"

        reader.return_loan(taken[1])
        wait_for(lambda: listed("0"), 30, "ls to show the slot returned")
