"""Helpers for tests that need real processes: spawn (never fork a DDS process) and wait."""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.context
import os
import signal
from collections.abc import Callable
from typing import Any

import numpy as np

import loanbus

CTX = mp.get_context("spawn")

FRAME = loanbus.ShmemType("test::Frame", np.dtype([("seq", "<u8"), ("pixels", "u1", (1080, 1920, 3))]))
SMALL = loanbus.ShmemType(
    "test::Small", np.dtype([("seq", "<u8"), ("value", "<i8"), ("blob", "u1", (4096,))])
)

FRAME_BYTES = 1080 * 1920 * 3


def start(target: Callable[..., Any], *args: Any) -> multiprocessing.context.SpawnProcess:
    proc = CTX.Process(target=target, args=args, daemon=True)
    proc.start()
    return proc


def join_ok(proc: multiprocessing.context.SpawnProcess, timeout: float = 60.0) -> None:
    proc.join(timeout)
    if proc.is_alive():
        os.kill(proc.pid or 0, signal.SIGKILL)
        proc.join(5)
        raise AssertionError(f"process {proc.name} did not finish within {timeout} s")
    assert proc.exitcode == 0, f"process {proc.name} exited with {proc.exitcode}"


def fill_value(seq: int) -> int:
    """The byte every payload byte of generation ``seq`` is filled with."""
    return (seq * 37 + 11) % 251
