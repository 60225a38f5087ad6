"""``loanbus.view``: loanbus topics live on a Foxglove WebSocket server.

The Foxglove app connects to ``ws://HOST:PORT`` (protocol ``foxglove.websocket.v1``) and
sees one channel per topic (CDR with its IDL schema) and, for image-like topics, an image
channel it shows as video. A sample is copied out only while a client is subscribed to one
of its topic's channels.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from loanbus.recording.bridge import Bridge, Status
from loanbus.recording.sink import ServerSink

DEFAULT_PORT = 8765


class Viewer(Bridge):
    """A Foxglove WebSocket server on ``host:port`` (0: any free port) bridging ``domain_id``.

    With no ``topics`` named, every loanbus topic whose type is known is shown.
    """

    def __init__(
        self,
        *,
        domain_id: int = 0,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        topics: Iterable[str] | Mapping[str, object] = (),
        types: Iterable[object] = (),
        images: str = "jpeg",
    ) -> None:
        sink = ServerSink(host=host, port=port)
        named = bool(topics)
        super().__init__(
            sink,
            domain_id=domain_id,
            topics=topics,
            types=types,
            all_topics=not named,
            images=images,
            reliable=False,
        )
        self.host = host
        self.port = sink.port

    @property
    def url(self) -> str:
        """The address the Foxglove app opens (Open connection -> Foxglove WebSocket)."""
        return f"ws://{self.host}:{self.port}"


def view(
    *,
    domain_id: int = 0,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    topics: Iterable[str] | Mapping[str, object] = (),
    types: Iterable[object] = (),
    images: str = "jpeg",
    duration: float | None = None,
    on_status: Callable[[Status], None] | None = None,
    interval: float = 1.0,
) -> Status:
    """Serve the domain's topics for ``duration`` seconds (None: until Ctrl-C); the final counts."""
    with Viewer(domain_id=domain_id, host=host, port=port, topics=topics, types=types, images=images) as v:
        deadline = None if duration is None else time.monotonic() + duration
        try:
            while deadline is None or time.monotonic() < deadline:
                left = interval if deadline is None else min(interval, deadline - time.monotonic())
                time.sleep(max(left, 0.0))
                if on_status is not None:
                    on_status(v.status())
        except KeyboardInterrupt:
            pass
    return v.status()


__all__ = ["DEFAULT_PORT", "Viewer", "view"]
