"""The bench's targets are computed from the right records (pure logic over made-up records)."""

from __future__ import annotations

from typing import Any

from loanbus.bench.report import FRAME, LARGEST, SMALLEST, targets


def _latency(comp: str, size: int, chunks: list[float]) -> dict[str, Any]:
    return {
        "comparison": comp,
        "size": size,
        "mode": "latency",
        "median_us": sorted(chunks)[len(chunks) // 2],
        "chunk_medians_us": {str(i): v for i, v in enumerate(chunks)},
    }


def _stream(comp: str, rate: float, writer_cpu: float, reader_cpu: float) -> dict[str, Any]:
    return {
        "comparison": comp,
        "size": FRAME,
        "mode": "stream",
        "samples_per_s": rate,
        "writer_cpu_us": writer_cpu,
        "reader_cpu_us": reader_cpu,
    }


def test_each_target_compares_loanbus_with_the_comparison_it_names_chunk_by_chunk() -> None:
    records = [
        _latency("loanbus", FRAME, [10.0, 20.0, 30.0]),
        _latency("iceoryx2", FRAME, [12.5, 16.0, 60.0]),  # per chunk: 1.25x, 0.8x, 2x loanbus's
        _latency("posix-shm", FRAME, [4.0, 8.0, 12.0]),  # loanbus is 2.5x it in every chunk
        _latency("loanbus", SMALLEST, [10.0]),
        _latency("loanbus", LARGEST, [14.0]),
        _stream("loanbus", 200_000, 4.0, 12.0),
        _stream("iceoryx2", 500_000, 2.0, 2.0),
    ]
    found = targets(records)
    by_text = {t.name: t for t in found}
    assert len(by_text) == len(found)  # every target says what it is in its own words

    def target(words: str) -> Any:
        [t] = [t for name, t in by_text.items() if words in name]
        return t

    iox = target("at most 1.0x iceoryx2")
    assert iox.measured == 1 / 1.25 and iox.met  # the median chunk ratio, not a ratio of medians
    shm = target("at most 3x the POSIX shm")
    assert shm.measured == 2.5 and shm.met
    flat = target("flat")
    assert flat.measured == 1.4 and flat.met is False
    assert target("0.5x iceoryx2's rate").measured == 0.4 and target("0.5x iceoryx2's rate").met is False
    assert target("150,000 samples/s").met
    assert target("writer CPU").met and target("reader CPU").met is False
    assert target("Cyclone DDS by value").met is None  # not measured in this run
