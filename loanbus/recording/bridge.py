"""loanbus topics bridged to a sink: discovery finds the topics, a Tap per topic moves samples.

Shared by the recorder (an MCAP file) and the viewer (a Foxglove WebSocket server). Topics
are given with their types, or named (or all of them, ``all_topics``) and then found by
DDS discovery, their types looked up by the name their writers advertise.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType

import loanbus
from loanbus.observe import BusWatch, TopicView
from loanbus.recording.catalog import TypeCatalog
from loanbus.recording.outbox import Outbox
from loanbus.recording.sink import Sink
from loanbus.recording.tap import Tap, TopicStatus

log = logging.getLogger("loanbus.recording")

#: Seconds between two looks at DDS discovery for new topics.
DISCOVERY_PERIOD = 0.5


@dataclass(frozen=True)
class Status:
    """Every tapped topic's counts, and the topics whose type is not known here."""

    elapsed_s: float
    topics: tuple[TopicStatus, ...]
    unknown: tuple[tuple[str, str], ...] = ()  # (topic, advertised type name)

    @property
    def samples(self) -> int:
        return sum(t.samples for t in self.topics)

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.topics)

    @property
    def dropped(self) -> int:
        return sum(t.dropped for t in self.topics)

    @property
    def inconsistent(self) -> int:
        return sum(t.inconsistent for t in self.topics)


def _topic_names(topics: Iterable[str] | Mapping[str, object]) -> tuple[dict[str, object], set[str]]:
    if isinstance(topics, Mapping):
        return dict(topics), set(topics)
    if isinstance(topics, str):
        raise TypeError("topics must be a list of names or a {name: type} mapping, not one string")
    return {}, set(topics)


class Bridge:
    """Taps loanbus topics of ``domain_id`` into ``sink`` until closed."""

    def __init__(
        self,
        sink: Sink,
        *,
        domain_id: int = 0,
        topics: Iterable[str] | Mapping[str, object] = (),
        types: Iterable[object] = (),
        all_topics: bool = False,
        images: str = "raw",
        reliable: bool = False,
    ) -> None:
        typed, wanted = _topic_names(topics)
        if not wanted and not all_topics:
            raise ValueError("name the topics to take, or ask for all of them (all_topics=True / --all)")
        self._sink = sink
        self._images = images
        self._reliable = reliable
        self._wanted = wanted
        self._all = all_topics
        self.catalog = TypeCatalog(types)
        for data_type in typed.values():
            self.catalog.add(data_type)
        self._lock = threading.Lock()
        self._taps: dict[str, Tap] = {}
        self._unknown: dict[str, str] = {}
        self._closed = False
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._watch: BusWatch | None = None
        self._thread: threading.Thread | None = None
        self._final: Status | None = None
        self._outbox = Outbox()
        try:
            self.participant = loanbus.DomainParticipant(domain_id)
        except BaseException:
            self._outbox.close()
            sink.close()
            raise
        try:
            for name, data_type in typed.items():
                self._add(name, data_type)
            if all_topics or wanted - set(typed):
                self._watch = BusWatch(self.participant.transport)
                self._thread = threading.Thread(target=self._discover, name="loanbus discovery", daemon=True)
                self._thread.start()
        except BaseException:
            self.close()
            raise

    # -- topics --------------------------------------------------------------------------

    def _add(self, topic: str, data_type: object) -> None:
        tap = Tap(
            self.participant,
            topic,
            data_type,
            self._sink,
            self._outbox,
            images=self._images,
            reliable=self._reliable,
        )
        with self._lock:
            self._taps[topic] = tap
            self._unknown.pop(topic, None)
        log.info("taking %r (%s)", topic, tap.type_name)

    def _resolve(self, topic: TopicView) -> tuple[object | None, str | None]:
        """The known type of a discovered topic's loanbus writers, and the name they advertise."""
        advertised = None
        hashes = {p.type_name: p.type_hash for p in topic.pools if p.type_name}
        for writer in topic.writers:
            if not writer.loanbus:
                continue
            advertised = writer.type_name
            found = self.catalog.lookup(writer.type_name, hashes.get(writer.type_name))
            if found is None:
                found = self.catalog.lookup(writer.type_name)
            if found is not None:
                return found, advertised
        return None, advertised

    def poll_discovery(self) -> None:
        """Tap every wanted topic discovery shows whose type is known (the discovery thread's step)."""
        if self._watch is None:
            return
        view = self._watch.view(self.participant.domain_id)
        for topic in view.topics:
            with self._lock:
                if topic.name in self._taps:
                    continue
            if not (self._all or topic.name in self._wanted):
                continue
            data_type, advertised = self._resolve(topic)
            if data_type is not None:
                self._add(topic.name, data_type)
            elif advertised is not None and self._unknown.get(topic.name) != advertised:
                self._unknown[topic.name] = advertised
                log.warning(
                    "topic %r: its type %s is not known here, so it is skipped; give the IDL file "
                    "that defines it (--idl FILE) or the type itself (types=[...])",
                    topic.name,
                    advertised,
                )

    def _discover(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_discovery()
            except loanbus.ClosedError:
                return
            except Exception:
                log.exception("looking for topics failed; trying again")
            self._stop.wait(DISCOVERY_PERIOD)

    # -- status ----------------------------------------------------------------------------

    def status(self) -> Status:
        """The counts so far; after ``close`` the final ones."""
        if self._final is not None:
            return self._final
        with self._lock:
            taps = sorted(self._taps.values(), key=lambda t: t.topic)
            unknown = tuple(sorted(self._unknown.items()))
        return Status(time.monotonic() - self._started, tuple(t.status() for t in taps), unknown)

    def wait_for_topics(self, count: int = 1, timeout: float | None = 10.0) -> bool:
        """Wait until ``count`` topics are tapped; False after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if len(self._taps) >= count:
                    return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    # -- the end -----------------------------------------------------------------------------

    def _finish(self) -> None:
        """What a subclass writes after the taps stopped and before the sink closes."""

    def close(self) -> None:
        """Stop discovery and every tap, finish and close the sink, leave the domain. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        try:
            with self._lock:
                taps = list(self._taps.values())
            for tap in taps:
                tap.stop()
            self._outbox.close()
            for tap in taps:
                tap.close()
            self._final = self.status()
            self._finish()
        finally:
            try:
                self._sink.close()
            finally:
                if self._watch is not None:
                    self._watch.close()
                self.participant.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Bridge:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = ["DISCOVERY_PERIOD", "Bridge", "Status"]
