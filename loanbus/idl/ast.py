"""The IDL syntax tree: what the parser read, names not yet resolved, nothing computed.

Every node carries the :class:`~loanbus.idl.errors.Pos` of the word that names it, so the
checker can point at the exact place it refuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loanbus.idl.errors import Pos

# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Literal:
    """An integer, floating, character, string or boolean literal."""

    value: int | float | str | bool
    pos: Pos


@dataclass(frozen=True)
class NameRef:
    """A scoped name used as a value (a const or an enumerator)."""

    name: ScopedName
    pos: Pos


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Expr
    pos: Pos


@dataclass(frozen=True)
class Binary:
    op: str
    left: Expr
    right: Expr
    pos: Pos


Expr = Literal | NameRef | Unary | Binary

# ---------------------------------------------------------------- types


@dataclass(frozen=True)
class ScopedName:
    """``a::b::C`` (``absolute`` when written ``::a::b::C``)."""

    parts: tuple[str, ...]
    absolute: bool
    pos: Pos

    def __str__(self) -> str:
        return ("::" if self.absolute else "") + "::".join(self.parts)


@dataclass(frozen=True)
class PrimitiveType:
    """One of the IDL primitives, by its canonical name (``int32``, ``uint64``, ``double``...)."""

    kind: str
    pos: Pos


@dataclass(frozen=True)
class StringType:
    bound: Expr | None
    pos: Pos


@dataclass(frozen=True)
class SequenceType:
    element: TypeSpec
    bound: Expr | None
    pos: Pos


@dataclass(frozen=True)
class NamedType:
    name: ScopedName
    pos: Pos


@dataclass(frozen=True)
class UnsupportedType:
    """A type the grammar knows only to refuse it (``long double``)."""

    what: str
    pos: Pos


TypeSpec = PrimitiveType | StringType | SequenceType | NamedType | UnsupportedType

# ---------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Annotation:
    """``@name`` or ``@name(args)``; named arguments have a name, positional ones None."""

    name: ScopedName
    args: tuple[tuple[str | None, Expr], ...]
    pos: Pos


@dataclass(frozen=True)
class Declarator:
    """A declared name and its fixed array dimensions (``pixels[1080][1920]``)."""

    name: str
    dims: tuple[Expr, ...]
    pos: Pos


@dataclass(frozen=True)
class Member:
    annotations: tuple[Annotation, ...]
    type: TypeSpec
    declarators: tuple[Declarator, ...]
    pos: Pos


@dataclass(frozen=True)
class Struct:
    annotations: tuple[Annotation, ...]
    name: str
    base: ScopedName | None
    members: tuple[Member, ...]
    pos: Pos


@dataclass(frozen=True)
class StructForward:
    annotations: tuple[Annotation, ...]
    name: str
    pos: Pos


@dataclass(frozen=True)
class Enumerator:
    annotations: tuple[Annotation, ...]
    name: str
    pos: Pos


@dataclass(frozen=True)
class Enum:
    annotations: tuple[Annotation, ...]
    name: str
    enumerators: tuple[Enumerator, ...]
    pos: Pos


@dataclass(frozen=True)
class Typedef:
    annotations: tuple[Annotation, ...]
    type: TypeSpec
    declarators: tuple[Declarator, ...]
    pos: Pos


@dataclass(frozen=True)
class Const:
    annotations: tuple[Annotation, ...]
    type: TypeSpec
    name: str
    value: Expr
    pos: Pos


@dataclass(frozen=True)
class Include:
    """``#include "file"`` (``system`` for ``<file>``, which skips the including directory)."""

    path: str
    system: bool
    pos: Pos


@dataclass(frozen=True)
class Module:
    annotations: tuple[Annotation, ...]
    name: str
    definitions: tuple[Definition, ...]
    pos: Pos


Definition = Module | Struct | StructForward | Enum | Typedef | Const | Include


@dataclass(frozen=True)
class File:
    """One parsed IDL file."""

    path: str
    definitions: tuple[Definition, ...] = field(default=())
