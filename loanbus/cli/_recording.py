"""What ``loanbus record`` and ``loanbus view`` share: types from ``--idl``, the status line,
and a stop that lets the MCAP file or the server finish (a second Ctrl-C waits for it)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import rich_click as click

from loanbus.cli._common import fail
from loanbus.recording import Status, TopicStatus

idl_option = click.option(
    "--idl",
    "idl_files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="An IDL file whose @transfer_mode(SHMEM_REF) types may be taken (repeatable).",
)


def idl_types(idl_files: tuple[Path, ...]) -> list[Any]:
    """The loanable classes of every ``--idl`` file; a bad file is a one-line error."""
    from loanbus.idl import IdlError, load

    found: list[Any] = []
    for path in idl_files:
        if not path.is_file():
            fail(f"--idl {path}: no such file")
        try:
            module = load(path)
        except IdlError as exc:
            fail(f"{exc.pos}: {exc.message}")
        loanable = list(getattr(module, "LOANABLE", ()))
        if not loanable:
            fail(f"{path} has no @transfer_mode(SHMEM_REF) type")
        found += loanable
    return found


class StatusLine:
    """Rates since the last call: one line rewritten in place on a terminal, a line per topic
    per interval otherwise (for logs and for programs that read it)."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.tty = sys.stdout.isatty()
        self._last: dict[str, tuple[float, int, int]] = {}
        self._width = 0

    def _rates(self, t: TopicStatus, now: float) -> tuple[float, float]:
        then, samples, nbytes = self._last.get(t.topic, (0.0, 0, 0))
        self._last[t.topic] = (now, t.samples, t.bytes)
        span = max(now - then, 1e-9)
        return (t.samples - samples) / span, (t.bytes - nbytes) / span / 1e6

    def show(self, status: Status, waiting_for: str) -> None:
        now = status.elapsed_s
        if not status.topics:
            self._emit(f"{now:6.1f} s  waiting for {waiting_for}")
            return
        rates = {t.topic: self._rates(t, now) for t in status.topics}
        if self.tty:
            per_s = sum(r[0] for r in rates.values())
            mb_s = sum(r[1] for r in rates.values())
            self._emit(
                f"{now:6.1f} s  {len(status.topics)} topic(s): {per_s:,.1f} samples/s, {mb_s:,.1f} MB/s, "
                f"{status.samples:,} {self.verb}, {status.dropped:,} dropped, "
                f"{status.inconsistent:,} inconsistent"
            )
            return
        for t in status.topics:
            per_s, mb_s = rates[t.topic]
            click.echo(
                f"{now:6.1f} s  {t.topic}: {per_s:,.1f} samples/s, {mb_s:,.1f} MB/s, "
                f"{t.samples} {self.verb}, {t.dropped} dropped, {t.inconsistent} inconsistent, "
                f"last seq {t.last_seq}"
            )

    def _emit(self, line: str) -> None:
        if self.tty:
            pad = max(self._width - len(line), 0)
            self._width = len(line)
            sys.stdout.write("\r" + line + " " * pad)
            sys.stdout.flush()
        else:
            click.echo(line)

    def end(self) -> None:
        if self.tty and self._width:
            sys.stdout.write("\n")
            sys.stdout.flush()


@contextmanager
def finishing() -> Iterator[None]:
    """While the block runs (closing a file or a server), Ctrl-C and SIGTERM are held back."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
