"""Names in generated code: Python class names, C identifiers.

A Python class takes the IDL local name; when two declarations in one compilation share it
(``a::Point`` and ``b::Point``), both take their scoped name joined with ``_``. C names are
always the scoped name joined with ``_``, as Cyclone DDS's own C generator does.
"""

from __future__ import annotations

import keyword
from collections import Counter
from collections.abc import Callable, Iterable

from loanbus.idl.model import EnumDef, Named, StructDef
from loanbus.idl.runtime import python_name

C_KEYWORDS = frozenset(
    [
        "auto",
        "break",
        "case",
        "char",
        "const",
        "continue",
        "default",
        "do",
        "double",
        "else",
        "enum",
        "extern",
        "float",
        "for",
        "goto",
        "if",
        "inline",
        "int",
        "long",
        "register",
        "restrict",
        "return",
        "short",
        "signed",
        "sizeof",
        "static",
        "struct",
        "switch",
        "typedef",
        "union",
        "unsigned",
        "void",
        "volatile",
        "while",
        "bool",
        "true",
        "false",
        "alignas",
        "alignof",
        "static_assert",
        "thread_local",
        "_Bool",
        "_Complex",
        "_Imaginary",
        "_Alignas",
        "_Alignof",
        "_Atomic",
        "_Generic",
        "_Noreturn",
        "_Static_assert",
        "_Thread_local",
    ]
)
#: Names the generated Python module uses for its own imports.
_PY_TAKEN = frozenset(
    [
        "_enum",
        "_Sequence",
        "_dataclass",
        "_Annotated",
        "_Any",
        "_ClassVar",
        "_Final",
        "_np",
        "_IdlEnum",
        "_IdlStruct",
        "_annotate",
        "_types",
        "_rt",
        "_ShmemType",
        "LOANABLE",
    ]
)


def c_name(named: Named) -> str:
    """The C identifier of a declaration: ``sensors::Point`` -> ``sensors_Point``."""
    return "_".join((*named.scope, named.name))


def c_member(name: str) -> str:
    """A struct member or enumerator in C (C keywords get a trailing ``_``)."""
    return name + "_" if name in C_KEYWORDS else name


def python_names(decls: Iterable[Named]) -> dict[int, str]:
    """``id(decl) -> Python name`` for every declaration, unique within one module."""
    decls = list(decls)
    counts = Counter(d.name for d in decls)
    taken: set[str] = set(_PY_TAKEN)
    result: dict[int, str] = {}
    for d in decls:
        name = d.name if counts[d.name] == 1 else "_".join((*d.scope, d.name))
        result[id(d)] = unique(name, taken)
    return result


def unique(name: str, taken: set[str]) -> str:
    """``name`` (a keyword gets ``_``), with more ``_`` until no other name has it."""
    if keyword.iskeyword(name):
        name += "_"
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def _rename_all(names: list[str], rename: Callable[[str], str]) -> dict[str, str]:
    """Rename where needed; a renamed member never takes a name another member has."""
    taken = {n for n in names if rename(n) == n}
    result = {}
    for n in names:
        new = rename(n)
        if new != n:
            while new in taken:
                new += "_"
            taken.add(new)
        result[n] = new
    return result


def python_members(struct: StructDef) -> dict[str, str]:
    """IDL member name -> Python attribute (keywords and loanbus's own names get ``_``)."""
    return _rename_all([f.name for f in struct.fields], python_name)


def c_members(struct: StructDef) -> dict[str, str]:
    """IDL member name -> C member (C keywords get ``_``)."""
    return _rename_all([f.name for f in struct.fields], c_member)


def enum_members(enum: EnumDef) -> dict[str, str]:
    """IDL enumerator -> Python enum member (keywords get ``_``)."""
    return _rename_all([n for n, _ in enum.enumerators], lambda n: n + "_" if keyword.iskeyword(n) else n)
