"""Spinning before sleeping (loanbus._spin): how long, when, and that it never changes what
is delivered. A writer that spins does not ask readers to ring it (its waiting word stays 0),
so the word shows whether a get_loan spun or slept."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

import loanbus
from loanbus import _spin
from loanbus._spin import DEFAULT_SPIN_US, spin_ns
from loanbus._transport import HoldBlock, Inbox, wire
from loanbus.pool import WriterPool, segment_name
from tests.helpers import SMALL
from tests.reliability import wait_for

pytestmark = pytest.mark.portable  # .ci/run runs it on every supported Python


def test_the_default_spin_is_50_us_also_on_one_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOANBUS_SPIN_US", raising=False)
    assert spin_ns() == DEFAULT_SPIN_US * 1000 == 50_000
    env = {k: v for k, v in os.environ.items() if k != "LOANBUS_SPIN_US"}
    one_cpu = subprocess.run(
        [sys.executable, "-c", "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))});"
         "from loanbus._spin import spin_ns; print(spin_ns())"],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    assert one_cpu.stdout.strip() == "50000"  # a peer on another CPU still answers within it
    monkeypatch.setenv("LOANBUS_SPIN_US", " 120 ")
    assert spin_ns() == 120_000


def test_a_spin_yields_the_cpu_between_looks_and_returns_what_it_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events: list[str] = []
    answers = iter([None, 0, [], 7])

    def look() -> object:
        events.append("look")
        return next(answers)

    monkeypatch.setattr(_spin, "_yield", lambda: events.append("yield"))
    assert _spin.spin(look, 10**12) == 7
    assert events == ["look", "yield", "look", "yield", "look", "yield", "look"]
    events.clear()
    assert _spin.spin(lambda: events.append("look"), 0) is None and events == []


@pytest.mark.parametrize("value", ["-1", "2.5", "fast", "1000001"])
def test_a_spin_that_is_not_whole_microseconds_is_refused_by_readers_and_writers(
    domain_id: int, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOANBUS_SPIN_US", value)
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        topic = loanbus.Topic(dp, "spin", SMALL)
        for make in (loanbus.DataReader, loanbus.DataWriter):
            with pytest.raises(
                ValueError, match=f"LOANBUS_SPIN_US='{value}': give the spin in whole microseconds"
            ):
                make(topic)  # type: ignore[operator]


# -- a reader's inbox -------------------------------------------------------------------


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox(spin_ns=500_000_000)  # half a second: longer than any of these waits
    yield box
    box.close()


def _record() -> bytes:
    return wire.RECORD.pack(wire.RECORD_MAGIC, 0, 1, 0, 7, 8, 9)


def test_a_spinning_wait_sees_a_record_written_meanwhile(inbox: Inbox) -> None:
    threading.Timer(0.01, os.write, (inbox.write_fd, _record())).start()
    assert inbox.wait(10.0)
    assert inbox.read() == [(0, 1, 7, 8, 9)]
    assert inbox._spinning  # found within the spin: spin again next time


def test_a_wait_longer_than_the_spin_turns_spinning_off_until_a_wait_is_short_again(inbox: Inbox) -> None:
    inbox.spin_ns = 20_000_000  # 20 ms
    assert not inbox.wait(0.1)  # nothing comes: the spin found nothing, then it slept
    assert not inbox._spinning
    os.write(inbox.write_fd, _record())
    assert inbox.wait(10.0)  # there already: a short wait
    assert inbox._spinning
    assert inbox.read() == [(0, 1, 7, 8, 9)]


def test_a_wait_without_timeout_left_does_not_spin(inbox: Inbox) -> None:
    assert not inbox.wait(0.0)
    assert inbox._spinning  # a zero wait says nothing about how long records take


# -- a writer waiting for a returned slot -------------------------------------------------


def _full_pool() -> tuple[WriterPool, HoldBlock]:
    """A reliable pool of 2 slots, both held by one attached reader."""
    writer = WriterPool(
        segment_name(0, "spin_test", os.urandom(16)), SMALL, slot_count=2, reader_rows=2,
        writer_guid=b"w" * 16, reliable=True,
    )  # fmt: skip
    holds = HoldBlock.create(writer.slot_count)
    writer.attach_reader(b"r" * 16, cells=holds.cells, waiting=holds.waiting)
    for value in (1, 2):
        slot = writer.try_acquire()
        assert slot is not None
        writer.payload(slot)["value"] = value
        writer.publish(slot, 0)
    assert writer.try_acquire() is None
    return writer, holds


def _return_when(writer: WriterPool, holds: HoldBlock, ready: Callable[[], bool]) -> list[int]:
    """From another thread: once the writer is blocked in acquire and ``ready()`` holds, return
    slot 0 and note the writer's waiting word at that moment."""
    blocked = writer.stats.blocked_loans
    seen: list[int] = []

    def give_back() -> None:
        wait_for(lambda: writer.stats.blocked_loans > blocked and ready(), 30, "the writer to block", 0.0005)
        seen.append(holds.waiting[0])
        holds.cells[0] = 0

    threading.Thread(target=give_back, daemon=True).start()
    return seen


def test_a_writer_spins_for_a_slot_returned_soon_and_sleeps_after_a_long_wait() -> None:
    writer, holds = _full_pool()
    try:
        spin = 500_000_000  # 0.5 s
        seen = _return_when(writer, holds, lambda: True)
        assert writer.acquire(30.0, spin_ns=spin) == 0
        assert seen == [0]  # it was spinning: no reader had to ring it
        holds.cells[0] = writer.publish(0, 0)  # held again

        seen = _return_when(writer, holds, lambda: holds.waiting[0] == 1)  # only once it sleeps
        assert writer.acquire(30.0, spin_ns=spin) == 0
        assert seen == [1]  # the spin ran out, it slept: this wait was longer than the spin
        assert not writer._spinning
        holds.cells[0] = writer.publish(0, 0)

        seen = _return_when(writer, holds, lambda: holds.waiting[0] == 1)
        assert writer.acquire(30.0, spin_ns=spin) == 0
        assert seen == [1]  # after a long wait it sleeps at once; this wait was short again
        assert writer._spinning
        holds.cells[0] = writer.publish(0, 0)

        seen = _return_when(writer, holds, lambda: True)
        assert writer.acquire(30.0, spin_ns=spin) == 0
        assert seen == [0]  # so it spins again
    finally:
        writer.close()
        holds.close()


def test_an_endless_wait_spins_as_any_other(inbox: Inbox) -> None:
    threading.Timer(0.01, os.write, (inbox.write_fd, _record())).start()
    assert inbox.wait(float("inf"))
    writer, holds = _full_pool()
    try:
        seen = _return_when(writer, holds, lambda: True)
        assert writer.acquire(float("inf"), spin_ns=500_000_000) == 0
        assert seen == [0]
    finally:
        writer.close()
        holds.close()
