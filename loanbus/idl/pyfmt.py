"""A tiny expression printer so generated Python fits ruff's line length without ruff.

Expressions are built as :class:`Call` / :class:`Items` trees of strings; :func:`render`
puts one on a line when it fits and otherwise breaks it black-style: one argument per line,
a trailing comma, the closing bracket back at the statement's indentation.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 100


@dataclass(frozen=True)
class Call:
    """``func(args)``, or ``func[args]`` when ``brackets`` is ``"[]"``."""

    func: str
    args: tuple[Expr, ...]
    brackets: str = "()"


@dataclass(frozen=True)
class Items:
    """A list ``[...]``, tuple ``(...,)`` or dict ``{...}`` (dict items are ``Pair``)."""

    items: tuple[Expr, ...]
    brackets: str = "[]"


@dataclass(frozen=True)
class Pair:
    key: str
    value: Expr


Expr = str | Call | Items | Pair


def flat(expr: Expr) -> str:
    """The expression on one line."""
    if isinstance(expr, str):
        return expr
    if isinstance(expr, Pair):
        return f"{expr.key}: {flat(expr.value)}"
    if isinstance(expr, Call):
        return expr.func + expr.brackets[0] + ", ".join(flat(a) for a in expr.args) + expr.brackets[1]
    inner = ", ".join(flat(i) for i in expr.items)
    if expr.brackets == "()" and len(expr.items) == 1:
        inner += ","
    return expr.brackets[0] + inner + expr.brackets[1]


def render(expr: Expr, indent: int, prefix: str = "", suffix: str = "") -> str:
    """``prefix + expr + suffix`` at ``indent`` spaces, broken over lines if it is too long."""
    pad = " " * indent
    one = pad + prefix + flat(expr) + suffix
    if len(one) <= WIDTH or isinstance(expr, str):
        return one
    if isinstance(expr, Pair):
        return render(expr.value, indent, prefix + f"{expr.key}: ", suffix)
    if isinstance(expr, Call):
        head, children, close = expr.func + expr.brackets[0], expr.args, expr.brackets[1]
    else:
        head, children, close = expr.brackets[0], expr.items, expr.brackets[1]
    lines = [pad + prefix + head]
    lines += [render(child, indent + 4, suffix=",") for child in children]
    lines.append(pad + close + suffix)
    return "\n".join(lines)
