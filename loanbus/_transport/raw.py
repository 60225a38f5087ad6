"""``loanbus bench`` support: fixed-size pre-encoded samples on a plain Cyclone DDS topic.

The comparisons with bare Cyclone DDS live here, so that only the transport imports cyclonedds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cyclonedds._clayer import ddspy_take
from cyclonedds.core import Entity, ReadCondition, WaitSet
from cyclonedds.pub import DataWriter as _Writer
from cyclonedds.qos import Policy
from cyclonedds.qos import Qos as _Qos
from cyclonedds.sub import DataReader as _Reader
from cyclonedds.topic import Topic as _Topic
from cyclonedds.util import duration

from loanbus._transport.dds import _ANY, _delete, _matched_handles, _wrapped
from loanbus.errors import TransportError

if TYPE_CHECKING:
    from loanbus._transport.participant import TransportParticipant


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
