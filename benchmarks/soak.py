"""Soak: 1 writer and 4 readers for a long time; RSS, open fds and /dev/shm must not grow.

Run: ``python benchmarks/soak.py`` (10 minutes or 1,000,000 samples, whichever comes first;
``--help`` for options). Each process's RSS and open file descriptors, and the loanbus entries
in /dev/shm, are sampled after a warm-up (10 % of the run), in the middle and at the end;
the verdict is PASS when nothing grew beyond a small tolerance, every sample arrived intact
at every reader, and nothing was left in /dev/shm afterwards. Exit status 0 means PASS.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

import loanbus

CTX = mp.get_context("spawn")


def _stype(size: int) -> loanbus.ShmemType:
    return loanbus.ShmemType(f"soak::S{size}", np.dtype([("seq", "<u8"), ("payload", "u1", (size,))]))


def _qos(slots: int) -> loanbus.Qos:
    return loanbus.Qos(
        reliability=loanbus.Reliability.RELIABLE, max_samples=slots - 1, max_blocking_time=10.0
    )


def _fill(seq: int) -> int:
    return (seq * 37 + 11) % 251


def _writer(args: dict[str, Any], written: Any, stop: Any, out: Any, finish: Any) -> None:
    stype = _stype(args["size"])
    with loanbus.DomainParticipant(domain_id=args["domain"]) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "soak", stype), qos=_qos(args["slots"]))
        if not writer.wait_for_readers(args["readers"], timeout=60):
            out.put(("writer", {"error": "readers never matched"}))
            return
        out.put(("ready", os.getpid()))
        timeouts = 0
        count = 0
        while count < args["samples"] and not stop.is_set():
            try:
                loan = writer.get_loan()
            except loanbus.LoanTimeoutError:
                timeouts += 1
                continue
            seq = loan.sequence_number
            loan.data["seq"] = seq
            loan.data["payload"].fill(_fill(seq))
            writer.write(loan)
            count += 1
            written.value = count
        stats = writer.statistics()
        out.put(
            ("writer", {"written": count, "loan_timeouts": timeouts, "blocked_loans": stats.blocked_loans})
        )
        finish.wait()


def _reader(args: dict[str, Any], index: int, taken: Any, stop: Any, out: Any, finish: Any) -> None:
    stype = _stype(args["size"])
    with loanbus.DomainParticipant(domain_id=args["domain"]) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, "soak", stype), qos=_qos(args["slots"]))
        reader.wait_for_writers(1, timeout=60)
        out.put(("ready", os.getpid()))
        bad = 0
        count = 0
        last = 0
        idle_since: float | None = None
        while True:
            samples = reader.take(max_samples=16, timeout=0.1)
            if not samples:
                if stop.is_set():
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > 1.0:
                        break
                continue
            idle_since = None
            for s in samples:
                seq = s.info.sequence_number
                ok = int(s.data["seq"]) == seq and not np.any(s.data["payload"] != _fill(seq))
                ok &= reader.is_data_consistent(s)
                bad += not ok or seq <= last
                last = seq
                reader.return_loan(s)
                count += 1
            taken.value = count
        st = reader.statistics()
        out.put(
            (
                f"reader{index}",
                {
                    "taken": count,
                    "bad": bad,
                    "inconsistent": st.inconsistent,
                    "refused": st.refused_references,
                },
            )
        )
        finish.wait()


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _shm_entries(prefix: str) -> list[str]:
    """The topic's pools, and the registration socket of each (named by the writer's guid)."""
    names = os.listdir("/dev/shm")
    pools = [n for n in names if n.startswith(prefix)]
    guids = {n.rsplit(".", 1)[-1] for n in pools}
    return sorted(pools + [n for n in names if n.endswith(".sock") and n.split(".")[-2] in guids])


@dataclass
class Sample:
    label: str
    elapsed: float
    written: int
    rss_kib: dict[str, int]
    fds: dict[str, int]
    shm: list[str]


@dataclass
class Report:
    args: dict[str, Any]
    samples: list[Sample] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    shm_after: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def verdict(self) -> str:
        return "PASS" if not self.problems else "FAIL"


def _measure(label: str, t0: float, written: int, procs: dict[str, int], prefix: str) -> Sample:
    return Sample(
        label,
        round(time.monotonic() - t0, 1),
        written,
        {name: _rss_kib(pid) for name, pid in procs.items()},
        {name: _fds(pid) for name, pid in procs.items()},
        _shm_entries(prefix),
    )


def _judge(report: Report, rss_tol_kib: int, fd_tol: int) -> None:
    start, mid, end = report.samples[0], report.samples[(len(report.samples) - 1) // 2], report.samples[-1]
    for name in start.rss_kib:
        grew = end.rss_kib[name] - start.rss_kib[name]
        if grew > rss_tol_kib:
            report.problems.append(f"{name}: RSS grew by {grew} KiB (tolerance {rss_tol_kib} KiB)")
        if end.fds[name] - start.fds[name] > fd_tol or mid.fds[name] - start.fds[name] > fd_tol:
            report.problems.append(
                f"{name}: open fds went {start.fds[name]} -> {mid.fds[name]} -> {end.fds[name]}"
            )
    if not (start.shm == mid.shm == end.shm) or len(start.shm) != 2:  # the pool and its socket
        report.problems.append(f"/dev/shm entries changed: {start.shm} / {mid.shm} / {end.shm}")
    if report.shm_after:
        report.problems.append(f"left in /dev/shm after the run: {report.shm_after}")
    written = report.results.get("writer", {}).get("written", 0)
    if written == 0:
        report.problems.append("nothing was written")
    for name, res in report.results.items():
        if name.startswith("reader"):
            if res["taken"] != written:
                report.problems.append(f"{name} took {res['taken']} of {written} samples")
            if res["bad"] or res["inconsistent"] or res["refused"]:
                report.problems.append(f"{name}: {res}")


def run(args: argparse.Namespace) -> Report:
    conf = {
        "seconds": args.seconds,
        "samples": args.samples,
        "size": args.size,
        "readers": args.readers,
        "slots": args.slots,
        "domain": args.domain,
    }
    report = Report(conf)
    prefix = "loanbus" + os.environ.get("LOANBUS_SHM_PREFIX", "") + f".d{args.domain}.soak-"
    out, stop, finish = CTX.Queue(), CTX.Event(), CTX.Event()
    written = CTX.Value("Q", 0, lock=False)
    taken = [CTX.Value("Q", 0, lock=False) for _ in range(args.readers)]
    procs = [
        CTX.Process(target=_reader, args=(conf, i, taken[i], stop, out, finish)) for i in range(args.readers)
    ]
    procs.insert(0, CTX.Process(target=_writer, args=(conf, written, stop, out, finish)))
    names = ["writer"] + [f"reader{i}" for i in range(args.readers)]
    for p in procs:
        p.start()
    pids = dict(zip(names, (p.pid or 0 for p in procs), strict=True))
    try:
        for _ in procs:
            kind, value = out.get(timeout=120)
            if kind != "ready":
                raise SystemExit(f"{kind} failed to start: {value}")
        t0 = time.monotonic()
        marks = [0.1 * i for i in range(1, 10)]  # 10 % is the warm-up; samples every 10 %
        while True:
            progress = max((time.monotonic() - t0) / args.seconds, written.value / args.samples)
            if marks and progress >= marks[0]:
                marks.pop(0)
                report.samples.append(_measure(f"{progress:.0%}", t0, written.value, pids, prefix))
            if progress >= 1.0 or not procs[0].is_alive():
                break
            time.sleep(0.05)
        stop.set()
        for _ in procs:
            kind, value = out.get(timeout=120)
            report.results[kind] = value
        report.seconds = round(time.monotonic() - t0, 1)
        report.samples.append(_measure("end", t0, written.value, pids, prefix))
    finally:
        stop.set()
        finish.set()
        for p in procs:
            p.join(60)
            if p.is_alive():
                p.kill()
                p.join(5)
    report.shm_after = _shm_entries(prefix)
    if len(report.samples) < 3:
        report.problems.append("the run was too short to sample start, middle and end")
    else:
        _judge(report, args.rss_tolerance_kib, args.fd_tolerance)
    if any(p.exitcode != 0 for p in procs):
        report.problems.append(f"exit codes: {[p.exitcode for p in procs]}")
    return report


def _print(report: Report) -> None:
    a = report.args
    written = report.results.get("writer", {}).get("written", 0)
    print(
        f"soak: 1 writer, {a['readers']} readers, {a['size']:,}-byte samples, {a['slots']} slots, "
        f"reliable; {written:,} samples in {report.seconds} s ({written / max(report.seconds, 1e-9):,.0f}/s)"
    )
    names = list(report.samples[0].rss_kib) if report.samples else []
    print(
        f"{'at':>6} {'t (s)':>7} {'written':>10}  "
        + "  ".join(f"{n + ' RSS/fds':>18}" for n in names)
        + "  shm"
    )
    for s in report.samples:
        cells = "  ".join(f"{s.rss_kib[n] / 1024:>10.1f} MiB/{s.fds[n]:>3}" for n in names)
        print(f"{s.label:>6} {s.elapsed:>7} {s.written:>10,}  {cells}  {len(s.shm)}")
    for name, res in sorted(report.results.items()):
        print(f"{name}: {res}")
    print(f"/dev/shm entries after the run: {len(report.shm_after)}")
    for p in report.problems:
        print(f"problem: {p}")
    print(f"verdict: {report.verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="stop after this long (default 600)")
    parser.add_argument("--samples", type=int, default=1_000_000, help="or after this many samples")
    parser.add_argument(
        "--size", type=int, default=64 * 1024, help="payload bytes per sample (default 64 KiB)"
    )
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--slots", type=int, default=8, help="pool slots (reliable, max_samples = slots - 1)")
    parser.add_argument("--domain", type=int, default=77, help="DDS domain id (default 77)")
    parser.add_argument("--rss-tolerance-kib", type=int, default=8192, help="allowed RSS growth per process")
    parser.add_argument("--fd-tolerance", type=int, default=0, help="allowed growth of open fds per process")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    os.environ["LOANBUS_DDS_PROFILE"] = "loopback"  # one host: no DDS packet leaves lo
    if args.seconds <= 0 or args.samples <= 0 or args.readers < 1 or args.slots < 2:
        parser.error("--seconds and --samples must be positive, --readers >= 1, --slots >= 2")
    report = run(args)
    _print(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**asdict(report), "verdict": report.verdict}, f, indent=2)
    return 0 if report.verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
