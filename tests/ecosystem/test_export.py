"""Zero-copy hand-over to numpy (DLPack, buffer protocol), OpenCV and torch.

Each test proves the consumer's array *is* the pool: its address equals the slot's field
address inside this process's mapping of the segment (read off ``/proc/self/maps`` and the
pool header), and a reader's mapping is read-only (``r--s``).
"""

from __future__ import annotations

import gc
import os
import signal
from typing import Any

import cv2
import numpy as np
import pytest

import loanbus
from tests import optional
from tests.ecosystem import (
    IMAGE,
    RELIABLE_5,
    Writer,
    address,
    expected_ok,
    field_address_in_pool,
    fill,
    make_qos,
    segment_mapping,
)
from tests.helpers import CTX, join_ok, start


def _take_one(reader: Any) -> Any:
    samples = reader.take(max_samples=1, timeout=30.0)
    assert len(samples) == 1
    return samples[0]


def _torch() -> Any:
    """The torch module, or None where the optional torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def test_numpy_dlpack_and_memoryview_of_a_taken_sample_are_the_pools_read_only_memory(domain_id: int) -> None:
    with Writer(domain_id, "img", RELIABLE_5) as w, loanbus.DomainParticipant(domain_id) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, "img", IMAGE), make_qos(RELIABLE_5))
        w.matched()
        w.write(42)
        sample = _take_one(reader)
        slot = sample.info.slot
        mapping = segment_mapping(w.segment)
        assert mapping is not None and mapping[1] == "r--s"  # the reader maps the pool read-only

        rgb_at = field_address_in_pool(w.segment, slot, "rgb")
        direct = np.from_dlpack(sample.data["rgb"])  # numpy's own DLPack 1.0 export
        wrapped = np.from_dlpack(sample.dlpack("rgb"))
        for arr in (direct, wrapped):
            assert address(arr) == rgb_at
            assert arr.shape == (120, 160, 3) and not arr.flags.writeable
            assert (arr == 42).all()
            with pytest.raises(ValueError, match="read-only"):
                arr[0, 0, 0] = 1
        assert sample.dlpack("rgb").address == rgb_at and sample.dlpack("rgb").readonly

        depth = np.from_dlpack(sample.dlpack("depth"))
        assert address(depth) == field_address_in_pool(w.segment, slot, "depth")
        assert depth.dtype == np.float32 and (depth == 10.5).all()

        view = memoryview(sample.data["gray"])  # the buffer protocol, as OpenCV and others use it
        assert view.readonly and view.shape == (120, 160) and view.format == "B"
        assert address(np.frombuffer(view, dtype=np.uint8)) == field_address_in_pool(w.segment, slot, "gray")
        with pytest.raises(TypeError):
            view[0, 0] = 1

        # A DLPack 0.x consumer cannot be told "read-only": refused, with the way out named.
        with pytest.raises(BufferError, match="copy=True"):
            sample.dlpack("rgb").__dlpack__()
        copied = np.from_dlpack(sample.dlpack("rgb"), copy=True)
        assert copied.flags.writeable and address(copied) != rgb_at and (copied == 42).all()

        with pytest.raises(ValueError, match="value, rgb, gray, depth"):
            sample.dlpack("pixels")
        reader.return_loan(sample)
        with pytest.raises(loanbus.LoanStateError):
            sample.dlpack("rgb")
        view.release()
        reader.close()


def test_opencv_reads_a_sample_in_place_and_refuses_to_draw_on_it(domain_id: int) -> None:
    with Writer(domain_id, "img", RELIABLE_5) as w, loanbus.DomainParticipant(domain_id) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, "img", IMAGE), make_qos(RELIABLE_5))
        w.matched()
        w.write(77)
        sample = _take_one(reader)
        rgb = sample.data["rgb"]
        assert address(rgb) == field_address_in_pool(w.segment, sample.info.slot, "rgb")
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        assert gray.shape == (120, 160) and (gray == 77).all()
        assert cv2.mean(sample.data["gray"])[0] == (77 * 7) % 251
        with pytest.raises(cv2.error, match="readonly"):
            cv2.rectangle(rgb, (0, 0), (10, 10), (255, 0, 0), -1)
        assert (rgb == 77).all() and reader.is_data_consistent(sample)
        reader.return_loan(sample)


def _array_library_writer(domain_id: int, values: list[int], out: Any) -> None:
    """Fill loans in place with torch (if installed), numpy DLPack and OpenCV; check addresses."""
    torch = _torch()
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "img", IMAGE), make_qos(RELIABLE_5))
        assert writer.wait_for_readers(1, timeout=30)
        mapping = segment_mapping(writer.segment_name)
        assert mapping is not None and mapping[1] == "rw-s"
        for value in values:
            loan = writer.get_loan()
            at = {
                f: field_address_in_pool(writer.segment_name, loan.slot, f) for f in ("rgb", "gray", "depth")
            }
            loan.data["value"] = value
            if torch is not None:
                t = torch.from_dlpack(loan.dlpack("rgb"))
                assert t.data_ptr() == at["rgb"] and tuple(t.shape) == (120, 160, 3)
                t.fill_(value % 251)
            else:
                np.from_dlpack(loan.dlpack("rgb"))[...] = value % 251
            depth = np.from_dlpack(loan.dlpack("depth"))
            assert address(depth) == at["depth"] and depth.flags.writeable
            depth[...] = value / 4
            gray = cv2.cvtColor(loan.data["rgb"], cv2.COLOR_RGB2GRAY, dst=loan.data["gray"])
            assert address(gray) == at["gray"]  # OpenCV wrote straight into the pool
            writer.write(loan)
        out.put(("written", torch is not None))
        out.get(timeout=60)


def test_a_writer_fills_loans_in_place_from_torch_numpy_and_opencv(domain_id: int) -> None:
    values = [3, 4, 5]
    out = CTX.Queue()
    proc = start(_array_library_writer, domain_id, values, out)
    try:
        with loanbus.DomainParticipant(domain_id) as dp:
            reader = loanbus.DataReader(loanbus.Topic(dp, "img", IMAGE), make_qos(RELIABLE_5))
            assert reader.wait_for_writers(1, timeout=30)
            tag, used_torch = out.get(timeout=60)
            assert tag == "written" and used_torch == (_torch() is not None)
            seen = []
            while len(seen) < len(values):
                for s in reader.take(timeout=10.0):
                    v = int(s.data["value"])
                    assert (s.data["rgb"] == v % 251).all() and (s.data["gray"] == v % 251).all()
                    assert (s.data["depth"] == v / 4).all()
                    seen.append(v)
                    reader.return_loan(s)
            assert seen == values
    finally:
        out.put("done")
        join_ok(proc)


def test_torch_from_dlpack_of_a_taken_sample_is_the_pools_memory(domain_id: int) -> None:
    optional.torch()  # skipped without torch (a failure in CI)
    import torch

    with Writer(domain_id, "img", RELIABLE_5) as w, loanbus.DomainParticipant(domain_id) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, "img", IMAGE), make_qos(RELIABLE_5))
        w.matched()
        w.write(9)
        sample = _take_one(reader)
        at = field_address_in_pool(w.segment, sample.info.slot, "depth")
        for source in (sample.data["depth"], sample.dlpack("depth")):
            t = torch.from_dlpack(source)
            assert t.data_ptr() == at and t.dtype == torch.float32 and tuple(t.shape) == (120, 160)
            assert float(t.sum()) == 120 * 160 * 9 / 4
        private = torch.from_dlpack(sample.dlpack("depth"), copy=True)
        assert private.data_ptr() != at
        private.fill_(0)  # a copy is the consumer's own
        assert (sample.data["depth"] == 9 / 4).all()
        reader.return_loan(sample)


# -- a view outlives the writer and the reader ------------------------------------------------


def _keeping_reader(domain_id: int, ctl: Any, out: Any) -> None:
    """Take a sample, export it every way, close the reader and keep reading after the writer closed."""
    torch = _torch()
    dp = loanbus.DomainParticipant(domain_id=domain_id)
    reader = loanbus.DataReader(loanbus.Topic(dp, "img", IMAGE), make_qos(RELIABLE_5))
    assert reader.wait_for_writers(1, timeout=30)
    out.put("ready")
    sample = reader.take(max_samples=1, timeout=30.0)[0]
    segment = reader.matched_writers()[0].segment
    at = field_address_in_pool(segment, sample.info.slot, "rgb")
    views: dict[str, Any] = {
        "np_dlpack": np.from_dlpack(sample.dlpack("rgb")),
        "np_direct": np.from_dlpack(sample.data["rgb"]),
        "memoryview": memoryview(sample.data["rgb"]),
        "opencv": sample.data["rgb"],
    }
    if torch is not None:
        views["torch"] = torch.from_dlpack(sample.dlpack("rgb"))
    for name, view in views.items():
        ptr = view.data_ptr() if name == "torch" else address(np.asarray(view))
        assert ptr == at, name
    del sample
    reader.close()  # the pool cannot be unmapped under the views: it is kept mapped
    dp.close()
    out.put(("closed", sorted(views)))
    assert ctl.get(timeout=60) == "writer closed"  # the segment's name is unlinked by now
    assert not os.path.exists("/dev/shm/" + segment.lstrip("/"))
    assert segment_mapping(segment) is not None  # still mapped, as "(deleted)"
    for name, view in views.items():
        arr = view.numpy() if name == "torch" else np.asarray(view)
        assert arr.shape == (120, 160, 3) and (arr == 21).all(), name  # every byte is readable
    assert cv2.cvtColor(views["opencv"], cv2.COLOR_RGB2GRAY).mean() == 21
    views.clear()
    del view, arr
    gc.collect()
    assert segment_mapping(segment) is None  # the last view went: munmap happened
    out.put("ok")


def test_views_of_a_sample_stay_readable_after_the_reader_and_the_writer_close(domain_id: int) -> None:
    ctl, out = CTX.Queue(), CTX.Queue()
    proc = start(_keeping_reader, domain_id, ctl, out)
    try:
        with loanbus.DomainParticipant(domain_id) as dp:
            writer = loanbus.DataWriter(loanbus.Topic(dp, "img", IMAGE), make_qos(RELIABLE_5))
            segment = writer.segment_name
            assert writer.wait_for_readers(1, timeout=30)
            assert out.get(timeout=60) == "ready"
            loan = writer.get_loan()
            fill(loan.data, 21)
            writer.write(loan)
            tag, exported = out.get(timeout=60)
            assert tag == "closed" and {"np_dlpack", "np_direct", "memoryview", "opencv"} <= set(exported)
            writer.close()
            # Nothing of the pool is left in /dev/shm although a reader still maps it.
            assert not [n for n in os.listdir("/dev/shm") if segment.lstrip("/") in n]
        ctl.put("writer closed")
        assert out.get(timeout=60) == "ok"
    finally:
        proc.join(60)
    assert proc.exitcode == 0  # no SIGBUS, no SIGSEGV


def _keeping_writer(domain_id: int, out: Any) -> None:
    torch = _torch()
    dp = loanbus.DomainParticipant(domain_id=domain_id)
    writer = loanbus.DataWriter(loanbus.Topic(dp, "img", IMAGE), make_qos(RELIABLE_5))
    segment = writer.segment_name
    loan = writer.get_loan()
    at = field_address_in_pool(segment, loan.slot, "depth")
    depth = np.from_dlpack(loan.dlpack("depth"))
    tensor = torch.from_dlpack(loan.dlpack("depth")) if torch is not None else None
    view = memoryview(loan.data["gray"])
    assert address(depth) == at and not view.readonly
    writer.close()
    dp.close()
    assert not [n for n in os.listdir("/dev/shm") if segment.lstrip("/") in n]  # unlinked at close
    depth[...] = 2.5  # the memory is private to us now, and still mapped
    assert (depth == 2.5).all()
    if tensor is not None:
        tensor.add_(1.0)
        assert (depth == 3.5).all()
    view[0, 0] = 200
    assert view[0, 0] == 200
    view.release()
    del depth, tensor, loan
    gc.collect()
    assert segment_mapping(segment) is None
    out.put("ok")


def test_views_of_a_loan_stay_valid_after_the_writer_closes_and_the_name_is_gone(domain_id: int) -> None:
    out = CTX.Queue()
    proc = start(_keeping_writer, domain_id, out)
    assert out.get(timeout=60) == "ok"
    proc.join(60)
    assert proc.exitcode == 0


# -- a reader can never write to the pool --------------------------------------------------


def _torch_vandal(domain_id: int, ready: Any, writing: Any, wrote: Any) -> None:
    import torch

    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, "img", IMAGE), make_qos(RELIABLE_5))
        assert reader.wait_for_writers(1, timeout=30)
        ready.set()
        sample = reader.take(max_samples=1, timeout=30.0)[0]
        tensor = torch.from_dlpack(sample.data["rgb"])  # torch ignores DLPack's read-only flag
        writing.set()  # (events, not a queue: a queue's feeder thread would die with us unflushed)
        tensor[0, 0, 0] = 0  # the pages are mapped PROT_READ: this write must kill us
        wrote.set()


def test_a_write_through_a_torch_tensor_of_a_sample_faults_and_never_corrupts_the_pool(
    domain_id: int,
) -> None:
    optional.torch()  # skipped without torch (a failure in CI)
    ready, writing, wrote = CTX.Event(), CTX.Event(), CTX.Event()
    proc = start(_torch_vandal, domain_id, ready, writing, wrote)
    with loanbus.DomainParticipant(domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, "img", IMAGE), make_qos(RELIABLE_5))
        assert writer.wait_for_readers(1, timeout=30)
        assert ready.wait(60)
        loan = writer.get_loan()
        fill(loan.data, 33)
        mine = loan.data  # the writer's own view of the slot
        writer.write(loan)
        proc.join(60)
        assert writing.is_set() and not wrote.is_set()
        assert proc.exitcode == -signal.SIGSEGV
        assert expected_ok(mine) and int(mine["value"]) == 33
