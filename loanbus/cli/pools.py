"""``loanbus ls`` and ``loanbus clean``: the pools in /dev/shm, their owners and leftovers."""

from __future__ import annotations

import rich_click as click
from rich.console import Console
from rich.table import Table

from loanbus.inspect import PoolEntry, list_pools, remove_pool


@click.command()
def ls() -> None:
    """List loanbus pools on this host: owner, liveness, slots and holds."""
    pools = list_pools()
    console = Console()
    if not pools:
        console.print("no loanbus pools in /dev/shm")
        return
    table = Table(title="loanbus pools")
    for col in ("segment", "type", "size", "slots", "held", "owner pid", "alive", "state"):
        table.add_column(col)
    for p in pools:
        table.add_row(
            p.name,
            p.type_name or "?",
            f"{p.size / 1e6:,.1f} MB",
            f"{p.slot_count}" if p.slot_count is not None else "?",
            f"{p.held_slots}" if p.held_slots is not None else "?",
            f"{p.writer_pid}" if p.writer_pid else "?",
            "yes" if p.alive else "no",
            p.state or p.problem or "?",
        )
    console.print(table)


@click.command()
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
def clean(dry_run: bool) -> None:
    """Remove pools and semaphores whose writer is dead; live ones are left alone."""
    console = Console()
    dead: list[PoolEntry] = [p for p in list_pools() if not p.alive]
    if not dead:
        console.print("nothing to clean")
        return
    for p in dead:
        if dry_run:
            console.print(f"would remove {p.name} ({p.problem or p.state})")
        else:
            removed = remove_pool(p)
            console.print(f"removed {', '.join(removed) or p.name}")
