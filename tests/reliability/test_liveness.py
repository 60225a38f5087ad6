"""Liveness: pid reuse, zombies and pid namespaces cannot fool ``describe()`` or ``loanbus clean``.

The kernel-held liveness lock is authoritative; pid + start time are only a fallback where
the lock cannot be read.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from loanbus._proc import process_alive, process_start_time, process_state
from loanbus._shm import writer_alive_by_lock
from loanbus.inspect import describe
from loanbus.pool import WriterPool, segment_name
from tests.helpers import SMALL
from tests.reliability import REPO, peek_header, poke_header, python, run_cli, shm_path, wait_for


def _entry(name: str) -> object:
    return describe(name.lstrip("/"))


def _cleaned(name: str) -> bool:
    result = run_cli("clean")
    assert result.returncode == 0, result.stderr
    return not os.path.exists(shm_path(name))


def _spared_by_clean(name: str) -> None:
    dry = run_cli("clean", "--dry-run").stdout
    assert not [line for line in dry.splitlines() if name in line], dry
    run_cli("clean")
    assert os.path.exists(shm_path(name))


def writer_main(name: str, then: str) -> None:
    """Create a pool, say so, then ``exit`` at once without cleanup (a zombie) or ``wait``."""
    WriterPool(name, SMALL, slot_count=2, reader_rows=1, writer_guid=b"z" * 16)
    print("ready", flush=True)
    if then == "exit":
        os._exit(0)
    signal.pause()


def _writer(name: str, then: str, prefix: list[str] | None = None) -> subprocess.Popen[str]:
    code = f"from tests.reliability.test_liveness import writer_main; writer_main({name!r}, {then!r})"
    proc = subprocess.Popen(
        [*(prefix or []), sys.executable, "-c", code], cwd=REPO, text=True, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


@pytest.fixture
def name() -> Iterator[str]:
    n = segment_name(0, "live", os.urandom(16))
    yield n
    for path in (shm_path(n), "/dev/shm/sem." + n.lstrip("/") + ".wake"):
        if os.path.lexists(path):
            os.unlink(path)


def test_process_alive_needs_the_pid_running_not_a_zombie_and_the_same_start_time() -> None:
    me = os.getpid()
    start = process_start_time(me)
    assert start is not None and process_alive(me, start)
    assert not process_alive(me, start + 1)  # a reused pid: same number, another process
    assert not process_alive(0, start) and not process_alive(-1, start)
    assert not process_alive(2**22 + 7, 0)  # beyond pid_max
    child = python("pass")
    wait_for(lambda: process_state(child.pid) == "Z", 30, "the child to become a zombie")
    zombie_start = process_start_time(child.pid)
    assert zombie_start is not None and not process_alive(child.pid, zombie_start)
    child.wait()


def test_a_zombie_writer_is_dead_to_describe_and_clean(name: str) -> None:
    proc = _writer(name, "exit")
    try:
        # Zombie, and its last thread gone (a thread group leader shows Z while its other
        # threads are still exiting, and they hold the process's files until they are gone).
        wait_for(
            lambda: process_state(proc.pid) == "Z" and len(os.listdir(f"/proc/{proc.pid}/task")) == 1,
            30,
            "the writer to become a zombie",
        )
        pid, start = peek_header(name, "writer_pid"), peek_header(name, "writer_start_time")
        assert pid == proc.pid and process_start_time(pid) == start  # the header is genuine
        entry = _entry(name)
        assert not entry.alive and entry.writer_pid == proc.pid  # type: ignore[attr-defined]
        assert _cleaned(name)
    finally:
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


@pytest.mark.parametrize("start", ["wrong", "right"])
def test_a_dead_writers_header_naming_a_live_pid_is_still_dead(name: str, start: str) -> None:
    proc = _writer(name, "wait")
    proc.kill()
    proc.wait(10)
    assert proc.stdout is not None
    proc.stdout.close()
    # pid reuse: the number now belongs to a live process (us). Even a header that matches
    # that process's start time exactly cannot revive it: nobody holds the lock.
    me = os.getpid()
    own = process_start_time(me)
    assert own is not None
    poke_header(name, "writer_pid", me)
    poke_header(name, "writer_start_time", own if start == "right" else own + 12345)
    assert writer_alive_by_lock(name) is False
    assert not _entry(name).alive  # type: ignore[attr-defined]
    assert _cleaned(name)


@pytest.mark.parametrize("pid", [2**31 - 1, 0, 1])
def test_a_live_writer_with_a_bogus_header_pid_is_alive(name: str, pid: int) -> None:
    writer = WriterPool(name, SMALL, slot_count=2, reader_rows=1, writer_guid=b"w" * 16)
    try:
        poke_header(name, "writer_pid", pid)
        poke_header(name, "writer_start_time", 1)
        assert not process_alive(pid, 1)  # pid + start time alone would call it dead
        assert writer_alive_by_lock(name) is True
        assert _entry(name).alive  # type: ignore[attr-defined]
        _spared_by_clean(name)
    finally:
        writer.close()


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)")
def test_a_writer_in_another_pid_namespace_is_alive_while_it_runs_and_dead_after(name: str) -> None:
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("no permission to make a pid namespace")
    proc = _writer(name, "wait", ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL"])
    try:
        pid, start = peek_header(name, "writer_pid"), peek_header(name, "writer_start_time")
        assert pid == 1  # its own namespace's numbering: meaningless here
        assert not process_alive(pid, start)  # our pid 1 is another process
        assert _entry(name).alive  # type: ignore[attr-defined]
        _spared_by_clean(name)
        proc.kill()
        proc.wait(10)
        wait_for(lambda: not _entry(name).alive, 30, "the namespaced writer to look dead")  # type: ignore[attr-defined]
        assert _cleaned(name)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()
