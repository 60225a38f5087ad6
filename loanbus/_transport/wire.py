"""The local reference path's two messages, as fixed-size little-endian structs (pure, no I/O).

* A **reference record** (40 bytes) goes from a writer into a reader's inbox (a pipe): which
  of the reader's writers sent it, the slot, its sequence number, size and write timestamp.
  A pipe write of at most ``PIPE_BUF`` bytes is atomic, so writers sharing one inbox never
  interleave, and a writer killed in the middle of ``write`` leaves a whole record or none.
  A **wake record** (writer index ``WAKE``) only wakes the reader; its own threads send it
  when something arrives through DDS.
* A **hello** (one ``SOCK_SEQPACKET`` message) goes from a reader to a writer's registration
  socket when it registers: who it is, the pool's registration key (proof that it could
  read the pool), the index the writer must put into its records, and flags. The inbox's
  write end and the reader's hold block travel with it as ``SCM_RIGHTS``. The writer answers
  a hello it accepts with a **welcome** carrying the sealed copy of its slots' sequence
  numbers, which the reader checks consistency against (no size check, no fault possible).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

RECORD_MAGIC = int.from_bytes(b"LBR2", "little")
RECORD = struct.Struct("<IIIIQQQ")  # magic, writer index, slot, flags, seq, size, timestamp
RECORD_SIZE = RECORD.size
WAKE = 0xFFFFFFFF  # the writer index of a wake record
WAKE_RECORD = RECORD.pack(RECORD_MAGIC, WAKE, 0, 0, 0, 0, 0)
MAX_INDEX = WAKE - 1

HELLO_MAGIC = b"LBHELLO2"
HELLO = struct.Struct("<8sII16s16sIIQ")  # magic, version, flags, reader id, key, index, pad, slots
HELLO_VERSION = 1
HELLO_RELIABLE = 1  # the reader returns holds: its hold block comes with the hello
HELLO_DDS_REFS = 2  # send it no records: it takes its references from DDS
WAKE_BYTE = b"w"  # a reader to a waiting writer, on the registration connection
WELCOME = b"LBWELCOME2"  # a writer to a reader it accepted, with its sequence copy (SCM_RIGHTS)


@dataclass(frozen=True)
class Hello:
    """What a reader says when it registers with a writer."""

    reader_id: bytes
    key: bytes
    index: int
    flags: int
    slot_count: int

    @property
    def reliable(self) -> bool:
        return bool(self.flags & HELLO_RELIABLE)

    @property
    def dds_refs(self) -> bool:
        return bool(self.flags & HELLO_DDS_REFS)

    def encode(self) -> bytes:
        return HELLO.pack(
            HELLO_MAGIC, HELLO_VERSION, self.flags, self.reader_id, self.key, self.index, 0, self.slot_count
        )


class WireError(ValueError):
    """A message that is not one loanbus sends; the text says what is wrong with it."""


def decode_hello(data: bytes) -> Hello:
    """The hello in ``data``, or ``WireError``."""
    if len(data) != HELLO.size:
        raise WireError(f"a hello is {HELLO.size} bytes, not {len(data)}")
    magic, version, flags, reader_id, key, index, _pad, slots = HELLO.unpack(data)
    if magic != HELLO_MAGIC or version != HELLO_VERSION:
        raise WireError(f"not a loanbus hello (magic {magic!r}, version {version})")
    if flags & ~(HELLO_RELIABLE | HELLO_DDS_REFS):
        raise WireError(f"unknown hello flags {flags:#x}")
    if index > MAX_INDEX:
        raise WireError(f"writer index {index} is reserved")
    return Hello(reader_id, key, index, flags, slots)


def encode_record(index: int, slot: int, seq: int, size: int, timestamp_ns: int) -> bytes:
    return RECORD.pack(RECORD_MAGIC, index, slot, 0, seq, size, timestamp_ns)


__all__ = [
    "HELLO",
    "HELLO_DDS_REFS",
    "HELLO_RELIABLE",
    "RECORD",
    "RECORD_MAGIC",
    "RECORD_SIZE",
    "WAKE",
    "WAKE_BYTE",
    "WAKE_RECORD",
    "WELCOME",
    "Hello",
    "WireError",
    "decode_hello",
    "encode_record",
]
