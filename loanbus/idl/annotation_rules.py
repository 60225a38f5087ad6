"""Which annotations loanbus accepts where, and what they mean.

Accepted: ``@transfer_mode(SHMEM_REF | INBAND)``, ``@final``, ``@appendable``, ``@mutable``,
``@extensibility(...)``, ``@nested`` and ``@topic`` on structs; ``@key`` on members;
``@value(N)`` on enumerators; ``@unit`` and ``@verbatim`` anywhere (documentation only).
Everything else is refused with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loanbus.idl import ast
from loanbus.idl.errors import IdlError, Pos

_EXTENSIBILITY = {"final", "appendable", "mutable"}
_DOC_ONLY = {"unit", "verbatim"}
_WHERE = {
    "transfer_mode": "structs",
    "final": "structs",
    "appendable": "structs",
    "mutable": "structs",
    "extensibility": "structs",
    "nested": "structs",
    "topic": "structs",
    "key": "struct members",
    "value": "enumerators",
}
_REFUSED = {
    "optional": "@optional is not supported: every member of a loanable sample is always there",
    "external": "@external is not supported: a sample cannot point outside itself",
    "bit_bound": "@bit_bound is not supported: enums are 32-bit",
    "id": "@id is not supported: member ids matter only to @mutable encodings",
    "hashid": "@hashid is not supported: member ids matter only to @mutable encodings",
    "autoid": "@autoid is not supported: member ids matter only to @mutable encodings",
    "default": "@default is not supported: samples start zeroed",
    "range": "@range is not supported: loanbus does not check values",
    "min": "@min is not supported: loanbus does not check values",
    "max": "@max is not supported: loanbus does not check values",
    "must_understand": "@must_understand is not supported",
    "default_literal": "@default_literal is not supported: samples start zeroed",
    "position": "@position is not supported: bitsets are not supported",
}


@dataclass
class StructAnnotations:
    transfer_mode: str | None = None
    extensibility: str | None = None
    positions: dict[str, Pos] = field(default_factory=dict)


def _name(a: ast.Annotation) -> str:
    return a.name.parts[-1]


def _refuse_unknown(a: ast.Annotation, where: str) -> None:
    name = _name(a)
    if name in _DOC_ONLY:
        return
    if name in _REFUSED:
        raise IdlError(a.pos, _REFUSED[name])
    if name in _WHERE:
        raise IdlError(a.pos, f"@{name} applies to {_WHERE[name]}, not to {where}")
    raise IdlError(a.pos, f"unknown annotation @{name}")


def _single_word(a: ast.Annotation, allowed: set[str]) -> str:
    """The one identifier argument of ``@name(WORD)``, checked against ``allowed``."""
    choices = " or ".join(sorted(w.upper() for w in allowed))
    if len(a.args) == 1 and a.args[0][0] is None:
        expr = a.args[0][1]
        if isinstance(expr, ast.NameRef) and len(expr.name.parts) == 1:
            word = expr.name.parts[0]
            if word.lower() in allowed:
                return word.lower()
            raise IdlError(expr.pos, f"@{_name(a)} takes {choices}, not {word}")
    raise IdlError(a.pos, f"@{_name(a)} takes one argument: {choices}")


def _no_args(a: ast.Annotation) -> None:
    if a.args:
        raise IdlError(a.pos, f"@{_name(a)} takes no arguments")


def for_struct(annotations: tuple[ast.Annotation, ...]) -> StructAnnotations:
    result = StructAnnotations()
    for a in annotations:
        name = _name(a)
        if name == "transfer_mode":
            if result.transfer_mode is not None:
                raise IdlError(a.pos, "@transfer_mode given twice")
            result.transfer_mode = _single_word(a, {"shmem_ref", "inband"}).upper()
        elif name in _EXTENSIBILITY or name == "extensibility":
            if name == "extensibility":
                kind = _single_word(a, _EXTENSIBILITY)
            else:
                _no_args(a)
                kind = name
            if result.extensibility is not None and result.extensibility != kind:
                raise IdlError(a.pos, f"conflicting extensibility: @{result.extensibility} and @{kind}")
            result.extensibility = kind
        elif name == "nested":
            _no_args(a)
        elif name == "topic":
            pass  # @topic(name=..., platform=...) is documentation for loanbus
        else:
            _refuse_unknown(a, "structs")
            continue
        result.positions.setdefault(name if name != "extensibility" else result.extensibility or "", a.pos)
    return result


def member_is_key(annotations: tuple[ast.Annotation, ...]) -> bool:
    key = False
    for a in annotations:
        if _name(a) != "key":
            _refuse_unknown(a, "struct members")
        elif not a.args:
            key = True
        else:
            arg = a.args[0][1]
            if len(a.args) != 1 or not isinstance(arg, ast.Literal) or not isinstance(arg.value, bool):
                raise IdlError(a.pos, "@key takes no argument, or TRUE or FALSE")
            key = arg.value
    return key


def enumerator_value(annotations: tuple[ast.Annotation, ...]) -> ast.Expr | None:
    value: ast.Expr | None = None
    for a in annotations:
        if _name(a) == "value":
            if len(a.args) != 1 or a.args[0][0] is not None:
                raise IdlError(a.pos, "@value takes one integer argument")
            value = a.args[0][1]
        else:
            _refuse_unknown(a, "enumerators")
    return value


def refuse_all(annotations: tuple[ast.Annotation, ...], where: str) -> None:
    """For declarations that take no annotation (modules, enums, typedefs, consts)."""
    for a in annotations:
        _refuse_unknown(a, where)
