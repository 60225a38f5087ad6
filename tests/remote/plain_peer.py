"""A plain Cyclone DDS application (no loanbus) on the user's topic with the by-value type.

    python plain_peer.py reader --domain D --frames N
    python plain_peer.py writer --domain D --frames N

It imports only cyclonedds and numpy and spells the IDL type ``camera::Image`` out itself,
as any Cyclone DDS user would. The Cyclone configuration comes from ``CYCLONEDDS_URI``, or
is Cyclone's default where it is unset. A process started by the test suite on the host's
network (``LOANBUS_DDS_PROFILE=loopback`` inherited) refuses to run with the default, which
would send discovery beyond loopback.
"""

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass

from cyclonedds.core import Listener, Qos
from cyclonedds.domain import DomainParticipant
from cyclonedds.idl import IdlEnum, IdlStruct
from cyclonedds.idl import types as t
from cyclonedds.pub import DataWriter
from cyclonedds.qos import Policy
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

PIXELS = 1920 * 1080 * 3


class PixelFormat(IdlEnum, typename="camera::PixelFormat"):
    RGB8 = 0
    BGR8 = 1
    RGBA8 = 2
    GRAY8 = 3
    YUYV = 4


@dataclass
class Image(IdlStruct, typename="camera::Image"):
    width: t.uint32
    height: t.uint32
    strideBytes: t.uint32
    pixelFormat: PixelFormat
    payloadSize: t.uint32
    sequence: t.uint64
    pixels: t.array[t.byte, PIXELS]  # type: ignore[valid-type]  # IDL octet


def pattern(i: int) -> bytes:
    return bytes((k % 251 + i) % 256 for k in range(251)) * (PIXELS // 251) + bytes(
        (k % 251 + i) % 256 for k in range(PIXELS % 251)
    )


QOS = Qos(
    Policy.Reliability.Reliable(duration(seconds=30)),
    Policy.History.KeepAll,
    Policy.Durability.Volatile,
)


def reader(domain: int, frames: int) -> None:
    dp = DomainParticipant(domain)
    r = DataReader(dp, Topic(dp, "camera", Image), qos=QOS)
    seen, bad = [], 0
    print(json.dumps({"ready": True}), flush=True)
    deadline = time.monotonic() + 120
    while len(seen) < frames and time.monotonic() < deadline:
        for sample in r.take(N=10):
            seen.append(sample.sequence)
            bad += sample.width != 1920 or sample.pixels != pattern(sample.sequence)
        time.sleep(0.01)
    info = {"frames": seen, "bad": bad, "loanbus_imported": "loanbus" in sys.modules, "guid": str(dp.guid)}
    print(json.dumps(info), flush=True)


def writer(domain: int, frames: int) -> None:
    dp = DomainParticipant(domain)
    matched = []
    w = DataWriter(
        dp,
        Topic(dp, "camera", Image),
        qos=QOS,
        listener=Listener(on_publication_matched=lambda _w, status: matched.append(status.current_count)),
    )
    deadline = time.monotonic() + 60
    while not (matched and matched[-1] > 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    for i in range(1, frames + 1):
        w.write(Image(1920, 1080, 5760, PixelFormat.RGB8, PIXELS, i, pattern(i)))
    info = {"written": frames, "loanbus_imported": "loanbus" in sys.modules, "guid": str(dp.guid)}
    print(json.dumps(info), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    if os.environ.get("LOANBUS_DDS_PROFILE") == "loopback" and not os.environ.get("CYCLONEDDS_URI"):
        sys.exit("plain_peer: the suite runs on loopback here: pass CYCLONEDDS_URI (procs.plain_cyclone_env)")
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["writer", "reader"])
    parser.add_argument("--domain", type=int, required=True)
    parser.add_argument("--frames", type=int, default=5)
    args = parser.parse_args()
    (reader if args.role == "reader" else writer)(args.domain, args.frames)
