"""Random valid struct definitions: generated, compiled with ``cc``, and laid out the same."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import loanbus.idl
from loanbus.idl.checker import check
from loanbus.idl.model import (
    Array,
    EnumDef,
    Primitive,
    Sequence,
    String,
    StructDef,
    Type,
    integer_range,
)
from loanbus.idl.runtime import StringCodec

from .ctools import c_layout, needs_cc

PRIMITIVES = [
    "boolean", "char", "octet", "int8", "uint8", "short", "unsigned short", "int16", "uint16",
    "long", "unsigned long", "int32", "uint32", "long long", "unsigned long long", "int64",
    "uint64", "float", "double",
]  # fmt: skip
# Member names, including ones Python, C or the generated classes must rename.
NAMES = [
    "a", "b", "x", "y2", "value", "data", "len", "dtype", "array", "keys", "from", "class",
    "lambda", "auto", "register", "signed", "l", "from_", "resize", "_sequence", "_in",
]  # fmt: skip


def _types(structs: list[str], enum: bool) -> st.SearchStrategy[str]:
    leaves = [st.sampled_from(PRIMITIVES), st.integers(1, 12).map(lambda n: f"string<{n}>")]
    if structs:
        leaves.append(st.sampled_from(structs))
    if enum:
        leaves.append(st.just("Color"))
    return st.recursive(
        st.one_of(leaves),
        lambda inner: st.tuples(inner, st.integers(1, 5)).map(lambda t: f"sequence<{t[0]}, {t[1]}>"),
        max_leaves=2,
    )


@st.composite
def idl_files(draw: st.DrawFn) -> str:
    enum = draw(st.booleans())
    lines = ["enum Color { RED, GREEN, BLUE };"] if enum else []
    structs: list[str] = []
    count = draw(st.integers(1, 3))
    for i in range(count):
        names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=7, unique=True))
        members = []
        for name in names:
            dims = draw(st.lists(st.integers(1, 4), max_size=2))
            member_type = draw(_types(structs, enum))
            members.append(f"{member_type} {name}{''.join(f'[{d}]' for d in dims)};")
        last = i == count - 1  # exactly one SHMEM_REF struct, the last
        note = "@transfer_mode(SHMEM_REF) " if last else draw(st.sampled_from(["", "@final "]))
        lines.append(f"{note}struct S{i} {{ {' '.join(members)} }};")
        structs.append(f"S{i}")
    if draw(st.booleans()):
        lines = ["module m {", *lines, "};"]
    return "\n".join(lines) + "\n"


def fill(t: Type, view: np.ndarray[Any, Any], rng: random.Random) -> None:
    """Random valid contents for a member: values in range, lengths within bounds."""
    if isinstance(t, Primitive):
        if t.kind == "boolean":
            view[...] = rng.random() < 0.5
        elif t.kind in ("float", "double"):
            view[...] = rng.randint(-4000, 4000) / 4  # exact in float32
        elif t.kind == "char":
            view[...] = rng.randint(32, 126)
        else:
            low, high = integer_range(t.kind)
            view[...] = rng.choice([low, high, 0, rng.randint(low, high)])
    elif isinstance(t, EnumDef):
        view[...] = rng.choice(t.enumerators)[1]
    elif isinstance(t, StructDef):
        for f in t.fields:
            fill(f.type, view[f.name], rng)
    elif isinstance(t, Array):
        for index in np.ndindex(*t.dims):
            fill(t.element, view[(*index, Ellipsis)], rng)
    elif isinstance(t, String):
        assert t.bound is not None
        StringCodec(t.bound).set(
            view, "".join(rng.choice("abcxyz 09") for _ in range(rng.randint(0, t.bound)))
        )
    else:
        assert isinstance(t, Sequence) and t.bound is not None
        n = rng.randint(0, t.bound)
        view["len"] = n
        for i in range(n):
            fill(t.element, view["data"][i, ...], rng)


@needs_cc
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(idl_files(), st.randoms(use_true_random=False))
def test_random_structs_have_the_same_layout_in_c_and_numpy(text: str, rng: random.Random) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        idl = workdir / "random.idl"
        idl.write_text(text)
        spec = check(str(idl))
        module = loanbus.idl.load(idl)
        c_layout(spec, module, workdir)
        # A random sample survives the trip through its by-value twin and CDR unchanged.
        struct = spec.loanable[0]
        (cls,) = module.LOANABLE
        sample = cls()
        fill(struct, sample.array, rng)
        twin = cls.ByValue.deserialize(sample.to_by_value().serialize())
        assert cls.from_by_value(twin).array.tobytes() == sample.array.tobytes()
