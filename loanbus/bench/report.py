"""Ratios, targets, the printed table, the JSON document and the PNG plot of a bench run."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

FRAME = 6_220_800  # a 1920x1080 RGB frame
SMALLEST, LARGEST = 64, 64 << 20
FLAT_BOUND = 1.3  # "flat": the 64 MiB median within 1.3x of the 64 B median


def fmt_size(size: int) -> str:
    if size >= 1 << 20 and size % (1 << 20) == 0:
        return f"{size >> 20} MiB"
    if (1 << 10) <= size < (1 << 20) and size % (1 << 10) == 0:
        return f"{size >> 10} KiB"
    return f"{size:,} B"


def _find(records: list[dict[str, Any]], comp: str, size: int, mode: str) -> dict[str, Any] | None:
    for r in records:
        if r["comparison"] == comp and r["size"] == size and r["mode"] == mode and "errors" not in r:
            return r
    return None


def latency_ratio(records: list[dict[str, Any]], comp: str, size: int) -> float | None:
    """Median over chunks of (comp median / loanbus median): how many times loanbus's latency."""
    lb, other = _find(records, "loanbus", size, "latency"), _find(records, comp, size, "latency")
    if lb is None or other is None:
        return None
    common = set(lb["chunk_medians_us"]) & set(other["chunk_medians_us"])
    if not common:
        return None
    return float(statistics.median(other["chunk_medians_us"][c] / lb["chunk_medians_us"][c] for c in common))


def ratios(records: list[dict[str, Any]], comparisons: list[str], sizes: list[int]) -> list[dict[str, Any]]:
    """Per size and comparison: X latency / loanbus latency, loanbus samples/s / X samples/s."""
    out = []
    for size in sizes:
        lb_stream = _find(records, "loanbus", size, "stream")
        for comp in comparisons:
            if comp == "loanbus":
                continue
            lat = latency_ratio(records, comp, size)
            st = _find(records, comp, size, "stream")
            rate = None
            if lb_stream and st and st["samples_per_s"] > 0:
                rate = lb_stream["samples_per_s"] / st["samples_per_s"]
            if lat is not None or rate is not None:
                out.append({"comparison": comp, "size": size, "latency_x": lat, "throughput_x": rate})
    return out


@dataclass
class Target:
    name: str
    measured: float | None
    bound: float
    at_most: bool  # True: measured <= bound; False: measured >= bound
    unit: str

    @property
    def met(self) -> bool | None:
        if self.measured is None:
            return None
        return self.measured <= self.bound if self.at_most else self.measured >= self.bound

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.name,
            "measured": self.measured,
            "bound": self.bound,
            "at_most": self.at_most,
            "met": self.met,
        }


def targets(records: list[dict[str, Any]]) -> list[Target]:
    """loanbus's performance targets, each with the value measured in this run (None: not measured).

    Ratios of latencies are medians of per-chunk ratios (chunks alternate between comparisons,
    so each ratio compares measurements taken under the same machine load)."""
    iox = latency_ratio(records, "iceoryx2", FRAME)
    shm = latency_ratio(records, "posix-shm", FRAME)
    lb_small = _find(records, "loanbus", SMALLEST, "latency")
    lb_large = _find(records, "loanbus", LARGEST, "latency")
    flat = lb_large["median_us"] / lb_small["median_us"] if lb_small and lb_large else None
    rel = _find(records, "loanbus", FRAME, "stream")
    iox_stream = _find(records, "iceoryx2", FRAME, "stream")
    be = _find(records, "loanbus-be", FRAME, "stream")
    stream_x = rel["samples_per_s"] / iox_stream["samples_per_s"] if rel and iox_stream else None
    return [
        Target(
            "6.2 MB median latency at most 1.0x iceoryx2's (loanbus / iceoryx2; stretch 0.8x)",
            1 / iox if iox else None,
            1.0,
            True,
            "x",
        ),
        Target(
            "6.2 MB median latency at most 3x the POSIX shm + semaphore ping-pong",
            1 / shm if shm else None,
            3.0,
            True,
            "x",
        ),
        Target(
            "6.2 MB: at least 50x faster than Cyclone DDS by value",
            latency_ratio(records, "cyclone-by-value", FRAME),
            50,
            False,
            "x",
        ),
        Target(
            "6.2 MB: at least 100x faster than multiprocessing Pipe",
            latency_ratio(records, "pipe", FRAME),
            100,
            False,
            "x",
        ),
        Target(f"flat: 64 MiB median / 64 B median at most {FLAT_BOUND}x", flat, FLAT_BOUND, True, "x"),
        Target(
            "6.2 MB reliable stream, one writer and one reader: at least 0.5x iceoryx2's rate",
            stream_x,
            0.5,
            False,
            "x",
        ),
        Target(
            "6.2 MB reliable stream, one writer and one reader: at least 150,000 samples/s",
            rel["samples_per_s"] if rel else None,
            150_000,
            False,
            " samples/s",
        ),
        Target(
            "6.2 MB reliable stream: writer CPU per sample at most 10 µs",
            rel["writer_cpu_us"] if rel else None,
            10.0,
            True,
            " µs",
        ),
        Target(
            "6.2 MB reliable stream: reader CPU per sample at most 10 µs",
            rel["reader_cpu_us"] if rel else None,
            10.0,
            True,
            " µs",
        ),
        Target(
            "6.2 MB: at least 50,000 samples/s, one writer and one reader, best effort",
            be["samples_per_s"] if be else None,
            50_000,
            False,
            " samples/s",
        ),
    ]


def _n(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 1 else "right")
    return table


def print_report(
    console: Console,
    records: list[dict[str, Any]],
    comparisons: list[str],
    sizes: list[int],
) -> None:
    lat_table = _table(
        "one-way latency = ping-pong round trip / 2 (CPU: per sample, ping and pong process)",
        ["size", "comparison", "median µs", "p99 µs", "x loanbus", "ping CPU µs", "pong CPU µs"],
    )
    rate_table = _table(
        "throughput: writer back to back, reader takes (CPU per sample, RSS at the end)",
        [
            "size",
            "comparison",
            "samples/s",
            "GB/s",
            "writer CPU µs",
            "reader CPU µs",
            "writer RSS MB",
            "reader RSS MB",
            "inconsistent",
        ],
    )
    for size in sizes:
        for comp in comparisons:
            lat = _find(records, comp, size, "latency")
            if lat is not None:
                ratio = 1.0 if comp == "loanbus" else latency_ratio(records, comp, size)
                lat_table.add_row(
                    fmt_size(size),
                    comp,
                    _n(lat["median_us"], ",.1f"),
                    _n(lat["p99_us"], ",.1f"),
                    _n(ratio, ",.2f", "x"),
                    _n(lat["ping_cpu_us"], ",.1f"),
                    _n(lat["pong_cpu_us"], ",.1f"),
                )
            st = _find(records, comp, size, "stream")
            if st is not None:
                rate_table.add_row(
                    fmt_size(size),
                    comp,
                    _n(st["samples_per_s"], ",.0f"),
                    _n(st["gb_per_s"], ",.2f"),
                    _n(st["writer_cpu_us"], ",.1f"),
                    _n(st["reader_cpu_us"], ",.1f"),
                    _n(st["writer_rss"] / 1e6, ",.0f"),
                    _n(st["reader_rss"] / 1e6, ",.0f"),
                    _n(st["inconsistent"], ","),
                )
        lat_table.add_section()
        rate_table.add_section()
    console.print(lat_table)
    console.print(
        "x loanbus: the comparison's median latency divided by loanbus's, the median of the "
        "per-chunk ratios (above 1: loanbus is faster)."
    )
    console.print(rate_table)
    for r in records:
        for e in r.get("errors", []):
            console.print(f"[red]error[/] {r['comparison']} {r['mode']} {fmt_size(r['size'])}: {e}")


def print_targets(console: Console, found: list[Target], pinned: tuple[int, int] | None = None) -> None:
    where = "processes not pinned" if pinned is None else f"processes pinned to CPUs {pinned[0]}, {pinned[1]}"
    table = Table(title=f"targets ({where})")
    table.add_column("target")
    table.add_column("measured", justify="right")
    table.add_column("", justify="left")
    for t in found:
        verdict = {True: "[green]MET[/]", False: "[red]NOT MET[/]", None: "[yellow]not measured[/]"}[t.met]
        spec = ",.0f" if t.unit.strip() == "samples/s" else ",.2f"
        table.add_row(t.name, _n(t.measured, spec, t.unit), verdict)
    console.print(table)


def write_json(path: str, document: dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(document, f, indent=2)
        f.write("\n")


def write_png(
    path: str, records: list[dict[str, Any]], comparisons: list[str], labels: dict[str, str]
) -> None:
    """Median latency (with p99) and samples/s against sample size, one line per comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_lat, ax_rate) = plt.subplots(1, 2, figsize=(13, 5.2))
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {name: palette[i % len(palette)] for i, name in enumerate(labels)}  # same color both sides
    for comp in comparisons:
        lat = sorted(
            (r for r in records if r["comparison"] == comp and r["mode"] == "latency" and "median_us" in r),
            key=lambda r: r["size"],
        )
        if lat:
            xs = [r["size"] for r in lat]
            ax_lat.plot(xs, [r["median_us"] for r in lat], marker="o", label=labels[comp], color=colors[comp])
            ax_lat.plot(xs, [r["p99_us"] for r in lat], linestyle=":", color=colors[comp])
        st = sorted(
            (
                r
                for r in records
                if r["comparison"] == comp and r["mode"] == "stream" and "samples_per_s" in r
            ),
            key=lambda r: r["size"],
        )
        if st:
            ax_rate.plot(
                [r["size"] for r in st],
                [r["samples_per_s"] for r in st],
                marker="o",
                label=labels[comp],
                color=colors[comp],
            )
    for ax, title, ylabel in (
        (ax_lat, "one-way latency: median (solid), p99 (dotted)", "µs"),
        (ax_rate, "throughput, one writer and one reader", "samples/s"),
    ):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("sample size (bytes)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
