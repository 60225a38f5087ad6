"""Syntax tree to checked model: includes, scopes and names, constants, layouts, refusals.

One pass in declaration order resolves names (IDL requires declare-before-use), a second
lays structs out in dependency order, refusing recursion, unbounded members in loanable
types and structs larger than one numpy dtype can describe (2 GiB - 1).
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from pathlib import Path

from loanbus.idl import annotation_rules, ast, consts
from loanbus.idl.errors import IdlError, Pos
from loanbus.idl.model import (
    Array,
    ConstDef,
    EnumDef,
    Field,
    Named,
    Primitive,
    Sequence,
    Spec,
    String,
    StructDef,
    Type,
    TypedefDef,
    contained_structs,
    is_fixed,
    largest_member,
    lay_out,
)
from loanbus.idl.parser import parse_text
from loanbus.types import MAX_SAMPLE_SIZE

#: numpy keeps a dtype's size in a C int, so one generated struct holds at most this.
NUMPY_MAX_ITEMSIZE = (1 << 31) - 1


class _Module:
    """A module scope; modules can be reopened, so it is kept by its path."""

    def __init__(self, path: tuple[str, ...], pos: Pos) -> None:
        self.path = path
        self.pos = pos


_Symbol = _Module | StructDef | EnumDef | ConstDef | TypedefDef | consts.EnumValue


def _what(symbol: _Symbol) -> str:
    return {
        _Module: "module",
        StructDef: "struct",
        EnumDef: "enum",
        ConstDef: "const",
        TypedefDef: "typedef",
        consts.EnumValue: "enumerator",
    }[type(symbol)]


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _pos(symbol: _Symbol) -> Pos:
    if isinstance(symbol, consts.EnumValue):
        return symbol.enum.enumerator_pos[symbol.name]
    return symbol.pos


class Checker:
    """Checks one IDL file and what it includes; :meth:`run` returns the :class:`Spec`."""

    def __init__(self, path: str, include_dirs: Seq[str | Path] = ()) -> None:
        self.path = path
        self.include_dirs = [Path(d) for d in include_dirs]
        self.sources: dict[str, str] = {}
        self.symbols: dict[tuple[str, ...], _Symbol] = {}
        self.lowered: dict[tuple[str, ...], tuple[str, ...]] = {}
        self.included: set[Path] = set()
        self.spec = Spec(path)
        self.spec.sources = self.sources

    # ------------------------------------------------------------ driver

    def run(self) -> Spec:
        """Check everything; raises IdlError with the offending source line attached."""
        try:
            text = self._read(Path(self.path), self.path, None)
            self.included.add(Path(self.path).resolve())
            self._definitions(parse_text(text, self.path).definitions, ())
            self._finish()
        except IdlError as exc:
            source = self.sources.get(exc.pos.file)
            raise (exc.with_source(source) if source is not None else exc) from None
        return self.spec

    def _read(self, path: Path, name: str, pos: Pos | None) -> str:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise IdlError(pos or Pos(name, 1, 1), f"cannot read {name}: {reason}") from None
        self.sources[name] = text
        return text

    def _include(self, inc: ast.Include, scope: tuple[str, ...]) -> None:
        here = Path(inc.pos.file).parent
        candidates = list(dict.fromkeys(([] if inc.system else [here]) + self.include_dirs))
        for directory in candidates:
            path = directory / inc.path
            if path.is_file():
                break
        else:
            searched = ", ".join(str(d) for d in candidates) or "no directories"
            raise IdlError(inc.pos, f"cannot find '{inc.path}' (searched {searched})")
        if path.resolve() in self.included:
            return  # every file is included once, as if it had #pragma once
        self.included.add(path.resolve())
        name = str(path)
        text = self._read(path, name, inc.pos)
        self._definitions(parse_text(text, name).definitions, scope)

    # ------------------------------------------------------------ scopes

    def _declare(self, scope: tuple[str, ...], name: str, symbol: _Symbol, pos: Pos) -> None:
        key = (*scope, name)
        existing = self.symbols.get(key)
        if existing is symbol:
            return
        if existing is None:
            low = tuple(p.lower() for p in key)
            other = self.lowered.get(low)
            if other is not None:
                first = self.symbols[other]
                raise IdlError(
                    pos,
                    f"'{name}' collides with '{other[-1]}' declared at {_pos(first)} "
                    "(IDL names are case-insensitive)",
                )
            self.lowered[low] = key
            self.symbols[key] = symbol
            return
        if isinstance(existing, _Module) and isinstance(symbol, _Module):
            return
        if (
            isinstance(existing, StructDef)
            and isinstance(symbol, StructDef)
            and not (existing.defined and symbol.defined)
        ):
            return  # a forward declaration and its definition
        raise IdlError(
            pos, f"duplicate name '{name}': already declared as {_a(_what(existing))} at {_pos(existing)}"
        )

    def _lookup(self, name: ast.ScopedName, scope: tuple[str, ...]) -> _Symbol:
        first = name.parts[0]
        full: tuple[str, ...] | None = None
        if name.absolute:
            full = name.parts
        else:
            for depth in range(len(scope), -1, -1):
                if (*scope[:depth], first) in self.symbols:
                    full = (*scope[:depth], *name.parts)
                    break
        symbol = self.symbols.get(full) if full is not None else None
        if symbol is None:
            raise IdlError(name.pos, f"unknown name '{name}'")
        return symbol

    def _value(self, ref: ast.NameRef, scope: tuple[str, ...]) -> consts.Value:
        symbol = self._lookup(ref.name, scope)
        if isinstance(symbol, ConstDef):
            value = symbol.value
            if isinstance(symbol.type, EnumDef):
                names = [n for n, v in symbol.type.enumerators if v == value]
                return consts.EnumValue(symbol.type, names[0], int(value))
            return value
        if isinstance(symbol, consts.EnumValue):
            return symbol
        raise IdlError(ref.pos, f"'{ref.name}' is {_a(_what(symbol))}, not a constant")

    # ------------------------------------------------------------ definitions

    def _definitions(self, definitions: tuple[ast.Definition, ...], scope: tuple[str, ...]) -> None:
        for d in definitions:
            if isinstance(d, ast.Include):
                self._include(d, scope)
            elif isinstance(d, ast.Module):
                annotation_rules.refuse_all(d.annotations, "modules")
                self._declare(scope, d.name, _Module((*scope, d.name), d.pos), d.pos)
                self._definitions(d.definitions, (*scope, d.name))
            elif isinstance(d, ast.StructForward):
                annotation_rules.for_struct(d.annotations)
                self._declare(scope, d.name, StructDef(scope, d.name, d.pos), d.pos)
            elif isinstance(d, ast.Struct):
                self._struct(d, scope)
            elif isinstance(d, ast.Enum):
                self._enum(d, scope)
            elif isinstance(d, ast.Typedef):
                annotation_rules.refuse_all(d.annotations, "typedefs")
                base = self._type(d.type, scope)
                for decl in d.declarators:
                    typedef = TypedefDef(scope, decl.name, decl.pos, self._array(base, decl, scope))
                    self._declare(scope, decl.name, typedef, decl.pos)
                    self.spec.typedefs.append(typedef)
            else:
                self._const(d, scope)

    def _struct(self, d: ast.Struct, scope: tuple[str, ...]) -> None:
        notes = annotation_rules.for_struct(d.annotations)
        if d.base is not None:
            raise IdlError(d.base.pos, "struct inheritance is not supported: add the base as a member")
        existing = self.symbols.get((*scope, d.name))
        struct = existing if isinstance(existing, StructDef) and not existing.defined else None
        if struct is None:
            struct = StructDef(scope, d.name, d.pos)
        struct.pos, struct.defined = d.pos, True
        self._declare(scope, d.name, struct, d.pos)
        struct.loanable = notes.transfer_mode == "SHMEM_REF"
        struct.extensibility = notes.extensibility
        struct.annotation_pos = notes.positions
        if struct.loanable and struct.extensibility == "mutable":
            raise IdlError(notes.positions["mutable"], _MUTABLE.format(struct.fqn))
        if not d.members:
            raise IdlError(d.pos, f"struct {struct.fqn} has no members")
        seen: dict[str, Pos] = {}
        for member in d.members:
            key = annotation_rules.member_is_key(member.annotations)
            base = self._type(member.type, scope)
            for decl in member.declarators:
                first = seen.get(decl.name.lower())
                if first is not None:
                    raise IdlError(
                        decl.pos, f"duplicate member '{decl.name}' in {struct.fqn} (first at {first})"
                    )
                seen[decl.name.lower()] = decl.pos
                t = self._array(base, decl, scope)
                struct.fields.append(Field(decl.name, t, member.pos, key=key))
        self.spec.structs.append(struct)

    def _enum(self, d: ast.Enum, scope: tuple[str, ...]) -> None:
        annotation_rules.refuse_all(d.annotations, "enums")
        enum = EnumDef(scope, d.name, d.pos)
        self._declare(scope, d.name, enum, d.pos)
        next_value = 0
        for e in d.enumerators:
            expr = annotation_rules.enumerator_value(e.annotations)
            if expr is not None:
                value = consts.convert(
                    consts.evaluate(expr, lambda r: self._value(r, scope)), Primitive("int32"), expr.pos
                )
                next_value = int(value)
            if any(v == next_value for _, v in enum.enumerators):
                raise IdlError(e.pos, f"enumerator {e.name} repeats the value {next_value}")
            enum.enumerators.append((e.name, next_value))
            enum.enumerator_pos[e.name] = e.pos
            self._declare(scope, e.name, consts.EnumValue(enum, e.name, next_value), e.pos)
            next_value += 1
        self.spec.enums.append(enum)

    def _const(self, d: ast.Const, scope: tuple[str, ...]) -> None:
        annotation_rules.refuse_all(d.annotations, "consts")
        t = self._type(d.type, scope)
        raw = consts.evaluate(d.value, lambda r: self._value(r, scope))
        const = ConstDef(scope, d.name, d.pos, t, consts.convert(raw, t, d.value.pos))
        self._declare(scope, d.name, const, d.pos)
        self.spec.consts.append(const)

    # ------------------------------------------------------------ types

    def _type(self, spec: ast.TypeSpec, scope: tuple[str, ...]) -> Type:
        if isinstance(spec, ast.PrimitiveType):
            return Primitive(spec.kind)
        if isinstance(spec, ast.UnsupportedType):
            raise IdlError(spec.pos, f"{spec.what} is not supported: use double")
        if isinstance(spec, ast.StringType):
            bound = self._bound(spec.bound, scope, "string bound")
            return String(bound)
        if isinstance(spec, ast.SequenceType):
            element = self._type(spec.element, scope)
            return Sequence(element, self._bound(spec.bound, scope, "sequence bound"))
        symbol = self._lookup(spec.name, scope)
        if isinstance(symbol, TypedefDef):
            return symbol.type
        if isinstance(symbol, (StructDef, EnumDef)):
            return symbol
        raise IdlError(spec.pos, f"'{spec.name}' is {_a(_what(symbol))}, not a type")

    def _bound(self, expr: ast.Expr | None, scope: tuple[str, ...], what: str) -> int | None:
        if expr is None:
            return None
        value = consts.positive_int(expr, lambda r: self._value(r, scope), what)
        if value > 0xFFFFFFFF:
            raise IdlError(expr.pos, f"{what} {value} does not fit the 32-bit length word")
        return value

    def _array(self, base: Type, decl: ast.Declarator, scope: tuple[str, ...]) -> Type:
        if not decl.dims:
            return base
        dims = tuple(consts.positive_int(e, lambda r: self._value(r, scope), "array size") for e in decl.dims)
        if isinstance(base, Array):
            return Array(base.element, dims + base.dims)
        return Array(base, dims)

    # ------------------------------------------------------------ layout and refusals

    def _finish(self) -> None:
        done: dict[int, StructDef] = {}
        for struct in self.spec.structs:
            self._lay_out(struct, [], done)
        self.spec.structs = list(done.values())  # dependency order: members' types first
        for struct in self.spec.loanable:
            self._check_loanable(struct, struct, set())
        for struct in self.spec.structs:
            if struct.fixed and struct.size > MAX_SAMPLE_SIZE:
                raise IdlError(
                    struct.pos,
                    f"{struct.fqn} is {struct.size} bytes, more than the maximum sample size "
                    f"({MAX_SAMPLE_SIZE} bytes)",
                )
        for struct in self.spec.structs:  # dependency order: the innermost offender first
            if struct.fixed and struct.size > NUMPY_MAX_ITEMSIZE:
                raise IdlError(
                    largest_member(struct),
                    f"{struct.fqn} is {struct.size:,} bytes; a generated class holds at most "
                    f"{NUMPY_MAX_ITEMSIZE:,} (numpy's limit for one dtype): make it smaller, or "
                    "describe a larger sample with loanbus.ShmemType(name, dtype, shape=...)",
                )

    def _lay_out(
        self, struct: StructDef, path: list[tuple[StructDef, Field]], done: dict[int, StructDef]
    ) -> None:
        if id(struct) in done:
            return
        for f in struct.fields:
            for inner in contained_structs(f.type):
                if not inner.defined:
                    raise IdlError(f.pos, f"struct {inner.fqn} is declared but never defined")
                chain = [s for s, _ in path] + [struct]
                if inner in chain:
                    through = " -> ".join(s.fqn for s in chain[chain.index(inner) :]) + f" -> {inner.fqn}"
                    raise IdlError(f.pos, f"recursive struct: {through} (member '{f.name}')")
                self._lay_out(inner, [*path, (struct, f)], done)
        struct.fixed = all(is_fixed(f.type) for f in struct.fields)
        if struct.fixed:
            lay_out(struct)
        done[id(struct)] = struct

    def _check_loanable(self, root: StructDef, struct: StructDef, seen: set[int]) -> None:
        if id(struct) in seen:
            return
        seen.add(id(struct))
        if struct is not root and struct.extensibility == "mutable":
            raise IdlError(
                struct.annotation_pos["mutable"],
                _MUTABLE.format(struct.fqn) + f" (SHMEM_REF type {root.fqn} contains it)",
            )
        for f in struct.fields:
            unbounded = _unbounded(f.type)
            if unbounded is not None:
                where = (
                    f"SHMEM_REF type {root.fqn}"
                    if struct is root
                    else f"{struct.fqn}, which SHMEM_REF type {root.fqn} contains"
                )
                hint = "string<N>" if unbounded == "string" else "sequence<T, N>"
                raise IdlError(
                    f.pos,
                    f"unbounded {unbounded} in {where}: a loanable sample has a fixed size; "
                    f"give it a bound: {hint}",
                )
            for inner in contained_structs(f.type):
                self._check_loanable(root, inner, seen)


_MUTABLE = (
    "@mutable is not meaningful for {}: a SHMEM_REF sample is one fixed memory layout "
    "(members cannot be added, removed or reordered); use @final or @appendable"
)


def _unbounded(t: Type) -> str | None:
    if isinstance(t, String) and t.bound is None:
        return "string"
    if isinstance(t, Sequence):
        return "sequence" if t.bound is None else _unbounded(t.element)
    if isinstance(t, Array):
        return _unbounded(t.element)
    return None


def check(path: str, include_dirs: Seq[str | Path] = ()) -> Spec:
    """Parse and check ``path`` and its includes; raises IdlError."""
    return Checker(path, include_dirs).run()


__all__ = ["Checker", "Named", "check"]
