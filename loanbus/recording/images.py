"""Image-like types, and their frames as Foxglove ``RawImage`` / ``CompressedImage`` messages.

A type is image-like when it has a width, a height, an encoding (an enum such as
``camera::PixelFormat``, or a bounded string such as ``"rgb8"``) and pixel data (an octet
array or sequence); a stride and a valid-byte count are used when present. Foxglove shows
such a topic as video with no plug-in. The messages are protobuf, encoded here by hand: a
few header bytes in front of the pixels, so the pixels are copied once, straight from the
shared memory. Pure: no DDS, no files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from loanbus.idl import runtime as rt
from loanbus.types import ShmemType, as_shmem_type

#: Foxglove's raw encodings and their bytes per pixel.
BYTES_PER_PIXEL = {
    "rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 2, "rgb16": 6, "rgba16": 8,
    "yuyv": 2, "uyvy": 2, "yuv422": 2, "yuv422_yuy2": 2, "8UC1": 1, "8UC3": 3, "16UC1": 2, "32FC1": 4,
}  # fmt: skip
#: Enumerator names (upper case) that mean a Foxglove encoding other than their lower-case name.
_ENUM_ALIASES = {"GRAY8": "mono8", "GREY8": "mono8", "GRAY16": "mono16", "GREY16": "mono16", "YUY2": "yuyv"}
#: Member names, compared in lower case without underscores.
_WIDTH, _HEIGHT = {"width"}, {"height"}
_STEP = {"step", "stride", "stridebytes", "rowstride", "bytesperrow", "rowbytes"}
_ENCODING = {"encoding", "pixelformat", "format"}
_PIXELS = {"pixels", "data", "image", "pixeldata", "buffer"}
_SIZE = {"payloadsize", "datasize", "size"}
#: simplejpeg colour spaces for the encodings it can compress.
JPEG_COLORSPACES = {"rgb8": "RGB", "bgr8": "BGR", "rgba8": "RGBA", "bgra8": "BGRA", "mono8": "GRAY"}


def encoding_of_enumerator(name: str) -> str | None:
    """The Foxglove encoding an enumerator such as ``RGB8`` or ``GRAY8`` stands for."""
    upper = name.upper()
    if upper in _ENUM_ALIASES:
        return _ENUM_ALIASES[upper]
    return upper.lower() if upper.lower() in BYTES_PER_PIXEL else None


@dataclass(frozen=True)
class ImageFrame:
    """One frame's geometry and a view of its pixel bytes (``height * step`` of them)."""

    width: int
    height: int
    step: int
    encoding: str
    pixels: np.ndarray[Any, Any]


@dataclass(frozen=True)
class ImageFields:
    """Which members of an image-like type hold what."""

    width: str
    height: str
    encoding: str
    pixels: str
    step: str | None = None
    size: str | None = None
    enum_encodings: tuple[tuple[int, str], ...] | None = None  # None: a string member
    pixels_sequence: bool = False

    def frame(self, sample: np.ndarray[Any, Any]) -> ImageFrame | None:
        """The frame in ``sample`` (a 0-d view), or None when its header does not fit its buffer."""
        width, height = int(sample[self.width]), int(sample[self.height])
        if self.enum_encodings is None:
            encoding = _string(sample[self.encoding])
        else:
            encoding = dict(self.enum_encodings).get(int(sample[self.encoding]), "")
        bpp = BYTES_PER_PIXEL.get(encoding)
        if bpp is None or width <= 0 or height <= 0:
            return None
        step = int(sample[self.step]) if self.step is not None else width * bpp
        member = sample[self.pixels]
        flat = member["data"][: int(member["len"])] if self.pixels_sequence else member.reshape(-1)
        valid = int(flat.shape[0]) if self.size is None else min(int(sample[self.size]), int(flat.shape[0]))
        if step < width * bpp or height * step > valid:
            return None
        return ImageFrame(width, height, step, encoding, flat[: height * step])


def _string(member: np.ndarray[Any, Any]) -> str:
    n = int(member["len"])
    return bytes(member["data"][:n]).decode("ascii", "replace")


def _key(name: str) -> str:
    return name.replace("_", "").lower()


def _is_octets(dtype: np.dtype[Any]) -> bool:
    while dtype.subdtype is not None:
        dtype = dtype.subdtype[0]
    return dtype.kind in "uiV" and dtype.itemsize == 1 and dtype.names is None


def _is_len_data(dtype: np.dtype[Any]) -> bool:
    return dtype.names == ("len", "data") and dtype.fields is not None and _is_octets(dtype.fields["data"][0])


def _is_int(dtype: np.dtype[Any]) -> bool:
    return dtype.kind in "iu" and dtype.subdtype is None


def image_fields(data_type: object) -> ImageFields | None:
    """How ``data_type`` (a generated class or a ShmemType) holds an image, or None if it does not."""
    stype: ShmemType = as_shmem_type(data_type)
    dtype = stype.dtype
    if stype.shape or dtype.names is None or dtype.fields is None:
        return None
    by_key = {_key(n): n for n in dtype.names}

    def find(keys: set[str], test: Callable[[np.dtype[Any]], bool]) -> str | None:
        for k in keys:
            name = by_key.get(k)
            if name is not None and test(dtype.fields[name][0]):  # type: ignore[index]
                return name
        return None

    width, height = find(_WIDTH, _is_int), find(_HEIGHT, _is_int)
    pixels = find(_PIXELS, lambda d: (d.subdtype is not None and _is_octets(d)) or _is_len_data(d))
    if width is None or height is None or pixels is None:
        return None
    encoding = find(_ENCODING, _is_len_data)
    enum_encodings: tuple[tuple[int, str], ...] | None = None
    if encoding is None:
        encoding, enum_encodings = _enum_member(data_type, dtype, by_key)
        if encoding is None:
            return None
    return ImageFields(
        width=width,
        height=height,
        encoding=encoding,
        pixels=pixels,
        step=find(_STEP, _is_int),
        size=find(_SIZE, _is_int),
        enum_encodings=enum_encodings,
        pixels_sequence=_is_len_data(dtype.fields[pixels][0]),
    )


def _enum_member(
    data_type: object, dtype: np.dtype[Any], by_key: dict[str, str]
) -> tuple[str | None, tuple[tuple[int, str], ...] | None]:
    """An enum member of a generated class that names pixel formats, with value -> encoding."""
    fields: dict[str, Any] = getattr(data_type, "fields", {}) if isinstance(data_type, type) else {}
    for k in _ENCODING:
        name = by_key.get(k)
        field = next((f for f in fields.values() if getattr(f, "name", None) == name), None)
        codec = getattr(field, "codec", None)
        if name is None or not isinstance(codec, rt.EnumCodec):
            continue
        table = tuple((int(e), enc) for e in codec.cls if (enc := encoding_of_enumerator(e.name)) is not None)
        if table:
            return name, table
    return None, None


# -- protobuf, by hand: the few fields of foxglove.RawImage and foxglove.CompressedImage -----------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _len_field(number: int, payload_len: int) -> bytes:
    return _varint(number << 3 | 2) + _varint(payload_len)


def _string_field(number: int, text: str) -> bytes:
    data = text.encode()
    return _len_field(number, len(data)) + data if data else b""


def _fixed32(number: int, value: int) -> bytes:
    return _varint(number << 3 | 5) + (value & 0xFFFFFFFF).to_bytes(4, "little")


def _timestamp(timestamp_ns: int) -> bytes:
    seconds, nanos = divmod(max(timestamp_ns, 0), 1_000_000_000)
    body = (_varint(1 << 3) + _varint(seconds) if seconds else b"") + (
        _varint(2 << 3) + _varint(nanos) if nanos else b""
    )
    return _len_field(1, len(body)) + body


def raw_image_parts(frame: ImageFrame, timestamp_ns: int, frame_id: str = "") -> tuple[bytes, bytes]:
    """A ``foxglove.RawImage`` message as the bytes before its pixels and those after them,
    in field order, as Foxglove's own encoder writes it."""
    head = b"".join(
        (
            _timestamp(timestamp_ns),
            _fixed32(2, frame.width),
            _fixed32(3, frame.height),
            _string_field(4, frame.encoding),
            _fixed32(5, frame.step),
            _len_field(6, int(frame.pixels.nbytes)),
        )
    )
    return head, _string_field(7, frame_id)


def raw_image(frame: ImageFrame, timestamp_ns: int, frame_id: str = "") -> bytes:
    """A whole ``foxglove.RawImage`` message: one copy of the pixels."""
    head, tail = raw_image_parts(frame, timestamp_ns, frame_id)
    return b"".join((head, frame.pixels.data, tail))


def compressed_image(data: bytes, fmt: str, timestamp_ns: int, frame_id: str = "") -> bytes:
    """A ``foxglove.CompressedImage`` message (``fmt``: ``jpeg``, ``png``...)."""
    return b"".join(
        (
            _timestamp(timestamp_ns),
            _len_field(2, len(data)),
            data,
            _string_field(3, fmt),
            _string_field(4, frame_id),
        )
    )


def frame_array(frame: ImageFrame) -> np.ndarray[Any, Any] | None:
    """The frame as (height, width, channels) uint8 for a JPEG encoder, or None if it has no
    8-bit colour space simplejpeg knows."""
    space = JPEG_COLORSPACES.get(frame.encoding)
    if space is None:
        return None
    channels = BYTES_PER_PIXEL[frame.encoding]
    rows = frame.pixels.reshape(frame.height, frame.step)[:, : frame.width * channels]
    return rows.reshape(frame.height, frame.width, channels)


__all__ = [
    "BYTES_PER_PIXEL",
    "ImageFields",
    "ImageFrame",
    "compressed_image",
    "encoding_of_enumerator",
    "frame_array",
    "image_fields",
    "raw_image",
    "raw_image_parts",
]
