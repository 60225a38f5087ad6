"""examples/camera: producer, consumer and streaming server as real processes, and the page in a
real headless Chromium."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import simplejpeg

from tests import optional
from tests.chromium import Chromium

ROOT = Path(__file__).resolve().parent.parent
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy


class Child:
    """A ``python -m examples.camera.<module>`` process whose output lines we can wait for."""

    def __init__(self, module: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"examples.camera.{module}", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line.rstrip("\n"))

    def wait_line(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """The first line (from now on) that matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None and self._queue.empty():
                    break
                continue
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"no line matching {pattern!r}; output so far:\n" + "\n".join(self.lines))

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM (so the process closes its pool), then wait; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"pid {self.proc.pid} ignored SIGTERM for {timeout} s") from None


def _get(url: str) -> bytes:
    with _HTTP.open(url, timeout=10) as resp:
        body: bytes = resp.read()
        return body


def _stats(base: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(_get(base + "stats"))
    return result


def _wait_stats(base: str, ok: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stats = _stats(base)
        if ok(stats):
            return stats
        if time.monotonic() > deadline:
            raise AssertionError(f"statistics never got there: {stats}")
        time.sleep(0.1)


def _mjpeg_parts(base: str, count: int) -> list[bytes]:
    """The first ``count`` JPEGs of a fresh connection to the MJPEG stream."""
    with _HTTP.open(base + "stream.mjpg", timeout=20) as resp:
        assert resp.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
        parts = []
        while len(parts) < count:
            assert resp.readline() == b"--frame\r\n"
            headers = {}
            while (line := resp.readline()) != b"\r\n":
                key, _, value = line.decode().partition(":")
                headers[key.lower()] = value.strip()
            assert headers["content-type"] == "image/jpeg"
            parts.append(resp.read(int(headers["content-length"])))
            assert resp.readline() == b"\r\n"
        return parts


def _jpeg_size(jpeg: bytes) -> tuple[int, int]:
    height, width, _, _ = simplejpeg.decode_jpeg_header(jpeg)
    return width, height


def _loanbus_shm(prefix: str) -> list[str]:
    return [n for n in os.listdir("/dev/shm") if "loanbus" in n and prefix in n]


# -- pure parts ----------------------------------------------------------------------------


def test_the_painter_moves_the_gradient_and_draws_the_frame_number() -> None:
    from examples.camera.consumer import channel_means
    from examples.camera.frames import HEIGHT, WIDTH, Painter

    painter = Painter()
    a = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    b = np.zeros_like(a)
    painter.paint(a, 7)
    painter.paint(b, 8)
    assert a[500, 1000, 0] != b[500, 1000, 0]  # the gradient moved
    assert a[500, 200, 0] < a[500, 1000, 0]  # red grows to the right
    assert a[200, 1000, 1] < a[900, 1000, 1]  # green grows downwards
    digits_a, digits_b = a[24:84, 24:408], b[24:84, 24:408]  # "00000007" vs "00000008"
    assert set(np.unique(digits_a)) == {0, 255}
    assert (digits_a[:, :336] == digits_b[:, :336]).all()  # the same leading zeros
    assert (digits_a[:, 336:] != digits_b[:, 336:]).any()  # a different last digit
    assert np.allclose(channel_means(a), a.reshape(-1, 3).mean(axis=0))


# -- processes -----------------------------------------------------------------------------


def test_the_consumer_takes_frames_from_the_producer_and_reports_their_means(domain_id: int) -> None:
    consumer = Child("consumer", "--domain", str(domain_id), "--frames", "45", "--report-every", "0.5")
    producer = Child("producer", "--domain", str(domain_id), "--rate", "30", "--report-every", "0.5")
    try:
        done = consumer.wait_line(r"consumer: took (\d+) frames, (\d+) inconsistent", timeout=60)
        assert consumer.proc.wait(20) == 0
        assert int(done[1]) == 45
        assert int(done[2]) <= 45
        report = next(
            re.search(r"([\d.]+) frames/s, latency median ([\d.]+) ms .*mean RGB \(([\d., ]+)\)", line)
            for line in consumer.lines
            if "mean RGB (" in line
        )
        assert report is not None, consumer.lines
        assert float(report[1]) > 0
        assert 0 < float(report[2]) < 10_000
        means = [float(v) for v in report[3].split(",")]
        assert all(90 < m < 165 for m in means), means  # the gradients average to mid-grey
        producer.wait_line(r"producer: frame \d+, [\d.]+ frames/s")
        assert producer.stop() == 0
        wrote = re.search(r"producer: wrote (\d+) frames", "\n".join(producer.lines))
        assert wrote is not None and int(wrote[1]) >= 45, producer.lines
    finally:
        consumer.stop()
        producer.stop()


def test_the_stream_server_keeps_serving_while_the_producer_stops_and_restarts(
    domain_id: int, shm_prefix: str
) -> None:
    common = ["--domain", str(domain_id)]
    server = Child("stream_server", *common, "--port", "0")
    first = second = None
    try:
        base = server.wait_line(r"serving (http://\S+/)")[1]
        before = _stats(base)
        assert before["frames_received"] == 0 and before["writers"] == []
        assert b"no frame yet" in _get_error(base + "frame.jpg", 503)

        first = Child("producer", *common, "--report-every", "0")
        s1 = _wait_stats(base, lambda s: s["frames_streamed"] >= 10 and s["writers"])
        assert s1["writers"] == [{"pid": first.proc.pid, "zero_copy": True}]
        jpeg1 = _get(base + "frame.jpg")
        assert _jpeg_size(jpeg1) == (1920, 1080)
        assert first.stop() == 0

        # No producer: the server notices, and still answers with the last frame.
        idle = _wait_stats(base, lambda s: s["writers"] == [] and s["received_fps"] == 0)
        assert _jpeg_size(_get(base + "frame.jpg")) == (1920, 1080)
        assert _stats(base)["frames_streamed"] == idle["frames_streamed"]

        second = Child("producer", *common, "--report-every", "0")
        s2 = _wait_stats(
            base, lambda s: s["frames_streamed"] >= idle["frames_streamed"] + 10 and s["writers"]
        )
        assert s2["writers"] == [{"pid": second.proc.pid, "zero_copy": True}]
        parts = _mjpeg_parts(base, 3)
        assert all(_jpeg_size(p) == (1920, 1080) for p in parts)
        assert len(set(parts)) == 3  # three different frames of the new producer
        assert second.stop() == 0
        viewer = _Viewer(base)  # a viewer still attached when the server stops
        assert server.stop() == 0
        assert viewer.ended.wait(10), "the MJPEG response did not end when the server stopped"
        assert viewer.received > 0
        assert any("stream_server: stopped after" in line for line in server.lines)
        assert _loanbus_shm(shm_prefix) == []
    finally:
        for child in (second, first, server):
            if child is not None:
                child.stop()


class _Viewer:
    """Reads /stream.mjpg in a thread until the server ends the response."""

    def __init__(self, base: str) -> None:
        self.received = 0
        self.ended = threading.Event()
        self._resp = _HTTP.open(base + "stream.mjpg", timeout=30)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while chunk := self._resp.read(65536):
                self.received += len(chunk)
        finally:
            self._resp.close()
            self.ended.set()


def _get_error(url: str, status: int) -> bytes:
    try:
        _get(url)
    except urllib.error.HTTPError as exc:
        assert exc.code == status
        body: bytes = exc.read()
        return body
    raise AssertionError(f"{url} answered, expected HTTP {status}")


# -- the whole pipeline in a browser -------------------------------------------------------


def test_one_command_serves_a_live_page_that_chromium_shows_and_stops_cleanly(
    domain_id: int, shm_prefix: str, tmp_path: Path
) -> None:
    optional.chromium()  # skipped without a browser (a failure in CI)
    camera = Child("__main__", "--domain", str(domain_id), "--port", "0")
    try:
        url = camera.wait_line(r"camera: open (http://\S+/) in a browser")[1]
        shots = asyncio.run(_look_at_the_page(url, tmp_path))
        assert shots[0] != shots[1]  # the picture moved within a second
        assert camera.stop() == 0
        out = "\n".join(camera.lines)
        assert "camera: stopped" in out, out
        assert re.search(r"producer: wrote \d+ frames", out), out
        assert re.search(r"consumer: took \d+ frames", out), out
        assert "stream_server: stopped after" in out, out
        assert _loanbus_shm(shm_prefix) == []
    finally:
        camera.stop()


async def _look_at_the_page(url: str, tmp_path: Path) -> tuple[bytes, bytes]:
    async with Chromium(tmp_path / "profile") as browser:
        await browser.call("Page.enable")
        await browser.call("Page.navigate", url=url)
        await browser.wait_for("document.title === 'loanbus camera'", timeout=30)
        size = await browser.wait_for(
            "(() => { const i = document.getElementById('stream');"
            " return i.complete && i.naturalWidth ? [i.naturalWidth, i.naturalHeight] : null; })()",
            timeout=30,
        )
        assert size == [1920, 1080]
        await browser.wait_for(  # the page has polled statistics that show a running producer
            "(() => { const t = (id) => document.getElementById(id).textContent;"
            " return t('status') === 'live' && parseFloat(t('received_fps')) >= 5"
            " && /^[0-9]+$/.test(t('writers')); })()",
            timeout=30,
        )
        shown = await browser.evaluate(
            "Object.fromEntries([...document.querySelectorAll('td.v')].map(e => [e.id, e.textContent]))"
        )
        assert 1 < float(shown["received_fps"]) < 1000, shown
        assert 0 < float(shown["streamed_fps"]) <= float(shown["received_fps"]) * 1.5, shown
        assert re.fullmatch(r"\d+\.\d\d ms", shown["transfer_latency_ms"]), shown
        assert 0 < float(shown["transfer_latency_ms"].split()[0]) < 10_000, shown
        assert re.fullmatch(r"\d+\.\d\d ms", shown["jpeg_latency_ms"]), shown
        assert int(shown["torn_frames"]) >= 0 and int(shown["frames_received"]) > 0, shown
        assert re.fullmatch(r"\d+", shown["writers"]), shown  # the producer's pid, mapped zero-copy
        assert shown["clients"] == "1", shown
        box = await browser.evaluate(
            "(() => { const r = document.getElementById('stream').getBoundingClientRect();"
            " return {x: r.x, y: r.y, width: r.width, height: r.height}; })()"
        )
        first = await browser.screenshot(clip=box)
        await asyncio.sleep(1.0)  # the issue asks for two pictures a second apart
        second = await browser.screenshot(clip=box)
        page = await browser.screenshot()
        (tmp_path / "camera.png").write_bytes(page)
        assert page[:8] == b"\x89PNG\r\n\x1a\n"
        return first, second
