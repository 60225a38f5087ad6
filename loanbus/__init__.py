"""loanbus: zero-copy publish/subscribe of large samples over POSIX shared memory."""

import importlib
from typing import TYPE_CHECKING, Any

from loanbus.domain import DomainParticipant
from loanbus.errors import (
    BrokenError,
    ClosedError,
    InvalidReferenceError,
    LoanbusError,
    LoanError,
    LoanStateError,
    LoanTimeoutError,
    PoolFormatError,
    TransportError,
)
from loanbus.pub import DataWriter, Loan, ReaderMatch
from loanbus.qos import Durability, Qos, Reliability
from loanbus.stats import ReaderStatistics, WriterStatistics
from loanbus.sub import DataReader, LoanedSample, SampleInfo, WriterMatch
from loanbus.topic import Topic
from loanbus.types import ShmemType

__version__ = "0.1.0"

if TYPE_CHECKING:
    from loanbus.recording import play, record, view


def __getattr__(name: str) -> Any:
    """``record``, ``play`` and ``view`` (docs/record.md), imported on first use: they stand on
    everything above, and nothing below them depends on them."""
    if name in ("play", "record", "view"):
        return getattr(importlib.import_module("loanbus.recording"), name)
    raise AttributeError(f"module 'loanbus' has no attribute {name!r}")


__all__ = [
    "BrokenError",
    "ClosedError",
    "DataReader",
    "DataWriter",
    "DomainParticipant",
    "Durability",
    "InvalidReferenceError",
    "Loan",
    "LoanError",
    "LoanStateError",
    "LoanTimeoutError",
    "LoanbusError",
    "LoanedSample",
    "PoolFormatError",
    "Qos",
    "ReaderMatch",
    "ReaderStatistics",
    "Reliability",
    "SampleInfo",
    "ShmemType",
    "Topic",
    "TransportError",
    "WriterMatch",
    "WriterStatistics",
    "__version__",
    "play",
    "record",
    "view",
]
