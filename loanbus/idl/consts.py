"""Constant expressions: evaluation with C semantics and conversion to a declared type.

Integer arithmetic is exact and must stay within what IDL's 64-bit constants can hold;
division truncates toward zero and ``%`` takes the sign of the dividend, as in C.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from loanbus.idl import ast
from loanbus.idl.errors import IdlError, Pos
from loanbus.idl.model import (
    INTEGER_KINDS,
    EnumDef,
    Primitive,
    String,
    Type,
    integer_range,
)

_MIN, _MAX = -(1 << 63), (1 << 64) - 1


@dataclass(frozen=True)
class EnumValue:
    """An enumerator used as a constant value."""

    enum: EnumDef
    name: str
    value: int


Value = int | float | str | bool | EnumValue
Lookup = Callable[[ast.NameRef], Value]


def _kind(value: Value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a floating-point number"
    if isinstance(value, EnumValue):
        return f"an enumerator of {value.enum.fqn}"
    return "a character" if len(value) == 1 else "a string"


def _int_op(op: str, a: int, b: int, pos: Pos) -> int:
    if op in ("/", "%") and b == 0:
        raise IdlError(pos, "division by zero in constant expression")
    if op in ("<<", ">>") and not 0 <= b < 64:
        raise IdlError(pos, f"shift count {b} is outside 0..63")
    if op == "/":
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b >= 0) else -q
    if op == "%":
        return a - b * _int_op("/", a, b, pos)
    ops: dict[str, Callable[[int, int], int]] = {
        "+": lambda x, y: x + y,
        "-": lambda x, y: x - y,
        "*": lambda x, y: x * y,
        "<<": lambda x, y: x << y,
        ">>": lambda x, y: x >> y,
        "&": lambda x, y: x & y,
        "|": lambda x, y: x | y,
        "^": lambda x, y: x ^ y,
    }
    return ops[op](a, b)


def evaluate(expr: ast.Expr, lookup: Lookup) -> Value:
    """The value of a constant expression; raises IdlError at the offending operand."""
    if isinstance(expr, ast.Literal):
        return expr.value
    if isinstance(expr, ast.NameRef):
        return lookup(expr)
    if isinstance(expr, ast.Unary):
        value = evaluate(expr.operand, lookup)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise IdlError(expr.pos, f"unary {expr.op} needs a number, not {_kind(value)}")
        if expr.op == "~":
            if not isinstance(value, int):
                raise IdlError(expr.pos, "~ needs an integer")
            return _checked(~value, expr.pos)
        return _checked(-value if expr.op == "-" else value, expr.pos)
    left = _number(evaluate(expr.left, lookup), expr.left.pos, expr.op)
    right = _number(evaluate(expr.right, lookup), expr.right.pos, expr.op)
    if isinstance(left, int) and isinstance(right, int):
        return _checked(_int_op(expr.op, left, right, expr.right.pos), expr.pos)
    if expr.op not in "+-*/":
        raise IdlError(expr.pos, f"operator {expr.op} needs integers")
    a, b = float(left), float(right)
    if expr.op == "/" and b == 0.0:
        raise IdlError(expr.right.pos, "division by zero in constant expression")
    return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else 0.0}[expr.op]


def _number(value: Value, pos: Pos, op: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise IdlError(pos, f"operator {op} needs numbers, not {_kind(value)}")
    return value


def _checked(value: int | float, pos: Pos) -> int | float:
    if isinstance(value, int) and not _MIN <= value <= _MAX:
        raise IdlError(pos, "integer overflow in constant expression")
    return value


def positive_int(expr: ast.Expr, lookup: Lookup, what: str) -> int:
    """An array size or bound: an integer of at least 1."""
    value = evaluate(expr, lookup)
    if isinstance(value, bool) or not isinstance(value, int):
        raise IdlError(expr.pos, f"{what} must be an integer, not {_kind(value)}")
    if value < 1:
        raise IdlError(expr.pos, f"{what} must be positive, not {value}")
    return value


def convert(value: Value, target: Type, pos: Pos) -> int | float | str | bool:
    """``value`` as a constant of type ``target``; raises IdlError when it does not fit."""
    if isinstance(target, EnumDef):
        if isinstance(value, EnumValue) and value.enum is target:
            return value.value
        raise IdlError(pos, f"expected an enumerator of {target.fqn}, not {_kind(value)}")
    if isinstance(target, String):
        if not isinstance(value, str):
            raise IdlError(pos, f"expected a string, not {_kind(value)}")
        if target.bound is not None and len(value.encode()) > target.bound:
            raise IdlError(pos, f"string of {len(value.encode())} bytes exceeds {target}")
        return value
    if not isinstance(target, Primitive):
        raise IdlError(pos, f"constants of type {target} are not supported")
    kind = target.kind
    if kind == "boolean":
        if not isinstance(value, bool):
            raise IdlError(pos, f"expected TRUE or FALSE, not {_kind(value)}")
        return value
    if kind == "char":
        if not isinstance(value, str) or len(value) != 1 or ord(value) > 255:
            raise IdlError(pos, f"expected a character, not {_kind(value)}")
        return value
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise IdlError(pos, f"expected a number, not {_kind(value)}")
        return float(value)
    assert kind in INTEGER_KINDS
    if isinstance(value, bool) or not isinstance(value, int):
        raise IdlError(pos, f"expected an integer, not {_kind(value)}")
    low, high = integer_range(kind)
    if not low <= value <= high:
        raise IdlError(pos, f"{value} does not fit in {kind} ({low}..{high})")
    return value
