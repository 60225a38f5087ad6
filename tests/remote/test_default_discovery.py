"""loanbus meets default-configured Cyclone DDS applications with no configuration on either side.

Every process here runs inside network namespaces the test creates (tests/remote/netns.py)
with no DDS configuration at all: no ``LOANBUS_DDS_PROFILE``, no ``CYCLONEDDS_URI``. Each test
runs twice, in a namespace whose only interface is ``lo`` and in one with ``lo`` and a veth
pair (multicast capable), the network a default Cyclone DDS process picks over loopback.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .netns import Lab, Namespace, lab  # noqa: F401  (the fixture)
from .procs import PEER, PLAIN, ROOT, Lines, finish, read_line_then_finish, report, run_in, spawn
from .rtps import MULTICAST_FIRST, guid_prefix

GREETING = str(ROOT / "tests" / "remote" / "Greeting.idl")
BIN = os.path.dirname(sys.executable)
LOANBUS = os.path.join(BIN, "loanbus")
CYCLONEDDS = os.path.join(BIN, "cyclonedds")
FRAMES = 5
SPDP_MULTICAST = "239.255.0.1"


@pytest.fixture(params=["lo", "veth"])
def net(request: pytest.FixtureRequest, lab: Lab) -> Namespace:  # noqa: F811
    """A namespace with only ``lo``, or with ``lo`` and a veth pair to a second namespace."""
    ns = lab.namespace()
    if request.param == "veth":
        lab.link(ns, lab.namespace())
    return ns


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[str, str]:
    """Signal ``proc`` (if it still runs) and return what it printed."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
        raise AssertionError(
            f"{proc.args} did not stop on {signal.Signals(sig).name}: {err[-2000:]}"
        ) from None


def _tool(*args: str) -> list[str]:
    """``cyclonedds ARGS`` without colours or progress bars (run it with a namespace's prefix)."""
    return [CYCLONEDDS, *args, "--suppress-progress-bar", "--color", "none"]


def _until(what: str, attempt: Callable[[], Any], timeout: float = 90) -> Any:
    """Repeat ``attempt()`` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = attempt()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout:g} s")


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; whatever still runs at its end is stopped (SIGTERM, so that
    a ``loanbus`` command unlinks its pools; SIGKILL if that does not end it)."""
    started: list[subprocess.Popen[str]] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                with contextlib.suppress(AssertionError):  # _stop killed it
                    _stop(proc)


def _pub(ns: Namespace, domain_id: int, topic: str, *args: str) -> subprocess.Popen[str]:
    return run_in(
        [LOANBUS, "pub", topic, "--idl", GREETING, "--set", "value=2.5", "--set", "tag=7",
         "--domain", str(domain_id), *args],
        prefix=ns.cmd(),
    )  # fmt: skip


def _subscribe(ns: Namespace, domain_id: int, topic: str, count: int) -> list[str]:
    """What the stock ``cyclonedds subscribe`` prints for the first ``count`` samples. Its type
    comes from a scan of the writers present; a scan that finds none yet is repeated."""

    def attempt() -> list[str] | None:
        sub = run_in(_tool("subscribe", topic, "-i", str(domain_id), "-r", "2s"), prefix=ns.cmd())
        lines = Lines(sub)
        try:
            got = lines.wait_for(
                lambda ls: (
                    sum(line.startswith("Greeting(") for line in ls) >= count or sub.poll() is not None
                ),
                60,
                "samples in cyclonedds subscribe",
            )
        finally:
            _, err = _stop(sub, signal.SIGINT)
        samples = [line for line in got if line.startswith("Greeting(")]
        if len(samples) >= count:
            return samples
        assert "No types could be discovered" in "\n".join(got), "\n".join(got) + err
        return None

    samples: list[str] = _until("a type scan that finds the writer", attempt, 180)
    return samples


@pytest.mark.timeout(300)  # type scans are repeated until one finds the writer (up to 180 s)
def test_stock_cyclonedds_subscribe_receives_a_loanbus_writers_samples_by_value(
    net: Namespace, domain_id: int, procs: list[subprocess.Popen[str]]
) -> None:
    # The writer keeps writing: samples it writes between its own match of the subscriber and
    # the subscriber's match of it are lost to a default (best-effort, volatile) reader.
    pub = _pub(net, domain_id, "greet", "--count", "0", "--rate", "20")
    procs.append(pub)
    samples = _subscribe(net, domain_id, "greet", FRAMES)
    first = re.fullmatch(r"Greeting\(id=(\d+), .*\)", samples[0])
    assert first is not None, samples
    start = int(first.group(1))
    assert samples[:FRAMES] == [
        f"Greeting(id={i}, value=2.5, tag=b'\\x07\\x07\\x07\\x07')" for i in range(start, start + FRAMES)
    ], samples
    out, err = _stop(pub)
    assert re.search(r"wrote \d+ samples of interop::Greeting on 'greet'", out), out + err


def test_stock_cyclonedds_publish_reaches_a_loanbus_reader(
    net: Namespace, domain_id: int, procs: list[subprocess.Popen[str]]
) -> None:
    sub = run_in(
        [LOANBUS, "sub", "greet", "--idl", GREETING, "--count", "2", "--each", "--domain", str(domain_id)],
        prefix=net.cmd(),
    )
    procs.append(sub)
    # cyclonedds publish finds the type of the topic's readers, then runs the lines it reads.
    lines = [
        "import time",
        "while not writer.get_matched_subscriptions(): time.sleep(0.05)",
        "",
        "writer.write(Greeting(id=41, value=0.5, tag=[1, 2, 3, 4]))",
        "writer.write(Greeting(id=42, value=1.5, tag=[1, 2, 3, 4]))",
    ]
    script = "\n".join(lines) + "\n"

    def attempt() -> str | None:
        publish = run_in(_tool("publish", "greet", "-i", str(domain_id), "-r", "2s"), prefix=net.cmd())
        procs.append(publish)
        out, _err = publish.communicate(script, timeout=120)
        return out if "Publishing" in out else None

    _until("a type scan that finds the reader", attempt, 180)
    out, err = sub.communicate(timeout=120)
    assert sub.returncode == 0, err
    assert re.search(r"id=41 value=0\.5 tag\[4\] min=1 max=4", out), out
    assert re.search(r"id=42 value=1\.5 tag\[4\] min=1 max=4", out), out
    assert "received 2 samples of interop::Greeting on 'greet'" in out


def test_a_plain_cyclone_writers_frames_reach_a_loanbus_reader_by_value(
    net: Namespace, domain_id: int
) -> None:
    d = str(domain_id)
    r = spawn([*PEER, "reader", "--domain", d, "--frames", str(FRAMES)], prefix=net.cmd())
    plain = spawn([*PLAIN, "writer", "--domain", d, "--frames", str(FRAMES)], prefix=net.cmd())
    try:
        got, _ = read_line_then_finish(r)
        written = report(plain)
    finally:
        finish(plain)
    assert written["loanbus_imported"] is False
    assert got["frames"] == list(range(1, FRAMES + 1)) and got["bad"] == 0
    assert got["paths"] == ["by-value"] and got["stats"]["by_value_taken"] == FRAMES


def test_a_plain_cyclone_reader_with_default_message_sizes_gets_a_loanbus_writers_6mb_frames(
    net: Namespace, domain_id: int
) -> None:
    d = str(domain_id)
    plain = spawn([*PLAIN, "reader", "--domain", d, "--frames", str(FRAMES)], prefix=net.cmd())
    report(plain)  # ready
    w = spawn([*PEER, "writer", "--domain", d, "--frames", str(FRAMES), "--readers", "1"], prefix=net.cmd())
    try:
        written = report(w)
        got, _ = read_line_then_finish(plain)
    finally:
        finish(w)
    assert got["frames"] == list(range(1, FRAMES + 1)) and got["bad"] == 0
    assert written["paths"] == ["by-value"] and written["stats"]["by_value_writes"] == FRAMES


def _run(ns: Namespace, argv: list[str]) -> str:
    """Run ``argv`` to completion in ``ns`` (no DDS configuration) and return its output."""
    result = subprocess.run(
        [*ns.cmd(), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "400"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _showing(ns: Namespace, argv: list[str], text: str) -> str | None:
    """The output of ``argv`` in ``ns`` with runs of white space made one, if it shows ``text``."""
    out = " ".join(_run(ns, argv).split())
    return out if text in out else None


def test_cyclonedds_ps_and_ls_name_the_loanbus_participant_and_its_endpoints(
    net: Namespace, domain_id: int, procs: list[subprocess.Popen[str]]
) -> None:
    pub = _pub(net, domain_id, "greet", "--count", "0", "--rate", "5")
    procs.append(pub)
    d = str(domain_id)
    name = f"loanbus loanbus pid {pub.pid}"  # loanbus <program> pid <pid>
    ps = _until(
        "cyclonedds ps listing loanbus", lambda: _showing(net, _tool("ps", "-i", d, "-r", "1s"), name)
    )
    assert "loanbus_ref/greet" in ps and " greet " in f"{ps} "
    by_value = "loanbus writer greet (by value)"
    ls = _until(
        "cyclonedds ls listing the writer", lambda: _showing(net, _tool("ls", "-i", d, "-r", "1s"), by_value)
    )
    assert "loanbus writer greet (references)" in ls and "interop::Greeting" in ls


def test_loanbus_ls_and_top_see_a_default_configured_plain_reader(
    net: Namespace, domain_id: int, procs: list[subprocess.Popen[str]]
) -> None:
    d = str(domain_id)
    pub = _pub(net, domain_id, "greet", "--count", "0", "--rate", "5")
    procs.append(pub)
    _subscribe_in_background = run_in(_tool("subscribe", "greet", "-i", d, "-r", "3s"), prefix=net.cmd())
    procs.append(_subscribe_in_background)
    Lines(_subscribe_in_background).wait_for(
        lambda ls: any(line.startswith("Greeting(") for line in ls), 120, "samples in cyclonedds subscribe"
    )

    def plain_reader_listed() -> dict[str, Any] | None:
        doc = json.loads(_run(net, [LOANBUS, "ls", "--domain", d, "--json", "--wait", "1"]))
        topic = next((t for t in doc["topics"] if t["name"] == "greet"), None)
        plain = [r for r in topic["readers"] if not r["loanbus"]] if topic else []
        return plain[0] if plain else None

    reader = _until("loanbus ls listing the plain reader", plain_reader_listed)
    assert reader["path"] == "by-value" and reader["type_name"] == "interop::Greeting"

    def writer_serves_it() -> dict[str, Any] | None:
        records = json.loads(_run(net, [LOANBUS, "top", "--domain", d, "--once", "--json", "--wait", "2"]))
        writers = [r for r in records if r["topic"] == "greet" and r["kind"] == "writer"]
        return writers[0] if writers and writers[0]["stats"]["by_value_readers"] == 1 else None

    writer = _until("loanbus top showing the writer serving it by value", writer_serves_it)
    assert writer["pid"] == pub.pid and writer["stats"]["by_value_writes"] > 0


def test_loanbus_announces_itself_where_and_as_a_default_cyclone_participant_does(
    net: Namespace, domain_id: int
) -> None:
    d = str(domain_id)
    interface = net.dev or "lo"
    watch = spawn(["-m", "tests.remote.rtps", "--domain", d, interface], prefix=net.cmd())
    report(watch)  # watching
    try:
        r = spawn([*PEER, "reader", "--domain", d, "--frames", "2"], prefix=net.cmd())
        plain = spawn([*PLAIN, "writer", "--domain", d, "--frames", "2"], prefix=net.cmd())
        try:
            got, _ = read_line_then_finish(r)
            written = report(plain)
        finally:
            finish(plain)
    finally:
        out, err = watch.communicate(timeout=60)  # closing its stdin ends the watch
    assert watch.returncode == 0, err
    seen = json.loads(out.splitlines()[-1])
    assert got["frames"] == [1, 2]

    def multicast(guid: str) -> set[tuple[str, str, int]]:
        prefix = guid_prefix(guid)
        return {
            (s["interface"], s["dst"], s["dport"])
            for s in seen["datagrams"]
            if s["guid_prefix"] == prefix
            and s["outgoing"]
            and s["dst"].split(".")[0].isdigit()
            and int(s["dst"].split(".")[0]) >= MULTICAST_FIRST
        }

    spdp = (interface, SPDP_MULTICAST, 7400 + 250 * domain_id)
    assert spdp in multicast(written["guid"]), seen
    assert multicast(got["guid"]) == multicast(written["guid"])
