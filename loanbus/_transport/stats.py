"""Statistics documents on the DDS topic ``loanbus_stats`` (what ``loanbus top`` reads)."""

from __future__ import annotations

import builtins
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.annotations import key
from cyclonedds.pub import DataWriter as _Writer
from cyclonedds.qos import Policy
from cyclonedds.qos import Qos as _Qos
from cyclonedds.sub import DataReader as _Reader
from cyclonedds.topic import Topic as _Topic
from cyclonedds.util import duration

from loanbus._transport.dds import _delete, _wrapped
from loanbus.errors import TransportError

if TYPE_CHECKING:
    from loanbus._transport.participant import TransportParticipant

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
