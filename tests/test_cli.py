"""The command line, run as a user would: real subprocesses, real pools."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np

import loanbus
from loanbus.pool import WriterPool, segment_name

LOANBUS = [sys.executable, "-m", "loanbus.cli.main"]


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*LOANBUS, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_the_demo_moves_frames_and_reports_rate_latency_and_inconsistency(domain_id: int) -> None:
    result = _run("demo", "--seconds", "1", "--domain", str(domain_id))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    taken = int(re.search(r"frames taken\s*│\s*([\d,]+)", out).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert taken > 10
    assert re.search(r"median latency\s*│\s*[\d,]+ µs", out)
    assert re.search(r"inconsistent samples\s*│\s*0\b", out)  # reliable by default


def test_the_best_effort_demo_counts_what_it_caught_being_overwritten(domain_id: int) -> None:
    result = _run("demo", "--seconds", "1", "--best-effort", "--domain", str(domain_id))
    assert result.returncode == 0, result.stderr
    assert re.search(r"inconsistent samples\s*│\s*[\d,]+", result.stdout)


def test_bad_arguments_give_one_line_and_no_traceback() -> None:
    result = _run("demo", "--seconds", "-1")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "seconds" in result.stderr


_T = loanbus.ShmemType("cli::T", np.dtype([("v", "<u8")]))


def _orphan_writer(name: str) -> None:
    WriterPool(name, _T, slot_count=2, reader_rows=1, writer_guid=b"o" * 16)
    time.sleep(60)


def test_clean_removes_the_pool_of_a_killed_writer_and_spares_live_ones(shm_prefix: str) -> None:
    dead_name = segment_name(0, "dead", os.urandom(16))
    proc = subprocess.Popen(
        [sys.executable, "-c", f"from tests.test_cli import _orphan_writer; _orphan_writer({dead_name!r})"],
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    live = WriterPool(
        segment_name(0, "live", os.urandom(16)), _T, slot_count=2, reader_rows=1, writer_guid=b"l" * 16
    )
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists("/dev/shm" + dead_name) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # READY is written right after the file appears
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        listing = _run("ls").stdout
        assert dead_name.lstrip("/")[:30] in listing.replace("\n", "") or "loanbus" in listing
        dry = _run("clean", "--dry-run")
        assert dry.returncode == 0 and "would remove" in dry.stdout
        assert os.path.exists("/dev/shm" + dead_name)
        result = _run("clean")
        assert result.returncode == 0, result.stderr
        assert not os.path.exists("/dev/shm" + dead_name)
        assert not [n for n in os.listdir("/dev/shm") if dead_name.lstrip("/") in n]
        assert os.path.exists("/dev/shm" + live.name)  # a live writer's pool is left alone
    finally:
        live.close()
        if proc.poll() is None:
            proc.kill()


def test_another_users_live_pool_is_never_taken_for_dead(shm_prefix: str) -> None:
    import pytest

    from loanbus.inspect import list_pools, reap_dead

    if os.getuid() != 0:
        pytest.skip("needs root to act as a second user")
    live = WriterPool(
        segment_name(0, "mine", os.urandom(16)), _T, slot_count=2, reader_rows=1, writer_guid=b"m" * 16
    )
    try:
        os.seteuid(65534)  # act as 'nobody': the kernel's permission checks apply for real
        try:
            entries = [p for p in list_pools() if p.name == live.name]
            removed = reap_dead(live.name[: live.name.rfind(".") + 1])
        finally:
            os.seteuid(0)
        assert [(e.alive, e.problem) for e in entries] == [(True, "owned by uid 0")]
        assert removed == []
        assert os.path.exists("/dev/shm" + live.name)  # the other user did not remove it
    finally:
        live.close()
