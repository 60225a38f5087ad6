"""Recording full-HD camera frames: what ``loanbus record`` costs, measured.

Run: ``python benchmarks/record.py`` (``--help`` for options). Two parts:

* ``writers``: the MCAP writers the recorder could use (the ``mcap`` package and foxglove-sdk),
  each writing the same 6.2 MB CDR messages uncompressed to a local file, alternating so
  all see the same machine load: CPU milliseconds per frame (every thread of the process).
* ``target``: the camera example's producer writes 1920x1080 RGB frames at 60 frames/s for
  30 s (a process of its own); a recorder in this process records them with
  ``--compression none`` into ``--dir``. Prints frames written, recorded, dropped and
  inconsistent, the recorder's CPU per frame (user + system, every thread), and the floor:
  one 6.2 MB copy measured here. Runs once without and once with the Foxglove RawImage
  channel (``images=none`` / ``images=raw``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FRAME = 1920 * 1080 * 3
MESSAGE = FRAME + 36  # the camera::Image CDR message


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def copy_floor(runs: int = 60) -> dict[str, float]:
    """Milliseconds for one 6.2 MB copy: into a reused buffer, and into a new bytes object
    (what the recorder makes per frame)."""
    src = np.random.default_rng(0).integers(0, 256, FRAME, dtype=np.uint8)
    dst = np.empty_like(src)
    reused, fresh = [], []
    for _ in range(runs):
        t = time.perf_counter()
        np.copyto(dst, src)
        reused.append(time.perf_counter() - t)
        t = time.perf_counter()
        b"".join((b"\0\1\0\0", src.data))
        fresh.append(time.perf_counter() - t)
    ms_reused = statistics.median(reused) * 1e3
    sources = [np.full(FRAME, i, np.uint8) for i in range(32)]  # 200 MB: not in any cache
    cold = []
    for i in range(runs):
        t = time.perf_counter()
        np.copyto(dst, sources[i % len(sources)])
        cold.append(time.perf_counter() - t)
    return {
        "copy_cold_ms": statistics.median(cold) * 1e3,
        "copy_reused_ms": ms_reused,
        "copy_new_bytes_ms": statistics.median(fresh) * 1e3,
        "copy_gb_per_s": FRAME / (ms_reused / 1e3) / 1e9,
    }


# -- part 1: the MCAP writers -------------------------------------------------------------------


def _mcap_writer(path: Path, chunked: bool) -> tuple[Any, Any]:
    from mcap.writer import CompressionType, Writer

    f = path.open("wb")
    w = Writer(f, compression=CompressionType.NONE, use_chunking=chunked)
    w.start()
    channel = w.register_channel("camera/frames", "cdr", w.register_schema("camera::Image", "omgidl", b"x"))

    def log(data: bytes, t: int) -> None:
        w.add_message(channel, t, data, t)

    def close() -> None:
        w.finish()
        f.close()

    return log, close


def _foxglove_writer(path: Path, chunked: bool) -> tuple[Any, Any]:
    import foxglove
    from foxglove.mcap import MCAPWriteOptions

    ctx = foxglove.Context()
    w = foxglove.open_mcap(
        str(path), context=ctx, writer_options=MCAPWriteOptions(compression=None, use_chunks=chunked)
    )
    schema = foxglove.Schema(name="camera::Image", encoding="omgidl", data=b"x")
    channel = foxglove.Channel("camera/frames", schema=schema, message_encoding="cdr", context=ctx)

    def log(data: bytes, t: int) -> None:
        channel.log(data, log_time=t)

    def close() -> None:
        w.close()
        channel.close()  # the context (ctx) lives as long as this closure

    log.context = ctx  # type: ignore[attr-defined]
    return log, close


def writers(directory: Path, frames: int, rounds: int) -> dict[str, Any]:
    cases = {
        "mcap (chunked)": (_mcap_writer, True),
        "mcap (no chunks)": (_mcap_writer, False),
        "foxglove-sdk (chunked)": (_foxglove_writer, True),
        "foxglove-sdk (no chunks)": (_foxglove_writer, False),
    }
    src = np.random.default_rng(1).integers(0, 256, MESSAGE, dtype=np.uint8)
    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (make, chunked) in cases.items():
            path = directory / "writers-bench.mcap"
            path.unlink(missing_ok=True)
            log, close = make(path, chunked)
            cpu = _cpu()
            for i in range(frames):
                log(b"".join((src.data,)), i)  # a new bytes object per frame, as the recorder makes
            close()
            results[name].append((_cpu() - cpu) / frames * 1e3)
            path.unlink()
    return {name: {"cpu_ms_per_frame": statistics.median(v), "runs": v} for name, v in results.items()}


# -- part 2: the target ----------------------------------------------------------------------------


def target(directory: Path, seconds: float, rate: float, images: str, domain: int) -> dict[str, Any]:
    import loanbus.idl
    from loanbus.recording import Recorder

    image = loanbus.idl.load(ROOT / "idl" / "Image.idl").Image
    path = directory / f"record-bench-{images}.mcap"
    path.unlink(missing_ok=True)
    with Recorder(
        path, domain_id=domain, topics={"camera/frames": image}, compression="none", images=images
    ) as recorder:
        cpu0, wall0 = _cpu(), time.monotonic()
        producer = subprocess.run(
            [sys.executable, "-m", "examples.camera.producer", "--domain", str(domain), "--rate", str(rate),
             "--seconds", str(seconds), "--report-every", "0"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )  # fmt: skip
        written = int(producer.stdout.rsplit("wrote ", 1)[1].split()[0])
        deadline = time.monotonic() + 60
        while recorder.status().topics[0].last_seq < written - 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    cpu, wall = _cpu() - cpu0, time.monotonic() - wall0  # closing (the last writes) included
    t = recorder.status().topics[0]
    first = t.writers[0][0] if t.writers else 1
    size = path.stat().st_size
    path.unlink()
    return {
        "images": images,
        "written": written,
        "recorded": t.samples,
        "dropped": t.dropped,
        "inconsistent": t.inconsistent,
        "before_first": first - 1,  # written before the recorder's first frame
        "after_last": written - t.last_seq,  # written after its last one
        "image_messages": t.images,
        "cpu_ms_per_frame": cpu / max(t.samples, 1) * 1e3,
        "cpu_cores": cpu / wall,
        "file_gb": size / 1e9,
        "disk_mb_per_s": size / wall / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", type=Path, default=Path("."), help="where the files go (a local disk)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=60.0)
    parser.add_argument("--domain", type=int, default=77)
    parser.add_argument("--writer-frames", type=int, default=80, help="frames per writer run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the writer comparison")
    parser.add_argument("--only", choices=("writers", "target"), default=None)
    parser.add_argument(
        "--images", choices=("none", "raw"), action="append", help="image channel modes (default: both)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}",
        "floor": copy_floor(),
    }
    floor = figures["floor"]
    print(f"machine: {figures['machine']}")
    print(
        f"one 6.2 MB copy: {floor['copy_reused_ms']:.2f} ms into a reused buffer "
        f"({floor['copy_gb_per_s']:.1f} GB/s), {floor['copy_new_bytes_ms']:.2f} ms into a new bytes object, "
        f"{floor['copy_cold_ms']:.2f} ms from memory not in any cache"
    )
    if args.only in (None, "writers"):
        figures["writers"] = writers(args.dir, args.writer_frames, args.rounds)
        for name, w in figures["writers"].items():
            runs = ", ".join(f"{r:.1f}" for r in w["runs"])
            print(f"writer {name:26s} {w['cpu_ms_per_frame']:6.2f} ms CPU per 6.2 MB frame (runs: {runs})")
    if args.only in (None, "target"):
        figures["target"] = []
        for images in args.images or ("none", "raw"):
            r = target(args.dir, args.seconds, args.rate, images, args.domain)
            figures["target"].append(r)
            print(
                f"target images={images}: written {r['written']}, recorded {r['recorded']}, "
                f"dropped {r['dropped']}, inconsistent {r['inconsistent']} (before the first "
                f"{r['before_first']}, after the last {r['after_last']}); recorder CPU "
                f"{r['cpu_ms_per_frame']:.2f} ms per frame "
                f"({r['cpu_ms_per_frame'] / floor['copy_cold_ms']:.1f}x a cold copy), "
                f"{r['cpu_cores']:.2f} cores; {r['file_gb']:.1f} GB at {r['disk_mb_per_s']:.0f} MB/s"
            )
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
