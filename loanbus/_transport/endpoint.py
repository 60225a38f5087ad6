"""What the transport's endpoints exchange with the layers above: plain data, no DDS."""

from __future__ import annotations

from dataclasses import dataclass

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
