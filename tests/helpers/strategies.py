"""Hypothesis settings and strategies shared by the property tests and the native-decode tests."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from labkit.wire.linktypes import SUPPORTED_LINKTYPES

PROPS = settings(
    derandomize=True,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

LINKTYPES = sorted(SUPPORTED_LINKTYPES) + [105, 147, 0xFFFF]

# A packet: a plausible prefix (Ethernet/IPv4 or IPv6, TCP/UDP/ICMP headers) with hostile bytes.
ETH4 = bytes.fromhex("0200000000020200000000010800")
ETH6 = bytes.fromhex("02000000000202000000000186dd")


@st.composite
def packets(draw) -> tuple[int, bytes]:
    kind = draw(st.sampled_from(["random", "ip4", "ip6"]))
    if kind == "random":
        return draw(st.sampled_from(LINKTYPES)), draw(st.binary(max_size=300))
    proto = draw(st.sampled_from([6, 17, 1, 58, 0, 44, 43, 60, 51]))
    body = draw(st.binary(max_size=200))
    if kind == "ip4":
        ihl = draw(st.integers(0, 15))
        total = draw(st.integers(0, 0xFFFF))
        frag = draw(st.sampled_from([0, 0x4000, 0x2000, 0x0001, 0x1FFF]))
        ip = struct.pack(
            "!BBHHHBBH4s4s",
            0x40 | ihl,
            0,
            total,
            1,
            frag,
            64,
            proto,
            0,
            b"\xc0\xa8\x00\x01",
            b"\xc0\xa8\x00\x02",
        )
        return 1, ETH4 + ip + body
    plen = draw(st.integers(0, 0xFFFF))
    ip = struct.pack(
        "!IHBB16s16s",
        0x60000000,
        plen,
        proto,
        64,
        b"\xfe\x80" + bytes(14),
        b"\xfe\x80" + bytes(13) + b"\x02",
    )
    return 1, ETH6 + ip + body
