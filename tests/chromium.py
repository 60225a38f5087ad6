"""A headless Chromium driven over the DevTools protocol: just enough for page tests.

Starts Debian's ``chromium`` with ``--remote-debugging-port=0``, reads the port it chose from
``DevToolsActivePort``, and talks JSON over aiohttp's websocket client. No browser download,
no selenium. Where there is no chromium the test is skipped (see tests/optional.py).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests import optional


def chromium_binary() -> str:
    """Debian's chromium; a test without one is skipped, or fails where CI requires it."""
    return optional.chromium()


class Chromium:
    """One headless browser process with one page; use ``async with``."""

    def __init__(self, profile: Path, width: int = 1400, height: int = 860) -> None:
        self.profile = profile
        self.size = (width, height)
        self.proc: subprocess.Popen[bytes] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse[bool] | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Chromium:
        self.proc = subprocess.Popen(
            [
                chromium_binary(),
                "--headless",
                "--no-sandbox",  # the tests may run as root
                "--disable-gpu",
                "--no-first-run",
                "--no-proxy-server",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
                f"--user-data-dir={self.profile}",
                f"--window-size={self.size[0]},{self.size[1]}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its helper processes form one group we can stop
        )
        try:
            port = await self._devtools_port(timeout=60)
            self._session = aiohttp.ClientSession()
            async with self._session.get(f"http://127.0.0.1:{port}/json/list") as resp:
                targets = await resp.json()
            page = next(t for t in targets if t["type"] == "page")
            self._ws = await self._session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    async def _devtools_port(self, timeout: float) -> int:
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"chromium exited with status {self.proc.returncode}")
            if marker.exists() and (first := marker.read_text().split("\n", 1)[0]).isdigit():
                return int(first)
            await asyncio.sleep(0.05)
        raise AssertionError("chromium did not open its DevTools port")

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result (events are skipped)."""
        assert self._ws is not None
        call_id = next(self._ids)
        await self._ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            msg = await self._ws.receive(timeout=30)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"DevTools connection ended: {msg.type}")
            reply = json.loads(msg.data)
            if reply.get("id") == call_id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float) -> Any:
        """Poll until ``expression`` is truthy in the page; its value, or AssertionError.

        An expression that throws (say, while the page is still loading) counts as false.
        """
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            try:
                value = await self.evaluate(expression)
            except AssertionError as exc:
                value = exc
            else:
                if value:
                    return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"not true within {timeout} s: {expression} (last value {value!r})")

    async def screenshot(self, clip: dict[str, float] | None = None) -> bytes:
        """A PNG of the page, or of the ``clip`` rectangle (CSS pixels)."""
        params: dict[str, Any] = {"format": "png"}
        if clip is not None:
            params["clip"] = {**clip, "scale": 1}
        return base64.b64decode((await self.call("Page.captureScreenshot", **params))["data"])
