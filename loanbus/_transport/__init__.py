"""The DDS transport behind loanbus: discovery, QoS matching, liveliness and references.

Everything above this package speaks only the small interface re-exported here; only
``cyclone.py`` imports cyclonedds.
"""

from loanbus._transport.cyclone import (
    STATS_TOPIC,
    DiscoveredEndpoint,
    DiscoveredParticipant,
    DiscoveryReader,
    EndpointQos,
    PeerInfo,
    RawChannel,
    RefMessage,
    RefReader,
    RefWriter,
    StatsReader,
    StatsWriter,
    TransportParticipant,
    ValueMessage,
    ValueReader,
    ValueType,
    ValueWriter,
    value_type,
)

__all__ = [
    "STATS_TOPIC",
    "DiscoveredEndpoint",
    "DiscoveredParticipant",
    "DiscoveryReader",
    "EndpointQos",
    "PeerInfo",
    "RawChannel",
    "RefMessage",
    "RefReader",
    "RefWriter",
    "StatsReader",
    "StatsWriter",
    "TransportParticipant",
    "ValueMessage",
    "ValueReader",
    "ValueType",
    "ValueWriter",
    "value_type",
]
