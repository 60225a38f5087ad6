"""How samples of one type become MCAP messages and back: CDR with an ``omgidl`` schema.

The CDR bytes are the ones loanbus's by-value path puts on the wire (``loanbus._byvalue``
through ``loanbus._transport.value_type``), so any CDR/omgidl reader (Foxglove, the ``mcap``
tools) decodes them with the recorded IDL text. For a type whose CDR is its memory (a
"flat" type, such as ``camera::Image``), a message is made with one copy straight from the
shared memory; other types are walked member by member.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from loanbus._transport import ValueType, value_type
from loanbus.recording.idltext import idl_text, recorded_dtype
from loanbus.recording.typedesc import describe
from loanbus.types import ShmemType, as_shmem_type

#: MCAP schema and message encodings of a loanbus channel.
SCHEMA_ENCODING = "omgidl"
MESSAGE_ENCODING = "cdr"


def sample_bytes(data: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The memory of a sample (a 0-d struct view or a shaped array) as a flat uint8 view."""
    return data.reshape(-1).view(np.uint8)


def _flat_length(vt: ValueType, itemsize: int) -> tuple[bytes, int] | None:
    """(encapsulation header, CDR body length) when a sample's CDR body is its first bytes.

    Found by encoding a sample of non-zero bytes once: the body then is the sample's prefix
    followed by at most 3 zero bytes of padding.
    """
    codec = vt.codec
    if codec is None or not codec.flat:
        return None
    pattern = (np.arange(itemsize, dtype=np.int64) % 251 + 1).astype(np.uint8)
    encoded = bytes(codec.encode(pattern.data))
    body = encoded[4:]
    n = len(body.rstrip(b"\0"))
    if body[:n] != pattern[:n].tobytes() or len(body) - n > 3:
        return None
    return encoded[:4], n


class RecordCodec:
    """One loanable type as MCAP messages: schema text, type description, encode and decode."""

    def __init__(self, data_type: object) -> None:
        self.data_type = data_type
        self.shmem_type: ShmemType = as_shmem_type(data_type)
        stype = self.shmem_type
        self.dtype = recorded_dtype(stype)
        plain_struct = self.dtype is stype.dtype
        self.value_type = value_type(stype.name, self.dtype, stype.by_value if plain_struct else None)
        self.schema_name = stype.name
        self.schema_text = idl_text(data_type)
        self.description = describe(stype)
        self.itemsize = stype.itemsize
        flat = _flat_length(self.value_type, self.itemsize)
        self.flat = flat is not None
        self._header, self._body = flat if flat is not None else (b"", 0)
        self._pad = bytes(-(4 + self._body) & 3)

    def encode(self, data: np.ndarray[Any, Any]) -> bytes:
        """The CDR message of one sample (``data`` as a taken sample or loan exposes it)."""
        raw = sample_bytes(data)
        if self.flat:
            return b"".join((self._header, raw[: self._body].data, self._pad))
        return bytes(self.value_type.encode(data, raw.data))

    def decode_into(self, message: bytes | memoryview, out: np.ndarray[Any, Any]) -> None:
        """Write the sample of CDR ``message`` into ``out`` (a loan's data); padding becomes 0.

        Raises ``loanbus._byvalue.DecodeError`` (a ``ValueError``) for a message that does not fit.
        """
        raw = sample_bytes(out)
        view = memoryview(message).cast("B")
        if self.flat and bytes(view[:4]) == self._header and len(view) >= 4 + self._body:
            raw[: self._body] = np.frombuffer(view, dtype=np.uint8, count=self._body, offset=4)
            raw[self._body :] = 0
            return
        value = self.value_type.decode(bytes(view))
        raw[:] = value.reshape(-1).view(np.uint8)


__all__ = ["MESSAGE_ENCODING", "SCHEMA_ENCODING", "RecordCodec", "sample_bytes"]
