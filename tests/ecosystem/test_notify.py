"""DataNotifier on its own (no DDS): the dispatch rules the listener tests rely on."""

from __future__ import annotations

import asyncio
import threading

from loanbus._notify import DataNotifier


class Owner:
    """Stands in for the DataReader the notifier passes to the callback."""


def test_an_arrival_during_a_callback_runs_it_once_more_on_the_same_thread() -> None:
    owner = Owner()
    entered, release = threading.Event(), threading.Event()
    runs: list[int] = []

    def callback(who: Owner) -> None:
        assert who is owner
        runs.append(threading.get_ident())
        if len(runs) == 1:
            entered.set()
            assert release.wait(10)

    notifier = DataNotifier(owner, callback)
    first = threading.Thread(target=notifier.on_data)
    first.start()
    assert entered.wait(10)
    notifier.on_data()  # a second Cyclone thread: returns at once, does not run the callback
    notifier.on_data()  # a third arrival coalesces with the second
    assert runs == [first.ident]
    release.set()
    first.join(10)
    assert runs == [first.ident, first.ident]  # one more run, on the first thread
    assert notifier.calls == 2


def test_stop_waits_for_the_callback_in_progress_and_refuses_later_arrivals() -> None:
    owner = Owner()
    entered, release = threading.Event(), threading.Event()
    calls = [0]

    def callback(_: Owner) -> None:
        calls[0] += 1
        entered.set()
        assert release.wait(10)

    notifier = DataNotifier(owner, callback)
    runner = threading.Thread(target=notifier.on_data)
    runner.start()
    assert entered.wait(10)
    stopper = threading.Thread(target=notifier.stop)
    stopper.start()
    stopper.join(0.2)
    assert stopper.is_alive()  # waiting for the callback
    release.set()
    stopper.join(10)
    runner.join(10)
    assert not stopper.is_alive()
    notifier.on_data()
    assert calls[0] == 1 and notifier.stopped


def test_stop_from_inside_the_callback_does_not_wait_for_itself() -> None:
    owner = Owner()
    inside: list[bool] = []

    def callback(_: Owner) -> None:
        inside.append(notifier.inside_callback())
        notifier.stop()

    notifier = DataNotifier(owner, callback)
    notifier.on_data()
    assert inside == [True] and notifier.stopped and not notifier.inside_callback()


def test_an_exception_in_the_callback_is_counted_and_the_next_arrival_still_calls_it() -> None:
    calls = [0]

    def callback(_: Owner) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise ValueError("boom")

    owner = Owner()
    notifier = DataNotifier(owner, callback)
    notifier.on_data()
    notifier.on_data()
    assert calls[0] == 2 and notifier.errors == 1


def test_a_notifier_does_not_keep_its_owner_alive() -> None:
    calls = [0]
    owner = Owner()
    notifier = DataNotifier(owner, lambda _: calls.__setitem__(0, calls[0] + 1))
    del owner
    notifier.on_data()
    assert calls[0] == 0


def test_waiters_of_two_loops_are_woken_on_their_own_loops_and_stop_wakes_the_rest() -> None:
    notifier = DataNotifier(Owner())
    ready = threading.Barrier(3)
    woken: dict[str, int] = {}

    def waiter(name: str, rounds: int) -> None:
        async def main() -> None:
            loop = asyncio.get_running_loop()
            for _ in range(rounds):
                fut = loop.create_future()
                assert notifier.add_waiter(fut, loop)
                ready.wait(10)
                await fut
                notifier.remove_waiter(fut)
                woken[name] = woken.get(name, 0) + 1

        asyncio.run(main())

    threads = [threading.Thread(target=waiter, args=(name, 2)) for name in ("a", "b")]
    for t in threads:
        t.start()
    ready.wait(10)  # both parked
    notifier.on_data()  # wakes both, each on its own loop
    ready.wait(10)  # both parked again
    notifier.stop()  # wakes both once more
    for t in threads:
        t.join(10)
    assert woken == {"a": 2, "b": 2} and notifier.waiting == 0
    loop = asyncio.new_event_loop()
    try:
        assert not notifier.add_waiter(loop.create_future(), loop)  # a stopped notifier parks nobody
    finally:
        loop.close()
