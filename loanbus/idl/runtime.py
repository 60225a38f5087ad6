"""What generated IDL classes stand on: field access over a 0-d structured numpy view.

A generated struct class is a :class:`StructView` subclass whose members are :class:`Field`
descriptors. ``PointCloud(sample.data).points`` reads through the view without copying:
numbers come back as Python numbers, arrays and bounded sequences as numpy views (only the
valid ``len`` elements of a sequence), nested structs as views of the same memory, bounded
strings as ``str``. Assigning to a member writes in place. Each codec also converts to and
from the cyclonedds by-value twin, for readers that cannot map the pool.

This module must not import cyclonedds: generated code does, the package does not.
"""

from __future__ import annotations

import enum
import keyword
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar, overload

import numpy as np
import numpy.typing as npt

from loanbus.types import type_hash as _type_hash

NDArray = npt.NDArray[Any]
G = TypeVar("G")
S = TypeVar("S")
E = TypeVar("E", bound=enum.IntEnum)
V = TypeVar("V", bound="StructView")

#: Attribute names a generated class keeps for itself (members with these names get a ``_``).
RESERVED_NAMES = frozenset(
    {
        "array", "dtype", "type_name", "type_hash", "ByValue", "fields", "keys", "zeros",
        "to_by_value", "from_by_value", "assign", "copy", "resize", "serialize", "deserialize",
        "serialize_key", "deserialize_key", "from_sample", "to_sample", "mro", "twin_fields",
    }
)  # fmt: skip


def python_name(name: str) -> str:
    """The Python attribute for an IDL member: keywords and reserved names get a ``_``."""
    if keyword.iskeyword(name) or name in RESERVED_NAMES or name.startswith("__"):
        return name + "_"
    return name


def type_hash(name: str, dtype: np.dtype[Any]) -> bytes:
    """The 16-byte type hash of ``name`` with ``dtype`` (as :class:`loanbus.ShmemType` has it)."""
    return _type_hash(name, dtype)


class Codec(Generic[G, S]):
    """How one member type is read, written, and converted to and from its by-value twin."""

    def get(self, view: NDArray) -> G:
        raise NotImplementedError

    def set(self, view: NDArray, value: S) -> None:
        view[...] = value

    def to_twin(self, view: NDArray) -> Any:
        return self.get(view)

    def from_twin(self, view: NDArray, value: Any) -> None:
        self.set(view, value)

    @property
    def numeric(self) -> bool:
        """True when numpy's own ``tolist()`` / assignment is the twin value (fast paths)."""
        return False


class Prim(Codec[G, G]):
    """A primitive member; ``kind`` is the IDL primitive (``char`` twins are 1-char ``str``)."""

    def __init__(self, kind: str, convert: Callable[[Any], G]) -> None:
        self.kind = kind
        self.convert = convert

    def get(self, view: NDArray) -> G:
        return self.convert(view.item())

    def to_twin(self, view: NDArray) -> Any:
        return chr(int(view)) if self.kind == "char" else view.item()

    def from_twin(self, view: NDArray, value: Any) -> None:
        view[...] = (ord(value) if value else 0) if self.kind == "char" else value

    @property
    def numeric(self) -> bool:
        return self.kind != "char"

    @property
    def bytes_like(self) -> bool:
        """octet and uint8 arrays twin as ``bytes`` (cyclonedds's ByteArrayMachine)."""
        return self.kind in ("octet", "uint8")


BOOLEAN = Prim("boolean", bool)
CHAR = Prim("char", int)
OCTET = Prim("octet", int)
UINT8 = Prim("uint8", int)
INT = Prim("int", int)
FLOAT = Prim("float", float)


class EnumCodec(Codec[E, E | int]):
    """An enum member: stored as int32, read as the generated IntEnum."""

    def __init__(self, cls: type[E], twin: Callable[[int], Any]) -> None:
        self.cls = cls
        self.twin = twin

    def get(self, view: NDArray) -> E:
        return self.cls(int(view))

    def set(self, view: NDArray, value: E | int) -> None:
        view[...] = int(value)

    def to_twin(self, view: NDArray) -> Any:
        return self.twin(int(view))

    def from_twin(self, view: NDArray, value: Any) -> None:
        view[...] = int(value.value)


class StringCodec(Codec[str, str]):
    """``string<N>``: a length word and N + 1 bytes, read and written as UTF-8 ``str``."""

    def __init__(self, bound: int) -> None:
        self.bound = bound

    def get(self, view: NDArray) -> str:
        n = int(view["len"])
        if n > self.bound:
            raise ValueError(f"string length {n} exceeds its bound {self.bound}: corrupt sample")
        return bytes(view["data"][:n]).decode("utf-8", errors="replace")

    def set(self, view: NDArray, value: str) -> None:
        raw = value.encode("utf-8")
        if len(raw) > self.bound:
            raise ValueError(f"{len(raw)} bytes do not fit string<{self.bound}>")
        data = view["data"]
        data[: len(raw)] = np.frombuffer(raw, dtype=np.uint8)
        data[len(raw)] = 0
        view["len"] = len(raw)


class SequenceCodec(Codec[NDArray, npt.ArrayLike]):
    """``sequence<T, N>``: a length word and N elements; reads give the first ``len``."""

    def __init__(self, element: Codec[Any, Any], bound: int) -> None:
        self.element = element
        self.bound = bound

    def length(self, view: NDArray) -> int:
        n = int(view["len"])
        if n > self.bound:
            raise ValueError(f"sequence length {n} exceeds its bound {self.bound}: corrupt sample")
        return n

    def get(self, view: NDArray) -> NDArray:
        data: NDArray = view["data"]
        return data[: self.length(view)]

    def resize(self, view: NDArray, n: int) -> NDArray:
        if not 0 <= n <= self.bound:
            raise ValueError(f"sequence length {n} is outside 0..{self.bound}")
        view["len"] = n
        data: NDArray = view["data"]
        return data[:n]

    def set(self, view: NDArray, value: npt.ArrayLike) -> None:
        data: NDArray = view["data"]
        arr = np.asarray(value)
        n = len(arr) if arr.ndim else 1
        if n > self.bound:
            raise ValueError(f"{n} elements do not fit sequence bound {self.bound}")
        data[:n] = arr
        view["len"] = n

    def to_twin(self, view: NDArray) -> Any:
        data = self.get(view)
        if self.element.numeric:
            return data.tolist()
        return [self.element.to_twin(data[i, ...]) for i in range(len(data))]

    def from_twin(self, view: NDArray, value: Any) -> None:
        items = list(value)
        data = self.resize(view, len(items))
        if self.element.numeric:
            if items:
                data[...] = np.asarray(items, dtype=data.dtype)
            return
        for i, item in enumerate(items):
            self.element.from_twin(data[i, ...], item)


class ArrayCodec(Codec[NDArray, npt.ArrayLike]):
    """A fixed (multi-dimensional) array: read as a numpy view, twinned as nested lists."""

    def __init__(self, element: Codec[Any, Any], dims: tuple[int, ...]) -> None:
        self.element = element
        self.dims = dims

    def get(self, view: NDArray) -> NDArray:
        return view

    def to_twin(self, view: NDArray) -> Any:
        return self._nest(view, len(self.dims))

    def _nest(self, view: NDArray, depth: int) -> Any:
        element = self.element
        if depth == 1 and isinstance(element, Prim) and element.bytes_like:
            return view.tobytes()
        if element.numeric and not (isinstance(element, Prim) and element.bytes_like):
            return view.tolist()
        if depth == 1:
            return [element.to_twin(view[i, ...]) for i in range(view.shape[0])]
        return [self._nest(view[i], depth - 1) for i in range(view.shape[0])]

    def from_twin(self, view: NDArray, value: Any) -> None:
        self._fill(view, value, len(self.dims))

    def _fill(self, view: NDArray, value: Any, depth: int) -> None:
        element = self.element
        if depth == 1 and isinstance(element, Prim) and element.bytes_like:
            view[...] = np.frombuffer(bytes(value), dtype=np.uint8)
        elif element.numeric and not (isinstance(element, Prim) and element.bytes_like):
            view[...] = np.asarray(value, dtype=view.dtype)
        elif depth == 1:
            for i, item in enumerate(value):
                element.from_twin(view[i, ...], item)
        else:
            for i, item in enumerate(value):
                self._fill(view[i], item, depth - 1)


class StructCodec(Codec[V, V]):
    """A nested struct member: read as a view class over the same memory."""

    def __init__(self, cls: type[V]) -> None:
        self.cls = cls

    def get(self, view: NDArray) -> V:
        return self.cls(view)

    def set(self, view: NDArray, value: V) -> None:
        view[...] = value.array

    def to_twin(self, view: NDArray) -> Any:
        return self.cls(view).to_by_value()

    def from_twin(self, view: NDArray, value: Any) -> None:
        self.cls(view).assign(value)


class Field(Generic[G, S]):
    """A member of a generated struct class: ``name`` is the member in the numpy dtype."""

    def __init__(self, name: str, codec: Codec[G, S]) -> None:
        self.name = name
        self.codec = codec
        self.attr = name

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attr = attr

    @overload
    def __get__(self, obj: None, owner: type) -> Field[G, S]: ...
    @overload
    def __get__(self, obj: StructView, owner: type) -> G: ...
    def __get__(self, obj: StructView | None, owner: type) -> Field[G, S] | G:
        if obj is None:
            return self
        return self.codec.get(obj.array[self.name])

    def __set__(self, obj: StructView, value: S) -> None:
        self.codec.set(obj.array[self.name], value)


class StructView:
    """Base of generated struct classes: a typed window on one 0-d structured numpy array."""

    type_name: ClassVar[str] = ""
    __idl_source__: ClassVar[str] = ""  # "file.idl:line" of the struct
    dtype: ClassVar[np.dtype[Any]] = np.dtype([])
    type_hash: ClassVar[bytes] = b""
    ByValue: ClassVar[type[Any]] = object
    fields: ClassVar[dict[str, Field[Any, Any]]] = {}
    keys: ClassVar[tuple[str, ...]] = ()

    __slots__ = ("array",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.fields = {k: v for k, v in vars(cls).items() if isinstance(v, Field)}

    def __init__(self, array: NDArray | None = None) -> None:
        """Wrap ``array`` (a 0-d view with this class's dtype), or a new zeroed sample."""
        if array is None:
            array = np.zeros((), dtype=self.dtype)
        elif not isinstance(array, np.ndarray):
            raise TypeError(f"{type(self).__name__} wraps a 0-d numpy array, not {type(array)}")
        elif array.dtype != self.dtype:
            raise TypeError(f"{type(self).__name__} wraps dtype {self.dtype}, not {array.dtype}")
        elif array.shape != ():
            raise TypeError(
                f"{type(self).__name__} wraps one sample (a 0-d array), not shape {array.shape}; "
                "index a structured array with a[i, ...] for a 0-d view"
            )
        self.array: NDArray = array

    @classmethod
    def zeros(cls: type[V]) -> V:
        """A new zeroed sample in ordinary memory."""
        return cls()

    def copy(self: V) -> V:
        """A copy in ordinary memory (for keeping data after the loan is returned)."""
        return type(self)(self.array.copy())

    def resize(self, member: str, length: int) -> NDArray:
        """Set the length of a bounded sequence member; returns the view of its valid part."""
        field = self.fields.get(member)
        if field is None or not isinstance(field.codec, SequenceCodec):
            raise ValueError(f"{type(self).__name__} has no sequence member {member!r}")
        return field.codec.resize(self.array[field.name], length)

    def twin_fields(self) -> dict[str, Any]:
        """The members as keyword arguments of the by-value twin."""
        return {attr: f.codec.to_twin(self.array[f.name]) for attr, f in self.fields.items()}

    def to_by_value(self) -> Any:
        return self.ByValue(**self.twin_fields())

    def assign(self, value: Any) -> None:
        """Write a by-value twin instance into this sample, member by member."""
        for attr, f in self.fields.items():
            f.codec.from_twin(self.array[f.name], getattr(value, attr))

    @classmethod
    def from_by_value(cls: type[V], value: Any) -> V:
        """A new sample (ordinary memory) holding a by-value twin's data."""
        view = cls()
        view.assign(value)
        return view

    def __repr__(self) -> str:
        parts = []
        for attr, f in self.fields.items():
            value = f.__get__(self, type(self))
            if isinstance(value, np.ndarray):
                text = f"<{value.dtype.name if value.dtype.names is None else 'struct'} {value.shape}>"
                if value.size <= 8 and value.dtype.names is None:
                    text = repr(value.tolist())
            else:
                text = repr(value)
            parts.append(f"{attr}={text}")
        return f"{type(self).__name__}({', '.join(parts)})"
