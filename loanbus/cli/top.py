"""``loanbus top``: a live view of every writer and reader of a domain, from any process.

Each writer and reader publishes its statistics on the DDS topic ``loanbus_stats`` once a
``LOANBUS_STATS_INTERVAL`` (see loanbus/_statsfeed.py); ``top`` subscribes and renders
them: samples/s, payload MB/s that was not copied, write->take latency, pool occupancy,
inconsistent samples and blocked ``get_loan()`` calls.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict

import rich_click as click
from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table

from loanbus.cli._common import domain_option, fail, participant
from loanbus.cli._fit import Item, fit
from loanbus.observe import StatsRecord, StatsWatch

#: A document older than this many of its intervals is shown as stale.
STALE_INTERVALS = 3


def _latency(stats: dict[str, object]) -> str:
    p50, p99 = stats.get("latency_p50_us"), stats.get("latency_p99_us")
    if not isinstance(p50, (int, float)) or not isinstance(p99, (int, float)):
        return "-"
    return f"{p50:,.0f} / {p99:,.0f}"


#: (header of the table, label of the stacked layout, right-aligned)
_COLUMNS = (
    ("topic", "topic", False),
    ("role", "role", False),
    ("pid", "pid", True),
    ("samples/s", "samples/s", True),
    ("MB/s\nnot copied", "MB/s not copied", True),
    ("latency µs\np50 / p99", "latency p50 / p99 µs", True),
    ("pool slots", "pool slots", False),
    ("inconsistent", "inconsistent", True),
    ("get_loan blocked\n/ timed out", "get_loan blocked / timed out", True),
    ("age", "age", True),
)


def _row(rec: StatsRecord) -> list[str]:
    s = rec.stats
    age = rec.age_s
    stale = age > STALE_INTERVALS * max(rec.interval_s, 0.1)
    age_text = f"[red]{age:,.0f} s (stale)[/]" if stale else f"{age:,.1f} s"
    rate = f"{rec.samples_per_s:,.1f}"
    mbps = f"{rec.bytes_per_s / 1e6:,.1f}"
    if rec.kind == "writer":
        pool = (
            f"F{s.get('free_slots', '?')} L{s.get('loaned_slots', '?')} W{s.get('written_slots', '?')}"
            f" /{s.get('slots', '?')}, {s.get('held_slots', '?')} held"
        )
        blocked = f"{s.get('blocked_loans', 0)} / {s.get('loan_timeouts', 0)}"
        return [rec.topic, "writer", str(rec.pid), rate, mbps, "-", pool, "-", blocked, age_text]
    pools = f"{s.get('mapped_pools', '?')} mapped"
    inconsistent = f"{s.get('inconsistent', 0)} of {s.get('consistency_checks', 0)}"
    return [rec.topic, "reader", str(rec.pid), rate, mbps, _latency(s), pools, inconsistent, "-", age_text]


def render(records: list[StatsRecord], domain_id: int, console: Console) -> RenderableType:
    """One frame: a row per writer and reader, grouped by topic; stacked where the table
    does not fit the console."""
    table = Table(title=f"loanbus top - domain {domain_id}", title_justify="left")
    for header, _label, right in _COLUMNS:
        table.add_column(header, justify="right" if right else "left")
    previous = None
    items = []
    for rec in records:
        if previous is not None and rec.topic != previous:
            table.add_section()
        previous = rec.topic
        row = _row(rec)
        table.add_row(*row)
        labels = [
            label if label != "pool slots" or rec.kind == "writer" else "pools" for _h, label, _r in _COLUMNS
        ]
        fields = list(zip(labels[3:], row[3:], strict=True))
        items.append(Item(f"{rec.topic}: {rec.kind}, pid {rec.pid}", [f for f in fields if f[1] != "-"]))
    if not records:
        table.caption = "no writer or reader publishes statistics in this domain yet"
    return fit(console, table, items)


def _select(watch: StatsWatch, topics: tuple[str, ...]) -> list[StatsRecord]:
    return [r for r in watch.records() if not topics or r.topic in topics]


def _first(watch: StatsWatch, topics: tuple[str, ...], wait: float) -> list[StatsRecord]:
    """Records once some arrived and none new came for half a second, or after ``wait`` s."""
    deadline = time.monotonic() + wait
    records = _select(watch, topics)
    ids, since = {r.id for r in records}, time.monotonic()
    while time.monotonic() < deadline:
        if ids and time.monotonic() - since >= 0.5:
            break
        time.sleep(0.05)
        records = _select(watch, topics)
        now_ids = {r.id for r in records}
        if now_ids != ids:
            ids, since = now_ids, time.monotonic()
    return records


@click.command()
@domain_option()
@click.option("--interval", default=1.0, show_default=True, help="Seconds between frames.")
@click.option("--once", is_flag=True, help="Print one frame and exit (for scripts and tests).")
@click.option(
    "--iterations",
    default=0,
    show_default=True,
    help="Print this many frames and exit (0: live until Ctrl-C).",
)
@click.option("--topic", "topics", multiple=True, help="Only this topic (repeatable).")
@click.option("--wait", default=5.0, show_default=True, help="Most seconds to wait for the first statistics.")
@click.option("--json", "as_json", is_flag=True, help="Print frames as JSON lines instead of tables.")
def top(
    domain_id: int,
    interval: float,
    once: bool,
    iterations: int,
    topics: tuple[str, ...],
    wait: float,
    as_json: bool,
) -> None:
    """Live statistics of every loanbus writer and reader in a domain, from any process."""
    if interval <= 0:
        fail(f"--interval must be positive, not {interval:g}")
    if iterations < 0 or wait < 0:
        fail("--iterations and --wait must not be negative")
    frames = 1 if once else iterations
    console = Console()
    with participant(domain_id) as dp:
        watch = StatsWatch(dp.transport)
        try:
            records = _first(watch, topics, wait)
            if as_json or frames:
                for frame in range(frames or 1_000_000_000):
                    if frame:
                        time.sleep(interval)
                        records = _select(watch, topics)
                    if as_json:
                        click.echo(json.dumps([{**asdict(r), "age_s": round(r.age_s, 3)} for r in records]))
                    else:
                        console.print(render(records, domain_id, console))
                return
            with Live(render(records, domain_id, console), console=console, auto_refresh=False) as live:
                while True:
                    time.sleep(interval)
                    live.update(render(_select(watch, topics), domain_id, console), refresh=True)
        except KeyboardInterrupt:
            pass
        finally:
            watch.close()
