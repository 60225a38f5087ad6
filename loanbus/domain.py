"""DomainParticipant: the process's membership of a DDS domain and the owner of its entities."""

from __future__ import annotations

import weakref
from functools import partial
from typing import Protocol

from loanbus._lifetime import Closeable
from loanbus._transport import TransportParticipant
from loanbus._transport.config import DdsProfile


class _Child(Protocol):
    def close(self) -> None: ...


def _release_participant(transport: TransportParticipant, children: weakref.WeakSet[_Child]) -> None:
    for child in list(children):
        child.close()
    transport.close()


class DomainParticipant(Closeable):
    """Joins DDS domain ``domain_id``; closing it closes every writer and reader made in it.

    ``lease_duration`` (seconds) is how long peers wait before declaring this process dead
    after it stops answering. ``dds_profile`` is ``"default"`` (discover and be discovered
    as a default-configured Cyclone DDS application) or ``"loopback"`` (``lo`` only, unicast
    discovery, nothing leaves the host); unset, ``LOANBUS_DDS_PROFILE`` decides. The first
    participant of a domain in a process sets both.
    """

    def __init__(
        self,
        domain_id: int = 0,
        *,
        lease_duration: float | None = None,
        dds_profile: DdsProfile | None = None,
    ) -> None:
        if not isinstance(domain_id, int) or isinstance(domain_id, bool):
            raise TypeError(f"domain_id must be an int, not {domain_id!r}")
        if lease_duration is not None and lease_duration <= 0:
            raise ValueError(f"lease_duration must be positive, not {lease_duration}")
        if dds_profile is not None and not isinstance(dds_profile, str):
            raise TypeError(f"dds_profile must be 'default' or 'loopback', not {dds_profile!r}")
        self.domain_id = domain_id
        self._transport = TransportParticipant(
            domain_id, lease_duration=lease_duration, dds_profile=dds_profile
        )
        self._children: weakref.WeakSet[_Child] = weakref.WeakSet()
        self._topic_types: dict[str, tuple[str, bytes]] = {}  # topic name -> (type name, type hash)
        self._arm(
            f"DomainParticipant({domain_id})", partial(_release_participant, self._transport, self._children)
        )

    @property
    def transport(self) -> TransportParticipant:
        self._check_open()
        return self._transport

    def _claim_topic(self, name: str, type_name: str, type_hash: bytes) -> None:
        """A topic has one type in a participant: a second Topic of that name must agree."""
        known = self._topic_types.setdefault(name, (type_name, type_hash))
        if known[1] != type_hash:
            raise ValueError(
                f"topic {name!r} already has type {known[0]!r} (type hash {known[1].hex()}) in this "
                f"participant, not {type_name!r} ({type_hash.hex()}): a topic has one type"
            )

    def _adopt(self, child: _Child) -> None:
        self._check_open()
        self._children.add(child)

    def __repr__(self) -> str:
        return f"DomainParticipant(domain_id={self.domain_id}{', closed' if self.closed else ''})"
