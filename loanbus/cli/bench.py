"""``loanbus bench``: latency and throughput of loanbus against Cyclone DDS, Pipe, POSIX shm, iceoryx2."""

from __future__ import annotations

import shlex
import sys

import rich_click as click
from rich.console import Console

from loanbus.bench import suite
from loanbus.bench.channels import COMPARISONS
from loanbus.bench.runner import Budget, pin_cpus

_UNITS = {
    "": 1,
    "B": 1,
    "K": 1 << 10,
    "KIB": 1 << 10,
    "M": 1 << 20,
    "MIB": 1 << 20,
    "G": 1 << 30,
    "GIB": 1 << 30,
}


def _parse_size(text: str) -> int:
    t = text.strip().replace("_", "").upper()
    digits = t.rstrip("BKMGI")
    unit = t[len(digits) :]
    if not digits.isdigit() or unit not in _UNITS:
        raise click.BadParameter(
            f"{text!r} is not a size (examples: 64, 65536, 64K, 1MiB)", param_hint="--sizes"
        )
    size = int(digits) * _UNITS[unit]
    if size < 1:
        raise click.BadParameter("sizes must be positive", param_hint="--sizes")
    return size


@click.command()
@click.option(
    "--sizes",
    default=",".join(str(s) for s in suite.DEFAULT_SIZES),
    show_default=True,
    help="Comma-separated sample sizes in bytes (K, M, G suffixes allowed).",
)
@click.option("--seconds", type=float, default=None, help="Time per measurement (default 2 s).")
@click.option(
    "--iterations", type=int, default=None, help="Rounds or samples per measurement instead of --seconds."
)
@click.option("--chunks", type=int, default=3, show_default=True, help="Alternating latency chunks per size.")
@click.option(
    "--only",
    default=None,
    help=f"Comma-separated comparisons to run (loanbus is always included): {', '.join(COMPARISONS)}.",
)
@click.option("--json", "json_path", default=None, help="Write the results as JSON to this file.")
@click.option("--png", "png_path", default=None, help="Write a plot to this PNG file (needs matplotlib).")
@click.option("--domain", "domain_id", default=0, show_default=True, help="DDS domain id of the runs.")
@click.option(
    "--pin",
    is_flag=True,
    help="Pin the two processes of each run to two different CPUs (every comparison alike).",
)
def bench(
    sizes: str,
    seconds: float | None,
    iterations: int | None,
    chunks: int,
    only: str | None,
    json_path: str | None,
    png_path: str | None,
    domain_id: int,
    pin: bool,
) -> None:
    """Measure loanbus against bare Cyclone DDS, Cyclone by value, Pipe, POSIX shm and iceoryx2."""
    if seconds is not None and iterations is not None:
        raise click.UsageError("give --seconds or --iterations, not both")
    if seconds is not None and seconds <= 0:
        raise click.BadParameter("must be positive", param_hint="--seconds")
    if iterations is not None and iterations < 1:
        raise click.BadParameter("must be at least 1", param_hint="--iterations")
    if chunks < 1:
        raise click.BadParameter("must be at least 1", param_hint="--chunks")
    if not 0 <= domain_id <= 232:
        raise click.BadParameter("must be within 0..232", param_hint="--domain")
    size_list = [_parse_size(s) for s in sizes.split(",") if s.strip()]
    if not size_list:
        raise click.BadParameter("no sizes given", param_hint="--sizes")
    names = None
    if only:
        names = [n.strip() for n in only.split(",") if n.strip()]
        unknown = [n for n in names if n not in COMPARISONS]
        if unknown:
            raise click.BadParameter(
                f"unknown comparison {', '.join(unknown)}; choose from {', '.join(COMPARISONS)}",
                param_hint="--only",
            )
    if png_path:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise click.UsageError("--png needs matplotlib: pip install 'loanbus[bench]'") from None
    if pin and pin_cpus() is None:
        raise click.UsageError("--pin needs two CPUs, and this process may use only one")
    budget = Budget(iterations=iterations) if iterations is not None else Budget(seconds=seconds or 2.0)
    suite.run(
        sizes=size_list,
        budget=budget,
        chunks=chunks,
        only=names,
        domain=domain_id,
        json_path=json_path,
        png_path=png_path,
        console=Console() if sys.stdout.isatty() else Console(width=150),
        command=shlex.join(["loanbus", *sys.argv[1:]]),
        pin=pin,
    )
