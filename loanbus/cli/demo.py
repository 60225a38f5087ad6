"""``loanbus demo``: a producer process and a consumer process move 1920x1080 RGB frames.

Each run has a topic of its own (named after the demo's pid), so two demos in one domain
never exchange frames. Ctrl-C stops both children quietly; the figures so far are printed
and the command exits with status 130, as an interrupted command does.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, NoReturn

import numpy as np
import rich_click as click
from rich.console import Console
from rich.table import Table

import loanbus
from loanbus.cli._common import FAILED, check_domain, domain_option, fail

FRAME = loanbus.ShmemType(
    "loanbus_demo::Frame",
    np.dtype([("frame", "<u8"), ("width", "<u4"), ("height", "<u4"), ("pixels", "u1", (1080, 1920, 3))]),
)
TOPIC_PREFIX = "loanbus_demo_frames"
#: Both children run on this host: DDS stays on loopback (unless CYCLONEDDS_URI says otherwise).
PROFILE: Literal["loopback"] = "loopback"
STRIPE = 8
#: Most seconds the children wait for each other (DDS discovery) before they give up.
MATCH_TIMEOUT = 30.0
#: How often the producer looks at the stop event (an Event costs a lock per look).
STOP_POLL = 0.05
#: The consumer is done when the producer has stopped and nothing came for this long.
DRAIN_IDLE = 0.3
#: The exit status of a command interrupted by SIGINT (128 + 2), as shells report it.
INTERRUPTED = 128 + signal.SIGINT


class Events(NamedTuple):
    """How the three processes of a demo pace each other (``multiprocessing`` events)."""

    go: Any  # the consumer found the producer: start writing
    stop: Any  # Ctrl-C: stop writing and report
    finished: Any  # the producer wrote its last frame: drain and report
    done: Any  # the consumer reported: the producer may close its pool


def topic_name(pid: int) -> str:
    """The topic of the demo run by process ``pid``: one per run."""
    return f"{TOPIC_PREFIX}_{pid}"


def _qos(reliable: bool) -> loanbus.Qos:
    if reliable:
        return loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, max_samples=4, max_blocking_time=1.0)
    return loanbus.Qos(reliability=loanbus.Reliability.BEST_EFFORT, max_samples=4)


def _terminate(signum: int, _frame: Any) -> NoReturn:
    raise SystemExit(128 + signum)  # context managers run: the pool is unlinked


_PARENT = [0]  # the pid of the demo's main process, as each child saw it at its start


def _child_signals() -> None:
    """SIGINT is the parent's to handle (a terminal sends it to the whole process group; the
    parent tells the children to stop); SIGTERM ends a child through its context managers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by the parent until now
    signal.signal(signal.SIGTERM, _terminate)
    _PARENT[0] = os.getppid()


def _stopped(stop: Any) -> bool:
    """The parent said stop, or it is gone (killed): a child then stops too."""
    return bool(stop.is_set()) or os.getppid() != _PARENT[0]


class _Never:
    """A stop event that is never set: ``_until`` then ends only when the parent is gone."""

    def is_set(self) -> bool:
        return False


_NEVER = _Never()


def _until(condition: Callable[[float], bool], stop: Any, timeout: float) -> bool:
    """Call ``condition(slice)`` until it is true, ``stop`` is set or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while not _stopped(stop):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if condition(min(left, 0.2)):
            return True
    return False


def _report_errors(role: str, out: Any, body: Callable[[], None]) -> None:
    """Run ``body``; a loanbus error reaches the parent as one line instead of a traceback."""
    _child_signals()
    try:
        body()
    except (loanbus.LoanbusError, OSError, ValueError) as exc:
        out.put(("error", role, f"{type(exc).__name__}: {exc}"))


def producer(
    domain_id: int,
    topic: str,
    seconds: float,
    rate: float,
    reliable: bool,
    events: Events,
    out: Any,
) -> None:
    """The "firmware": fills frames in place (a moving stripe and the frame number)."""
    go, stop, finished, done = events

    def run() -> None:
        try:
            with loanbus.DomainParticipant(domain_id=domain_id, dds_profile=PROFILE) as dp:
                writer = loanbus.DataWriter(loanbus.Topic(dp, topic, FRAME), qos=_qos(reliable))
                n, elapsed = 0, 0.0
                if _until(lambda t: writer.wait_for_readers(1, timeout=t), stop, MATCH_TIMEOUT) and _until(
                    go.wait, stop, MATCH_TIMEOUT
                ):
                    out.put(("started",))
                    n, elapsed = _produce(writer, seconds, rate, stop)
                finished.set()
                out.put(("producer", n, writer.statistics().overwrites, elapsed))
                # Keep the pool until the consumer has finished (or the main process is gone).
                _until(lambda t: bool(done.wait(t)), _NEVER, MATCH_TIMEOUT)
        finally:
            finished.set()

    _report_errors("producer", out, run)


def _produce(writer: loanbus.DataWriter[Any], seconds: float, rate: float, stop: Any) -> tuple[int, float]:
    """Write frames for ``seconds`` or until ``stop``; (frames written, seconds spent)."""
    period = 1.0 / rate if rate > 0 else 0.0
    start = last_look = time.perf_counter()
    n = 0
    while (now := time.perf_counter()) - start < seconds:
        if now - last_look >= STOP_POLL:
            last_look = now
            if _stopped(stop):
                break
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
    return n, time.perf_counter() - start


def consumer(domain_id: int, topic: str, reliable: bool, events: Events, out: Any) -> None:
    """The "SDK": takes frames zero-copy, uses them, checks consistency afterwards."""
    go, stop, finished, _done = events

    def run() -> None:
        with loanbus.DomainParticipant(domain_id=domain_id, dds_profile=PROFILE) as dp:
            reader = loanbus.DataReader(loanbus.Topic(dp, topic, FRAME), qos=_qos(reliable))
            if _until(lambda t: reader.wait_for_writers(1, timeout=t), stop, MATCH_TIMEOUT):
                go.set()
            latencies: list[float] = []
            frames = inconsistent = 0
            idle_since: float | None = None
            while True:
                samples = reader.take(max_samples=16, timeout=0.1)
                if not samples:
                    now = time.monotonic()
                    idle_since = idle_since or now
                    if finished.is_set() and now - idle_since >= DRAIN_IDLE:
                        break
                    continue
                idle_since = None
                now_ns = time.time_ns()
                for s in samples:
                    row = (int(s.data["frame"]) * STRIPE) % 1080
                    s.data["pixels"][row, 0:64].mean()  # use the data in place
                    if not reader.is_data_consistent(s):
                        inconsistent += 1
                    latencies.append((now_ns - s.info.source_timestamp) / 1e3)
                    frames += 1
                reader.return_loan(samples)
            lat = sorted(latencies) or [0.0]
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            out.put(("consumer", frames, inconsistent, statistics.median(lat), p99))

    _report_errors("consumer", out, run)


@dataclass
class _Run:
    """What the parent heard from its children, and the Ctrl-Cs it got meanwhile."""

    started: bool = False
    producer: tuple[Any, ...] | None = None
    consumer: tuple[Any, ...] | None = None
    error: str | None = None
    interrupts: int = 0

    def on_sigint(self, _signum: int, _frame: Any) -> None:
        self.interrupts += 1  # no KeyboardInterrupt at an arbitrary point: the loop looks


def _collect(
    run: _Run, out: Any, procs: list[Any], stop: Any, timeout: float, started: Callable[[], None]
) -> None:
    """Read the children's messages until the consumer reported, one failed, a second Ctrl-C,
    or ``timeout``. The first Ctrl-C sets ``stop``: the children stop and report."""
    deadline = time.monotonic() + timeout
    while run.consumer is None and run.error is None and run.interrupts < 2:
        if run.interrupts and not stop.is_set():
            stop.set()
            deadline = time.monotonic() + MATCH_TIMEOUT
        if time.monotonic() > deadline:
            return
        try:
            msg = out.get(timeout=0.1)
        except queue.Empty:
            dead = [p for p in procs if not p.is_alive() and p.exitcode != 0]
            if dead:
                run.error = f"the {dead[0].name} process exited with status {dead[0].exitcode}"
            elif not any(p.is_alive() for p in procs):
                return
            continue
        if msg[0] == "started":
            run.started = True
            if not stop.is_set():
                started()
        elif msg[0] == "error":
            run.error = f"the {msg[1]} failed: {msg[2]}"
        elif msg[0] == "producer":
            run.producer = msg
        elif msg[0] == "consumer":
            run.consumer = msg


def _stop_children(procs: list[Any]) -> None:
    for p in procs:
        p.join(10)
    for p in procs:
        if p.is_alive():
            p.terminate()  # SIGTERM: the child unwinds and unlinks its pool
            p.join(5)


def _table(run: _Run, reliable: bool) -> tuple[Table, str]:
    """The figures, and a line that says what the slot reuses mean in this mode."""
    assert run.producer is not None and run.consumer is not None
    _, written, reused, elapsed = run.producer
    _, frames, inconsistent, median, p99 = run.consumer
    seconds = max(elapsed, 1e-9)
    table = Table(title="zero-copy frames, producer -> consumer")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("frames written", f"{written:,}")
    table.add_row("frames taken", f"{frames:,}")
    table.add_row("frames written, never taken", f"{max(written - frames, 0):,}")
    table.add_row("frames/s", f"{frames / seconds:,.0f}")
    table.add_row("payload GB/s (not copied)", f"{frames * FRAME.itemsize / seconds / 1e9:,.1f}")
    table.add_row("median latency", f"{median:,.0f} µs")
    table.add_row("p99 latency", f"{p99:,.0f} µs")
    table.add_row("inconsistent samples", f"{inconsistent:,}")
    if reliable:
        table.add_row("slots reused after the consumer returned them", f"{reused:,}")
        note = "Reliable: the producer reuses a slot only after the consumer returned its frame."
    else:
        table.add_row("slots reused, overwriting an older frame", f"{reused:,}")
        note = (
            "Best effort: the producer reuses the oldest slot whether or not its frame was taken; "
            "'inconsistent samples' counts the frames the consumer caught being overwritten."
        )
    return table, note


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
@domain_option()
def demo(seconds: float, rate: float, reliable: bool, domain_id: int) -> None:
    """Move 1920x1080 RGB frames from a producer process to a consumer process, zero-copy."""
    if seconds <= 0:
        fail(f"--seconds must be positive, not {seconds:g}")
    if rate < 0:
        fail(f"--rate must not be negative, not {rate:g} (0: as fast as possible)")
    check_domain(domain_id)
    console = Console()
    topic = topic_name(os.getpid())
    run = _Run()
    previous = signal.signal(signal.SIGINT, run.on_sigint)
    try:
        _demo(console, run, topic, seconds, rate, reliable, domain_id)
    finally:
        signal.signal(signal.SIGINT, previous)


def _demo(
    console: Console, run: _Run, topic: str, seconds: float, rate: float, reliable: bool, domain_id: int
) -> None:
    ctx = mp.get_context("spawn")
    events = Events(ctx.Event(), ctx.Event(), ctx.Event(), ctx.Event())
    out = ctx.Queue()
    console.print(
        f"[bold]loanbus demo[/]: {FRAME.itemsize / 1e6:.1f} MB frames, "
        f"{'reliable' if reliable else 'best effort'}, {seconds:g} s"
    )
    console.print(f"topic {topic} in domain {domain_id} (each run has a topic of its own)")
    procs = [
        ctx.Process(target=consumer, args=(domain_id, topic, reliable, events, out), name="consumer"),
        ctx.Process(
            target=producer, args=(domain_id, topic, seconds, rate, reliable, events, out), name="producer"
        ),
    ]
    # Children start with SIGINT blocked (the mask is inherited through exec) and then ignore
    # it, so a Ctrl-C that reaches the whole process group never interrupts their start-up.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        for p in procs:
            p.start()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    def started() -> None:
        console.print(f"producer and consumer connected: streaming for {seconds:g} s (Ctrl-C stops early)")

    try:
        _collect(run, out, procs, events.stop, seconds + 2 * MATCH_TIMEOUT, started)
    finally:
        events.stop.set()
        events.done.set()
        _stop_children(procs)
    if run.interrupts > 1:
        console.print("interrupted again: stopped without figures")
        raise SystemExit(INTERRUPTED)
    if run.error is not None:
        fail(run.error, FAILED)
    if not run.started and run.interrupts:
        console.print("interrupted before the first frame")
        raise SystemExit(INTERRUPTED)
    if not run.started:
        fail(
            f"the producer and the consumer did not find each other within {MATCH_TIMEOUT:g} s "
            f"in domain {domain_id}",
            FAILED,
        )
    if run.producer is None or run.consumer is None:
        fail("the producer and the consumer started but did not report their figures", FAILED)
    if run.interrupts:
        console.print(f"interrupted after {run.producer[3]:.1f} s: the figures so far")
    table, note = _table(run, reliable)
    console.print(table)
    console.print(note)
    if run.interrupts:
        raise SystemExit(INTERRUPTED)
