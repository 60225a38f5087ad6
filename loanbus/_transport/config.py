"""The Cyclone DDS configuration loanbus ships, filled in from the environment (no DDS here)."""

from __future__ import annotations

import os
from importlib import resources


def build_config(*, lease_duration: float) -> str:
    """The shipped XML with this process's settings: interface, peers and lease duration.

    ``LOANBUS_INTERFACE`` names the network interface (default ``lo``), ``LOANBUS_PEERS`` is
    a comma-separated list of unicast discovery peers (default ``127.0.0.1``) and
    ``LOANBUS_MULTICAST=1`` allows multicast on interfaces that support it.
    """
    template = resources.files("loanbus").joinpath("cyclonedds.xml").read_text()
    interface = os.environ.get("LOANBUS_INTERFACE", "lo")
    peers = [p.strip() for p in os.environ.get("LOANBUS_PEERS", "127.0.0.1").split(",") if p.strip()]
    attr = "address" if interface.replace(".", "").isdigit() else "name"
    return template.format(
        interface=f'{attr}="{interface}"',
        allow_multicast="true" if os.environ.get("LOANBUS_MULTICAST") == "1" else "false",
        max_participants=os.environ.get("LOANBUS_MAX_PARTICIPANTS", "60"),
        peers="\n".join(f'        <Peer address="{p}" />' for p in peers),
        lease=f"{lease_duration:g}s",
        spdp_interval=f"{max(min(lease_duration / 4, 30.0), 0.05):g}s",
    )
