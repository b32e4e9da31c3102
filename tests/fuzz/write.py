"""Scapy packets to pcap/pcapng bytes in memory (Ethernet, microseconds), for the seeds."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from tests.fuzz import capture as cf


def _records(pkts: Sequence) -> list[tuple[int, int, bytes]]:
    out = []
    for p in pkts:
        us = round(float(p.time) * 1e6)
        out.append((us // 10**6, us % 10**6, bytes(p)))
    return out


def pcap_of(pkts: Sequence) -> bytes:
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    body = b"".join(struct.pack("<IIII", s, us, len(d), len(d)) + d for s, us, d in _records(pkts))
    return head + body


def pcapng_of(pkts: Sequence) -> bytes:
    cap = cf.Capture("pcapng", "<")
    cap.items.append(cf.Block(cf.SHB, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
    cap.items.append(
        cf.Block(
            cf.IDB,
            struct.pack("<HHI", 1, 0, 262144)
            + struct.pack("<HHB3x", 9, 1, 6)
            + struct.pack("<HH", 0, 0),
        )
    )
    for s, us, d in _records(pkts):
        ticks = s * 10**6 + us
        cap.items.append(cf.Packet(d, 1, ticks >> 32, ticks & 0xFFFFFFFF))
    return cf.serialize(cap)[0]
