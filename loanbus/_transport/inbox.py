"""A reader's end of the local reference path: its inbox (one pipe) and its registrations.

Every local writer a reader registers with gets the write end of the reader's inbox and
writes fixed-size reference records into it (``wire.RECORD``); the reader's own DDS
listeners write wake records into it when something arrives through DDS. So a reader waits
on exactly one file descriptor, and asyncio can wait on it with ``loop.add_reader``.

The inbox is an anonymous pipe: there is no file anyone could plant, truncate or open, and
only the processes the reader handed its write end to (the writers it registered with, after
checking who they are) can send it anything. No cyclonedds here: the pool plus this path
work without DDS.
"""

from __future__ import annotations

import array
import errno
import fcntl
import functools
import os
import select
import socket
import struct
import time

from loanbus._spin import spin
from loanbus._transport import wire

_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
DEFAULT_CAPACITY = 1 << 20
CAPACITY_ENV = "LOANBUS_INBOX_BYTES"
_READ_CHUNK = 64 * wire.RECORD_SIZE
_clock = time.perf_counter_ns
_FOREVER = (2**31 - 1) / 1000.0  # seconds: poll() waits at most this long, else for ever

_SIZE = wire.RECORD_SIZE
_MAGIC = wire.RECORD_MAGIC
_WAKE = wire.WAKE
_unpack = wire.RECORD.unpack
_iter = wire.RECORD.iter_unpack

Record = tuple[int, int, int, int, int]
"""One reference as read: (writer index, slot, seq, size, timestamp ns)."""


class RegistrationError(OSError):
    """A registration with a writer failed; the text says why (errno where there is one)."""


def inbox_capacity() -> int:
    """The pipe size to ask for: ``LOANBUS_INBOX_BYTES`` (default 1 MiB), at least one page.

    The kernel caps it at /proc/sys/fs/pipe-max-size and, past a per-user total, gives less.
    """
    text = os.environ.get(CAPACITY_ENV, "").strip()
    if not text:
        return DEFAULT_CAPACITY
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 4096:
        raise ValueError(f"{CAPACITY_ENV}={text!r}: give a pipe size in bytes, at least 4096")
    return value


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a connected Unix socket."""
    pid, uid, gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    return pid, uid, gid


class Inbox:
    """One pipe: records in, in the order the kernel received them; ``wait`` polls it."""

    _r: int = -1
    _w: int = -1

    def __init__(self, spin_ns: int = 0) -> None:
        self.spin_ns = spin_ns  # how long ``wait`` looks before it sleeps (loanbus._spin)
        self._spinning = spin_ns > 0
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        wanted = inbox_capacity()
        try:
            fcntl.fcntl(self._r, fcntl.F_SETPIPE_SZ, wanted)
        except OSError:  # EPERM past the per-user limit: keep the size the kernel gave
            pass
        self.capacity = fcntl.fcntl(self._r, fcntl.F_GETPIPE_SZ)
        self._poll = select.poll()
        self._poll.register(self._r, select.POLLIN)
        self._look = functools.partial(self._poll.poll, 0)
        self._tail = b""
        self.malformed = 0  # records refused because they are not loanbus records

    def fileno(self) -> int:
        return self._r

    @property
    def write_fd(self) -> int:
        """The write end, as handed to writers (and used by ``wake``)."""
        return self._w

    def read(self) -> list[Record]:
        """Every record waiting now (without blocking); wake records only woke a waiter."""
        try:
            data = os.read(self._r, _READ_CHUNK)
        except BlockingIOError:
            return []
        except OSError as exc:
            if exc.errno == errno.EBADF:
                return []  # closed
            raise
        if len(data) == _READ_CHUNK:  # there may be more: take it all now
            parts = [data]
            while True:
                try:
                    more = os.read(self._r, _READ_CHUNK * 16)
                except BlockingIOError:
                    break
                parts.append(more)
                if len(more) < _READ_CHUNK * 16:
                    break
            data = b"".join(parts)
        n = len(data)
        if self._tail or n % _SIZE:
            data = self._tail + data
            n = len(data)
            whole = n - n % _SIZE
            self._tail = data[whole:]
            data = data[:whole]
            n = whole
        if n == _SIZE:  # the common case: one record
            magic, index, slot, _flags, seq, size, ts = _unpack(data)
            if magic == _MAGIC and index != _WAKE:
                return [(index, slot, seq, size, ts)]
            self.malformed += magic != _MAGIC
            return []
        out = [(i, sl, sq, sz, ts) for m, i, sl, _f, sq, sz, ts in _iter(data) if m == _MAGIC and i != _WAKE]
        if len(out) != n // _SIZE:  # wake records, or foreign ones: count the foreign
            self.malformed += sum(1 for m, *_ in _iter(data) if m != _MAGIC)
        return out

    def wait(self, timeout: float | None) -> bool:
        """Block until the inbox is readable or ``timeout`` seconds pass (None or more than
        poll() can say: for ever).

        Spins up to ``spin_ns`` first (at most ``timeout``) when the previous wait was short
        enough for a spin to have seen its record; a wait that was longer turns spinning off
        until a wait is short again, so a slow stream does not pay for spins that never find
        anything."""
        spin_ns = self.spin_ns
        if spin_ns:
            start = _clock()
            if self._spinning and (timeout is None or timeout > 0.0):
                budget = spin_ns if timeout is None or timeout * 1e9 >= spin_ns else int(timeout * 1e9)
                if spin(self._look, budget):
                    return True
        ms = -1 if timeout is None or timeout >= _FOREVER else max(int(timeout * 1000.0 + 0.999), 0)
        try:
            ready = bool(self._poll.poll(ms))
        except InterruptedError:  # pragma: no cover - PEP 475 retries; a signal handler raised
            return False
        if spin_ns:
            self._spinning = _clock() - start < spin_ns
        return ready

    def wake(self) -> None:
        """Write a wake record (from any thread); a full inbox needs no more waking."""
        try:
            os.write(self._w, wire.WAKE_RECORD)
        except (BlockingIOError, OSError):
            pass

    def register(
        self, path: str, hello: wire.Hello, holds_fd: int | None, *, writer_pid: int, writer_uid: int
    ) -> socket.socket:
        """Connect to a writer's registration socket, check that the process listening there is
        the pool's writer (its pid and uid), and send ``hello`` with the inbox's write end and
        the hold block. Returns the connection: closing it tells the writer we are gone."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            sock.setblocking(False)
            try:
                sock.connect(path)
            except BlockingIOError as exc:
                raise RegistrationError(errno.EAGAIN, f"writer at {path} is not accepting now") from exc
            except OSError as exc:
                raise RegistrationError(
                    exc.errno, f"cannot connect to writer at {path}: {exc.strerror}"
                ) from None
            pid, uid, _gid = peer_credentials(sock)
            if pid != writer_pid or uid != writer_uid:
                raise RegistrationError(
                    errno.EPERM,
                    f"the socket {path} belongs to pid {pid} (uid {uid}), not to the pool's writer "
                    f"pid {writer_pid} (uid {writer_uid})",
                )
            fds = [self._w] if holds_fd is None else [self._w, holds_fd]
            try:
                sock.sendmsg(
                    [hello.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
                )
            except OSError as exc:
                raise RegistrationError(exc.errno, f"cannot register with writer at {path}: {exc}") from None
        except BaseException:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        """Close both ends (idempotent). Writers see EPIPE once no process holds the read end."""
        r, self._r = self._r, -1
        w, self._w = self._w, -1
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)


def ring(sock: socket.socket) -> None:
    """Tell a writer blocked in ``get_loan`` that a hold was returned (never blocks)."""
    try:
        sock.send(wire.WAKE_BYTE, socket.MSG_DONTWAIT)
    except OSError:  # full (it has wake-ups queued) or gone: nothing to do either way
        pass
