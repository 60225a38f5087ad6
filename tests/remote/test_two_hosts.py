"""Two hosts on one machine: a writer and a local reader in one network namespace, a remote
reader in another (joined by a veth pair) that is also another host for loanbus (own IPC
namespace and its own /dev/shm). The remote reader gets every 6 MB frame by value, the
local one the same frames zero-copy.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from .procs import PEER, finish, read_line_then_finish, report, spawn

FRAMES = 100
FRAME_BYTES = 6_220_800


@dataclass(frozen=True)
class Hosts:
    a: str  # network namespace of the writer and the local reader
    b: str  # network namespace of the remote reader
    dev_a: str
    dev_b: str
    ip_a: str
    ip_b: str

    def env(self, side: str) -> dict[str, str]:
        dev = self.dev_a if side == "a" else self.dev_b
        return {"LOANBUS_INTERFACE": dev, "LOANBUS_PEERS": f"{self.ip_a},{self.ip_b}"}


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    if os.geteuid() != 0:
        pytest.skip("creating network namespaces needs root")
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (iproute2 / util-linux)")
    tag = f"{os.getpid() % 10000:04d}{random.randrange(16**3):03x}"
    net = f"10.{random.randrange(64, 250)}.{random.randrange(256)}"
    h = Hosts(f"lbA{tag}", f"lbB{tag}", f"lba{tag}", f"lbb{tag}", f"{net}.1", f"{net}.2")
    created: list[str] = []
    try:
        try:
            for ns in (h.a, h.b):
                _ip("netns", "add", ns)
                created.append(ns)
            _ip("link", "add", h.dev_a, "type", "veth", "peer", "name", h.dev_b)
            for ns, dev, addr in ((h.a, h.dev_a, h.ip_a), (h.b, h.dev_b, h.ip_b)):
                _ip("link", "set", dev, "netns", ns)
                _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
                _ip("-n", ns, "link", "set", dev, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"cannot create network namespaces here: {exc.stderr.strip()}")
        yield h
    finally:
        for ns in created:  # deleting a namespace deletes its end of the veth pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", h.dev_a], capture_output=True)


def test_a_remote_reader_gets_6mb_frames_by_value_while_a_local_one_maps_them(hosts: Hosts) -> None:
    domain = os.environ.get("LOANBUS_TEST_DOMAINS", "1").split("-")[0]
    in_a = ["ip", "netns", "exec", hosts.a]
    # Another host for loanbus too: its own IPC namespace and a fresh /dev/shm.
    in_b = [
        "ip", "netns", "exec", hosts.b, "unshare", "--ipc", "--mount", "--propagation", "private",
        "sh", "-c", 'mount -t tmpfs tmpfs /dev/shm && exec "$@"', "sh",
    ]  # fmt: skip
    n = str(FRAMES)
    w = spawn(
        [*PEER, "writer", "--domain", domain, "--frames", n, "--readers", "2"],
        prefix=in_a,
        env=hosts.env("a"),
    )
    local = spawn([*PEER, "reader", "--domain", domain, "--frames", n], prefix=in_a, env=hosts.env("a"))
    remote = spawn([*PEER, "reader", "--domain", domain, "--frames", n], prefix=in_b, env=hosts.env("b"))
    try:
        written = report(w)
        near, _ = read_line_then_finish(local)
        far, _ = read_line_then_finish(remote)
    finally:
        for proc in (local, remote):
            if proc.poll() is None:
                proc.kill()
        finish(w)
    expected = list(range(1, FRAMES + 1))
    assert far["frames"] == expected and far["bad"] == 0, far
    assert far["paths"] == ["by-value"] and far["stats"]["by_value_taken"] == FRAMES
    assert far["stats"]["mapped_pools"] == 0 and far["stats"]["map_failures"] == 0
    assert near["frames"] == expected and near["bad"] == 0, near
    assert near["paths"] == ["zero-copy"] and near["stats"]["mapped_pools"] == 1
    assert near["stats"]["by_value_taken"] == 0
    assert written["paths"] == ["by-value", "zero-copy"]
    stats = written["stats"]
    assert stats["by_value_readers"] == 1 and stats["by_value_writes"] == FRAMES
    assert stats["by_value_bytes"] >= FRAMES * FRAME_BYTES
    print(f"{FRAMES} frames of {FRAME_BYTES} bytes written in {written['seconds']:.2f} s")
