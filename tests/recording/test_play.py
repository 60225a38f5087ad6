"""``loanbus play`` and ``loanbus.play``: a recording republished into a reader in another process."""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path

import numpy as np
from mcap.reader import make_reader
from mcap.writer import Writer

from loanbus.recording import Recorder
from loanbus.recording.codec import RecordCodec
from tests.helpers import CTX, FRAME, join_ok, start
from tests.recording import Child, read_frames, write_frames
from tests.reliability import run_cli, shm_entries, wait_for

COUNT = 30
RATE = 20.0


def _record(domain_id: int, out: Path) -> None:
    """COUNT frames of test::Frame at RATE per second, recorded with zstd through the Python API."""
    done, release = CTX.Queue(), CTX.Event()
    with Recorder(out, domain_id=domain_id, topics={"frames": FRAME}) as recorder:
        writer = start(write_frames, domain_id, "frames", FRAME, COUNT, RATE, "pattern", done, release)
        writes = done.get(timeout=120)
        wait_for(
            lambda: recorder.status().topics[0].last_seq == writes, 30, "the recorder to see every frame"
        )
        release.set()
        join_ok(writer)
    assert recorder.status().topics[0].samples == COUNT


def test_a_recording_played_into_a_reader_in_another_process_is_byte_equal_and_keeps_its_timing(
    domain_id: int, tmp_path: Path, shm_prefix: str
) -> None:
    out = tmp_path / "frames.mcap"
    _record(domain_id, out)
    codec = RecordCodec(FRAME)
    recorded: dict[int, tuple[str, int]] = {}
    with out.open("rb") as f:
        for _schema, _channel, message in make_reader(f).iter_messages(topics=["frames"]):
            sample = np.zeros((), FRAME.dtype)
            codec.decode_into(message.data, sample)
            digest = hashlib.blake2b(sample.reshape(-1).view(np.uint8)).hexdigest()
            recorded[int(sample["seq"])] = (digest, message.log_time)
    assert sorted(recorded) == list(range(1, COUNT + 1))

    results = CTX.Queue()
    reader = start(read_frames, domain_id + 0, "frames", FRAME, COUNT, results)
    assert results.get(timeout=60) == ("ready", None)
    player = Child("play", str(out), "--domain", str(domain_id), "--readers", "1", "--rate", "1")
    assert player.proc.wait(120) == 0, player.output()
    kind, frames = results.get(timeout=120)
    join_ok(reader)
    assert kind == "frames" and [seq for seq, _, _ in frames] == list(range(1, COUNT + 1))
    for seq, digest, _ in frames:
        assert digest == recorded[seq][0], f"frame {seq} differs from the recording"
    played = frames[-1][2] - frames[0][2]
    original = recorded[COUNT][1] - recorded[1][1]
    assert abs(played - original) <= 0.1 * original, (
        f"played over {played / 1e9:.3f} s, recorded {original / 1e9:.3f} s"
    )
    print(f"FIGURES recorded span {original / 1e9:.3f} s, played span {played / 1e9:.3f} s")
    assert f"played {COUNT} messages" in player.output()
    assert not shm_entries(shm_prefix)


def test_play_as_fast_as_possible_and_in_a_loop_until_stopped(domain_id: int, tmp_path: Path) -> None:
    out = tmp_path / "frames.mcap"
    _record(domain_id, out)
    fast = run_cli("play", str(out), "--domain", str(domain_id), "--rate", "0")
    assert fast.returncode == 0, fast.stderr
    assert f"played {COUNT} messages" in fast.stdout
    looping = Child("play", str(out), "--domain", str(domain_id), "--rate", "0", "--loop")
    looping.wait_line(r"^playing 'frames'")
    assert looping.stop(signal.SIGTERM) == 128 + signal.SIGTERM
    assert "loop(s)" in looping.output()


def test_play_names_what_is_wrong_with_a_file(tmp_path: Path) -> None:
    not_mcap = tmp_path / "notes.mcap"
    not_mcap.write_text("hello")
    result = run_cli("play", str(not_mcap))
    assert result.returncode == 2 and "is not a readable MCAP file" in result.stderr

    foreign = tmp_path / "foreign.mcap"
    with foreign.open("wb") as f:
        w = Writer(f)
        w.start()
        schema = w.register_schema("x", "jsonschema", b"{}")
        w.add_message(w.register_channel("/other", "json", schema), 1, b"{}", 1)
        w.finish()
    result = run_cli("play", str(foreign))
    assert result.returncode == 2
    assert result.stderr.strip() == f"loanbus play: error: {foreign} has no loanbus channel to play"

    result = run_cli("play", str(tmp_path / "missing.mcap"))
    assert result.returncode == 2 and "no such file" in result.stderr


def test_the_python_api_records_for_a_duration_and_plays_what_it_recorded(
    domain_id: int, tmp_path: Path
) -> None:
    import loanbus

    out = tmp_path / "api.mcap"
    done, release = CTX.Queue(), CTX.Event()
    writer = start(write_frames, domain_id, "frames", FRAME, 5, 50.0, "pattern", done, release)
    status = loanbus.record(out, {"frames": FRAME}, domain_id=domain_id, duration=3.0, compression="lz4")
    release.set()
    join_ok(writer)
    assert status.topics[0].topic == "frames" and status.samples == done.get(timeout=10) == 5
    results = CTX.Queue()
    reader = start(read_frames, domain_id, "frames", FRAME, 5, results)
    assert results.get(timeout=60) == ("ready", None)
    played = loanbus.play(out, domain_id=domain_id, rate=0, readers=1)
    assert played.messages == 5 and played.written == {"frames": 5}
    kind, frames = results.get(timeout=60)
    join_ok(reader)
    assert kind == "frames" and [seq for seq, _, _ in frames] == [1, 2, 3, 4, 5]
