"""Qos(huge_pages=True): granted or refused with a reason that is logged, never silently; a pool
works the same either way, across processes."""

from __future__ import annotations

import logging
import mmap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import loanbus
from loanbus import _shm
from tests.helpers import CTX, join_ok, start

BIG = loanbus.ShmemType("test::Big", np.dtype([("seq", "<u8"), ("payload", "u1", (8 << 20,))]))
MARKS = [0, 1 << 20, (4 << 20) + 5, (8 << 20) - 1]


def _qos(huge: bool) -> loanbus.Qos:
    return loanbus.Qos(
        reliability=loanbus.Reliability.RELIABLE, max_samples=2, max_blocking_time=10.0, huge_pages=huge
    )


def _reader(domain_id: int, huge: bool, out: Any) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, "huge", BIG), qos=_qos(huge))
        assert reader.wait_for_writers(1, timeout=30)
        samples: list[Any] = []
        while not samples:
            samples = reader.take(timeout=30)
        s = samples[0]
        payload = s.data["payload"]
        out.put((int(s.data["seq"]), [int(payload[m]) for m in MARKS], int(payload.sum(dtype=np.uint64))))
        reader.return_loan(samples)


@pytest.mark.parametrize("huge", [False, True], ids=["normal pages", "huge pages"])
def test_a_pool_works_with_and_without_huge_pages(
    domain_id: int, huge: bool, caplog: pytest.LogCaptureFixture
) -> None:
    out = CTX.Queue()
    proc = start(_reader, domain_id, huge, out)
    with (
        caplog.at_level(logging.WARNING, logger="loanbus"),
        loanbus.DomainParticipant(domain_id=domain_id) as dp,
    ):
        writer = loanbus.DataWriter(loanbus.Topic(dp, "huge", BIG), qos=_qos(huge))
        status = writer._pool.huge_pages
        if not huge:
            assert status == "off"
        else:
            assert status == "on" or status.startswith("refused: ")
            if status != "on":  # the fallback is reported, not silent
                assert any("huge pages were refused" in r.getMessage() for r in caplog.records)
        assert writer.wait_for_readers(1, timeout=30)
        loan = writer.get_loan()
        loan.data["seq"] = 42
        payload = loan.data["payload"]
        payload.fill(1)
        for i, m in enumerate(MARKS):
            payload[m] = 10 + i
        writer.write(loan)
        seq, marks, total = out.get(timeout=60)
        if status == "on":
            assert writer._pool.huge_page_bytes() >= 0  # what smaps says; 0 is allowed (fragmentation)
        join_ok(proc)
    assert seq == 42
    assert marks == [10 + i for i in range(len(MARKS))]
    assert total == (8 << 20) - len(MARKS) + sum(10 + i for i in range(len(MARKS)))


def _setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    path = tmp_path / "shmem_enabled"
    path.write_text(text)
    monkeypatch.setattr(_shm, "THP_SHMEM_SETTING", str(path))


def test_huge_pages_are_refused_with_the_reason_when_the_kernel_says_never(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _setting(tmp_path, monkeypatch, "always within_size advise [never] deny force\n")
    with mmap.mmap(-1, 4 << 20) as m:
        reason = _shm.advise_huge_pages(m)
    assert reason is not None and "'never'" in reason


def test_huge_pages_are_advised_when_the_kernel_allows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _setting(tmp_path, monkeypatch, "always within_size [advise] never deny force\n")
    with mmap.mmap(-1, 4 << 20) as m:
        assert _shm.advise_huge_pages(m) is None  # a real madvise(MADV_HUGEPAGE) on a real mapping


def test_huge_pages_are_refused_when_the_kernel_has_no_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_shm, "THP_SHMEM_SETTING", str(tmp_path / "missing"))
    with mmap.mmap(-1, 4 << 20) as m:
        reason = _shm.advise_huge_pages(m)
    assert reason is not None and "missing" in reason


def test_huge_pages_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="huge_pages"):
        loanbus.Qos(huge_pages="yes")  # type: ignore[arg-type]
