"""What a consumer style costs: blocking take vs take_async vs async for vs on_data_available.

Run: ``python benchmarks/consumers.py --domain 170`` (``--help`` for options). Every figure
is measured in this run, modes interleaved in chunks, and compared with plain blocking
``take(timeout=...)`` measured in the same chunk, so the ratios survive a noisy machine.

* ping-pong: this process writes a ping, a pong process (always plain ``take``) answers,
  and this process waits for the pong in the mode under test. One-way = round trip / 2.
* stream: a writer process sends N samples as fast as a reliable 8-sample pool allows;
  this process consumes them in the mode under test. Figure: samples/s.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import loanbus

CTX = mp.get_context("spawn")
QOS = loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, max_samples=8, max_blocking_time=10.0)
SMALL = loanbus.ShmemType("bench::Small", np.dtype([("seq", "<u8"), ("blob", "u1", (56,))]))
MODES = ("take", "take_async", "async for", "callback")


# -- helpers of the other process ---------------------------------------------------------------


def _pong(domain_id: int, tag: str, rounds: int) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, f"ping{tag}", SMALL), QOS)
        writer = loanbus.DataWriter(loanbus.Topic(dp, f"pong{tag}", SMALL), QOS)
        writer.wait_for_readers(1, 30)
        reader.wait_for_writers(1, 30)
        done = 0
        while done < rounds:
            for s in reader.take(max_samples=1, timeout=5.0):
                reader.return_loan(s)
                loan = writer.get_loan()
                writer.write(loan)
                done += 1


def _flood(domain_id: int, tag: str, count: int) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, f"flood{tag}", SMALL), QOS)
        writer.wait_for_readers(1, 30)
        time.sleep(0.3)  # let the reader's side finish matching before the burst
        for i in range(count):
            loan = writer.get_loan()
            loan.data["seq"] = i
            writer.write(loan)
        time.sleep(1.0)


# -- waiting for samples in each mode -----------------------------------------------------------


class _Signal:
    """The callback mode: a Cyclone thread takes and returns, then wakes this thread."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.count = 0

    def __call__(self, reader: Any) -> None:
        samples = reader.take(max_samples=32)
        if samples:
            reader.return_loan(samples)
            self.count += len(samples)
            self.event.set()


def _reader(dp: loanbus.DomainParticipant, topic: str, mode: str) -> tuple[Any, _Signal | None]:
    signal = _Signal() if mode == "callback" else None
    reader = loanbus.DataReader(loanbus.Topic(dp, topic, SMALL), QOS, on_data_available=signal)
    return reader, signal


def pingpong(domain_id: int, tag: str, mode: str, rounds: int, warmup: int) -> list[float]:
    """One-way latencies (µs) when this side waits for the pong in ``mode``."""
    proc = CTX.Process(target=_pong, args=(domain_id, tag, rounds + warmup), daemon=True)
    proc.start()
    out: list[float] = []
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, f"ping{tag}", SMALL), QOS)
        reader, signal = _reader(dp, f"pong{tag}", mode)
        writer.wait_for_readers(1, 30)
        reader.wait_for_writers(1, 30)

        def ping() -> int:
            t0 = time.perf_counter_ns()
            writer.write(writer.get_loan())
            return t0

        def record(i: int, t0: int) -> None:
            if i >= warmup:
                out.append((time.perf_counter_ns() - t0) / 2e3)

        if mode == "take":
            for i in range(rounds + warmup):
                t0 = ping()
                samples: list[Any] = []
                while not samples:
                    samples = reader.take(max_samples=1, timeout=5.0)
                reader.return_loan(samples)
                record(i, t0)
        elif mode == "callback":
            assert signal is not None
            for i in range(rounds + warmup):
                t0 = ping()
                signal.event.wait(5.0)
                signal.event.clear()
                record(i, t0)
        else:

            async def run() -> None:
                stream = aiter(reader) if mode == "async for" else None
                for i in range(rounds + warmup):
                    t0 = ping()
                    if stream is not None:
                        await anext(stream)
                    else:
                        reader.return_loan(await reader.take_async(max_samples=1, timeout=5.0))
                    record(i, t0)
                if stream is not None:
                    await stream.aclose()

            asyncio.run(run())
    proc.join(30)
    return out


def stream(domain_id: int, tag: str, mode: str, count: int) -> float:
    """Samples/s that this process consumes in ``mode`` from a writer flooding a reliable pool."""
    proc = CTX.Process(target=_flood, args=(domain_id, tag, count), daemon=True)
    proc.start()
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        reader, signal = _reader(dp, f"flood{tag}", mode)
        reader.wait_for_writers(1, 30)
        first = last = 0.0
        got = 0
        if mode == "take":
            while got < count:
                samples = reader.take(max_samples=32, timeout=5.0)
                if samples and not got:
                    first = time.perf_counter()
                got += len(samples)
                reader.return_loan(samples)
            last = time.perf_counter()
        elif mode == "callback":
            assert signal is not None
            signal.event.wait(30)
            first = time.perf_counter()
            while signal.count < count:
                signal.event.wait(5.0)
                signal.event.clear()
            last = time.perf_counter()
        else:

            async def run() -> tuple[float, float]:
                n = 0
                start = 0.0
                if mode == "async for":
                    async for _sample in reader:
                        if not n:
                            start = time.perf_counter()
                        n += 1
                        if n == count:
                            break
                else:
                    while n < count:
                        samples = await reader.take_async(max_samples=32, timeout=5.0)
                        if samples and not n:
                            start = time.perf_counter()
                        n += len(samples)
                        reader.return_loan(samples)
                return start, time.perf_counter()

            first, last = asyncio.run(run())
    proc.join(30)
    # The first sample starts the clock, so count - 1 intervals were timed.
    return (count - 1) / (last - first) if last > first else 0.0


# -- the report ---------------------------------------------------------------------------------


def _interleaved(chunks: int, measure: Callable[[str, str], Any]) -> dict[str, list[Any]]:
    results: dict[str, list[Any]] = {m: [] for m in MODES}
    measure("_warm", "take")  # a first run pays for imports and page faults: not counted
    for chunk in range(chunks):
        for k, mode in enumerate(MODES):
            results[mode].append(measure(f"_{chunk}_{k}", mode))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--domain", type=int, default=170)
    parser.add_argument("--rounds", type=int, default=1000, help="ping-pong rounds per chunk and mode")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--count", type=int, default=20000, help="samples per stream")
    parser.add_argument("--chunks", type=int, default=3, help="alternations of the modes")
    args = parser.parse_args()
    os.environ["LOANBUS_DDS_PROFILE"] = "loopback"  # one host: no DDS packet leaves lo

    lat = _interleaved(args.chunks, lambda tag, m: pingpong(args.domain, tag, m, args.rounds, args.warmup))
    thr = _interleaved(args.chunks, lambda tag, m: stream(args.domain, tag, m, args.count))
    print(f"{len(MODES)} modes, {args.chunks} interleaved chunks; 64-byte samples, reliable, 9 slots")
    print(f"{'mode':<12}{'one-way med':>13}{'p99':>9}{'vs take':>9}{'stream/s':>12}{'vs take':>9}")
    print("-" * 64)
    base_lat = [statistics.median(c) for c in lat["take"]]
    for mode in MODES:
        meds = [statistics.median(c) for c in lat[mode]]
        allv = sorted(v for c in lat[mode] for v in c)
        p99 = allv[int(len(allv) * 0.99)]
        lat_ratio = statistics.median(m / b for m, b in zip(meds, base_lat, strict=True))
        thr_ratio = statistics.median(t / b for t, b in zip(thr[mode], thr["take"], strict=True))
        print(
            f"{mode:<12}{statistics.median(meds):>11.1f}µs{p99:>9.1f}{lat_ratio:>8.2f}x"
            f"{statistics.median(thr[mode]):>12,.0f}{thr_ratio:>8.2f}x"
        )


if __name__ == "__main__":
    main()
