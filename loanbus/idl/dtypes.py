"""The numpy dtype of a checked struct, built directly from the model.

Generated Python spells the same dtype out as source text; the C generator uses this one to
print type hashes, and the tests check that the two agree.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from loanbus.idl.model import (
    PRIMITIVES,
    Array,
    EnumDef,
    Primitive,
    String,
    StructDef,
    Type,
    data_offset,
    size_align,
)


def _struct(names: list[str], formats: list[Any], offsets: list[int], size: int) -> np.dtype[Any]:
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": size})


def dtype_of(t: Type) -> Any:
    """A numpy format for ``t``: a dtype, or ``(dtype, shape)`` for an array."""
    if isinstance(t, Primitive):
        return np.dtype(PRIMITIVES[t.kind][1])
    if isinstance(t, EnumDef):
        return np.dtype("<i4")
    if isinstance(t, StructDef):
        return struct_dtype(t)
    if isinstance(t, Array):
        return (dtype_of(t.element), t.dims)
    assert t.bound is not None
    data = ("u1", (t.bound + 1,)) if isinstance(t, String) else (dtype_of(t.element), (t.bound,))
    return _struct(["len", "data"], ["<u4", data], [0, data_offset(t)], size_align(t)[0])


def struct_dtype(s: StructDef) -> np.dtype[Any]:
    """The dtype of a fixed struct: C offsets, explicit little-endian fields."""
    return _struct(
        [f.name for f in s.fields], [dtype_of(f.type) for f in s.fields],
        [f.offset for f in s.fields], s.size,
    )  # fmt: skip
