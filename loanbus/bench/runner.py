"""Runs one measurement of one comparison in two fresh worker processes, and the whole suite.

Latency: role ``a`` sends a sample and waits for the answer, role ``b`` answers with a sample
of the same size; one-way latency is half the round trip. Throughput ("stream"): role ``a``
sends back to back for the budget, role ``b`` drains; samples/s are counted at the reader.
Each process measures its own CPU time (``time.process_time``) and RSS (``/proc/self``).

Latency is measured in chunks that alternate between the comparisons (a, b, c, a, b, c, ...),
so that a load that comes and goes on a shared machine hits every comparison alike; ratios
are the median of the per-chunk ratios.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import statistics
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from loanbus.bench.channels import COMPARISONS, CTX, FLOOR_BYTES, open_endpoint, prepare

READY_TIMEOUT = 30.0


@dataclass(frozen=True)
class Budget:
    """How long one measurement runs: a count of rounds/samples, or seconds."""

    iterations: int | None = None
    seconds: float | None = None

    def split(self, parts: int) -> Budget:
        if self.iterations is not None:
            return Budget(iterations=max(self.iterations // parts, 1))
        assert self.seconds is not None
        return Budget(seconds=self.seconds / parts)

    def limit(self) -> tuple[int, float]:
        """(max count, max seconds) for a loop."""
        if self.iterations is not None:
            return self.iterations, float("inf")
        assert self.seconds is not None
        return 1 << 62, self.seconds

    def wall_bound(self) -> float:
        """A generous upper bound of the run's wall time (for hang detection)."""
        return 120.0 + (self.seconds or 0.0) * 3 + (self.iterations or 0) * 0.5


def _rss() -> int:
    """Resident set size of this process in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _wait_ready(ep: Any, barrier: Any) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not ep.ready():
        if time.monotonic() > deadline:
            raise TimeoutError("the peer never showed up (discovery)")
        time.sleep(0.005)
    barrier.wait(READY_TIMEOUT)


def _ping(ep: Any, budget: Budget) -> dict[str, Any]:
    count, seconds = budget.limit()
    warm_end = time.perf_counter() + 0.3
    for i in range(10):  # warm-up rounds, not recorded
        ep.send(i)
        if ep.recv(30.0) is None:
            raise TimeoutError("no answer during the warm-up")
        if time.perf_counter() > warm_end:
            break
    out: list[float] = []
    cpu0, start = time.process_time(), time.perf_counter()
    end = start + seconds
    i = 0
    while i < count:
        t0 = time.perf_counter_ns()
        ep.send(i & 0xFF)
        if ep.recv(30.0) is None:
            raise TimeoutError(f"no answer to round {i}")
        t1 = time.perf_counter_ns()
        out.append((t1 - t0) / 2e3)
        i += 1
        if t1 / 1e9 > end:  # perf_counter_ns and perf_counter share a clock
            break
    cpu = time.process_time() - cpu0
    return {"latencies_us": out, "cpu_s": cpu, "samples": 2 * len(out), "rss": _rss()}


def _pong(ep: Any, stop: Any) -> dict[str, Any]:
    cpu0 = time.process_time()
    n = 0
    while not stop.is_set():
        tag = ep.recv(0.1)
        if tag is not None:
            ep.send(tag)
            n += 1
    return {"cpu_s": time.process_time() - cpu0, "samples": 2 * n, "rss": _rss()}


def _stream_writer(ep: Any, budget: Budget) -> dict[str, Any]:
    count, seconds = budget.limit()
    cpu0, start = time.process_time(), time.perf_counter()
    end = start + seconds
    n = 0
    while n < count:
        ep.send(n & 0xFF)
        n += 1
        if not n & 7 and time.perf_counter() > end:
            break
    elapsed = time.perf_counter() - start
    return {"sent": n, "cpu_s": time.process_time() - cpu0, "elapsed_s": elapsed, "rss": _rss()}


def _stream_reader(ep: Any, stop: Any) -> dict[str, Any]:
    n = bad = 0
    quiet = 0  # empty drains since the writer finished
    first = last = cpu_first = cpu_last = 0.0
    while True:
        got, inconsistent = ep.drain(0.1)
        if got:
            now = time.perf_counter()
            if not n:
                first, cpu_first = now, time.process_time()
            last, cpu_last = now, time.process_time()
            n += got
            bad += inconsistent
        elif stop.is_set():
            quiet += 1
            if quiet >= 10:  # 1 s without a sample after the writer finished: all is in
                break
    return {
        "received": n,
        "inconsistent": bad,
        "elapsed_s": last - first,
        "cpu_s": cpu_last - cpu_first,
        "rss": _rss(),
    }


def pin_cpus() -> tuple[int, int] | None:
    """The two CPUs ``--pin`` gives roles a and b, or None if this process may use fewer."""
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else None


def _exit_with_parent() -> None:
    """End this worker at once if the main process dies (killed outright), rather than wait on
    a peer or an event forever; multiprocessing's resource tracker can then remove the run's
    semaphores, and ``loanbus clean`` what the run had in /dev/shm."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os._exit(3)

    threading.Thread(target=watch, name="bench-parent-watch", daemon=True).start()


def worker(
    comparison: str,
    mode: str,
    role: str,
    size: int,
    args: dict[str, Any],
    budget: Budget,
    barrier: Any,
    stop: Any,
    finished: Any,
    results: Any,
    cpu: int | None = None,
) -> None:
    """The body of one worker process: open, wait for the peer, measure, report, close.

    ``stop`` tells role b that role a is done (b then drains what is left); ``finished``
    tells role a that b has reported, so a's writer outlives every sample b still takes.
    ``cpu``: pin the process, before any thread starts, so its threads all inherit it.
    """
    _exit_with_parent()
    ep = None
    try:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        ep = open_endpoint(comparison, mode, role, size, args)
        _wait_ready(ep, barrier)
        if mode == "latency":
            res = _ping(ep, budget) if role == "a" else _pong(ep, stop)
        else:
            res = _stream_writer(ep, budget) if role == "a" else _stream_reader(ep, stop)
        res["affinity"] = sorted(os.sched_getaffinity(0))
        results.put((role, res))
        if role == "a":
            finished.wait(60)  # keep the endpoint until the reader is done with its samples
    except BaseException as exc:
        results.put((role, {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}))
        barrier.abort()
    finally:
        if ep is not None:
            ep.close()


def run_once(
    comparison: str,
    mode: str,
    size: int,
    domain: int,
    budget: Budget,
    tag: str,
    cpus: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """One measurement in two fresh processes; a dict of figures or ``{"error": ...}``.

    ``cpus``: pin role a to the first CPU and role b to the second (``loanbus bench --pin``).
    """
    prepared = prepare(comparison, mode, size, domain, tag)
    barrier, stop, finished, results = CTX.Barrier(2), CTX.Event(), CTX.Event(), CTX.Queue()
    procs = [
        CTX.Process(
            target=worker,
            args=(
                comparison,
                mode,
                role,
                size,
                prepared.args[role],
                budget,
                barrier,
                stop,
                finished,
                results,
                None if cpus is None else cpus[0 if role == "a" else 1],
            ),
            name=f"bench-{comparison}-{role}",
            daemon=True,
        )
        for role in ("a", "b")
    ]
    got: dict[str, dict[str, Any]] = {}
    try:
        for p in procs:
            p.start()
        deadline = time.monotonic() + budget.wall_bound()
        while len(got) < 2 and time.monotonic() < deadline:
            try:
                role, res = results.get(timeout=0.5)
            except queue.Empty:
                if any(p.exitcode not in (None, 0) for p in procs):
                    break
                continue
            got[role] = res
            if role == "a" or "error" in res:
                stop.set()  # the pong / reader stops once the ping / writer is done
    finally:
        stop.set()
        finished.set()
        for p in procs:
            p.join(15)
            if p.is_alive():
                p.kill()
                p.join(5)
        prepared.cleanup()
    errors = [r["error"] for r in got.values() if "error" in r]
    if errors or len(got) < 2:
        return {"error": "; ".join(errors) or "a worker process died or hung"}
    # The floor carries a 12-byte message whatever the size: count the bytes it really moved.
    figures = _figures(mode, FLOOR_BYTES if comparison == "cyclone-floor" else size, got["a"], got["b"])
    figures["affinity"] = {"a": got["a"]["affinity"], "b": got["b"]["affinity"]}
    return figures


def _figures(mode: str, size: int, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    if mode == "latency":
        lat = a["latencies_us"]
        return {
            "latencies_us": lat,
            "cpu_a_us": a["cpu_s"] / max(a["samples"], 1) * 1e6,
            "cpu_b_us": b["cpu_s"] / max(b["samples"], 1) * 1e6,
            "rss_a": a["rss"],
            "rss_b": b["rss"],
        }
    rate = b["received"] / b["elapsed_s"] if b["elapsed_s"] > 0 else 0.0
    return {
        "sent": a["sent"],
        "received": b["received"],
        "inconsistent": b["inconsistent"],
        "samples_per_s": rate,
        "gb_per_s": rate * size / 1e9,
        "writer_cpu_us": a["cpu_s"] / max(a["sent"], 1) * 1e6,
        "reader_cpu_us": b["cpu_s"] / max(b["received"], 1) * 1e6,
        "writer_rss": a["rss"],
        "reader_rss": b["rss"],
    }


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


@dataclass
class Plan:
    """What one ``loanbus bench`` run measures."""

    comparisons: list[str]
    sizes: list[int]
    budget: Budget
    chunks: int
    domain: int
    pinned: tuple[int, int] | None = None  # CPUs of roles a and b (--pin), None: not pinned

    def runs(self) -> list[tuple[int, int, str, str]]:
        """(size, chunk, mode, comparison) in the order they run: latency chunks interleaved."""
        out = []
        for size in self.sizes:
            lat = [c for c in self.comparisons if "latency" in COMPARISONS[c].modes]
            for chunk in range(self.chunks):
                out += [(size, chunk, "latency", c) for c in lat]
            out += [(size, 0, "stream", c) for c in self.comparisons if "stream" in COMPARISONS[c].modes]
        return out


def run_plan(plan: Plan, on_step: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Every run of the plan; one record per (comparison, size, mode), chunks merged."""
    merged: dict[tuple[str, int, str], dict[str, Any]] = {}
    lat_budget = plan.budget.split(plan.chunks)
    for i, (size, chunk, mode, comp) in enumerate(plan.runs()):
        if on_step is not None:
            on_step(f"{comp} {mode} {size:,} B" + (f" chunk {chunk + 1}" if mode == "latency" else ""))
        budget = lat_budget if mode == "latency" else plan.budget
        tag = f"{i}{int(time.time() * 1000) % 10**6}"
        res = run_once(comp, mode, size, plan.domain, budget, tag, plan.pinned)
        rec = merged.setdefault((comp, size, mode), {"comparison": comp, "size": size, "mode": mode})
        if "error" in res:
            rec.setdefault("errors", []).append(res["error"])
            continue
        if mode == "latency":
            rec.setdefault("chunks", []).append((chunk, res))
        else:
            rec.update(res)
    return [_summarise(r) for r in merged.values()]


def _summarise(rec: dict[str, Any]) -> dict[str, Any]:
    chunks = rec.pop("chunks", None)
    if not chunks:
        return rec
    lat = [x for _, c in chunks for x in c["latencies_us"]]
    rec.update(
        rounds=len(lat),
        median_us=statistics.median(lat),
        p99_us=percentile(lat, 0.99),
        chunk_medians_us={str(i): statistics.median(c["latencies_us"]) for i, c in chunks},
        ping_cpu_us=statistics.median(c["cpu_a_us"] for _, c in chunks),
        pong_cpu_us=statistics.median(c["cpu_b_us"] for _, c in chunks),
        ping_rss=max(c["rss_a"] for _, c in chunks),
        pong_rss=max(c["rss_b"] for _, c in chunks),
        affinity=chunks[0][1]["affinity"],  # the CPUs each role may run on (the same every chunk)
    )
    return rec
