"""The loanbus exception hierarchy: one root, names that say what went wrong.

Bad arguments are plain ``TypeError`` / ``ValueError``; everything the bus itself
refuses or suffers derives from :class:`LoanbusError`.
"""

from __future__ import annotations

from collections.abc import Sequence


class LoanbusError(Exception):
    """Root of every error loanbus raises on its own account."""


class LoanError(LoanbusError):
    """A loan could not be granted (for example every slot of the pool is on loan)."""


class LoanTimeoutError(LoanError, TimeoutError):
    """A reliable ``get_loan()`` waited ``max_blocking_time`` for readers to return slots.

    ``holders`` names the readers (their reader ids, hex) that still hold slots.
    """

    def __init__(self, message: str, holders: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.holders = tuple(holders)


class LoanStateError(LoanbusError):
    """A loan or taken sample was used after it was written, discarded or returned."""


class ClosedError(LoanbusError):
    """You closed this entity; it cannot be used any more."""


class BrokenError(LoanbusError):
    """The world broke this entity (a peer died, a segment vanished); see ``__cause__``."""


class PoolFormatError(LoanbusError):
    """A shared-memory segment failed validation (magic, ABI, type hash, size, state, owner)."""


class InvalidReferenceError(LoanbusError):
    """A received reference names a slot, sequence number or pool that cannot be valid."""


class TransportError(LoanbusError):
    """Cyclone DDS refused an operation; the ``DDSException`` is the ``__cause__``."""


__all__ = [
    "BrokenError",
    "ClosedError",
    "InvalidReferenceError",
    "LoanError",
    "LoanStateError",
    "LoanTimeoutError",
    "LoanbusError",
    "PoolFormatError",
    "TransportError",
]
