"""What every DDS module of the transport shares: error wrapping, deletion, QoS, matches.

Cyclone's ``DDSException`` never escapes the transport: it is wrapped as ``TransportError``.
"""

from __future__ import annotations

import ctypes as ct
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from cyclonedds.core import DDSException, Entity, InstanceState, SampleState, ViewState
from cyclonedds.internal import dds_c_t
from cyclonedds.pub import DataWriter as _Writer
from cyclonedds.qos import Policy
from cyclonedds.qos import Qos as _Qos
from cyclonedds.sub import DataReader as _Reader
from cyclonedds.util import duration

from loanbus._transport.endpoint import EndpointQos, PeerInfo
from loanbus.errors import TransportError

log = logging.getLogger("loanbus")
_ANY = SampleState.Any | ViewState.Any | InstanceState.Any
_U64 = (1 << 64) - 1


_TYPE_CONSISTENCY = 24  # DDS_TYPE_CONSISTENCY_ENFORCEMENT_QOS_POLICY_ID: the types differ
_POLICIES = {
    2: "a durability",
    11: "a reliability",
    13: "a history",
    8: "a liveliness",
    4: "a deadline",
    25: "a data representation",
}


class QosAlarm:
    """Counts incompatible-QoS reports of one endpoint (set from Cyclone's listener thread)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0

    def __call__(self, _entity: Any, status: Any) -> None:
        self.count = int(status.total_count)
        policy = _POLICIES.get(status.last_policy_id, f"policy {status.last_policy_id}")
        if status.last_policy_id == _TYPE_CONSISTENCY:
            # Another type on the topic: loanbus says so in the user's words (the adverts name
            # both types); a peer without one is reported here only for the record.
            log.debug("%s: a peer of another type (%d so far)", self.what, status.total_count)
            return
        log.warning(
            "%s: a peer asks for %s that this endpoint does not offer (%d so far); they do not "
            "communicate: give both the same Qos",
            self.what,
            policy,
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


def _duration(seconds: float) -> int:
    """Seconds as a DDS duration; ``math.inf`` (or more than DDS can say) is DDS's infinity."""
    if seconds >= 9e9:
        return duration(infinite=True)
    return duration(seconds=seconds)


def _qos(q: EndpointQos, *, writer: bool) -> _Qos:
    policies: list[Any] = [Policy.Userdata(q.user_data)]
    if q.name:
        policies.append(Policy.EntityName(q.name))
    if q.reliable:
        policies.append(Policy.Reliability.Reliable(_duration(q.max_blocking_time)))
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
