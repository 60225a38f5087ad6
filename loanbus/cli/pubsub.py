"""``loanbus pub TOPIC`` and ``loanbus sub TOPIC``: quick experiments with types from an IDL file.

``pub`` loans samples, sets fields from ``--set`` (and counts in one integer field) and
writes them at ``--rate``; ``sub`` takes them zero-copy and prints the rate and a one-line
summary of the newest sample (scalars, and arrays as shape/min/max/mean).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import rich_click as click

import loanbus
from loanbus._lifetime import wait_until
from loanbus.cli._common import FAILED, Terminated, domain_option, fail, load_type, participant
from loanbus.cli._fields import FieldError, field_view, prepare, summary
from loanbus.cli._fields import counter_field as default_counter
from loanbus.inspect import describe


def _qos(reliable: bool) -> loanbus.Qos:
    if reliable:
        return loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, max_samples=4, max_blocking_time=5.0)
    return loanbus.Qos(reliability=loanbus.Reliability.BEST_EFFORT, max_samples=4)


def _topic(dp: loanbus.DomainParticipant, name: str, cls: Any) -> loanbus.Topic[Any]:
    try:
        return loanbus.Topic(dp, name, cls)
    except ValueError as exc:
        fail(str(exc))


_idl_option = click.option(
    "--idl", "idl_file", required=True, type=click.Path(path_type=Path), help="The IDL file of the type."
)
_type_option = click.option(
    "--type", "type_name", default=None, help="The @transfer_mode(SHMEM_REF) type (default: the only one)."
)
_reliable_option = click.option(
    "--reliable/--best-effort",
    default=True,
    show_default=True,
    help="Reliability; pub and sub must agree (a best-effort sub also hears a reliable pub).",
)


def _not_negative(**options: float) -> None:
    """One line naming the first negative option and its value."""
    for name, value in options.items():
        if value < 0:
            fail(f"--{name} must not be negative, not {value:g}")


def _wrap(n: int, dtype: np.dtype[Any]) -> int:
    """``n`` wrapped into the integer range of ``dtype`` (a counter never overflows)."""
    bits = dtype.itemsize * 8
    if dtype.kind == "u":
        return n % (1 << bits)
    return (n + (1 << (bits - 1))) % (1 << bits) - (1 << (bits - 1))


@click.command()
@click.argument("topic")
@_idl_option
@_type_option
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Set a field in every sample (repeatable; a.b for nested fields).",
)
@click.option(
    "--counter",
    "counter",
    default=None,
    metavar="FIELD",
    help="Integer field that counts 0, 1, 2... (default: the first integer field not --set; '' for none).",
)
@click.option("--rate", default=10.0, show_default=True, help="Samples per second (0: as fast as possible).")
@click.option("--count", default=0, show_default=True, help="Stop after this many samples (0: until Ctrl-C).")
@click.option(
    "--readers", default=0, show_default=True, help="Wait for this many readers before the first write."
)
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for --readers.")
@click.option(
    "--linger",
    default=5.0,
    show_default=True,
    help="Reliable: seconds to wait at the end for readers to return every sample.",
)
@_reliable_option
@domain_option()
def pub(
    topic: str,
    idl_file: Path,
    type_name: str | None,
    assignments: tuple[str, ...],
    counter: str | None,
    rate: float,
    count: int,
    readers: int,
    timeout: float,
    linger: float,
    reliable: bool,
    domain_id: int,
) -> None:
    """Publish samples of an IDL type on TOPIC, filled from --set and a counter."""
    _not_negative(rate=rate, count=count, readers=readers, timeout=timeout, linger=linger)
    cls = load_type(idl_file, type_name)
    dtype = cls.__shmem_type__.dtype
    try:
        setters = prepare(dtype, list(assignments))
    except FieldError as exc:
        fail(str(exc))
    counted: tuple[str, ...] | None
    if counter is None:
        counted = default_counter(dtype, {s.path for s in setters})
    elif counter == "":
        counted = None
    else:
        try:
            counted = tuple(counter.split("."))
            view = field_view(np.zeros((), dtype), counted)
        except FieldError as exc:
            fail(f"--counter {counter}: {exc}")
        if view.dtype.kind not in "iu" or view.shape != ():
            fail(f"--counter {counter}: the field is {view.dtype} of shape {view.shape}, not an integer")
    counter_dtype = field_view(np.zeros((), dtype), counted).dtype if counted else None
    with participant(domain_id) as dp:
        writer = loanbus.DataWriter(_topic(dp, topic, cls), qos=_qos(reliable))
        if readers and not writer.wait_for_readers(readers, timeout=timeout):
            fail(f"fewer than {readers} reader(s) of {topic!r} appeared within {timeout:g} s", FAILED)
        period = 1.0 / rate if rate > 0 else 0.0
        start = last_print = time.monotonic()
        last_n = n = 0
        stopped: BaseException | None = None
        try:
            while count == 0 or n < count:
                if period:
                    due = start + n * period
                    now = time.monotonic()
                    if now < due:
                        time.sleep(min(due - now, 0.1))
                        continue
                try:
                    loan = writer.get_loan()
                except loanbus.LoanTimeoutError as exc:
                    fail(str(exc), FAILED)
                for setter in setters:
                    setter.apply(loan.data)
                if counted is not None and counter_dtype is not None:
                    field_view(loan.data, counted)[...] = _wrap(n, counter_dtype)
                writer.write(loan)
                n += 1
                now = time.monotonic()
                if now - last_print >= 1.0:
                    click.echo(f"wrote {n} samples, {(n - last_n) / (now - last_print):.1f}/s")
                    last_print, last_n = now, n
        except (KeyboardInterrupt, Terminated) as exc:
            stopped = exc
        if reliable and linger > 0 and stopped is None:
            wait_until(lambda: writer.statistics().held_slots == 0, linger)
        stats = writer.statistics()
        click.echo(
            f"wrote {n} samples of {cls.__shmem_type__.name} on {topic!r} "
            f"({stats.matched_readers} reader(s) matched, {stats.held_slots} slot(s) still held)"
        )
    if isinstance(stopped, Terminated):
        raise stopped


class _Unmappable(logging.Filter):
    """Drops the library's "cannot map the pool" warning: ``sub`` reports those writers itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("cannot map the pool")


def _check_writers(
    reader: loanbus.DataReader[Any], topic: str, stype: loanbus.ShmemType, seen: set[str]
) -> None:
    """Fail if a matched writer publishes another type; say once why another pool cannot be mapped."""
    for match in reader.matched_writers():
        if match.shm or match.segment is None or match.guid in seen:
            continue
        seen.add(match.guid)
        pool = describe(match.segment.lstrip("/"))
        if pool.type_hash is not None and pool.type_hash != stype.type_hash.hex():
            other = pool.type_name or "?"
            what = "another layout of" if other == stype.name else "type"
            fail(
                f"topic {topic!r}: the writer in pid {match.pid} publishes {what} {other!r}, "
                f"not {stype.name!r} as --idl/--type say",
                FAILED,
            )
        click.echo(
            f"warning: the pool of the writer in pid {match.pid} cannot be mapped here "
            f"({pool.problem or 'another host, user or IPC namespace'}); its samples are skipped",
            err=True,
        )


@click.command()
@click.argument("topic")
@_idl_option
@_type_option
@click.option("--count", default=0, show_default=True, help="Exit after this many samples (0: until Ctrl-C).")
@click.option("--each", is_flag=True, help="Print every sample, not one line per --interval.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between lines.")
@click.option(
    "--timeout",
    default=0.0,
    show_default=True,
    help="Fail if no sample came within this many seconds (0: wait forever).",
)
@_reliable_option
@domain_option()
def sub(
    topic: str,
    idl_file: Path,
    type_name: str | None,
    count: int,
    each: bool,
    interval: float,
    timeout: float,
    reliable: bool,
    domain_id: int,
) -> None:
    """Take samples of an IDL type from TOPIC; print the rate and a summary of the fields."""
    _not_negative(count=count, interval=interval, timeout=timeout)
    cls = load_type(idl_file, type_name)
    stype: loanbus.ShmemType = cls.__shmem_type__
    logging.getLogger("loanbus").addFilter(_Unmappable())
    logging.getLogger("loanbus.types").setLevel(logging.ERROR)  # sub says it in its own line
    with participant(domain_id) as dp:
        reader = loanbus.DataReader(_topic(dp, topic, cls), qos=_qos(reliable))
        got = checked = inconsistent = unmappable = 0
        start = last_print = time.monotonic()
        last_got = 0
        seen: set[str] = set()
        stopped: BaseException | None = None
        try:
            while count == 0 or got < count:
                samples = reader.take(max_samples=64, timeout=0.2)
                stats = reader.statistics()
                if stats.unmappable_writers > unmappable:
                    unmappable = stats.unmappable_writers
                    _check_writers(reader, topic, stype, seen)
                if not samples:
                    if timeout and got == 0 and time.monotonic() - start > timeout:
                        fail(f"no sample on {topic!r} within {timeout:g} s", FAILED)
                    continue
                keep = samples if count == 0 else samples[: count - got]
                for i, s in enumerate(keep):
                    now = time.monotonic()
                    last = got + i + 1 == count
                    shown = each or last or (i == len(keep) - 1 and now - last_print >= interval)
                    line = summary(s.data) if shown else ""
                    ok = reader.is_data_consistent(s)  # every sample, after its data was used
                    checked += 1
                    inconsistent += not ok
                    if shown:
                        rate = (got + i + 1 - last_got) / max(now - last_print, 1e-9)
                        flag = "" if ok else " (inconsistent: overwritten while read)"
                        click.echo(f"{got + i + 1} samples, {rate:.1f}/s: {line}{flag}")
                        last_print, last_got = now, got + i + 1
                got += len(keep)
                reader.return_loan(samples)
        except (KeyboardInterrupt, Terminated) as exc:
            stopped = exc
        click.echo(
            f"received {got} samples of {stype.name} on {topic!r} "
            f"({checked} checked for consistency, {inconsistent} inconsistent)"
        )
    if isinstance(stopped, Terminated):
        raise stopped
