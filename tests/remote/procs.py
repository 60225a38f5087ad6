"""Running the peer scripts as processes and reading their one-line JSON reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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
    full_env = {**os.environ, **(env or {})}
    return subprocess.Popen(
        [*(prefix or []), sys.executable, *args],
        cwd=ROOT,
        env=full_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


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
