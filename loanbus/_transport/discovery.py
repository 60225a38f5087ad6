"""What DDS discovery knows of a domain: participants, writers and readers (built-in topics)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState
from cyclonedds.qos import Policy

from loanbus._transport.dds import _delete, _wrapped
from loanbus.errors import TransportError

if TYPE_CHECKING:
    from loanbus._transport.participant import TransportParticipant


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
