"""By value: the plain DDS topic with the user's topic name and type, which any Cyclone DDS
application can read and write. Samples are pre-encoded by ``loanbus._byvalue`` where the
type's layout allows, and written without holding the GIL."""

from __future__ import annotations

import ctypes as ct
import threading
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

from cyclonedds._clayer import ddspy_take
from cyclonedds.core import Listener
from cyclonedds.idl import IdlStruct, make_idl_struct
from cyclonedds.idl import _machinery as _m
from cyclonedds.idl import types as _t
from cyclonedds.internal import DDS as _DDS
from cyclonedds.pub import DataWriter as _Writer
from cyclonedds.sub import DataReader as _Reader
from cyclonedds.topic import Sample as _SampleContainer

from loanbus import _byvalue
from loanbus._transport.dds import (
    _ANY,
    QosAlarm,
    _delete,
    _MatchFlag,
    _qos,
    _ReaderEnd,
    _wrapped,
    _WriterEnd,
    log,
)
from loanbus._transport.endpoint import EndpointQos
from loanbus.errors import TransportError

if TYPE_CHECKING:
    from loanbus._transport.participant import TransportParticipant

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
