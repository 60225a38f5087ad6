"""Loanable sample types: a fully qualified name plus a fixed-size little-endian numpy dtype.

A type is what a :class:`~loanbus.Topic` is made of. ``ShmemType`` builds one by hand; the
IDL compiler generates classes that carry one as ``__shmem_type__``. Both are accepted
wherever a type is expected (see :func:`as_shmem_type`).
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any, Protocol, runtime_checkable

import numpy as np

#: The largest sample loanbus accepts (payload bytes of one slot).
MAX_SAMPLE_SIZE = 1 << 40


def _canonical(dtype: np.dtype[Any]) -> tuple[Any, ...]:
    """A byte-order-explicit, offset-explicit description of a dtype, stable across numpy versions."""
    if dtype.fields is not None and dtype.names is not None:
        fields = []
        for name in dtype.names:
            field_dtype, offset = dtype.fields[name][:2]
            fields.append((name, offset, _canonical(field_dtype)))
        return ("struct", dtype.itemsize, tuple(fields))
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return ("array", tuple(shape), _canonical(base))
    return ("scalar", dtype.kind, dtype.itemsize, "<" if dtype.itemsize > 1 else "|")


def _check_dtype(dtype: np.dtype[Any], where: str) -> None:
    if dtype.hasobject:
        raise ValueError(f"{where}: object fields cannot live in shared memory")
    if dtype.fields is not None and dtype.names is not None:
        for name in dtype.names:
            _check_dtype(dtype.fields[name][0], f"{where}.{name}")
    elif dtype.subdtype is not None:
        _check_dtype(dtype.subdtype[0], where)
    elif dtype.itemsize > 1 and dtype.byteorder == ">":
        raise ValueError(f"{where}: big-endian fields are not loanable; use '<'")
    elif dtype.itemsize > 1 and dtype.byteorder == "=" and not np.little_endian:
        raise ValueError(f"{where}: native byte order is big-endian here; use '<'")


def type_hash(type_name: str, dtype: np.dtype[Any]) -> bytes:
    """16 bytes that change whenever the name, a field, an offset or the size changes."""
    text = repr((type_name, _canonical(dtype))).encode()
    return hashlib.blake2b(text, digest_size=16).digest()


class ShmemType:
    """A loanable type: ``ShmemType("demo::Frame", np.dtype([...]))``.

    ``by_value`` is an optional by-value twin (a cyclonedds ``IdlStruct`` class) used where
    a reader cannot map the pool.

    ``shape`` makes a sample an array of that shape of ``dtype`` elements instead of one
    element. numpy refuses a dtype of 2 GiB or more, so a larger sample needs it:
    ``ShmemType("blob::Big", np.uint8, shape=(5 << 30,))``.
    """

    __slots__ = ("by_value", "count", "dtype", "name", "shape", "type_hash")

    def __init__(
        self, name: str, dtype: Any, *, by_value: type | None = None, shape: tuple[int, ...] = ()
    ) -> None:
        if not isinstance(name, str) or not name or len(name.encode()) > 255:
            raise ValueError(f"type name must be a non-empty string of at most 255 bytes: {name!r}")
        dt = np.dtype(dtype)
        _check_dtype(dt, name)
        shape = tuple(shape)
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape):
            raise ValueError(f"{name}: shape must be positive integers, not {shape!r}")
        count = 1
        for n in shape:
            count *= n
        if dt.itemsize == 0:
            raise ValueError(f"{name}: a type must have a non-zero size")
        if dt.itemsize * count > MAX_SAMPLE_SIZE:
            raise ValueError(f"{name}: {dt.itemsize * count} bytes exceeds the maximum sample size")
        self.name = name
        self.dtype: np.dtype[Any] = dt
        self.shape = shape
        self.count = count
        # A shapeless type hashes as it always did, so existing pools and generated code match.
        self.type_hash = type_hash(name, dt) if not shape else type_hash(f"{name}{list(shape)}", dt)
        self.by_value = by_value

    @property
    def itemsize(self) -> int:
        """Bytes of one sample."""
        return int(self.dtype.itemsize) * self.count

    def view(self, buffer: Any, offset: int) -> np.ndarray[Any, Any]:
        """The sample at ``offset`` of ``buffer``: a 0-d structured view, or an array of ``shape``."""
        return np.frombuffer(buffer, dtype=self.dtype, count=self.count, offset=offset).reshape(self.shape)

    def __repr__(self) -> str:
        shape = f", shape={self.shape}" if self.shape else ""
        return f"ShmemType({self.name!r}, itemsize={self.itemsize}{shape})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ShmemType) and other.type_hash == self.type_hash

    def __hash__(self) -> int:
        return hash(self.type_hash)


@runtime_checkable
class HasShmemType(Protocol):
    """A class that carries its loanable type, as the IDL compiler's generated classes do."""

    __shmem_type__: ShmemType


def as_shmem_type(obj: object) -> ShmemType:
    """The ShmemType behind ``obj`` (a ShmemType, or a class carrying ``__shmem_type__``)."""
    if isinstance(obj, ShmemType):
        return obj
    carried = getattr(obj, "__shmem_type__", None)
    if isinstance(carried, ShmemType):
        return carried
    raise TypeError(not_loanable(obj))


def _view_of_twin(twin: type) -> type | None:
    """The generated class whose ``ByValue`` is ``twin`` (in the module that defines both)."""
    module = sys.modules.get(twin.__module__)
    for value in vars(module).values() if module is not None else ():
        if isinstance(value, type) and value is not twin and getattr(value, "ByValue", None) is twin:
            return value
    return None


def not_loanable(obj: object) -> str:
    """Why ``obj`` cannot be a topic's type, and what to do instead, in one line."""
    idl_name = getattr(obj, "type_name", None)
    if isinstance(obj, type) and isinstance(idl_name, str) and idl_name:
        source = getattr(obj, "__idl_source__", "")
        where = f" ({source})" if isinstance(source, str) and source else ""
        short = idl_name.rsplit("::", 1)[-1]
        return (
            f"IDL struct {idl_name}{where} is not loanable: it lacks @transfer_mode(SHMEM_REF). "
            f"Write @transfer_mode(SHMEM_REF) on the line before 'struct {short}' and compile the "
            "IDL file again (loanbus idlc, or loanbus.idl.load)"
        )
    twin_of = getattr(obj, "__idl_typename__", None)
    if isinstance(obj, type) and isinstance(twin_of, str):
        view = _view_of_twin(obj)
        if view is not None and not isinstance(getattr(view, "__shmem_type__", None), ShmemType):
            return not_loanable(view)
        instead = f"{view.__name__}, " if view is not None else "the class loanbus idlc generates, "
        return (
            f"{obj.__name__} is the by-value (cyclonedds) class of IDL struct {twin_of}: "
            f"give the topic {instead}not its by-value twin"
        )
    return (
        f"{obj!r} is not a loanable type: use a loanbus.ShmemType, or a class loanbus idlc "
        "generates for a struct with @transfer_mode(SHMEM_REF)"
    )
