"""The loanbus IDL compiler: OMG IDL with ``@transfer_mode(SHMEM_REF)`` to loanable types.

``load("file.idl")`` returns the generated Python module in-process; ``loanbus idlc``
writes it (and C headers and examples) to disk. See docs/idl.md.

Importing this package is cheap: the parser (lark) loads on first use, and cyclonedds only
when generated code runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from loanbus.idl.errors import IdlError, Pos


def load(path: str | Path, include_dirs: Sequence[str | Path] = ()) -> ModuleType:
    """Compile ``path`` and return the generated module without writing files.

    Its attributes are the generated classes (``m.PointCloud``), enums and constants;
    ``m.LOANABLE`` lists the SHMEM_REF types. Raises :class:`IdlError`.
    """
    from loanbus.idl.compiler import load_module

    return load_module(str(path), include_dirs)


__all__ = ["IdlError", "Pos", "load"]
