"""Huge pages on a loanbus pool: what ``Qos(huge_pages=True)`` changes, measured.

Run: ``python benchmarks/hugepages.py`` (``--help`` for options). Prints, with and without
huge pages, alternating so both see the same machine load:

* the first-touch fill of a 64 MiB sample (every page faulted in) and a second, warm fill,
  in the writer process, and how many bytes the kernel mapped with huge pages;
* the per-sample one-way latency of a loanbus ping-pong of 64 MiB samples
  (``loanbus bench --only loanbus,loanbus-huge``).

Huge pages for POSIX shared memory depend on the kernel's shmem THP setting
(/sys/kernel/mm/transparent_hugepage/shmem_enabled); the script prints it and whether the
pool got huge pages or why not.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

import numpy as np

import loanbus
from loanbus._shm import THP_SHMEM_SETTING
from loanbus.bench.runner import Budget, Plan, run_plan
from loanbus.pool import WriterPool, segment_name


def fill_once(size: int, huge: bool) -> dict[str, Any]:
    """Create a pool, fill one sample twice (cold then warm), report times and huge page bytes."""
    stype = loanbus.ShmemType("bench::Fill", np.uint8, shape=(size,))
    pool = WriterPool(
        segment_name(0, "hugepages_bench", os.urandom(16)),
        stype,
        slot_count=1,
        reader_rows=1,
        writer_guid=os.urandom(16),
        huge_pages=huge,
    )
    try:
        slot = pool.try_acquire()
        assert slot is not None
        payload = pool.payload(slot)
        t0 = time.perf_counter()
        payload.fill(1)
        t1 = time.perf_counter()
        payload.fill(2)
        t2 = time.perf_counter()
        return {
            "cold_ms": (t1 - t0) * 1e3,
            "warm_ms": (t2 - t1) * 1e3,
            "huge_bytes": pool.huge_page_bytes(),
            "status": pool.huge_pages,
        }
    finally:
        pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=64 << 20, help="sample size in bytes")
    parser.add_argument("--fills", type=int, default=10, help="fills per setting")
    parser.add_argument("--seconds", type=float, default=3.0, help="ping-pong time per setting")
    parser.add_argument("--domain", type=int, default=0)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    os.environ["LOANBUS_DDS_PROFILE"] = "loopback"  # one host: no DDS packet leaves lo

    try:
        with open(THP_SHMEM_SETTING) as f:
            setting = f.read().strip()
    except OSError:
        setting = "(missing)"
    print(f"kernel shmem THP setting: {setting}")
    fills: dict[str, list[dict[str, Any]]] = {"normal": [], "huge": []}
    for _ in range(args.fills):
        for name, huge in (("normal", False), ("huge", True)):
            fills[name].append(fill_once(args.size, huge))
    print(f"\nfill of a {args.size / 2**20:g} MiB sample, median of {args.fills} (alternating):")
    print(f"{'pages':>8} {'first touch':>12} {'warm fill':>10} {'huge page bytes':>16}  status")
    summary: dict[str, Any] = {"setting": setting, "size": args.size}
    for name, runs in fills.items():
        cold = statistics.median(r["cold_ms"] for r in runs)
        warm = statistics.median(r["warm_ms"] for r in runs)
        huge_bytes = max(r["huge_bytes"] for r in runs)
        print(f"{name:>8} {cold:>10.1f}ms {warm:>8.1f}ms {huge_bytes:>16,}  {runs[0]['status']}")
        summary[name] = {"first_touch_ms": cold, "warm_fill_ms": warm, "huge_bytes": huge_bytes}

    plan = Plan(["loanbus", "loanbus-huge"], [args.size], Budget(seconds=args.seconds), 3, args.domain)
    records = [r for r in run_plan(plan) if r["mode"] == "latency"]
    print(f"\none-way latency of a ping-pong of {args.size / 2**20:g} MiB samples (3 alternating chunks):")
    for r in records:
        if "errors" in r:
            print(f"{r['comparison']:>13}: error {r['errors']}")
            continue
        print(f"{r['comparison']:>13}: median {r['median_us']:.1f} µs, p99 {r['p99_us']:.1f} µs")
        summary[r["comparison"]] = {"median_us": r["median_us"], "p99_us": r["p99_us"]}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
