"""One ``loanbus bench`` run: plan, measure with a progress bar, report, write the files."""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import asdict
from importlib import metadata
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from loanbus.bench import report
from loanbus.bench.channels import COMPARISONS
from loanbus.bench.runner import Budget, Plan, pin_cpus, run_plan

DEFAULT_SIZES = [64, 64 * 1024, 1024 * 1024, report.FRAME, 64 * 1024 * 1024]


def default_comparisons() -> list[str]:
    return [name for name, c in COMPARISONS.items() if c.default]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def run(
    *,
    sizes: list[int],
    budget: Budget,
    chunks: int,
    only: list[str] | None,
    domain: int,
    json_path: str | None,
    png_path: str | None,
    console: Console,
    command: str,
    pin: bool = False,
) -> dict[str, Any]:
    """Measure, print and write; returns the JSON document."""
    wanted = only or default_comparisons()
    if "loanbus" not in wanted:
        wanted = ["loanbus", *wanted]  # every ratio is against loanbus
    skipped = {name: why for name in wanted if (why := COMPARISONS[name].unavailable())}
    for name, why in skipped.items():
        console.print(f"[yellow]skipping {name}[/]: {why}")
    comparisons = [c for c in wanted if c not in skipped]
    labels = {name: c.label for name, c in COMPARISONS.items()}
    pinned = pin_cpus() if pin else None
    if pin and pinned is None:
        raise ValueError("pinning needs two CPUs, and this process may use only one")
    plan = Plan(
        comparisons=comparisons, sizes=sizes, budget=budget, chunks=chunks, domain=domain, pinned=pinned
    )
    console.print(
        f"[bold]loanbus bench[/]: {len(comparisons)} comparisons x {len(sizes)} sizes, "
        f"{budget.iterations or budget.seconds} {'rounds' if budget.iterations else 's'} per measurement, "
        f"latency in {chunks} alternating chunks, DDS domain {domain}, "
        + (f"processes pinned to CPUs {pinned[0]} and {pinned[1]}" if pinned else "processes not pinned")
    )
    for name in comparisons:
        console.print(f"  [bold]{labels[name]}[/]: {COMPARISONS[name].method}", highlight=False)
    started = time.time()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=len(plan.runs()))
        first = True

        def step(what: str) -> None:
            nonlocal first
            if not first:
                progress.advance(task)
            first = False
            progress.update(task, description=what)

        records = run_plan(plan, step)
        progress.advance(task)
    report.print_report(console, records, comparisons, sizes)
    found = report.targets(records)
    report.print_targets(console, found, pinned)
    document = {
        "loanbus": _version("loanbus"),
        "cyclonedds": _version("cyclonedds"),
        "iceoryx2": _version("iceoryx2"),
        "machine": platform.platform(),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "command": command,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1),
        "plan": asdict(plan),
        "comparisons": {
            name: {"label": labels[name], "method": COMPARISONS[name].method, "skipped": skipped.get(name)}
            for name in wanted
        },
        "results": records,
        "ratios": report.ratios(records, comparisons, sizes),
        "targets": [t.as_dict() for t in found],
    }
    if json_path:
        report.write_json(json_path, document)
        console.print(f"wrote {json_path}")
    if png_path:
        report.write_png(png_path, records, comparisons, labels)
        console.print(f"wrote {png_path}")
    return document
