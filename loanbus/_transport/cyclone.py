"""Cyclone DDS binding: the ONLY module of loanbus that imports cyclonedds.

References travel pre-encoded: ``(seq, size, slot)`` packed with ``struct`` behind a CDR
encapsulation header and handed to the binding's low-level ``ddspy_write_ts``, so no
per-call Python serializer runs on the hot path. The writer's identity is the DDS
publication handle of the sample, and the source timestamp carries the write time.

Cyclone's ``DDSException`` never escapes: it is wrapped as ``TransportError`` here.
"""

from __future__ import annotations

import builtins
import ctypes as ct
import logging
import os
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from importlib import resources
from typing import Any, NamedTuple

from cyclonedds._clayer import ddspy_take, ddspy_write_ts
from cyclonedds.core import (
    DDSException,
    Entity,
    GuardCondition,
    InstanceState,
    Listener,
    ReadCondition,
    SampleState,
    ViewState,
    WaitSet,
)
from cyclonedds.domain import Domain
from cyclonedds.domain import DomainParticipant as _Participant
from cyclonedds.idl import IdlStruct, make_idl_struct
from cyclonedds.idl import _machinery as _m
from cyclonedds.idl import types as _t
from cyclonedds.idl.annotations import key
from cyclonedds.idl.types import uint32, uint64
from cyclonedds.internal import DDS as _DDS
from cyclonedds.internal import dds_c_t
from cyclonedds.pub import DataWriter as _Writer
from cyclonedds.qos import Policy
from cyclonedds.qos import Qos as _Qos
from cyclonedds.sub import DataReader as _Reader
from cyclonedds.topic import Sample as _SampleContainer
from cyclonedds.topic import Topic as _Topic
from cyclonedds.util import duration

from loanbus import _byvalue
from loanbus.errors import TransportError


@dataclass
class LoanRef(IdlStruct, typename="loanbus::LoanRef"):
    """The reference message on the derived topic (the encoder below must match it)."""

    seq: uint64
    size: uint64
    slot: uint32


_CDR_LE = b"\x00\x01\x00\x00"
_REF = struct.Struct("<QQI4x")  # what loanbus writes: padded to a multiple of 8
_REF_MESSAGE = struct.Struct("<4sQQI4x")  # the encapsulation header and _REF in one pack
_REF_FIELDS = struct.Struct("<QQI")  # what it accepts: any little-endian CDR of LoanRef
_REF_BYTES = 4 + _REF_FIELDS.size
_unpack_ref = _REF_FIELDS.unpack_from
_LE_IDS = (1, 7)  # encapsulation 0x0001 CDR_LE, 0x0007 XCDR2 plain LE: same offsets here
log = logging.getLogger("loanbus")
_ANY = SampleState.Any | ViewState.Any | InstanceState.Any
DEFAULT_LEASE = 10.0
_U64 = (1 << 64) - 1


RefMessage = tuple[int, int, int, int, int]
"""One received reference: (publication handle of its writer, slot, seq, size, source
timestamp in ns). A plain tuple: it is built for every sample and unpacked at once."""


@dataclass(frozen=True)
class PeerInfo:
    """A matched remote endpoint: its instance handle, DDS GUID and user data."""

    handle: int
    guid: str
    user_data: bytes


@dataclass(frozen=True)
class EndpointQos:
    """What the transport needs of loanbus QoS (kept free of loanbus types)."""

    reliable: bool
    depth: int | None  # None: keep all
    transient_local: bool
    max_blocking_time: float
    user_data: bytes
    name: str = ""  # the entity name tools such as ``cyclonedds ps`` show


class QosAlarm:
    """Counts incompatible-QoS reports of one endpoint (set from Cyclone's listener thread)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0

    def __call__(self, _entity: Any, status: Any) -> None:
        self.count = int(status.total_count)
        log.warning(
            "%s: incompatible QoS with a matching peer (policy id %d, %d so far); they will not communicate",
            self.what,
            status.last_policy_id,
            status.total_count,
        )


@contextmanager
def _wrapped(what: str) -> Iterator[None]:
    try:
        yield
    except DDSException as exc:
        raise TransportError(f"Cyclone DDS refused to {what}: {exc}") from exc


def _delete(entity: Entity | None) -> None:
    """Delete a DDS entity now: the binding's registry would otherwise keep it alive."""
    if entity is None:
        return
    ref = entity._ref
    if Entity._entities.get(ref) is entity:
        del Entity._entities[ref]
    try:
        entity._delete(ref)
    except DDSException:
        pass  # already deleted with its parent


# -- configuration -------------------------------------------------------------------------


def build_config(*, lease_duration: float) -> str:
    """The shipped XML with this process's settings: interface, peers and lease duration.

    ``LOANBUS_INTERFACE`` names the network interface (default ``lo``), ``LOANBUS_PEERS`` is
    a comma-separated list of unicast discovery peers (default ``127.0.0.1``) and
    ``LOANBUS_MULTICAST=1`` allows multicast on interfaces that support it.
    """
    template = resources.files("loanbus").joinpath("cyclonedds.xml").read_text()
    interface = os.environ.get("LOANBUS_INTERFACE", "lo")
    peers = [p.strip() for p in os.environ.get("LOANBUS_PEERS", "127.0.0.1").split(",") if p.strip()]
    attr = "address" if interface.replace(".", "").isdigit() else "name"
    return template.format(
        interface=f'{attr}="{interface}"',
        allow_multicast="true" if os.environ.get("LOANBUS_MULTICAST") == "1" else "false",
        max_participants=os.environ.get("LOANBUS_MAX_PARTICIPANTS", "60"),
        peers="\n".join(f'        <Peer address="{p}" />' for p in peers),
        lease=f"{lease_duration:g}s",
        spdp_interval=f"{max(min(lease_duration / 4, 30.0), 0.05):g}s",
    )


@dataclass
class _DomainUse:
    domain: Domain | None
    lease: float
    users: int = 0


_domains: dict[int, _DomainUse] = {}
_domains_lock = threading.Lock()


def _acquire_domain(domain_id: int, lease_duration: float | None) -> None:
    """Create the process's Cyclone domain with loanbus's configuration on first use.

    The domain is deleted again when its last participant closes. With ``CYCLONEDDS_URI``
    set, the user's configuration rules and loanbus creates no domain of its own.
    """
    if not 0 <= domain_id <= 232:
        raise ValueError(f"domain_id must be within 0..232, not {domain_id}")
    env_lease = os.environ.get("LOANBUS_LEASE_DURATION")
    lease = lease_duration or (float(env_lease) if env_lease else DEFAULT_LEASE)
    with _domains_lock:
        use = _domains.get(domain_id)
        if use is None:
            domain: Domain | None = None
            if not os.environ.get("CYCLONEDDS_URI"):
                with _wrapped(f"create domain {domain_id}"):
                    domain = Domain(domain_id, build_config(lease_duration=lease))
            use = _domains[domain_id] = _DomainUse(domain, lease)
        elif lease_duration is not None and abs(use.lease - lease_duration) > 1e-9:
            raise ValueError(
                f"domain {domain_id} already runs with lease_duration={use.lease:g} s in this "
                f"process; a participant cannot ask for {lease_duration:g} s"
            )
        use.users += 1


def _release_domain(domain_id: int) -> None:
    with _domains_lock:
        use = _domains.get(domain_id)
        if use is None:
            return
        use.users -= 1
        if use.users <= 0:
            del _domains[domain_id]
            _delete(use.domain)


# -- participant ---------------------------------------------------------------------------


class TransportParticipant:
    """One Cyclone participant and the topics made in it."""

    _dp: _Participant | None = None
    _stats: StatsWriter | None = None

    def __init__(self, domain_id: int, *, lease_duration: float | None = None) -> None:
        self._stats_lock = threading.Lock()
        _acquire_domain(domain_id, lease_duration)
        self.domain_id = domain_id
        try:
            program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
            name = f"loanbus {program} pid {os.getpid()}"
            qos = _Qos(Policy.EntityName(name), Policy.Userdata(name.encode()))
            with _wrapped(f"create a participant in domain {domain_id}"):
                self._dp = _Participant(domain_id, qos=qos)
        except BaseException:
            _release_domain(domain_id)
            raise
        self._topics: dict[str, _Topic] = {}

    @property
    def guid(self) -> str:
        return str(self._participant().get_guid())

    def stats_writer(self) -> StatsWriter:
        """The participant's writer of statistics documents (made on first use)."""
        with self._stats_lock:
            if self._stats is None:
                self._stats = StatsWriter(self)
            return self._stats

    def _participant(self) -> _Participant:
        if self._dp is None:
            raise TransportError("participant is closed")
        return self._dp

    def ref_topic(self, name: str) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            with _wrapped(f"create topic {name!r}"):
                topic = _Topic(self._participant(), name, LoanRef)
            self._topics[name] = topic
        return topic

    def value_topic(self, name: str, twin: type) -> _Topic:
        """The plain DDS topic ``name`` with the by-value type ``twin``."""
        topic = self._topics.get(name)
        if topic is None:
            with _wrapped(f"create topic {name!r}"):
                topic = _Topic(self._participant(), name, twin)
            self._topics[name] = topic
        elif topic.data_type is not twin:
            raise TransportError(f"topic {name!r} already exists in this participant with another type")
        return topic

    def close(self) -> None:
        with self._stats_lock:
            stats, self._stats = self._stats, None
        if stats is not None:
            stats.close()
        dp, self._dp = self._dp, None
        if dp is not None:
            for topic in self._topics.values():
                _delete(topic)
            self._topics.clear()
            _delete(dp)
            _release_domain(self.domain_id)


def _qos(q: EndpointQos, *, writer: bool) -> _Qos:
    policies: list[Any] = [Policy.Userdata(q.user_data)]
    if q.name:
        policies.append(Policy.EntityName(q.name))
    if q.reliable:
        policies.append(Policy.Reliability.Reliable(duration(seconds=q.max_blocking_time)))
        # Keep-all: every reference whose slot a reader holds must arrive (the pool bounds it).
        policies.append(Policy.History.KeepAll)
    else:
        policies.append(Policy.Reliability.BestEffort)
        policies.append(Policy.History.KeepAll if q.depth is None else Policy.History.KeepLast(q.depth))
    if q.transient_local:
        policies.append(Policy.Durability.TransientLocal)
        if writer:
            policies.append(
                Policy.DurabilityService(
                    cleanup_delay=0,
                    history=Policy.History.KeepAll if q.depth is None else Policy.History.KeepLast(q.depth),
                    max_samples=-1,
                    max_instances=-1,
                    max_samples_per_instance=-1,
                )
            )
    else:
        policies.append(Policy.Durability.Volatile)
    return _Qos(*policies)


def _matched_handles(entity: Any, getter: Callable[..., int]) -> list[int]:
    """Instance handles of matched endpoints, robust to matches that arrive mid-call.

    The binding's ``get_matched_publications`` / ``get_matched_subscriptions`` size their
    array with one call and fill it with a second; a match in between makes them index past
    the array (IndexError). Here the buffer has room to spare and is grown until it fits.
    The binding's handle type is a signed 64-bit integer, but sample infos carry handles as
    unsigned: half of all handles would differ in sign, so they are returned unsigned here.
    """
    size = 16
    while True:
        buf = (dds_c_t.instance_handle * size)()
        ret = getter(entity._ref, ct.cast(buf, ct.POINTER(dds_c_t.instance_handle)), size)
        if ret < 0:
            raise TransportError(f"Cyclone DDS refused to list matched endpoints (return code {ret})")
        if ret <= size:
            return [int(buf[i]) & _U64 for i in range(ret)]
        size = ret * 2


def _matched_peers(entity: Any, handles: Callable[..., int], data: Callable[[int], Any]) -> list[PeerInfo]:
    """The matched endpoints of ``entity``: ``handles`` lists them, ``data`` describes one
    (None for one that went away meanwhile, which is left out)."""
    peers = []
    for handle in _matched_handles(entity, handles):
        endpoint = data(handle)
        if endpoint is not None:
            peers.append(_peer(endpoint, handle))
    return peers


def _peer(endpoint: Any, handle: int) -> PeerInfo:
    user_data = b""
    try:
        user_data = endpoint.qos[Policy.Userdata].data or b""
    except (KeyError, AttributeError, TypeError):
        pass
    return PeerInfo(handle=handle, guid=str(endpoint.key), user_data=user_data)


class _MatchFlag:
    """Set from Cyclone's listener thread when matching changes; read on the caller's thread."""

    def __init__(self, on_change: Callable[[], None] | None) -> None:
        self.dirty = True
        self._on_change = on_change

    def __call__(self, *_: Any) -> None:
        self.dirty = True
        if self._on_change is not None:
            self._on_change()


class _WriterEnd:
    """What every writer endpoint shares: its DDS writer, the readers it matched, close()."""

    _dw: _Writer | None = None
    _kind = "writer"

    def _writer(self) -> _Writer:
        if self._dw is None:
            raise TransportError(f"{self._kind} is closed")
        return self._dw

    @property
    def guid(self) -> str:
        return str(self._writer().get_guid())

    def matched_readers(self) -> list[PeerInfo]:
        dw = self._writer()
        with _wrapped(f"list the readers matched by the {self._kind}"):
            return _matched_peers(dw, dw._get_matched_subscriptions, dw.get_matched_subscription_data)

    def matched_count(self) -> int:
        with _wrapped(f"count the readers matched by the {self._kind}"):
            dw = self._writer()
            return len(_matched_handles(dw, dw._get_matched_subscriptions))

    def close(self) -> None:
        dw, self._dw = self._dw, None
        _delete(dw)


class _ReaderEnd:
    """What every reader endpoint shares: its DDS reader, the writers it matched, close()."""

    _dr: _Reader | None = None
    _kind = "reader"

    def _reader(self) -> _Reader:
        if self._dr is None:
            raise TransportError(f"{self._kind} is closed")
        return self._dr

    @property
    def guid(self) -> str:
        return str(self._reader().get_guid())

    def matched_writers(self) -> list[PeerInfo]:
        dr = self._reader()
        with _wrapped(f"list the writers matched by the {self._kind}"):
            return _matched_peers(dr, dr._get_matched_publications, dr.get_matched_publication_data)

    def matched_count(self) -> int:
        with _wrapped(f"count the writers matched by the {self._kind}"):
            dr = self._reader()
            return len(_matched_handles(dr, dr._get_matched_publications))

    def writer_info(self, handle: int) -> PeerInfo | None:
        """The matched writer behind ``handle``, None if unknown (or this reader is closed)."""
        dr = self._dr
        if dr is None:
            return None
        with _wrapped(f"look up a writer matched by the {self._kind}"):
            endpoint = dr.get_matched_publication_data(handle)
        return _peer(endpoint, handle) if endpoint is not None else None

    def close(self) -> None:
        dr, self._dr = self._dr, None
        _delete(dr)


class RefWriter(_WriterEnd):
    """Publishes references on the derived topic and reports matched readers."""

    _kind = "reference writer"

    def __init__(
        self,
        participant: TransportParticipant,
        topic_name: str,
        qos: EndpointQos,
        on_match_change: Callable[[], None] | None = None,
    ) -> None:
        self.matches = _MatchFlag(on_match_change)
        self.qos_alarm = QosAlarm(f"writer on {topic_name!r}")
        listener = Listener(on_publication_matched=self.matches, on_offered_incompatible_qos=self.qos_alarm)
        with _wrapped(f"create a writer on {topic_name!r}"):
            self._dw = _Writer(
                participant._participant(),
                participant.ref_topic(topic_name),
                qos=_qos(qos, writer=True),
                listener=listener,
            )
        self._ref = self._dw._ref

    def write(self, slot: int, seq: int, size: int, timestamp_ns: int) -> None:
        ret = ddspy_write_ts(self._ref, _REF_MESSAGE.pack(_CDR_LE, seq, size, slot), timestamp_ns)
        if ret < 0:
            raise TransportError(f"Cyclone DDS refused to write a reference (return code {ret})")


class RefReader(_ReaderEnd):
    """Takes references from the derived topic; blocks on a WaitSet."""

    _kind = "reference reader"

    def __init__(
        self,
        participant: TransportParticipant,
        topic_name: str,
        qos: EndpointQos,
    ) -> None:
        self.matches = _MatchFlag(None)
        self.qos_alarm = QosAlarm(f"reader on {topic_name!r}")
        listener = Listener(
            on_subscription_matched=self.matches, on_requested_incompatible_qos=self.qos_alarm
        )
        dp = participant._participant()
        with _wrapped(f"create a reader on {topic_name!r}"):
            self._dr = _Reader(
                dp, participant.ref_topic(topic_name), qos=_qos(qos, writer=False), listener=listener
            )
            self._condition = ReadCondition(self._dr, _ANY)
            self._guard = GuardCondition(dp)
            self._waitset = WaitSet(dp)
            self._waitset.attach(self._condition)
            self._waitset.attach(self._guard)
        self._ref = self._dr._ref

    def take(self, max_samples: int) -> list[RefMessage]:
        ret = ddspy_take(self._ref, _ANY, max_samples)
        if isinstance(ret, int):
            raise TransportError(f"Cyclone DDS refused to take references (return code {ret})")
        out = []
        for data, info in ret:
            if info.valid_data and len(data) >= _REF_BYTES and data[0] == 0 and data[1] in _LE_IDS:
                seq, size, slot = _unpack_ref(data, 4)
                out.append((info.publication_handle, slot, seq, size, info.source_timestamp))
        return out

    def wake(self, triggered: bool = True) -> None:
        """Trigger (or reset) the extra condition ``wait`` also watches (by-value arrivals)."""
        guard = getattr(self, "_guard", None)
        if guard is not None and self._dr is not None:
            try:
                guard.set(triggered)
            except DDSException:
                pass

    def wait(self, timeout: float) -> bool:
        """Block until references are available or ``timeout`` seconds pass."""
        try:
            return bool(self._waitset.wait(int(max(timeout, 0.0) * 1e9)) > 0)
        except DDSException as exc:
            raise TransportError(f"Cyclone DDS refused to wait for references: {exc}") from exc

    # -- push notification: installed only when a DataReader asks (async, on_data_available) --

    def set_data_listener(self, on_data: Callable[[], None]) -> None:
        """Call ``on_data()`` from Cyclone's listener thread whenever references arrive.

        Off by default: each call takes the GIL on a Cyclone thread, a cost that readers which
        only ``take()`` must not pay. The match flag keeps working; deleting the reader ends it.
        """
        dr = self._reader()
        listener = dr._listener
        listener.set_on_data_available(lambda _reader: on_data())
        with _wrapped("set the data-available listener"):
            ret = dr._set_listener(dr._ref, listener._ref)
            if ret != 0:
                raise DDSException(ret, "dds_set_listener")

    def close(self) -> None:
        dr, self._dr = self._dr, None
        if dr is not None:
            for condition in (self._condition, self._guard):
                try:
                    self._waitset.detach(condition)
                except DDSException:
                    pass
            _delete(self._waitset)
            _delete(self._guard)
            _delete(self._condition)
            _delete(dr)


# -- observability: statistics and discovery (off the hot path) -----------------------------

STATS_TOPIC = "loanbus_stats"


@dataclass
class StatsSample(IdlStruct, typename="loanbus::Statistics"):
    """One entity's statistics document (JSON in ``body``), one instance per entity ``id``."""

    # Spelled out: the binding resolves string annotations by name, and str is a builtin.
    id: builtins.str
    key("id")
    body: builtins.str


def _stats_qos() -> _Qos:
    # The newest document of each entity waits in the writer for a late tool to read it.
    return _Qos(
        Policy.Reliability.Reliable(duration(seconds=1)),
        Policy.History.KeepLast(1),
        Policy.Durability.TransientLocal,
    )


class StatsWriter:
    """Publishes statistics documents keyed by entity id; safe to call from another thread."""

    def __init__(self, participant: TransportParticipant) -> None:
        self._lock = threading.Lock()
        dp = participant._participant()
        with _wrapped(f"create a writer on {STATS_TOPIC!r}"):
            self._topic: _Topic | None = _Topic(dp, STATS_TOPIC, StatsSample)
            self._dw: _Writer | None = _Writer(dp, self._topic, qos=_stats_qos())

    def publish(self, entity_id: str, body: str) -> None:
        with self._lock:
            if self._dw is not None:
                with _wrapped("publish statistics"):
                    self._dw.write(StatsSample(entity_id, body))

    def dispose(self, entity_id: str) -> None:
        """Say that an entity is gone, so tools stop showing it."""
        with self._lock:
            if self._dw is not None:
                with _wrapped("dispose statistics"):
                    self._dw.dispose(StatsSample(entity_id, ""))

    def close(self) -> None:
        with self._lock:
            dw, self._dw = self._dw, None
            topic, self._topic = self._topic, None
        _delete(dw)
        _delete(topic)


class StatsReader:
    """Reads the newest statistics document of every live entity in the domain."""

    def __init__(self, participant: TransportParticipant) -> None:
        dp = participant._participant()
        with _wrapped(f"create a reader on {STATS_TOPIC!r}"):
            self._topic: _Topic | None = _Topic(dp, STATS_TOPIC, StatsSample)
            self._dr: _Reader | None = _Reader(dp, self._topic, qos=_stats_qos())
            self._alive = ReadCondition(self._dr, SampleState.Any | ViewState.Any | InstanceState.Alive)

    def read(self) -> list[tuple[str, str]]:
        """(entity id, document) of every live entity, newest document each."""
        if self._dr is None:
            raise TransportError("statistics reader is closed")
        out: list[tuple[str, str]] = []
        with _wrapped("read statistics"):
            while True:
                batch = self._dr.read(N=256, condition=self._alive)
                out += [(s.id, s.body) for s in batch if s.sample_info.valid_data]
                if len(batch) < 256:
                    return list(dict(out).items())

    def close(self) -> None:
        dr, self._dr = self._dr, None
        if dr is not None:
            _delete(self._alive)
            _delete(dr)
            _delete(self._topic)


@dataclass(frozen=True)
class DiscoveredParticipant:
    """A participant of the domain seen through DDS discovery."""

    guid: str
    user_data: bytes


@dataclass(frozen=True)
class DiscoveredEndpoint:
    """A writer or reader of the domain seen through DDS discovery (built-in topics)."""

    kind: str  # "writer" or "reader"
    guid: str
    participant_guid: str
    topic: str
    type_name: str
    user_data: bytes
    reliable: bool | None


def _policy(qos: Any, policy: Any) -> Any:
    try:
        return qos[policy]
    except (KeyError, AttributeError, TypeError):
        return None


class DiscoveryReader:
    """What DDS discovery knows of the domain: participants, writers and readers of every
    other participant, read from the built-in topics DCPSParticipant, DCPSPublication and
    DCPSSubscription. Discovery is asynchronous: what it knows grows for a moment after
    the participant joins."""

    def __init__(self, participant: TransportParticipant) -> None:
        from cyclonedds.builtin import (
            BuiltinDataReader,
            BuiltinTopicDcpsParticipant,
            BuiltinTopicDcpsPublication,
            BuiltinTopicDcpsSubscription,
        )

        dp = participant._participant()
        self._own = participant.guid
        self._readers: list[Any] = []
        self._conditions: list[Any] = []
        with _wrapped("read the built-in discovery topics"):
            for topic in (
                BuiltinTopicDcpsParticipant,
                BuiltinTopicDcpsPublication,
                BuiltinTopicDcpsSubscription,
            ):
                reader = BuiltinDataReader(dp, topic)
                self._readers.append(reader)
                self._conditions.append(
                    ReadCondition(reader, SampleState.Any | ViewState.Any | InstanceState.Alive)
                )

    def _read(self, index: int) -> list[Any]:
        if not self._readers:
            raise TransportError("discovery reader is closed")
        reader, cond = self._readers[index], self._conditions[index]
        out: list[Any] = []
        with _wrapped("read discovery data"):
            while True:
                batch = reader.read(N=1024, condition=cond)
                out += batch
                if len(batch) < 1024:
                    return out

    def participants(self) -> list[DiscoveredParticipant]:
        out = {}
        for s in self._read(0):
            guid = str(s.key)
            if guid != self._own:
                ud = _policy(s.qos, Policy.Userdata)
                out[guid] = DiscoveredParticipant(guid, (ud.data or b"") if ud is not None else b"")
        return list(out.values())

    def endpoints(self) -> list[DiscoveredEndpoint]:
        out: dict[str, DiscoveredEndpoint] = {}
        for index, kind in ((1, "writer"), (2, "reader")):
            for s in self._read(index):
                if str(s.participant_key) == self._own:
                    continue
                ud = _policy(s.qos, Policy.Userdata)
                rel = _policy(s.qos, Policy.Reliability)
                out[str(s.key)] = DiscoveredEndpoint(
                    kind=kind,
                    guid=str(s.key),
                    participant_guid=str(s.participant_key),
                    topic=s.topic_name,
                    type_name=s.type_name,
                    user_data=(ud.data or b"") if ud is not None else b"",
                    reliable=None if rel is None else isinstance(rel, Policy.Reliability.Reliable),
                )
        return list(out.values())

    def close(self) -> None:
        readers, self._readers = self._readers, []
        for cond in self._conditions:
            _delete(cond)
        self._conditions = []
        for reader in readers:
            _delete(reader)


# -- bench support -------------------------------------------------------------------------
# ``loanbus bench`` compares loanbus with plain Cyclone DDS. Those comparisons live here, so
# that this module stays the only one that imports cyclonedds.


class RawChannel:
    """Fixed-size pre-encoded samples on a plain topic: one optional writer, one optional reader.

    The topic type is a struct of ``size`` octets (``payload: array[uint8, size]``); a sample
    is written as its CDR bytes (a 4-byte header, then the octets) with ``ddspy_write_ts``
    and taken as bytes with ``ddspy_take``, so no Python serializer runs. QoS: reliable and
    keep-all, as loanbus's reliable reference topic. With ``size=12`` this is the bare
    message that loanbus's references cost; with the sample size it is Cyclone by value.
    """

    def __init__(
        self, participant: TransportParticipant, size: int, send_topic: str | None, recv_topic: str | None
    ) -> None:
        from cyclonedds._clayer import ddspy_write
        from cyclonedds.idl import make_idl_struct
        from cyclonedds.idl.types import array, uint8

        self._write = ddspy_write

        dp = participant._participant()
        octets: Any = array[uint8, size]  # type: ignore[misc]
        kind = make_idl_struct(f"Bytes{size}", f"loanbus_bench::Bytes{size}", {"payload": octets})
        qos = _Qos(Policy.Reliability.Reliable(duration(seconds=10)), Policy.History.KeepAll)
        self._entities: list[Entity] = []
        self._w: _Writer | None = None
        self._r: _Reader | None = None
        with _wrapped("create a bench channel"):
            topics: dict[str, _Topic] = {}
            for name in (send_topic, recv_topic):
                if name is not None and name not in topics:
                    topics[name] = _Topic(dp, name, kind)
                    self._entities.append(topics[name])
            if send_topic is not None:
                self._w = _Writer(dp, topics[send_topic], qos=qos)
                self._entities.append(self._w)
            if recv_topic is not None:
                self._r = _Reader(dp, topics[recv_topic], qos=qos)
                self._condition = ReadCondition(self._r, _ANY)
                self._waitset = WaitSet(dp)
                self._waitset.attach(self._condition)
                self._entities += [self._r, self._condition, self._waitset]

    def matched(self) -> bool:
        """True once the writer and the reader (whichever exist) see a peer."""
        with _wrapped("count matches"):
            w_ok = self._w is None or bool(_matched_handles(self._w, self._w._get_matched_subscriptions))
            r_ok = self._r is None or bool(_matched_handles(self._r, self._r._get_matched_publications))
        return w_ok and r_ok

    def write(self, cdr: Any) -> None:
        """Write one pre-encoded sample (any buffer: bytes, memoryview, numpy array)."""
        assert self._w is not None
        ret = self._write(self._w._ref, cdr)
        if ret < 0:
            raise TransportError(f"Cyclone DDS refused to write (return code {ret})")

    def take(self, max_samples: int) -> list[bytes]:
        """Up to ``max_samples`` samples as CDR bytes (the header included)."""
        assert self._r is not None
        ret = ddspy_take(self._r._ref, _ANY, max_samples)
        if isinstance(ret, int):
            raise TransportError(f"Cyclone DDS refused to take (return code {ret})")
        return [data for data, info in ret if info.valid_data]

    def wait(self, timeout: float) -> bool:
        """Block until samples are available or ``timeout`` seconds pass."""
        return bool(self._waitset.wait(int(max(timeout, 0.0) * 1e9)) > 0)

    def close(self) -> None:
        entities, self._entities = self._entities, []
        for entity in reversed(entities):
            _delete(entity)


# -- by value: the plain DDS topic any Cyclone DDS application can read and write ----------------

_SCALARS: dict[tuple[str, int], Any] = {
    ("b", 1): bool,
    ("i", 1): _t.int8,
    ("i", 2): _t.int16,
    ("i", 4): _t.int32,
    ("i", 8): _t.int64,
    ("u", 1): _t.uint8,
    ("u", 2): _t.uint16,
    ("u", 4): _t.uint32,
    ("u", 8): _t.uint64,
    ("f", 4): _t.float32,
    ("f", 8): _t.float64,
}


def _member_type(type_name: str, field: str, dtype: Any) -> Any:
    if dtype.names is not None:
        return derive_twin(f"{type_name}_{field}", dtype)
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        member = _member_type(type_name, field, base)
        for n in reversed(shape):
            member = _t.array[member, int(n)]  # type: ignore[misc]
        return member
    scalar = _SCALARS.get((dtype.kind, dtype.itemsize))
    if scalar is None:  # anything else travels as its raw bytes
        return _t.array[_t.uint8, dtype.itemsize]  # type: ignore[misc]
    return scalar


def derive_twin(type_name: str, dtype: Any) -> type:
    """A by-value ``IdlStruct`` with the members of a structured numpy dtype (for plain ShmemTypes).

    Nested structs become structs named ``<type>_<member>``; fields that are not numbers
    travel as octet arrays of their size.
    """
    if dtype.names is None:
        return derive_twin(type_name, _np_struct_of(dtype))
    fields = {}
    for name in dtype.names:
        if not name.isidentifier():
            raise TransportError(
                f"{type_name}: member {name!r} is not an identifier, so it has no by-value type; "
                "give the type a by-value twin (ShmemType(..., by_value=...))"
            )
        fields[name] = _member_type(type_name, name, dtype.fields[name][0])
    cls_name = "".join(ch if ch.isalnum() else "_" for ch in type_name.split("::")[-1]) or "Sample"
    return make_idl_struct(cls_name, type_name, fields)


def _np_struct_of(dtype: Any) -> Any:
    import numpy as np

    return np.dtype([("value", dtype)])


def _schema(machine: Any) -> _byvalue.Node:
    """The wire layout the binding's serializer machine writes (see _byvalue for the nodes)."""
    if isinstance(machine, _m.InstanceMachine):
        idl = machine.type.__idl__
        if not idl._populated:
            idl.populate()
        return _schema(idl.v2_machine if machine.use_version_2 else idl.v1_machine)
    if isinstance(machine, _m.DelimitedCdrAppendableStructMachine):
        return _byvalue.Struct(tuple(_schema(m) for m in machine.member_machines.values()), dheader=True)
    if type(machine) is _m.StructMachine:
        return _byvalue.Struct(tuple(_schema(m) for m in machine.members_machines.values()))
    if isinstance(machine, _m.PrimitiveMachine):
        return _byvalue.Prim(machine.alignment, machine.size)
    if isinstance(machine, _m.CharMachine):
        return _byvalue.Prim(1, 1)
    if isinstance(machine, (_m.EnumMachine, _m.BitBoundEnumMachine)):
        return _byvalue.Prim(machine.alignment, machine.size)
    if isinstance(machine, _m.ByteArrayMachine):
        return _byvalue.Prim(1, machine.size)
    if isinstance(machine, _m.PlainCdrV2ArrayOfPrimitiveMachine):
        return _byvalue.Prim(machine.alignment, machine.size)
    if isinstance(machine, _m.ArrayMachine):
        return _byvalue.Array(_schema(machine.submachine), machine.size, machine.add_size_header)
    if isinstance(machine, _m.PlainCdrV2SequenceOfPrimitiveMachine):
        return _byvalue.Seq(_byvalue.Prim(machine.alignment, machine.size), machine.max_length)
    if isinstance(machine, _m.SequenceMachine):
        return _byvalue.Seq(_schema(machine.submachine), machine.maxlen, machine.add_size_header)
    if isinstance(machine, _m.StringMachine):
        return _byvalue.Str(machine.bound)
    if isinstance(machine, _m.BytesMachine):
        return _byvalue.Seq(_byvalue.Prim(1, 1), machine.bound)
    raise _byvalue.UnsupportedType(f"{type(machine).__name__} members cannot be pre-encoded")


class ValueType:
    """How samples of one loanable type travel by value: the twin and its pre-encoder.

    ``codec`` is None when the twin's layout cannot be pre-encoded; then samples go through
    the twin's own serializer (``reason`` says why, and it is logged once).
    """

    def __init__(self, type_name: str, dtype: Any, twin: type | None) -> None:
        self.twin: type = twin if twin is not None else derive_twin(type_name, dtype)
        if not (isinstance(self.twin, type) and issubclass(self.twin, IdlStruct)):
            raise TransportError(f"{type_name}: by-value twin {self.twin!r} is not a cyclonedds IdlStruct")
        idl = self.twin.__idl__
        with _wrapped(f"build the by-value type of {type_name}"):
            if not idl._populated:
                idl.populate()
        self.codec: _byvalue.CdrCodec | None = None
        self.reason = ""
        try:
            schemas = {1: _schema(idl.v1_machine), 2: _schema(idl.v2_machine)}
            self.codec = _byvalue.CdrCodec(dtype, schemas, idl.default_version)
        except _byvalue.UnsupportedType as exc:
            self.reason = str(exc)
            if not (hasattr(self.twin, "from_sample") and hasattr(self.twin, "to_sample")):
                raise TransportError(f"{type_name} cannot travel by value: {exc}") from exc
            log.warning(
                "%s cannot be pre-encoded (%s): by-value samples use the twin's serializer (slow)",
                type_name,
                exc,
            )
        self.dtype = dtype

    def encode(self, sample: Any, raw: memoryview) -> bytes | bytearray:
        """The CDR bytes of one sample (``raw`` is its memory, ``sample`` the 0-d array)."""
        if self.codec is not None:
            return self.codec.encode(raw)
        ser: bytes = self.twin.from_sample(sample).serialize()  # type: ignore[attr-defined]
        return ser.ljust((len(ser) + 3) & ~3, b"\0")

    def decode(self, data: bytes) -> Any:
        """A new 0-d array of the sample dtype, or ``_byvalue.DecodeError``."""
        if self.codec is not None:
            return self.codec.decode(data)
        import numpy as np

        out = np.zeros((), dtype=self.dtype)
        try:
            self.twin.deserialize(data).to_sample(out)  # type: ignore[attr-defined]
        except Exception as exc:  # the binding raises plain Exceptions on bad input
            raise _byvalue.DecodeError(str(exc)) from exc
        return out


class ValueMessage(NamedTuple):
    """One by-value sample as received: CDR bytes and where it came from."""

    data: bytes
    publication: int
    timestamp_ns: int


# ``dds_write_ts`` called through ctypes, which releases the GIL for the call (see ValueWriter.write).
_dds_write_ts = ct.CFUNCTYPE(ct.c_int32, ct.c_int32, ct.c_void_p, ct.c_int64)(
    ("dds_write_ts", _DDS._dll_handle)
)
_TIMEOUT = -10  # DDS_RETCODE_TIMEOUT


class ValueWriter(_WriterEnd):
    """Writes pre-encoded samples on the plain topic; reports matched readers."""

    _kind = "by-value writer"

    def __init__(
        self,
        participant: TransportParticipant,
        topic_name: str,
        value_type: ValueType,
        qos: EndpointQos,
        on_match_change: Callable[[], None] | None = None,
    ) -> None:
        self.matches = _MatchFlag(on_match_change)
        self.qos_alarm = QosAlarm(f"by-value writer on {topic_name!r}")
        listener = Listener(on_publication_matched=self.matches, on_offered_incompatible_qos=self.qos_alarm)
        self._create = partial(
            _Writer,
            participant._participant(),
            participant.value_topic(topic_name, value_type.twin),
            qos=_qos(qos, writer=True),
            listener=listener,
        )
        self._what = f"create a by-value writer on {topic_name!r}"
        with _wrapped(self._what):
            self._dw = self._create()
        self._ref = self._dw._ref

    def renew(self) -> None:
        """Replace the DDS writer by a fresh one, forgetting its transient-local history.

        Used when the last by-value reader is gone: what the old writer kept is stale, since
        nothing was serialised while no by-value reader was matched.
        """
        if self._dw is None:
            raise TransportError("by-value writer is closed")
        dw, self._dw = self._dw, None
        _delete(dw)
        with _wrapped(self._what):
            self._dw = self._create()
        self._ref = self._dw._ref
        self.matches()  # the new writer's matches are not known yet

    def write(self, data: bytes | bytearray, timestamp_ns: int) -> None:
        """Write one CDR sample; the GIL is released while Cyclone waits for acknowledgements.

        A reliable write of a large sample can block until readers acknowledge; were the GIL
        held meanwhile (as the binding's ``ddspy_write_ts`` does), this process's by-value
        reader could not drain on Cyclone's receive thread, that thread could not process
        the acknowledgements, and two processes streaming to each other would stall.
        Raises ``TransportError`` if Cyclone refuses (e.g. a timeout): the sample was not sent.
        """
        if self._dw is None:
            raise TransportError("by-value writer is closed")
        size = len(data)
        buf: Any
        if isinstance(data, bytearray):
            buf = (ct.c_char * size).from_buffer(data)
            addr: int | None = ct.addressof(buf)
        else:
            buf = ct.c_char_p(data)
            addr = ct.cast(buf, ct.c_void_p).value
        ret = _dds_write_ts(self._ref, ct.byref(_SampleContainer(addr, size)), timestamp_ns)
        del buf
        if ret < 0:
            why = "timed out waiting for acknowledgements" if ret == _TIMEOUT else f"return code {ret}"
            raise TransportError(f"Cyclone DDS refused to write a by-value sample ({why})")


class ValueReader(_ReaderEnd):
    """Reads the plain topic. ``on_data`` runs on Cyclone's thread when samples arrive."""

    _kind = "by-value reader"

    def __init__(
        self,
        participant: TransportParticipant,
        topic_name: str,
        value_type: ValueType,
        qos: EndpointQos,
        matches: _MatchFlag,
        on_data: Callable[[], None],
    ) -> None:
        self.matches = matches
        self.qos_alarm = QosAlarm(f"by-value reader on {topic_name!r}")

        def data_available(_reader: Any) -> None:
            on_data()

        listener = Listener(
            on_subscription_matched=matches,
            on_requested_incompatible_qos=self.qos_alarm,
            on_data_available=data_available,
        )
        with _wrapped(f"create a by-value reader on {topic_name!r}"):
            self._dr = _Reader(
                participant._participant(),
                participant.value_topic(topic_name, value_type.twin),
                qos=_qos(qos, writer=False),
                listener=listener,
            )
        self._ref = self._dr._ref

    def take(self, max_samples: int = 64) -> list[ValueMessage]:
        if self._dr is None:
            return []
        ret = ddspy_take(self._ref, _ANY, max_samples)
        if isinstance(ret, int):
            raise TransportError(f"Cyclone DDS refused to take by-value samples (return code {ret})")
        return [
            ValueMessage(data, info.publication_handle, info.source_timestamp)
            for data, info in ret
            if info.valid_data
        ]


_value_types: dict[tuple[str, Any, Any], ValueType] = {}
_value_types_lock = threading.Lock()


def value_type(type_name: str, dtype: Any, twin: type | None) -> ValueType:
    """The process's one ValueType per loanable type (a derived twin is made once)."""
    key = (type_name, dtype, twin)
    with _value_types_lock:
        vt = _value_types.get(key)
        if vt is None:
            vt = _value_types[key] = ValueType(type_name, dtype, twin)
        return vt
