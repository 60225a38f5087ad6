"""Where messages go: an MCAP file or a Foxglove WebSocket server (both through foxglove-sdk).

The only module of loanbus that imports ``foxglove``; it belongs to the optional extra
``loanbus[record]``, and a missing extra is one clear error.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

from loanbus.errors import LoanbusError
from loanbus.recording.writeback import Writeback

COMPRESSIONS = ("zstd", "lz4", "none")


class MissingExtraError(LoanbusError):
    """foxglove-sdk or mcap is not installed."""


def foxglove_sdk() -> Any:
    """The ``foxglove`` module, or :class:`MissingExtraError` saying how to install it."""
    try:
        import foxglove
    except ImportError as exc:
        raise MissingExtraError(
            "recording and viewing need foxglove-sdk: pip install 'loanbus[record]'"
        ) from exc
    return foxglove


class Channel:
    """One channel of a sink: a topic, its schema and message encoding, and its metadata."""

    def __init__(
        self,
        sink: Sink,
        topic: str,
        *,
        schema_name: str,
        schema_encoding: str,
        schema_data: bytes,
        message_encoding: str,
        metadata: dict[str, str] | None = None,
    ) -> None:
        fox = sink.fox
        schema = fox.Schema(name=schema_name, encoding=schema_encoding, data=schema_data)
        self._sink = sink
        self._channel = fox.Channel(
            topic,
            schema=schema,
            message_encoding=message_encoding,
            context=sink.context,
            metadata=metadata or {},
        )
        self.id: int = self._channel.id()
        self.topic = topic

    def wanted(self) -> bool:
        """Whether a message logged now goes anywhere (a file always; a server when subscribed)."""
        return self._sink.wants(self.id)

    def log(self, message: bytes, log_time: int) -> None:
        self._channel.log(message, log_time=log_time)

    def close(self) -> None:
        self._channel.close()


class Sink:
    """A foxglove-sdk context: channels made in it go to whatever sink is attached."""

    def __init__(self) -> None:
        self.fox = foxglove_sdk()
        self.context = self.fox.Context()

    def wants(self, channel_id: int) -> bool:
        return True

    def close(self) -> None:
        raise NotImplementedError


class McapSink(Sink):
    """An MCAP file with chunks, message indexes and a summary section (written by ``close``)."""

    def __init__(self, path: str | Path, compression: str = "zstd", overwrite: bool = False) -> None:
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}, not {compression!r}")
        super().__init__()
        from foxglove.mcap import MCAPCompression, MCAPWriteOptions

        which = {"zstd": MCAPCompression.Zstd, "lz4": MCAPCompression.Lz4, "none": None}[compression]
        options = MCAPWriteOptions(compression=which, profile="")
        self.path = Path(path)
        # foxglove-sdk writes through this Python file: Python lets go of the GIL while the kernel
        # writes, so a write that waits for the disk does not stop the taps from copying samples out
        # (with a path, foxglove-sdk writes in Rust holding the GIL: measured in docs/record.md).
        self._file = open(self.path, "wb" if overwrite else "xb", buffering=0)  # noqa: SIM115
        self._writer: Any = self.fox.open_mcap(self._file, context=self.context, writer_options=options)
        self._writeback = Writeback(self._file.fileno())

    def write_metadata(self, name: str, values: dict[str, str]) -> None:
        """A metadata record (name and string pairs), e.g. what the recording counted."""
        if self._writer is not None and values:
            self._writer.write_metadata(name, values)

    def close(self) -> None:
        """Finish the file: the last chunk, the summary section and the footer."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        self._writeback.close()
        self._file.close()


class _Subscriptions:
    """Counts the clients subscribed to each channel (a foxglove-sdk ServerListener)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count: Counter[int] = Counter()

    def on_subscribe(self, client: Any, channel: Any) -> None:
        with self._lock:
            self.count[int(channel.id)] += 1

    def on_unsubscribe(self, client: Any, channel: Any) -> None:
        with self._lock:
            self.count[int(channel.id)] -= 1
            if self.count[int(channel.id)] <= 0:
                del self.count[int(channel.id)]


class ServerSink(Sink):
    """A Foxglove WebSocket server (protocol ``foxglove.websocket.v1``) on ``host:port``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8765, name: str = "loanbus") -> None:
        super().__init__()
        self._subscriptions = _Subscriptions()
        self._server: Any = self.fox.start_server(
            name=name, host=host, port=port, context=self.context, server_listener=self._subscriptions
        )
        self.host = host
        self.port: int = int(self._server.port)

    def wants(self, channel_id: int) -> bool:
        return channel_id in self._subscriptions.count

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()


__all__ = ["COMPRESSIONS", "Channel", "McapSink", "MissingExtraError", "ServerSink", "Sink", "foxglove_sdk"]
