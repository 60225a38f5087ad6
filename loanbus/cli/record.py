"""``loanbus record`` and ``loanbus play``: topics into an MCAP file, and back onto the bus.

``record`` discovers loanbus topics (all of them with ``--all``, or the named ones), takes
their samples zero-copy and writes each as CDR with its type's IDL schema; image-like
types also get a Foxglove image channel. Ctrl-C or SIGTERM finishes the file with its
summary. ``play`` republishes a file's loanbus channels through loans with the recorded
timing; the types come from the file.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import rich_click as click

from loanbus.cli._common import BAD_ARGUMENT, FAILED, Terminated, check_domain, domain_option, fail
from loanbus.cli._recording import StatusLine, finishing, idl_option, idl_types
from loanbus.recording import COMPRESSIONS, IMAGE_MODES, MissingExtraError, Player, Recorder, RecordingError


@click.command()
@click.argument("topics", nargs=-1)
@click.option("--all", "all_topics", is_flag=True, help="Record every loanbus topic whose type is known.")
@click.option(
    "-o", "--output", required=True, type=click.Path(path_type=Path), help="The MCAP file to write."
)
@domain_option()
@click.option("--duration", type=float, default=None, help="Stop after this many seconds (default: Ctrl-C).")
@click.option(
    "--compression",
    type=click.Choice(COMPRESSIONS),
    default="zstd",
    show_default=True,
    help="Chunk compression.",
)
@idl_option
@click.option(
    "--images",
    type=click.Choice(IMAGE_MODES),
    default="raw",
    show_default=True,
    help="Image-like topics also as Foxglove RawImage (raw), JPEG CompressedImage (jpeg), or not.",
)
@click.option(
    "--reliable",
    is_flag=True,
    help="Take reliable writers' samples reliably: such a writer waits for the recorder instead of "
    "overwriting a slot it is copying.",
)
@click.option("--overwrite", is_flag=True, help="Replace FILE if it exists.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between status lines.")
def record(
    topics: tuple[str, ...],
    all_topics: bool,
    output: Path,
    domain_id: int,
    duration: float | None,
    compression: str,
    idl_files: tuple[Path, ...],
    images: str,
    reliable: bool,
    overwrite: bool,
    interval: float,
) -> None:
    """Record loanbus topics (TOPIC ... or --all) into an MCAP file."""
    check_domain(domain_id)
    if not topics and not all_topics:
        fail("name the topics to record, or pass --all")
    if (duration is not None and duration < 0) or interval <= 0:
        fail("--duration must not be negative and --interval must be positive")
    if output.exists() and not overwrite:
        fail(f"{output} exists; choose another name or pass --overwrite")
    types = idl_types(idl_files)
    try:
        recorder = Recorder(
            output,
            domain_id=domain_id,
            topics=topics,
            types=types,
            all_topics=all_topics,
            compression=compression,
            images=images,
            reliable=reliable,
            overwrite=overwrite,
        )
    except MissingExtraError as exc:
        fail(str(exc), FAILED)
    except OSError as exc:
        fail(f"cannot write {output}: {exc}", FAILED)
    waiting = ", ".join(repr(t) for t in topics) if topics else "loanbus topics"
    click.echo(f"recording {waiting} of domain {domain_id} into {output} (Ctrl-C stops)")
    line = StatusLine("recorded")
    stopped: BaseException | None = None
    deadline = None if duration is None else time.monotonic() + duration
    try:
        while deadline is None or time.monotonic() < deadline:
            left = interval if deadline is None else min(interval, deadline - time.monotonic())
            time.sleep(max(left, 0.0))
            line.show(recorder.status(), waiting)
    except (KeyboardInterrupt, Terminated) as exc:
        stopped = exc
    finally:
        with finishing():
            recorder.close()
    line.end()
    status = recorder.status()
    click.echo(
        f"recorded {status.samples} samples of {len(status.topics)} topic(s) into {output} "
        f"({status.bytes / 1e6:,.1f} MB of messages, {status.dropped} dropped, "
        f"{status.inconsistent} inconsistent)"
    )
    for topic, type_name in status.unknown:
        click.echo(
            f"not recorded: {topic!r} (type {type_name} unknown; pass --idl FILE defining it)", err=True
        )
    if isinstance(stopped, Terminated):
        raise stopped


def _topic_list(values: tuple[str, ...]) -> list[str] | None:
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return names or None


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--rate",
    default=1.0,
    show_default=True,
    help="Speed factor of the recorded timing (0: as fast as possible).",
)
@click.option("--loop", is_flag=True, help="Start again at the end, until Ctrl-C.")
@click.option("--topics", "topics", multiple=True, metavar="TOPIC[,TOPIC]", help="Play only these topics.")
@domain_option()
@click.option("--readers", default=0, show_default=True, help="Wait for this many readers per topic first.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for --readers.")
@click.option(
    "--reliable/--best-effort",
    default=True,
    show_default=True,
    help="Reliable writers wait for slow readers; best effort overwrites.",
)
def play(
    file: Path,
    rate: float,
    loop: bool,
    topics: tuple[str, ...],
    domain_id: int,
    readers: int,
    timeout: float,
    reliable: bool,
) -> None:
    """Republish the loanbus topics of an MCAP file through loans, with the recorded timing."""
    check_domain(domain_id)
    if rate < 0 or readers < 0 or timeout < 0:
        fail("--rate, --readers and --timeout must not be negative")
    if not file.is_file():
        fail(f"{file}: no such file")
    try:
        player = Player(file, domain_id=domain_id, topics=_topic_list(topics), reliable=reliable)
    except MissingExtraError as exc:
        fail(str(exc), FAILED)
    except RecordingError as exc:
        fail(str(exc), BAD_ARGUMENT)
    stopped: BaseException | None = None
    try:
        click.echo(f"playing {', '.join(repr(t) for t in player.topics)} from {file} into domain {domain_id}")
        if readers and not player.wait_for_readers(readers, timeout=timeout):
            fail(f"fewer than {readers} reader(s) per topic appeared within {timeout:g} s", FAILED)
        status: Any = player.run(rate=rate, loop=loop)
    except (KeyboardInterrupt, Terminated) as exc:
        stopped = exc
        status = player.status()
    except RecordingError as exc:
        fail(str(exc), FAILED)
    finally:
        with finishing():
            player.close()
    loops = f", {status.loops} loop(s)" if loop else ""
    click.echo(f"played {status.messages} messages in {status.elapsed_s:,.2f} s{loops}")
    if isinstance(stopped, Terminated):
        raise stopped
