"""``loanbus view``: a client speaking the Foxglove WebSocket protocol receives live frames."""

from __future__ import annotations

import asyncio
import json
import signal
import struct
from typing import Any

import aiohttp
import numpy as np

from loanbus.recording.codec import RecordCodec
from tests.helpers import CTX, join_ok, start
from tests.recording import FRAME_BYTES, IMAGE_IDL, Child, image_type, pattern, write_images
from tests.recording.test_record import _protobuf_fields

# The Foxglove WebSocket protocol: foxglove-sdk's server names it foxglove.sdk.v1 (the same
# messages as foxglove.websocket.v1, renamed); a client offers both, as the Foxglove app does.
SUBPROTOCOLS = ("foxglove.websocket.v1", "foxglove.sdk.v1")
MESSAGE_DATA = 0x01


async def _frames(url: str, topics: list[str], timeout: float = 60.0) -> dict[str, bytes]:
    """Subscribe to ``topics`` as the Foxglove app does; the first message of each."""
    got: dict[str, bytes] = {}
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, protocols=SUBPROTOCOLS, max_msg_size=0) as ws,
    ):
        assert ws.protocol == "foxglove.sdk.v1"
        channels: dict[str, dict[str, Any]] = {}
        subscribed: dict[int, str] = {}
        ops: list[str] = []
        async with asyncio.timeout(timeout):
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    doc = json.loads(msg.data)
                    ops.append(doc["op"])
                    if doc["op"] == "advertise":
                        channels.update({c["topic"]: c for c in doc["channels"]})
                    wanted = [t for t in topics if t in channels and t not in subscribed.values()]
                    if wanted:
                        subs = [
                            {"id": len(subscribed) + i + 1, "channelId": channels[t]["id"]}
                            for i, t in enumerate(wanted)
                        ]
                        subscribed.update({s["id"]: t for s, t in zip(subs, wanted, strict=True)})
                        await ws.send_str(json.dumps({"op": "subscribe", "subscriptions": subs}))
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    assert msg.data[0] == MESSAGE_DATA
                    sub_id, _timestamp = struct.unpack_from("<IQ", msg.data, 1)
                    got.setdefault(subscribed[sub_id], msg.data[13:])
                    if len(got) == len(topics):
                        break
        assert ops[0] == "serverInfo"
        assert channels["camera/frames"]["encoding"] == "cdr"
        assert channels["camera/frames"]["schemaEncoding"] == "omgidl"
        assert "octet pixels[6220800];" in channels["camera/frames"]["schema"]
        assert channels["camera/frames/image"]["schemaName"] == "foxglove.RawImage"
    return got


def test_a_foxglove_websocket_client_receives_frames_whose_pixels_equal_the_writers(domain_id: int) -> None:
    stop = CTX.Event()
    writer = start(write_images, domain_id, "camera/frames", 10.0, stop)
    viewer = Child(
        "view", "--port", "0", "--idl", str(IMAGE_IDL), "--domain", str(domain_id), "--images", "raw",
        "--interval", "0.5",
    )  # fmt: skip
    try:
        url = viewer.wait_line(r"^serving (ws://127\.0\.0\.1:\d+) ").group(1)
        got = asyncio.run(_frames(url, ["camera/frames", "camera/frames/image"]))
    finally:
        stop.set()
        join_ok(writer)
        status = viewer.stop(signal.SIGINT)
    assert status == 0, viewer.output()

    image = image_type()
    sample = np.zeros((), image.dtype)
    RecordCodec(image).decode_into(got["camera/frames"], sample)
    frame = image(sample)
    assert (frame.width, frame.height, frame.strideBytes) == (1920, 1080, 5760)
    assert np.array_equal(frame.pixels, pattern(FRAME_BYTES, frame.sequence))  # the writer's pixels

    raw = _protobuf_fields(got["camera/frames/image"])
    assert (raw[2], raw[3], raw[4], raw[5]) == (1920, 1080, b"rgb8", 5760)
    seconds_nanos = _protobuf_fields(raw[1])
    assert seconds_nanos  # the frame's source timestamp
    pixels = np.frombuffer(raw[6], np.uint8)
    assert any(np.array_equal(pixels, pattern(FRAME_BYTES, seq)) for seq in range(0, 256))
    assert "sent" in viewer.output()
