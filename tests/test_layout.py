"""The pool ABI: alignment rules and header validation, without any I/O."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loanbus import _layout as L


@given(
    slots=st.integers(1, 4096),
    rows=st.integers(1, 64),
    size=st.integers(1, 1 << 26),
)
def test_layout_keeps_every_region_aligned_and_disjoint(slots: int, rows: int, size: int) -> None:
    lay = L.Layout.compute(slots, rows, size)
    assert lay.slot_table_offset == L.HEADER_SIZE
    for offset in (lay.owner_table_offset, lay.hold_table_offset, lay.payload_offset):
        assert offset % L.PAGE == 0
    assert lay.hold_row_stride % L.PAGE == 0 and lay.hold_row_stride >= slots * 8
    assert lay.slot_stride % L.PAGE == 0 and lay.slot_stride >= size
    assert lay.owner_table_offset >= lay.slot_table_offset + slots * L.SLOT_RECORD_SIZE
    assert lay.hold_table_offset >= lay.owner_table_offset + rows * L.OWNER_RECORD_SIZE
    assert lay.payload_offset == lay.hold_table_offset + rows * lay.hold_row_stride
    assert lay.segment_size == lay.payload_offset + slots * lay.slot_stride


def test_every_header_word_is_aligned_to_its_size() -> None:
    for name, (offset, fmt) in L.HEADER_FIELDS.items():
        size = struct.calcsize(fmt)
        assert offset % min(size, 8) == 0, name
        assert offset + size <= L.TYPE_NAME_OFFSET, name


def _header(**changes: object) -> tuple[bytes, int]:
    lay = L.Layout.compute(3, 4, 1000)
    data = bytearray(
        L.encode_header(
            lay,
            type_hash=b"h" * 16,
            type_name="demo::T",
            writer_guid=b"g" * 16,
            writer_pid=1,
            writer_start_time=2,
            writer_uid=0,
            created_ns=3,
            protected_slots=0,
        )
    )
    for key, value in changes.items():
        offset, fmt = L.HEADER_FIELDS[key]
        struct.pack_into(fmt, data, offset, value)
    return bytes(data), lay.segment_size


def test_a_header_round_trips() -> None:
    data, size = _header()
    hdr = L.decode_header(data, size)
    assert hdr.type_name == "demo::T" and hdr.type_hash == b"h" * 16
    assert hdr.layout == L.Layout.compute(3, 4, 1000)
    assert hdr.state == L.SegmentState.INIT


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"magic": b"NOTLOANB"}, "bad magic"),
        ({"abi_version": 99}, "abi version 99"),
        ({"slot_count": 0}, "impossible geometry"),
        ({"payload_offset": 12}, "payload_offset"),
        ({"segment_size": 1}, "segment_size"),
        ({"state": 7}, "unknown state"),
        ({"protected_slots": 3}, "protected_slots"),
    ],
)
def test_a_broken_header_is_refused_with_the_word_named(changes: dict[str, object], message: str) -> None:
    data, size = _header(**changes)
    with pytest.raises(L.HeaderError, match=message):
        L.decode_header(data, size)


def test_a_header_whose_size_disagrees_with_fstat_is_refused() -> None:
    data, size = _header()
    with pytest.raises(L.HeaderError, match="fstat"):
        L.decode_header(data, size - L.PAGE)
    with pytest.raises(L.HeaderError, match="smaller than a header"):
        L.decode_header(data[:100], 100)
