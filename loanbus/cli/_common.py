"""What the subcommands share: one-line errors, the ``--domain`` option, types from IDL files.

A user mistake ends the command with one line on stderr (``loanbus <cmd>: error: ...``) and
a non-zero status, never a traceback: 2 for a bad argument, 1 for what went wrong later.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import rich_click as click

import loanbus

F = TypeVar("F", bound=Callable[..., Any])

BAD_ARGUMENT = 2
FAILED = 1
MAX_DOMAIN = 232


class Terminated(SystemExit):
    """SIGTERM, turned into an exit that runs context managers (pools get unlinked)."""


def fail(message: str, status: int = BAD_ARGUMENT) -> NoReturn:
    """End the command with one line on stderr and ``status``."""
    ctx = click.get_current_context(silent=True)
    name = f"loanbus {ctx.info_name}" if ctx is not None and ctx.parent is not None else "loanbus"
    first = (message.strip().splitlines() or ["failed"])[0]
    click.echo(f"{name}: error: {first}", err=True)
    sys.exit(status)


def domain_option(default: int | None = 0, help: str = "DDS domain id") -> Callable[[F], F]:
    """``--domain N``: the DDS domain, checked by ``check_domain`` for a one-line error."""
    return click.option(
        "--domain",
        "domain_id",
        type=int,
        default=default,
        show_default=default is not None,
        help=f"{help} (0..{MAX_DOMAIN}).",
    )


def check_domain(domain_id: int) -> int:
    if not 0 <= domain_id <= MAX_DOMAIN:
        fail(f"--domain must be within 0..{MAX_DOMAIN}, not {domain_id}")
    return domain_id


@contextmanager
def participant(domain_id: int) -> Iterator[loanbus.DomainParticipant]:
    """A DomainParticipant in ``domain_id``; a domain DDS refuses is a one-line error."""
    check_domain(domain_id)
    try:
        dp = loanbus.DomainParticipant(domain_id=domain_id)
    except (loanbus.LoanbusError, ValueError) as exc:
        fail(f"cannot join DDS domain {domain_id}: {exc}", FAILED)
    with dp:
        yield dp


def load_type(idl_file: Path, type_name: str | None) -> Any:
    """The loanable class ``type_name`` of ``idl_file`` (the only one if no name is given)."""
    from loanbus.idl import IdlError, load

    if not idl_file.is_file():
        fail(f"--idl {idl_file}: no such file")
    try:
        module = load(idl_file)
    except IdlError as exc:
        fail(f"{exc.pos}: {exc.message}")
    loanable = list(getattr(module, "LOANABLE", ()))
    names = ", ".join(sorted(t.__shmem_type__.name for t in loanable)) or "none"
    if not loanable:
        fail(f"{idl_file} has no @transfer_mode(SHMEM_REF) type to publish or subscribe to")
    if type_name is None:
        if len(loanable) > 1:
            fail(f"{idl_file} has several loanable types; pick one with --type ({names})")
        return loanable[0]
    wanted = type_name.lstrip(":")
    for cls in loanable:
        full = cls.__shmem_type__.name
        if wanted in (full, full.rsplit("::", 1)[-1]):
            return cls
    fail(f"--type {type_name}: no loanable type of that name in {idl_file} (loanable: {names})")
