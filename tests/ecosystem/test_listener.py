"""``DataReader(topic, qos, on_data_available=callback)``: push-style consumers."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

import loanbus
from loanbus._lifetime import wait_until
from tests.ecosystem import IMAGE, RELIABLE_2, RELIABLE_5, Writer, expected_ok, make_qos


def _topic(dp: loanbus.DomainParticipant) -> Any:
    return loanbus.Topic(dp, "img", IMAGE)


def test_the_callback_runs_on_the_callback_thread_and_consumes_every_sample(
    domain_id: int, caplog: pytest.LogCaptureFixture
) -> None:
    count = 100
    seen: list[int] = []
    threads: set[int] = set()
    done = threading.Event()

    calls = [0]

    def on_data(reader: Any) -> None:
        calls[0] += 1
        threads.add(threading.get_ident())
        samples = reader.take()
        for s in samples:
            assert expected_ok(s.data)
            seen.append(int(s.data["value"]))
        reader.return_loan(samples)
        if calls[0] == 1:
            raise RuntimeError("the first callback fails on purpose")  # after taking: nothing is lost
        if len(seen) == count:
            done.set()

    with Writer(domain_id, "img", RELIABLE_2) as w, loanbus.DomainParticipant(domain_id) as dp:
        caplog.set_level(logging.ERROR, logger="loanbus")
        reader = loanbus.DataReader(_topic(dp), make_qos(RELIABLE_2), on_data_available=on_data)
        w.matched()
        w.write(*range(1, count + 1))  # 2 slots: only callbacks that take and return let this finish
        assert done.wait(30)
        assert seen == list(range(1, count + 1))
        assert threading.get_ident() not in threads
        assert {t.name for t in threading.enumerate() if t.ident in threads} == {"loanbus-callbacks"}
        errors = [r for r in caplog.records if "on_data_available" in r.getMessage()]
        assert len(errors) == 1 and errors[0].exc_info is not None
        assert "fails on purpose" in str(errors[0].exc_info[1])
        assert reader._notifier.errors == 1
        reader.close()


def test_close_waits_for_a_callback_in_progress_and_no_callback_runs_after_it(domain_id: int) -> None:
    entered, release = threading.Event(), threading.Event()
    state = {"running": False, "after_close": 0}
    closed = threading.Event()

    def on_data(reader: Any) -> None:
        if closed.is_set():
            state["after_close"] += 1
        state["running"] = True
        entered.set()
        release.wait(30)
        reader.return_loan(reader.take())  # the reader is still open while we run
        state["running"] = False

    with Writer(domain_id, "img", RELIABLE_5) as w, loanbus.DomainParticipant(domain_id) as dp:
        reader = loanbus.DataReader(_topic(dp), make_qos(RELIABLE_5), on_data_available=on_data)
        w.matched()
        w.write(1)
        assert entered.wait(30)

        def close() -> None:
            reader.close()
            closed.set()

        closer = threading.Thread(target=close)
        closer.start()
        closer.join(0.3)
        assert closer.is_alive() and not closed.is_set()  # close() is waiting for the callback
        release.set()
        closer.join(30)
        assert closed.is_set() and not state["running"]
        assert wait_until(lambda: w.ask("matched") == 0, 30)
        w.write(2, 3)  # nobody listens any more
        assert state["after_close"] == 0 and reader._notifier.calls >= 1
        calls = reader._notifier.calls
        reader._notifier.on_data()  # even a late call from Cyclone is refused
        assert reader._notifier.calls == calls


def test_a_callback_may_close_its_own_reader(domain_id: int) -> None:
    got: list[int] = []

    def on_data(reader: Any) -> None:
        samples = reader.take()
        got.extend(int(s.data["value"]) for s in samples)
        reader.return_loan(samples)
        reader.close()  # from the callback thread itself: close() must not wait for itself

    with Writer(domain_id, "img", RELIABLE_5) as w, loanbus.DomainParticipant(domain_id) as dp:
        reader = loanbus.DataReader(_topic(dp), make_qos(RELIABLE_5), on_data_available=on_data)
        w.matched()
        w.write(5)
        assert wait_until(lambda: reader.closed, 30)
        assert got == [5]
        assert wait_until(lambda: w.ask("matched") == 0, 30)  # the DDS reader was deleted
        with pytest.raises(loanbus.ClosedError):
            reader.take()


def test_a_reader_without_a_callback_is_not_watched_by_the_callback_thread(domain_id: int) -> None:
    from loanbus._notify import _watcher

    with loanbus.DomainParticipant(domain_id) as dp:
        reader = loanbus.DataReader(_topic(dp), make_qos(RELIABLE_5))
        assert reader.take() == [] and reader._watched is False
        assert reader.fileno() not in _watcher._targets
        other = loanbus.DataReader(_topic(dp), make_qos(RELIABLE_5), on_data_available=lambda r: None)
        assert other._watched and other.fileno() in _watcher._targets
        fd = other.fileno()
        other.close()
        assert fd not in _watcher._targets  # closing stops the watch before the inbox goes
        with pytest.raises(TypeError, match="callable"):
            loanbus.DataReader(_topic(dp), on_data_available=42)  # type: ignore[arg-type]


def test_callbacks_never_overlap_even_when_references_arrive_during_one(domain_id: int) -> None:
    active = [0]
    overlaps = [0]
    total = [0]

    def on_data(reader: Any) -> None:
        active[0] += 1
        if active[0] > 1:
            overlaps[0] += 1
        time.sleep(0.01)  # widen the window in which more references arrive
        samples = reader.take()
        total[0] += len(samples)
        reader.return_loan(samples)
        active[0] -= 1

    count = 60
    with Writer(domain_id, "img", RELIABLE_5) as w, loanbus.DomainParticipant(domain_id) as dp:
        reader = loanbus.DataReader(_topic(dp), make_qos(RELIABLE_5), on_data_available=on_data)
        w.matched()
        w.write(*range(count))
        assert wait_until(lambda: total[0] == count, 30)  # coalesced arrivals are never lost
        assert overlaps[0] == 0
        reader.close()
