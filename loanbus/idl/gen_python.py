"""Checked model to one Python module: enums, constants, and for each struct a view class
(numpy dtype with C offsets, members as fields) and its by-value cyclonedds twin.

The module imports numpy, cyclonedds and ``loanbus.idl.runtime``; it passes ``ruff`` and
``mypy --strict`` as generated.
"""

from __future__ import annotations

import re

from loanbus.idl.model import (
    PRIMITIVES,
    Array,
    ConstDef,
    EnumDef,
    Primitive,
    Sequence,
    Spec,
    String,
    StructDef,
    Type,
    data_offset,
    size_align,
)
from loanbus.idl.names import enum_members, python_members, python_names, unique
from loanbus.idl.pyfmt import Call, Expr, Items, Pair, render

_TWIN_PRIMITIVE = {
    "boolean": ("bool", "bool"),
    "char": ("_types.char", "str"),
    "octet": ("_types.byte", "int"),
    "float": ("_types.float32", "float"),
    "double": ("_types.float64", "float"),
}
_CODEC = {"boolean": "BOOLEAN", "char": "CHAR", "octet": "OCTET", "uint8": "UINT8"}
_CODEC.update(float="FLOAT", double="FLOAT")


def isort_key(name: str) -> tuple[int, list[tuple[int, str]]]:
    """ruff's ``__all__`` order: CONSTANTS, then Classes, then the rest, each in natural order."""
    group = 0 if len(name) > 1 and name.isupper() else 1 if name[0].isupper() else 2
    parts = re.split(r"(\d+)", name)
    return group, [(int(p), "") if p.isdigit() else (-1, p) for p in parts if p]


def _noqa(attr: str) -> str:
    """IDL allows member names that pycodestyle calls ambiguous (E741)."""
    return "  # noqa: E741" if attr in ("l", "O", "I") else ""


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tuple(values: tuple[int, ...]) -> Expr:
    return Items(tuple(str(v) for v in values), "()")


class _Generator:
    def __init__(self, spec: Spec, source: str) -> None:
        self.spec = spec
        self.source = source
        decls = [*spec.enums, *spec.structs, *spec.consts]
        decls += [t for t in spec.typedefs if isinstance(t.type, (StructDef, EnumDef))]
        self.names = python_names(decls)
        taken = set(self.names.values())
        self.twins = {id(d): unique(self.names[id(d)] + "ByValue", taken) for d in decls}
        self.out: list[str] = []

    def name(self, d: object) -> str:
        return self.names[id(d)]

    def twin(self, d: object) -> str:
        return self.twins[id(d)]

    # ------------------------------------------------------------ type expressions

    def dtype(self, t: Type) -> Expr:
        if isinstance(t, Primitive):
            return _q(PRIMITIVES[t.kind][1])
        if isinstance(t, EnumDef):
            return _q("<i4")
        if isinstance(t, StructDef):
            return f"{self.name(t)}.dtype"
        if isinstance(t, Array):
            return Items((self.dtype(t.element), _tuple(t.dims)), "()")
        if isinstance(t, String):
            assert t.bound is not None
            data: Expr = Items((_q("u1"), _tuple((t.bound + 1,))), "()")
        else:
            assert t.bound is not None
            data = Items((self.dtype(t.element), _tuple((t.bound,))), "()")
        return self._struct_dtype(["len", "data"], [_q("<u4"), data], [0, data_offset(t)], size_align(t)[0])

    def _struct_dtype(self, names: list[str], formats: list[Expr], offsets: list[int], size: int) -> Expr:
        body = Items(
            (
                Pair('"names"', Items(tuple(_q(n) for n in names))),
                Pair('"formats"', Items(tuple(formats))),
                Pair('"offsets"', Items(tuple(str(o) for o in offsets))),
                Pair('"itemsize"', str(size)),
            ),
            "{}",
        )
        return Call("_np.dtype", (body,))

    def codec(self, t: Type) -> Expr:
        if isinstance(t, Primitive):
            return "_rt." + _CODEC.get(t.kind, "INT")
        if isinstance(t, EnumDef):
            return Call("_rt.EnumCodec", (self.name(t), self.twin(t)))
        if isinstance(t, StructDef):
            return Call("_rt.StructCodec", (self.name(t),))
        if isinstance(t, String):
            return Call("_rt.StringCodec", (str(t.bound),))
        if isinstance(t, Sequence):
            return Call("_rt.SequenceCodec", (self.codec(t.element), str(t.bound)))
        return Call("_rt.ArrayCodec", (self.codec(t.element), _tuple(t.dims)))

    def twin_type(self, t: Type) -> tuple[Expr, Expr]:
        """(annotation for cyclonedds, plain Python type for mypy) of a by-value member."""
        if isinstance(t, Primitive):
            if t.kind in _TWIN_PRIMITIVE:
                return _TWIN_PRIMITIVE[t.kind]
            return f"_types.{t.kind}", "int"
        if isinstance(t, (EnumDef, StructDef)):
            return self.twin(t), self.twin(t)
        if isinstance(t, String):
            if t.bound is None:
                return "str", "str"
            return Call("_Annotated", ("str", Call("_types.bounded_str", (str(t.bound),))), "[]"), "str"
        if isinstance(t, Sequence):
            ann, py = self.twin_type(t.element)
            seq_py: Expr = Call("_Sequence", (py,), "[]")
            args = (ann,) if t.bound is None else (ann, str(t.bound))
            return Call("_Annotated", (seq_py, Call("_types.sequence", args)), "[]"), seq_py
        ann, py = self.twin_type(t.element)
        as_bytes = isinstance(t.element, Primitive) and t.element.kind in ("octet", "uint8")
        for i, d in enumerate(reversed(t.dims)):
            py = "bytes" if as_bytes and i == 0 else Call("_Sequence", (py,), "[]")
            ann = Call("_Annotated", (py, Call("_types.array", (ann, str(d)))), "[]")
        return ann, py

    # ------------------------------------------------------------ declarations

    def emit(self, text: str = "") -> None:
        self.out.append(text)

    def enum(self, e: EnumDef) -> None:
        for cls, base, doc in (
            (self.name(e), "_enum.IntEnum", f"IDL enum ``{e.fqn}`` (stored as int32)."),
            (self.twin(e), f'_IdlEnum, typename="{e.fqn}"', f"By-value twin of ``{e.fqn}``."),
        ):
            self.emit()
            self.emit()
            self.emit(f"class {cls}({base}):")
            self.emit(f'    """{doc}"""')
            self.emit()
            members = enum_members(e)
            for name, value in e.enumerators:
                self.emit(f"    {members[name]} = {value}")

    def const(self, c: ConstDef) -> None:
        value = c.value
        if isinstance(c.type, EnumDef):
            label = next(n for n, v in c.type.enumerators if v == value)
            text = f"{self.name(c.type)}.{enum_members(c.type)[label]}"
        else:
            text = repr(value)
        self.emit(render(text, 0, f"{self.name(c)}: _Final = "))

    def struct_twin(self, s: StructDef) -> None:
        view, twin = self.name(s), self.twin(s)
        self.emit()
        self.emit()
        self.emit("@_dataclass")
        if s.extensibility:
            self.emit(f"@_annotate.{s.extensibility}")
        self.emit(f'class {twin}(_IdlStruct, typename="{s.fqn}"):')
        self.emit(f'    """By-value twin of ``{s.fqn}``: the plain DDS type of the same topic."""')
        self.emit()
        members = python_members(s)
        for f in s.fields:
            attr = members[f.name]
            self.emit(render(self.twin_type(f.type)[0], 4, f"{attr}: ", _noqa(attr)))
            if attr != f.name:
                self.emit(f'    _annotate.member_name("{attr}", "{f.name}")')
            if f.key:
                self.emit(f'    _annotate.key("{attr}")')
        if not s.fixed:
            return
        self.emit()
        self.emit("    @classmethod")
        self.emit(f'    def from_sample(cls, sample: _rt.NDArray) -> "{twin}":')
        self.emit(f'        """A copy of a sample (a 0-d array of ``{view}.dtype``)."""')
        self.emit(f"        return {view}(sample).to_by_value()")
        self.emit()
        self.emit("    def to_sample(self, out: _rt.NDArray) -> None:")
        self.emit('        """Write this value into a sample (a 0-d array, e.g. a loan\'s data)."""')
        self.emit(f"        {view}(out).assign(self)")

    def struct_view(self, s: StructDef) -> None:
        view, twin = self.name(s), self.twin(s)
        kind = "loanable (SHMEM_REF) struct" if s.loanable else "struct"
        self.emit()
        self.emit()
        self.emit(f"class {view}(_rt.StructView):")
        self.emit(f'    """IDL {kind} ``{s.fqn}``: {s.size} bytes, aligned to {s.align}."""')
        self.emit()
        self.emit("    __slots__ = ()")
        self.emit(f'    type_name = "{s.fqn}"')
        self.emit(render(_q(f"{s.pos.file}:{s.pos.line}"), 4, "__idl_source__ = "))
        dtype = self._struct_dtype(
            [f.name for f in s.fields], [self.dtype(f.type) for f in s.fields],
            [f.offset for f in s.fields], s.size,
        )  # fmt: skip
        self.emit(render(dtype, 4, "dtype = "))
        if s.loanable:
            shmem = Call("_ShmemType", ("type_name", "dtype", f"by_value={twin}"))
            self.emit(render(shmem, 4, "__shmem_type__: _ClassVar[_ShmemType] = "))
            self.emit("    type_hash = __shmem_type__.type_hash")
        else:
            self.emit("    type_hash = _rt.type_hash(type_name, dtype)")
        self.emit(f"    ByValue = {twin}")
        members = python_members(s)
        keys = tuple(_q(members[f.name]) for f in s.fields if f.key)
        self.emit(render(Items(keys, "()"), 4, "keys = "))
        self.emit()
        for f in s.fields:
            field = Call("_rt.Field", (_q(f.name), self.codec(f.type)))
            attr = members[f.name]
            self.emit(render(field, 4, f"{attr} = ", _noqa(attr)))
        self.emit()
        self.emit(f"    def to_by_value(self) -> {twin}:")
        self.emit('        """A copy of this sample as its by-value twin."""')
        self.emit(f"        return {twin}(**self.twin_fields())")

    def module(self) -> str:
        spec = self.spec
        public = [self.name(d) for d in (*spec.enums, *spec.consts)]
        for s in spec.structs:
            public += [self.name(s), self.twin(s)] if s.fixed else [self.twin(s)]
        public += [self.twin(e) for e in spec.enums]
        aliases = [t for t in spec.typedefs if isinstance(t.type, (StructDef, EnumDef))]
        aliases = [t for t in aliases if not isinstance(t.type, StructDef) or t.type.fixed]
        public += [self.name(t) for t in aliases] + ["LOANABLE"]
        ordered = sorted(public, key=isort_key)
        self.emit(render(Items(tuple(_q(n) for n in ordered)), 0, "__all__ = "))
        for e in spec.enums:
            self.enum(e)
        if spec.consts:
            self.emit()
            self.emit()
        for c in spec.consts:
            self.const(c)
        for s in spec.structs:
            self.struct_twin(s)
            if s.fixed:
                self.struct_view(s)
        self.emit()
        self.emit()
        for t in aliases:
            self.emit(f"{self.name(t)} = {self.name(t.type)}")
        self.emit(render(Items(tuple(self.name(s) for s in spec.loanable), "()"), 0, "LOANABLE = "))
        body = "\n".join(self.out) + "\n"
        loanable = "".join(f"\n    {s.fqn}" for s in spec.loanable) or " none"
        head = [*doc_head(self.source), "", f"Loanable (SHMEM_REF) types:{loanable}", '"""', ""]
        return "\n".join(head + used_imports(body)) + "\n" + body


def doc_head(source: str, what: str = "Generated by loanbus idlc") -> list[str]:
    """The first docstring lines: what generated the file and from which IDL file.

    A path that would make the line too long goes on a line of its own (a single word,
    which line-length checks leave alone)."""
    line = f'"""{what} from {source}. Do not edit: regenerate it.'
    if len(line) <= 100:
        return [line]
    return [f'"""{what} from', source, "Do not edit: regenerate it."]


# (section, import statement, name it binds) in the order ruff's isort wants them.
_IMPORTS = [
    (0, "import enum as _enum", "_enum"),
    (0, "from collections.abc import Sequence as _Sequence", "_Sequence"),
    (0, "from dataclasses import dataclass as _dataclass", "_dataclass"),
    (0, "from typing import Annotated as _Annotated", "_Annotated"),
    (0, "from typing import ClassVar as _ClassVar", "_ClassVar"),
    (0, "from typing import Final as _Final", "_Final"),
    (1, "import numpy as _np", "_np"),
    (1, "from cyclonedds.idl import IdlEnum as _IdlEnum", "_IdlEnum"),
    (1, "from cyclonedds.idl import IdlStruct as _IdlStruct", "_IdlStruct"),
    (1, "from cyclonedds.idl import annotations as _annotate", "_annotate"),
    (1, "from cyclonedds.idl import types as _types", "_types"),
    (1, "from loanbus.idl import runtime as _rt", "_rt"),
    (1, "from loanbus.types import ShmemType as _ShmemType", "_ShmemType"),
]


def used_imports(body: str) -> list[str]:
    """The import block for ``body``: only what it uses (ruff F401), stdlib first."""
    lines: list[str] = []
    for section in (0, 1):
        block = [
            stmt for sec, stmt, name in _IMPORTS if sec == section and re.search(rf"(?<![\w.]){name}\b", body)
        ]
        if block:
            lines += [*block, ""]
    return lines


def generate(spec: Spec, source: str) -> str:
    """The Python module for ``spec``; ``source`` is the IDL path named in its header."""
    return _Generator(spec, source).module()


def generated_names(spec: Spec) -> dict[int, str]:
    """``id(declaration) -> name`` in the generated module (for code that imports it)."""
    return dict(_Generator(spec, "").names)
