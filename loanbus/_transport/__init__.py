"""The transport behind loanbus: discovery, QoS matching, liveliness, references and values.

Everything above this package speaks only the small interface re-exported here. The modules
are named by what each carries; only the DDS ones (``dds``, ``participant``, ``refs``,
``values``, ``stats``, ``discovery``, ``raw``) import cyclonedds. The local reference path
(``wire``, ``holds``, ``inbox``, ``registry``) and ``config``, ``endpoint`` import none of it.
"""

from loanbus._transport import wire
from loanbus._transport.discovery import DiscoveredEndpoint, DiscoveredParticipant, DiscoveryReader
from loanbus._transport.endpoint import EndpointQos, PeerInfo, RefMessage
from loanbus._transport.holds import HoldBlock, HoldBlockError
from loanbus._transport.inbox import Inbox, Record, RegistrationError, ring
from loanbus._transport.participant import TransportParticipant
from loanbus._transport.raw import RawChannel
from loanbus._transport.refs import RefReader, RefWriter
from loanbus._transport.registry import Link, Refusal, Registry, RegistryError
from loanbus._transport.stats import STATS_TOPIC, StatsReader, StatsWriter
from loanbus._transport.values import ValueMessage, ValueReader, ValueType, ValueWriter, value_type

__all__ = [
    "STATS_TOPIC",
    "DiscoveredEndpoint",
    "DiscoveredParticipant",
    "DiscoveryReader",
    "EndpointQos",
    "HoldBlock",
    "HoldBlockError",
    "Inbox",
    "Link",
    "PeerInfo",
    "RawChannel",
    "Record",
    "RefMessage",
    "RefReader",
    "RefWriter",
    "Refusal",
    "RegistrationError",
    "Registry",
    "RegistryError",
    "StatsReader",
    "StatsWriter",
    "TransportParticipant",
    "ValueMessage",
    "ValueReader",
    "ValueType",
    "ValueWriter",
    "ring",
    "value_type",
    "wire",
]
