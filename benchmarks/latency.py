"""Ping-pong latency and streaming throughput: loanbus zero-copy vs a bare Cyclone DDS message.

Run: ``python benchmarks/latency.py`` (``--help`` for options). Prints a table and ratios,
and writes JSON with ``--json FILE``. Each figure is measured in this run, on this machine,
so the ratios stay meaningful on a noisy machine.

* loanbus: ping loans a sample of SIZE bytes and writes it; pong takes it, returns it and
  answers with a sample of the same size. One-way latency = round trip / 2.
* bare Cyclone: the same ping-pong with a 12-byte pre-encoded message written and taken
  with the binding's low-level calls (no Python serializer): the floor of this design.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import struct
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.types import uint32, uint64

import loanbus

SIZES = [64, 64 * 1024, 1024 * 1024, 6_220_800, 64 * 1024 * 1024]
CTX = mp.get_context("spawn")
QOS = loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, max_samples=2, max_blocking_time=5.0)


def _stype(size: int) -> loanbus.ShmemType:
    return loanbus.ShmemType(f"bench::B{size}", np.dtype([("payload", "u1", (size,))]))


# -- loanbus -------------------------------------------------------------------------------


def _lb_pong(domain_id: int, size: int, rounds: int) -> None:
    stype = _stype(size)
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, "ping", stype), qos=QOS)
        writer = loanbus.DataWriter(loanbus.Topic(dp, "pong", stype), qos=QOS)
        writer.wait_for_readers(1, 30)
        reader.wait_for_writers(1, 30)
        done = 0
        while done < rounds:
            for s in reader.take(max_samples=1, timeout=5.0):
                first = s.data["payload"][0]
                reader.return_loan(s)
                loan = writer.get_loan()
                loan.data["payload"][0] = first
                writer.write(loan)
                done += 1


def loanbus_pingpong(domain_id: int, size: int, rounds: int, warmup: int) -> list[float]:
    """One-way latencies (µs) of a loanbus ping-pong with samples of ``size`` bytes."""
    stype = _stype(size)
    proc = CTX.Process(target=_lb_pong, args=(domain_id, size, rounds + warmup), daemon=True)
    proc.start()
    out = []
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "ping", stype), qos=QOS)
        reader = loanbus.DataReader(loanbus.Topic(dp, "pong", stype), qos=QOS)
        writer.wait_for_readers(1, 30)
        reader.wait_for_writers(1, 30)
        for i in range(rounds + warmup):
            t0 = time.perf_counter_ns()
            loan = writer.get_loan()
            loan.data["payload"][0] = i % 256
            writer.write(loan)
            samples: list[Any] = []
            while not samples:
                samples = reader.take(max_samples=1, timeout=5.0)
            reader.return_loan(samples)
            if i >= warmup:
                out.append((time.perf_counter_ns() - t0) / 2e3)
    proc.join(30)
    return out


def _lb_stream_reader(domain_id: int, size: int, seconds: float, result: Any) -> None:
    stype = _stype(size)
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, "stream", stype), qos=QOS)
        reader.wait_for_writers(1, 30)
        count = 0
        start = None
        idle = 0
        while True:
            samples = reader.take(max_samples=32, timeout=0.5)
            if not samples:
                idle += 1
                if start is not None and idle > 1:
                    break
                continue
            idle = 0
            if start is None:
                start = time.perf_counter()
            last = time.perf_counter()
            count += len(samples)
            reader.return_loan(samples)
        result.put((count, last - start if start else 0.0))


def loanbus_stream(domain_id: int, size: int, seconds: float) -> float:
    """Samples/s delivered by a reliable loanbus stream (writer as fast as allowed)."""
    stype = _stype(size)
    result = CTX.Queue()
    proc = CTX.Process(target=_lb_stream_reader, args=(domain_id, size, seconds, result), daemon=True)
    proc.start()
    qos = loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, max_samples=8, max_blocking_time=5.0)
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "stream", stype), qos=qos)
        writer.wait_for_readers(1, 30)
        time.sleep(0.2)
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            loan = writer.get_loan()
            loan.data["payload"][0] = 1
            writer.write(loan)
        count, elapsed = result.get(timeout=60)
    proc.join(30)
    return count / elapsed if elapsed else 0.0


# -- bare Cyclone DDS ----------------------------------------------------------------------


def _cy_setup(domain_id: int, mine: str, theirs: str) -> Any:
    from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState, WaitSet
    from cyclonedds.domain import Domain, DomainParticipant
    from cyclonedds.pub import DataWriter
    from cyclonedds.qos import Policy, Qos
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic

    from loanbus._transport.config import build_config

    Domain(domain_id, build_config(lease_duration=10.0, profile="loopback"))
    dp = DomainParticipant(domain_id)
    # The same QoS as loanbus's reliable reference topic, so only the payload path differs.
    qos = Qos(Policy.Reliability.Reliable(10**9), Policy.History.KeepAll)
    ping = Ping
    writer = DataWriter(dp, Topic(dp, mine, ping), qos=qos)
    reader = DataReader(dp, Topic(dp, theirs, ping), qos=qos)
    mask = SampleState.Any | ViewState.Any | InstanceState.Any
    waitset = WaitSet(dp)
    waitset.attach(ReadCondition(reader, mask))
    deadline = time.monotonic() + 30
    while (not writer.get_matched_subscriptions() or not reader.get_matched_publications()) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.01)
    return dp, writer, reader, waitset, mask


_MSG = b"\x00\x01\x00\x00" + struct.pack("<QI", 1, 2)  # 12 bytes of payload behind the header


@dataclass
class Ping(IdlStruct, typename="bench::Ping"):
    """A 12-byte struct (u64 + u32): the size of a minimal slot reference."""

    seq: uint64
    slot: uint32


def _cy_pong(domain_id: int, rounds: int) -> None:
    from cyclonedds._clayer import ddspy_take, ddspy_write

    _, writer, reader, waitset, mask = _cy_setup(domain_id, "cy_pong", "cy_ping")
    done = 0
    while done < rounds:
        waitset.wait(5 * 10**9)
        got = ddspy_take(reader._ref, mask, 1)
        if got:
            ddspy_write(writer._ref, _MSG)
            done += 1


def cyclone_pingpong(domain_id: int, rounds: int, warmup: int) -> list[float]:
    """One-way latencies (µs) of a bare Cyclone ping-pong of a 12-byte pre-encoded message."""
    from cyclonedds._clayer import ddspy_take, ddspy_write

    proc = CTX.Process(target=_cy_pong, args=(domain_id, rounds + warmup), daemon=True)
    proc.start()
    _, writer, reader, waitset, mask = _cy_setup(domain_id, "cy_ping", "cy_pong")
    time.sleep(0.3)
    out = []
    for i in range(rounds + warmup):
        t0 = time.perf_counter_ns()
        ddspy_write(writer._ref, _MSG)
        while not ddspy_take(reader._ref, mask, 1):
            waitset.wait(5 * 10**9)
        if i >= warmup:
            out.append((time.perf_counter_ns() - t0) / 2e3)
    proc.join(30)
    return out


# -- report --------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _fmt_size(size: int) -> str:
    for unit, div in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= div and size % div == 0:
            return f"{size // div} {unit}"
    return f"{size:,} B"


def _interleaved(domain: int, size: int, rounds: int, warmup: int, chunks: int) -> dict[str, Any]:
    """Alternate bare-Cyclone and loanbus ping-pongs so both see the same machine load."""
    floor: list[float] = []
    lat: list[float] = []
    ratios = []
    per_chunk = max(rounds // chunks, 50)
    for c in range(chunks):
        f = cyclone_pingpong(domain + 2 * c, per_chunk, warmup)
        x = loanbus_pingpong(domain + 2 * c + 1, size, per_chunk, warmup)
        ratios.append(statistics.median(x) / statistics.median(f))
        floor += f
        lat += x
    return {
        "size": size,
        "median_us": statistics.median(lat),
        "p99_us": _pct(lat, 0.99),
        "cyclone_median_us": statistics.median(floor),
        "cyclone_p99_us": _pct(floor, 0.99),
        "ratio_vs_cyclone": statistics.median(ratios),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="*", default=SIZES, help="sample sizes in bytes")
    parser.add_argument("--rounds", type=int, default=3000, help="ping-pong rounds per size")
    parser.add_argument("--chunks", type=int, default=3, help="alternations of bare Cyclone and loanbus")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=2.0, help="streaming time per size")
    parser.add_argument("--domain", type=int, default=20)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    os.environ["LOANBUS_DDS_PROFILE"] = "loopback"  # one host: no DDS packet leaves lo

    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print("one-way latency = ping-pong round trip / 2; 'Cyclone' = bare 12-byte pre-encoded message,")
    print("measured in alternating chunks with loanbus; ratio = median of the per-chunk ratios")
    print()
    header = (
        f"{'size':>10} {'loanbus med':>11} {'p99':>7} {'Cyclone med':>11} {'p99':>7} "
        f"{'ratio':>6} {'samples/s':>10} {'GB/s':>8}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    domain = args.domain
    for size in args.sizes:
        row = _interleaved(domain, size, args.rounds, args.warmup, args.chunks)
        domain += 2 * args.chunks
        rate = loanbus_stream(domain, size, args.seconds)
        domain += 1
        row["samples_per_s"] = rate
        row["gb_per_s"] = rate * size / 1e9
        rows.append(row)
        print(
            f"{_fmt_size(size):>10} {row['median_us']:>9.1f}µs {row['p99_us']:>7.1f} "
            f"{row['cyclone_median_us']:>9.1f}µs {row['cyclone_p99_us']:>7.1f} "
            f"{row['ratio_vs_cyclone']:>5.2f}x {rate:>10,.0f} {row['gb_per_s']:>8.1f}",
            flush=True,
        )
    if len(rows) > 1:
        flat = rows[-1]["median_us"] / rows[0]["median_us"]
        big, small = _fmt_size(rows[-1]["size"]), _fmt_size(rows[0]["size"])
        print(f"\nflatness: {big} median / {small} median = {flat:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": platform.platform(), "cores": os.cpu_count(), "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
