"""loanbus: zero-copy publish/subscribe of large samples over POSIX shared memory."""

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
]
