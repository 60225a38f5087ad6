"""``loanbus``: one command with subcommands (demo, ls, top, pub, sub, clean, idlc, ...)."""

from __future__ import annotations

import signal
import sys
from typing import Any, NoReturn

import rich_click as click

from loanbus import __version__
from loanbus.cli._common import Terminated
from loanbus.cli.bench import bench
from loanbus.cli.demo import demo
from loanbus.cli.ls import ls
from loanbus.cli.pools import clean
from loanbus.cli.pubsub import pub, sub
from loanbus.cli.record import play, record
from loanbus.cli.top import top
from loanbus.cli.view import view


def _terminate(signum: int, _frame: Any) -> NoReturn:
    # Turn SIGTERM into SystemExit so that context managers close pools and unlink segments.
    raise Terminated(128 + signum)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loanbus")
def cli() -> None:
    """loanbus: zero-copy publish/subscribe over shared memory, with Cyclone DDS."""


# One line per subcommand, each in its own module under loanbus/cli/.
cli.add_command(demo)
cli.add_command(ls)
cli.add_command(top)
cli.add_command(pub)
cli.add_command(sub)
cli.add_command(clean)
cli.add_command(bench)
cli.add_command(record)
cli.add_command(play)
cli.add_command(view)

try:
    from loanbus.cli.idlc import idlc  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - only while the compiler is being built
    pass
else:
    cli.add_command(idlc)


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(cli())


if __name__ == "__main__":
    main()
