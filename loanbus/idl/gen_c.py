"""Checked model to one C header: the IDL types with the same layout as the numpy dtypes,
and the pool segment ABI (from :mod:`loanbus._layout`), so a C program can share a pool.

Every struct is followed by ``_Static_assert`` s on its size, alignment and member offsets:
a compiler with another ABI refuses the header instead of misreading samples. Define
``LOANBUS_NO_LAYOUT_ASSERTS`` to leave the IDL type asserts out (the tests do, to print
and compare the layout themselves).
"""

from __future__ import annotations

import re
import struct

from loanbus import _layout
from loanbus._slotstate import SlotState
from loanbus.idl.dtypes import struct_dtype
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
    TypedefDef,
    integer_range,
    is_fixed,
)
from loanbus.idl.names import c_member, c_members, c_name
from loanbus.idl.runtime import type_hash

_C_WORD = {"B": "uint8_t", "H": "uint16_t", "I": "uint32_t", "Q": "uint64_t"}


def _indent(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines]


def c_type(t: Primitive | EnumDef | StructDef) -> str:
    if isinstance(t, Primitive):
        return PRIMITIVES[t.kind][2]
    return c_name(t)


def declare(t: Type, declarator: str) -> list[str]:
    """C declaration lines of a member (or typedef) named ``declarator``."""
    if isinstance(t, Array):
        return declare(t.element, declarator + "".join(f"[{d}]" for d in t.dims))
    if isinstance(t, String):
        body = ["uint32_t len;", f"char data[{(t.bound or 0) + 1}];"]
        return ["struct {", *_indent(body), f"}} {declarator};"]
    if isinstance(t, Sequence):
        body = ["uint32_t len;", *declare(t.element, f"data[{t.bound}]")]
        return ["struct {", *_indent(body), f"}} {declarator};"]
    return [f"{c_type(t)} {declarator};"]


def _c_string(data: bytes) -> str:
    return '"' + "".join(f"\\x{b:02x}" for b in data) + '"'


def _c_text(text: str) -> str:
    out = []
    for b in text.encode():
        ch = chr(b)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= b < 127 and ch != "?":
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def _const_value(c: ConstDef) -> str:
    value, t = c.value, c.type
    if isinstance(t, EnumDef):
        label = next(n for n, v in t.enumerators if v == value)
        return c_member("_".join((*t.scope, label)))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if isinstance(t, Primitive) and t.kind == "char":
            return "'" + _c_text(value)[1:-1].replace("'", "\\'") + "'"
        return _c_text(value)
    if isinstance(value, float):
        text = repr(value)
        if "inf" in text or "nan" in text:
            raise ValueError(f"{c.fqn}: {text} has no C literal")
        text += "f" if isinstance(t, Primitive) and t.kind == "float" else ""
        return text if value >= 0 else f"({text})"
    assert isinstance(t, Primitive)
    if t.kind == "int64":
        if value == integer_range("int64")[0]:
            return "(-INT64_C(9223372036854775807) - 1)"
        return f"INT64_C({value})" if value >= 0 else f"(-INT64_C({-value}))"
    if t.kind == "uint64":
        return f"UINT64_C({value})"
    if t.kind in ("uint32", "uint16", "octet", "uint8"):
        return f"{value}u"
    return str(value) if value >= 0 else f"({value})"


def _asserts(ctype: str, checks: list[tuple[str, int]]) -> list[str]:
    return [f'_Static_assert({expr} == {value}, "{ctype}: {expr}");' for expr, value in checks]


def pool_abi() -> list[str]:
    """The pool segment structures of docs/shm-layout.md, derived from loanbus._layout."""
    L = _layout
    out = ["#ifndef LOANBUS_POOL_ABI", "#define LOANBUS_POOL_ABI", ""]
    out.append(f"#define LOANBUS_MAGIC {_c_text(L.MAGIC.decode())}")
    for name in (
        "ABI_VERSION", "PAGE", "CACHE_LINE", "HEADER_SIZE", "SLOT_RECORD_SIZE",
        "OWNER_RECORD_SIZE", "TYPE_NAME_OFFSET", "TYPE_NAME_SIZE", "MAX_SLOTS", "MAX_READER_ROWS",
    ):  # fmt: skip
        out.append(f"#define LOANBUS_{name} {getattr(L, name)}u")
    out.append("")
    out.append("enum loanbus_segment_state {")
    out += [f"    LOANBUS_SEGMENT_{s.name} = {s.value}," for s in L.SegmentState]
    out += ["};", "", "enum loanbus_slot_state {"]
    out += [f"    LOANBUS_SLOT_{s.name} = {s.value}," for s in SlotState]
    out += ["};", ""]

    # Header: the words of HEADER_FIELDS at their offsets, the type name, reserved bytes.
    words = [(off, name, fmt) for name, (off, fmt) in L.HEADER_FIELDS.items()]
    words.append((L.TYPE_NAME_OFFSET, "type_name", f"{L.TYPE_NAME_SIZE}c"))
    members, at = [], 0
    for off, name, fmt in sorted(words):
        if off > at:
            members.append(f"uint8_t reserved_{at}[{off - at}];")
        size = struct.calcsize(fmt)
        match = re.fullmatch(r"<?(\d*)([a-zA-Z])", fmt)
        assert match is not None, fmt
        count, code = match.groups()
        if code in ("s", "c"):
            ctype = "char" if code == "c" else "uint8_t"
            members.append(f"{ctype} {name}[{count}];")
        else:
            members.append(f"{_C_WORD[code]} {name};")
        at = off + size
    if at < L.HEADER_SIZE:
        members.append(f"uint8_t reserved_{at}[{L.HEADER_SIZE - at}];")
    out += ["typedef struct loanbus_header {", *_indent(members), "} loanbus_header;"]
    checks = [("sizeof(loanbus_header)", L.HEADER_SIZE)]
    checks += [(f"offsetof(loanbus_header, {n})", o) for o, n, _ in sorted(words)]
    out += [*_asserts("loanbus_header", checks), ""]

    # Slot record: named 64-bit words (SLOT_SEQ, SLOT_STATE, ...), the rest reserved.
    slot_words = sorted(
        (v, k[5:].lower())
        for k, v in vars(L).items()
        if k.startswith("SLOT_") and isinstance(v, int) and k not in ("SLOT_WORDS", "SLOT_RECORD_SIZE")
    )
    assert [v for v, _ in slot_words] == list(range(len(slot_words))), slot_words
    slot = [f"uint64_t {n};" for _, n in slot_words]
    if len(slot_words) < L.SLOT_WORDS:
        slot.append(f"uint64_t reserved[{L.SLOT_WORDS - len(slot_words)}];")
    out += ["typedef struct loanbus_slot {", *_indent(slot), "} loanbus_slot;"]
    checks = [("sizeof(loanbus_slot)", L.SLOT_RECORD_SIZE)]
    checks += [(f"offsetof(loanbus_slot, {n})", 8 * v) for v, n in slot_words]
    out += [*_asserts("loanbus_slot", checks), ""]

    owner = ["uint8_t reader_id[16];", f"uint8_t reserved[{L.OWNER_RECORD_SIZE - 16}];"]
    out += ["typedef struct loanbus_owner {", *_indent(owner), "} loanbus_owner;"]
    out += [*_asserts("loanbus_owner", [("sizeof(loanbus_owner)", L.OWNER_RECORD_SIZE)]), ""]
    out += _ACCESSORS.splitlines()
    out += ["", "#endif /* LOANBUS_POOL_ABI */"]
    return out


_ACCESSORS = """\
/* Where things are in a mapped segment (every offset comes from the header). */
static inline loanbus_header *loanbus_segment_header(void *segment) {
    return (loanbus_header *)segment;
}
static inline loanbus_slot *loanbus_segment_slot(void *segment, uint64_t slot) {
    loanbus_header *h = (loanbus_header *)segment;
    return (loanbus_slot *)((char *)segment + h->slot_table_offset) + slot;
}
static inline loanbus_owner *loanbus_segment_owner(void *segment, uint64_t row) {
    loanbus_header *h = (loanbus_header *)segment;
    return (loanbus_owner *)((char *)segment + h->owner_table_offset) + row;
}
static inline uint64_t *loanbus_segment_hold_row(void *segment, uint64_t row) {
    loanbus_header *h = (loanbus_header *)segment;
    return (uint64_t *)((char *)segment + h->hold_table_offset + row * h->hold_row_stride);
}
static inline void *loanbus_segment_payload(void *segment, uint64_t slot) {
    loanbus_header *h = (loanbus_header *)segment;
    return (char *)segment + h->payload_offset + slot * h->slot_stride;
}
/* The sequence number of a slot, loaded with acquire ordering (before reading a sample). */
static inline uint64_t loanbus_slot_seq(void *segment, uint64_t slot) {
    return __atomic_load_n(&loanbus_segment_slot(segment, slot)->seq, __ATOMIC_ACQUIRE);
}
/* is_data_consistent: call AFTER reading the payload. The acquire fence keeps the payload
   reads from moving past the re-read of the sequence number on weakly ordered CPUs. */
static inline int loanbus_is_data_consistent(void *segment, uint64_t slot, uint64_t seq) {
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return __atomic_load_n(&loanbus_segment_slot(segment, slot)->seq, __ATOMIC_RELAXED) == seq;
}"""


def _struct(s: StructDef) -> list[str]:
    name = c_name(s)
    kind = "loanable (SHMEM_REF) " if s.loanable else ""
    out = [f"/* {kind}struct {s.fqn}: {s.size} bytes, aligned to {s.align} */"]
    if s.loanable:
        out.append(f'#define {name}_TYPE_NAME "{s.fqn}"')
        out.append(f"#define {name}_TYPE_HASH {_c_string(type_hash(s.fqn, struct_dtype(s)))}")
    names = c_members(s)
    members: list[str] = []
    for f in s.fields:
        members += declare(f.type, names[f.name])
    out += [f"typedef struct {name} {{", *_indent(members), f"}} {name};"]
    checks = [(f"sizeof({name})", s.size), (f"_Alignof({name})", s.align)]
    checks += [(f"offsetof({name}, {names[f.name]})", f.offset) for f in s.fields]
    out += ["#ifndef LOANBUS_NO_LAYOUT_ASSERTS", *_asserts(name, checks), "#endif", ""]
    return out


def _enum(e: EnumDef) -> list[str]:
    name = c_name(e)
    out = [f"/* enum {e.fqn}: stored as int32_t */", f"typedef int32_t {name};", f"enum {name}_values {{"]
    out += [f"    {c_member('_'.join((*e.scope, n)))} = {v}," for n, v in e.enumerators]
    return [*out, "};", ""]


def _typedef(t: TypedefDef) -> list[str]:
    lines = declare(t.type, c_name(t))
    return ["typedef " + lines[0], *lines[1:]]


def generate(spec: Spec, source: str, guard: str) -> str:
    """The C header for ``spec``; ``guard`` names its include guard."""
    out = [
        f"/* Generated by loanbus idlc from {source}. Do not edit: regenerate it. */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <stdbool.h>",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "",
        "#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__",
        '#error "loanbus samples and pools are little-endian"',
        "#endif",
        "",
        *pool_abi(),
        "",
    ]
    for e in spec.enums:
        out += _enum(e)
    for c in spec.consts:
        out.append(f"#define {c_name(c)} {_const_value(c)}")
    if spec.consts:
        out.append("")
    for s in spec.structs:
        if s.fixed:
            out += _struct(s)
        else:
            out += [f"/* struct {s.fqn} has unbounded members: by-value only, no C layout */", ""]
    for t in spec.typedefs:
        if is_fixed(t.type):
            out += _typedef(t)
    out += ["", f"#endif /* {guard} */", ""]
    return "\n".join(out)
