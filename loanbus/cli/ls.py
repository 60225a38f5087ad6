"""``loanbus ls``: pools in /dev/shm and, with ``--domain``, the topics, writers and readers.

Writers and readers come from DDS discovery joined with their loanbus adverts; pools from
/dev/shm (read, never mapped). Each reader shows its delivery path and the slots it holds.
Tables that do not fit the terminal are printed stacked, one heading line per row.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

import rich_click as click
from rich.console import Console, RenderableType
from rich.table import Table

from loanbus.cli._common import check_domain, domain_option, fail, participant
from loanbus.cli._fit import Item, fit
from loanbus.inspect import PoolEntry, list_pools
from loanbus.observe import BusView, BusWatch, EndpointView, pool_as_dict

_LETTER = {"FREE": "F", "LOANED": "L", "WRITTEN": "W"}
# A zero-copy reader's path says where its references come from (docs/cli.md).
_PATHS = {"local": "local", "dds": "DDS refs"}
_LETTERS_UP_TO = 64


def slot_states(pool: PoolEntry) -> str:
    """``WWLF``: one letter per slot (counts beyond 64 slots); holds are shown separately."""
    if not pool.slots:
        return "?"
    letters = [_LETTER.get(s.state, "?") for s in pool.slots]
    if len(letters) <= _LETTERS_UP_TO:
        return "".join(letters)
    return " ".join(f"{k}{letters.count(k)}" for k in "FLW?" if letters.count(k))


def _reader_name(rid: str, view: BusView | None) -> str:
    ep = view.readers_by_id.get(rid) if view is not None else None
    return f"pid {ep.pid}" if ep is not None and ep.pid is not None else f"reader {rid[:8]}"


def holds_by_reader(pool: PoolEntry) -> dict[str, list[int]]:
    """Reader id -> the slots its hold row holds in ``pool``."""
    out: dict[str, list[int]] = {}
    for s in pool.slots:
        for row in s.held_by:
            rid = pool.readers[row] if row < len(pool.readers) and pool.readers[row] else f"row{row}"
            out.setdefault(rid, []).append(s.slot)
    return out


def _holds_text(pool: PoolEntry, view: BusView | None) -> str:
    holds = holds_by_reader(pool)
    if not holds:
        return "-"
    return "; ".join(f"{_reader_name(rid, view)}: {_slots(slots)}" for rid, slots in holds.items())


def _slots(slots: Iterable[int]) -> str:
    return "slot " + ",".join(map(str, slots))


_POOL_COLUMNS = (
    "segment", "type", "size", "slots", "states", "held", "held by", "owner pid", "alive", "state",
)  # fmt: skip


def _pool_rows(pools: list[PoolEntry], view: BusView | None) -> list[tuple[str, ...]]:
    return [
        (
            p.name,
            p.type_name or "?",
            f"{p.size / 1e6:,.1f} MB",
            f"{p.slot_count}" if p.slot_count is not None else "?",
            slot_states(p),
            f"{p.held_slots}" if p.held_slots is not None else "?",
            _holds_text(p, view),
            f"{p.writer_pid}" if p.writer_pid else "?",
            "yes" if p.alive else "no",
            p.state or p.problem or "?",
        )
        for p in pools
    ]


def _pools(console: Console, pools: list[PoolEntry], view: BusView | None, title: str) -> RenderableType:
    """A table of the pools, or one stacked item per pool where the table does not fit."""
    rows = _pool_rows(pools, view)
    table = Table(title=title, title_justify="left")
    for col in _POOL_COLUMNS:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*row)
    items = [Item(row[0], list(zip(_POOL_COLUMNS[1:], row[1:], strict=True))) for row in rows]
    return fit(console, table, items)


def _slot_table(pool: PoolEntry, view: BusView | None) -> Table:
    table = Table(title=f"slots of {pool.name}", title_justify="left")
    for col in ("slot", "state", "seq", "written", "held by"):
        table.add_column(col)
    now = time.time_ns()
    for s in pool.slots:
        held = [
            _reader_name(pool.readers[r], view) if r < len(pool.readers) and pool.readers[r] else f"row {r}"
            for r in s.held_by
        ]
        age = f"{(now - s.timestamp_ns) / 1e9:,.1f} s ago" if s.timestamp_ns and s.state == "WRITTEN" else ""
        table.add_row(str(s.slot), s.state, str(s.seq), age, ", ".join(held) or "-")
    return table


def _reader_holds(reader: EndpointView, pools: tuple[PoolEntry, ...]) -> str:
    parts = []
    for pool in pools:
        slots = holds_by_reader(pool).get(reader.reader_id or "")
        if slots:
            parts.append(f"{_slots(slots)} of pid {pool.writer_pid}'s pool")
    return "; ".join(parts) or "-"


_TOPIC_COLUMNS = ("topic", "role", "pid", "type", "reliability", "path", "pool / holds")


def _topics(console: Console, view: BusView) -> RenderableType:
    """A row per writer and reader of each topic; stacked where the table does not fit."""
    by_segment = {p.name: p for p in view.pools}
    rows = []
    for topic in view.topics:
        for ep in (*topic.writers, *topic.readers):
            if ep.kind == "writer":
                pool = by_segment.get(ep.segment or "")
                if pool is not None:
                    detail = f"{ep.segment} ({pool.slot_count} slots, {'alive' if pool.alive else 'dead'})"
                elif ep.segment and ep.local is False:
                    detail = f"{ep.segment} (on another host)"
                else:
                    detail = ep.segment or "-"
            else:
                detail = _reader_holds(ep, topic.pools)
            rel = "?" if ep.reliable is None else "reliable" if ep.reliable else "best effort"
            type_name = ep.type_name if ep.kind == "writer" or not ep.loanbus else ""
            path = _PATHS.get(ep.references or "", ep.path)
            rows.append((topic.name, ep.kind, str(ep.pid or "?"), type_name, rel, path, detail))
    table = Table(title=f"domain {view.domain_id}: topics", title_justify="left")
    for col in _TOPIC_COLUMNS:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*row)
    items = []
    for name, role, pid, *rest in rows:
        labels = (*_TOPIC_COLUMNS[3:-1], "pool" if role == "writer" else "holds")
        items.append(Item(f"{name}: {role}, pid {pid}", [f for f in zip(labels, rest, strict=True) if f[1]]))
    return fit(console, table, items)


@click.command()
@domain_option(default=None, help="Also list the topics, writers and readers of this DDS domain")
@click.option("--wait", default=5.0, show_default=True, help="Most seconds to let DDS discovery settle.")
@click.option(
    "--slots", "show_slots", is_flag=True, help="Show every slot of every pool: state, seq, holders."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def ls(domain_id: int | None, wait: float, show_slots: bool, as_json: bool) -> None:
    """List loanbus pools (owner, liveness, slots, holds) and, with --domain, topics,
    writers and readers with each reader's delivery path."""
    console = Console()
    if wait < 0:
        fail("--wait must not be negative")
    if domain_id is None:
        pools = list_pools()
        if as_json:
            click.echo(json.dumps({"pools": [pool_as_dict(p) for p in pools]}, indent=1))
            return
        if not pools:
            console.print("no loanbus pools in /dev/shm")
            return
        console.print(_pools(console, pools, None, "loanbus pools"))
        if show_slots:
            for p in pools:
                if p.slots:
                    console.print(_slot_table(p, None))
        return
    check_domain(domain_id)
    with participant(domain_id) as dp:
        watch = BusWatch(dp.transport)
        try:
            watch.settle(timeout=wait)
            view = watch.view(domain_id)
        finally:
            watch.close()
    if as_json:
        click.echo(json.dumps(view.as_dict(), indent=1))
        return
    console.print(
        f"domain {domain_id}: {view.participants} other participant(s), {len(view.topics)} topic(s), "
        f"{len(view.pools)} pool(s) on this host"
    )
    if view.topics:
        console.print(_topics(console, view))
    if view.pools:
        console.print(_pools(console, list(view.pools), view, f"domain {domain_id}: pools"))
        if show_slots:
            for p in view.pools:
                if p.slots:
                    console.print(_slot_table(p, view))
