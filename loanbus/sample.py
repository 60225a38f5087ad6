"""What ``DataReader.take`` hands out: LoanedSample (a read-only view) and its SampleInfo."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from loanbus._export import DLPackField, field_view
from loanbus.errors import LoanStateError


class SampleInfo(NamedTuple):
    """What came with a sample: its writer's sequence number, source time and slot."""

    sequence_number: int
    source_timestamp: int
    valid: bool
    slot: int
    publication_handle: int
    reception_timestamp: int


new_info = tuple.__new__  # builds a SampleInfo without the Python-level NamedTuple __new__


class LoanedSample:
    """A taken sample: ``data`` is a read-only view of the writer's shared memory.

    Use it, then ask ``reader.is_data_consistent(sample)``, then ``return_loan`` it. After
    the return, touching ``data`` raises ``LoanStateError``.
    """

    __slots__ = ("_data", "_pool", "_reader", "_returned", "info")

    def __init__(self, reader: Any, source: Any, data: np.ndarray[Any, Any], info: SampleInfo) -> None:
        self._reader = reader
        self._pool = source  # the writer's pool as the reader uses it (loanbus._sources.Source)
        self._data = data
        self.info = info
        self._returned = False

    @property
    def data(self) -> np.ndarray[Any, Any]:
        if self._returned:
            raise LoanStateError("this sample was already returned")
        return self._data

    @property
    def returned(self) -> bool:
        return self._returned

    def dlpack(self, field: str) -> DLPackField:
        """Field ``field`` for ``np.from_dlpack`` / ``torch.from_dlpack``: zero-copy, read-only.

        See docs/ecosystem.md. Valid like ``data``: until the sample is returned.
        """
        return DLPackField(field_view(self.data, field), field)

    def __repr__(self) -> str:
        state = "returned" if self._returned else "taken"
        return f"LoanedSample(seq={self.info.sequence_number}, slot={self.info.slot}, {state})"
