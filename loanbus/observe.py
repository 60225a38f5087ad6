"""What a tool sees of one DDS domain: its writers and readers, their pools, their statistics.

Endpoints come from DDS discovery (the built-in topics) and are joined with the loanbus
adverts in their user data and with the pools in /dev/shm; statistics come from the
``loanbus_stats`` topic every writer and reader publishes on. ``loanbus ls`` and
``loanbus top`` are built on this module; it creates no writer or reader of its own kind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from loanbus import _advert, _statsfeed
from loanbus._proc import host_identity
from loanbus._transport import (
    STATS_TOPIC,
    DiscoveredEndpoint,
    DiscoveryReader,
    StatsReader,
    TransportParticipant,
)
from loanbus.inspect import PoolEntry, list_pools
from loanbus.topic import REF_TOPIC_PREFIX

#: Readers' delivery paths as ``loanbus ls`` names them.
ZERO_COPY, BY_VALUE, UNKNOWN = "zero-copy", "by-value", "?"


@dataclass(frozen=True)
class EndpointView:
    """One writer or reader of the domain, as discovery and its advert describe it."""

    kind: str  # "writer" or "reader"
    topic: str  # the user's topic name (a reference topic's prefix removed)
    guid: str
    participant: str
    type_name: str  # the loanbus type of the advert, or the DDS type name
    reliable: bool | None
    loanbus: bool  # it carries a loanbus advert
    pid: int | None = None
    local: bool | None = None  # on this host, as far as the advert says
    segment: str | None = None  # writers: the advertised pool
    reader_id: str | None = None  # readers: the id their hold rows carry
    path: str = UNKNOWN  # readers: zero-copy, by-value or ?; writers: pool or dds
    references: str | None = None  # zero-copy readers: "local" (their inbox) or "dds"


@dataclass(frozen=True)
class TopicView:
    """A topic with its writers, readers and the pools of its writers found in /dev/shm."""

    name: str
    writers: tuple[EndpointView, ...]
    readers: tuple[EndpointView, ...]
    pools: tuple[PoolEntry, ...]


@dataclass(frozen=True)
class BusView:
    """A domain at one moment: topics (sorted by name) and every pool of the domain on this host."""

    domain_id: int
    participants: int
    topics: tuple[TopicView, ...]
    pools: tuple[PoolEntry, ...]
    readers_by_id: dict[str, EndpointView] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``loanbus ls --json``."""
        return {
            "domain": self.domain_id,
            "participants": self.participants,
            "topics": [asdict(t) for t in self.topics],
            "pools": [pool_as_dict(p) for p in self.pools],
        }


def pool_as_dict(pool: PoolEntry) -> dict[str, Any]:
    """A pool as plain data, with the domain its name gives."""
    return {**asdict(pool), "domain": pool.domain_id}


def reader_path(
    reader: dict[str, Any] | None,
    writers: list[dict[str, Any]],
    on_reference_topic: bool,
    local: bool | None,
) -> str:
    """How a reader gets its samples: what its advert says (``path``); else, for a loanbus
    reader, the rule writers and readers apply (``_advert.maps_zero_copy``) against each
    loanbus writer of the topic ("zero-copy, by-value" when it differs by writer); with no
    writer, what the reader's advert lets one guess; a plain DDS reader gets them by value."""
    if reader is not None and isinstance(reader.get("path"), str):
        return str(reader["path"])
    if not on_reference_topic:
        return BY_VALUE
    ra = _advert.decode_reader(_advert.encode_doc(reader)) if reader is not None else None
    if ra is None:
        return UNKNOWN
    paths = set()
    for doc in writers:
        wa = _advert.decode_writer(_advert.encode_doc(doc))
        if wa is not None:
            paths.add(ZERO_COPY if _advert.maps_zero_copy(wa, ra) else BY_VALUE)
    if not paths:
        if ra.by_value or not ra.shm or local is False:
            return BY_VALUE
        return ZERO_COPY if local else UNKNOWN
    return ", ".join(sorted(paths, key=(ZERO_COPY, BY_VALUE).index))


def _twins(endpoints: list[DiscoveredEndpoint]) -> set[str]:
    """The by-value twins of loanbus endpoints: plain-topic writers and readers with an advert
    whose participant has an endpoint of the same kind on the topic's reference topic."""
    n = len(REF_TOPIC_PREFIX)
    refs = {
        (e.participant_guid, e.kind, e.topic[n:]) for e in endpoints if e.topic.startswith(REF_TOPIC_PREFIX)
    }
    return {
        e.guid
        for e in endpoints
        if (e.participant_guid, e.kind, e.topic) in refs and _advert.peek(e.user_data) is not None
    }


def _endpoint(
    ep: DiscoveredEndpoint, here: str, twins: set[str]
) -> tuple[EndpointView, dict[str, Any] | None] | None:
    """The view of one endpoint (its reader path filled in later) and its loanbus advert.

    None for loanbus's own statistics topic and for the by-value twin of a loanbus endpoint
    (the reference-topic endpoint stands for both). A plain endpoint whose user data is a
    copy of a loanbus advert (``cyclonedds subscribe`` copies the QoS of the writers it finds)
    is shown as the plain endpoint it is."""
    on_ref = ep.topic.startswith(REF_TOPIC_PREFIX)
    topic = ep.topic[len(REF_TOPIC_PREFIX) :] if on_ref else ep.topic
    if ep.topic == STATS_TOPIC or not topic or ep.guid in twins:
        return None
    doc = _advert.peek(ep.user_data)
    if doc is not None and (not on_ref or doc.get("kind") != ep.kind):
        doc = None  # not this endpoint's own advert
    pid = doc.get("pid") if doc is not None else None
    host = doc.get("host") if doc is not None else None
    common: dict[str, Any] = {
        "topic": topic,
        "guid": ep.guid,
        "participant": ep.participant_guid,
        "reliable": ep.reliable,
        "loanbus": doc is not None,
        "pid": pid if isinstance(pid, int) else None,
        "local": None if not isinstance(host, str) else host == here,
    }
    if ep.kind == "writer":
        seg = doc.get("segment") if doc is not None else None
        type_name = doc.get("type_name") if doc is not None else None
        view = EndpointView(
            kind="writer",
            type_name=type_name if isinstance(type_name, str) else ep.type_name,
            segment=seg if isinstance(seg, str) else None,
            path="pool" if on_ref else "dds",
            **common,
        )
    else:
        rid = doc.get("reader_id") if doc is not None else None
        view = EndpointView(
            kind="reader",
            type_name="" if on_ref else ep.type_name,
            reader_id=rid if isinstance(rid, str) else None,
            path=BY_VALUE if not on_ref else UNKNOWN,
            **common,
        )
    return view, doc


class BusWatch:
    """Keeps DDS discovery open on a participant and answers what the domain holds now."""

    def __init__(self, transport: TransportParticipant) -> None:
        self._transport = transport
        self._discovery = DiscoveryReader(transport)
        self._here = host_identity()

    def _fingerprint(self) -> frozenset[str]:
        return frozenset(
            [p.guid for p in self._discovery.participants()] + [e.guid for e in self._discovery.endpoints()]
        )

    def settle(
        self, quiet: float = 0.5, timeout: float = 5.0, enough: Callable[[], bool] | None = None
    ) -> None:
        """Wait until discovery has found nothing new for ``quiet`` seconds (at most ``timeout``),
        or until ``enough()`` says what the caller looks for is there."""
        deadline = time.monotonic() + timeout
        last, since = self._fingerprint(), time.monotonic()
        while time.monotonic() < deadline:
            if enough is not None and enough():
                return
            time.sleep(0.05)
            now = self._fingerprint()
            if now != last:
                last, since = now, time.monotonic()
            elif last and time.monotonic() - since >= quiet:
                return

    def view(self, domain_id: int) -> BusView:
        discovered = self._discovery.endpoints()
        twins = _twins(discovered)
        found = [v for e in discovered if (v := _endpoint(e, self._here, twins)) is not None]
        adverts = {view.guid: doc for view, doc in found}
        endpoints = []
        for view, doc in found:
            if view.kind == "reader" and view.loanbus:
                writers = [
                    adverts[w.guid] or {} for w, _ in found if w.kind == "writer" and w.topic == view.topic
                ]
                path = reader_path(doc, writers, True, view.local)
                refs = doc.get("refs", "dds") if doc is not None and ZERO_COPY in path else None
                view = replace(view, path=path, references=refs if isinstance(refs, str) else None)
            endpoints.append(view)
        pools = tuple(p for p in list_pools() if p.domain_id == domain_id)
        by_segment = {p.name: p for p in pools}
        topics = []
        for name in sorted({e.topic for e in endpoints}):
            writers_of = sorted((e for e in endpoints if e.topic == name and e.kind == "writer"), key=_order)
            readers_of = sorted((e for e in endpoints if e.topic == name and e.kind == "reader"), key=_order)
            mine = tuple(by_segment[w.segment] for w in writers_of if w.segment in by_segment)
            topics.append(TopicView(name, tuple(writers_of), tuple(readers_of), mine))
        return BusView(
            domain_id=domain_id,
            participants=len(self._discovery.participants()),
            topics=tuple(topics),
            pools=pools,
            readers_by_id={e.reader_id: e for e in endpoints if e.reader_id},
        )

    def close(self) -> None:
        self._discovery.close()


def _order(e: EndpointView) -> tuple[int, str]:
    return (e.pid or 0, e.guid)


@dataclass(frozen=True)
class StatsRecord:
    """One writer's or reader's newest statistics document (see ``loanbus/_statsfeed.py``)."""

    kind: str
    id: str
    topic: str
    type_name: str
    pid: int
    reliable: bool
    sample_size: int
    time_ns: int
    interval_s: float
    samples_per_s: float
    bytes_per_s: float
    stats: dict[str, Any]
    segment: str | None = None

    @property
    def age_s(self) -> float:
        """Seconds since the document was published (by the wall clock)."""
        return max(time.time_ns() - self.time_ns, 0) / 1e9


def _record(doc: dict[str, Any]) -> StatsRecord | None:
    try:
        return StatsRecord(
            kind=str(doc["kind"]),
            id=str(doc["id"]),
            topic=str(doc["topic"]),
            type_name=str(doc.get("type", "?")),
            pid=int(doc["pid"]),
            reliable=bool(doc.get("reliable")),
            sample_size=int(doc.get("sample_size", 0)),
            time_ns=int(doc["time_ns"]),
            interval_s=float(doc.get("interval_s", 0.0)),
            samples_per_s=float(doc["samples_per_s"]),
            bytes_per_s=float(doc["bytes_per_s"]),
            stats=dict(doc["stats"]),
            segment=str(doc["segment"]) if isinstance(doc.get("segment"), str) else None,
        )
    except (KeyError, TypeError, ValueError):
        return None


class StatsWatch:
    """Subscribes to the statistics every writer and reader of the domain publishes."""

    def __init__(self, transport: TransportParticipant) -> None:
        self._reader = StatsReader(transport)

    def records(self) -> list[StatsRecord]:
        """The newest document of every live entity, by topic, then writers before readers."""
        out = []
        for _id, body in self._reader.read():
            doc = _statsfeed.decode(body)
            rec = _record(doc) if doc is not None else None
            if rec is not None:
                out.append(rec)
        return sorted(out, key=lambda r: (r.topic, r.kind != "writer", r.pid, r.id))

    def close(self) -> None:
        self._reader.close()


__all__ = [
    "BY_VALUE",
    "UNKNOWN",
    "ZERO_COPY",
    "BusView",
    "BusWatch",
    "EndpointView",
    "StatsRecord",
    "StatsWatch",
    "TopicView",
    "pool_as_dict",
    "reader_path",
]
