"""The outbox: messages reach their channel in order, a full outbox says so, close drains it."""

from __future__ import annotations

import threading

from loanbus.recording.outbox import Outbox
from tests.reliability import wait_for


class GatedChannel:
    """A channel whose ``log`` waits for ``gate``: the disk is slow until the test opens it."""

    topic = "gated"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.logged: list[tuple[bytes, int]] = []

    def log(self, message: bytes, log_time: int) -> None:
        self.gate.wait(30)
        self.logged.append((message, log_time))


def test_a_full_outbox_has_no_room_until_its_messages_are_logged_in_order() -> None:
    channel = GatedChannel()
    outbox = Outbox(limit=100)
    try:
        outbox.put(channel, b"a" * 60, 1)  # one message always fits
        wait_for(lambda: outbox.held == 60, 10, "the first message to be in the outbox")
        assert outbox.room(40) and not outbox.room(41)
        outbox.put(channel, b"b" * 40, 2)
        assert not outbox.room(1)
        channel.gate.set()
        wait_for(lambda: outbox.held == 0, 10, "the outbox to drain")
        assert outbox.room(100)
    finally:
        channel.gate.set()
        outbox.close()
    assert [t for _, t in channel.logged] == [1, 2]


def test_close_logs_what_is_queued_before_it_returns() -> None:
    channel = GatedChannel()
    channel.gate.set()
    outbox = Outbox(limit=1000)
    for i in range(20):
        outbox.put(channel, bytes([i]) * 10, i)
    outbox.close()
    assert [t for _, t in channel.logged] == list(range(20))
    outbox.close()  # idempotent
