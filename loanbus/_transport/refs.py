"""References over Cyclone DDS: the derived topic ``loanbus_ref/<name>``.

References travel pre-encoded: ``(seq, size, slot)`` packed with ``struct`` behind a CDR
encapsulation header and handed to the binding's low-level ``ddspy_write_ts``, so no
per-call Python serializer runs on the hot path. The writer's identity is the DDS
publication handle of the sample, and the source timestamp carries the write time.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from cyclonedds._clayer import ddspy_take, ddspy_write_ts
from cyclonedds.core import Listener
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.types import uint32, uint64
from cyclonedds.pub import DataWriter as _Writer
from cyclonedds.sub import DataReader as _Reader

from loanbus._transport.dds import (
    _ANY,
    QosAlarm,
    _delete,
    _MatchFlag,
    _qos,
    _ReaderEnd,
    _wrapped,
    _WriterEnd,
)
from loanbus._transport.endpoint import EndpointQos, RefMessage
from loanbus.errors import TransportError

if TYPE_CHECKING:
    from loanbus._transport.participant import TransportParticipant


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
        self._create = partial(
            _Writer,
            participant._participant(),
            participant.ref_topic(topic_name),
            qos=_qos(qos, writer=True),
            listener=listener,
        )
        self._what = f"create a writer on {topic_name!r}"
        with _wrapped(self._what):
            self._dw = self._create()
        self._ref = self._dw._ref

    def renew(self) -> None:
        """Replace the DDS writer by a fresh one, forgetting its transient-local history (which
        went stale while no reader needed references through DDS)."""
        if self._dw is None:
            raise TransportError("reference writer is closed")
        dw, self._dw = self._dw, None
        _delete(dw)
        with _wrapped(self._what):
            self._dw = self._create()
        self._ref = self._dw._ref
        self.matches()  # the new writer's matches are not known yet

    def write(self, slot: int, seq: int, size: int, timestamp_ns: int) -> None:
        ret = ddspy_write_ts(self._ref, _REF_MESSAGE.pack(_CDR_LE, seq, size, slot), timestamp_ns)
        if ret < 0:
            raise TransportError(f"Cyclone DDS refused to write a reference (return code {ret})")


class RefReader(_ReaderEnd):
    """Takes references from the derived topic.

    ``on_match_change()`` and ``on_data()`` run on Cyclone's listener thread when matched
    writers change and when references arrive; the DataReader turns both into a wake record
    in its inbox, so it waits on one file descriptor for everything.
    """

    _kind = "reference reader"

    def __init__(
        self,
        participant: TransportParticipant,
        topic_name: str,
        qos: EndpointQos,
        on_match_change: Callable[[], None] | None = None,
        on_data: Callable[[], None] | None = None,
    ) -> None:
        self.matches = _MatchFlag(on_match_change)
        self.qos_alarm = QosAlarm(f"reader on {topic_name!r}")
        self.refused = 0  # messages that are not a little-endian LoanRef (big-endian, short, ...)
        self.more = False  # the last take got as many as it asked for: more may be waiting

        def data_available(_reader: Any) -> None:
            if on_data is not None:
                on_data()

        listener = Listener(
            on_subscription_matched=self.matches,
            on_requested_incompatible_qos=self.qos_alarm,
            on_data_available=data_available,
        )
        dp = participant._participant()
        with _wrapped(f"create a reader on {topic_name!r}"):
            self._dr = _Reader(
                dp, participant.ref_topic(topic_name), qos=_qos(qos, writer=False), listener=listener
            )
        self._ref = self._dr._ref

    def take(self, max_samples: int) -> list[RefMessage]:
        if self._dr is None:
            self.more = False
            return []
        ret = ddspy_take(self._ref, _ANY, max_samples)
        if isinstance(ret, int):
            raise TransportError(f"Cyclone DDS refused to take references (return code {ret})")
        self.more = len(ret) >= max_samples
        out = []
        for data, info in ret:
            if not info.valid_data:
                continue
            if len(data) >= _REF_BYTES and data[0] == 0 and data[1] in _LE_IDS:
                seq, size, slot = _unpack_ref(data, 4)
                out.append((info.publication_handle, slot, seq, size, info.source_timestamp))
            else:
                self.refused += 1
        return out
