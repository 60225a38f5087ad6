"""Test isolation: each test gets its own DDS domain and shm name prefix, and the session
fails if any loanbus entry is left in /dev/shm.

DDS traffic stays on this machine: before any participant exists, the session selects
loanbus's loopback profile (inherited by every process a test starts) and drops
``CYCLONEDDS_URI``. A plain Cyclone DDS process a test starts gets the same configuration
through ``CYCLONEDDS_URI`` (tests/remote/procs.py ``plain_cyclone_env``); one a test
creates in its own process joins a domain a loanbus participant already configured. Tests
of the default discovery run inside network namespaces of their own and remove both
variables there (tests/remote/netns.py). Run as root, the session also watches every
interface but lo with packet sockets and fails if an RTPS datagram to a port of its
domains left by one (tests/remote/rtps.py).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import pytest

os.environ["LOANBUS_DDS_PROFILE"] = "loopback"
os.environ.pop("CYCLONEDDS_URI", None)

_SESSION_TAG = f"t{os.getpid()}"


def _domain_range() -> range:
    """Domains this session may use: LOANBUS_TEST_DOMAINS="FIRST-LAST" lets two suites run side by
    side on one machine (for example from two checkouts) without seeing each other."""
    spec = os.environ.get("LOANBUS_TEST_DOMAINS", "1-229")
    first, _, last = spec.partition("-")
    return range(int(first), int(last or first) + 1)


_domains = itertools.cycle(_domain_range())
_counter = itertools.count()


def _leftovers() -> list[str]:
    return sorted(n for n in os.listdir("/dev/shm") if "loanbus" in n and _SESSION_TAG in n)


@pytest.fixture(autouse=True)
def shm_prefix(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A unique shm name prefix per test (inherited by child processes)."""
    tag = f"{_SESSION_TAG}x{next(_counter)}"
    monkeypatch.setenv("LOANBUS_SHM_PREFIX", tag)
    yield tag


@pytest.fixture
def domain_id() -> int:
    """A DDS domain of its own, so tests never see each other's entities."""
    return next(_domains)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Where the session may open packet sockets (root), watch every interface but lo for
    RTPS datagrams of the session's domains leaving this machine, for as long as it runs."""
    if os.geteuid() == 0:
        from tests.remote.rtps import PacketWatch, other_interfaces

        session.config.stash[_WATCH] = PacketWatch(other_interfaces())


def _leaked(session: pytest.Session) -> list[str]:
    watch = session.config.stash.get(_WATCH, None)
    if watch is None:
        return []
    watch.close()
    domains = _domain_range()
    return [
        f"{p.interface}: {p.src}:{p.sport} -> {p.dst}:{p.dport}"
        for p in watch.datagrams()
        if p.outgoing and any(p.to_domain(d) for d in domains)
    ]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left, leaked = _leftovers(), _leaked(session)
    session.config.stash[_LEFT] = left
    session.config.stash[_LEAKED] = leaked
    if left or leaked:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_LEFT = pytest.StashKey[list[str]]()
_LEAKED = pytest.StashKey[list[str]]()
_WATCH = pytest.StashKey[Any]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    left = terminalreporter.config.stash.get(_LEFT, None)
    if left:
        terminalreporter.section("shared memory left behind", red=True)
        for name in left:
            terminalreporter.write_line(f"/dev/shm/{name}")
        terminalreporter.write_line("FAILED: the suite left loanbus entries in /dev/shm")
    leaked = terminalreporter.config.stash.get(_LEAKED, None)
    if leaked:
        terminalreporter.section("DDS traffic beyond loopback", red=True)
        for line in leaked[:50]:
            terminalreporter.write_line(line)
        terminalreporter.write_line(
            f"FAILED: {len(leaked)} RTPS datagram(s) to the session's domains left by an interface "
            "other than lo"
        )
