"""Run by test_traffic_stays_here.py as a pytest session of its own inside a network
namespace: a participant of the profile ``LEAKY_PROFILE`` names, so that the session's
guard (tests/conftest.py) can be seen to catch RTPS beyond lo, or to stay quiet."""

from __future__ import annotations

import os

import loanbus
from tests.helpers import SMALL


def test_one_writer_and_reader_exchange_a_sample(domain_id: int) -> None:
    profile = os.environ["LEAKY_PROFILE"]
    assert profile in ("default", "loopback")
    with loanbus.DomainParticipant(domain_id, dds_profile=profile) as dp:  # type: ignore[arg-type]
        topic = loanbus.Topic(dp, "leaky", SMALL)
        writer, reader = loanbus.DataWriter(topic), loanbus.DataReader(topic)
        assert writer.wait_for_readers(1, timeout=60) and reader.wait_for_writers(1, timeout=60)
