"""The streaming server: takes camera frames zero-copy and serves them as MJPEG over HTTP.

    python -m examples.camera.stream_server --port 8080     # then open http://127.0.0.1:8080/

A thread takes frames (DDS waits never block the event loop), JPEG-encodes the newest one
straight from the read-only view of the producer's shared memory, and only then asks
``is_data_consistent()``: a frame the producer overwrote during encoding is torn, so it is
dropped and counted. The aiohttp event loop serves

    /             an HTML page with the live stream and live statistics
    /stream.mjpg  the frames as multipart/x-mixed-replace (MJPEG)
    /frame.jpg    the newest frame as one JPEG
    /stats        the statistics as JSON

It keeps serving (the last frame, and statistics) while no producer runs, and picks up a
new producer when one starts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import simplejpeg
from aiohttp import web

import loanbus
from examples.camera.frames import TOPIC, Image, pixels, qos

PAGE = Path(__file__).with_name("page.html")
WINDOW_S = 2.0  # frames/s is measured over this many seconds


class Statistics:
    """What the frame thread counts and the page shows; a lock guards it across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.received = self.streamed = self.torn = 0
        self.last_frame = -1
        self.writers: list[dict[str, Any]] = []
        self._received_at: deque[float] = deque()
        self._streamed_at: deque[float] = deque()
        self._transfer_ms: deque[float] = deque(maxlen=300)
        self._encoded_ms: deque[float] = deque(maxlen=300)

    def taken(self, count: int, transfer_ms: list[float]) -> None:
        with self._lock:
            self.received += count
            now = time.monotonic()
            self._received_at.extend([now] * count)
            self._transfer_ms.extend(transfer_ms)

    def encoded(self, frame: int, consistent: bool, encoded_ms: float) -> None:
        with self._lock:
            if not consistent:
                self.torn += 1
                return
            self.streamed += 1
            self.last_frame = frame
            self._streamed_at.append(time.monotonic())
            self._encoded_ms.append(encoded_ms)

    def snapshot(self, clients: int) -> dict[str, Any]:
        """A JSON-ready dict; rates count the last WINDOW_S seconds."""
        with self._lock:
            now = time.monotonic()
            for stamps in (self._received_at, self._streamed_at):
                while stamps and stamps[0] < now - WINDOW_S:
                    stamps.popleft()
            span = min(WINDOW_S, max(now - self.started, 1e-3))
            return {
                "frames_received": self.received,
                "frames_streamed": self.streamed,
                "torn_frames": self.torn,
                "received_fps": round(len(self._received_at) / span, 1),
                "streamed_fps": round(len(self._streamed_at) / span, 1),
                "transfer_latency_ms": _median(self._transfer_ms),
                "jpeg_latency_ms": _median(self._encoded_ms),
                "last_frame": self.last_frame,
                "writers": list(self.writers),
                "clients": clients,
                "uptime_s": round(now - self.started, 1),
            }


def _median(values: deque[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


class FrameSource(threading.Thread):
    """Takes frames in its own thread and hands each consistent JPEG to ``on_frame``."""

    def __init__(
        self, domain_id: int, quality: int, stats: Statistics, on_frame: Callable[[bytes], None]
    ) -> None:
        super().__init__(name="frame-source", daemon=True)
        self.domain_id, self.quality, self.stats, self.on_frame = domain_id, quality, stats, on_frame
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._stop_requested = threading.Event()

    def stop(self) -> None:
        self._stop_requested.set()

    def run(self) -> None:
        try:
            with loanbus.DomainParticipant(domain_id=self.domain_id) as dp:
                reader = loanbus.DataReader(loanbus.Topic(dp, TOPIC, Image), qos=qos())
                self.ready.set()
                next_poll = 0.0
                while not self._stop_requested.is_set():
                    if time.monotonic() >= next_poll:  # who produces, for the page
                        self.stats.writers = [
                            {"pid": w.pid, "zero_copy": w.shm} for w in reader.matched_writers()
                        ]
                        next_poll = time.monotonic() + 0.5
                    samples = reader.take(max_samples=16, timeout=0.2)
                    if samples:
                        self._use(reader, samples)
        except BaseException as exc:  # reported by the server, which then exits non-zero
            self.error = exc
        finally:
            self.ready.set()

    def _use(self, reader: loanbus.DataReader[Any], samples: list[loanbus.LoanedSample]) -> None:
        """Encode the newest frame in place, then check it; the older ones are only counted."""
        newest = max(samples, key=lambda s: s.info.source_timestamp)
        self.stats.taken(
            len(samples), [(s.info.reception_timestamp - s.info.source_timestamp) / 1e6 for s in samples]
        )
        reader.return_loan([s for s in samples if s is not newest])
        image = Image(newest.data)
        frame = int(image.sequence)
        jpeg = simplejpeg.encode_jpeg(pixels(image), quality=self.quality, colorspace="RGB", fastdct=True)
        consistent = reader.is_data_consistent(newest)  # after every pixel was read
        encoded_ms = (time.time_ns() - newest.info.source_timestamp) / 1e6
        reader.return_loan(newest)
        self.stats.encoded(frame, consistent, encoded_ms)
        if consistent:
            self.on_frame(jpeg)


class FrameHub:
    """The newest JPEG on the event loop's side, and a way to wait for the next one."""

    def __init__(self) -> None:
        self.jpeg: bytes | None = None
        self.version = 0
        self.clients = 0
        self.closing = False
        self._changed = asyncio.Event()

    def publish(self, jpeg: bytes) -> None:
        self.jpeg, self.version = jpeg, self.version + 1
        self._wake()

    def close(self) -> None:
        self.closing = True
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def newer_than(self, version: int, timeout: float) -> tuple[int, bytes] | None:
        """The newest frame if it is newer than ``version``, waiting up to ``timeout`` for one."""
        if self.version == version or self.jpeg is None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
        if self.version == version or self.jpeg is None:
            return None
        return self.version, self.jpeg


HUB = web.AppKey("hub", FrameHub)
STATS = web.AppKey("stats", Statistics)


async def page(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(PAGE, headers={"Cache-Control": "no-cache"})


async def stats(request: web.Request) -> web.Response:
    snapshot = request.app[STATS].snapshot(request.app[HUB].clients)
    return web.json_response(snapshot, dumps=json.dumps, headers={"Cache-Control": "no-store"})


async def frame(request: web.Request) -> web.Response:
    jpeg = request.app[HUB].jpeg
    if jpeg is None:
        raise web.HTTPServiceUnavailable(text="no frame yet: is a producer running?")
    return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"})


async def stream(request: web.Request) -> web.StreamResponse:
    """MJPEG: one JPEG part per new frame, until the client goes away or the server stops."""
    hub = request.app[HUB]
    response = web.StreamResponse(
        headers={
            "Content-Type": "multipart/x-mixed-replace; boundary=frame",
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(request)
    hub.clients += 1
    try:
        version = 0
        while not hub.closing:
            newer = await hub.newer_than(version, timeout=1.0)
            if newer is None:
                continue
            version, jpeg = newer
            head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
            await response.write(head + jpeg + b"\r\n")
    except (ConnectionResetError, ConnectionError):
        pass  # the viewer closed the page
    finally:
        hub.clients -= 1
    return response


def make_app(hub: FrameHub, stats_: Statistics) -> web.Application:
    app = web.Application()
    app[HUB], app[STATS] = hub, stats_
    app.router.add_get("/", page)
    app.router.add_get("/stats", stats)
    app.router.add_get("/frame.jpg", frame)
    app.router.add_get("/stream.mjpg", stream)
    return app


async def serve(domain_id: int, host: str, port: int, quality: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    hub, stats_ = FrameHub(), Statistics()

    def on_frame(jpeg: bytes) -> None:  # runs in the frame thread
        loop.call_soon_threadsafe(hub.publish, jpeg)

    source = FrameSource(domain_id, quality, stats_, on_frame)
    source.start()
    await loop.run_in_executor(None, source.ready.wait)
    runner = web.AppRunner(make_app(hub, stats_), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        try:
            sock = socket.create_server((host, port))
        except OSError as exc:
            raise SystemExit(f"stream_server: cannot listen on {host}:{port}: {exc.strerror}") from None
        site = web.SockSite(runner, sock)
        await site.start()
        actual = sock.getsockname()[1]
        print(f"stream_server: serving http://{host}:{actual}/", flush=True)
        while not stop.is_set() and source.is_alive():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        hub.close()
        source.stop()
        await loop.run_in_executor(None, source.join)
        await runner.cleanup()
    if source.error is not None:
        raise SystemExit(f"stream_server: the frame thread failed: {source.error!r}")
    print(f"stream_server: stopped after {stats_.streamed} frames streamed, {stats_.torn} torn", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--domain", type=int, default=0, help="DDS domain id (default 0)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port; 0 picks a free one (default 8080)")
    parser.add_argument("--quality", type=int, default=80, help="JPEG quality 1..100 (default 80)")
    args = parser.parse_args()
    if not 1 <= args.quality <= 100:
        parser.error("--quality must be 1..100")
    asyncio.run(serve(args.domain, args.host, args.port, args.quality))


if __name__ == "__main__":
    main()
