"""Where multicast does not get through, the explicit choices still connect everyone: the
loopback profile on a host whose firewall drops multicast, and ``LOANBUS_INTERFACE`` with
``LOANBUS_PEERS`` between two hosts whose network drops it (so default discovery, by
multicast, would find nobody across it). The filters are nft rules in the test's own
network namespaces."""

from __future__ import annotations

import signal
import time

from .netns import Lab, Namespace, need_namespaces
from .netns import lab as lab
from .procs import PEER, finish, read_line_then_finish, report, spawn
from .test_two_hosts import exchange

FRAMES = 20


def test_the_loopback_profile_connects_a_host_whose_firewall_drops_multicast(
    lab: Lab, domain_id: int
) -> None:
    need_namespaces(nft=True)
    ns = lab.namespace()
    lab.drop_multicast(ns)
    loopback = ns.cmd(env={"LOANBUS_DDS_PROFILE": "loopback"})
    d, n = str(domain_id), str(FRAMES)
    w = spawn([*PEER, "writer", "--domain", d, "--frames", n, "--readers", "2"], prefix=loopback)
    zero = spawn([*PEER, "reader", "--domain", d, "--frames", n], prefix=loopback)
    copy = spawn([*PEER, "reader", "--domain", d, "--frames", n, "--by-value"], prefix=loopback)
    try:
        written = report(w)
        z, _ = read_line_then_finish(zero)
        c, _ = read_line_then_finish(copy)
    finally:
        finish(w)
    expected = list(range(1, FRAMES + 1))
    assert z["frames"] == expected and z["bad"] == 0 and z["paths"] == ["zero-copy"]
    assert c["frames"] == expected and c["bad"] == 0 and c["paths"] == ["by-value"]
    assert written["paths"] == ["by-value", "zero-copy"]
    rtps, other = lab.multicast_dropped(ns)
    # Cyclone DDS's start-up check of multicast was dropped (the filter works); the loopback
    # profile sent no RTPS by multicast at all.
    assert other > 0 and rtps == 0


def _check_filter(lab: Lab, ns: Namespace, domain_id: int) -> None:
    """A default-configured loanbus process in ``ns`` announces itself by multicast on the
    veth; wait until the filter has dropped such an announcement, then stop it."""
    probe = spawn([*PEER, "reader", "--domain", str(domain_id), "--frames", "1"], prefix=ns.cmd())
    try:
        deadline = time.monotonic() + 60
        while lab.multicast_dropped(ns)[0] == 0:
            assert time.monotonic() < deadline, "the filter dropped no RTPS multicast in 60 s"
            time.sleep(0.05)
    finally:
        probe.send_signal(signal.SIGKILL)
        probe.communicate(timeout=30)


def test_interface_and_peers_connect_two_hosts_whose_network_drops_multicast(
    lab: Lab, domain_id: int
) -> None:
    need_namespaces(nft=True)
    a, b = lab.namespace(), lab.namespace()
    lab.link(a, b)
    for ns in (a, b):
        lab.drop_multicast(ns, on_the_wire=True)
        _check_filter(lab, ns, domain_id)
    peers = f"{a.addr},{b.addr}"
    # Each side names its own interface; both list the same peers (every host's address).
    env_a = {"LOANBUS_INTERFACE": str(a.dev), "LOANBUS_PEERS": peers}
    env_b = {"LOANBUS_INTERFACE": str(b.addr), "LOANBUS_PEERS": peers}  # by address works too
    exchange(a, b, domain_id, env_a, env_b)
