"""``loanbus view``: a Foxglove WebSocket server that shows loanbus topics live.

Open the Foxglove app, choose *Open connection* -> *Foxglove WebSocket* and enter the URL
it prints (``ws://127.0.0.1:8765``): every topic whose type is known appears, image-like
topics as video.
"""

from __future__ import annotations

import time
from pathlib import Path

import rich_click as click

from loanbus.cli._common import FAILED, Terminated, check_domain, domain_option, fail
from loanbus.cli._recording import StatusLine, finishing, idl_option, idl_types
from loanbus.recording import IMAGE_MODES, MissingExtraError, Viewer
from loanbus.recording.viewer import DEFAULT_PORT


@click.command()
@click.argument("topics", nargs=-1)
@click.option("--port", default=DEFAULT_PORT, show_default=True, help="TCP port (0: any free port).")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0: let other machines connect).",
)
@domain_option()
@idl_option
@click.option(
    "--images",
    type=click.Choice(IMAGE_MODES),
    default="jpeg",
    show_default=True,
    help="Image-like topics also as JPEG CompressedImage (jpeg), RawImage (raw), or not.",
)
@click.option("--duration", type=float, default=None, help="Stop after this many seconds (default: Ctrl-C).")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between status lines.")
def view(
    topics: tuple[str, ...],
    port: int,
    host: str,
    domain_id: int,
    idl_files: tuple[Path, ...],
    images: str,
    duration: float | None,
    interval: float,
) -> None:
    """Serve loanbus topics (TOPIC ..., default all) to the Foxglove app over WebSocket."""
    check_domain(domain_id)
    if not 0 <= port <= 65535:
        fail(f"--port must be within 0..65535, not {port}")
    if (duration is not None and duration < 0) or interval <= 0:
        fail("--duration must not be negative and --interval must be positive")
    types = idl_types(idl_files)
    try:
        viewer = Viewer(domain_id=domain_id, host=host, port=port, topics=topics, types=types, images=images)
    except MissingExtraError as exc:
        fail(str(exc), FAILED)
    except (OSError, RuntimeError) as exc:
        fail(f"cannot serve on {host}:{port}: {exc}", FAILED)
    click.echo(f"serving {viewer.url} (Foxglove WebSocket): open it in Foxglove; Ctrl-C stops")
    waiting = ", ".join(repr(t) for t in topics) if topics else "loanbus topics"
    line = StatusLine("sent")
    stopped: BaseException | None = None
    deadline = None if duration is None else time.monotonic() + duration
    try:
        while deadline is None or time.monotonic() < deadline:
            left = interval if deadline is None else min(interval, deadline - time.monotonic())
            time.sleep(max(left, 0.0))
            line.show(viewer.status(), waiting)
    except (KeyboardInterrupt, Terminated) as exc:
        stopped = exc
    finally:
        with finishing():
            viewer.close()
    line.end()
    status = viewer.status()
    click.echo(f"sent {status.samples} samples of {len(status.topics)} topic(s)")
    if isinstance(stopped, Terminated):
        raise stopped
