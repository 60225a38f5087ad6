"""Quality of service: reliability, history, durability and the pool size they imply."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from loanbus._args import check_bool, check_int, check_seconds

#: The largest group id ``shm_group`` accepts (gid_t is 32 bits; 2**32 - 1 means "none").
MAX_GID = 2**32 - 2


class Reliability(enum.Enum):
    """Whether the writer may overwrite a slot that a reader has not returned yet."""

    BEST_EFFORT = "best_effort"
    RELIABLE = "reliable"


class Durability(enum.Enum):
    """Whether a reader that joins late still receives the newest ``history_depth`` samples."""

    VOLATILE = "volatile"
    TRANSIENT_LOCAL = "transient_local"


@dataclass(frozen=True)
class Qos:
    """The policies of a DataWriter or DataReader.

    ``max_samples`` is how many written samples the writer keeps available; the pool has
    ``max_samples + 1`` slots (one to fill while the others are read) unless ``pool_slots``
    says otherwise. With ``TRANSIENT_LOCAL`` the newest ``history_depth`` written slots are
    never reused, so the default pool grows by ``history_depth``.

    ``huge_pages=True`` asks the kernel for transparent huge pages on the writer's pool. If
    the kernel refuses, the pool uses normal pages and the writer logs why (a warning).

    ``by_value=True`` makes a reader receive private copies over plain DDS even from writers
    on its own host (as a reader on another host does); writers ignore it.

    ``dds_references=True`` makes a zero-copy reader take its references through Cyclone DDS
    (the reference topic) instead of the local path; writers ignore it. The local path is
    faster; the DDS path is what C programs built on the generated header use.

    ``max_blocking_time`` and every timeout are seconds; ``math.inf`` means wait for ever.
    """

    reliability: Reliability = Reliability.BEST_EFFORT
    max_blocking_time: float = 0.1
    history_depth: int | None = 1
    durability: Durability = Durability.VOLATILE
    max_samples: int = 1
    pool_slots: int | None = None
    reader_rows: int = 16
    shm_group: int | None = None
    huge_pages: bool = False
    by_value: bool = False
    dds_references: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.reliability, Reliability):
            raise TypeError(f"reliability must be a Reliability, not {self.reliability!r}")
        if not isinstance(self.durability, Durability):
            raise TypeError(f"durability must be a Durability, not {self.durability!r}")
        for flag in ("huge_pages", "by_value", "dds_references"):
            check_bool(getattr(self, flag), flag)
        check_seconds(self.max_blocking_time, "max_blocking_time")
        if self.history_depth is not None:
            check_int(self.history_depth, "history_depth (or None)", low=1)
        if self.durability is Durability.TRANSIENT_LOCAL and self.reliability is not Reliability.RELIABLE:
            raise ValueError(
                "TRANSIENT_LOCAL durability needs RELIABLE reliability: Cyclone DDS delivers "
                "history to late joiners only over a reliable match"
            )
        check_int(self.max_samples, "max_samples", low=1, high=65535)
        check_int(self.reader_rows, "reader_rows", low=1, high=1024)
        if self.shm_group is not None:
            check_int(self.shm_group, "shm_group (a group id, or None)", low=0, high=MAX_GID)
        if self.pool_slots is not None:
            check_int(self.pool_slots, "pool_slots (or None)", low=1, high=65536)
            if self.pool_slots <= self.protected_slots:
                raise ValueError(
                    f"pool_slots={self.pool_slots} leaves no slot to loan: transient-local "
                    f"history keeps the newest {self.protected_slots} written slots"
                )
        if self.slot_count > 65536:
            raise ValueError(
                f"a pool of {self.slot_count} slots (max_samples + 1 + history) is more than 65536"
            )

    @property
    def protected_slots(self) -> int:
        """How many of the newest written slots a writer must not reuse (durability)."""
        if self.durability is Durability.TRANSIENT_LOCAL:
            return self.history_depth or self.max_samples
        return 0

    @property
    def slot_count(self) -> int:
        """The number of slots of a writer's pool."""
        if self.pool_slots is not None:
            return self.pool_slots
        return self.max_samples + 1 + self.protected_slots

    @property
    def reader_depth(self) -> int | None:
        """How many unread references a reader queues (None: all of them)."""
        if self.history_depth is None:
            return None
        return max(self.history_depth, self.max_samples + 1)

    @property
    def writer_depth(self) -> int | None:
        """How many references a writer keeps for late joiners (None: all of them)."""
        return self.history_depth

    @property
    def reliable(self) -> bool:
        return self.reliability is Reliability.RELIABLE
