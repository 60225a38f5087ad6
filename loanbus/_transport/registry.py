"""A writer's end of the local reference path: its registration socket and its local readers.

A writer listens on a Unix socket next to its pool in /dev/shm, with the pool's owner and
group. A reader that wants references through the local path connects, and sends one hello
(``wire.Hello``) carrying the pool's registration key, with the write end of its inbox and
its hold block attached (``SCM_RIGHTS``). The kernel tells the writer who connected
(``SO_PEERCRED``). A registration is accepted only if the key matches (so the reader could
read the pool), the reader is this user or the pool has a group, the inbox is a pipe and
the hold block a sealed memfd of the pool's size. An accepted reader is sent the sealed copy
of the slots' sequence numbers (``wire.WELCOME``). Each accepted reader becomes a ``Link``;
the writer attaches it to the pool (hold cells) once DDS has matched the same reader.

Nothing here blocks and no thread of ours runs: the writer calls ``accept`` when it looks
for new readers (on a DDS match, while a registration is pending, while it waits for slots).
No cyclonedds here.
"""

from __future__ import annotations

import array
import errno
import logging
import os
import select
import socket
import stat
import time
from dataclasses import dataclass

from loanbus._transport import wire
from loanbus._transport.holds import HoldBlock, HoldBlockError
from loanbus._transport.inbox import peer_credentials

log = logging.getLogger("loanbus")
_BACKLOG = 4096
_HELLO_WAIT = 5.0  # how long an accepted connection may take to send its hello
_SENT, FULL, GONE = 0, 1, 2


class RegistryError(OSError):
    """The registration socket could not be made (errno says why; EEXIST: the name is taken)."""


@dataclass(frozen=True)
class Refusal:
    """A registration that was refused, and why (``statistics`` counts them, the log says why)."""

    pid: int
    uid: int
    reason: str


class Link:
    """One registered local reader, as its writer sees it."""

    __slots__ = (
        "conn",
        "dropped",
        "flags",
        "holds",
        "index",
        "matched",
        "pid",
        "pipe_fd",
        "reader_id",
        "since",
        "uid",
    )

    def __init__(
        self,
        reader_id: bytes,
        pid: int,
        uid: int,
        hello: wire.Hello,
        conn: socket.socket,
        pipe_fd: int,
        holds: HoldBlock | None,
    ) -> None:
        self.reader_id = reader_id
        self.pid = pid
        self.uid = uid
        self.index = hello.index
        self.flags = hello.flags
        self.conn = conn
        self.pipe_fd = pipe_fd
        self.holds = holds
        self.dropped = 0  # best-effort records dropped because the reader's inbox was full
        self.matched = False  # DDS has matched this reader too (its writer sets this)
        self.since = time.monotonic()  # when it registered

    @property
    def dds_refs(self) -> bool:
        """The reader takes its references from DDS; it gets no records."""
        return bool(self.flags & wire.HELLO_DDS_REFS)

    @property
    def reliable(self) -> bool:
        return self.holds is not None

    def send(self, record: bytes) -> int:
        """Write one record: ``0`` sent, ``FULL`` (the inbox is full), ``GONE`` (no reader)."""
        try:
            os.write(self.pipe_fd, record)
        except BlockingIOError:
            return FULL
        except (BrokenPipeError, OSError):
            return GONE
        return _SENT

    def wait_writable(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for room in the inbox; False on timeout (or a gone reader)."""
        poller = select.poll()
        poller.register(self.pipe_fd, select.POLLOUT)
        events = poller.poll(max(int(timeout * 1000.0 + 0.999), 0))
        return bool(events) and not events[0][1] & (select.POLLERR | select.POLLHUP)

    def drain(self) -> bool:
        """Read the wake bytes the reader sent; False if it hung up (closed or died)."""
        while True:
            try:
                data = self.conn.recv(256, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not data:
                return False

    def close(self) -> None:
        """Close the connection and the inbox's write end, unmap the hold block (idempotent)."""
        if self.pipe_fd >= 0:
            os.close(self.pipe_fd)
            self.pipe_fd = -1
        self.conn.close()
        if self.holds is not None:
            self.holds.close()

    def __repr__(self) -> str:
        return f"Link(reader {self.reader_id.hex()[:8]}, pid {self.pid}, index {self.index})"


class Registry:
    """The writer's registration socket; ``accept`` turns waiting hellos into ``Link``s."""

    _sock: socket.socket | None = None
    _bound = False

    def __init__(
        self,
        path: str,
        *,
        key: bytes,
        slot_count: int,
        writer_uid: int,
        group: int | None,
        sequence_fd: int = -1,
        mode: int = 0o600,
    ) -> None:
        self.path = path
        self._key = key
        self._sequence_fd = sequence_fd
        self._slot_count = slot_count
        self._writer_uid = writer_uid
        self._group = group
        self._pending: list[tuple[socket.socket, float]] = []
        sock = socket.socket(
            socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
        )
        try:
            try:
                sock.bind(path)
            except OSError as exc:
                code = errno.EEXIST if exc.errno == errno.EADDRINUSE else exc.errno
                raise RegistryError(
                    code, f"cannot make the registration socket {path}: {exc.strerror}"
                ) from None
            self._bound = True
            if group is not None:
                os.chown(path, -1, group, follow_symlinks=False)
                os.chmod(path, mode | stat.S_IRGRP | stat.S_IWGRP)
            else:
                os.chmod(path, mode)
            sock.listen(_BACKLOG)
        except BaseException:
            sock.close()
            if self._bound:
                os.unlink(path)
            raise
        self._sock = sock

    def fileno(self) -> int:
        return self._sock.fileno() if self._sock is not None else -1

    @property
    def pending(self) -> int:
        """Connections accepted whose hello has not arrived yet."""
        return len(self._pending)

    def accept(self) -> list[Link | Refusal]:
        """Every registration that arrived by now (never blocks)."""
        sock = self._sock
        if sock is None:
            return []
        while True:
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # EMFILE and the like: try again later
                log.warning("cannot accept a registration on %s: %s", self.path, exc)
                break
            conn.setblocking(False)
            self._pending.append((conn, time.monotonic()))
        out: list[Link | Refusal] = []
        still: list[tuple[socket.socket, float]] = []
        now = time.monotonic()
        for conn, since in self._pending:
            got = self._hello(conn)
            if got is None:
                if now - since < _HELLO_WAIT:
                    still.append((conn, since))
                else:
                    conn.close()
            else:
                out.append(got)
        self._pending = still
        return out

    def _hello(self, conn: socket.socket) -> Link | Refusal | None:
        """The registration on ``conn`` (None while its hello has not arrived)."""
        try:
            pid, uid, _gid = peer_credentials(conn)
        except OSError:
            conn.close()
            return Refusal(0, -1, "the connection went away")
        try:
            msg, fds, flags, _ = socket.recv_fds(conn, wire.HELLO.size + 1, 4, socket.MSG_CMSG_CLOEXEC)
        except BlockingIOError:
            return None
        except OSError as exc:
            conn.close()
            return Refusal(pid, uid, f"the registration failed: {exc}")
        try:
            return self._check(conn, pid, uid, msg, fds, flags)
        except (wire.WireError, HoldBlockError, OSError) as exc:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            conn.close()
            return Refusal(pid, uid, str(exc))

    def _check(self, conn: socket.socket, pid: int, uid: int, msg: bytes, fds: list[int], flags: int) -> Link:
        if not msg:
            raise wire.WireError("the reader hung up before it said hello")
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            raise wire.WireError("the hello or its descriptors were cut short")
        hello = wire.decode_hello(msg)
        if hello.key != self._key:
            raise wire.WireError("the registration key does not match the pool's")
        if uid != self._writer_uid and self._group is None and uid != 0:
            raise wire.WireError(f"uid {uid} is not this pool's user and the pool has no group")
        if hello.slot_count != self._slot_count:
            raise wire.WireError(
                f"the reader expects {hello.slot_count} slots, the pool has {self._slot_count}"
            )
        want = 2 if hello.reliable else 1
        if len(fds) != want:
            raise wire.WireError(f"a hello carries {want} descriptor(s), this one {len(fds)}")
        if not stat.S_ISFIFO(os.fstat(fds[0]).st_mode):
            raise wire.WireError("the inbox is not a pipe")
        os.set_blocking(fds[0], False)
        holds = HoldBlock.adopt(fds[1], self._slot_count) if hello.reliable else None
        if self._sequence_fd >= 0:  # the accepted reader gets the sequence numbers' sealed copy
            try:
                conn.sendmsg(
                    [wire.WELCOME],
                    [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [self._sequence_fd]))],
                    socket.MSG_DONTWAIT,
                )
            except OSError:  # it went away meanwhile: its inbox will say so
                pass
        return Link(hello.reader_id, pid, uid, hello, conn, fds[0], holds)

    def close(self) -> None:
        """Stop listening and remove the socket's name (idempotent)."""
        sock, self._sock = self._sock, None
        for conn, _ in self._pending:
            conn.close()
        self._pending = []
        if sock is not None:
            sock.close()
            if self._bound:
                self._bound = False
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
