"""``await reader.take_async()`` and ``async for sample in reader`` with a writer in another process."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import loanbus
from loanbus import _aio
from tests.ecosystem import IMAGE, RELIABLE_2, RELIABLE_5, Writer, expected_ok, make_qos

pytestmark = pytest.mark.portable  # .ci/run runs it on every supported Python


def _reader(dp: loanbus.DomainParticipant, qos: dict[str, Any], topic: str = "img") -> Any:
    return loanbus.DataReader(loanbus.Topic(dp, topic, IMAGE), make_qos(qos))


def _count_takes(reader: Any) -> list[int]:
    """Count the reader's looks into its inbox (a real reader; only the calls are counted)."""
    calls = [0]
    take = reader._take_now

    def counted(max_samples: int) -> Any:
        calls[0] += 1
        return take(max_samples)

    reader._take_now = counted
    return calls


async def _until(condition: Any) -> None:
    """Let other tasks run until ``condition()`` holds (bounded by the test's own timeout)."""
    for _ in range(100_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never held")


def test_async_for_returns_each_sample_when_the_next_is_asked_for_and_the_last_at_break(
    domain_id: int,
) -> None:
    # A reliable pool of 2 slots: the writer's ability to loan tells which slots the reader holds.
    with Writer(domain_id, "img", RELIABLE_2) as w, loanbus.DomainParticipant(domain_id) as dp:
        reader = _reader(dp, RELIABLE_2)
        w.matched()
        assert reader.wait_for_writers(1, timeout=30)
        w.write(1, 2)
        steps: list[tuple[int, int]] = []

        async def consume() -> None:
            async for sample in reader:
                value = int(sample.data["value"])
                assert expected_ok(sample.data) and reader.is_data_consistent(sample)
                if value == 1:  # 1 in the body, 2 not taken yet: nothing to loan
                    steps.append((value, w.loans(1, 0.3)))
                elif value == 2:  # 1 was returned when 2 was asked for; 2 is held by the body
                    steps.append((value, w.loans(2, 0.3)))
                    w.write(3)
                elif value == 3:  # returning it in the body is allowed; the stream will not return twice
                    reader.return_loan(sample)
                    steps.append((value, w.loans(2, 10.0)))
                    w.write(4)
                elif value == 4:
                    break

        asyncio.run(consume())
        assert steps == [(1, 0), (2, 1), (3, 2)]
        assert w.loans(2, 10.0) == 2  # the break gave 4 back although the reader is still open
        stats = reader.statistics()
        assert stats.taken == stats.returned == 4


def test_async_for_streams_many_samples_through_a_two_slot_reliable_pool(domain_id: int) -> None:
    count = 300
    with Writer(domain_id, "img", RELIABLE_2) as w, loanbus.DomainParticipant(domain_id) as dp:
        reader = _reader(dp, RELIABLE_2)
        w.matched()
        assert reader.wait_for_writers(1, timeout=30)
        w.commands.put(("write", list(range(1, count + 1))))  # blocks unless every sample comes back

        async def consume() -> list[int]:
            seen = []
            async for sample in reader:
                assert expected_ok(sample.data)
                seen.append(int(sample.data["value"]))
                if len(seen) == count:
                    break
            return seen

        assert asyncio.run(consume()) == list(range(1, count + 1))
        assert w.replies.get(timeout=60) == ("written", list(range(1, count + 1)))


def test_take_async_parks_on_the_inbox_instead_of_polling(domain_id: int) -> None:
    with Writer(domain_id, "img", RELIABLE_5) as w, loanbus.DomainParticipant(domain_id) as dp:
        reader = _reader(dp, RELIABLE_5)
        w.matched()
        assert reader.wait_for_writers(1, timeout=30)
        assert reader.take() == []
        calls = _count_takes(reader)

        async def main() -> list[Any]:
            task = asyncio.create_task(reader.take_async(max_samples=4))
            await _until(lambda: reader._notifier.waiting == 1)
            loop = asyncio.get_running_loop()
            assert _aio._watches[(id(loop), reader.fileno())].futures  # add_reader on the inbox
            await asyncio.sleep(0.5)  # time a polling loop would spend calling take
            parked_calls = calls[0]
            await asyncio.get_running_loop().run_in_executor(None, w.write, 7)
            samples = await task
            assert parked_calls == 2  # once before parking, once right after (the re-check)
            return samples

        samples = asyncio.run(main())
        assert [int(s.data["value"]) for s in samples] == [7]
        assert calls[0] == 3  # one more take after the wake-up: that is all
        assert not _aio._watches  # the last waiter removed the loop's reader
        reader.return_loan(samples)


def test_a_cancelled_take_async_leaves_no_waiter_no_thread_and_takes_nothing(domain_id: int) -> None:
    with Writer(domain_id, "img", RELIABLE_5) as w, loanbus.DomainParticipant(domain_id) as dp:
        reader = _reader(dp, RELIABLE_5)
        w.matched()
        assert reader.wait_for_writers(1, timeout=30)
        threads = set(threading.enumerate())

        async def main() -> None:
            task = asyncio.create_task(reader.take_async(timeout=None))
            await _until(lambda: reader._notifier.waiting == 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert reader._notifier.waiting == 0

        asyncio.run(main())
        assert set(threading.enumerate()) == threads
        w.write(11)
        samples = reader.take(timeout=10.0)  # the cancelled wait took nothing: the sample is here
        assert [int(s.data["value"]) for s in samples] == [11]
        reader.return_loan(samples)
        assert reader.statistics().taken == 1


def test_timeouts_that_cancel_take_async_never_lose_or_leak_a_sample(domain_id: int) -> None:
    # asyncio.wait_for cancels take_async over and over while samples arrive; with 5 reliable
    # slots the writer would block for good if a cancelled call had taken a sample and lost it.
    count = 200
    with Writer(domain_id, "img", RELIABLE_5) as w, loanbus.DomainParticipant(domain_id) as dp:
        reader = _reader(dp, RELIABLE_5)
        w.matched()
        assert reader.wait_for_writers(1, timeout=30)
        w.commands.put(("write", list(range(1, count + 1))))

        async def main() -> tuple[list[int], int]:
            seen: list[int] = []
            cancelled = 0
            while len(seen) < count:
                try:
                    samples = await asyncio.wait_for(reader.take_async(max_samples=2), timeout=0.0005)
                except TimeoutError:
                    cancelled += 1
                    continue
                seen += [int(s.data["value"]) for s in samples]
                reader.return_loan(samples)
            return seen, cancelled

        seen, cancelled = asyncio.run(main())
        assert seen == list(range(1, count + 1))
        assert w.replies.get(timeout=60) == ("written", list(range(1, count + 1)))
        assert reader._notifier.waiting == 0
        stats = reader.statistics()
        assert stats.taken == stats.returned == count
        print(f"{cancelled} take_async calls were cancelled by wait_for")


def test_take_async_returns_an_empty_list_when_its_timeout_passes(domain_id: int) -> None:
    with loanbus.DomainParticipant(domain_id) as dp:
        reader = _reader(dp, RELIABLE_5)
        assert asyncio.run(reader.take_async(timeout=0.05)) == []
        assert asyncio.run(reader.take_async(timeout=0)) == []
        assert reader._notifier.waiting == 0
        with pytest.raises(ValueError, match="max_samples"):
            asyncio.run(reader.take_async(max_samples=0))


def test_closing_the_reader_wakes_take_async_with_closed_error_and_ends_async_for(domain_id: int) -> None:
    with loanbus.DomainParticipant(domain_id) as dp:
        taker, streamer = _reader(dp, RELIABLE_5, "a"), _reader(dp, RELIABLE_5, "b")

        async def stream() -> str:
            async for _sample in streamer:
                return "got a sample"
            return "ended"

        async def main() -> None:
            take = asyncio.create_task(taker.take_async())
            loop_task = asyncio.create_task(stream())
            await _until(lambda: taker._notifier.waiting == 1 and streamer._notifier.waiting == 1)
            taker.close()  # from the loop's own thread
            with pytest.raises(loanbus.ClosedError):
                await take
            closer = threading.Thread(target=streamer.close)  # and from another thread
            closer.start()
            assert await loop_task == "ended"
            closer.join(10)
            with pytest.raises(loanbus.ClosedError):
                await taker.take_async()

        asyncio.run(main())


def test_several_readers_share_one_event_loop(domain_id: int) -> None:
    count = 40
    with (
        Writer(domain_id, "left", RELIABLE_2) as left,
        Writer(domain_id, "right", RELIABLE_2) as right,
        loanbus.DomainParticipant(domain_id) as dp,
    ):
        readers = [_reader(dp, RELIABLE_2, "left"), _reader(dp, RELIABLE_2, "right")]
        for w, r in zip((left, right), readers, strict=True):
            w.matched()
            assert r.wait_for_writers(1, timeout=30)
        left.commands.put(("write", list(range(count))))
        right.commands.put(("write", list(range(1000, 1000 + count))))

        async def consume(reader: Any) -> list[int]:
            seen = []
            async for sample in reader:
                seen.append(int(sample.data["value"]))
                if len(seen) == count:
                    break
            return seen

        async def main() -> list[list[int]]:
            return list(await asyncio.gather(*(consume(r) for r in readers)))

        assert asyncio.run(main()) == [list(range(count)), list(range(1000, 1000 + count))]
        for w in (left, right):
            assert w.replies.get(timeout=60)[0] == "written"


def test_take_async_wakes_for_by_value_samples_too(domain_id: int) -> None:
    # A reader forced onto the by-value path gets private copies on the plain topic; the
    # notifier that parks take_async must hear those arrivals as well as references.
    qos = dict(RELIABLE_5, by_value=True)
    with Writer(domain_id, "img", RELIABLE_5) as w, loanbus.DomainParticipant(domain_id) as dp:
        reader = _reader(dp, qos)
        w.matched()
        assert reader.wait_for_writers(1, timeout=30)

        async def main() -> list[Any]:
            task = asyncio.create_task(reader.take_async(max_samples=4))
            await _until(lambda: reader._notifier.waiting == 1)
            loop = asyncio.get_running_loop()
            assert _aio._watches[(id(loop), reader.fileno())].futures  # add_reader on the inbox
            await asyncio.get_running_loop().run_in_executor(None, w.write, 9)
            return await asyncio.wait_for(task, timeout=30)

        samples = asyncio.run(main())
        assert [int(s.data["value"]) for s in samples] == [9]
        assert samples[0].info.slot == -1 and expected_ok(samples[0].data)  # a copy, not the pool
        reader.return_loan(samples)
        assert reader.statistics().by_value_taken == 1
