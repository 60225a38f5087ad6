"""asyncio, listener callbacks and zero-copy hand-over to array libraries.

Data always crosses processes: a scripted writer runs in a spawned process and obeys
commands from the test (write these values, try to loan slots, stop), so a test can tell
exactly which slots its reader holds at each step.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

import loanbus
from loanbus import _layout as L
from tests.helpers import CTX, join_ok, start

IMAGE = loanbus.ShmemType(
    "eco::Image",
    np.dtype(
        [
            ("value", "<i8"),
            ("rgb", "u1", (120, 160, 3)),
            ("gray", "u1", (120, 160)),
            ("depth", "<f4", (120, 160)),
        ]
    ),
)
RELIABLE_2 = dict(reliability="RELIABLE", max_samples=1, max_blocking_time=10.0)  # 2 slots
RELIABLE_5 = dict(reliability="RELIABLE", max_samples=4, max_blocking_time=10.0)  # 5 slots


def make_qos(spec: dict[str, Any]) -> loanbus.Qos:
    kw = dict(spec)
    kw["reliability"] = loanbus.Reliability[kw["reliability"]]
    return loanbus.Qos(**kw)


def fill(data: Any, value: int) -> None:
    """Fill every field of an IMAGE sample from ``value`` (what ``expected`` checks)."""
    data["value"] = value
    data["rgb"][...] = value % 251
    data["gray"][...] = (value * 7) % 251
    data["depth"][...] = float(value) / 4


def expected_ok(data: Any) -> bool:
    value = int(data["value"])
    return bool(
        (data["rgb"] == value % 251).all()
        and (data["gray"] == (value * 7) % 251).all()
        and (data["depth"] == float(value) / 4).all()
    )


def scripted_writer(domain_id: int, topic: str, qos: dict[str, Any], commands: Any, replies: Any) -> None:
    """A DataWriter in its own process that obeys ``(command, argument)`` tuples."""
    with loanbus.DomainParticipant(domain_id=domain_id) as dp:
        writer = loanbus.DataWriter(loanbus.Topic(dp, topic, IMAGE), make_qos(qos))
        replies.put(("ready", writer.segment_name))
        while True:
            cmd, arg = commands.get(timeout=120)
            if cmd == "wait_readers":
                replies.put(writer.wait_for_readers(arg, timeout=30))
            elif cmd == "write":
                for value in arg:
                    loan = writer.get_loan()
                    fill(loan.data, value)
                    writer.write(loan)
                replies.put(("written", list(arg)))
            elif cmd == "loans":  # how many of ``count`` slots can be loaned within ``timeout``?
                count, timeout = arg
                got = []
                try:
                    for _ in range(count):
                        got.append(writer.get_loan(timeout=timeout))
                except loanbus.LoanTimeoutError:
                    pass
                for loan in got:
                    writer.discard_loan(loan)
                replies.put(len(got))
            elif cmd == "matched":
                replies.put(len(writer.matched_readers()))
            elif cmd == "stop":
                replies.put("stopped")
                return


class Writer:
    """The test's handle on a scripted writer process."""

    def __init__(self, domain_id: int, topic: str, qos: dict[str, Any]) -> None:
        self.commands, self.replies = CTX.Queue(), CTX.Queue()
        self.proc = start(scripted_writer, domain_id, topic, qos, self.commands, self.replies)
        tag, self.segment = self.replies.get(timeout=60)
        assert tag == "ready"

    def ask(self, cmd: str, arg: Any = None) -> Any:
        self.commands.put((cmd, arg))
        return self.replies.get(timeout=60)

    def matched(self, readers: int = 1) -> None:
        assert self.ask("wait_readers", readers), "no reader matched the writer"

    def write(self, *values: int) -> None:
        assert self.ask("write", values) == ("written", list(values))

    def loans(self, count: int, timeout: float) -> int:
        return int(self.ask("loans", (count, timeout)))

    def stop(self) -> None:
        if self.proc.is_alive():
            self.commands.put(("stop", None))
        join_ok(self.proc)

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def segment_mapping(segment: str, *, offset: int = 0) -> tuple[int, str] | None:
    """(start address, permissions) of this process's mapping of ``segment`` at file ``offset``."""
    path = "/dev/shm/" + segment.lstrip("/")
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split(maxsplit=5)
            named = len(parts) == 6 and parts[5].strip().removesuffix(" (deleted)") == path
            if named and int(parts[2], 16) == offset:
                return int(parts[0].split("-")[0], 16), parts[1]
    return None


def field_address_in_pool(segment: str, slot: int, field: str, stype: loanbus.ShmemType = IMAGE) -> int:
    """Where ``field`` of ``slot`` lies in this process's mapping of the pool (from the header)."""
    with open("/dev/shm/" + segment.lstrip("/"), "rb") as f:
        header = L.decode_header(f.read(L.HEADER_SIZE), os.fstat(f.fileno()).st_size)
    mapping = segment_mapping(segment)
    assert mapping is not None, f"{segment} is not mapped in this process"
    offset = stype.dtype.fields[field][1]  # type: ignore[index]
    return mapping[0] + header.layout.payload_start(slot) + offset


def address(array: Any) -> int:
    return int(np.asarray(array).__array_interface__["data"][0])
