"""The ``loanbus`` command as a user runs it: real processes, real Cyclone DDS, real pools.

Helpers start the command in a subprocess (it inherits the test's shm prefix and domain)
and poll a JSON-printing command until a condition holds, never for a fixed time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HELLO = str(REPO / "idl" / "HelloWorld.idl")
POINTCLOUD = str(REPO / "idl" / "PointCloud.idl")
LOANBUS = [sys.executable, "-m", "loanbus.cli.main"]
#: Statistics every 0.2 s in the processes the tests start, so ``top`` has fresh figures soon.
STATS_ENV = {"LOANBUS_STATS_INTERVAL": "0.2"}


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    return {**os.environ, "COLUMNS": "250", **STATS_ENV, **(extra or {})}


def run(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``loanbus ARGS`` to completion."""
    return subprocess.run(
        [*LOANBUS, *args], capture_output=True, text=True, timeout=timeout, env=_env(env), cwd=REPO
    )


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``loanbus ARGS`` in the background (stop it with ``stop``)."""
    return subprocess.Popen(
        [*LOANBUS, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(env), cwd=REPO
    )


def stop(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[str, str]:
    """SIGTERM (loanbus turns it into a clean exit that unlinks its pools), then the output."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        raise AssertionError(f"loanbus {proc.args} did not stop on SIGTERM: {err}") from None
    return out, err


def poll_json(args: list[str], condition: Callable[[Any], bool], what: str, timeout: float = 90) -> Any:
    """Run ``loanbus ARGS`` (which prints JSON) until ``condition(doc)`` holds; the doc."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        result = run(*args)
        assert result.returncode == 0, result.stderr
        last = json.loads(result.stdout.splitlines()[-1] if args[0] == "top" else result.stdout)
        if condition(last):
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout} s; last output: {json.dumps(last)[:3000]}")
