"""``loanbus record`` and ``loanbus.record``: real writer processes, real files read back with the
``mcap`` reader, a recorder killed outright."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from mcap.reader import make_reader

import loanbus
import loanbus.idl
from loanbus.recording import METADATA_NAME, Recorder
from tests.helpers import CTX, FRAME, join_ok, start
from tests.recording import (
    CHUNK,
    IMAGE_IDL,
    REPO,
    Child,
    chunk_messages,
    hold_writer,
    records,
    write_frames,
)
from tests.reliability import shm_entries, wait_for


def _producer(domain_id: int, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "examples.camera.producer", "--domain", str(domain_id), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _twin_of_schema(schema: Any, tmp_path: Path) -> Any:
    """The by-value class cyclonedds builds from the recorded IDL text alone."""
    path = tmp_path / "schema.idl"
    path.write_text(schema.data.decode())
    module = loanbus.idl.load(path)
    return next(v for v in vars(module).values() if getattr(v, "type_name", None) == schema.name).ByValue


def _protobuf_fields(data: bytes) -> dict[int, Any]:
    """The top-level fields of a protobuf message (varint, fixed32, length-delimited)."""
    out: dict[int, Any] = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            out[number], pos = _varint(data, pos)
        elif wire == 5:
            out[number] = int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
        elif wire == 2:
            n, pos = _varint(data, pos)
            out[number] = data[pos : pos + n]
            pos += n
        else:
            raise AssertionError(f"unexpected wire type {wire}")
    return out


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def test_recording_the_camera_example_for_3_s_gives_a_file_whose_counts_match_the_writer(
    domain_id: int, tmp_path: Path
) -> None:
    out = tmp_path / "camera.mcap"
    recorder = Child(
        "record", "camera/frames", "--idl", str(IMAGE_IDL), "-o", str(out),
        "--domain", str(domain_id), "--compression", "none", "--interval", "0.2",
    )  # fmt: skip
    try:
        recorder.wait_line(r"^recording 'camera/frames'")
        producer = _producer(domain_id, "--seconds", "3", "--rate", "30", "--report-every", "0")
        produced, _ = producer.communicate(timeout=60)
        assert producer.returncode == 0, produced
        written = int(
            next(m for line in produced.splitlines() if (m := line.partition("wrote ")[2])).split()[0]
        )
        # the recorder saw the producer's last frame, written just before it closed
        recorder.wait_line(rf"last seq {written}$", timeout=30)
    finally:
        status = recorder.stop(signal.SIGINT)
    assert status == 0, recorder.output()
    summary_line = recorder.wait_line(
        r"^recorded (\d+) samples of 1 topic\(s\).*, (\d+) dropped, (\d+) inconsistent"
    )
    samples, dropped, inconsistent = (int(g) for g in summary_line.groups())

    with out.open("rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None and summary.statistics is not None  # Ctrl-C wrote the summary section
        channels = {c.topic: c for c in summary.channels.values()}
        assert set(channels) == {"camera/frames", "camera/frames/image"}
        cdr, image = channels["camera/frames"], channels["camera/frames/image"]
        assert cdr.message_encoding == "cdr" and summary.schemas[cdr.schema_id].encoding == "omgidl"
        assert (
            image.message_encoding == "protobuf"
            and summary.schemas[image.schema_id].name == "foxglove.RawImage"
        )
        twin = _twin_of_schema(summary.schemas[cdr.schema_id], tmp_path)
        counted = dict(next(m.metadata for m in reader.iter_metadata() if m.name == METADATA_NAME))
        topic = json.loads(counted["topic:camera/frames"])

        seen: dict[str, list[int]] = {"camera/frames": [], "camera/frames/image": []}
        frames: dict[int, bytes] = {}
        for _schema, channel, message in reader.iter_messages(log_time_order=False):
            seen[channel.topic].append(message.log_time)
            if channel.topic == "camera/frames":
                frame = twin.deserialize(message.data)  # cyclonedds's decoder, from the schema alone
                assert (frame.width, frame.height, frame.strideBytes, frame.payloadSize) == (
                    1920,
                    1080,
                    5760,
                    6220800,
                )
                frames[message.log_time] = frame.pixels
            else:
                fields = _protobuf_fields(message.data)
                assert (fields[2], fields[3], fields[4], fields[5]) == (1920, 1080, b"rgb8", 5760)
                assert fields[6] == frames[message.log_time]  # the same pixels as the CDR message

    assert summary.statistics.channel_message_counts[cdr.id] == len(seen["camera/frames"]) == samples
    assert len(seen["camera/frames/image"]) == samples
    for times in seen.values():
        assert times == sorted(times) and len(set(times)) == len(times)  # timestamps increase
    assert (topic["samples"], topic["dropped"], topic["inconsistent"]) == (samples, dropped, inconsistent)
    [(first, last)] = topic["writers"]
    assert last == written
    # every frame the producer wrote from the recorder's first to its last one: recorded,
    # dropped or inconsistent
    assert last - (first - 1) == samples + dropped + inconsistent
    assert samples > 0


def test_a_best_effort_writer_reusing_slots_fast_leaves_no_torn_frame_in_the_file(
    domain_id: int, tmp_path: Path, shm_prefix: str
) -> None:
    out = tmp_path / "fast.mcap"
    done, release = CTX.Queue(), CTX.Event()
    count = 150
    with Recorder(out, domain_id=domain_id, topics={"fast": FRAME}, compression="none") as recorder:
        writer = start(write_frames, domain_id, "fast", FRAME, count, 0.0, "flat", done, release)
        writes = done.get(timeout=120)
        wait_for(
            lambda: recorder.status().topics[0].last_seq == writes, 30, "the recorder to see the last frame"
        )
        release.set()
        join_ok(writer, timeout=60)
    status = recorder.status().topics[0]
    checked = 0
    for _opcode, _pos, body in (r for r in records(out.read_bytes()) if r[0] == CHUNK):
        for _channel, _log_time, data in chunk_messages(body):
            sample = np.frombuffer(data, np.uint8, count=FRAME.itemsize, offset=4)
            seq = int(sample[:8].view("<u8")[0])
            assert np.all(sample[8:] == seq % 251), f"frame {seq} in the file is torn"
            checked += 1
    assert checked == status.samples > 0
    assert status.samples + status.dropped + status.inconsistent == writes - (status.writers[0][0] - 1)
    print(f"FIGURES recorded {status.samples}, inconsistent {status.inconsistent}, dropped {status.dropped}")
    assert not shm_entries(shm_prefix)


def test_a_recorder_killed_outright_leaves_a_file_readable_up_to_its_last_complete_chunk(
    domain_id: int, tmp_path: Path, shm_prefix: str
) -> None:
    out = tmp_path / "killed.mcap"
    recorder = Child(
        "record", "camera/frames", "--idl", str(IMAGE_IDL), "-o", str(out), "--domain", str(domain_id),
        "--compression", "none", "--images", "none", "--interval", "0.2",
    )  # fmt: skip
    recorder.wait_line(r"^recording 'camera/frames'")
    producer = _producer(domain_id, "--rate", "30", "--report-every", "0")
    try:
        recorder.wait_line(r"camera/frames: .* ([2-9]\d|\d{3,}) recorded", timeout=60)
    finally:
        os.kill(recorder.proc.pid, signal.SIGKILL)
        producer.send_signal(signal.SIGTERM)
        produced, _ = producer.communicate(timeout=30)
        print(f"producer: {produced}")
    assert recorder.proc.wait(10) == -signal.SIGKILL
    assert producer.returncode == 0, produced

    data = out.read_bytes()
    complete = list(records(data))
    chunks = [r for r in complete if r[0] == CHUNK]
    assert len(chunks) >= 1
    _opcode, pos, body = complete[-1]
    tail = len(data) - (pos + 9 + len(body))
    assert tail < FRAME_CHUNK  # at most the chunk being written was lost
    messages = [m for _op, _pos, b in chunks for m in chunk_messages(b)]
    assert len(messages) == len(chunks)  # one 6 MB frame per chunk
    for _channel, _log_time, message in messages:
        assert message[:4] == b"\x00\x01\x00\x00" and len(message) == 6220836
        assert int.from_bytes(message[4:8], "little") == 1920
    # the mcap reader reads the same messages, then reports the torn end
    import mcap.stream_reader

    got = 0
    try:
        for record in mcap.stream_reader.StreamReader(out.open("rb")).records:
            got += type(record).__name__ == "Message"
    except Exception as exc:  # the torn tail
        print(f"FIGURES the mcap reader stopped at the tail: {type(exc).__name__}")
    assert got == len(messages)
    assert not shm_entries(shm_prefix)


FRAME_CHUNK = 6220836 + 22 + 9 + 80 + 64  # a message record, its chunk header and its index


def test_sigterm_finishes_the_file_with_a_summary(domain_id: int, tmp_path: Path) -> None:
    out = tmp_path / "term.mcap"
    recorder = Child("record", "--all", "-o", str(out), "--domain", str(domain_id), "--interval", "0.2")
    recorder.wait_line(r"waiting for loanbus topics")
    assert recorder.stop(signal.SIGTERM) == 128 + signal.SIGTERM
    with out.open("rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None and summary.statistics is not None
    assert summary.statistics.message_count == 0


def test_record_without_topics_or_all_is_a_one_line_error(tmp_path: Path) -> None:
    from tests.reliability import run_cli

    result = run_cli("record", "-o", str(tmp_path / "x.mcap"))
    assert result.returncode == 2
    assert result.stderr.strip() == "loanbus record: error: name the topics to record, or pass --all"


def test_record_does_not_overwrite_a_file_unless_asked(tmp_path: Path) -> None:
    from tests.reliability import run_cli

    existing = tmp_path / "x.mcap"
    existing.write_bytes(b"keep me")
    result = run_cli("record", "--all", "-o", str(existing))
    assert result.returncode == 2
    assert "exists; choose another name or pass --overwrite" in result.stderr
    assert existing.read_bytes() == b"keep me"


def test_a_topic_of_an_unknown_type_is_named_with_what_to_pass(domain_id: int, tmp_path: Path) -> None:
    release = CTX.Event()
    out = tmp_path / "unknown.mcap"
    recorder = Child("record", "--all", "-o", str(out), "--domain", str(domain_id), "--interval", "0.2")
    writer = None
    try:
        recorder.wait_line(r"^recording loanbus topics")
        writer = start(hold_writer, domain_id, "mystery", FRAME, release)
        recorder.wait_line(r"topic 'mystery': its type test::Frame is not known here.*--idl FILE", timeout=60)
    finally:
        assert recorder.stop(signal.SIGINT) == 0
        release.set()
        if writer is not None:
            join_ok(writer)
    assert (
        "not recorded: 'mystery' (type test::Frame unknown; pass --idl FILE defining it)" in recorder.output()
    )
