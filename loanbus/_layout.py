"""The shared-memory ABI: the pool segment and a reader's hold block, computed with no I/O.

docs/shm-layout.md documents every byte; this module is the single source of truth for it.
All integers are little-endian, every 64-bit word is 8-byte aligned, each slot record is one
64-byte cache line, each hold row and each payload starts on a page boundary.

Only the writer writes its pool. A reader's hold cells live in a hold block of its own (a
sealed memfd it hands to the writer when it registers), so nobody but the writer ever needs
write access to a pool; the pool's hold table is the writer's copy of those cells for tools.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

MAGIC = b"LOANBUS1"
ABI_VERSION = 2
PAGE = 4096
CACHE_LINE = 64
HEADER_SIZE = PAGE
SLOT_RECORD_SIZE = CACHE_LINE
OWNER_RECORD_SIZE = 32
TYPE_NAME_OFFSET = 256
TYPE_NAME_SIZE = 256
MAX_SLOTS = 65536
MAX_READER_ROWS = 1024


class SegmentState(enum.IntEnum):
    """Header ``state`` word. INIT is all-zero, so a half-created segment reads as INIT."""

    INIT = 0
    READY = 1
    CLOSED = 2


# Header words: name -> (offset, struct format). Offsets are fixed by the ABI.
HEADER_FIELDS: dict[str, tuple[int, str]] = {
    "magic": (0, "8s"),
    "abi_version": (8, "<I"),
    "header_size": (12, "<I"),
    "type_hash": (16, "16s"),
    "slot_count": (32, "<Q"),
    "reader_rows": (40, "<Q"),
    "slot_stride": (48, "<Q"),
    "sample_size": (56, "<Q"),
    "slot_table_offset": (64, "<Q"),
    "owner_table_offset": (72, "<Q"),
    "hold_table_offset": (80, "<Q"),
    "hold_row_stride": (88, "<Q"),
    "payload_offset": (96, "<Q"),
    "segment_size": (104, "<Q"),
    "writer_guid": (112, "16s"),
    "writer_pid": (128, "<Q"),
    "writer_start_time": (136, "<Q"),
    "state": (144, "<Q"),
    "writer_uid": (160, "<Q"),
    "created_ns": (168, "<Q"),
    "protected_slots": (176, "<Q"),
    "registration_key": (184, "16s"),
}
# Word offsets the hot path touches directly (as uint64 indexes into the header).
STATE_WORD = HEADER_FIELDS["state"][0] // 8
KEY_SIZE = 16

# Owner records (one per hold row, written by the writer): reader id, pid, flags.
OWNER_ID, OWNER_PID, OWNER_FLAGS = 0, 16, 24
OWNER_RELIABLE = 1  # the reader returns holds (reliable QoS)
OWNER_DDS_REFS = 2  # the reader takes its references from DDS, not from the local path

# A reader's hold block: one header cache line, then one 64-bit hold cell per slot.
HOLD_MAGIC = int.from_bytes(b"LBHOLDS2", "little")
HOLD_HEADER_SIZE = CACHE_LINE
HOLD_MAGIC_WORD, HOLD_SLOTS_WORD, HOLD_WAITING_WORD = 0, 1, 2
HOLD_CELLS_WORD = HOLD_HEADER_SIZE // 8


def hold_block_size(slot_count: int) -> int:
    """Bytes of a hold block for a pool of ``slot_count`` slots (whole pages)."""
    return round_up(HOLD_HEADER_SIZE + 8 * slot_count, PAGE)


# Slot record words (uint64 index within a record).
SLOT_SEQ, SLOT_STATE, SLOT_SIZE, SLOT_TIMESTAMP = 0, 1, 2, 3
SLOT_WORDS = SLOT_RECORD_SIZE // 8


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@dataclass(frozen=True)
class Layout:
    """Where everything of one pool segment lies."""

    slot_count: int
    reader_rows: int
    sample_size: int
    slot_stride: int
    slot_table_offset: int
    owner_table_offset: int
    hold_table_offset: int
    hold_row_stride: int
    payload_offset: int
    segment_size: int

    @classmethod
    def compute(cls, slot_count: int, reader_rows: int, sample_size: int) -> Layout:
        if not 1 <= slot_count <= MAX_SLOTS:
            raise ValueError(f"slot_count must be within 1..{MAX_SLOTS}, not {slot_count}")
        if not 1 <= reader_rows <= MAX_READER_ROWS:
            raise ValueError(f"reader_rows must be within 1..{MAX_READER_ROWS}, not {reader_rows}")
        if sample_size < 1:
            raise ValueError(f"sample_size must be positive, not {sample_size}")
        slot_table = HEADER_SIZE
        owner_table = slot_table + round_up(slot_count * SLOT_RECORD_SIZE, PAGE)
        hold_table = owner_table + round_up(reader_rows * OWNER_RECORD_SIZE, PAGE)
        row_stride = round_up(slot_count * 8, PAGE)
        payload = hold_table + reader_rows * row_stride
        stride = round_up(sample_size, PAGE)
        return cls(
            slot_count=slot_count,
            reader_rows=reader_rows,
            sample_size=sample_size,
            slot_stride=stride,
            slot_table_offset=slot_table,
            owner_table_offset=owner_table,
            hold_table_offset=hold_table,
            hold_row_stride=row_stride,
            payload_offset=payload,
            segment_size=payload + slot_count * stride,
        )

    def payload_start(self, slot: int) -> int:
        return self.payload_offset + slot * self.slot_stride

    def hold_row_start(self, row: int) -> int:
        return self.hold_table_offset + row * self.hold_row_stride


@dataclass(frozen=True)
class Header:
    """The decoded header of a segment (what a reader validates before mapping payloads)."""

    magic: bytes
    abi_version: int
    header_size: int
    type_hash: bytes
    type_name: str
    layout: Layout
    writer_guid: bytes
    writer_pid: int
    writer_start_time: int
    state: int
    writer_uid: int
    created_ns: int
    protected_slots: int
    registration_key: bytes


def encode_header(
    layout: Layout,
    *,
    type_hash: bytes,
    type_name: str,
    writer_guid: bytes,
    writer_pid: int,
    writer_start_time: int,
    writer_uid: int,
    created_ns: int,
    protected_slots: int,
    registration_key: bytes = bytes(KEY_SIZE),
) -> bytes:
    """The header page with state INIT; the writer flips ``state`` to READY last."""
    name = type_name.encode()
    if len(name) >= TYPE_NAME_SIZE:
        raise ValueError(f"type name longer than {TYPE_NAME_SIZE - 1} bytes: {type_name!r}")
    buf = bytearray(HEADER_SIZE)
    values = {
        "magic": MAGIC,
        "abi_version": ABI_VERSION,
        "header_size": HEADER_SIZE,
        "type_hash": type_hash,
        "slot_count": layout.slot_count,
        "reader_rows": layout.reader_rows,
        "slot_stride": layout.slot_stride,
        "sample_size": layout.sample_size,
        "slot_table_offset": layout.slot_table_offset,
        "owner_table_offset": layout.owner_table_offset,
        "hold_table_offset": layout.hold_table_offset,
        "hold_row_stride": layout.hold_row_stride,
        "payload_offset": layout.payload_offset,
        "segment_size": layout.segment_size,
        "writer_guid": writer_guid,
        "writer_pid": writer_pid,
        "writer_start_time": writer_start_time,
        "state": SegmentState.INIT,
        "writer_uid": writer_uid,
        "created_ns": created_ns,
        "protected_slots": protected_slots,
        "registration_key": registration_key,
    }
    for key, (offset, fmt) in HEADER_FIELDS.items():
        struct.pack_into(fmt, buf, offset, values[key])
    buf[TYPE_NAME_OFFSET : TYPE_NAME_OFFSET + len(name)] = name
    return bytes(buf)


class HeaderError(ValueError):
    """The header is not one loanbus can use; the message says which word is wrong."""


def decode_header(data: bytes | memoryview, file_size: int) -> Header:
    """Decode and check a header against the size ``fstat`` reported; raise HeaderError."""
    if file_size < HEADER_SIZE or len(data) < HEADER_SIZE:
        raise HeaderError(f"segment of {file_size} bytes is smaller than a header ({HEADER_SIZE})")
    raw = {key: struct.unpack_from(fmt, data, off)[0] for key, (off, fmt) in HEADER_FIELDS.items()}
    if raw["magic"] != MAGIC:
        raise HeaderError(f"bad magic {raw['magic']!r}, expected {MAGIC!r}")
    if raw["abi_version"] != ABI_VERSION:
        raise HeaderError(f"abi version {raw['abi_version']} is not {ABI_VERSION}")
    if raw["header_size"] != HEADER_SIZE:
        raise HeaderError(f"header size {raw['header_size']} is not {HEADER_SIZE}")
    try:
        expected = Layout.compute(raw["slot_count"], raw["reader_rows"], raw["sample_size"])
    except ValueError as exc:
        raise HeaderError(f"impossible geometry: {exc}") from None
    for key in (
        "slot_stride",
        "slot_table_offset",
        "owner_table_offset",
        "hold_table_offset",
        "hold_row_stride",
        "payload_offset",
        "segment_size",
    ):
        if raw[key] != getattr(expected, key):
            raise HeaderError(f"{key} {raw[key]} does not match the geometry ({getattr(expected, key)})")
    if expected.segment_size != file_size:
        raise HeaderError(
            f"segment size {file_size} from fstat does not match the header ({expected.segment_size})"
        )
    if raw["state"] not in (s.value for s in SegmentState):
        raise HeaderError(f"unknown state {raw['state']}")
    if raw["protected_slots"] >= expected.slot_count:
        raise HeaderError(f"protected_slots {raw['protected_slots']} >= slot_count")
    name_bytes = bytes(data[TYPE_NAME_OFFSET : TYPE_NAME_OFFSET + TYPE_NAME_SIZE]).split(b"\0", 1)[0]
    return Header(
        magic=raw["magic"],
        abi_version=raw["abi_version"],
        header_size=raw["header_size"],
        type_hash=raw["type_hash"],
        type_name=name_bytes.decode(errors="replace"),
        layout=expected,
        writer_guid=raw["writer_guid"],
        writer_pid=raw["writer_pid"],
        writer_start_time=raw["writer_start_time"],
        state=raw["state"],
        writer_uid=raw["writer_uid"],
        created_ns=raw["created_ns"],
        protected_slots=raw["protected_slots"],
        registration_key=raw["registration_key"],
    )
