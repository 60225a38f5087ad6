"""Text to syntax tree: lark's LALR parser over ``grammar.lark`` and a Transformer to the AST.

Syntax errors become :class:`IdlError` with the position of the offending token and a
message that names what was expected. Words that start constructs loanbus refuses (unions,
interfaces, ``any``...) are refused as soon as they are lexed, with the reason.
"""

from __future__ import annotations

import functools
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.tree import Meta

from loanbus.idl import ast
from loanbus.idl.errors import IdlError, Pos

_GRAMMAR = Path(__file__).with_name("grammar.lark")

#: Words that start IDL constructs loanbus does not accept, and why.
UNSUPPORTED_WORDS: dict[str, str] = {
    "union": "unions are not supported: a loanable sample has one fixed layout; "
    "use a struct and an enum that says which members are valid",
    "valuetype": "valuetypes are not supported: loanbus types are plain structs",
    "eventtype": "eventtypes are not supported: loanbus types are plain structs",
    "ValueBase": "valuetypes are not supported: loanbus types are plain structs",
    "interface": "interfaces are not supported: loanbus moves data, not remote calls",
    "exception": "exceptions are not supported: loanbus moves data, not remote calls",
    "Object": "object references are not supported: a sample cannot point outside itself",
    "any": "the any type is not supported: a loanable sample needs a fixed layout",
    "wchar": "wchar is not supported: use char (strings are UTF-8) or octet",
    "wstring": "wstring is not supported: use string<N> (UTF-8)",
    "fixed": "fixed-point decimals are not supported: use an integer count of a unit",
    "map": "maps are not supported: use a bounded sequence of key/value structs",
    "bitset": "bitsets are not supported: use an unsigned integer and constants",
    "bitmask": "bitmasks are not supported: use an unsigned integer and constants",
    "native": "native types are not supported: every member needs an IDL type",
}

#: IDL keywords that the grammar does not use but that cannot name anything either.
RESERVED_WORDS = frozenset(
    [
        "abstract",
        "attribute",
        "case",
        "context",
        "custom",
        "default",
        "factory",
        "import",
        "in",
        "inout",
        "local",
        "oneway",
        "out",
        "private",
        "public",
        "raises",
        "readonly",
        "supports",
        "switch",
        "truncatable",
        "typeid",
        "typeprefix",
    ]
)

_TERMINAL_NAMES = {
    "IDENT": "a name",
    "INTEGER": "an integer",
    "FLOATING": "a floating-point number",
    "CHARACTER": "a character literal",
    "STRING_LIT": "a string literal",
    "DIRECTIVE": "a # directive",
    "$END": "end of file",
}
_TYPE_WORDS = frozenset(
    [
        "SHORT",
        "LONG",
        "UNSIGNED",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "FLOAT",
        "DOUBLE",
        "CHAR",
        "OCTET",
        "BOOLEAN",
        "STRING",
        "SEQUENCE",
        "GLOBAL",
    ]
)
_PRIMITIVES = {
    "short": "int16",
    "long": "int32",
    "long long": "int64",
    "unsigned short": "uint16",
    "unsigned long": "uint32",
    "unsigned long long": "uint64",
}


def _check_ident(token: Token) -> Token:
    """Lexer callback: refuse a word the moment it is read, with the reason.

    A leading ``_`` escapes an identifier (IDL 4.2, 7.2.3.1): ``_sequence`` names a member
    ``sequence``; the underscore is dropped and the word is not checked.
    """
    word = str(token)
    if word.startswith("_") and len(word) > 1:
        return Token.new_borrow_pos(token.type, word[1:], token)
    if word in UNSUPPORTED_WORDS:
        raise IdlError(_pos_of(token), UNSUPPORTED_WORDS[word])
    if word in RESERVED_WORDS:
        raise IdlError(_pos_of(token), f"'{word}' is a reserved word in IDL")
    return token


@functools.lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark(
        _GRAMMAR.read_text(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
        lexer_callbacks={"IDENT": _check_ident},
    )


# The file being parsed, for the positions that the lexer callback and transformer make.
_FILE: ContextVar[str] = ContextVar("loanbus_idl_file", default="<idl>")


def _pos_of(item: Token | Meta) -> Pos:
    return Pos(_FILE.get(), item.line or 0, item.column or 0)


def _expr_pos(expr: ast.Expr) -> Pos:
    return expr.pos


class _Builder(Transformer[Token, Any]):
    """Parse tree to AST. Each method returns an AST node (or a piece of one)."""

    # -- names and annotations
    @v_args(meta=True)
    def scoped_name(self, meta: Meta, children: list[Token]) -> ast.ScopedName:
        absolute = bool(children) and children[0].type == "GLOBAL"
        parts = tuple(str(t) for t in children if t.type == "IDENT")
        return ast.ScopedName(parts, absolute, _pos_of(meta))

    def annotations(self, children: list[ast.Annotation]) -> tuple[ast.Annotation, ...]:
        return tuple(children)

    @v_args(meta=True)
    def annotation(self, meta: Meta, children: list[Any]) -> ast.Annotation:
        name = children[0]
        args = children[1] if len(children) > 1 and children[1] is not None else ()
        return ast.Annotation(name, tuple(args), _pos_of(meta))

    def annotation_args(self, children: list[Any]) -> tuple[tuple[str | None, ast.Expr], ...]:
        return tuple(c for c in children if c is not None)

    def annotation_arg(self, children: list[ast.Expr]) -> tuple[str | None, ast.Expr]:
        return (None, children[0])

    def named_arg(self, children: list[Any]) -> tuple[str | None, ast.Expr]:
        return (str(children[0]), children[1])

    # -- types
    @v_args(meta=True)
    def prim_type(self, meta: Meta, children: list[Token]) -> ast.PrimitiveType:
        words = " ".join(str(t) for t in children)
        return ast.PrimitiveType(_PRIMITIVES.get(words, words), _pos_of(meta))

    @v_args(meta=True)
    def long_double(self, meta: Meta, children: list[Any]) -> ast.UnsupportedType:
        return ast.UnsupportedType("long double", _pos_of(meta))

    @v_args(meta=True)
    def string_type(self, meta: Meta, children: list[Any]) -> ast.StringType:
        return ast.StringType(children[0] if children else None, _pos_of(meta))

    @v_args(meta=True)
    def sequence_type(self, meta: Meta, children: list[Any]) -> ast.SequenceType:
        bound = children[1] if len(children) > 1 else None
        return ast.SequenceType(_type(children[0]), bound, _pos_of(meta))

    # -- declarations
    def declarator(self, children: list[Any]) -> ast.Declarator:
        name: Token = children[0]
        return ast.Declarator(str(name), tuple(children[1:]), _pos_of(name))

    def array_dim(self, children: list[ast.Expr]) -> ast.Expr:
        return children[0]

    def member(self, children: list[Any]) -> ast.Member:
        annotations, type_spec, *declarators = children
        return ast.Member(annotations, _type(type_spec), tuple(declarators), _type_pos(type_spec))

    def struct_base(self, children: list[Any]) -> ast.ScopedName | None:
        return children[0] if children else None

    def struct_dcl(self, children: list[Any]) -> ast.Struct:
        annotations, name, base, *members = children
        return ast.Struct(annotations, str(name), base, tuple(members), _pos_of(name))

    def struct_fwd(self, children: list[Any]) -> ast.StructForward:
        annotations, name = children
        return ast.StructForward(annotations, str(name), _pos_of(name))

    def enumerator(self, children: list[Any]) -> ast.Enumerator:
        annotations, name = children
        return ast.Enumerator(annotations, str(name), _pos_of(name))

    def enum_dcl(self, children: list[Any]) -> ast.Enum:
        annotations, name, *enumerators = children
        return ast.Enum(annotations, str(name), tuple(enumerators), _pos_of(name))

    @v_args(meta=True)
    def typedef_dcl(self, meta: Meta, children: list[Any]) -> ast.Typedef:
        annotations, type_spec, *declarators = children
        return ast.Typedef(annotations, _type(type_spec), tuple(declarators), _pos_of(meta))

    def const_dcl(self, children: list[Any]) -> ast.Const:
        annotations, type_spec, name, value = children
        return ast.Const(annotations, _type(type_spec), str(name), value, _pos_of(name))

    def module_dcl(self, children: list[Any]) -> ast.Module:
        annotations, name, *definitions = children
        defs = tuple(d for d in definitions if d is not None)
        return ast.Module(annotations, str(name), defs, _pos_of(name))

    def start(self, children: list[Any]) -> tuple[ast.Definition, ...]:
        return tuple(d for d in children if d is not None)

    def DIRECTIVE(self, token: Token) -> ast.Include | None:
        return _directive(token)

    # -- expressions
    def integer(self, children: list[Token]) -> ast.Literal:
        text = str(children[0])
        if text.lower().startswith("0x"):
            value = int(text, 16)
        elif text.startswith("0") and len(text) > 1:
            value = int(text, 8)
        else:
            value = int(text)
        return ast.Literal(value, _pos_of(children[0]))

    def floating(self, children: list[Token]) -> ast.Literal:
        return ast.Literal(float(str(children[0]).rstrip("dDfF")), _pos_of(children[0]))

    def character(self, children: list[Token]) -> ast.Literal:
        return ast.Literal(_unescape(str(children[0])[1:-1], children[0]), _pos_of(children[0]))

    def string_lit(self, children: list[Token]) -> ast.Literal:
        text = "".join(_unescape(str(t)[1:-1], t) for t in children)
        return ast.Literal(text, _pos_of(children[0]))

    @v_args(meta=True)
    def true(self, meta: Meta, children: list[Any]) -> ast.Literal:
        return ast.Literal(True, _pos_of(meta))

    @v_args(meta=True)
    def false(self, meta: Meta, children: list[Any]) -> ast.Literal:
        return ast.Literal(False, _pos_of(meta))

    def name_ref(self, children: list[ast.ScopedName]) -> ast.NameRef:
        return ast.NameRef(children[0], children[0].pos)

    def _unary(self, op: str, children: list[ast.Expr]) -> ast.Unary:
        return ast.Unary(op, children[0], _expr_pos(children[0]))

    def neg(self, children: list[ast.Expr]) -> ast.Unary:
        return self._unary("-", children)

    def pos(self, children: list[ast.Expr]) -> ast.Unary:
        return self._unary("+", children)

    def invert(self, children: list[ast.Expr]) -> ast.Unary:
        return self._unary("~", children)

    def _binary(self, op: str, children: list[Any]) -> ast.Binary:
        return ast.Binary(op, children[0], children[-1], _expr_pos(children[0]))

    def bitor(self, c: list[Any]) -> ast.Binary:
        return self._binary("|", c)

    def bitxor(self, c: list[Any]) -> ast.Binary:
        return self._binary("^", c)

    def bitand(self, c: list[Any]) -> ast.Binary:
        return self._binary("&", c)

    def lshift(self, c: list[Any]) -> ast.Binary:
        return self._binary("<<", c)

    def rshift(self, c: list[Any]) -> ast.Binary:
        first, second = c[1], c[2]
        if (first.line, first.column + 1) != (second.line, second.column):
            raise IdlError(_pos_of(second), "unexpected '>'")
        return self._binary(">>", c)

    def add(self, c: list[Any]) -> ast.Binary:
        return self._binary("+", c)

    def sub(self, c: list[Any]) -> ast.Binary:
        return self._binary("-", c)

    def mul(self, c: list[Any]) -> ast.Binary:
        return self._binary("*", c)

    def div(self, c: list[Any]) -> ast.Binary:
        return self._binary("/", c)

    def mod(self, c: list[Any]) -> ast.Binary:
        return self._binary("%", c)


def _type(spec: Any) -> ast.TypeSpec:
    if isinstance(spec, ast.ScopedName):
        return ast.NamedType(spec, spec.pos)
    assert isinstance(spec, (ast.PrimitiveType, ast.StringType, ast.SequenceType, ast.UnsupportedType))
    return spec


def _type_pos(spec: Any) -> Pos:
    return _type(spec).pos


_ESCAPES = {"n": "\n", "t": "\t", "v": "\v", "b": "\b", "r": "\r", "f": "\f", "a": "\a"}
_ESCAPES.update({"\\": "\\", "?": "?", "'": "'", '"': '"'})


def _unescape(text: str, token: Token) -> str:
    def one(m: re.Match[str]) -> str:
        body = m.group(1)
        if body in _ESCAPES:
            return _ESCAPES[body]
        if body[0] in "xX":
            return chr(int(body[1:], 16))
        if body[0] in "01234567":
            return chr(int(body, 8))
        raise IdlError(_pos_of(token), f"unknown escape sequence '\\{body}'")

    return re.sub(r"\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)", one, text)


_INCLUDE = re.compile(r'#\s*include\s*(?:"([^"]+)"|<([^>]+)>)\s*(//.*|/\*.*\*/)?$')
_IGNORED = re.compile(r"#\s*(pragma\b.*|ifndef\s+\w+\s*|define\s+\w+\s*|endif\b.*)$")


def _directive(token: Token) -> ast.Include | None:
    """``#include`` becomes a node; ``#pragma`` and include guards are ignored."""
    text = str(token).rstrip()
    match = _INCLUDE.match(text)
    if match:
        quoted, system = match.groups()[:2]
        return ast.Include(quoted or system, quoted is None, _pos_of(token))
    if _IGNORED.match(text):
        return None
    word = re.match(r"#\s*(\w*)", text)
    name = word.group(1) if word else ""
    if name == "include":
        raise IdlError(_pos_of(token), 'malformed #include: write #include "file.idl"')
    if name == "define":
        raise IdlError(_pos_of(token), "macros are not supported: use a const")
    raise IdlError(
        _pos_of(token),
        f"preprocessor directive #{name} is not supported (only #include, #pragma and include guards)",
    )


def _describe(name: str, lark: Lark) -> str:
    if name in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[name]
    try:
        pattern = lark.get_terminal(name).pattern
    except KeyError:
        return name
    return f"'{pattern.value}'" if pattern.type == "str" else name


def _expected(names: set[str], lark: Lark) -> str:
    if len(names) > 6 and names & _TYPE_WORDS:
        names = (names - _TYPE_WORDS) | {"a type"}
    described = sorted(n if n == "a type" else _describe(n, lark) for n in names)
    if len(described) == 1:
        return described[0]
    return ", ".join(described[:-1]) + " or " + described[-1]


def _syntax_error(exc: UnexpectedInput, text: str, lark: Lark) -> IdlError:
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        if token.type == "$END":
            lines = text.rstrip().split("\n")
            where = Pos(_FILE.get(), len(lines), len(lines[-1]) + 1)
            return IdlError(where, f"unexpected end of file; expected {_expected(exc.expected, lark)}")
        offset = token.start_pos or 0
        if text.startswith("/*", offset):
            return IdlError(_pos_of(token), "unterminated comment")
        history = getattr(exc, "token_history", None) or []
        prev = history[-1] if history else None
        if (
            prev is not None
            and "SEMICOLON" in exc.expected
            and (exc.expected == {"SEMICOLON"} or (token.line or 0) > (prev.end_line or 0))
        ):
            at = Pos(_FILE.get(), prev.end_line or 0, prev.end_column or 0)
            return IdlError(at, f"expected ';' after '{prev}'")
        return IdlError(_pos_of(token), f"unexpected '{token}'; expected {_expected(exc.expected, lark)}")
    assert isinstance(exc, UnexpectedCharacters)
    where = Pos(_FILE.get(), exc.line, exc.column)
    offset = exc.pos_in_stream or 0
    char = text[offset] if offset < len(text) else ""
    if char in "'\"":
        return IdlError(where, "unterminated literal")
    return IdlError(where, f"unexpected character {char!r}")


def parse_text(text: str, filename: str) -> ast.File:
    """Parse one IDL source; raises IdlError (without the source line attached)."""
    lark = _lark()
    reset = _FILE.set(filename)
    try:
        tree = lark.parse(text)
        definitions: tuple[ast.Definition, ...] = _Builder().transform(tree)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text, lark) from None
    except Exception as exc:
        # lark wraps errors raised inside transformer callbacks; unwrap ours.
        inner = getattr(exc, "orig_exc", None)
        if isinstance(inner, IdlError):
            raise inner from None
        raise
    finally:
        _FILE.reset(reset)
    return ast.File(filename, definitions)
