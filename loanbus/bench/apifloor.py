"""The ``python-floor`` comparison: the thinnest pure-Python API of loanbus's shape.

On top of ``cyclone-ref``'s reference exchange (loanbus's 24-byte reference through Cyclone
DDS, a shared sequence word), it does the least that the required API implies and nothing
more: ``get_loan`` returns a loan object whose ``data`` is a writable 0-d structured numpy
view; ``write`` consumes it; ``take`` returns a list of sample objects, each with an info
tuple and a read-only 0-d view; ``is_data_consistent`` compares the sequence word;
``return_loan`` clears a hold word. One slot per direction, no pool bookkeeping, no checks of
references, no statistics: no Python implementation of that API can be faster, so its ratio
to the floor is the least a Python loanbus could show. Latency only, like ``cyclone-ref``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from loanbus import LoanError, LoanStateError, SampleInfo
from loanbus.bench.channels import _REF, RefFloorEndpoint

_new_tuple = tuple.__new__
_SEQ, _HOLD = 0, 1  # the words before the payload: the slot's sequence number, the reader's hold


class SkeletonLoan:
    """A loan: a state flag and a cached view, nothing else."""

    __slots__ = ("_data", "active", "seq")

    def __init__(self, data: np.ndarray[Any, Any], seq: int) -> None:
        self._data = data
        self.seq = seq
        self.active = True

    @property
    def data(self) -> np.ndarray[Any, Any]:
        if not self.active:
            raise LoanStateError("this loan was already written")
        return self._data


class SkeletonSample:
    """A taken sample: a cached read-only view and its info tuple."""

    __slots__ = ("_data", "info", "returned")

    def __init__(self, data: np.ndarray[Any, Any], info: SampleInfo) -> None:
        self._data = data
        self.info = info
        self.returned = False

    @property
    def data(self) -> np.ndarray[Any, Any]:
        if self.returned:
            raise LoanStateError("this sample was already returned")
        return self._data


class PythonFloorEndpoint(RefFloorEndpoint):
    """The API's five calls over one shared slot per direction; ``send``/``recv`` use them
    exactly as the loanbus comparison uses a DataWriter and a DataReader."""

    def __init__(self, comparison: str, mode: str, role: str, size: int, args: dict[str, Any]) -> None:
        super().__init__(comparison, mode, role, size, args)
        dtype = np.dtype([("payload", "u1", (size,))])
        self._loan_view = self._sample_view = None
        if self._out is not None:
            self._loan_view = np.ndarray((), dtype, self._out.mapping, self.HEADER)
        if self._in is not None:
            view = np.ndarray((), dtype, self._in.mapping, self.HEADER)
            view.flags.writeable = False
            self._sample_view = view

    # -- the API --------------------------------------------------------------------------

    def get_loan(self) -> SkeletonLoan:
        out = self._out
        assert out is not None and self._loan_view is not None
        if out.words[_HOLD]:
            raise LoanError("the slot is held by the reader")
        self._seq += 1
        out.words[_SEQ] = self._seq  # stamped before the user writes, as loanbus does
        return SkeletonLoan(self._loan_view, self._seq)

    def write(self, loan: SkeletonLoan) -> None:
        out = self._out
        assert out is not None
        if not loan.active:
            raise LoanStateError("this loan was already written")
        out.words[_HOLD] = loan.seq  # the reader's hold, set before the reference leaves
        _REF.pack_into(self._buf, 4, loan.seq, self._size, 0)
        self._ch.write(self._buf)
        loan.active = False

    def take(self, max_samples: int, timeout: float) -> list[SkeletonSample]:
        ch, view = self._ch, self._sample_view
        assert view is not None
        deadline = None
        while True:
            got = ch.take(max_samples)
            if got:
                break
            if deadline is None:
                deadline = time.monotonic() + timeout
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            ch.wait(remaining)
        now = time.time_ns()
        out = []
        for data in got:
            seq, _size, slot = _REF.unpack_from(data, 4)
            out.append(SkeletonSample(view, _new_tuple(SampleInfo, (seq, now, True, slot, 0, now))))
        return out

    def is_data_consistent(self, sample: SkeletonSample) -> bool:
        inp = self._in
        assert inp is not None
        if sample.returned:
            raise LoanStateError("this sample was already returned")
        return bool(inp.words[_SEQ] == sample.info.sequence_number)

    def return_loan(self, sample: SkeletonSample) -> None:
        inp = self._in
        assert inp is not None
        if sample.returned:
            raise LoanStateError("this sample was already returned")
        sample.returned = True
        inp.words[_HOLD] = 0

    # -- the endpoint, shaped like the loanbus comparison's ----------------------------------

    def send(self, tag: int) -> None:
        loan = self.get_loan()
        loan.data["payload"][0] = tag
        self.write(loan)

    def recv(self, timeout: float) -> int | None:
        for s in self.take(1, timeout):
            tag = int(s.data["payload"][0])
            self.is_data_consistent(s)
            self.return_loan(s)
            return tag
        return None

    def close(self) -> None:
        self._loan_view = self._sample_view = None  # views first: the mappings close after
        super().close()
