"""Checked IDL types and their C layout: what the code generators work from.

Layout follows the C ABI of x86-64 and AArch64 (System V / AAPCS64): every primitive is
aligned to its size, a struct to its most aligned member, and its size is rounded up to
that alignment. Bounded strings and sequences are stored inline:

* ``string<N>``      ``struct { uint32_t len; char data[N + 1]; }`` (always NUL-terminated)
* ``sequence<T, N>`` ``struct { uint32_t len; T data[N]; }``

so a sample has one fixed size and can be shared by reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loanbus.idl.errors import Pos

#: primitive kind -> (size in bytes, numpy format, C type)
PRIMITIVES: dict[str, tuple[int, str, str]] = {
    "boolean": (1, "?", "bool"),
    "char": (1, "u1", "char"),
    "octet": (1, "u1", "uint8_t"),
    "int8": (1, "i1", "int8_t"),
    "uint8": (1, "u1", "uint8_t"),
    "int16": (2, "<i2", "int16_t"),
    "uint16": (2, "<u2", "uint16_t"),
    "int32": (4, "<i4", "int32_t"),
    "uint32": (4, "<u4", "uint32_t"),
    "int64": (8, "<i8", "int64_t"),
    "uint64": (8, "<u8", "uint64_t"),
    "float": (4, "<f4", "float"),
    "double": (8, "<f8", "double"),
}
INTEGER_KINDS = frozenset(["octet", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"])
#: The length word of inline strings and sequences.
LENGTH_SIZE = 4


def integer_range(kind: str) -> tuple[int, int]:
    """The values an integer primitive can hold."""
    bits = PRIMITIVES[kind][0] * 8
    if kind in ("octet", "char") or kind.startswith("u"):
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


@dataclass(frozen=True)
class Primitive:
    kind: str

    def __str__(self) -> str:
        return self.kind


@dataclass(frozen=True)
class String:
    bound: int | None

    def __str__(self) -> str:
        return "string" if self.bound is None else f"string<{self.bound}>"


@dataclass(frozen=True)
class Sequence:
    element: Type
    bound: int | None

    def __str__(self) -> str:
        tail = "" if self.bound is None else f", {self.bound}"
        return f"sequence<{self.element}{tail}>"


@dataclass(frozen=True)
class Array:
    """A fixed multi-dimensional array; ``element`` is never itself an Array."""

    element: Type
    dims: tuple[int, ...]

    def __str__(self) -> str:
        return f"{self.element}" + "".join(f"[{d}]" for d in self.dims)


@dataclass(eq=False)
class Named:
    """Something declared with a name in a module scope."""

    scope: tuple[str, ...]
    name: str
    pos: Pos

    @property
    def fqn(self) -> str:
        """The fully qualified IDL name, ``a::b::Name``."""
        return "::".join((*self.scope, self.name))

    def __str__(self) -> str:
        return self.fqn


@dataclass(eq=False)
class EnumDef(Named):
    enumerators: list[tuple[str, int]] = field(default_factory=list)
    enumerator_pos: dict[str, Pos] = field(default_factory=dict)


@dataclass(eq=False)
class Field:
    name: str
    type: Type
    pos: Pos
    key: bool = False
    offset: int = 0


@dataclass(eq=False)
class StructDef(Named):
    fields: list[Field] = field(default_factory=list)
    defined: bool = False
    loanable: bool = False
    extensibility: str | None = None
    annotation_pos: dict[str, Pos] = field(default_factory=dict)
    size: int = 0
    align: int = 1
    #: False when a member is unbounded: such a struct exists only as a by-value type.
    fixed: bool = True


Type = Primitive | String | Sequence | Array | EnumDef | StructDef


@dataclass(eq=False)
class ConstDef(Named):
    type: Type = field(default_factory=lambda: Primitive("int32"))
    value: int | float | str | bool = 0


@dataclass(eq=False)
class TypedefDef(Named):
    type: Type = field(default_factory=lambda: Primitive("int32"))


@dataclass
class Spec:
    """A checked IDL file and everything it includes, in declaration order."""

    path: str
    structs: list[StructDef] = field(default_factory=list)
    enums: list[EnumDef] = field(default_factory=list)
    consts: list[ConstDef] = field(default_factory=list)
    typedefs: list[TypedefDef] = field(default_factory=list)
    #: The text of every file read (the checked one and its includes), by the name in ``Pos``.
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def loanable(self) -> list[StructDef]:
        return [s for s in self.structs if s.loanable]


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def is_fixed(t: Type) -> bool:
    """True when ``t`` has one size (no unbounded string or sequence anywhere inside)."""
    if isinstance(t, String):
        return t.bound is not None
    if isinstance(t, Sequence):
        return t.bound is not None and is_fixed(t.element)
    if isinstance(t, Array):
        return is_fixed(t.element)
    if isinstance(t, StructDef):
        return t.fixed
    return True


def size_align(t: Type) -> tuple[int, int]:
    """C ``sizeof`` and ``_Alignof`` of a fixed type (structs must be laid out already)."""
    if isinstance(t, Primitive):
        size = PRIMITIVES[t.kind][0]
        return size, size
    if isinstance(t, EnumDef):
        return 4, 4
    if isinstance(t, StructDef):
        return t.size, t.align
    if isinstance(t, Array):
        size, align = size_align(t.element)
        for d in t.dims:
            size *= d
        return size, align
    if isinstance(t, String):
        assert t.bound is not None
        return round_up(LENGTH_SIZE + t.bound + 1, LENGTH_SIZE), LENGTH_SIZE
    assert t.bound is not None
    elem_size, elem_align = size_align(t.element)
    align = max(LENGTH_SIZE, elem_align)
    return round_up(data_offset(t) + t.bound * elem_size, align), align


def largest_member(struct: StructDef) -> Pos:
    """Where the biggest member of a laid-out ``struct`` is declared (what makes it big)."""
    if not struct.fields:
        return struct.pos
    return max(struct.fields, key=lambda f: size_align(f.type)[0]).pos


def data_offset(t: String | Sequence) -> int:
    """Where ``data`` starts after the length word of an inline string or sequence."""
    if isinstance(t, String):
        return LENGTH_SIZE
    return round_up(LENGTH_SIZE, size_align(t.element)[1])


def lay_out(struct: StructDef) -> None:
    """Give every field its C offset and the struct its size and alignment."""
    offset, align = 0, 1
    for f in struct.fields:
        size, a = size_align(f.type)
        f.offset = round_up(offset, a)
        offset = f.offset + size
        align = max(align, a)
    struct.size, struct.align = round_up(offset, align), align


def contained_structs(t: Type) -> list[StructDef]:
    """The structs a member of type ``t`` needs laid out first."""
    if isinstance(t, StructDef):
        return [t]
    if isinstance(t, (Sequence, Array)):
        return contained_structs(t.element)
    return []
