"""The Cyclone transport's own logic (the parts that need no network)."""

from __future__ import annotations

import ctypes as ct
from typing import Any

import pytest

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


def test_the_shipped_configuration_is_loopback_unicast_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("LOANBUS_INTERFACE", "LOANBUS_PEERS", "LOANBUS_MULTICAST"):
        monkeypatch.delenv(var, raising=False)
    xml = build_config(lease_duration=2.0)
    assert '<NetworkInterface name="lo" />' in xml
    assert "<AllowMulticast>false</AllowMulticast>" in xml
    assert '<Peer address="127.0.0.1" />' in xml
    assert "<LeaseDuration>2s</LeaseDuration>" in xml
    monkeypatch.setenv("LOANBUS_INTERFACE", "10.1.0.1")
    monkeypatch.setenv("LOANBUS_PEERS", "10.1.0.1, 10.1.0.2")
    xml = build_config(lease_duration=10.0)
    assert '<NetworkInterface address="10.1.0.1" />' in xml
    assert xml.count("<Peer ") == 2
