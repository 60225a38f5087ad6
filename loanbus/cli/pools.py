"""``loanbus clean``: remove the pools in /dev/shm whose writer died (``ls`` lists them)."""

from __future__ import annotations

import rich_click as click
from rich.console import Console

from loanbus.inspect import PoolEntry, list_pools, remove_pool


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
