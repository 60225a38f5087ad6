"""The generated C header lays every type out exactly as the generated numpy dtype does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import loanbus.idl
from loanbus.idl.checker import check
from loanbus.idl.dtypes import struct_dtype
from loanbus.idl.gen_python import generated_names

from .ctools import GOOD, INCLUDE_DIRS, SHIPPED, c_layout, needs_cc

ALL = SHIPPED + GOOD


@needs_cc
@pytest.mark.parametrize("idl", ALL, ids=[p.name for p in ALL])
def test_c_compiler_agrees_with_numpy_on_every_size_and_offset(idl: Path, tmp_path: Path) -> None:
    spec = check(str(idl), INCLUDE_DIRS)
    module = loanbus.idl.load(idl, INCLUDE_DIRS)
    assert any(s.fixed for s in spec.structs)
    c_layout(spec, module, tmp_path, idl.name)


@pytest.mark.parametrize("idl", ALL, ids=[p.name for p in ALL])
def test_generated_dtype_source_matches_the_checked_layout(idl: Path) -> None:
    spec = check(str(idl), INCLUDE_DIRS)
    module = loanbus.idl.load(idl, INCLUDE_DIRS)
    names = generated_names(spec)
    for s in spec.structs:
        if s.fixed:
            cls = getattr(module, names[id(s)])
            assert cls.dtype == struct_dtype(s)
            assert cls.dtype.itemsize == s.size


@needs_cc
def test_a_wrong_offset_in_the_dtype_fails_the_comparison(tmp_path: Path) -> None:
    idl = tmp_path / "t.idl"
    idl.write_text("@transfer_mode(SHMEM_REF) struct T { octet a; double b; };")
    spec = check(str(idl))
    module = loanbus.idl.load(idl)
    # What a packed (wrong) layout would say: b right after a.
    module.T.dtype = np.dtype({"names": ["a", "b"], "formats": ["u1", "<f8"], "offsets": [0, 1]})
    with pytest.raises(AssertionError, match=r"T\|b: numpy \(offset, size\) \(1, 8\) != C \(8, 8\)"):
        c_layout(spec, module, tmp_path)
