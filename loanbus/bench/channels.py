"""The transports ``loanbus bench`` compares, behind one small endpoint interface.

Every comparison moves fixed-size samples between two processes. Role ``a`` is the ping
(latency) or the writer (throughput), role ``b`` the pong or the reader. An endpoint can
``send`` a sample whose first byte is a tag, ``recv`` one sample and return its tag, and
``drain`` what arrived (throughput mode). Writers touch only the first byte of a sample in
place where the transport lets them fill in place (loanbus, POSIX shm, iceoryx2); the
others hand over a whole buffer, as their users do.

Resources that both processes share (pipes, POSIX segments and semaphores) are created by
the main process in ``prepare`` and removed by it afterwards; everything else is created
by the endpoints in the worker processes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, Protocol

import numpy as np

import loanbus
from loanbus.bench import iox, leftovers

FLOOR_BYTES = 12  # the bare Cyclone message: the size of a slot reference without padding
REF_BYTES = 24  # loanbus's reference as it crosses DDS (sequence, size, slot, padding)
REF_HEADER = 16  # cyclone-ref's shared buffer: sequence word, hold word, then the payload
CTX = mp.get_context("spawn")
_REF = struct.Struct("<QQI4x")  # sequence, size, slot: loanbus's reference layout after the header


class Endpoint(Protocol):
    """One process's end of a comparison."""

    def ready(self) -> bool:
        """True once the peer is there (discovery done); polled before the run starts."""
        ...

    def send(self, tag: int) -> None: ...

    def recv(self, timeout: float) -> int | None:
        """The tag of the next sample, or None after ``timeout`` seconds."""
        ...

    def drain(self, timeout: float) -> tuple[int, int]:
        """(samples consumed, samples found inconsistent) of what arrived within ``timeout``."""
        ...

    def close(self) -> None: ...


def directions(mode: str, role: str) -> tuple[str | None, str | None]:
    """The (send, receive) channel names of ``role`` ('a' or 'b') in ``mode``."""
    if mode == "latency":
        return ("ab", "ba") if role == "a" else ("ba", "ab")
    return ("ab", None) if role == "a" else (None, "ab")


@dataclass
class Prepared:
    """What the main process made for one run: arguments per role, and its cleanup."""

    args: dict[str, dict[str, Any]]
    cleanup: Callable[[], None] = field(default=lambda: None)


@dataclass(frozen=True)
class Comparison:
    """One transport of the suite: a name, what exactly is measured, and how to run it."""

    name: str
    label: str
    method: str
    modes: tuple[str, ...] = ("latency", "stream")
    default: bool = True

    def unavailable(self) -> str | None:
        """None, or why this comparison cannot run on this machine."""
        if self.name == "iceoryx2":
            return iox.unavailable()
        return None


COMPARISONS: dict[str, Comparison] = {
    c.name: c
    for c in (
        Comparison(
            "loanbus",
            "loanbus zero-copy",
            "get_loan, touch byte 0, write; take, read byte 0, is_data_consistent, return_loan. "
            "Reliable QoS; references through the local path (the reader's inbox, a pipe); a "
            "waiting take looks at the inbox for up to 50 µs before it blocks in poll() "
            "(LOANBUS_SPIN_US, docs/configuration.md); max_samples=2 for latency, 32 for "
            "throughput (the reader takes up to 32 at a time).",
        ),
        Comparison(
            "loanbus-sleep",
            "loanbus, no spin",
            "As loanbus, with LOANBUS_SPIN_US=0: a waiting take blocks in poll() at once and the "
            "kernel wakes it for each reference (as iceoryx2's and posix-shm's waits are woken).",
        ),
        Comparison(
            "loanbus-dds",
            "loanbus, DDS references",
            "As loanbus, but the reader asks for its references through Cyclone DDS "
            "(Qos(dds_references=True)): the path of C programs and of readers that want it.",
        ),
        Comparison(
            "loanbus-be",
            "loanbus best effort",
            "As loanbus, with best-effort QoS (the writer reuses the oldest written slot).",
            modes=("stream",),
        ),
        Comparison(
            "loanbus-huge",
            "loanbus, huge pages",
            "As loanbus, with Qos(huge_pages=True).",
            default=False,
        ),
        Comparison(
            "loanbus-by-value",
            "loanbus by value",
            "As loanbus, but the reader asks for Qos(by_value=True): the writer encodes each "
            "sample to CDR, Cyclone DDS carries it over loopback with the configuration loanbus "
            "ships, the reader decodes a private copy (the path of a reader on another host). "
            "history_depth=None, so the by-value reader drops nothing.",
            default=False,
        ),
        Comparison(
            "loanbus-by-value-defaults",
            "loanbus by value, Cyclone defaults",
            "As loanbus-by-value, with Cyclone DDS's default configuration (CYCLONEDDS_URI names "
            "only the loopback interface and a unicast discovery peer) instead of loanbus's.",
            default=False,
        ),
        Comparison(
            "cyclone-floor",
            "Cyclone DDS 12 B message",
            f"A {FLOOR_BYTES}-byte pre-encoded message written with ddspy_write and taken with "
            "ddspy_take, reliable keep-all: the floor of any reference carried through Cyclone "
            "DDS (loanbus-dds).",
        ),
        Comparison(
            "cyclone-ref",
            "reference exchange, no API",
            f"What a sample on the DDS reference path costs at the least in Python: a "
            f"{REF_BYTES}-byte pre-encoded reference (as loanbus-dds's) through Cyclone DDS, "
            "reliable keep-all, taken on a WaitSet, and on a shared buffer the sender stores a "
            "sequence word and byte 0, the receiver reads byte 0 and compares the word. No loans, "
            "samples, pool bookkeeping or checks. Latency only: with one shared buffer and no "
            "flow control, a stream would only measure overwrites.",
            modes=("latency",),
            default=False,
        ),
        Comparison(
            "python-floor",
            "thinnest Python API",
            "cyclone-ref plus the least Python that loanbus's API implies: get_loan returns a loan "
            "object whose data is a 0-d structured numpy view, write consumes it, take returns a "
            "list of sample objects with an info tuple and a read-only view, is_data_consistent "
            "compares the sequence word, return_loan clears a hold word; used exactly as the "
            "loanbus comparison uses its writer and reader. One slot, no bookkeeping, no checks: "
            "no Python implementation of the API over DDS references can go under it. Latency "
            "only.",
            modes=("latency",),
            default=False,
        ),
        Comparison(
            "cyclone-by-value",
            "Cyclone DDS by value",
            "The whole sample as a struct of a uint8 array, CDR pre-encoded with numpy and written "
            "with ddspy_write (the Python IdlStruct serializer is NOT measured), taken as bytes "
            "with ddspy_take; loanbus's Cyclone configuration, reliable keep-all.",
        ),
        Comparison(
            "pipe",
            "multiprocessing Pipe",
            "Connection.send_bytes of the whole sample, recv_bytes on the other side.",
        ),
        Comparison(
            "posix-shm",
            "POSIX shm + named semaphore",
            "A shared buffer per direction filled in place, a 'full' and an 'empty' named "
            "semaphore (posix_ipc): the floor of any design whose reader sleeps until the kernel "
            "wakes it.",
        ),
        Comparison(
            "iceoryx2",
            "iceoryx2",
            "iceoryx2 publish-subscribe of a ctypes uint8 array, loaned and filled in place, "
            "with an iceoryx2 event for a blocking wait on the receiving side.",
        ),
    )
}


def _qos(comparison: str, mode: str) -> loanbus.Qos:
    slots = 2 if mode == "latency" else 32
    if comparison == "loanbus-be":
        return loanbus.Qos(reliability=loanbus.Reliability.BEST_EFFORT, max_samples=slots)
    by_value = comparison.startswith("loanbus-by-value")
    return loanbus.Qos(
        reliability=loanbus.Reliability.RELIABLE,
        max_samples=slots,
        max_blocking_time=10.0,
        huge_pages=comparison == "loanbus-huge",
        history_depth=None if by_value else 1,
        by_value=by_value,
        dds_references=comparison == "loanbus-dds",
    )


#: Every comparison runs on one host, and no DDS packet of a measurement leaves it.
PROFILE: Literal["loopback"] = "loopback"

# Cyclone DDS's defaults, except that discovery is unicast on loopback as with PROFILE.
CYCLONE_DEFAULTS = (
    '<CycloneDDS xmlns="https://cdds.io/config"><Domain Id="any"><General>'
    '<Interfaces><NetworkInterface name="lo" /></Interfaces><AllowMulticast>false</AllowMulticast>'
    "</General><Discovery><ParticipantIndex>auto</ParticipantIndex>"
    '<Peers><Peer address="127.0.0.1" /></Peers></Discovery></Domain></CycloneDDS>'
)


# -- loanbus -------------------------------------------------------------------------------


class LoanbusEndpoint:
    """A DataWriter and/or a DataReader of samples with one ``payload`` byte array."""

    def __init__(self, comparison: str, mode: str, role: str, size: int, args: dict[str, Any]) -> None:
        stype = loanbus.ShmemType(f"loanbus_bench::B{size}", np.dtype([("payload", "u1", (size,))]))
        qos = _qos(comparison, mode)
        if comparison == "loanbus-by-value-defaults":
            os.environ["CYCLONEDDS_URI"] = CYCLONE_DEFAULTS  # this worker process only
        if comparison == "loanbus-sleep":
            os.environ["LOANBUS_SPIN_US"] = "0"  # this worker process only
        self._dp = loanbus.DomainParticipant(domain_id=args["domain"], dds_profile=PROFILE)
        send, recv = directions(mode, role)
        self._w = self._r = None
        if send is not None:
            self._w = loanbus.DataWriter(loanbus.Topic(self._dp, args["topic"] + send, stype), qos=qos)
        if recv is not None:
            self._r = loanbus.DataReader(loanbus.Topic(self._dp, args["topic"] + recv, stype), qos=qos)

    def ready(self) -> bool:
        w_ok = self._w is None or self._w.wait_for_readers(1, timeout=0.0)
        return w_ok and (self._r is None or self._r.wait_for_writers(1, timeout=0.0))

    def send(self, tag: int) -> None:
        assert self._w is not None
        loan = self._w.get_loan()
        loan.data["payload"][0] = tag
        self._w.write(loan)

    def recv(self, timeout: float) -> int | None:
        assert self._r is not None
        for s in self._r.take(max_samples=1, timeout=timeout):
            tag = int(s.data["payload"][0])
            self._r.is_data_consistent(s)
            self._r.return_loan(s)
            return tag
        return None

    def drain(self, timeout: float) -> tuple[int, int]:
        reader = self._r
        assert reader is not None
        samples = reader.take(max_samples=32, timeout=timeout)
        bad = 0
        for s in samples:
            s.data["payload"][0]
            if not reader.is_data_consistent(s):
                bad += 1
        reader.return_loan(samples)
        return len(samples), bad

    def close(self) -> None:
        self._dp.close()


# -- Cyclone DDS (through the transport, the one module that imports cyclonedds) ------------


class CycloneEndpoint:
    """Pre-encoded samples on a plain Cyclone topic: the 12-byte floor, or the whole sample."""

    def __init__(self, comparison: str, mode: str, role: str, size: int, args: dict[str, Any]) -> None:
        from loanbus._transport import RawChannel, TransportParticipant

        nbytes = {"cyclone-floor": FLOOR_BYTES, "cyclone-ref": REF_BYTES, "python-floor": REF_BYTES}.get(
            comparison, size
        )
        self._size = size
        self._cdr = np.zeros(4 + nbytes, np.uint8)
        self._cdr[1] = 1  # CDR little-endian encapsulation header: 00 01 00 00
        self._buf = self._cdr.data
        self._dp = TransportParticipant(args["domain"], dds_profile=PROFILE)
        send, recv = directions(mode, role)
        name = args["topic"]
        self._ch = RawChannel(self._dp, nbytes, name + send if send else None, name + recv if recv else None)

    def ready(self) -> bool:
        return self._ch.matched()

    def send(self, tag: int) -> None:
        self._cdr[4] = tag
        self._ch.write(self._buf)

    def recv(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while True:
            got = self._ch.take(1)
            if got:
                return got[0][4]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._ch.wait(remaining)

    def drain(self, timeout: float) -> tuple[int, int]:
        got = self._ch.take(32)
        if not got and self._ch.wait(timeout):
            got = self._ch.take(32)
        for data in got:
            data[4]
        return len(got), 0

    def close(self) -> None:
        self._ch.close()
        self._dp.close()


class RefFloorEndpoint(CycloneEndpoint):
    """The 24-byte reference through Cyclone plus the least shared-memory work a sample needs."""

    HEADER = REF_HEADER

    def __init__(self, comparison: str, mode: str, role: str, size: int, args: dict[str, Any]) -> None:
        super().__init__(comparison, mode, role, size, args)
        send, recv = directions(mode, role)
        names = args["names"]
        self._out = _ShmDirection(names[send], size + self.HEADER) if send else None
        self._in = _ShmDirection(names[recv], size + self.HEADER) if recv else None
        self._seq = 0
        self.consistent = True  # whether the last reference's sequence word still matched

    def send(self, tag: int) -> None:
        out = self._out
        assert out is not None
        self._seq += 1
        out.words[0] = self._seq  # the slot's sequence word, stamped before the payload
        out.view[REF_HEADER] = tag  # byte 0 of the payload
        _REF.pack_into(self._buf, 4, self._seq, self._size, 0)
        self._ch.write(self._buf)

    def _consume(self, data: bytes) -> int:
        """The tag, after comparing the sequence word as ``is_data_consistent`` does."""
        inp = self._in
        assert inp is not None
        tag = int(inp.view[REF_HEADER])
        self.consistent = inp.words[0] == _REF.unpack_from(data, 4)[0]
        return tag

    def recv(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while True:
            got = self._ch.take(1)
            if got:
                return self._consume(got[0])
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._ch.wait(remaining)

    def close(self) -> None:
        super().close()
        for d in (self._out, self._in):
            if d is not None:
                d.close()


# -- multiprocessing Pipe ------------------------------------------------------------------


def _prepare_pipe() -> Prepared:
    a, b = CTX.Pipe(duplex=True)

    def cleanup() -> None:
        a.close()
        b.close()

    return Prepared({"a": {"conn": a}, "b": {"conn": b}}, cleanup)


class PipeEndpoint:
    """``send_bytes`` / ``recv_bytes`` of the whole sample over a duplex Pipe."""

    def __init__(self, comparison: str, mode: str, role: str, size: int, args: dict[str, Any]) -> None:
        self._conn = args["conn"]
        self._buf = bytearray(size)

    def ready(self) -> bool:
        return True

    def send(self, tag: int) -> None:
        self._buf[0] = tag
        self._conn.send_bytes(self._buf)

    def recv(self, timeout: float) -> int | None:
        if not self._conn.poll(timeout):
            return None
        return int(self._conn.recv_bytes()[0])

    def drain(self, timeout: float) -> tuple[int, int]:
        return (0, 0) if self.recv(timeout) is None else (1, 0)

    def close(self) -> None:
        self._conn.close()


# -- POSIX shared memory and named semaphores -------------------------------------------------


def _prepare_posix(mode: str, size: int) -> Prepared:
    import posix_ipc

    # Not starting with the loanbus prefix: `loanbus clean` takes any unlocked segment under it
    # for a dead pool (and these are no pools); it finds them as bench leftovers instead.
    base = "/" + leftovers.run_base()
    made: list[Any] = []
    names = {}
    try:
        for d in ("ab", "ba") if mode == "latency" else ("ab",):
            seg = posix_ipc.SharedMemory(f"{base}.{d}", posix_ipc.O_CREX, mode=0o600, size=size)
            made.append(seg)
            os.close(seg.fd)
            made.append(
                posix_ipc.Semaphore(f"{base}.{d}.full", posix_ipc.O_CREX, mode=0o600, initial_value=0)
            )
            made.append(
                posix_ipc.Semaphore(f"{base}.{d}.empty", posix_ipc.O_CREX, mode=0o600, initial_value=1)
            )
            names[d] = f"{base}.{d}"
    except BaseException:
        _unlink_all(made)
        raise
    return Prepared({"a": {"names": names}, "b": {"names": names}}, lambda: _unlink_all(made))


def _unlink_all(objects: list[Any]) -> None:
    for obj in objects:
        try:
            obj.unlink()
        except Exception:
            pass
        if hasattr(obj, "close"):
            obj.close()


class _ShmDirection:
    def __init__(self, name: str, size: int) -> None:
        import mmap

        import posix_ipc

        shm = posix_ipc.SharedMemory(name)
        self.mapping = mmap.mmap(shm.fd, size)
        os.close(shm.fd)
        self.view = np.frombuffer(self.mapping, np.uint8, count=size)
        self.words = memoryview(self.mapping)[:16].cast("Q")  # cyclone-ref: sequence, hold
        self.full = posix_ipc.Semaphore(name + ".full")
        self.empty = posix_ipc.Semaphore(name + ".empty")

    def close(self) -> None:
        self.full.close()
        self.empty.close()
        self.words.release()
        del self.view
        self.mapping.close()


class PosixEndpoint:
    """The classic pattern: fill a shared buffer in place, post a named semaphore."""

    def __init__(self, comparison: str, mode: str, role: str, size: int, args: dict[str, Any]) -> None:
        send, recv = directions(mode, role)
        names = args["names"]
        self._out = _ShmDirection(names[send], size) if send else None
        self._in = _ShmDirection(names[recv], size) if recv else None

    def ready(self) -> bool:
        return True

    def send(self, tag: int) -> None:
        out = self._out
        assert out is not None
        out.empty.acquire()
        out.view[0] = tag
        out.full.release()

    def recv(self, timeout: float) -> int | None:
        import posix_ipc

        inp = self._in
        assert inp is not None
        try:
            inp.full.acquire(timeout)
        except posix_ipc.BusyError:
            return None
        tag = int(inp.view[0])
        inp.empty.release()
        return tag

    def drain(self, timeout: float) -> tuple[int, int]:
        return (0, 0) if self.recv(timeout) is None else (1, 0)

    def close(self) -> None:
        for d in (self._out, self._in):
            if d is not None:
                d.close()


# -- dispatch ------------------------------------------------------------------------------


def _python_floor(*args: Any) -> Endpoint:
    from loanbus.bench.apifloor import PythonFloorEndpoint  # it builds on this module

    return PythonFloorEndpoint(*args)


_ENDPOINTS: dict[str, Callable[..., Endpoint]] = {
    "loanbus": LoanbusEndpoint,
    "loanbus-be": LoanbusEndpoint,
    "loanbus-dds": LoanbusEndpoint,
    "loanbus-sleep": LoanbusEndpoint,
    "loanbus-huge": LoanbusEndpoint,
    "loanbus-by-value": LoanbusEndpoint,
    "loanbus-by-value-defaults": LoanbusEndpoint,
    "cyclone-floor": CycloneEndpoint,
    "cyclone-ref": RefFloorEndpoint,
    "python-floor": _python_floor,
    "cyclone-by-value": CycloneEndpoint,
    "pipe": PipeEndpoint,
    "posix-shm": PosixEndpoint,
    "iceoryx2": iox.IceoryxEndpoint,
}


def prepare(comparison: str, mode: str, size: int, domain: int, tag: str) -> Prepared:
    """Make what the two processes of one run share; called in the main process."""
    if comparison == "pipe":
        return _prepare_pipe()
    if comparison == "posix-shm":
        return _prepare_posix(mode, size)
    common: dict[str, Any] = {"domain": domain, "topic": f"bench_{tag}_"}
    if comparison in ("cyclone-ref", "python-floor"):  # a buffer per direction (semaphores unused)
        prepared = _prepare_posix(mode, size + RefFloorEndpoint.HEADER)
        for role_args in prepared.args.values():
            role_args.update(common)
        return prepared
    if comparison == "iceoryx2":
        # iceoryx2 keeps a node-management segment in /dev/shm after its last node is gone;
        # a prefix and a root directory of this run's own let the main process remove it all.
        prefix, root = leftovers.iox_names()
        common.update(iox_prefix=prefix, iox_root=root)
        return Prepared({"a": dict(common), "b": dict(common)}, partial(leftovers.remove_run, prefix, root))
    return Prepared({"a": dict(common), "b": dict(common)})


def open_endpoint(comparison: str, mode: str, role: str, size: int, args: dict[str, Any]) -> Endpoint:
    """Open one process's endpoint; called in the worker process."""
    return _ENDPOINTS[comparison](comparison, mode, role, size, args)
