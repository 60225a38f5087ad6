"""The soak script in its short CI form: RSS, open fds and /dev/shm entries do not grow."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.reliability import REPO, record, shm_entries, stress


@pytest.mark.long
@pytest.mark.timeout(1200)
def test_a_short_soak_of_one_writer_and_four_readers_passes(
    domain_id: int, shm_prefix: str, tmp_path: os.PathLike[str]
) -> None:
    seconds = stress(10, 600)
    figures = os.path.join(tmp_path, "soak.json")
    command = [sys.executable, "benchmarks/soak.py", "--seconds", str(seconds), "--domain", str(domain_id)]
    result = subprocess.run(
        [*command, "--json", figures],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=seconds + 300,
    )
    print(result.stdout)
    assert result.returncode == 0 and "verdict: PASS" in result.stdout, result.stdout + result.stderr
    with open(figures) as f:
        report = json.load(f)
    written = report["results"]["writer"]["written"]
    assert written > 1000 and len(report["samples"]) >= 3
    assert all(report["results"][f"reader{i}"]["taken"] == written for i in range(4))
    record("soak", seconds=report["seconds"], written=written, verdict=report["verdict"])
    assert shm_entries(shm_prefix) == []
