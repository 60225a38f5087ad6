"""Qos(huge_pages=True): granted or refused with a reason that is logged, never silently; a pool
works the same either way, across processes."""

from __future__ import annotations

import json
import logging
import mmap
import shutil
import subprocess
import sys
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


def _kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str, mount_options: str) -> None:
    """A fake shmem THP setting and /proc/self/mounts (the decision is pure logic)."""
    (tmp_path / "shmem_enabled").write_text(setting + "\n")
    (tmp_path / "mounts").write_text(
        "proc /proc proc rw 0 0\n"
        f"tmpfs /dev/shm tmpfs {mount_options} 0 0\n"
        "tmpfs /run tmpfs rw,huge=always 0 0\n"
    )
    monkeypatch.setattr(_shm, "THP_SHMEM_SETTING", str(tmp_path / "shmem_enabled"))
    monkeypatch.setattr(_shm, "MOUNTS", str(tmp_path / "mounts"))


@pytest.mark.parametrize(
    ("setting", "mount_options", "expected"),
    [
        ("always within_size advise [never] deny force", "rw,relatime,size=24G", "huge=never"),
        ("always within_size [advise] never deny force", "rw,huge=never", "huge=never"),
        ("always within_size advise never [deny] force", "rw,huge=advise", "'deny'"),
        ("always within_size advise [never] deny force", "rw,huge=advise", None),
        ("always within_size advise [never] deny force", "rw,huge=within_size", None),
        ("always within_size advise never deny [force]", "rw", None),
    ],
)
def test_huge_pages_follow_the_dev_shm_mount_and_the_kernel_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str, mount_options: str, expected: str | None
) -> None:
    _kernel(tmp_path, monkeypatch, setting, mount_options)
    with mmap.mmap(-1, 4 << 20) as m:
        reason = _shm.advise_huge_pages(m)  # granted means a real madvise on a real mapping
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason


def test_huge_pages_are_refused_when_the_kernel_has_no_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_shm, "THP_SHMEM_SETTING", str(tmp_path / "missing"))
    with mmap.mmap(-1, 4 << 20) as m:
        reason = _shm.advise_huge_pages(m)
    assert reason is not None and "missing" in reason


_PROBE = """
import json, os, numpy as np, loanbus
from loanbus.pool import WriterPool, segment_name
stype = loanbus.ShmemType("test::Fill", np.uint8, shape=(16 << 20,))
pool = WriterPool(segment_name(0, "thp", os.urandom(16)), stype, slot_count=1, reader_rows=1,
                  writer_guid=os.urandom(16), huge_pages=True)
pool.payload(pool.try_acquire()).fill(7)
print(json.dumps({"status": pool.huge_pages, "huge_bytes": pool.huge_page_bytes()}))
pool.close()
"""


def test_a_pool_gets_huge_pages_where_dev_shm_allows_them() -> None:
    """In a private mount namespace, /dev/shm is a fresh tmpfs with huge=advise (needs root)."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1)")
    script = 'mount -t tmpfs -o huge=advise,size=1G,mode=1777 tmpfs /dev/shm && exec "$0" -c "$1"'
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, sys.executable, _PROBE],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )
    if result.returncode != 0 and ("mount" in result.stderr or "unshare" in result.stderr):
        pytest.skip(f"cannot make a private /dev/shm here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["status"] == "on"
    assert probe["huge_bytes"] > 0  # the kernel mapped the filled sample with huge pages


def test_huge_pages_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="huge_pages"):
        loanbus.Qos(huge_pages="yes")  # type: ignore[arg-type]
