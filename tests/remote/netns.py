"""Network namespaces for the tests of loanbus's default discovery.

Every test of the default discovery runs its processes inside namespaces made here, never
in the host's: there, Cyclone DDS picks an interface and multicasts as it does on any
network, and nothing of it can reach the machine's real network. A ``Lab`` creates the
namespaces (``lo`` only, or joined by a veth pair) and removes them, and the veth with them,
when the test ends, failed or not.

``Namespace.cmd()`` is the prefix that runs a command inside one with *no DDS
configuration at all*: ``LOANBUS_DDS_PROFILE`` (the loopback profile the test configuration
selects), ``CYCLONEDDS_URI`` and loanbus's discovery variables are removed from its
environment. ``cmd(own_host=True)`` also gives it an IPC namespace and a ``/dev/shm`` of its
own, so that for loanbus it is another host (``ip netns exec`` alone shares both with the
host).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.optional import NETNS, require

#: What ``cmd()`` removes: every setting that would change whom a process meets.
CONFIGURATION = (
    "LOANBUS_DDS_PROFILE",
    "CYCLONEDDS_URI",
    "LOANBUS_INTERFACE",
    "LOANBUS_PEERS",
    "LOANBUS_MULTICAST",
    "LOANBUS_MAX_PARTICIPANTS",
)


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


@dataclass
class Namespace:
    """A network namespace with ``lo`` up, and its end of a veth pair once linked."""

    name: str
    dev: str | None = None
    addr: str | None = None

    def cmd(self, *, own_host: bool = False, env: dict[str, str] | None = None) -> list[str]:
        """The prefix that runs a command in this namespace with no DDS configuration but
        ``env``."""
        prefix = ["ip", "netns", "exec", self.name]
        if own_host:
            prefix += [
                "unshare", "--ipc", "--mount", "--propagation", "private",
                "sh", "-c", 'mount -t tmpfs tmpfs /dev/shm && exec "$@"', "sh",
            ]  # fmt: skip
        unset = [arg for var in CONFIGURATION for arg in ("-u", var)]
        return [*prefix, "env", *unset, *(f"{k}={v}" for k, v in (env or {}).items())]

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command (no DDS involved: ``ip``, ``nft``) in this namespace."""
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *args], capture_output=True, text=True, timeout=timeout
        )


@dataclass
class Lab:
    """Creates namespaces and veth pairs, and removes every one of them in ``close``."""

    tag: str = field(default_factory=lambda: f"{os.getpid() % 10000:04d}{random.randrange(16**3):03x}")
    namespaces: list[Namespace] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    _families: dict[str, str] = field(default_factory=dict)

    def namespace(self) -> Namespace:
        """A new namespace whose only interface is ``lo`` (up)."""
        ns = Namespace(f"lb{len(self.namespaces)}{self.tag}")
        _ip("netns", "add", ns.name)
        self.namespaces.append(ns)
        _ip("-n", ns.name, "link", "set", "lo", "up")
        return ns

    def link(self, a: Namespace, b: Namespace) -> None:
        """Join ``a`` and ``b`` by a veth pair on a /24 of their own (multicast capable)."""
        net = f"10.{random.randrange(64, 250)}.{random.randrange(256)}"
        dev_a, dev_b = f"lv{len(self.devices)}{self.tag}", f"lv{len(self.devices) + 1}{self.tag}"
        _ip("link", "add", dev_a, "type", "veth", "peer", "name", dev_b)
        self.devices.append(dev_a)
        self.devices.append(dev_b)
        for ns, dev, addr in ((a, dev_a, f"{net}.1"), (b, dev_b, f"{net}.2")):
            _ip("link", "set", dev, "netns", ns.name)
            _ip("-n", ns.name, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns.name, "link", "set", dev, "up")
            ns.dev, ns.addr = dev, addr

    def drop_multicast(self, ns: Namespace, *, on_the_wire: bool = False) -> None:
        """Drop IPv4 multicast in ``ns``: every multicast packet it receives, as a host
        firewall does; or, ``on_the_wire``, every one leaving by its veth, as a network that
        filters multicast does (the host's own copies still loop back). Counts the RTPS ones
        (UDP to port 7400 and up whose payload starts with "RTPS") and all of them."""
        if on_the_wire:
            family, hook = "netdev", f'hook egress device "{ns.dev}"'
        else:
            family, hook = "inet", "hook input"
        rules = (
            f"table {family} loanbus_test {{\n"
            "  chain filter {\n"
            f"    type filter {hook} priority 0;\n"
            "    ip daddr 224.0.0.0/4 udp dport >= 7400 @th,64,32 0x52545053 counter drop;\n"
            "    ip daddr 224.0.0.0/4 counter drop;\n"
            "  }\n"
            "}\n"
        )
        result = subprocess.run(
            ["ip", "netns", "exec", ns.name, "nft", "-f", "-"], input=rules, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        self._families[ns.name] = family

    def multicast_dropped(self, ns: Namespace) -> tuple[int, int]:
        """(RTPS, other) multicast packets the rule of ``drop_multicast`` dropped in ``ns``."""
        result = ns.run("nft", "list", "chain", self._families[ns.name], "loanbus_test", "filter")
        assert result.returncode == 0, result.stderr
        counts = [int(n) for n in re.findall(r"counter packets (\d+)", result.stdout)]
        assert len(counts) == 2, result.stdout
        return counts[0], counts[1]

    def close(self) -> None:
        for ns in self.namespaces:  # deleting a namespace deletes the veth ends inside it
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True)
        for dev in self.devices:  # an end that never reached its namespace
            subprocess.run(["ip", "link", "del", dev], capture_output=True)
        self.namespaces.clear()
        self.devices.clear()


def need_namespaces(nft: bool = False) -> None:
    """Skip (fail where ``LOANBUS_REQUIRE_NETNS`` is set) without root, ``ip``, ``unshare``
    and, for tests that filter multicast, ``nft``."""
    require("network namespaces", os.geteuid() == 0, "run the tests as root", NETNS, "need root")
    tools = {"ip": "iproute2", "unshare": "util-linux", **({"nft": "nftables"} if nft else {})}
    missing = [tool for tool in tools if shutil.which(tool) is None]
    how = "install " + " and ".join(tools[t] for t in missing) + " (sudo apt-get install ...)"
    require(", ".join(missing), not missing, how, NETNS)


@pytest.fixture
def lab() -> Iterator[Lab]:
    need_namespaces()
    made = Lab()
    try:
        yield made
    finally:
        made.close()
