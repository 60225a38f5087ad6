"""The transport behind loanbus: discovery, QoS matching, liveliness, references and values.

Everything above this package speaks only the small interface re-exported here. The modules
are named by what each carries; only the DDS ones (``dds``, ``participant``, ``refs``,
``values``, ``stats``, ``discovery``, ``raw``) import cyclonedds.
"""

from loanbus._transport.discovery import DiscoveredEndpoint, DiscoveredParticipant, DiscoveryReader
from loanbus._transport.endpoint import EndpointQos, PeerInfo, RefMessage
from loanbus._transport.participant import TransportParticipant
from loanbus._transport.raw import RawChannel
from loanbus._transport.refs import RefReader, RefWriter
from loanbus._transport.stats import STATS_TOPIC, StatsReader, StatsWriter
from loanbus._transport.values import ValueMessage, ValueReader, ValueType, ValueWriter, value_type

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
