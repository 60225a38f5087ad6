"""``loanbus.play``: an MCAP file's loanbus channels republished through loans.

Types come from the file: each channel's ``loanbus.type`` metadata rebuilds the exact
ShmemType (so readers of the original type match), and its ``omgidl`` schema supplies the
by-value twin that decodes members such as sequences and strings. Messages are written in
log-time order with the recorded spacing divided by ``rate`` (0: as fast as possible).
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import loanbus
from loanbus.errors import LoanbusError
from loanbus.recording.codec import MESSAGE_ENCODING, SCHEMA_ENCODING, RecordCodec
from loanbus.recording.sink import MissingExtraError
from loanbus.recording.typedesc import TYPE_KEY, TypeDescriptionError, rebuild
from loanbus.types import ShmemType

log = logging.getLogger("loanbus.recording")


class RecordingError(LoanbusError):
    """An MCAP file that cannot be played: not MCAP, no loanbus channel, a broken type."""


def _mcap_reader() -> Any:
    try:
        from mcap.reader import make_reader
    except ImportError as exc:
        raise MissingExtraError("playing needs the mcap reader: pip install 'loanbus[record]'") from exc
    return make_reader


def _compiled_twin(stype: ShmemType, idl: str) -> type | None:
    """The by-value twin the IDL text compiles to, when its layout is exactly ``stype``'s."""
    from loanbus.idl import IdlError, load

    with tempfile.TemporaryDirectory(prefix="loanbus-play-") as tmp:
        path = Path(tmp) / "schema.idl"
        path.write_text(idl)
        try:
            module = load(path)
        except IdlError as exc:
            log.warning("the schema of %s does not compile (%s); decoding by its layout", stype.name, exc)
            return None
    for value in vars(module).values():
        if getattr(value, "type_name", None) == stype.name and getattr(value, "dtype", None) == stype.dtype:
            twin = getattr(value, "ByValue", None)
            return twin if isinstance(twin, type) else None
    return None


def channel_codec(topic: str, metadata: dict[str, str], schema_data: bytes) -> RecordCodec:
    """The codec of a recorded loanbus channel, from its type description and IDL schema."""
    try:
        stype = rebuild(metadata[TYPE_KEY])
    except TypeDescriptionError as exc:
        raise RecordingError(f"channel {topic!r}: its {TYPE_KEY} metadata is broken: {exc}") from exc
    twin = None if stype.shape else _compiled_twin(stype, schema_data.decode("utf-8", "replace"))
    if twin is not None:
        stype = ShmemType(stype.name, stype.dtype, by_value=twin)
    return RecordCodec(stype)


@dataclass(frozen=True)
class PlayStatus:
    """What was played: messages written per topic, and how long it took."""

    written: dict[str, int]
    elapsed_s: float
    loops: int

    @property
    def messages(self) -> int:
        return sum(self.written.values())


def writer_qos(reliable: bool) -> loanbus.Qos:
    if reliable:
        return loanbus.Qos(reliability=loanbus.Reliability.RELIABLE, max_samples=4, max_blocking_time=5.0)
    return loanbus.Qos(reliability=loanbus.Reliability.BEST_EFFORT, max_samples=4)


class Player:
    """Republishes the loanbus channels of ``path`` in ``domain_id`` (``run()`` plays them)."""

    def __init__(
        self,
        path: str | Path,
        *,
        domain_id: int = 0,
        topics: Iterable[str] | None = None,
        reliable: bool = True,
    ) -> None:
        make_reader = _mcap_reader()
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such file")
        self._file: IO[bytes] = open(self.path, "rb")  # noqa: SIM115 (closed by close())
        self._stop = threading.Event()
        self._closed = False
        self._writers: dict[int, tuple[loanbus.DataWriter[Any], RecordCodec]] = {}
        self._written: dict[str, int] = {}
        self._start = time.monotonic()
        self._loops = 0
        self.participant: loanbus.DomainParticipant | None = None
        try:
            try:
                self._reader = make_reader(self._file)
                summary = self._reader.get_summary()
            except Exception as exc:  # the mcap reader raises many kinds for a bad file
                raise RecordingError(f"{self.path} is not a readable MCAP file: {exc}") from exc
            if summary is None:
                raise RecordingError(
                    f"{self.path} has no summary section (was the recorder killed?); "
                    "repair it with the mcap CLI (mcap recover) first"
                )
            wanted = set(topics) if topics is not None else None
            channels = [
                c
                for c in summary.channels.values()
                if TYPE_KEY in c.metadata and c.message_encoding == MESSAGE_ENCODING
            ]
            if wanted is not None:
                missing = wanted - {c.topic for c in channels}
                if missing:
                    have = ", ".join(sorted(c.topic for c in channels)) or "none"
                    raise RecordingError(
                        f"{self.path} has no loanbus channel {', '.join(sorted(missing))} (it has: {have})"
                    )
                channels = [c for c in channels if c.topic in wanted]
            if not channels:
                raise RecordingError(f"{self.path} has no loanbus channel to play")
            codecs = {}
            for c in channels:
                schema = summary.schemas.get(c.schema_id)
                if schema is None or schema.encoding != SCHEMA_ENCODING:
                    raise RecordingError(f"channel {c.topic!r} has no {SCHEMA_ENCODING} schema")
                codecs[c.id] = (c.topic, channel_codec(c.topic, dict(c.metadata), schema.data))
            self.participant = loanbus.DomainParticipant(domain_id)
            for cid, (topic, codec) in codecs.items():
                writer = loanbus.DataWriter(
                    loanbus.Topic(self.participant, topic, codec.shmem_type), qos=writer_qos(reliable)
                )
                self._writers[cid] = (writer, codec)
            self.topics = sorted(topic for topic, _ in codecs.values())
        except BaseException:
            self.close()
            raise

    def wait_for_readers(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until every played topic has ``count`` matched readers."""
        deadline = time.monotonic() + timeout
        return all(
            writer.wait_for_readers(count, timeout=max(deadline - time.monotonic(), 0.0))
            for writer, _ in self._writers.values()
        )

    def run(
        self,
        rate: float = 1.0,
        loop: bool = False,
        on_message: Callable[[str, int], None] | None = None,
    ) -> PlayStatus:
        """Play the file (again and again with ``loop``) until its end or ``stop()``."""
        if rate < 0:
            raise ValueError(f"rate must not be negative (0: as fast as possible), not {rate}")
        written = self._written = {topic: 0 for topic in self.topics}
        start = self._start = time.monotonic()
        loops = 0
        offset = 0.0  # seconds of recording already played in earlier loops
        while not self._stop.is_set():
            first = last = None
            count = 0
            for _schema, channel, message in self._reader.iter_messages(
                topics=self.topics, log_time_order=True
            ):
                entry = self._writers.get(channel.id)
                if entry is None:
                    continue
                first = message.log_time if first is None else first
                last = message.log_time
                if rate > 0:
                    due = start + offset + (message.log_time - first) / 1e9 / rate
                    while (wait := due - time.monotonic()) > 0:
                        if self._stop.wait(min(wait, 0.1)):
                            break
                if self._stop.is_set():
                    break
                writer, codec = entry
                loan = writer.get_loan()
                try:
                    codec.decode_into(message.data, loan.data)
                except BaseException:
                    writer.discard_loan(loan)
                    raise
                writer.write(loan)
                written[channel.topic] += 1
                count += 1
                if on_message is not None:
                    on_message(channel.topic, written[channel.topic])
            loops += 1
            self._loops = loops
            if not loop or first is None or last is None:
                break
            if rate > 0:  # the next loop starts one mean message interval after this one's end
                span = (last - first) / 1e9
                offset += (span + (span / (count - 1) if count > 1 else 0.0)) / rate
        return self.status()

    def status(self) -> PlayStatus:
        """What ``run()`` wrote so far."""
        return PlayStatus(dict(self._written), time.monotonic() - self._start, self._loops)

    def stop(self) -> None:
        """Make ``run()`` return after the message in hand (from another thread or a handler)."""
        self._stop.set()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        try:
            if self.participant is not None:
                self.participant.close()
        finally:
            self._file.close()

    def __enter__(self) -> Player:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def play(
    path: str | Path,
    *,
    domain_id: int = 0,
    topics: Iterable[str] | None = None,
    rate: float = 1.0,
    loop: bool = False,
    reliable: bool = True,
    readers: int = 0,
    timeout: float = 10.0,
) -> PlayStatus:
    """Play ``path`` into ``domain_id``: wait for ``readers`` readers per topic (at most
    ``timeout`` s), then write every message with the recorded timing scaled by ``rate``."""
    with Player(path, domain_id=domain_id, topics=topics, reliable=reliable) as player:
        if readers and not player.wait_for_readers(readers, timeout=timeout):
            raise RecordingError(f"fewer than {readers} reader(s) per topic appeared within {timeout:g} s")
        try:
            return player.run(rate=rate, loop=loop)
        except KeyboardInterrupt:
            return player.status()


__all__ = ["PlayStatus", "Player", "RecordingError", "channel_codec", "play", "writer_qos"]
