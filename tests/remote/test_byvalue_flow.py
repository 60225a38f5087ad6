"""By-value delivery under load and QoS: two-way large frames, failed writes, durability, depth.

Every reader here asks for ``Qos(by_value=True)``, so samples travel as CDR over the network
stack exactly as they do to a reader on another host.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

import loanbus
from loanbus._lifetime import wait_until
from loanbus.errors import TransportError
from tests.helpers import CTX, FRAME, SMALL, fill_value, join_ok, start


def _big(by_value: bool = True, blocking: float = 10.0) -> loanbus.Qos:
    return loanbus.Qos(
        reliability=loanbus.Reliability.RELIABLE, max_samples=2, max_blocking_time=blocking, by_value=by_value
    )


def _tl(by_value: bool = False) -> loanbus.Qos:
    return loanbus.Qos(
        reliability=loanbus.Reliability.RELIABLE,
        durability=loanbus.Durability.TRANSIENT_LOCAL,
        history_depth=4,
        max_samples=4,
        by_value=by_value,
    )


def _take_values(reader: loanbus.DataReader[Any], count: int, field: str = "value") -> list[int]:
    """Take until ``count`` samples arrived (or 60 s passed); returns their ``field``."""
    got: list[int] = []
    deadline = time.monotonic() + 60
    while len(got) < count and time.monotonic() < deadline:
        for s in reader.take(timeout=1.0):
            got.append(int(s.data[field]))
            reader.return_loan(s)
    return got


# -- two-way large frames ----------------------------------------------------------------


def _exchange(
    domain_id: int, out_topic: str, in_topic: str, frames: int, peer_done: Any, done: Any
) -> list[int]:
    """Stream ``frames`` 6 MB frames out while taking the peer's frames in; the seqs taken."""
    qos = loanbus.Qos(
        reliability=loanbus.Reliability.RELIABLE,
        history_depth=None,
        max_samples=2,
        max_blocking_time=30.0,
        by_value=True,
    )
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, out_topic, FRAME), qos)
        reader = loanbus.DataReader(loanbus.Topic(dp, in_topic, FRAME), qos)
        assert writer.wait_for_readers(1, timeout=60)
        assert reader.wait_for_writers(1, timeout=60)
        got: list[int] = []

        def take(timeout: float) -> None:
            for s in reader.take(timeout=timeout):
                got.append(int(s.data["seq"]))
                assert s.data["pixels"][-1, -1, -1] == fill_value(got[-1])
                assert s.info.slot == -1  # it came by value
                reader.return_loan(s)

        for i in range(1, frames + 1):
            loan = writer.get_loan()
            loan.data["seq"] = i
            loan.data["pixels"].fill(fill_value(i))
            writer.write(loan)  # blocks for acknowledgements while the peer's frames arrive
            take(0)
        deadline = time.monotonic() + 60
        while len(got) < frames and time.monotonic() < deadline:
            take(1.0)
        assert writer.statistics().by_value_writes == frames
        done.set()
        peer_done.wait(120)  # stay until the peer has taken everything this process wrote
        return got


def _exchange_child(domain_id: int, frames: int, peer_done: Any, done: Any, out: Any) -> None:
    out.put(_exchange(domain_id, "b_to_a", "a_to_b", frames, peer_done, done))


def test_two_processes_stream_large_frames_by_value_to_each_other(domain_id: int) -> None:
    """Both processes write 6 MB frames reliably while their own by-value readers receive.

    Regression: a by-value write that blocked for acknowledgements held the GIL, so the
    process's reader could not drain on Cyclone's receive thread, the acknowledgements for
    its own writer were not processed either, and both sides timed out.
    """
    frames, child_done, main_done, out = 12, CTX.Event(), CTX.Event(), CTX.Queue()
    proc = start(_exchange_child, domain_id, frames, main_done, child_done, out)
    try:
        mine = _exchange(domain_id, "a_to_b", "b_to_a", frames, child_done, main_done)
        assert mine == list(range(1, frames + 1))
        assert out.get(timeout=120) == list(range(1, frames + 1))
    finally:
        main_done.set()
        join_ok(proc, timeout=120)


# -- a by-value write that Cyclone refuses ------------------------------------------------


def _stalled_reader(domain_id: int, ready: Any) -> None:
    # A long lease: the writer must keep this reader matched while it is stopped.
    with loanbus.DomainParticipant(domain_id=domain_id, lease_duration=120) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, "stall", FRAME), _big())
        assert reader.wait_for_writers(1, timeout=60)
        ready.set()
        time.sleep(600)  # the test stops this process and kills it


def test_a_by_value_write_that_times_out_publishes_nothing_and_leaves_the_loan_active(domain_id: int) -> None:
    ready = CTX.Event()
    proc = start(_stalled_reader, domain_id, ready)
    try:
        with loanbus.DomainParticipant(domain_id=domain_id) as dp:
            writer = loanbus.DataWriter(loanbus.Topic(dp, "stall", FRAME), _big(by_value=False, blocking=0.5))
            local = loanbus.DataReader(loanbus.Topic(dp, "stall", FRAME), _big(by_value=False))
            assert writer.wait_for_readers(2, timeout=60)
            assert ready.wait(60)
            os.kill(proc.pid or 0, signal.SIGSTOP)  # the by-value reader stops acknowledging
            failed = None
            for i in range(1, 20):
                loan = writer.get_loan()
                loan.data["seq"] = i
                try:
                    writer.write(loan)
                except TransportError as exc:
                    failed = (i, loan, exc)
                    break
                local.return_loan(local.take(max_samples=1, timeout=30))
            assert failed is not None, "Cyclone never refused a by-value write to a stopped reader"
            i, loan, exc = failed
            assert "timed out" in str(exc)
            assert loan.active  # nothing was published: the loan is still the caller's
            stats = writer.statistics()
            assert stats.writes == i - 1
            assert stats.by_value_writes == i - 1
            assert local.take(timeout=0.5) == []  # the local reader saw no reference for it
            writer.discard_loan(loan)
            assert writer.statistics().discards == 1
    finally:
        os.kill(proc.pid or 0, signal.SIGKILL)
        proc.join(30)


# -- durability and history depth on the by-value path -------------------------------------


def _tl_writer(domain_id: int, commands: Any, out: Any) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "late", SMALL), _tl())
        while (command := commands.get(timeout=180)) != "stop":
            kind, a, b = command
            if kind == "write":
                for value in range(a, b + 1):
                    loan = writer.get_loan()
                    loan.data["value"] = value
                    writer.write(loan)
            else:  # "by-value readers": wait until the writer sees exactly ``a`` of them

                def seen(n: int = a) -> bool:
                    writer.matched_readers()  # refreshes the writer's view of its readers
                    return writer.statistics().by_value_readers == n

                assert wait_until(seen, 60)
            out.put(writer.statistics().by_value_writes)


def test_a_late_by_value_reader_of_a_transient_local_writer_takes_the_newest_samples(domain_id: int) -> None:
    commands, out = CTX.Queue(), CTX.Queue()
    proc = start(_tl_writer, domain_id, commands, out)

    def ask(*command: Any) -> int:
        commands.put(command)
        answer: int = out.get(timeout=120)
        return answer

    try:
        ask("write", 1, 10)  # no by-value reader yet: nothing is serialised
        with loanbus.DomainParticipant(domain_id=domain_id) as dp:
            first = loanbus.DataReader(loanbus.Topic(dp, "late", SMALL), _tl(by_value=True))
            assert ask("by-value readers", 1, 0) == 4  # the newest 4 slots, written by value
            assert _take_values(first, 4) == [7, 8, 9, 10]
            # A second late joiner gets them from the DDS writer's own history.
            second = loanbus.DataReader(loanbus.Topic(dp, "late", SMALL), _tl(by_value=True))
            assert _take_values(second, 4) == [7, 8, 9, 10]
            assert ask("write", 11, 11) == 5
            assert _take_values(first, 1) == _take_values(second, 1) == [11]
            first.close()
            second.close()
            ask("by-value readers", 0, 0)
            ask("write", 12, 20)  # not serialised: no by-value reader
            # The next late joiner gets the newest 4, not what the history held before.
            third = loanbus.DataReader(loanbus.Topic(dp, "late", SMALL), _tl(by_value=True))
            assert ask("by-value readers", 1, 0) == 9
            assert _take_values(third, 4) == [17, 18, 19, 20]
            assert third.take(timeout=0.5) == []
        commands.put("stop")
    finally:
        join_ok(proc, timeout=120)


def _depth_writer(domain_id: int, reliability: str, out: Any, matched: Any, go: Any) -> None:
    qos = loanbus.Qos(reliability=loanbus.Reliability[reliability], history_depth=3, max_samples=4)
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "depth", SMALL), qos)
        assert writer.wait_for_readers(1, timeout=60)
        assert matched.wait(60)  # the reader matched this writer too: best effort drops nothing yet
        for value in range(1, 11):
            loan = writer.get_loan()
            loan.data["value"] = value
            writer.write(loan)
        out.put(writer.statistics().by_value_writes)
        go.wait(120)


@pytest.mark.parametrize("by_value", [False, True], ids=["zero-copy", "by-value"])
def test_a_best_effort_reader_that_lags_keeps_the_newest_history_depth_samples(
    domain_id: int, by_value: bool
) -> None:
    """Both paths keep the same newest samples for a best-effort reader that does not take."""
    out, matched, go = CTX.Queue(), CTX.Event(), CTX.Event()
    proc = start(_depth_writer, domain_id, "BEST_EFFORT", out, matched, go)
    try:
        qos = loanbus.Qos(
            reliability=loanbus.Reliability.BEST_EFFORT, history_depth=3, max_samples=4, by_value=by_value
        )
        with loanbus.DomainParticipant(domain_id=domain_id) as dp:
            reader = loanbus.DataReader(loanbus.Topic(dp, "depth", SMALL), qos)
            assert reader.wait_for_writers(1, timeout=60)
            matched.set()
            assert out.get(timeout=120) == (10 if by_value else 0)
            depth = qos.reader_depth
            assert depth is not None
            got: list[int] = []

            def settled() -> bool:  # a best-effort sample may be lost; the newest must be there
                got.extend(int(s.data["value"]) for s in reader.take(max_samples=64))
                return bool(got) and got[-1] == 10

            assert wait_until(settled, 30)
            assert len(got) <= depth
            assert got == sorted(got) and got[-1] == 10
            assert got[0] >= 10 - depth + 1
    finally:
        go.set()
        join_ok(proc)
