"""Zero-copy hand-over of one field of a loan or a taken sample to array libraries (DLPack).

A field of ``loan.data`` / ``sample.data`` is already a numpy view of the pool, so the
buffer protocol (``memoryview``), ``np.asarray`` and OpenCV take it as it is. DLPack is
where read-only-ness needs care: a DLPack 0.x capsule cannot say "read-only", so a
consumer that asks for one would get a writable tensor of another process's pool. This
wrapper hands a reader's field only to DLPack 1.0 consumers (the capsule carries the
read-only flag) or as a private copy, and explains the choice when it refuses.

The exported tensor keeps the numpy view, and through it the mapping, alive: the pool is
unmapped only when the last view of it is gone, even after the writer or reader closed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_CPU = (1, 0)  # (kDLCPU, device 0)


def field_view(data: np.ndarray[Any, Any], name: str) -> np.ndarray[Any, Any]:
    """The numpy view of field ``name`` of a 0-d structured sample; ValueError names the fields."""
    fields = data.dtype.names or ()
    if name not in fields:
        raise ValueError(f"no field {name!r}; the sample's fields are {', '.join(fields) or '(none)'}")
    view: np.ndarray[Any, Any] = data[name]
    return view


class DLPackField:
    """One field of a loan or a taken sample, for ``np.from_dlpack`` / ``torch.from_dlpack``.

    Zero-copy: the consumer's array points at the pool (``address``). Read-only fields (a
    reader's view) are exported only with the DLPack 1.0 read-only flag, or copied when the
    consumer passes ``copy=True``.
    """

    __slots__ = ("_array", "name")

    def __init__(self, array: np.ndarray[Any, Any], name: str) -> None:
        self._array = array
        self.name = name

    @property
    def readonly(self) -> bool:
        return not self._array.flags.writeable

    @property
    def address(self) -> int:
        """The address of the field's first byte in this process (inside the pool's mapping)."""
        return int(self._array.__array_interface__["data"][0])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._array.shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        dtype: np.dtype[Any] = self._array.dtype
        return dtype

    def __dlpack_device__(self) -> tuple[int, int]:
        return _CPU

    def __dlpack__(
        self,
        *,
        stream: Any = None,
        max_version: tuple[int, int] | None = None,
        dl_device: tuple[int, int] | None = None,
        copy: bool | None = None,
    ) -> Any:
        """A DLPack capsule of the field: the pool itself, or a private copy if ``copy=True``."""
        if stream is not None:
            raise BufferError("loanbus pools are host memory: a DLPack stream makes no sense here")
        if dl_device is not None and tuple(dl_device) != _CPU:
            raise BufferError(f"loanbus pools are CPU memory; cannot export to device {dl_device}")
        array = self._array
        if copy:
            array = array.copy()  # the consumer asked for its own writable copy
        elif self.readonly and (max_version is None or tuple(max_version) < (1, 0)):
            raise BufferError(
                f"field {self.name!r} is a read-only view of a writer's pool and this consumer asked "
                "for a DLPack 0.x capsule, which cannot mark memory read-only; use a consumer that "
                "speaks DLPack 1.0 (numpy >= 2.1 np.from_dlpack, torch.from_dlpack) or pass copy=True"
            )
        if max_version is None:
            return array.__dlpack__()
        try:
            return array.__dlpack__(max_version=max_version)
        except TypeError:  # numpy < 2.1 knows only DLPack 0.x
            if not array.flags.writeable:
                raise BufferError(
                    f"numpy {np.__version__} cannot export a read-only array through DLPack (numpy "
                    f">= 2.1 can); pass copy=True, or use np.asarray / memoryview on the field"
                ) from None
            return array.__dlpack__()

    def __repr__(self) -> str:
        mode = "read-only" if self.readonly else "writable"
        where = f"0x{self.address:x}"
        return f"DLPackField({self.name!r}, {self._array.dtype}{list(self.shape)}, {mode}, {where})"
