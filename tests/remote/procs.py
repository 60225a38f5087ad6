"""Running the peer scripts as processes and reading their one-line JSON reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from loanbus._transport.config import build_config

ROOT = Path(__file__).resolve().parents[2]
PEER = ["-m", "tests.remote._peer"]
PLAIN = [str(Path(__file__).with_name("plain_peer.py"))]
#: The loopback profile as a whole Cyclone DDS configuration, for processes without loanbus.
LOOPBACK_XML = build_config(lease_duration=10.0, profile="loopback")


def plain_cyclone_env() -> dict[str, str]:
    """The environment of a plain Cyclone DDS process (no loanbus) on this host's network:
    the loopback profile's configuration, so it meets the tests' loanbus processes and sends
    nothing beyond ``lo``."""
    return {"CYCLONEDDS_URI": LOOPBACK_XML}


def spawn(
    args: list[str], *, prefix: list[str] | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """``[prefix...] python args...`` from the repository root, stdin and stdout piped."""
    return run_in([sys.executable, *args], prefix=prefix, env=env)


def run_in(
    argv: list[str], *, prefix: list[str] | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """``[prefix...] argv...`` from the repository root, stdin and stdout piped."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.Popen(
        [*(prefix or []), *argv],
        cwd=ROOT,
        env=full_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Lines:
    """The lines a process prints, read by a thread so a test can wait for one with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._done = False
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def wait_for(self, condition: Callable[[list[str]], bool], timeout: float, what: str) -> list[str]:
        """The lines so far once ``condition(lines)`` holds; fails naming ``what`` after
        ``timeout`` seconds or when the process ends first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not condition(self.lines):
                left = deadline - time.monotonic()
                if self._done or left <= 0:
                    why = "the process ended" if self._done else f"{timeout:g} s passed"
                    shown = "\n".join(self.lines[-30:])
                    raise AssertionError(f"{what}: {why} first; its last lines:\n{shown}")
                self._cond.wait(left)
            return list(self.lines)


def report(proc: subprocess.Popen[str], timeout: float = 240.0) -> dict[str, Any]:
    """The JSON line a peer prints (its first line of output), or a failure with its stderr."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        _, err = proc.communicate(timeout=timeout)
        raise AssertionError(f"peer {proc.args} printed nothing; stderr:\n{err[-3000:]}")
    doc: dict[str, Any] = json.loads(line)
    assert "error" not in doc, doc
    return doc


def finish(proc: subprocess.Popen[str], timeout: float = 60.0) -> str:
    """Close the peer's stdin, wait for it, and return its stderr (it must exit cleanly)."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"peer {proc.args} did not exit; stderr:\n{err[-3000:]}") from None
    assert proc.returncode == 0, f"peer {proc.args} exited with {proc.returncode}:\n{err[-3000:]}"
    return err


def read_line_then_finish(proc: subprocess.Popen[str]) -> tuple[dict[str, Any], str]:
    doc = report(proc)
    return doc, finish(proc)
