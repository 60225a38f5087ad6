"""Issue 15: record, replay and look. Helpers: writer and reader processes, CLI children,
frames whose every byte is known from their sequence number, and an MCAP record walker."""

from __future__ import annotations

import multiprocessing.synchronize
import queue
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

import loanbus

REPO = Path(__file__).resolve().parents[2]
IMAGE_IDL = REPO / "idl" / "Image.idl"
# Ctrl-C works even where the test runner was started with SIGINT ignored (a background job),
# a disposition children inherit; -X faulthandler: SIGABRT prints every thread of a hung child.
LOANBUS = [
    sys.executable,
    "-X",
    "faulthandler",
    "-c",
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'loanbus'; from loanbus.cli.main import main; main()",
]


def pattern(size: int, seq: int) -> np.ndarray[Any, Any]:
    """The bytes of frame ``seq``: every byte differs from its neighbours and from other frames'."""
    base = (np.arange(size, dtype=np.int64) * 7 % 251).astype(np.uint8)
    return base + np.uint8(seq % 256)


class Child:
    """A ``loanbus`` CLI process whose output lines we can wait for."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*LOANBUS, *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(),
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line.rstrip("\n"))

    def wait_line(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """The first line from now on that matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None and self._queue.empty():
                    break
                continue
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"no line matching {pattern!r}; output so far:\n" + "\n".join(self.lines))

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60.0) -> int:
        """Send ``sig`` and wait; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)
            self.proc.wait()
            time.sleep(0.5)  # the reader thread collects the thread dump
            dump = "\n".join(self.lines)
            raise AssertionError(
                f"pid {self.proc.pid} ignored signal {sig} for {timeout} s:\n{dump}"
            ) from None

    def output(self) -> str:
        self.proc.wait(10)
        time.sleep(0)  # let the reader thread see the end of the stream
        return "\n".join(self.lines)


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb"}


# -- processes (spawned: never fork a DDS process) ---------------------------------------------

FRAME_BYTES = 1080 * 1920 * 3


def image_type() -> Any:
    import loanbus.idl

    return loanbus.idl.load(IMAGE_IDL).Image


def write_images(
    domain_id: int, topic: str, rate: float, stop: multiprocessing.synchronize.Event, count: int = 0
) -> None:
    """Write ``camera::Image`` frames whose pixels are ``pattern(.., seq)`` until ``stop`` (or ``count``)."""
    image = image_type()
    qos = loanbus.Qos(reliability=loanbus.Reliability.BEST_EFFORT, max_samples=4)
    with loanbus.DomainParticipant(domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, topic, image), qos=qos)
        start = time.monotonic()
        n = 0
        while not stop.is_set() and (not count or n < count):
            if (wait := start + n / rate - time.monotonic()) > 0:
                stop.wait(wait)
                continue
            loan = writer.get_loan()
            view = image(loan.data)
            view.width, view.height, view.strideBytes, view.pixelFormat = 1920, 1080, 5760, 0
            view.payloadSize, view.sequence = FRAME_BYTES, n
            view.pixels[:] = pattern(FRAME_BYTES, n)
            writer.write(loan)
            n += 1


def write_frames(
    domain_id: int,
    topic: str,
    stype: loanbus.ShmemType,
    count: int,
    rate: float,
    fill: str,
    done: Any,
    release: multiprocessing.synchronize.Event | None = None,
) -> None:
    """Write ``count`` frames of ``stype`` (``seq`` + ``pixels``) once a reader matched.

    ``fill="pattern"``: pixels are ``pattern(.., seq)``; ``"flat"``: every byte of frame
    ``seq`` is ``seq % 251``. ``rate`` 0 writes as fast as possible into a two-slot pool, so
    slots are reused under a slow reader. Puts the number of writes on ``done``, then keeps
    the writer (and the references it published) until ``release`` is set.
    """
    qos = loanbus.Qos(reliability=loanbus.Reliability.BEST_EFFORT, max_samples=1 if rate == 0 else 4)
    with loanbus.DomainParticipant(domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, topic, stype), qos=qos)
        if not writer.wait_for_readers(1, timeout=30):
            raise SystemExit("no reader matched")
        start = time.monotonic()
        size = stype.dtype["pixels"].itemsize
        for n in range(1, count + 1):
            if rate and (wait := start + n / rate - time.monotonic()) > 0:
                time.sleep(wait)
            loan = writer.get_loan()
            loan.data["seq"] = n
            pixels = loan.data["pixels"].reshape(-1)
            if fill == "pattern":
                pixels[:] = pattern(size, n)
            else:
                pixels[:] = n % 251
            writer.write(loan)
        done.put(writer.statistics().writes)
        if release is not None:
            release.wait(120)


def hold_writer(
    domain_id: int, topic: str, stype: loanbus.ShmemType, release: multiprocessing.synchronize.Event
) -> None:
    """A writer of ``topic`` that writes one sample and lives until ``release`` is set."""
    with loanbus.DomainParticipant(domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, topic, stype))
        writer.write(writer.get_loan())
        release.wait(120)


def read_frames(domain_id: int, topic: str, stype: loanbus.ShmemType, count: int, results: Any) -> None:
    """Take ``count`` frames; put ``(seq, blake2b of the sample's bytes, take time ns)`` for each."""
    import hashlib

    qos = loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, history_depth=None, max_samples=4)
    got: list[tuple[int, str, int]] = []
    with loanbus.DomainParticipant(domain_id) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, topic, stype), qos=qos)
        results.put(("ready", None))
        deadline = time.monotonic() + 120
        while len(got) < count and time.monotonic() < deadline:
            for s in reader.take(max_samples=4, timeout=0.5):
                now = time.time_ns()
                digest = hashlib.blake2b(s.data.reshape(-1).view(np.uint8)).hexdigest()
                got.append((int(s.data["seq"]), digest, now))
                reader.return_loan(s)
    results.put(("frames", got))


# -- MCAP, record by record --------------------------------------------------------------------

MAGIC = b"\x89MCAP0\r\n"
CHUNK, MESSAGE = 0x06, 0x05


def records(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """``(opcode, offset, body)`` of every complete record after the magic; stops at a torn one."""
    assert data.startswith(MAGIC), "not an MCAP file"
    pos = len(MAGIC)
    while pos + 9 <= len(data):
        opcode, length = struct.unpack_from("<BQ", data, pos)
        if pos + 9 + length > len(data):
            return
        yield opcode, pos, data[pos + 9 : pos + 9 + length]
        pos += 9 + length


def chunk_messages(body: bytes) -> Iterator[tuple[int, int, bytes]]:
    """``(channel id, log time, data)`` of the messages in an uncompressed Chunk record."""
    (clen,) = struct.unpack_from("<I", body, 28)
    compression = body[32 : 32 + clen].decode()
    assert compression == "", f"chunk compressed with {compression}"
    (rlen,) = struct.unpack_from("<Q", body, 32 + clen)
    inner = body[40 + clen : 40 + clen + rlen]
    pos = 0
    while pos < len(inner):
        opcode, length = struct.unpack_from("<BQ", inner, pos)
        rec = inner[pos + 9 : pos + 9 + length]
        if opcode == MESSAGE:
            channel, _seq, log_time, _pub = struct.unpack_from("<HIQQ", rec, 0)
            yield channel, log_time, rec[22:]
        pos += 9 + length
