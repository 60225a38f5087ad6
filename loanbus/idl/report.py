"""What ``loanbus idlc`` says about a checked file besides errors: which structs are loanable,
and which one's pool will not fit in /dev/shm on this machine.

Pure: the free space of /dev/shm is an argument (``shm_free_bytes`` reads it).
"""

from __future__ import annotations

import os

from loanbus._layout import Layout
from loanbus.idl.errors import IdlWarning, Pos, source_line
from loanbus.idl.model import Spec, largest_member
from loanbus.qos import Qos

SHM_DIR = "/dev/shm"


def size_text(n: int) -> str:
    """``6.2 MB``-style sizes in binary units: ``1.0 MiB``, ``8.0 GiB``."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):,.1f} {unit}"
    return f"{n} bytes"


def summary(spec: Spec) -> list[str]:
    """One line per kind of struct: loanable, not loanable, by value only."""
    loanable = [f"{s.fqn} ({size_text(s.size)} a sample)" for s in spec.loanable]
    plain = [s.fqn for s in spec.structs if not s.loanable and s.fixed]
    by_value = [s.fqn for s in spec.structs if not s.fixed]
    lines = []
    if loanable:
        lines.append("loanable (@transfer_mode(SHMEM_REF)): " + ", ".join(loanable))
    else:
        lines.append("no loanable struct: put @transfer_mode(SHMEM_REF) before a struct to loan its samples")
    if plain:
        lines.append("not loanable (no @transfer_mode(SHMEM_REF); fine as member types): " + ", ".join(plain))
    if by_value:
        lines.append("by value only (an unbounded string or sequence): " + ", ".join(by_value))
    return lines


def _with_line(spec: Spec, pos: Pos) -> str | None:
    text = spec.sources.get(pos.file)
    return source_line(pos, text) if text is not None else None


def pool_bytes(sample_size: int, qos: Qos | None = None) -> int:
    """The size of a writer's pool segment for samples of ``sample_size`` bytes."""
    qos = qos or Qos()
    return Layout.compute(qos.slot_count, qos.reader_rows, sample_size).segment_size


def pool_warnings(spec: Spec, free_bytes: int) -> list[IdlWarning]:
    """A warning for each loanable struct whose default pool (``max_samples + 1`` slots) needs
    more than ``free_bytes``, the free space of /dev/shm."""
    qos = Qos()
    warnings = []
    for struct in spec.loanable:
        needed = pool_bytes(struct.size, qos)
        if needed > free_bytes:
            pos = largest_member(struct)
            message = (
                f"a pool of max_samples + 1 = {qos.slot_count} samples of {struct.fqn} needs "
                f"{size_text(needed)}, more than the {size_text(free_bytes)} free in {SHM_DIR} on this "
                "machine: make the sample smaller, or give /dev/shm more room (a container: --shm-size)"
            )
            warnings.append(IdlWarning(pos, message, _with_line(spec, pos)))
    return warnings


def shm_free_bytes() -> int | None:
    """Bytes an unprivileged process may still allocate in /dev/shm (None: no /dev/shm)."""
    try:
        st = os.statvfs(SHM_DIR)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize
