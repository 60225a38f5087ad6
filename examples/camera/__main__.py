"""Start the whole camera pipeline: streaming server, producer and consumer, one process each.

    python -m examples.camera                  # then open http://127.0.0.1:8080/
    python -m examples.camera --port 0         # any free port; the URL is printed

Ctrl-C or SIGTERM stops all three. Each closes its pool and mappings on the way out, so
nothing is left in /dev/shm.
"""

from __future__ import annotations

import argparse
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]


def _child(module: str, *args: str, stdout: int | None = None) -> subprocess.Popen[str]:
    # A session of its own: a terminal's Ctrl-C reaches only this launcher, which then stops
    # the children in order instead of all of them at once.
    return subprocess.Popen(
        [sys.executable, "-m", f"examples.camera.{module}", *args],
        cwd=ROOT,
        stdout=stdout,
        text=True,
        start_new_session=True,
    )


def _forward(stream: IO[str], lines: queue.Queue[str]) -> None:
    """Copy the server's output to ours, and hand each line to the launcher as well."""
    for line in stream:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.put(line)


def _await_url(server: subprocess.Popen[str], lines: queue.Queue[str], timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        if "serving " in line:
            return line.split("serving ", 1)[1].strip()
    return None


def _stop(children: list[subprocess.Popen[str]]) -> None:
    """SIGTERM each child (producer first), then wait; SIGKILL only one that hangs."""
    for proc in reversed(children):
        if proc.poll() is None:
            proc.terminate()
    for proc in reversed(children):
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            print(f"camera: pid {proc.pid} did not stop; killing it", file=sys.stderr)
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=8080, help="HTTP port; 0 picks a free one (default 8080)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--domain", type=int, default=0, help="DDS domain id (default 0)")
    parser.add_argument("--rate", type=float, default=30.0, help="frames per second (default 30)")
    args = parser.parse_args()

    stop = threading.Event()

    def _request_stop(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    common = ["--domain", str(args.domain)]
    lines: queue.Queue[str] = queue.Queue()
    server = _child(
        "stream_server", *common, "--host", args.host, "--port", str(args.port), stdout=subprocess.PIPE
    )
    children = [server]
    assert server.stdout is not None
    threading.Thread(target=_forward, args=(server.stdout, lines), daemon=True).start()
    failed = None
    try:
        url = _await_url(server, lines, timeout=60)
        if url is None:
            failed = "the streaming server did not start"
            return
        children.append(_child("consumer", *common, "--report-every", "5"))
        children.append(_child("producer", *common, "--rate", str(args.rate), "--report-every", "5"))
        print(f"camera: open {url} in a browser; Ctrl-C stops", flush=True)
        while not stop.wait(0.2):
            dead = [p for p in children if p.poll() is not None]
            if dead:
                failed = f"a child process exited (pid {dead[0].pid}, status {dead[0].returncode})"
                return
    finally:
        _stop(children)
        if failed:
            sys.exit(f"camera: {failed}")
        print("camera: stopped", flush=True)


if __name__ == "__main__":
    main()
