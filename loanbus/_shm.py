"""One POSIX shared-memory segment: create exclusively, attach, map, close, unlink.

Learned from CPython's ``multiprocessing.shared_memory``: class-level defaults make
``close()`` safe after a half-failed ``__init__``, ``close()`` detaches and ``unlink()``
destroys, and only the creator unlinks. Unlike it, nothing here registers with the
multiprocessing resource tracker, so an attaching process can never unlink a segment.

A mapping is never closed under a live numpy view: ``mmap.close()`` refuses while buffers
are exported, and we then leave the mapping to be unmapped when the last view dies.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import stat
import struct

import posix_ipc

SHM_DIR = "/dev/shm"
THP_SHMEM_SETTING = "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
MOUNTS = "/proc/self/mounts"
# struct flock on Linux x86-64: l_type, l_whence, l_start, l_len, l_pid, padding.
_FLOCK = "hhqqi4x"


class SegmentError(OSError):
    """A segment could not be created or opened; errno and the name say why."""


def _shm_path(name: str) -> str:
    return os.path.join(SHM_DIR, name.lstrip("/"))


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
    _extra: list[mmap.mmap]
    _creator: bool = False
    _unlinked: bool = False

    def __init__(self, name: str, fd: int, size: int, *, writable: bool, creator: bool) -> None:
        self._extra = []
        self.name = name
        self._fd = fd
        self.size = size
        self.writable = writable
        self._creator = creator
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        self._mapping = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=prot)

    @classmethod
    def create(cls, name: str, size: int, *, mode: int = 0o600, group: int | None = None) -> Segment:
        """Create ``name`` exclusively (never adopt an existing file or symlink) and size it."""
        if size <= 0:
            raise ValueError(f"segment size must be positive, not {size}")
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
                os.fchmod(fd, mode | stat.S_IRGRP | stat.S_IWGRP)
            else:
                os.fchmod(fd, mode)
            os.ftruncate(fd, size)
            return cls(name, fd, size, writable=True, creator=True)
        except BaseException:
            os.close(fd)
            shm.unlink()
            raise

    @classmethod
    def attach(cls, name: str) -> Segment:
        """Open an existing segment and map it read-only, sized by ``fstat``."""
        try:
            shm = posix_ipc.SharedMemory(name, flags=0, read_only=False)
        except posix_ipc.ExistentialError as exc:
            raise SegmentError(errno.ENOENT, f"no such segment: {name}") from exc
        except posix_ipc.PermissionsError as exc:
            raise SegmentError(errno.EACCES, f"no permission to open segment {name}") from exc
        except OSError as exc:  # ELOOP for a symlink (shm_open never follows one), EMFILE, ...
            raise SegmentError(exc.errno, f"cannot open segment {name}: {exc.strerror}") from exc
        except ValueError as exc:  # a name shm_open refuses ("/a/b", "", too long)
            raise SegmentError(errno.EINVAL, f"invalid segment name {name!r}") from exc
        fd = shm.fd
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

    def map_writable(self, offset: int, length: int) -> mmap.mmap:
        """A second, writable mapping of one page-aligned window (a reader's own hold row)."""
        if offset % mmap.PAGESIZE or offset + length > self.size:
            raise ValueError(f"window {offset}+{length} is not page-aligned or outside the segment")
        window = mmap.mmap(
            self._fd,
            length,
            flags=mmap.MAP_SHARED,
            prot=mmap.PROT_READ | mmap.PROT_WRITE,
            offset=offset,
        )
        self._extra.append(window)
        return window

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
        extra, self._extra = self._extra, []
        for window in extra:
            _close_mapping(window)
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
        fd = os.open(_shm_path(name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
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


class Semaphore:
    """A named POSIX semaphore: the writer's wake-up when readers return slots."""

    _sem: posix_ipc.Semaphore | None = None
    _creator: bool = False

    def __init__(self, name: str, *, create: bool, mode: int = 0o600, group: int | None = None) -> None:
        self.name = name
        try:
            if create:
                self._sem = posix_ipc.Semaphore(name, flags=posix_ipc.O_CREX, mode=mode, initial_value=0)
                if group is not None:  # the semaphore is a file in /dev/shm: give it the group too
                    path = os.path.join(SHM_DIR, "sem." + name.lstrip("/"))
                    os.chown(path, -1, group, follow_symlinks=False)
                    os.chmod(path, mode | stat.S_IRGRP | stat.S_IWGRP, follow_symlinks=False)
            else:
                self._sem = posix_ipc.Semaphore(name, flags=0)
        except posix_ipc.ExistentialError as exc:
            what = "already exists" if create else "does not exist"
            raise SegmentError(errno.EEXIST if create else errno.ENOENT, f"semaphore {name} {what}") from exc
        except posix_ipc.PermissionsError as exc:
            raise SegmentError(errno.EACCES, f"no permission for semaphore {name}") from exc
        except OSError as exc:  # ELOOP for a symlink at the name, EMFILE, ...
            raise SegmentError(exc.errno, f"cannot open semaphore {name}: {exc.strerror}") from exc
        except ValueError as exc:
            raise SegmentError(errno.EINVAL, f"invalid semaphore name {name!r}") from exc
        self._creator = create

    def post(self) -> None:
        if self._sem is not None:
            self._sem.release()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True if posted."""
        if self._sem is None:
            return False
        try:
            self._sem.acquire(max(timeout, 0.0))
        except posix_ipc.BusyError:
            return False
        return True

    def close(self) -> None:
        sem, self._sem = self._sem, None
        if sem is None:
            return
        sem.close()
        if self._creator:
            unlink_semaphore(self.name)


def unlink_semaphore(name: str) -> bool:
    try:
        posix_ipc.unlink_semaphore(name)
    except posix_ipc.ExistentialError:
        return False
    return True
