"""Counting the RTPS packets that cross network interfaces, with packet sockets (AF_PACKET).

A ``PacketWatch`` opens one packet socket per interface of the network namespace it runs in
and keeps every UDP datagram to or from port 7400 and up whose payload starts with the RTPS
magic: Cyclone DDS's traffic, and nobody else's. A datagram is *of a domain* when one of its
ports lies in the block DDSI gives that domain (7400 + 250 x domain .. + 249: discovery,
participant-index and multicast ports) or when its RTPS header names a participant whose
GUID prefix the caller knows (ephemeral unicast ports). Other traffic on the interfaces is
not counted.

Run as a program it watches inside the namespace it is started in (``ip netns exec``) until
its stdin closes, then prints what it saw as one JSON line:

    python -m tests.remote.rtps --domain D [INTERFACE ...]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import select
import socket
import struct
import sys
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
PACKET_OUTGOING = 4
FIRST_PORT = 7400
DOMAIN_GAIN = 250
RTPS = b"RTPS"
#: The first octet of an IPv4 multicast address (224.0.0.0/4).
MULTICAST_FIRST = 224

# A classic BPF program that passes only UDP over IPv4 or IPv6 (a packet socket of type
# SOCK_DGRAM filters from the network header; the EtherType is an ancillary load), and at
# most 96 bytes of it: enough for the headers, the magic and the GUID prefix.
_BPF = (
    (0x28, 0, 0, 0xFFFFF000),  # ldh protocol
    (0x15, 0, 2, 0x0800),  # IPv4?
    (0x30, 0, 0, 9),  # ldb [9]: protocol
    (0x15, 3, 4, 17),  # UDP: accept, else drop
    (0x15, 0, 3, 0x86DD),  # IPv6?
    (0x30, 0, 0, 6),  # ldb [6]: next header
    (0x15, 0, 1, 17),  # UDP?
    (0x06, 0, 0, 96),  # accept 96 bytes
    (0x06, 0, 0, 0),  # drop
)


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def _attach_udp_filter(sock: socket.socket) -> None:
    program = (_SockFilter * len(_BPF))(*(_SockFilter(*insn) for insn in _BPF))
    fprog = _SockFprog(len(_BPF), program)
    sock.setsockopt(
        socket.SOL_SOCKET,
        SO_ATTACH_FILTER,
        bytes(ctypes.string_at(ctypes.addressof(fprog), ctypes.sizeof(fprog))),
    )


@dataclass(frozen=True)
class Datagram:
    """One RTPS datagram seen on an interface."""

    interface: str
    outgoing: bool
    src: str
    dst: str
    sport: int
    dport: int
    guid_prefix: str  # 24 hex digits

    def in_domain(self, domain_id: int) -> bool:
        """From or to a port of the block DDSI gives ``domain_id``."""
        return any(_in_block(port, domain_id) for port in (self.sport, self.dport))

    def to_domain(self, domain_id: int) -> bool:
        """To a port of that block: every discovery announcement of the domain is (a sender's
        own port may be any the kernel picked)."""
        return _in_block(self.dport, domain_id)


def _in_block(port: int, domain_id: int) -> bool:
    first = FIRST_PORT + DOMAIN_GAIN * domain_id
    return first <= port < first + DOMAIN_GAIN


def parse(data: bytes, protocol: int) -> tuple[str, str, int, int, str] | None:
    """(source, destination, source port, destination port, GUID prefix) of an RTPS UDP
    datagram with a port of 7400 and up that starts in ``data`` (an IP packet); else None."""
    if protocol == 0x0800 and len(data) >= 20 and data[9] == 17:
        if struct.unpack_from("!H", data, 6)[0] & 0x1FFF:
            return None  # a later fragment: no UDP header
        header = (data[0] & 0x0F) * 4
        src, dst = (
            socket.inet_ntop(socket.AF_INET, data[12:16]),
            socket.inet_ntop(socket.AF_INET, data[16:20]),
        )
    elif protocol == 0x86DD and len(data) >= 40 and data[6] == 17:
        header = 40
        src, dst = (
            socket.inet_ntop(socket.AF_INET6, data[8:24]),
            socket.inet_ntop(socket.AF_INET6, data[24:40]),
        )
    else:
        return None
    udp = data[header : header + 8]
    payload = data[header + 8 : header + 28]
    if len(udp) < 8 or len(payload) < 20 or not payload.startswith(RTPS):
        return None
    sport, dport = struct.unpack("!HH", udp[:4])
    if max(sport, dport) < FIRST_PORT:
        return None
    return src, dst, sport, dport, payload[8:20].hex()


def other_interfaces() -> list[str]:
    """Every interface of this network namespace but loopback."""
    return sorted(name for _index, name in socket.if_nameindex() if name != "lo")


class PacketWatch:
    """Collects the RTPS datagrams on ``interfaces`` from now until ``close()``."""

    def __init__(self, interfaces: Iterable[str]) -> None:
        self._socks: dict[socket.socket, str] = {}
        self._seen: list[Datagram] = []
        self._lock = threading.Lock()
        self._stop_r, self._stop_w = os.pipe()
        try:
            for name in interfaces:
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
                self._socks[sock] = name
                _attach_udp_filter(sock)
                sock.bind((name, ETH_P_ALL))
        except BaseException:
            self._close_sockets()
            raise
        self._thread = threading.Thread(target=self._run, name="rtps-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            ready, _, _ = select.select([*self._socks, self._stop_r], [], [])
            if self._stop_r in ready:
                for sock in self._socks:  # what arrived before close() was called
                    while self._receive(sock, block=False):
                        pass
                return
            for sock in ready:
                self._receive(sock, block=True)

    def _receive(self, sock: socket.socket, *, block: bool) -> bool:
        """Read one packet from ``sock`` and keep it if it is RTPS; False when none was there."""
        try:
            data, addr = sock.recvfrom(65536, 0 if block else socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:  # an interface that is down reports ENETDOWN once
            return block
        found = parse(data, addr[1])
        if found is not None:
            src, dst, sport, dport, prefix = found
            seen = Datagram(self._socks[sock], addr[2] == PACKET_OUTGOING, src, dst, sport, dport, prefix)
            with self._lock:
                self._seen.append(seen)
        return True

    def datagrams(self) -> list[Datagram]:
        with self._lock:
            return list(self._seen)

    def of(self, domain_id: int, guid_prefixes: Iterable[str] = ()) -> list[Datagram]:
        """The datagrams of ``domain_id`` (by port, or by one of ``guid_prefixes``)."""
        prefixes = set(guid_prefixes)
        return [d for d in self.datagrams() if d.in_domain(domain_id) or d.guid_prefix in prefixes]

    def _close_sockets(self) -> None:
        for sock in self._socks:
            sock.close()

    def close(self) -> None:
        if self._stop_w >= 0:
            os.write(self._stop_w, b"x")
            self._thread.join()
            self._close_sockets()
            os.close(self._stop_r)
            os.close(self._stop_w)
            self._stop_w = -1

    def __enter__(self) -> PacketWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def guid_prefix(guid: str) -> str:
    """The 12-byte GUID prefix (24 hex digits) of a participant or endpoint GUID string."""
    return guid.replace("-", "")[:24]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--domain", type=int, required=True)
    parser.add_argument("interfaces", nargs="*", help="default: every interface but lo")
    args = parser.parse_args()
    with PacketWatch(args.interfaces or other_interfaces()) as watch:
        print(json.dumps({"ready": True}), flush=True)
        sys.stdin.read()
    ours = watch.of(args.domain)
    print(json.dumps({"datagrams": [asdict(d) for d in ours]}), flush=True)


if __name__ == "__main__":
    main()
