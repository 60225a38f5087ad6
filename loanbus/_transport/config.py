"""The Cyclone DDS configuration loanbus ships, filled in from the environment (no DDS here).

Two profiles decide who meets whom:

* ``default``: discovery exactly as a default-configured Cyclone DDS participant on the same
  host (Cyclone picks the interface, SPDP multicast where Cyclone uses it, the same ports),
  so the ``cyclonedds`` tools, Cyclone programs and ROS 2 with rmw_cyclonedds meet loanbus
  with no configuration. ``LOANBUS_INTERFACE``, ``LOANBUS_PEERS`` and ``LOANBUS_MULTICAST``
  adjust it.
* ``loopback``: ``lo`` only, multicast off, unicast discovery to 127.0.0.1; nothing leaves
  the host. It ignores those three variables.

Both add only settings that do not change who meets whom: message and fragment sizes,
socket buffers, the writer history watermark, the lease and the announcement period.
"""

from __future__ import annotations

import logging
import os
from importlib import resources
from typing import Literal
from xml.sax.saxutils import quoteattr

PROFILE_VARIABLE = "LOANBUS_DDS_PROFILE"
DEFAULT = "default"
LOOPBACK = "loopback"
PROFILES = (DEFAULT, LOOPBACK)
DdsProfile = Literal["default", "loopback"]
#: The variables that adjust the default profile's discovery.
ADJUSTMENTS = ("LOANBUS_INTERFACE", "LOANBUS_PEERS", "LOANBUS_MULTICAST")

log = logging.getLogger("loanbus")


def check_profile(profile: object, where: str) -> str:
    """``profile`` if it names a profile; a one-line ``ValueError`` naming ``where`` if not."""
    if profile not in PROFILES:
        raise ValueError(f"{where} is {profile!r}, not a profile: use 'default' or 'loopback'")
    return str(profile)


def profile_from_environment() -> str:
    """The profile ``LOANBUS_DDS_PROFILE`` names: ``default`` when it is unset or empty."""
    value = os.environ.get(PROFILE_VARIABLE, "").strip()
    return check_profile(value, PROFILE_VARIABLE) if value else DEFAULT


def _multicast(peers: list[str]) -> bool | None:
    """``LOANBUS_MULTICAST``: 1 on, 0 off; unset: off with peers, else Cyclone decides."""
    value = os.environ.get("LOANBUS_MULTICAST", "").strip()
    if value == "1":
        return True
    if value == "0":
        return False
    if value:
        raise ValueError(
            f"LOANBUS_MULTICAST is {value!r}: set it to 1 (multicast on) or 0 (off), "
            "or unset it (Cyclone DDS decides)"
        )
    return False if peers else None


def _interface_line(interface: str) -> str:
    attr = "address" if interface.replace(".", "").isdigit() else "name"
    line = f"        <NetworkInterface {attr}={quoteattr(interface)} />\n"
    return f"      <Interfaces>\n{line}      </Interfaces>\n"


def _peer_lines(peers: list[str]) -> str:
    if not peers:
        return ""
    index_limit = os.environ.get("LOANBUS_MAX_PARTICIPANTS", "60")
    listed = "".join(f"        <Peer address={quoteattr(p)} />\n" for p in peers)
    return (
        "      <ParticipantIndex>auto</ParticipantIndex>\n"
        f"      <MaxAutoParticipantIndex>{index_limit}</MaxAutoParticipantIndex>\n"
        f"      <Peers>\n{listed}      </Peers>\n"
    )


def build_config(*, lease_duration: float, profile: str | None = None) -> str:
    """The shipped XML for ``profile`` (by default the one ``LOANBUS_DDS_PROFILE`` names).

    In the default profile ``LOANBUS_INTERFACE`` names the interface (an IPv4 address or a
    name; unset, Cyclone DDS picks), ``LOANBUS_PEERS`` lists unicast discovery peers
    (comma-separated; with peers, multicast is off unless ``LOANBUS_MULTICAST=1``) and
    ``LOANBUS_MULTICAST`` is 1 or 0 to force multicast on or off.
    """
    profile = profile_from_environment() if profile is None else check_profile(profile, "dds_profile")
    if profile != DEFAULT:  # the loopback profile
        ignored = [name for name in ADJUSTMENTS if os.environ.get(name)]
        if ignored:
            log.warning(
                "%s ignored: the loopback profile discovers on lo only; unset %s or use the default profile",
                ", ".join(ignored),
                "it" if len(ignored) == 1 else "them",
            )
        interface: str | None = "lo"
        peers = ["127.0.0.1"]
        multicast: bool | None = False
    else:
        interface = os.environ.get("LOANBUS_INTERFACE", "").strip() or None
        peers = [p.strip() for p in os.environ.get("LOANBUS_PEERS", "").split(",") if p.strip()]
        multicast = _multicast(peers)
    template = resources.files("loanbus").joinpath("cyclonedds.xml").read_text()
    allow = "" if multicast is None else f"      <AllowMulticast>{str(multicast).lower()}</AllowMulticast>\n"
    return template.format(
        interfaces="" if interface is None else _interface_line(interface),
        multicast=allow,
        peers=_peer_lines(peers),
        lease=f"{lease_duration:g}s",
        spdp_interval=f"{max(min(lease_duration / 4, 30.0), 0.05):g}s",
    )
