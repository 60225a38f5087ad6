"""The Cyclone transport's own logic (the parts that need no network)."""

from __future__ import annotations

import ctypes as ct
import xml.etree.ElementTree as ET
from typing import Any

import pytest

import loanbus
from loanbus._transport.config import build_config
from loanbus._transport.dds import _matched_handles
from loanbus.errors import TransportError


class _Entity:
    _ref = 7


def test_matched_handles_grows_its_buffer_when_endpoints_match_mid_call() -> None:
    # Reproduces the binding's race: the count returned exceeds the buffer offered.
    calls: list[int] = []

    def getter(ref: int, buf: Any, size: int) -> int:
        calls.append(size)
        total = 40
        arr = ct.cast(buf, ct.POINTER(ct.c_uint64))
        for i in range(min(size, total)):
            arr[i] = 1000 + i
        return total

    assert _matched_handles(_Entity(), getter) == list(range(1000, 1040))
    assert calls == [16, 80]


def test_matched_handles_reports_a_refusal_as_a_transport_error() -> None:
    with pytest.raises(TransportError, match="-3"):
        _matched_handles(_Entity(), lambda ref, buf, size: -3)


_ADJUSTMENTS = ("LOANBUS_DDS_PROFILE", "LOANBUS_INTERFACE", "LOANBUS_PEERS", "LOANBUS_MULTICAST")
_KEPT = (
    "<MaxMessageSize>65500B</MaxMessageSize>",
    "<FragmentSize>65000B</FragmentSize>",
    '<SocketReceiveBufferSize min="default" max="8MB" />',
    '<SocketSendBufferSize min="default" max="8MB" />',
    "<WhcHigh>8MB</WhcHigh>",
)


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No profile and no adjustment set (the test configuration selects loopback)."""
    for var in _ADJUSTMENTS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def _parsed(xml: str) -> ET.Element:
    return ET.fromstring(xml)


def test_the_default_profile_leaves_every_discovery_setting_to_cyclone(bare_env: pytest.MonkeyPatch) -> None:
    xml = build_config(lease_duration=2.0)
    root = _parsed(xml)  # well-formed
    assert root.tag == "{https://cdds.io/config}CycloneDDS"
    for who_meets_whom in ("Interfaces", "NetworkInterface", "AllowMulticast", "Peers", "Peer",
                           "ParticipantIndex", "MaxAutoParticipantIndex", "Ports", "Tag"):  # fmt: skip
        assert f"<{who_meets_whom}" not in xml, who_meets_whom
    for kept in _KEPT:
        assert kept in xml
    assert "<LeaseDuration>2s</LeaseDuration>" in xml and "<SPDPInterval>0.5s</SPDPInterval>" in xml
    assert build_config(lease_duration=2.0, profile="default") == xml


def test_the_loopback_profile_is_lo_only_unicast_to_localhost(bare_env: pytest.MonkeyPatch) -> None:
    bare_env.setenv("LOANBUS_DDS_PROFILE", "loopback")
    xml = build_config(lease_duration=10.0)
    _parsed(xml)
    assert '<NetworkInterface name="lo" />' in xml
    assert "<AllowMulticast>false</AllowMulticast>" in xml
    assert "<ParticipantIndex>auto</ParticipantIndex>" in xml
    assert "<MaxAutoParticipantIndex>60</MaxAutoParticipantIndex>" in xml
    assert xml.count("<Peer ") == 1 and '<Peer address="127.0.0.1" />' in xml
    assert all(kept in xml for kept in _KEPT)
    bare_env.delenv("LOANBUS_DDS_PROFILE")
    assert build_config(lease_duration=10.0, profile="loopback") == xml


def test_the_loopback_profile_ignores_the_adjustments_and_says_so(
    bare_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    bare_env.setenv("LOANBUS_INTERFACE", "eth0")
    bare_env.setenv("LOANBUS_PEERS", "10.1.0.2")
    xml = build_config(lease_duration=10.0, profile="loopback")
    assert "eth0" not in xml and "10.1.0.2" not in xml and '<NetworkInterface name="lo" />' in xml
    assert caplog.messages == [
        "LOANBUS_INTERFACE, LOANBUS_PEERS ignored: the loopback profile discovers on lo only; "
        "unset them or use the default profile"
    ]


def test_the_default_profile_takes_an_interface_and_unicast_peers(bare_env: pytest.MonkeyPatch) -> None:
    bare_env.setenv("LOANBUS_INTERFACE", "10.1.0.1")
    xml = build_config(lease_duration=10.0)
    assert '<NetworkInterface address="10.1.0.1" />' in xml
    assert "<AllowMulticast>" not in xml and "<Peers>" not in xml  # Cyclone still decides
    bare_env.setenv("LOANBUS_INTERFACE", "veth0")
    bare_env.setenv("LOANBUS_PEERS", "10.1.0.1, 10.1.0.2,")
    bare_env.setenv("LOANBUS_MAX_PARTICIPANTS", "9")
    xml = build_config(lease_duration=10.0)
    _parsed(xml)
    assert '<NetworkInterface name="veth0" />' in xml
    assert '<Peer address="10.1.0.1" />' in xml and '<Peer address="10.1.0.2" />' in xml
    assert xml.count("<Peer ") == 2
    # Peers need fixed ports to be probed, and multicast is off unless asked for.
    assert "<ParticipantIndex>auto</ParticipantIndex>" in xml
    assert "<MaxAutoParticipantIndex>9</MaxAutoParticipantIndex>" in xml
    assert "<AllowMulticast>false</AllowMulticast>" in xml
    bare_env.setenv("LOANBUS_MULTICAST", "1")
    assert "<AllowMulticast>true</AllowMulticast>" in build_config(lease_duration=10.0)


def test_multicast_can_be_turned_off_without_peers(bare_env: pytest.MonkeyPatch) -> None:
    bare_env.setenv("LOANBUS_MULTICAST", "0")
    xml = build_config(lease_duration=10.0)
    assert "<AllowMulticast>false</AllowMulticast>" in xml and "<Peers>" not in xml


def test_values_are_quoted_into_the_xml(bare_env: pytest.MonkeyPatch) -> None:
    bare_env.setenv("LOANBUS_INTERFACE", 'a"b<c')
    bare_env.setenv("LOANBUS_PEERS", "host&1")
    root = _parsed(build_config(lease_duration=10.0))
    ns = {"c": "https://cdds.io/config"}
    assert root.find(".//c:NetworkInterface", ns).get("name") == 'a"b<c'  # type: ignore[union-attr]
    assert root.find(".//c:Peer", ns).get("address") == "host&1"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "LOANBUS_DDS_PROFILE",
            "lo",
            "LOANBUS_DDS_PROFILE is 'lo', not a profile: use 'default' or 'loopback'",
        ),
        (
            "LOANBUS_MULTICAST",
            "yes",
            "LOANBUS_MULTICAST is 'yes': set it to 1 (multicast on) or 0 (off), "
            "or unset it (Cyclone DDS decides)",
        ),
    ],
)
def test_a_bad_value_is_named_in_one_line(
    bare_env: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    bare_env.setenv(variable, value)
    with pytest.raises(ValueError) as exc:
        build_config(lease_duration=10.0)
    assert str(exc.value) == message


def test_a_bad_profile_argument_is_named_in_one_line(domain_id: int) -> None:
    with pytest.raises(
        ValueError, match=r"^dds_profile is 'local', not a profile: use 'default' or 'loopback'$"
    ):
        loanbus.DomainParticipant(domain_id, dds_profile="local")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dds_profile must be 'default' or 'loopback', not 1"):
        loanbus.DomainParticipant(domain_id, dds_profile=1)  # type: ignore[arg-type]


def test_the_first_participant_of_a_domain_sets_its_profile(domain_id: int) -> None:
    with loanbus.DomainParticipant(domain_id, dds_profile="loopback"):
        with (
            loanbus.DomainParticipant(domain_id),
            loanbus.DomainParticipant(domain_id, dds_profile="loopback"),
        ):
            pass
        with pytest.raises(ValueError) as exc:
            loanbus.DomainParticipant(domain_id, dds_profile="default")
    assert str(exc.value) == (
        f"domain {domain_id} already runs with dds_profile='loopback' in this process; "
        "a participant cannot ask for 'default'"
    )
