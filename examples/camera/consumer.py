"""The "SDK": takes camera frames zero-copy and computes the mean brightness per channel.

    python -m examples.camera.consumer                      # until Ctrl-C / SIGTERM
    python -m examples.camera.consumer --frames 100 --domain 7

Each frame is a read-only view of the producer's shared memory. The consumer uses it in
place, then asks ``is_data_consistent()``: False means the producer reused the slot while
the consumer was reading, so that frame's result is thrown away and counted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np

import loanbus
from examples.camera.frames import HEIGHT, STRIDE, TOPIC, WIDTH, Image, exit_on_sigterm, pixels, qos


def channel_means(frame: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Mean of R, G and B over a (HEIGHT, WIDTH, 3) frame, read in place.

    Summing whole rows first keeps numpy on contiguous memory (fast); only a 5760-element
    row of sums is allocated.
    """
    rows = frame.reshape(HEIGHT, STRIDE)
    column_sums = np.add.reduce(rows, axis=0, dtype=np.uint32)
    means: np.ndarray[Any, Any] = column_sums.reshape(WIDTH, 3).sum(axis=0) / (WIDTH * HEIGHT)
    return means


class Tally:
    """Counters and latencies since the last report, plus totals."""

    def __init__(self) -> None:
        self.frames = self.inconsistent = 0
        self.window_frames = 0
        self.latencies_ms: list[float] = []
        self.window_start = time.monotonic()

    def report(self, means: np.ndarray[Any, Any] | None, sequence: int) -> str:
        now = time.monotonic()
        rate = self.window_frames / (now - self.window_start)
        lat = sorted(self.latencies_ms) or [0.0]
        rgb = "-" if means is None else "(" + ", ".join(f"{m:.1f}" for m in means) + ")"
        line = (
            f"consumer: {rate:.1f} frames/s, latency median {statistics.median(lat):.2f} ms "
            f"p99 {lat[int(0.99 * (len(lat) - 1))]:.2f} ms, mean RGB {rgb}, frame {sequence}, "
            f"inconsistent {self.inconsistent}"
        )
        self.window_frames, self.latencies_ms, self.window_start = 0, [], now
        return line


def run(tally: Tally, domain_id: int, frames: int, seconds: float, report_every: float) -> None:
    """Take frames until ``frames`` were taken or ``seconds`` passed (0: no limit)."""
    means: np.ndarray[Any, Any] | None = None
    sequence = -1
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, TOPIC, Image), qos=qos())
        print(f"consumer: taking frames from '{TOPIC}'", flush=True)
        start = time.monotonic()
        while (not frames or tally.frames < frames) and (not seconds or time.monotonic() - start < seconds):
            for sample in reader.take(max_samples=16, timeout=0.5):
                image = Image(sample.data)
                result = channel_means(pixels(image))  # reads 6 MB of the producer's RAM
                number = int(image.sequence)
                consistent = reader.is_data_consistent(sample)  # after using the data
                latency_ms = (sample.info.reception_timestamp - sample.info.source_timestamp) / 1e6
                reader.return_loan(sample)
                tally.frames += 1
                tally.window_frames += 1
                tally.latencies_ms.append(latency_ms)
                if consistent:
                    means, sequence = result, number
                else:
                    tally.inconsistent += 1
            if report_every and time.monotonic() - tally.window_start >= report_every:
                waiting = "consumer: waiting for a producer"
                print(tally.report(means, sequence) if tally.frames else waiting, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--domain", type=int, default=0, help="DDS domain id (default 0)")
    parser.add_argument("--frames", type=int, default=0, help="stop after this many frames (0: never)")
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0: never)")
    parser.add_argument("--report-every", type=float, default=1.0, help="seconds between status lines")
    args = parser.parse_args()
    exit_on_sigterm()
    tally = Tally()
    try:
        run(tally, args.domain, args.frames, args.seconds, args.report_every)
    except KeyboardInterrupt:
        pass  # Ctrl-C or SIGTERM: leaving run() closed the reader and the participant
    print(f"consumer: took {tally.frames} frames, {tally.inconsistent} inconsistent", flush=True)


if __name__ == "__main__":
    main()
