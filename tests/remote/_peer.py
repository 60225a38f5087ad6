"""A loanbus writer or reader of camera::Image frames, run as its own process by the tests.

    python -m tests.remote._peer writer --domain D --frames N --readers K
    python -m tests.remote._peer reader --domain D --frames N [--by-value]

Frame ``i`` has ``sequence == i`` and pixels ``(arange % 251 + i) mod 256``, so a reader can
check every byte. Each prints one JSON line with what it saw; the writer then waits for its
stdin to close (so reliable delivery completes before it leaves).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

import loanbus
import loanbus.idl

IDL = Path(__file__).resolve().parents[2] / "idl" / "Image.idl"
Image = loanbus.idl.load(IDL).Image
PIXELS = Image.dtype["pixels"].shape[0]
BASE = (np.arange(PIXELS, dtype=np.uint32) % 251).astype(np.uint8)


def qos(by_value: bool = False) -> loanbus.Qos:
    return loanbus.Qos(
        reliability=loanbus.Reliability.RELIABLE,
        max_blocking_time=30.0,
        history_depth=None,
        max_samples=4,
        by_value=by_value,
    )


def writer(domain: int, frames: int, readers: int) -> None:
    with loanbus.DomainParticipant(domain) as dp:
        w = loanbus.DataWriter(loanbus.Topic(dp, "camera", Image), qos())
        if not w.wait_for_readers(readers, timeout=90):
            print(json.dumps({"error": f"only {w.matched_readers()} matched"}), flush=True)
            sys.exit(1)
        paths = sorted(m.path for m in w.matched_readers())
        started = time.perf_counter()
        for i in range(1, frames + 1):
            loan = w.get_loan()
            image = Image(loan.data)
            image.width, image.height, image.sequence = 1920, 1080, i
            np.add(BASE, i % 256, out=image.pixels, casting="unsafe")
            w.write(loan)
        elapsed = time.perf_counter() - started
        info = {
            "paths": paths,
            "seconds": elapsed,
            "stats": asdict(w.statistics()),
            "guid": dp.transport.guid,
        }
        print(json.dumps(info), flush=True)
        sys.stdin.read()  # the test closes stdin once the readers are done


def reader(domain: int, frames: int, by_value: bool) -> None:
    with loanbus.DomainParticipant(domain) as dp:
        r = loanbus.DataReader(loanbus.Topic(dp, "camera", Image), qos(by_value))
        if not r.wait_for_writers(1, timeout=90):
            print(json.dumps({"error": "no writer"}), flush=True)
            sys.exit(1)
        paths = [m.path for m in r.matched_writers()]
        seen, bad = [], 0
        deadline = time.monotonic() + 180
        while len(seen) < frames and time.monotonic() < deadline:
            for sample in r.take(timeout=1.0):
                image = Image(sample.data)
                expected = (BASE + (image.sequence % 256)).astype(np.uint8)
                ok = image.width == 1920 and np.array_equal(image.pixels, expected)
                ok = r.is_data_consistent(sample) and ok
                bad += not ok
                seen.append(image.sequence)
                r.return_loan(sample)
        info = {
            "paths": paths,
            "frames": seen,
            "bad": bad,
            "stats": asdict(r.statistics()),
            "guid": dp.transport.guid,
        }
        print(json.dumps(info), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["writer", "reader"])
    parser.add_argument("--domain", type=int, required=True)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--readers", type=int, default=1)
    parser.add_argument("--by-value", action="store_true")
    args = parser.parse_args()
    if args.role == "writer":
        writer(args.domain, args.frames, args.readers)
    else:
        reader(args.domain, args.frames, args.by_value)


if __name__ == "__main__":
    main()
