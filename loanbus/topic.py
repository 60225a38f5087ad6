"""Topic: a name and a loanable type within one DomainParticipant."""

from __future__ import annotations

import re
from typing import Generic, TypeVar

from loanbus.domain import DomainParticipant
from loanbus.qos import Qos
from loanbus.types import ShmemType, as_shmem_type

T = TypeVar("T")

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_/]{0,199}$")
REF_TOPIC_PREFIX = "loanbus_ref/"


def check_endpoint_args(topic: object, qos: object) -> Qos:
    """Validate the (topic, qos) a DataWriter or DataReader is made with; the Qos to use."""
    if not isinstance(topic, Topic):
        raise TypeError(f"topic must be a Topic, not {topic!r}")
    topic.participant._check_open()  # before anything is created that would need undoing
    if qos is None:
        return Qos()
    if not isinstance(qos, Qos):
        raise TypeError(f"qos must be a loanbus.Qos, not {qos!r}")
    return qos


class Topic(Generic[T]):
    """``Topic(participant, "frames", Frame)``: where writers and readers of a type meet.

    ``data_type`` is what you passed (a ShmemType or a generated IDL class); ``shmem_type``
    is the loanable description behind it.
    """

    def __init__(self, participant: DomainParticipant, name: str, data_type: T) -> None:
        if not isinstance(participant, DomainParticipant):
            raise TypeError(f"participant must be a DomainParticipant, not {participant!r}")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(
                f"topic name {name!r} must start with a letter or '_' and contain only "
                "letters, digits, '_' and '/' (at most 200 characters)"
            )
        self.participant = participant
        self.name = name
        self.data_type = data_type
        self.shmem_type: ShmemType = as_shmem_type(data_type)
        participant._claim_topic(name, self.shmem_type.name, self.shmem_type.type_hash)

    def close(self) -> None:
        """A topic holds no resources of its own (its DDS topics belong to the participant)."""

    def __enter__(self) -> Topic[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def reference_topic_name(self) -> str:
        """The derived DDS topic that carries references."""
        return REF_TOPIC_PREFIX + self.name

    def __repr__(self) -> str:
        return f"Topic({self.name!r}, {self.shmem_type.name!r})"


def by_value_gap(stype: ShmemType) -> str | None:
    """Why samples of ``stype`` cannot travel by value, or None when they can."""
    if stype.shape:
        return (
            f"{stype.name} samples are arrays shaped {stype.shape}; only zero-copy readers on this "
            "host receive them (shaped samples do not travel by value yet)"
        )
    return None
