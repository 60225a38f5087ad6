"""The cyclonedds command-line tools show loanbus's participants and endpoints by readable names."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

import loanbus

from .procs import LOOPBACK_XML

FRAME = loanbus.ShmemType("tools::Frame", np.dtype([("seq", "<u8"), ("pixels", "u1", (64,))]))
CYCLONEDDS = os.path.join(os.path.dirname(sys.executable), "cyclonedds")


def _tool(command: str, domain_id: int) -> str:
    """Run ``cyclonedds COMMAND`` on the domain with the loopback profile's configuration."""
    env = dict(os.environ, CYCLONEDDS_URI=LOOPBACK_XML, COLUMNS="400")
    args = [CYCLONEDDS, command, "-i", str(domain_id), "-r", "2s", "--suppress-progress-bar"]
    result = subprocess.run([*args, "--color", "none"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_cyclonedds_ps_and_ls_name_loanbus_participants_and_endpoints(domain_id: int) -> None:
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        topic = loanbus.Topic(dp, "frames", FRAME)
        writer = loanbus.DataWriter(topic)
        reader = loanbus.DataReader(topic)
        assert writer.wait_for_readers(1, timeout=30) and reader.wait_for_writers(1, timeout=30)
        program = os.path.basename(sys.argv[0])
        ps = _tool("ps", domain_id)
        assert f"loanbus {program} pid {os.getpid()}" in " ".join(ps.split()), ps
        assert "loanbus_ref/frames" in ps and "frames" in ps
        ls = " ".join(_tool("ls", domain_id).split())
        for name in (
            "loanbus writer frames (references)",
            "loanbus writer frames (by value)",
            "loanbus reader frames (references)",
            "loanbus reader frames (by value)",
        ):
            assert name in ls, f"{name!r} not in: {ls}"
        assert "tools::Frame" in ls and "loanbus::LoanRef" in ls
