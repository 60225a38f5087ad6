"""Samples larger than 2 GiB (and 4 GiB offsets): no 32-bit size or offset anywhere.

numpy refuses a dtype of 2 GiB or more, so such a sample is a ShmemType with a shape.

The pool's memory is reserved when the writer makes it (a full /dev/shm is an error then,
not a SIGBUS later), so this test needs 5 GB of /dev/shm; the reader maps it and touches a
few pages only.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

import loanbus
from loanbus import _layout as L
from tests.helpers import CTX, join_ok, start

SIZE = 2_500_000_000
HUGE = loanbus.ShmemType("test::Huge", np.uint8, shape=(SIZE,))
# start, just below / at / above 2**31, the middle, and the last byte
MARKS = [0, 4095, (1 << 31) - 1, 1 << 31, (1 << 31) + 1, SIZE // 2, SIZE - 4096, SIZE - 1]
QOS = loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, pool_slots=2, max_blocking_time=10.0)


def _mark(i: int) -> int:
    return 200 - 7 * i


def test_a_dtype_of_2_gib_is_refused_by_numpy_and_a_shape_carries_the_size() -> None:
    with pytest.raises(ValueError):
        np.dtype([("payload", "u1", (SIZE,))])
    assert HUGE.itemsize == SIZE and HUGE.shape == (SIZE,)
    assert HUGE.type_hash != loanbus.ShmemType("test::Huge", np.uint8).type_hash


def test_layout_offsets_beyond_4_gib_round_trip_through_the_header() -> None:
    layout = L.Layout.compute(slot_count=3, reader_rows=4, sample_size=SIZE)
    assert layout.payload_start(2) > 1 << 32 and layout.segment_size > 3 * SIZE
    header = L.encode_header(
        layout,
        type_hash=b"h" * 16,
        type_name="test::Huge",
        writer_guid=b"g" * 16,
        writer_pid=1,
        writer_start_time=2,
        writer_uid=3,
        created_ns=4,
        protected_slots=0,
    )
    assert L.decode_header(header, layout.segment_size).layout == layout


def _reader(domain_id: int, out: Any) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, "huge_sample", HUGE), qos=QOS)
        assert reader.wait_for_writers(1, timeout=30)
        samples: list[Any] = []
        while not samples:
            samples = reader.take(timeout=30)
        s = samples[0]
        payload = s.data
        marks = [int(payload[m]) for m in MARKS]
        untouched = int(payload[SIZE // 4])
        ok = reader.is_data_consistent(s)
        out.put((payload.shape, s.info.sequence_number, payload.nbytes, marks, untouched, ok))
        reader.return_loan(samples)


@pytest.mark.timeout(300)
def test_a_2_5_gb_sample_crosses_processes_in_a_pool_reserved_at_creation(domain_id: int) -> None:
    out = CTX.Queue()
    proc = start(_reader, domain_id, out)
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "huge_sample", HUGE), qos=QOS)
        assert writer._pool.layout.segment_size > 2 * SIZE > 1 << 32
        assert writer.wait_for_readers(1, timeout=30)
        loan = writer.get_loan()
        payload = loan.data
        assert payload.shape == (SIZE,) and payload.dtype == np.uint8
        for i, m in enumerate(MARKS):
            payload[m] = _mark(i)
        writer.write(loan)
        shape, ref_seq, nbytes, marks, untouched, consistent = out.get(timeout=120)
        # Reserved: every block of the segment was allocated when the pool was made.
        allocated = os.stat("/dev/shm/" + writer.segment_name.lstrip("/")).st_blocks * 512
        size = writer._pool.layout.segment_size
        join_ok(proc)
        # The second slot lies beyond 4 GiB: loan it too and touch its last byte.
        loan = writer.get_loan()
        assert loan.slot == 1
        loan.data[SIZE - 1] = 1
        writer.discard_loan(loan)
    assert (shape, ref_seq, nbytes) == ((SIZE,), 1, SIZE)
    assert marks == [_mark(i) for i in range(len(MARKS))]
    assert untouched == 0 and consistent
    assert allocated >= size, f"{allocated} bytes allocated in /dev/shm for a {size}-byte pool"
