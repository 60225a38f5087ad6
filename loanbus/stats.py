"""Typed statistics of writers and readers, and the write->take latency window behind them.

``DataWriter.statistics()`` and ``DataReader.statistics()`` return these frozen snapshots;
``as_dict()`` gives plain numbers for an exporter. The same numbers are what ``loanbus top``
shows for other processes (see ``loanbus/_statsfeed.py``). Pure: no DDS, no I/O.
"""

from __future__ import annotations

from array import array
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: How many of the newest write->take latencies a reader keeps (a power of two).
LATENCY_WINDOW = 1024
LATENCY_MASK = LATENCY_WINDOW - 1


@dataclass(frozen=True)
class _Statistics:
    def as_dict(self) -> dict[str, Any]:
        """Every field as a plain ``int``, ``float`` or ``None``, ready for JSON or a metrics system."""
        return asdict(self)


@dataclass(frozen=True)
class WriterStatistics(_Statistics):
    """A snapshot of a writer's counters and of its pool's occupancy (``DataWriter.statistics()``).

    Counters only grow; the ``*_slots`` and ``*_readers`` figures describe the moment of the call.
    """

    loans: int
    writes: int
    discards: int
    overwrites: int
    blocked_loans: int
    loan_timeouts: int
    exhausted: int
    matched_readers: int
    attached_readers: int
    bytes_written: int
    by_value_readers: int  # matched readers that need samples by value (remote, plain DDS...)
    by_value_writes: int  # samples serialised onto the plain topic
    by_value_bytes: int
    incompatible_qos: int  # readers DDS reported as QoS-incompatible
    slots: int
    free_slots: int
    loaned_slots: int
    written_slots: int
    held_slots: int
    local_readers: int = 0  # attached readers that get references through the local path
    dds_reference_readers: int = 0  # matched readers that need references through DDS
    dds_reference_writes: int = 0  # references written on the DDS reference topic
    dropped_references: int = 0  # best effort: a local reader's inbox was full
    lost_readers: int = 0  # local readers detached because they died or hung up
    refused_registrations: int = 0  # registrations refused (bad key, user, descriptors...)
    unattached_readers: int = 0  # registered readers left without references: every row was taken
    incompatible_readers: int = 0  # readers of the topic that expect another type


@dataclass(frozen=True)
class ReaderStatistics(_Statistics):
    """A snapshot of a reader's counters (``DataReader.statistics()``).

    The latency figures are write->take times in microseconds (from the sample's source
    timestamp to the ``take()`` that returned it) over the newest ``latency_samples``
    samples, at most ``LATENCY_WINDOW``; ``None`` before the first sample.
    """

    taken: int
    returned: int
    consistency_checks: int
    inconsistent: int
    refused_references: int
    unmappable_writers: int
    mapped_pools: int
    lost_writers: int
    by_value_taken: int  # samples that arrived by value (private copies)
    by_value_dropped: int  # plain-topic copies of samples this reader maps zero-copy
    by_value_refused: int  # by-value samples that did not decode into the type
    map_failures: int  # pools this reader should have mapped but could not (logged as errors)
    incompatible_qos: int  # writers DDS reported as QoS-incompatible
    bytes_taken: int  # payload bytes taken zero-copy (by-value samples not counted)
    malformed_records: int = 0  # inbox records that are not loanbus records
    history_dropped: int = 0  # best effort: older references replaced by newer (history depth)
    local_writers: int = 0  # writers that send this reader references through its inbox
    incompatible_writers: int = 0  # writers of the topic that publish another type
    latency_samples: int = 0
    latency_p50_us: float | None = None
    latency_p90_us: float | None = None
    latency_p99_us: float | None = None
    latency_max_us: float | None = None


class LatencyWindow:
    """The newest write->take latencies (ns) in a fixed ring; the reader's hot path stores
    into ``values[count & LATENCY_MASK]`` directly (one store, no allocation, no lock)."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values = array("q", bytes(8 * LATENCY_WINDOW))

    def summary(self, count: int) -> dict[str, Any]:
        """Percentiles (µs) of the newest ``min(count, LATENCY_WINDOW)`` stored latencies."""
        n = min(count, LATENCY_WINDOW)
        if n <= 0:
            return {"latency_samples": 0}
        lat = np.frombuffer(self.values, dtype=np.int64)[:n].astype(np.float64)
        p50, p90, p99 = np.percentile(lat, (50, 90, 99)) / 1e3
        return {
            "latency_samples": n,
            "latency_p50_us": round(float(p50), 1),
            "latency_p90_us": round(float(p90), 1),
            "latency_p99_us": round(float(p99), 1),
            "latency_max_us": round(float(lat.max()) / 1e3, 1),
        }


__all__ = ["LATENCY_WINDOW", "LatencyWindow", "ReaderStatistics", "WriterStatistics"]
