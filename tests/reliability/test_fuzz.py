"""Hypothesis fuzzing of segment headers and references (10,000 cases in the CI form).

Whatever the bytes, ``decode_header`` raises only ``HeaderError``; attaching raises only
``PoolFormatError``; ``check_reference`` raises only ``InvalidReferenceError``; and every
view a reader hands out lies inside its own slot.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import loanbus
from loanbus import _layout as L
from loanbus.inspect import describe
from loanbus.pool import ReaderPool, WriterPool, segment_name
from tests.helpers import SMALL
from tests.reliability import shm_path, stress

# 10,000 cases in all by default: 4,000 + 2,500 + 3,500.
DECODE_CASES = stress(4_000, 40_000)
ATTACH_CASES = stress(2_500, 25_000)
REFERENCE_CASES = stress(3_500, 35_000)


def _settings(cases: int) -> Any:
    return settings(
        max_examples=cases,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


def _word(fmt: str) -> st.SearchStrategy[Any]:
    """Values for a header word: anything of its type, with the edges and small ones likely."""
    if fmt.endswith("s"):
        n = int(fmt[:-1])
        return st.binary(min_size=n, max_size=n)
    bits = 64 if fmt == "<Q" else 32
    top = 2**bits - 1
    return st.one_of(
        st.integers(0, top),
        st.integers(0, 70_000),
        st.sampled_from(
            [v for v in (0, 1, 2, L.PAGE - 1, L.PAGE, L.PAGE + 1, 2**31, 2**32 - 1, 2**63, top) if v <= top]
        ),
    )


FIELDS = sorted(L.HEADER_FIELDS)
mutations = st.lists(
    st.sampled_from(FIELDS).flatmap(lambda f: st.tuples(st.just(f), _word(L.HEADER_FIELDS[f][1]))),
    min_size=1,
    max_size=3,
)


def _genuine(slots: int, rows: int, size: int, protected: int = 0) -> bytes:
    layout = L.Layout.compute(slots, rows, size)
    return L.encode_header(
        layout,
        type_hash=b"h" * 16,
        type_name="fuzz::T",
        writer_guid=b"g" * 16,
        writer_pid=1,
        writer_start_time=1,
        writer_uid=0,
        created_ns=0,
        protected_slots=protected,
    )


def _check_geometry(header: L.Header, file_size: int) -> None:
    lay = header.layout
    assert lay.segment_size == file_size
    assert 1 <= lay.slot_count <= L.MAX_SLOTS and 1 <= lay.reader_rows <= L.MAX_READER_ROWS
    assert 0 < lay.sample_size <= lay.slot_stride and lay.slot_stride % L.PAGE == 0
    assert lay.payload_offset % L.PAGE == 0 and lay.hold_table_offset % L.PAGE == 0
    assert lay.payload_start(lay.slot_count - 1) + lay.slot_stride == file_size
    assert lay.hold_row_start(lay.reader_rows - 1) + lay.hold_row_stride <= lay.payload_offset
    assert header.protected_slots < lay.slot_count and header.state in (0, 1, 2)


def test_decode_header_raises_only_header_error_and_decodes_only_sound_geometry() -> None:
    genuine = [_genuine(1, 1, 8), _genuine(3, 2, 5000, 1), _genuine(64, 16, 3 * L.PAGE)]

    @_settings(DECODE_CASES)
    @given(
        base=st.sampled_from(range(len(genuine))),
        changes=mutations,
        splice=st.one_of(st.none(), st.tuples(st.integers(0, L.HEADER_SIZE), st.binary(max_size=200))),
        cut=st.one_of(st.none(), st.integers(0, L.HEADER_SIZE)),
        size_delta=st.one_of(st.just(0), st.integers(-(2**20), 2**20), st.integers(-(2**64), 2**64)),
    )
    def fuzz(
        base: int,
        changes: list[tuple[str, Any]],
        splice: tuple[int, bytes] | None,
        cut: int | None,
        size_delta: int,
    ) -> None:
        data = bytearray(genuine[base])
        true_size = struct.unpack_from("<Q", data, L.HEADER_FIELDS["segment_size"][0])[0]
        for field, value in changes:
            offset, fmt = L.HEADER_FIELDS[field]
            struct.pack_into(fmt, data, offset, value)
        if splice is not None:  # arbitrary bytes anywhere, over word boundaries
            at, junk = splice
            data[at : at + len(junk)] = junk
        if cut is not None:  # a header cut short
            del data[cut:]
        file_size = max(true_size + size_delta, 0)
        try:
            header = L.decode_header(bytes(data), file_size)
        except L.HeaderError as exc:
            assert str(exc)  # says what is wrong
            return
        _check_geometry(header, file_size)

    fuzz()


class _Fixture:
    """Three real pools and a writable mapping of each header, to damage and restore."""

    def __init__(self) -> None:
        self.pools: list[WriterPool] = []
        self.maps: list[mmap.mmap] = []
        self.saved: list[bytes] = []
        for slots, rows, protected in ((1, 1, 0), (3, 2, 1), (5, 4, 0)):
            name = segment_name(0, "fuzz", os.urandom(16))
            pool = WriterPool(
                name,
                SMALL,
                slot_count=slots,
                reader_rows=rows,
                protected_slots=protected,
                writer_guid=b"w" * 16,
            )
            fd = os.open(shm_path(name), os.O_RDWR)
            self.maps.append(mmap.mmap(fd, L.HEADER_SIZE))
            os.close(fd)
            self.pools.append(pool)
            self.saved.append(bytes(self.maps[-1][:]))

    def restore(self, i: int) -> None:
        self.maps[i][:] = self.saved[i]
        os.truncate(shm_path(self.pools[i].name), self.pools[i].layout.segment_size)

    def close(self) -> None:
        for m in self.maps:
            m.close()
        for p in self.pools:
            p.close()


@pytest.fixture
def real_pools() -> Iterator[_Fixture]:
    f = _Fixture()
    yield f
    f.close()


def _check_views(reader: ReaderPool) -> None:
    """Every slot's view is exactly one sample, inside that slot, inside the mapping."""
    assert reader._segment is not None
    base_array = np.frombuffer(reader._segment.mapping, dtype=np.uint8)
    base = base_array.__array_interface__["data"][0]
    lay = reader.layout
    for slot in range(lay.slot_count):
        view = reader.view(slot)
        start = view.__array_interface__["data"][0] - base
        assert view.nbytes == SMALL.itemsize <= lay.slot_stride
        assert start == lay.payload_start(slot)
        assert start + view.nbytes <= lay.payload_start(slot) + lay.slot_stride <= len(base_array)
    del base_array


def test_attaching_to_damaged_real_segments_refuses_cleanly_or_gives_bounded_views(
    real_pools: _Fixture,
) -> None:
    @_settings(ATTACH_CASES)
    @given(
        which=st.integers(0, 2),
        changes=mutations,
        resize=st.one_of(st.none(), st.integers(L.PAGE, 64 * L.PAGE)),
        guid=st.sampled_from([None, b"w" * 16]),
    )
    def fuzz(which: int, changes: list[tuple[str, Any]], resize: int | None, guid: bytes | None) -> None:
        pool = real_pools.pools[which]
        header = real_pools.maps[which]
        try:
            for field, value in changes:
                offset, fmt = L.HEADER_FIELDS[field]
                struct.pack_into(fmt, header, offset, value)
            if resize is not None:
                os.truncate(shm_path(pool.name), resize)
            entry = describe(pool.name.lstrip("/"))  # ls and clean read hostile headers too
            assert entry.alive or entry.state == "CLOSED"  # we hold the lock; CLOSED = going away
            try:
                reader = ReaderPool(pool.name, SMALL, writer_guid=guid)
            except loanbus.PoolFormatError as exc:
                assert pool.name in str(exc)
                return
            try:
                assert reader.layout.segment_size == os.stat(shm_path(pool.name)).st_size
                _check_views(reader)
            finally:
                reader.close()
        finally:
            real_pools.restore(which)

    fuzz()


def test_check_reference_accepts_only_references_inside_the_pool(real_pools: _Fixture) -> None:
    pool = real_pools.pools[2]
    reader = ReaderPool(pool.name, SMALL, writer_guid=b"w" * 16)
    lay = reader.layout
    edges = [-(2**63), -1, 0, 1, lay.slot_count - 1, lay.slot_count, SMALL.itemsize, 2**32 - 1, 2**63, 2**64]
    ints = st.one_of(st.integers(), st.sampled_from(edges), st.integers(-2, 70_000))

    @_settings(REFERENCE_CASES)
    @given(
        slot=ints, seq=ints, size=ints, slot_seqs=st.lists(st.integers(0, 2**64 - 1), min_size=5, max_size=5)
    )
    def fuzz(slot: int, seq: int, size: int, slot_seqs: list[int]) -> None:
        for i, value in enumerate(slot_seqs):  # a writer may have stamped anything there
            pool._slots[i * L.SLOT_WORDS + L.SLOT_SEQ] = value
        try:
            reader.check_reference(slot, seq, size)
        except loanbus.InvalidReferenceError as exc:
            assert str(exc)
            return
        assert 0 <= slot < lay.slot_count and 0 < size <= lay.sample_size
        assert 0 < seq <= slot_seqs[slot]
        view = reader.view(slot)
        assert view.nbytes == SMALL.itemsize <= lay.slot_stride

    try:
        fuzz()
        _check_views(reader)
    finally:
        reader.close()
