"""``python-floor``: the thinnest Python API of loanbus's shape keeps the API's rules.

Its figure is only meaningful if it does what the API requires, however little: a loan is
consumed by ``write``, a sample by ``return_loan``, a reused slot reads as inconsistent, a held
slot is not lent again. Real Cyclone DDS and real shared memory, both ends in this process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from loanbus import LoanError, LoanStateError
from loanbus.bench.apifloor import PythonFloorEndpoint
from loanbus.bench.channels import open_endpoint, prepare


@pytest.fixture
def pair(domain_id: int) -> Iterator[tuple[PythonFloorEndpoint, PythonFloorEndpoint]]:
    prepared = prepare("python-floor", "stream", 4096, domain_id, "apifloor")
    ends = []
    try:
        for role in ("a", "b"):
            ep = open_endpoint("python-floor", "stream", role, 4096, prepared.args[role])
            assert isinstance(ep, PythonFloorEndpoint)
            ends.append(ep)
        deadline = time.monotonic() + 30
        while not all(ep.ready() for ep in ends):
            assert time.monotonic() < deadline, "the two ends never matched"
            time.sleep(0.01)
        yield ends[0], ends[1]
    finally:
        for ep in ends:
            ep.close()
        prepared.cleanup()


def test_a_sample_crosses_by_reference_and_the_loan_rules_hold(
    pair: tuple[PythonFloorEndpoint, PythonFloorEndpoint],
) -> None:
    writer, reader = pair
    loan = writer.get_loan()
    loan.data["payload"][:3] = (7, 8, 9)
    writer.write(loan)
    with pytest.raises(LoanStateError):
        loan.data
    with pytest.raises(LoanStateError):
        writer.write(loan)
    with pytest.raises(LoanError):
        writer.get_loan()  # the reader holds the only slot until it returns it

    [sample] = reader.take(1, timeout=10.0)
    assert list(sample.data["payload"][:3]) == [7, 8, 9]
    assert not sample.data.flags.writeable
    assert sample.info.sequence_number == 1 and sample.info.valid
    assert reader.is_data_consistent(sample)
    reader.return_loan(sample)
    with pytest.raises(LoanStateError):
        sample.data
    with pytest.raises(LoanStateError):
        reader.return_loan(sample)
    assert reader.take(1, timeout=0.05) == []


def test_a_slot_stamped_again_reads_as_inconsistent(
    pair: tuple[PythonFloorEndpoint, PythonFloorEndpoint],
) -> None:
    writer, reader = pair
    writer.send(42)
    assert reader.recv(10.0) == 42  # take, read, check, return: what the ping-pong does
    writer.send(43)
    [sample] = reader.take(1, timeout=10.0)
    assert sample.info.sequence_number == 2 and reader.is_data_consistent(sample)
    out = writer._out
    assert out is not None
    out.words[0] = 3  # the slot stamped again, as a writer that reuses it would
    assert not reader.is_data_consistent(sample)
    reader.return_loan(sample)
