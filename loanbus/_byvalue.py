"""Pre-encoded CDR for by-value samples: numpy sample bytes <-> XCDR1/XCDR2 little-endian.

A writer that serves readers by value must put the sample on the plain DDS topic in the
encoding an ordinary Cyclone DDS application expects. Building an ``IdlStruct`` per sample
and running the binding's per-field serializer costs hundreds of milliseconds for a 6 MB
frame or 100,000 points, so loanbus copies byte runs with numpy/memoryview instead.

The *schema* (what the wire looks like) comes from the transport, which reads it off the
by-value twin's own serializer; this module pairs it with the sample's numpy dtype (where
each member lives in memory) and compiles both into a :class:`CdrCodec`. A member whose
CDR bytes equal its memory bytes (a "flat" run, such as a pixel buffer or a sequence of
packed points) is copied in one go; everything else is walked member by member.

No DDS here: only bytes, offsets and alignment rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

# -- the schema: what the by-value twin's serializer writes ---------------------------------


@dataclass(frozen=True)
class Prim:
    """``size`` bytes copied as they are, aligned to ``align`` (a primitive or a primitive array)."""

    align: int
    size: int


@dataclass(frozen=True)
class Struct:
    members: tuple[Node, ...]
    dheader: bool = False  # XCDR2 appendable: a 32-bit byte count in front


@dataclass(frozen=True)
class Array:
    element: Node
    count: int
    dheader: bool = False


@dataclass(frozen=True)
class Seq:
    element: Node
    bound: int | None
    dheader: bool = False


@dataclass(frozen=True)
class Str:
    bound: int | None


Node = Union[Prim, Struct, Array, Seq, Str]  # noqa: UP007 (a runtime alias on Python 3.10)

# Encapsulation identifiers (the second byte of the 4-byte header; first byte 0 = LE/BE pair).
CDR_LE, CDR2_LE, D_CDR2_LE = 0x01, 0x07, 0x09
_LE_KINDS = {CDR_LE: 1, CDR2_LE: 2, D_CDR2_LE: 2}


class UnsupportedType(ValueError):
    """The schema and the dtype do not pair up (the caller falls back to the twin's serializer)."""


class DecodeError(ValueError):
    """A by-value sample that does not fit the type (truncated, over its bound, big-endian...)."""


# -- compilation -------------------------------------------------------------------------------

Enc = Callable[[bytearray, memoryview, int], None]
Dec = Callable[[memoryview, int, memoryview, int], int]


def _round(pos: int, align: int) -> int:
    return (pos + align - 1) & ~(align - 1)


def _pad(out: bytearray, align: int) -> None:
    # The origin of alignment is the first byte after the 4-byte encapsulation header.
    pad = -(len(out) - 4) & (align - 1)
    if pad:
        out += bytes(pad)


def _u32(buf: memoryview, at: int) -> int:
    if at + 4 > len(buf):
        raise DecodeError("truncated by-value sample")
    return int.from_bytes(buf[at : at + 4], "little")


def _sub(dtype: np.dtype[Any]) -> tuple[np.dtype[Any], int]:
    """The element dtype and count of a (possibly multi-dimensional) array dtype."""
    if dtype.subdtype is None:
        raise UnsupportedType(f"an array in the wire type is not an array in the dtype ({dtype})")
    base, shape = dtype.subdtype
    element = base if len(shape) == 1 else np.dtype((base, shape[1:]))
    return element, int(shape[0])


class _Compiled:
    """One schema node bound to a dtype: its encoder, decoder and flatness facts."""

    __slots__ = ("cdr_end", "dec", "enc", "first_align", "max_align")

    def __init__(self) -> None:
        self.enc: Enc
        self.dec: Dec
        # "Flat": started at a position aligned to max_align, the CDR bytes are the memory
        # bytes [0, cdr_end). None when the node is not flat.
        self.cdr_end: int | None = None
        self.first_align = 1
        self.max_align = 1


class _Compiler:
    def __init__(self, align_max: int) -> None:
        self.cap = align_max

    def node(self, node: Node, dtype: np.dtype[Any]) -> _Compiled:
        if isinstance(node, Prim):
            return self.prim(node, dtype)
        if isinstance(node, Struct):
            return self.struct(node, dtype)
        if isinstance(node, Array):
            return self.array(node, dtype)
        if isinstance(node, Seq):
            return self.seq(node, dtype)
        return self.string(node, dtype)

    def prim(self, node: Prim, dtype: np.dtype[Any]) -> _Compiled:
        if dtype.itemsize != node.size or dtype.names is not None:
            raise UnsupportedType(f"wire member of {node.size} bytes meets dtype {dtype}")
        c = _Compiled()
        align, size = min(node.align, self.cap), node.size

        def enc(out: bytearray, src: memoryview, base: int) -> None:
            _pad(out, align)
            out += src[base : base + size]

        def dec(data: memoryview, pos: int, dst: memoryview, base: int) -> int:
            pos = _round(pos, align)
            if pos + size > len(data):
                raise DecodeError("truncated by-value sample")
            dst[base : base + size] = data[pos : pos + size]
            return pos + size

        c.enc, c.dec = enc, dec
        c.cdr_end, c.first_align, c.max_align = size, align, align
        return c

    def _flat_copy(self, c: _Compiled) -> tuple[Enc, Dec]:
        """Encoders that copy a flat node in one run when the position allows it."""
        slow_enc, slow_dec = c.enc, c.dec
        first, top, end = c.first_align, c.max_align, c.cdr_end
        assert end is not None

        def enc(out: bytearray, src: memoryview, base: int) -> None:
            _pad(out, first)
            if (len(out) - 4) & (top - 1):
                slow_enc(out, src, base)
            else:
                out += src[base : base + end]

        def dec(data: memoryview, pos: int, dst: memoryview, base: int) -> int:
            pos = _round(pos, first)
            if pos & (top - 1):
                return slow_dec(data, pos, dst, base)
            if pos + end > len(data):
                raise DecodeError("truncated by-value sample")
            dst[base : base + end] = data[pos : pos + end]
            return pos + end

        return enc, dec

    def struct(self, node: Struct, dtype: np.dtype[Any]) -> _Compiled:
        names = dtype.names
        if names is None or dtype.fields is None or len(names) != len(node.members):
            raise UnsupportedType(f"a struct of {len(node.members)} members meets dtype {dtype}")
        parts = []
        for member, name in zip(node.members, names, strict=True):
            field_dtype, offset = dtype.fields[name][:2]
            parts.append((self.node(member, field_dtype), int(offset)))
        c = _Compiled()
        if node.dheader:
            inner_enc, inner_dec = self._members(parts)
            c.enc, c.dec = self._delimited(inner_enc, inner_dec)
            return c
        c.enc, c.dec = self._members(parts)
        # Flat if every member is flat and lands on its memory offset.
        pos, flat = 0, True
        for part, offset in parts:
            if part.cdr_end is None:
                flat = False
                break
            p = _round(pos, part.first_align)
            if p != offset or p & (part.max_align - 1):
                flat = False
                break
            pos = p + part.cdr_end
        if flat and parts:
            c.cdr_end = pos
            c.first_align = parts[0][0].first_align
            c.max_align = max(p.max_align for p, _ in parts)
            c.enc, c.dec = self._flat_copy(c)
        return c

    @staticmethod
    def _members(parts: list[tuple[_Compiled, int]]) -> tuple[Enc, Dec]:
        encs = [(p.enc, off) for p, off in parts]
        decs = [(p.dec, off) for p, off in parts]

        def enc(out: bytearray, src: memoryview, base: int) -> None:
            for e, off in encs:
                e(out, src, base + off)

        def dec(data: memoryview, pos: int, dst: memoryview, base: int) -> int:
            for d, off in decs:
                pos = d(data, pos, dst, base + off)
            return pos

        return enc, dec

    @staticmethod
    def _delimited(inner_enc: Enc, inner_dec: Dec) -> tuple[Enc, Dec]:
        """XCDR2 DHEADER: 4-byte aligned byte count of what follows."""

        def enc(out: bytearray, src: memoryview, base: int) -> None:
            _pad(out, 4)
            at = len(out)
            out += b"\0\0\0\0"
            inner_enc(out, src, base)
            out[at : at + 4] = (len(out) - at - 4).to_bytes(4, "little")

        def dec(data: memoryview, pos: int, dst: memoryview, base: int) -> int:
            pos = _round(pos, 4)
            size = _u32(data, pos)
            start = pos + 4
            if start + size > len(data):
                raise DecodeError("truncated by-value sample")
            inner_dec(data[: start + size], start, dst, base)
            return start + size  # an appendable peer may have added members: skip them

        return enc, dec

    def _elements(self, element: _Compiled, stride: int) -> tuple[Callable[..., None], Callable[..., int]]:
        """Encoders of ``n`` consecutive elements: one run if flat and packed, else a loop."""
        e_enc, e_dec = element.enc, element.dec
        bulk = (
            element.cdr_end is not None
            and element.first_align == element.max_align
            and _round(element.cdr_end, element.max_align) == stride
        )
        top = element.max_align
        tail = element.cdr_end or 0

        def enc(out: bytearray, src: memoryview, base: int, n: int) -> None:
            if n == 0:
                return
            if bulk:
                _pad(out, top)
                out += src[base : base + (n - 1) * stride + tail]
                return
            for i in range(n):
                e_enc(out, src, base + i * stride)

        def dec(data: memoryview, pos: int, dst: memoryview, base: int, n: int) -> int:
            if n == 0:
                return pos
            if bulk:
                pos = _round(pos, top)
                size = (n - 1) * stride + tail
                if pos + size > len(data):
                    raise DecodeError("truncated by-value sample")
                dst[base : base + size] = data[pos : pos + size]
                return pos + size
            for i in range(n):
                pos = e_dec(data, pos, dst, base + i * stride)
            return pos

        return enc, dec

    def array(self, node: Array, dtype: np.dtype[Any]) -> _Compiled:
        element_dtype, count = _sub(dtype)
        if count != node.count:
            raise UnsupportedType(f"an array of {node.count} meets an array of {count} ({dtype})")
        element = self.node(node.element, element_dtype)
        stride = element_dtype.itemsize
        many_enc, many_dec = self._elements(element, stride)
        c = _Compiled()

        def enc(out: bytearray, src: memoryview, base: int) -> None:
            many_enc(out, src, base, count)

        def dec(data: memoryview, pos: int, dst: memoryview, base: int) -> int:
            return many_dec(data, pos, dst, base, count)

        if node.dheader:
            c.enc, c.dec = self._delimited(enc, dec)
            return c
        c.enc, c.dec = enc, dec
        packed = element.cdr_end is not None and element.first_align == element.max_align
        if packed and element.cdr_end is not None and _round(element.cdr_end, element.max_align) == stride:
            c.cdr_end = (count - 1) * stride + element.cdr_end
            c.first_align = c.max_align = element.max_align
        return c

    def _len_data(self, dtype: np.dtype[Any], what: str) -> tuple[int, np.dtype[Any], int]:
        """(offset of the data, its element dtype, the bound) of an inline ``{len, data}`` dtype."""
        if dtype.names != ("len", "data") or dtype.fields is None:
            raise UnsupportedType(f"a {what} in the wire type is not a {{len, data}} member ({dtype})")
        len_dtype, len_off = dtype.fields["len"][:2]
        data_dtype, data_off = dtype.fields["data"][:2]
        if len_off != 0 or len_dtype.itemsize != 4:
            raise UnsupportedType(f"the length word of a {what} is not a 32-bit word at 0 ({dtype})")
        element, bound = _sub(data_dtype)
        return int(data_off), element, bound

    def seq(self, node: Seq, dtype: np.dtype[Any]) -> _Compiled:
        data_off, element_dtype, bound = self._len_data(dtype, "sequence")
        if node.bound is not None and node.bound != bound:
            raise UnsupportedType(f"sequence bound {node.bound} meets room for {bound} ({dtype})")
        element = self.node(node.element, element_dtype)
        many_enc, many_dec = self._elements(element, element_dtype.itemsize)
        c = _Compiled()

        def enc(out: bytearray, src: memoryview, base: int) -> None:
            n = int.from_bytes(src[base : base + 4], "little")
            if n > bound:
                raise ValueError(f"sequence length {n} exceeds its bound {bound}: corrupt sample")
            _pad(out, 4)
            out += n.to_bytes(4, "little")
            many_enc(out, src, base + data_off, n)

        def dec(data: memoryview, pos: int, dst: memoryview, base: int) -> int:
            pos = _round(pos, 4)
            n = _u32(data, pos)
            if n > bound:
                raise DecodeError(f"a sequence of {n} elements exceeds its bound {bound}")
            dst[base : base + 4] = n.to_bytes(4, "little")
            return many_dec(data, pos + 4, dst, base + data_off, n)

        c.enc, c.dec = self._delimited(enc, dec) if node.dheader else (enc, dec)
        return c

    def string(self, node: Str, dtype: np.dtype[Any]) -> _Compiled:
        data_off, element_dtype, room = self._len_data(dtype, "string")
        bound = room - 1
        if element_dtype.itemsize != 1 or (node.bound is not None and node.bound != bound):
            raise UnsupportedType(f"string<{node.bound}> meets {dtype}")
        c = _Compiled()

        def enc(out: bytearray, src: memoryview, base: int) -> None:
            n = int.from_bytes(src[base : base + 4], "little")
            if n > bound:
                raise ValueError(f"string length {n} exceeds its bound {bound}: corrupt sample")
            _pad(out, 4)
            out += (n + 1).to_bytes(4, "little")
            start = base + data_off
            out += src[start : start + n]
            out += b"\0"

        def dec(data: memoryview, pos: int, dst: memoryview, base: int) -> int:
            pos = _round(pos, 4)
            n = _u32(data, pos) - 1  # the wire length counts the terminating NUL
            if not 0 <= n <= bound:
                raise DecodeError(f"a string of {n} bytes exceeds its bound {bound}")
            start = pos + 4
            if start + n + 1 > len(data):
                raise DecodeError("truncated by-value sample")
            dst[base : base + 4] = n.to_bytes(4, "little")
            dst[base + data_off : base + data_off + n] = data[start : start + n]
            dst[base + data_off + n] = 0
            return start + n + 1

        c.enc, c.dec = enc, dec
        return c


class CdrCodec:
    """Encode a sample (bytes of ``dtype``) as CDR with its header, and decode one back.

    ``version`` is 1 (XCDR1: 8-byte alignment) or 2 (XCDR2: at most 4-byte alignment).
    ``schemas`` maps each version to the wire schema; decoding follows the header's version.
    """

    def __init__(self, dtype: np.dtype[Any], schemas: dict[int, Node], version: int) -> None:
        if version not in schemas:
            raise UnsupportedType(f"no XCDR{version} schema")
        self.dtype = dtype
        self.version = version
        self._compiled = {v: _Compiler(8 if v == 1 else 4).node(s, dtype) for v, s in schemas.items()}
        top = schemas[version]
        kind = CDR_LE if version == 1 else (D_CDR2_LE if isinstance(top, Struct) and top.dheader else CDR2_LE)
        self._header = bytes((0, kind, 0, 0))
        self._enc = self._compiled[version].enc
        self._decs = {code: self._compiled[v].dec for code, v in _LE_KINDS.items() if v in self._compiled}

    @property
    def flat(self) -> bool:
        """True when the whole sample is one memory run on the wire (one copy, no walk)."""
        return self._compiled[self.version].cdr_end is not None

    def encode(self, sample: memoryview) -> bytearray:
        """The CDR bytes (header included, padded to a multiple of 4) of one sample's memory."""
        out = bytearray(self._header)
        self._enc(out, sample, 0)
        pad = -len(out) & 3
        if pad:
            out += bytes(pad)
        return out

    def decode(self, data: bytes | memoryview) -> np.ndarray[Any, Any]:
        """A new 0-d array of ``dtype`` (one copy of the payload), or :class:`DecodeError`."""
        view = memoryview(data).cast("B")
        if len(view) < 4:
            raise DecodeError("a by-value sample shorter than its encapsulation header")
        if view[0] != 0 or view[1] not in self._decs:
            raise DecodeError(f"unsupported CDR encapsulation 0x{view[0]:02x}{view[1]:02x} (big-endian?)")
        buf = bytearray(self.dtype.itemsize)
        self._decs[view[1]](view[4:], 0, memoryview(buf), 0)
        return np.frombuffer(buf, dtype=self.dtype, count=1).reshape(())
