"""With the test configuration (the loopback profile), no DDS packet leaves this machine.

A packet socket on every interface of the host's network namespace watches a short loanbus
exchange: a writer, a zero-copy reader and a by-value reader in processes of their own, a
plain Cyclone DDS reader (given the loopback XML, as the suite gives every plain process),
a plain participant in this process and ``loanbus ls``. Every RTPS datagram of the exchange
must cross ``lo``, and none may leave by any other interface. The session's own guard (tests/conftest.py)
watches the same way for as long as the suite runs; a session of its own in a namespace
shows that it fails a session whose traffic crosses another interface.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from cyclonedds.domain import DomainParticipant as PlainParticipant

import loanbus
from loanbus._transport.dds import _delete
from tests.cli import run
from tests.optional import require

from .netns import NETNS, Lab
from .netns import lab as lab
from .procs import PEER, PLAIN, ROOT, finish, plain_cyclone_env, read_line_then_finish, report, spawn
from .rtps import PacketWatch, guid_prefix, other_interfaces

FRAMES = 5


def test_no_rtps_packet_of_a_loanbus_exchange_leaves_by_another_interface_than_lo(domain_id: int) -> None:
    require("packet sockets", os.geteuid() == 0, "run the tests as root", NETNS, "need root")
    assert os.environ["LOANBUS_DDS_PROFILE"] == "loopback"  # the test configuration
    others = other_interfaces()
    d, n = str(domain_id), str(FRAMES)
    with PacketWatch(["lo", *others]) as watch, loanbus.DomainParticipant(domain_id) as dp:
        plain_here = PlainParticipant(domain_id)  # joins the domain loanbus configured
        try:
            plain = spawn([*PLAIN, "reader", "--domain", d, "--frames", n], env=plain_cyclone_env())
            report(plain)  # ready
            w = spawn([*PEER, "writer", "--domain", d, "--frames", n, "--readers", "3"])
            zero = spawn([*PEER, "reader", "--domain", d, "--frames", n])
            copy = spawn([*PEER, "reader", "--domain", d, "--frames", n, "--by-value"])
            try:
                written = report(w)
                results = [read_line_then_finish(p)[0] for p in (zero, copy, plain)]
                listed = run("ls", "--domain", d, "--json", "--wait", "1")
            finally:
                finish(w)
            guids = [
                dp.transport.guid,
                str(plain_here.guid),
                written["guid"],
                *(r["guid"] for r in results),
            ]
        finally:
            _delete(plain_here)
    assert listed.returncode == 0, listed.stderr
    assert all(r["frames"] == list(range(1, FRAMES + 1)) and r["bad"] == 0 for r in results), results
    assert written["paths"] == ["by-value", "by-value", "zero-copy"]

    ours = watch.of(domain_id, [guid_prefix(g) for g in guids])
    crossing_lo = [p for p in ours if p.interface == "lo"]
    elsewhere = [p for p in ours if p.interface != "lo" and p.outgoing]
    # The watch does see the exchange, on lo: it would see it anywhere else.
    assert len(crossing_lo) > 100 and {p.guid_prefix for p in crossing_lo} >= {guid_prefix(written["guid"])}
    assert elsewhere == [], f"RTPS datagrams of the exchange on {others}: {elsewhere[:10]}"


@pytest.mark.parametrize(("profile", "caught"), [("default", True), ("loopback", False)])
def test_the_sessions_guard_fails_a_session_whose_dds_traffic_crosses_another_interface(
    lab: Lab,
    profile: str,
    caught: bool,
) -> None:
    # A session of its own in a namespace with a veth, where default discovery multicasts.
    ns = lab.namespace()
    lab.link(ns, lab.namespace())
    result = subprocess.run(
        [*ns.cmd(env={"LEAKY_PROFILE": profile, "LOANBUS_TEST_DOMAINS": "7"}), sys.executable, "-m", "pytest",
         "-q", "-p", "no:cacheprovider", "tests/remote/_leaky_session.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert "1 passed" in out, out
    if caught:
        assert result.returncode == 1, out
        assert f"{ns.dev}: " in out and "left by an interface other than lo" in out, out
    else:
        assert result.returncode == 0 and "DDS traffic beyond loopback" not in out, out


@pytest.mark.timeout(600)
def test_the_demo_and_bench_keep_dds_on_lo_by_themselves(lab: Lab, domain_id: int) -> None:
    # No configuration at all, in a namespace where the default profile would multicast on a veth.
    ns = lab.namespace()
    lab.link(ns, lab.namespace())
    d = str(domain_id)
    watch = spawn(["-m", "tests.remote.rtps", "--domain", d, str(ns.dev)], prefix=ns.cmd())
    report(watch)  # watching

    def loanbus_cli(*args: str) -> str:
        argv = [*ns.cmd(), sys.executable, "-m", "loanbus.cli.main", *args, "--domain", d]
        result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{args}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
        return result.stdout

    try:
        demo = loanbus_cli("demo", "--seconds", "1")
        loanbus_cli(
            "bench", "--only", "loanbus,cyclone-floor", "--sizes", "64", "--iterations", "50", "--chunks", "1"
        )
    finally:
        out, err = watch.communicate(timeout=60)
    assert "frames taken" in demo
    assert watch.returncode == 0, err
    assert json.loads(out.splitlines()[-1])["datagrams"] == []


def test_cyclonedds_uri_replaces_the_profile(lab: Lab, domain_id: int) -> None:
    # The default profile asked for, but CYCLONEDDS_URI names the loopback configuration:
    # in a namespace where the default profile would multicast on a veth, nothing does.
    ns = lab.namespace()
    lab.link(ns, lab.namespace())
    d = str(domain_id)
    watch = spawn(["-m", "tests.remote.rtps", "--domain", d, str(ns.dev)], prefix=ns.cmd())
    report(watch)  # watching
    try:
        env = {"LOANBUS_DDS_PROFILE": "default", **plain_cyclone_env()}
        w = spawn([*PEER, "writer", "--domain", d, "--frames", "2", "--readers", "1"], prefix=ns.cmd(env=env))
        r = spawn([*PEER, "reader", "--domain", d, "--frames", "2", "--by-value"], prefix=ns.cmd(env=env))
        try:
            got, _ = read_line_then_finish(r)
        finally:
            finish(w)
    finally:
        out, err = watch.communicate(timeout=60)
    assert got["frames"] == [1, 2] and got["paths"] == ["by-value"]
    assert watch.returncode == 0, err
    assert json.loads(out.splitlines()[-1])["datagrams"] == []
