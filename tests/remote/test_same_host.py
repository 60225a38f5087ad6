"""By-value fallback on one host: forced by QoS or by another user; plain Cyclone DDS peers.

Every peer is its own process (tests/remote/_peer.py, plain_peer.py) over real Cyclone DDS
and real shared memory.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest
from cyclonedds.core import Listener
from cyclonedds.domain import DomainParticipant as PlainParticipant
from cyclonedds.qos import Policy, Qos
from cyclonedds.sub import DataReader as PlainReader
from cyclonedds.topic import Topic as PlainTopic

import loanbus
from loanbus._lifetime import wait_until

from .procs import PEER, PLAIN, finish, plain_cyclone_env, read_line_then_finish, report, spawn

FRAMES = 20


def test_a_reader_that_asks_for_by_value_gets_copies_while_another_maps_the_pool(domain_id: int) -> None:
    w = spawn([*PEER, "writer", "--domain", str(domain_id), "--frames", str(FRAMES), "--readers", "2"])
    zero = spawn([*PEER, "reader", "--domain", str(domain_id), "--frames", str(FRAMES)])
    copy = spawn([*PEER, "reader", "--domain", str(domain_id), "--frames", str(FRAMES), "--by-value"])
    try:
        written = report(w)
        z, _ = read_line_then_finish(zero)
        c, _ = read_line_then_finish(copy)
    finally:
        finish(w)
    expected = list(range(1, FRAMES + 1))
    assert z["frames"] == expected and z["bad"] == 0 and z["paths"] == ["zero-copy"]
    assert c["frames"] == expected and c["bad"] == 0 and c["paths"] == ["by-value"]
    assert z["stats"]["by_value_taken"] == 0 and z["stats"]["mapped_pools"] == 1
    # The zero-copy reader also hears the plain topic and drops the copies it does not need
    # (no duplicates above; the last copies may still be in flight when it stops).
    assert 0 < z["stats"]["by_value_dropped"] <= FRAMES
    assert c["stats"]["by_value_taken"] == FRAMES and c["stats"]["mapped_pools"] == 0
    assert written["paths"] == ["by-value", "zero-copy"]
    assert written["stats"]["by_value_readers"] == 1 and written["stats"]["by_value_writes"] == FRAMES


def test_no_by_value_traffic_while_only_local_readers_exist(domain_id: int) -> None:
    w = spawn([*PEER, "writer", "--domain", str(domain_id), "--frames", str(FRAMES), "--readers", "1"])
    r = spawn([*PEER, "reader", "--domain", str(domain_id), "--frames", str(FRAMES)])
    try:
        written = report(w)
        got, _ = read_line_then_finish(r)
    finally:
        finish(w)
    assert got["frames"] == list(range(1, FRAMES + 1)) and got["bad"] == 0
    assert written["stats"]["by_value_readers"] == 0
    assert written["stats"]["by_value_writes"] == 0 and written["stats"]["by_value_bytes"] == 0
    assert got["stats"]["by_value_dropped"] == 0 and got["stats"]["by_value_taken"] == 0


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_a_reader_running_as_another_user_falls_back_to_by_value(domain_id: int) -> None:
    # nobody cannot enter root's home where the interpreter lives: it keeps only the
    # capability to read files, which does not make it the pool's owner.
    as_nobody = [
        "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
        "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
    ]  # fmt: skip
    w = spawn([*PEER, "writer", "--domain", str(domain_id), "--frames", str(FRAMES), "--readers", "1"])
    r = spawn([*PEER, "reader", "--domain", str(domain_id), "--frames", str(FRAMES)], prefix=as_nobody)
    try:
        written = report(w)
        got, _ = read_line_then_finish(r)
    finally:
        finish(w)
    assert got["frames"] == list(range(1, FRAMES + 1)) and got["bad"] == 0
    assert got["paths"] == ["by-value"] and got["stats"]["map_failures"] == 0
    assert got["stats"]["by_value_taken"] == FRAMES
    assert written["stats"]["by_value_writes"] == FRAMES and written["stats"]["attached_readers"] == 0


def test_a_plain_cyclone_reader_receives_what_a_loanbus_writer_writes(domain_id: int) -> None:
    plain = spawn([*PLAIN, "reader", "--domain", str(domain_id), "--frames", "5"], env=plain_cyclone_env())
    report(plain)  # ready
    w = spawn([*PEER, "writer", "--domain", str(domain_id), "--frames", "5", "--readers", "1"])
    try:
        written = report(w)
        got, _ = read_line_then_finish(plain)
    finally:
        finish(w)
    assert got["frames"] == [1, 2, 3, 4, 5] and got["bad"] == 0
    assert got["loanbus_imported"] is False
    assert written["paths"] == ["by-value"] and written["stats"]["by_value_writes"] == 5


def test_a_loanbus_reader_receives_what_a_plain_cyclone_writer_writes(domain_id: int) -> None:
    r = spawn([*PEER, "reader", "--domain", str(domain_id), "--frames", "5"])
    plain = spawn([*PLAIN, "writer", "--domain", str(domain_id), "--frames", "5"], env=plain_cyclone_env())
    try:
        got, _ = read_line_then_finish(r)
        written = report(plain)
    finally:
        finish(plain)
    assert written["loanbus_imported"] is False
    assert got["frames"] == [1, 2, 3, 4, 5] and got["bad"] == 0
    assert got["paths"] == ["by-value"] and got["stats"]["by_value_taken"] == 5


def test_an_incompatible_qos_is_reported_and_counted(domain_id: int) -> None:
    frame = loanbus.ShmemType("demo::Tiny", [("a", "<u4")])
    with loanbus.DomainParticipant(domain_id) as dp:
        w = loanbus.DataWriter(loanbus.Topic(dp, "tiny", frame))  # best effort
        plain = PlainParticipant(domain_id)
        twin = w._value_type.twin
        # A plain reader that requests reliability a best-effort writer does not offer.
        reader = PlainReader(
            plain,
            PlainTopic(plain, "tiny", twin),
            qos=Qos(Policy.Reliability.Reliable(0)),
            listener=Listener(),
        )
        try:
            assert wait_until(lambda: w.statistics().incompatible_qos >= 1, 10.0)
            time.sleep(0)  # the reader never matches, so nothing is written by value
            assert w.statistics().by_value_readers == 0
        finally:
            for entity in (reader, plain):
                entity._delete(entity._ref)
