"""``loanbus demo``: a producer process and a consumer process move 1920x1080 RGB frames."""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import time
from typing import Any

import numpy as np
import rich_click as click
from rich.console import Console
from rich.table import Table

import loanbus

FRAME = loanbus.ShmemType(
    "loanbus_demo::Frame",
    np.dtype([("frame", "<u8"), ("width", "<u4"), ("height", "<u4"), ("pixels", "u1", (1080, 1920, 3))]),
)
TOPIC = "loanbus_demo_frames"
STRIPE = 8


def _qos(reliable: bool) -> loanbus.Qos:
    if reliable:
        return loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, max_samples=4, max_blocking_time=1.0)
    return loanbus.Qos(reliability=loanbus.Reliability.BEST_EFFORT, max_samples=4)


def producer(
    domain_id: int, seconds: float, rate: float, reliable: bool, go: Any, done: Any, out: Any
) -> None:
    """The "firmware": fills frames in place (a moving stripe and the frame number)."""
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, TOPIC, FRAME), qos=_qos(reliable))
        writer.wait_for_readers(1, timeout=30)
        go.wait(30)
        period = 1.0 / rate if rate > 0 else 0.0
        start = time.perf_counter()
        n = 0
        while (now := time.perf_counter()) - start < seconds:
            if period and now < start + n * period:
                time.sleep(min(start + n * period - now, 0.01))
                continue
            loan = writer.get_loan()
            data = loan.data
            data["frame"] = n
            data["width"], data["height"] = 1920, 1080
            row = (n * STRIPE) % 1080
            data["pixels"][row : row + STRIPE] = n % 256
            writer.write(loan)
            n += 1
        out.put(("producer", n, writer.statistics().overwrites))
        done.wait(seconds + 30)  # keep the pool until the consumer has finished


def consumer(domain_id: int, seconds: float, reliable: bool, go: Any, out: Any) -> None:
    """The "SDK": takes frames zero-copy, uses them, checks consistency afterwards."""
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, TOPIC, FRAME), qos=_qos(reliable))
        reader.wait_for_writers(1, timeout=30)
        go.set()
        latencies: list[float] = []
        frames = inconsistent = 0
        end = time.monotonic() + seconds + 5.0
        idle_since = None
        while time.monotonic() < end:
            samples = reader.take(max_samples=16, timeout=0.2)
            if not samples:
                if frames and idle_since is None:
                    idle_since = time.monotonic()
                if idle_since is not None and time.monotonic() - idle_since > 0.5:
                    break
                continue
            idle_since = None
            now = time.time_ns()
            for s in samples:
                row = (int(s.data["frame"]) * STRIPE) % 1080
                s.data["pixels"][row, 0:64].mean()  # use the data in place
                if not reader.is_data_consistent(s):
                    inconsistent += 1
                latencies.append((now - s.info.source_timestamp) / 1e3)
                frames += 1
            reader.return_loan(samples)
        lat = sorted(latencies) or [0.0]
        out.put(
            (
                "consumer",
                frames,
                inconsistent,
                statistics.median(lat),
                lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            )
        )


@click.command()
@click.option("--seconds", default=3.0, show_default=True, help="How long the producer runs.")
@click.option("--rate", default=0.0, show_default=True, help="Frames per second (0: as fast as possible).")
@click.option(
    "--reliable/--best-effort",
    default=True,
    show_default=True,
    help="Reliable: the producer waits for the consumer. Best effort: it overwrites the oldest "
    "frame, and the consumer counts the frames it caught being overwritten.",
)
@click.option("--domain", "domain_id", default=0, show_default=True, help="DDS domain id.")
def demo(seconds: float, rate: float, reliable: bool, domain_id: int) -> None:
    """Move 1920x1080 RGB frames from a producer process to a consumer process, zero-copy."""
    console = Console()
    if seconds <= 0:
        raise click.BadParameter("must be positive", param_hint="--seconds")
    ctx = mp.get_context("spawn")
    go, done, out = ctx.Event(), ctx.Event(), ctx.Queue()
    console.print(
        f"[bold]loanbus demo[/]: {FRAME.itemsize / 1e6:.1f} MB frames, "
        f"{'reliable' if reliable else 'best effort'}, {seconds:g} s, pid {os.getpid()}"
    )
    procs = [
        ctx.Process(target=consumer, args=(domain_id, seconds, reliable, go, out), name="consumer"),
        ctx.Process(
            target=producer, args=(domain_id, seconds, rate, reliable, go, done, out), name="producer"
        ),
    ]
    for p in procs:
        p.start()
    results: dict[str, tuple[Any, ...]] = {}
    try:
        deadline = time.monotonic() + seconds + 60
        while "consumer" not in results and time.monotonic() < deadline:
            try:
                msg = out.get(timeout=0.5)
            except Exception:
                if not any(p.is_alive() for p in procs):
                    break
                continue
            results[msg[0]] = msg
    finally:
        done.set()
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.terminate()
                p.join(5)
    if "consumer" not in results or "producer" not in results:
        raise click.ClickException("the demo processes did not report; see the messages above")
    _, written, overwrites = results["producer"]
    _, frames, inconsistent, median, p99 = results["consumer"]
    table = Table(title="zero-copy frames, producer -> consumer")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("frames written", f"{written}")
    table.add_row("frames taken", f"{frames}")
    table.add_row("frames/s", f"{frames / seconds:,.0f}")
    table.add_row("payload GB/s (not copied)", f"{frames * FRAME.itemsize / seconds / 1e9:,.1f}")
    table.add_row("median latency", f"{median:,.0f} µs")
    table.add_row("p99 latency", f"{p99:,.0f} µs")
    table.add_row("inconsistent samples", f"{inconsistent}")
    table.add_row("written slots reused by the producer", f"{overwrites}")
    console.print(table)
