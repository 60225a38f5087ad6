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


def _stop(children: dict[str, subprocess.Popen[str]]) -> list[str]:
    """SIGTERM each child (producer first), then wait; SIGKILL only one that hangs.

    Returns what went wrong: children that hung or exited with a non-zero status.
    """
    order = list(reversed(children.items()))
    for _, proc in order:
        if proc.poll() is None:
            proc.terminate()
    problems = []
    for name, proc in order:
        try:
            status = proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            problems.append(f"{name} did not stop within 15 s and was killed")
        else:
            # -SIGTERM: it was stopped before it installed its handler, so had made nothing yet.
            if status not in (0, -signal.SIGTERM):
                problems.append(f"{name} exited with status {status}")
    return problems


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
    children = {"stream_server": server}
    assert server.stdout is not None
    threading.Thread(target=_forward, args=(server.stdout, lines), daemon=True).start()
    failed = None
    try:
        url = _await_url(server, lines, timeout=60)
        if url is None:
            failed = "the streaming server did not start"
            return
        children["consumer"] = _child("consumer", *common, "--report-every", "5")
        children["producer"] = _child("producer", *common, "--rate", str(args.rate), "--report-every", "5")
        print(f"camera: open {url} in a browser; Ctrl-C stops", flush=True)
        while not stop.wait(0.2):
            dead = [(name, p.returncode) for name, p in children.items() if p.poll() is not None]
            if dead:
                failed = f"{dead[0][0]} exited with status {dead[0][1]} on its own"
                return
    finally:
        problems = _stop(children)
        if failed or problems:
            sys.exit("camera: " + "; ".join(([failed] if failed else []) + problems))
        print("camera: stopped", flush=True)


if __name__ == "__main__":
    main()
