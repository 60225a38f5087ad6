"""``loanbus clean``: remove the pools in /dev/shm whose writer died (``ls`` lists them), and
the shared files of ``loanbus bench`` runs that were killed before they could remove them."""

from __future__ import annotations

import rich_click as click
from rich.console import Console

from loanbus.bench import leftovers
from loanbus.inspect import PoolEntry, list_pools, may_remove, remove_pool


@click.command()
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
def clean(dry_run: bool) -> None:
    """Remove pools (and their registration sockets) whose writer is dead, and files of killed
    bench runs; live ones, other users' files and anything that is not a regular file are left
    alone. LOANBUS_SHM_PREFIX narrows it to pools made with that prefix."""
    console = Console()
    dead: list[PoolEntry] = [p for p in list_pools() if may_remove(p)]
    runs = leftovers.dead_runs()
    if not dead and not runs:
        console.print("nothing to clean")
        return
    for p in dead:
        if dry_run:
            console.print(f"would remove {p.name} ({p.problem or p.state})")
        else:
            removed = remove_pool(p)
            console.print(f"removed {', '.join(removed) or p.name}")
    for left in runs:
        what = f"{left.path} (loanbus bench run of process {left.pid}, which is gone)"
        if dry_run:
            console.print(f"would remove {what}")
        elif leftovers.remove(left):
            console.print(f"removed {what}")
