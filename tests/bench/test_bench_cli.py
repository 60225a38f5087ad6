"""``loanbus bench`` as a user runs it: real processes, real Cyclone DDS, real shared memory.

No timing is asserted: the test checks that every comparison was measured (or, for the
optional iceoryx2, skipped with a reason) and that the JSON and the PNG are well formed.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from loanbus.bench.channels import COMPARISONS

LOANBUS = [sys.executable, "-m", "loanbus.cli.main"]
SIZES = [64, 65536]


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*LOANBUS, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.timeout(900)
def test_a_tiny_bench_run_writes_json_and_png_with_every_comparison(domain_id: int, tmp_path: Path) -> None:
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    result = _run(
        "bench",
        "--sizes",
        ",".join(map(str, SIZES)),
        "--iterations",
        "200",
        "--chunks",
        "1",
        "--domain",
        str(domain_id),
        "--json",
        str(out_json),
        "--png",
        str(out_png),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(out_json.read_text())
    default = [name for name, c in COMPARISONS.items() if c.default]
    assert set(doc["comparisons"]) == set(default)
    for name in default:
        skipped = doc["comparisons"][name]["skipped"]
        if skipped is not None:
            assert name == "iceoryx2", f"{name} was skipped: {skipped}"
            assert "iceoryx2" in result.stdout and "skipping" in result.stdout
            continue
        for size in SIZES:
            for mode in COMPARISONS[name].modes:
                [rec] = [
                    r for r in doc["results"] if (r["comparison"], r["size"], r["mode"]) == (name, size, mode)
                ]
                assert "errors" not in rec, rec
                if mode == "latency":
                    assert rec["rounds"] >= 100 and 0 < rec["median_us"] <= rec["p99_us"]
                    assert rec["ping_rss"] > 0 and rec["pong_cpu_us"] > 0
                else:
                    assert rec["received"] > 0 and rec["samples_per_s"] > 0, rec
                    assert rec["writer_cpu_us"] > 0 and rec["reader_rss"] > 0
                    if name != "loanbus-be":  # best effort may lose and overwrite; the others may not
                        assert rec["received"] == rec["sent"] == 200 and rec["inconsistent"] == 0, rec
    measured = {r["comparison"] for r in doc["ratios"]}
    assert {"cyclone-floor", "cyclone-by-value", "pipe", "posix-shm"} <= measured
    assert len(doc["targets"]) == 10
    assert all(t["met"] is None for t in doc["targets"] if "6.2 MB" in t["target"])  # no 6.2 MB here
    assert "MET" in result.stdout or "not measured" in result.stdout
    png = out_png.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    import matplotlib.image

    assert matplotlib.image.imread(str(out_png)).shape[0] > 300


def test_bench_refuses_an_unknown_comparison_in_one_line() -> None:
    result = _run("bench", "--only", "loanbus,carrier-pigeon", timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "carrier-pigeon" in result.stderr


def test_bench_refuses_seconds_together_with_iterations() -> None:
    result = _run("bench", "--seconds", "1", "--iterations", "5", timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "not both" in result.stderr


def test_bench_refuses_a_size_it_cannot_read() -> None:
    result = _run("bench", "--sizes", "64,lots", timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "lots" in result.stderr


@pytest.mark.timeout(600)
def test_the_by_value_comparisons_measure_both_modes_without_losing_a_sample(
    domain_id: int, tmp_path: Path
) -> None:
    """``loanbus-by-value`` (shipped configuration) and ``-defaults`` (Cyclone's) both measure."""
    out_json = tmp_path / "bench.json"
    names = ["loanbus-by-value", "loanbus-by-value-defaults"]
    result = _run(
        "bench",
        *("--sizes", "1M", "--iterations", "100", "--chunks", "1", "--domain", str(domain_id)),
        *("--only", ",".join(names), "--json", str(out_json)),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(out_json.read_text())
    for name in names:
        for mode in ("latency", "stream"):
            [rec] = [r for r in doc["results"] if (r["comparison"], r["mode"]) == (name, mode)]
            assert "errors" not in rec, rec
            if mode == "latency":
                assert rec["rounds"] >= 100 and 0 < rec["median_us"] <= rec["p99_us"]
            else:  # reliable and history_depth=None: nothing may be lost on the by-value path
                assert rec["received"] == rec["sent"] == 100 and rec["inconsistent"] == 0


def _small_run(domain_id: int, tmp_path: Path, *args: str) -> tuple[str, dict[str, Any]]:
    """A short ``loanbus bench`` (one chunk, 64 B unless ``args`` say otherwise): stdout and JSON."""
    out_json = tmp_path / "bench.json"
    result = _run(
        "bench",
        *("--sizes", "64", "--iterations", "100", "--chunks", "1", "--domain", str(domain_id)),
        *args,
        *("--json", str(out_json)),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, json.loads(out_json.read_text())


@pytest.mark.timeout(300)
def test_the_reference_exchange_floor_measures_its_latency(domain_id: int, tmp_path: Path) -> None:
    """``cyclone-ref``: loanbus's 24-byte reference plus a shared sequence word, ping-pong only."""
    _, doc = _small_run(domain_id, tmp_path, "--sizes", "64K", "--iterations", "200", "--only", "cyclone-ref")
    recs = [r for r in doc["results"] if r["comparison"] == "cyclone-ref"]
    assert [r["mode"] for r in recs] == ["latency"]  # a stream would only measure overwrites
    [rec] = recs
    assert "errors" not in rec, rec
    assert rec["rounds"] >= 100 and 0 < rec["median_us"] <= rec["p99_us"]
    assert rec["ping_cpu_us"] > 0 and rec["pong_rss"] > 0
    assert "cyclone-ref" in {r["comparison"] for r in doc["ratios"]}


@pytest.mark.timeout(300)
def test_pin_puts_the_two_processes_of_each_run_on_two_different_cpus(domain_id: int, tmp_path: Path) -> None:
    """``--pin``: each worker reports the CPUs it may run on; role a gets one, role b another."""
    stdout, doc = _small_run(domain_id, tmp_path, "--only", "cyclone-floor", "--pin")
    first, second = sorted(os.sched_getaffinity(0))[:2]
    assert doc["plan"]["pinned"] == [first, second]
    assert "pinned to CPUs" in stdout
    recs = [r for r in doc["results"] if "errors" not in r]
    assert {(r["comparison"], r["mode"]) for r in recs} >= {("loanbus", "latency"), ("loanbus", "stream")}
    for rec in recs:
        assert rec["affinity"] == {"a": [first], "b": [second]}, rec


def test_pin_refuses_a_process_that_may_use_one_cpu_in_one_line() -> None:
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [*LOANBUS, "bench", "--pin", "--sizes", "64"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}),
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "--pin needs two CPUs" in result.stderr


def test_an_unpinned_run_says_so_and_leaves_the_cpus_to_the_scheduler(domain_id: int, tmp_path: Path) -> None:
    stdout, doc = _small_run(domain_id, tmp_path, "--only", "cyclone-floor")
    assert doc["plan"]["pinned"] is None and "processes not pinned" in stdout
    every = sorted(os.sched_getaffinity(0))
    for rec in doc["results"]:
        assert rec["affinity"] == {"a": every, "b": every}, rec


@pytest.mark.timeout(300)
def test_the_thinnest_python_api_measures_its_latency(domain_id: int, tmp_path: Path) -> None:
    """``python-floor``: the API's five calls with nothing behind them, ping-pong only."""
    stdout, doc = _small_run(
        domain_id, tmp_path, "--sizes", "64K", "--iterations", "200", "--only", "python-floor"
    )
    recs = [r for r in doc["results"] if r["comparison"] == "python-floor"]
    assert [r["mode"] for r in recs] == ["latency"]
    [rec] = recs
    assert "errors" not in rec, rec
    assert rec["rounds"] >= 100 and 0 < rec["median_us"] <= rec["p99_us"]
    assert "python-floor" in {r["comparison"] for r in doc["ratios"]} and "python-floor" in stdout


@pytest.mark.timeout(300)
def test_the_iceoryx2_comparison_leaves_nothing_behind(
    domain_id: int, tmp_path: Path, shm_prefix: str
) -> None:
    """iceoryx2 keeps a node-management segment in /dev/shm; the bench removes its run's files."""
    import iceoryx2  # noqa: F401  (the test extra installs it: this comparison must run here)

    runs_dirs = os.path.join(tempfile.gettempdir(), "lb-iox*")
    shm_before, dirs_before = set(os.listdir("/dev/shm")), set(glob.glob(runs_dirs))
    _, doc = _small_run(domain_id, tmp_path, "--sizes", "64", "--iterations", "100", "--only", "iceoryx2")
    recs = [r for r in doc["results"] if r["comparison"] == "iceoryx2"]
    assert {r["mode"] for r in recs} == {"latency", "stream"}
    assert all("errors" not in r for r in recs), recs
    added = set(os.listdir("/dev/shm")) - shm_before
    assert [n for n in added if n.startswith(("iox2_", "lb-iox")) or shm_prefix in n] == []
    assert set(glob.glob(runs_dirs)) == dirs_before


def _wait_for(condition: Any, what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return found


def _process_group(pgid: int) -> list[int]:
    """Pids of the live processes in process group ``pgid`` (from /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(entry))
    return pids


@pytest.mark.timeout(300)
@pytest.mark.parametrize("comparison", ["posix-shm", "iceoryx2"])
def test_clean_removes_what_a_killed_bench_run_left(
    comparison: str, domain_id: int, shm_prefix: str, tmp_path: Path
) -> None:
    """``kill -9`` of ``loanbus bench``: its workers exit (multiprocessing's resource tracker then
    removes its semaphores), and ``loanbus clean`` removes the run's files the bench could not."""
    env = {**os.environ, "COLUMNS": "200"}
    args = ["bench", "--only", comparison, "--sizes", "64", "--seconds", "5", "--chunks", "1"]
    proc = subprocess.Popen(
        [*LOANBUS, *args, "--domain", str(domain_id)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # its own process group: the test can tell when all of it is gone
    )
    stem = f"bench.loanbus{shm_prefix}.{proc.pid}-" if comparison == "posix-shm" else f"lb-iox{proc.pid}-"
    iox_roots = os.path.join(tempfile.gettempdir(), f"lb-iox{proc.pid}-*")
    try:
        if comparison == "iceoryx2":
            _wait_for(lambda: glob.glob(iox_roots), "the run's iceoryx2 root directory")
        _wait_for(lambda: [n for n in os.listdir("/dev/shm") if n.startswith(stem)], "the run's files")
        os.kill(proc.pid, signal.SIGKILL)  # the main process only, as the OOM killer would
        proc.wait(30)
        _wait_for(lambda: not _process_group(proc.pid), "the workers and the tracker to exit", 60)
    finally:
        if _process_group(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    ours = [n for n in os.listdir("/dev/shm") if stem in n]  # segments, and sem.* semaphores
    assert ours, "the killed run left nothing: the test proves nothing"
    dry = _run("clean", "--dry-run")
    assert dry.returncode == 0 and "would remove" in dry.stdout and f"process {proc.pid}" in dry.stdout
    assert [n for n in os.listdir("/dev/shm") if stem in n] == ours  # a dry run removes nothing
    result = _run("clean")
    assert result.returncode == 0, result.stderr
    assert [n for n in os.listdir("/dev/shm") if stem in n] == []
    assert [n for n in os.listdir("/dev/shm") if shm_prefix in n] == []  # the workers' pools too
    assert glob.glob(iox_roots) == []
