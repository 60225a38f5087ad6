"""``loanbus ls --domain``: writers and readers of other processes, their pool, slots, holds, path."""

from __future__ import annotations

import json
import os
from typing import Any

import loanbus
from loanbus.pool import WriterPool, segment_name
from tests.cli import poll_json, run
from tests.helpers import CTX, SMALL, join_ok, start

RELIABLE = loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, max_samples=2, max_blocking_time=5.0)
TOPIC = "seen"


def _writer(domain_id: int, out: Any, done: Any) -> None:
    """Writes three samples and keeps its pool until the test is done."""
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, TOPIC, SMALL), qos=RELIABLE)
        assert writer.wait_for_readers(1, timeout=60)
        for value in range(3):
            loan = writer.get_loan()
            loan.data["value"] = value
            writer.write(loan)
        out.put(("writer", writer.segment_name))
        done.wait(120)


def _reader(domain_id: int, out: Any, done: Any) -> None:
    """Takes the three samples and keeps holding the last one until the test is done."""
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        reader = loanbus.DataReader(loanbus.Topic(dp, TOPIC, SMALL), qos=RELIABLE)
        taken: list[loanbus.LoanedSample] = []
        while len(taken) < 3:
            taken += reader.take(timeout=10)
        reader.return_loan(taken[:-1])
        held = taken[-1].info
        out.put(("reader", reader.reader_id.hex(), held.slot, held.sequence_number))
        done.wait(120)


def _topic(doc: dict[str, Any]) -> dict[str, Any] | None:
    return next((t for t in doc["topics"] if t["name"] == TOPIC), None)


def test_ls_shows_the_writer_reader_pool_slots_holds_and_path_of_other_processes(domain_id: int) -> None:
    out, done = CTX.Queue(), CTX.Event()
    procs = [start(_writer, domain_id, out, done), start(_reader, domain_id, out, done)]
    try:
        got = dict((m[0], m[1:]) for m in (out.get(timeout=90), out.get(timeout=90)))
        (segment,) = got["writer"]
        reader_id, held_slot, held_seq = got["reader"]
        writer_pid, reader_pid = procs[0].pid, procs[1].pid

        def complete(doc: dict[str, Any]) -> bool:
            topic = _topic(doc)
            pools = [p for p in doc["pools"] if p["name"] == segment]
            # The pool's hold table is the writer's copy, refreshed with its statistics.
            held = bool(pools) and pools[0]["held_slots"] == 1
            return topic is not None and len(topic["writers"]) == 1 and len(topic["readers"]) == 1 and held

        doc = poll_json(["ls", "--domain", str(domain_id), "--json"], complete, "discovery of the pair")
        topic = _topic(doc)
        assert topic is not None
        (writer,), (reader,) = topic["writers"], topic["readers"]
        assert (writer["pid"], writer["segment"], writer["type_name"]) == (writer_pid, segment, SMALL.name)
        assert writer["reliable"] is True and writer["local"] is True
        assert (reader["pid"], reader["reader_id"], reader["path"]) == (reader_pid, reader_id, "zero-copy")
        assert reader["references"] == "local"

        (pool,) = [p for p in doc["pools"] if p["name"] == segment]
        assert (pool["alive"], pool["writer_pid"], pool["slot_count"], pool["domain"]) == (
            True, writer_pid, 3, domain_id,
        )  # fmt: skip
        assert pool["held_slots"] == 1
        row = pool["readers"].index(reader_id)
        holding = [s for s in pool["slots"] if row in s["held_by"]]
        assert [(s["slot"], s["seq"], s["state"]) for s in holding] == [(held_slot, held_seq, "WRITTEN")]
        assert sorted(s["seq"] for s in pool["slots"]) == [1, 2, 3]

        table = run("ls", "--domain", str(domain_id), "--slots")
        assert table.returncode == 0, table.stderr
        text = table.stdout
        assert "local" in text and segment in text and f"pid {reader_pid}: slot {held_slot}" in text
        assert f"slot {held_slot} of pid {writer_pid}'s pool" in text  # the reader's row says what it holds
    finally:
        done.set()
        for proc in procs:
            join_ok(proc)


def test_ls_without_a_domain_lists_every_pool_on_the_host_with_its_slots(domain_id: int) -> None:
    pool = WriterPool(
        segment_name(domain_id, "solo", os.urandom(16)),
        SMALL,
        slot_count=2,
        reader_rows=1,
        writer_guid=b"s" * 16,
    )
    try:
        result = run("ls", "--json")
        assert result.returncode == 0, result.stderr
        (entry,) = [p for p in json.loads(result.stdout)["pools"] if p["name"] == pool.name]
        assert (entry["alive"], entry["slot_count"], entry["domain"], entry["writer_pid"]) == (
            True, 2, domain_id, os.getpid(),
        )  # fmt: skip
        assert [s["state"] for s in entry["slots"]] == ["FREE", "FREE"]
        table = run("ls")
        assert table.returncode == 0 and pool.name in table.stdout.replace("\n", "")
    finally:
        pool.close()


def _by_value_reader(domain_id: int, out: Any, done: Any) -> None:
    """A reader that asks for private copies (Qos.by_value) next to a zero-copy one."""
    qos = loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, by_value=True)
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        topic = loanbus.Topic(dp, TOPIC, SMALL)
        reader = loanbus.DataReader(topic, qos=qos)
        writer = loanbus.DataWriter(topic, qos=RELIABLE)
        assert reader.wait_for_writers(1, timeout=60)
        out.put(("ready", reader.reader_id.hex()))
        done.wait(120)
        writer.close()


def test_ls_names_a_by_value_reader_and_lists_each_loanbus_endpoint_once(domain_id: int) -> None:
    out, done = CTX.Queue(), CTX.Event()
    proc = start(_by_value_reader, domain_id, out, done)
    try:
        _, reader_id = out.get(timeout=90)

        def complete(doc: dict[str, Any]) -> bool:
            topic = _topic(doc)
            return topic is not None and len(topic["writers"]) == 1 and len(topic["readers"]) == 1

        doc = poll_json(["ls", "--domain", str(domain_id), "--json"], complete, "discovery of the endpoints")
        topic = _topic(doc)
        assert topic is not None
        (reader,) = topic["readers"]  # its plain-topic twin is not listed again
        assert (reader["reader_id"], reader["path"], reader["pid"]) == (reader_id, "by-value", proc.pid)
    finally:
        done.set()
        join_ok(proc)


def test_ls_lists_a_plain_reader_that_copied_a_loanbus_writers_qos_as_the_plain_reader_it_is(
    domain_id: int,
) -> None:
    # cyclonedds subscribe gives its reader the QoS of the writers it finds, user data too.
    from cyclonedds.domain import DomainParticipant as PlainParticipant
    from cyclonedds.qos import Policy, Qos
    from cyclonedds.sub import DataReader as PlainReader
    from cyclonedds.topic import Topic as PlainTopic

    from loanbus import _advert
    from loanbus._lifetime import wait_until
    from loanbus._transport.dds import _delete

    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, TOPIC, SMALL), qos=RELIABLE)
        plain = PlainParticipant(domain_id)  # in the domain loanbus configured
        try:
            copied = Qos(
                Policy.Reliability.Reliable(0), Policy.Userdata(_advert.encode_writer(writer._advert))
            )
            reader_ = PlainReader(plain, PlainTopic(plain, TOPIC, writer._value_type.twin), qos=copied)
            assert wait_until(lambda: [m.path for m in writer.matched_readers()] == ["by-value"], 30)

            def complete(doc: dict[str, Any]) -> bool:
                topic = _topic(doc)
                return topic is not None and len(topic["writers"]) == 1 and len(topic["readers"]) == 1

            doc = poll_json(
                ["ls", "--domain", str(domain_id), "--json"], complete, "discovery of the endpoints"
            )
            topic = _topic(doc)
            assert topic is not None
            (reader,) = topic["readers"]
            assert (reader["loanbus"], reader["path"], reader["pid"]) == (False, "by-value", None)
            assert reader["type_name"] == SMALL.name and reader["guid"] == str(reader_.guid)
        finally:
            _delete(plain)
