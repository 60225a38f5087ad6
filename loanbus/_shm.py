"""One POSIX shared-memory segment: create exclusively, reserve, attach read-only, close, unlink.

Learned from CPython's ``multiprocessing.shared_memory``: class-level defaults make
``close()`` safe after a half-failed ``__init__``, ``close()`` detaches and ``unlink()``
destroys, and only the creator unlinks. Unlike it, nothing here registers with the
multiprocessing resource tracker, so an attaching process can never unlink a segment.

A creator reserves the segment's memory at once (a full /dev/shm is an error then, not a
SIGBUS later). An attaching process opens the segment read-only: it cannot truncate it.
Names are checked before any system call sees them.

A mapping is never closed under a live numpy view: ``mmap.close()`` refuses while buffers
are exported, and we then leave the mapping to be unmapped when the last view dies.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import re
import stat
import struct

import posix_ipc

SHM_DIR = "/dev/shm"
THP_SHMEM_SETTING = "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
MOUNTS = "/proc/self/mounts"
# struct flock on Linux x86-64: l_type, l_whence, l_start, l_len, l_pid, padding.
_FLOCK = "hhqqi4x"
NAME_MAX = 255
# What loanbus ever names a segment: one leading slash, then letters, digits, '.', '_', '-'.
_NAME = re.compile(rf"/[A-Za-z0-9._-]{{1,{NAME_MAX - 1}}}")
# MADV_POPULATE_WRITE (Linux 5.14): fault every page in now, and fail instead of SIGBUS.
_MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)


class SegmentError(OSError):
    """A segment could not be created or opened; errno and the name say why."""


def check_name(name: object) -> str:
    """``name`` if it is a segment name loanbus could have made; ``SegmentError`` (EINVAL) if not.

    A name from a DDS advert must never reach ``shm_open`` unchecked: a NUL byte, a second
    ``/`` or an over-long name make C libraries misbehave (posix_ipc crashes on a NUL byte).
    """
    if not isinstance(name, str) or _NAME.fullmatch(name) is None or name in ("/.", "/.."):
        raise SegmentError(errno.EINVAL, f"invalid segment name {name!r}")
    return name


def _shm_path(name: str) -> str:
    return os.path.join(SHM_DIR, name.lstrip("/"))


def shm_free_bytes() -> int:
    """Bytes this user can still allocate in /dev/shm (0 if it cannot be asked)."""
    try:
        st = os.statvfs(SHM_DIR)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


def _reserve(fd: int, mapping: mmap.mmap, size: int, *, populate: bool) -> None:
    """Allocate every page of the segment now, so that running out of space is an error here.

    ``posix_fallocate`` reserves tmpfs pages without a mapping. Where huge pages were granted
    through the mapping (``MADV_HUGEPAGE``), the pages are faulted in through it instead
    (``MADV_POPULATE_WRITE``), which is what gives them huge pages; where the kernel lacks
    that advice, ``posix_fallocate`` reserves them as normal pages.
    """
    try:
        if populate:
            try:
                mapping.madvise(_MADV_POPULATE_WRITE)
                return
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.ENOSYS):
                    raise
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.ENOMEM, errno.EFAULT, errno.EFBIG):
            raise SegmentError(
                errno.ENOSPC,
                f"{SHM_DIR} has no room for {size:,} bytes ({shm_free_bytes():,} bytes free): free "
                f"space there, make the pool smaller (Qos max_samples or pool_slots), or enlarge "
                f"{SHM_DIR} (mount -o remount,size=... {SHM_DIR})",
            ) from exc
        raise


def _close_mapping(mapping: mmap.mmap) -> None:
    try:
        mapping.close()
    except BufferError:
        # Live numpy views still point into it; the kernel unmaps when the last one dies.
        pass


class Segment:
    """A named shared-memory segment mapped into this process."""

    _fd: int = -1
    _mapping: mmap.mmap | None = None
    _creator: bool = False
    _unlinked: bool = False
    huge_pages_refused: str | None = "not asked for"

    def __init__(self, name: str, fd: int, size: int, *, writable: bool, creator: bool) -> None:
        self.name = name
        self._fd = fd
        self.size = size
        self.writable = writable
        self._creator = creator
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        try:
            self._mapping = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=prot)
        except (OSError, OverflowError, ValueError) as exc:  # ENOMEM: no address space for it
            code = getattr(exc, "errno", None) or errno.ENOMEM
            raise SegmentError(code, f"cannot map segment {name} ({size:,} bytes): {exc}") from None

    @classmethod
    def create(
        cls,
        name: str,
        size: int,
        *,
        mode: int = 0o600,
        group: int | None = None,
        huge_pages: bool = False,
    ) -> Segment:
        """Create ``name`` exclusively (never adopt an existing file or symlink), size it and
        reserve its memory. With ``group`` the group may read it (never write: readers don't).

        ``huge_pages=True`` asks for transparent huge pages before the memory is reserved;
        ``huge_pages_refused`` says why not, or is None when they were granted.
        """
        if size <= 0:
            raise ValueError(f"segment size must be positive, not {size}")
        check_name(name)
        free = shm_free_bytes()
        if 0 < free < size:
            raise SegmentError(
                errno.ENOSPC,
                f"{SHM_DIR} has no room for {size:,} bytes ({free:,} bytes free): free space there, "
                f"make the pool smaller (Qos max_samples or pool_slots), or enlarge {SHM_DIR}",
            )
        try:
            shm = posix_ipc.SharedMemory(name, flags=posix_ipc.O_CREX, mode=mode, size=0)
        except posix_ipc.ExistentialError as exc:
            raise SegmentError(errno.EEXIST, f"segment already exists: {name}") from exc
        except posix_ipc.PermissionsError as exc:
            raise SegmentError(errno.EACCES, f"cannot create segment {name}: {exc}") from exc
        fd = shm.fd
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack(_FLOCK, fcntl.F_WRLCK, 0, 0, 0, 0))
            if group is not None:
                os.fchown(fd, -1, group)
                os.fchmod(fd, mode | stat.S_IRGRP)
            else:
                os.fchmod(fd, mode)
            os.ftruncate(fd, size)
            seg = cls(name, fd, size, writable=True, creator=True)
        except BaseException:
            os.close(fd)
            shm.unlink()
            raise
        try:
            seg.huge_pages_refused = advise_huge_pages(seg.mapping) if huge_pages else "not asked for"
            _reserve(fd, seg.mapping, size, populate=seg.huge_pages_refused is None)
        except BaseException:
            seg.close()
            seg.unlink()
            raise
        return seg

    @classmethod
    def attach(cls, name: str) -> Segment:
        """Open an existing segment read-only (so this process cannot truncate it) and map it,
        sized by ``fstat``. The name is checked first."""
        check_name(name)
        try:
            # What shm_open does, plus O_NONBLOCK: a FIFO planted at the name must not block us.
            fd = os.open(_shm_path(name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise SegmentError(errno.ENOENT, f"no such segment: {name}") from exc
        except PermissionError as exc:
            raise SegmentError(errno.EACCES, f"no permission to open segment {name}") from exc
        except OSError as exc:  # ELOOP for a symlink, ENXIO, EMFILE, ...
            raise SegmentError(exc.errno, f"cannot open segment {name}: {exc.strerror}") from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size <= 0:
                raise SegmentError(errno.EINVAL, f"segment {name} is empty or not a regular file")
            return cls(name, fd, info.st_size, writable=False, creator=False)
        except BaseException:
            os.close(fd)
            raise

    @property
    def mapping(self) -> mmap.mmap:
        if self._mapping is None:
            raise ValueError(f"segment {self.name} is closed")
        return self._mapping

    @property
    def fd(self) -> int:
        return self._fd

    def current_size(self) -> int:
        """The size the kernel reports now (a peer may have truncated the segment).

        ``lseek(SEEK_END)`` answers like ``fstat`` but without building a stat result: it runs
        on every take. The descriptor's offset is not used for anything else."""
        return os.lseek(self._fd, 0, os.SEEK_END)

    def owner_uid(self) -> int:
        return os.fstat(self._fd).st_uid

    def owner_gid(self) -> int:
        return os.fstat(self._fd).st_gid

    def lock_exclusive(self) -> None:
        """Hold a lock the kernel drops when this process dies (writer liveness).

        An open-file-description lock (``F_OFD_SETLK``): unlike a classic POSIX record lock it
        is not dropped when this process closes some *other* descriptor of the same file (a
        reader of our own pool in the same process), and it does not depend on pids, so pid
        reuse and pid namespaces cannot fool it.
        """
        fcntl.fcntl(self._fd, fcntl.F_OFD_SETLK, struct.pack(_FLOCK, fcntl.F_WRLCK, 0, 0, 0, 0))

    def close(self) -> None:
        """Detach from the segment (idempotent). Live views keep their pages mapped."""
        mapping, self._mapping = self._mapping, None
        if mapping is not None:
            _close_mapping(mapping)
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def unlink(self) -> None:
        """Remove the name (creator only; idempotent). Mappings stay valid until closed."""
        if not self._creator or self._unlinked:
            return
        self._unlinked = True
        unlink_segment(self.name)


def _tmpfs_huge_option(mounts: str) -> str:
    """The ``huge=`` option of the tmpfs mounted at SHM_DIR ("never" when it has none)."""
    try:
        with open(mounts) as f:
            lines = f.read().splitlines()
    except OSError:
        return "never"
    option = "never"
    for line in lines:  # the last mount at SHM_DIR is the one in effect
        fields = line.split()
        if len(fields) >= 4 and fields[1] == SHM_DIR:
            opts = dict(o.partition("=")[::2] for o in fields[3].split(","))
            option = opts.get("huge", "never")
    return option


def advise_huge_pages(mapping: mmap.mmap) -> str | None:
    """Ask for transparent huge pages on a shared mapping; None if granted, else why not.

    POSIX shared memory lives in the tmpfs at /dev/shm. Its ``huge=`` mount option decides:
    ``always``/``within_size`` use huge pages anyway, ``advise`` only for mappings marked
    with ``MADV_HUGEPAGE`` (done here), ``never`` (the default) never. The kernel-wide
    shmem setting can override it for testing (``force``) or forbid it (``deny``).
    """
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if advice is None:
        return "this platform has no MADV_HUGEPAGE"
    try:
        with open(THP_SHMEM_SETTING) as f:
            setting = f.read()
    except OSError:
        return f"the kernel has no transparent huge pages for shared memory ({THP_SHMEM_SETTING} is missing)"
    chosen = setting[setting.find("[") + 1 : setting.find("]")] if "[" in setting else setting.strip()
    if chosen == "deny":
        return f"the kernel forbids huge pages for shared memory ({THP_SHMEM_SETTING} is 'deny')"
    huge = _tmpfs_huge_option(MOUNTS)
    if chosen != "force" and huge not in ("always", "within_size", "advise"):
        return (
            f"{SHM_DIR} is mounted with huge={huge}; remount it with huge=advise "
            f"(mount -o remount,huge=advise {SHM_DIR}) to allow huge pages"
        )
    try:
        mapping.madvise(advice)
    except OSError as exc:
        return f"madvise(MADV_HUGEPAGE) failed: {exc.strerror}"
    return None


def huge_page_bytes(mapping: mmap.mmap) -> int:
    """Bytes of ``mapping`` this process maps with huge pages now (``/proc/self/smaps``)."""
    import numpy as np

    start = int(np.frombuffer(mapping, dtype=np.uint8, count=1).ctypes.data)
    end = start + len(mapping)
    total = 0
    inside = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(" ", 1)[0]
            if "-" in head and ":" not in head:  # a mapping's first line: "lo-hi perms ..."
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo < end and hi > start
            elif inside and line.startswith(("ShmemPmdMapped:", "FilePmdMapped:")):
                total += int(line.split()[1]) * 1024
    return total


def unlink_segment(name: str) -> bool:
    """Remove a segment by name; False if it was already gone."""
    try:
        posix_ipc.unlink_shared_memory(name)
    except posix_ipc.ExistentialError:
        return False
    return True


def writer_alive_by_lock(name: str) -> bool | None:
    """True if some process holds the segment's liveness lock, False if none does, None if unknown."""
    try:
        fd = open_regular(_shm_path(name))
    except OSError:
        return None
    try:
        # F_OFD_GETLK asks without taking the lock: l_type F_WRLCK, whole file.
        query = struct.pack(_FLOCK, fcntl.F_WRLCK, 0, 0, 0, 0)
        answer = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, query)
        return bool(struct.unpack(_FLOCK, answer)[0] != fcntl.F_UNLCK)
    except OSError:
        return None
    finally:
        os.close(fd)


def open_regular(path: str) -> int:
    """Open ``path`` read-only if it is a regular file; never block on a FIFO, never follow a link.

    Anyone can create files in /dev/shm: a FIFO there would block a plain ``open`` for ever.
    Raises ``OSError`` (ELOOP, ENXIO, EINVAL for anything but a regular file, ...).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, f"{path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


_SEAL_FUTURE_WRITE = getattr(fcntl, "F_SEAL_FUTURE_WRITE", 0x0010)  # Linux 5.1
_SIZE_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW


class SealedWords:
    """64-bit words in a memfd that nobody can shrink, grow or write but its creator.

    The creator maps it writable, then seals it: no process (the creator included) can change
    its size, and no other mapping or ``write()`` can change its contents. A process it hands
    the descriptor to maps it read-only and can read it without ever faulting (docs/shm-layout.md:
    a writer's copy of its slots' sequence numbers).
    """

    _mapping: mmap.mmap | None = None
    _fd: int = -1

    def __init__(self, fd: int, count: int, *, writable: bool) -> None:
        self._fd = fd
        size = max(count * 8, 8)
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        self._mapping = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=prot)
        self.words = memoryview(self._mapping).cast("Q")[:count]

    @classmethod
    def create(cls, count: int, name: str = "loanbus-seqs") -> SealedWords:
        fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, -(-max(count * 8, 8) // mmap.PAGESIZE) * mmap.PAGESIZE)
            words = cls(fd, count, writable=True)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SIZE_SEALS | _SEAL_FUTURE_WRITE | fcntl.F_SEAL_SEAL)
        except BaseException:
            os.close(fd)
            raise
        return words

    @classmethod
    def adopt(cls, fd: int, count: int) -> SealedWords:
        """Map a received descriptor read-only, after checking its seals and size; takes ``fd``."""
        try:
            info = os.fstat(fd)
            try:
                seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
            except OSError:
                seals = 0
            if not stat.S_ISREG(info.st_mode) or seals & _SIZE_SEALS != _SIZE_SEALS:
                raise SegmentError(errno.EPERM, "the descriptor is not a memfd sealed against shrinking")
            if info.st_size < count * 8:
                raise SegmentError(errno.EINVAL, f"{info.st_size} bytes hold no {count} words")
            return cls(fd, count, writable=False)
        except BaseException:
            os.close(fd)
            raise

    @property
    def fd(self) -> int:
        return self._fd

    def close(self) -> None:
        """Unmap and close (idempotent); views of ``words`` must be released first."""
        words = self.__dict__.pop("words", None)
        if words is not None:
            words.release()
        mapping, self._mapping = self._mapping, None
        if mapping is not None:
            try:
                mapping.close()
            except BufferError:  # a view is still alive: unmapped when it dies
                pass
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
