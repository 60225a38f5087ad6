"""Shared by the IDL tests: where the IDL files are, and how to check a layout with ``cc``."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from loanbus.idl import gen_c
from loanbus.idl.model import Array, Sequence, Spec, String, StructDef, Type
from loanbus.idl.names import c_members, c_name

HERE = Path(__file__).parent
REPO = HERE.parents[1]
CORPUS = HERE / "corpus"
GOOD = sorted((CORPUS / "good").glob("*.idl"))
BAD = sorted((CORPUS / "bad").glob("*.idl"))
SHIPPED = sorted((REPO / "idl").glob("*.idl"))
INCLUDE_DIRS = [CORPUS / "good" / "sysinc"]
CFLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"]

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc)")

Row = tuple[str, int, int]  # C member path, offset, size


def layout_rows(t: Type, dtype: np.dtype[Any], path: str, offset: int) -> Iterator[Row]:
    """Every member under ``path`` with the offset and size the numpy dtype gives it."""
    if isinstance(t, StructDef):
        names = c_members(t)
        assert dtype.fields is not None and list(dtype.names or ()) == [f.name for f in t.fields]
        for f in t.fields:
            field_dtype, field_offset = dtype.fields[f.name][:2]
            sub = f"{path}.{names[f.name]}".lstrip(".")
            yield sub, offset + field_offset, field_dtype.itemsize
            yield from layout_rows(f.type, field_dtype, sub, offset + field_offset)
    elif isinstance(t, Array):
        assert dtype.subdtype is not None, f"{path}: expected a subarray dtype"
        base, shape = dtype.subdtype
        assert shape == t.dims, f"{path}: shape {shape} != {t.dims}"
        yield from layout_rows(t.element, base, path + "[0]" * len(shape), offset)
    elif isinstance(t, (String, Sequence)):
        assert dtype.fields is not None and dtype.names == ("len", "data"), path
        data_dtype, data_offset = dtype.fields["data"][:2]
        yield f"{path}.len", offset, dtype.fields["len"][0].itemsize
        yield f"{path}.data", offset + data_offset, data_dtype.itemsize
        if isinstance(t, Sequence):
            assert data_dtype.subdtype is not None
            base, shape = data_dtype.subdtype
            assert shape == (t.bound,)
            yield from layout_rows(t.element, base, f"{path}.data[0]", offset + data_offset)


def expected_layout(spec: Spec, module: ModuleType) -> dict[str, tuple[int, int]]:
    """``"Struct|member.path" -> (offset, size)`` from the generated Python dtypes."""
    from loanbus.idl.gen_python import generated_names

    py_names = generated_names(spec)
    out: dict[str, tuple[int, int]] = {}
    for s in spec.structs:
        if not s.fixed:
            continue
        dtype = getattr(module, py_names[id(s)]).dtype
        name = c_name(s)
        out[f"{name}|"] = (0, dtype.itemsize)
        for path, offset, size in layout_rows(s, dtype, "", 0):
            out[f"{name}|{path}"] = (offset, size)
    return out


def layout_program(header: str, keys: list[str]) -> str:
    """A C program that prints ``key offset size`` for every key, as ``cc`` lays it out."""
    lines = [f'#include "{header}"', "#include <stdio.h>", "", "int main(void) {"]
    for key in keys:
        struct, path = key.split("|")
        if path:
            where = f"offsetof({struct}, {path}), sizeof((({struct} *)0)->{path})"
        else:
            where = f"(size_t)0, sizeof({struct})"
        lines.append(f'    printf("%s %zu %zu\\n", "{key}", {where});')
    lines += ["    return 0;", "}", ""]
    return "\n".join(lines)


def cc(workdir: Path, source: str, *extra: str) -> Path:
    """Compile ``source`` in ``workdir`` (warnings are errors); returns the executable."""
    c_file = workdir / "program.c"
    c_file.write_text(source)
    exe = workdir / "program"
    result = subprocess.run(
        ["cc", *CFLAGS, *extra, "-o", str(exe), str(c_file)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"cc failed:\n{result.stderr}"
    return exe


def c_layout(spec: Spec, module: ModuleType, workdir: Path, source: str = "test.idl") -> None:
    """Compile the generated header with ``cc`` and compare every size and offset with the
    numpy dtypes of ``module``; a difference fails with the list of differences."""
    header = workdir / "types.h"
    header.write_text(gen_c.generate(spec, source, "TEST_TYPES_H"))
    # The header's own _Static_asserts (C against the checker's numbers) must hold.
    check = subprocess.run(
        ["cc", *CFLAGS, "-fsyntax-only", "-x", "c", str(header)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert check.returncode == 0, f"header does not compile:\n{check.stderr}"
    expected = expected_layout(spec, module)
    program = layout_program(header.name, list(expected))
    exe = cc(workdir, program, "-DLOANBUS_NO_LAYOUT_ASSERTS", f"-I{workdir}")
    output = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    actual = {}
    for line in output.splitlines():
        key, offset, size = line.split()
        actual[key] = (int(offset), int(size))
    differences = [
        f"{key}: numpy (offset, size) {expected[key]} != C {actual.get(key)}"
        for key in expected
        if actual.get(key) != expected[key]
    ]
    assert not differences, "\n".join(differences)
