"""Hostile packets: mutate the headers labkit's decoders read, inside a well-formed record.

A random bit flip mostly breaks the capture container, and the reader then stops before any
decoder sees the packet. These mutations keep the record valid and aim at what the decoders
trust: IP total/payload lengths and header lengths, IPv6 extension chains, TCP data offsets
and options, DTLS record and handshake lengths that run past the datagram, TLS hellos cut
inside their length fields, ICMP errors whose quote is shorter than the 28 bytes RFC 792
promises (20-byte IP header + 8 bytes of the original datagram).

Layer offsets are found here with a few lines of struct (Ethernet with up to two VLAN tags,
raw IP, BSD NULL/LOOP, Linux SLL/SLL2), independently of labkit's decoders.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass

RAW_LINKTYPES = (101, 12, 14, 228, 229)


@dataclass(frozen=True)
class Layers:
    l3: int  # IP header offset
    ver: int  # 4 or 6
    l4: int  # transport header offset (after IPv6 extension headers)
    proto: int


def locate(data: bytes, linktype: int) -> Layers | None:
    """Where the IP and transport headers of ``data`` start, or None when there is no IP."""
    n = len(data)
    if linktype == 1:
        if n < 14:
            return None
        et, off = struct.unpack_from("!H", data, 12)[0], 14
        while et in (0x8100, 0x88A8) and n >= off + 4:
            et, off = struct.unpack_from("!H", data, off + 2)[0], off + 4
        if et not in (0x0800, 0x86DD):
            return None
    elif linktype in RAW_LINKTYPES:
        off = 0
    elif linktype in (0, 108):
        off = 4
    elif linktype == 113:
        off = 16
    elif linktype == 276:
        off = 20
    else:
        return None
    if n < off + 20:
        return None
    ver = data[off] >> 4
    if ver == 4:
        ihl = (data[off] & 15) * 4
        return Layers(off, 4, off + max(ihl, 20), data[off + 9])
    if ver == 6 and n >= off + 40:
        nh, p = data[off + 6], off + 40
        for _ in range(8):
            if nh not in (0, 43, 60) or n < p + 8:
                break
            nh, p = data[p], p + (data[p + 1] + 1) * 8
        return Layers(off, 6, p, nh)
    return None


def _fix_ip_len(b: bytearray, lay: Layers) -> None:
    """Make the IP header's length agree with the captured bytes (a consistent mutant)."""
    if lay.ver == 4:
        struct.pack_into("!H", b, lay.l3 + 2, min(len(b) - lay.l3, 0xFFFF))
    else:
        struct.pack_into("!H", b, lay.l3 + 4, min(max(len(b) - lay.l3 - 40, 0), 0xFFFF))


def _set_payload(data: bytes, lay: Layers, header_len: int, payload: bytes, fix: bool) -> bytes:
    b = bytearray(data[: lay.l4 + header_len] + payload)
    if len(b) < lay.l4 + header_len:
        b += bytes(lay.l4 + header_len - len(b))
    if fix:
        _fix_ip_len(b, lay)
        if lay.proto == 17:
            struct.pack_into("!H", b, lay.l4 + 4, min(len(b) - lay.l4, 0xFFFF))
    return bytes(b)


HOSTILE_16 = (0, 1, 7, 8, 12, 13, 19, 20, 27, 28, 40, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)


def _ip_length(rng: random.Random, data: bytes, lay: Layers) -> bytes:
    b = bytearray(data)
    v = rng.choice(HOSTILE_16 + (len(data) - lay.l3 + 1, len(data) - lay.l3 - 1))
    struct.pack_into("!H", b, lay.l3 + (2 if lay.ver == 4 else 4), max(0, min(v, 0xFFFF)))
    return bytes(b)


def _ip_header(rng: random.Random, data: bytes, lay: Layers) -> bytes:
    b = bytearray(data)
    if lay.ver == 4:
        what = rng.randrange(4)
        if what == 0:
            b[lay.l3] = 0x40 | rng.randrange(16)  # IHL 0..15
        elif what == 1:
            b[lay.l3] = (rng.choice((0, 4, 5, 6, 15)) << 4) | (b[lay.l3] & 15)
        elif what == 2:  # a later fragment, or MF
            struct.pack_into(
                "!H", b, lay.l3 + 6, rng.choice((0x2000, 0x0001, 0x1FFF, 0x4001, 0xFFFF))
            )
        else:
            b[lay.l3 + 9] = rng.choice((0, 1, 6, 17, 41, 58, 255))
    else:
        # A chain of extension headers (hop-by-hop, routing, dest opts, fragment, AH) whose
        # lengths may run past the packet.
        chain = bytearray()
        nh_first = rng.choice((0, 43, 60, 44, 51))
        nh = nh_first
        for _ in range(rng.randrange(1, 12)):
            nxt = rng.choice((0, 43, 60, 44, 51, 6, 17, 58))
            hl = rng.choice((0, 1, 255))
            if nh == 44:
                chain += (
                    bytes([nxt, 0]) + struct.pack("!H", rng.choice((0, 8, 0xFFF8, 1))) + b"\0" * 4
                )
            else:
                chain += bytes([nxt, hl]) + b"\0" * 6
            nh = nxt
            if nxt in (6, 17, 58):
                break
        b[lay.l3 + 6] = nh_first
        b[lay.l4 : lay.l4] = chain
        if rng.random() < 0.5:
            _fix_ip_len(b, lay)
    return bytes(b)


def _tcp(rng: random.Random, data: bytes, lay: Layers) -> bytes:
    if lay.proto != 6 or len(data) < lay.l4 + 20:
        return data
    b = bytearray(data)
    what = rng.randrange(3)
    if what == 0:
        b[lay.l4 + 12] = rng.randrange(16) << 4  # data offset 0..60 bytes
    elif what == 1:  # hostile options on a SYN: kind/length 0, 1, 255, MSS cut at the end
        opts = rng.choice(
            (
                b"\x02\x00",
                b"\x02\x01",
                b"\x02\x04\x05",
                b"\x01" * 40,
                b"\xff\xff",
                b"\x00",
                b"\x03\x00\x02\x04\x05\xb4",
                b"\x08\x02" * 20,
                b"\x02\xff\x05\xb4",
                b"\x02\x04",
                bytes(rng.randrange(256) for _ in range(rng.randrange(41))),
            )
        )
        opts = opts[:40]
        doff = min(15, 5 + (len(opts) + 3) // 4)
        b[lay.l4 + 12] = doff << 4
        b[lay.l4 + 13] |= 0x02
        b[lay.l4 + 20 : lay.l4 + 20] = opts + b"\0" * (-len(opts) % 4)
        if rng.random() < 0.7:
            _fix_ip_len(b, lay)
    else:  # a TLS hello whose inner lengths lie
        return _set_payload(
            data, lay, (b[lay.l4 + 12] >> 4) * 4 or 20, tls_hello(rng), rng.random() < 0.7
        )
    return bytes(b)


def tls_hello(rng: random.Random) -> bytes:
    hs = rng.choice((1, 2))
    sid_len = rng.choice((0, 32, 255))
    body = (
        struct.pack("!H", 0x0303)
        + bytes(32)
        + bytes([sid_len])
        + bytes(min(sid_len, rng.randrange(40)))
    )
    if hs == 1:
        ext = (
            struct.pack("!HH", 0, rng.choice((0, 5, 9, 0xFFFF)))
            + struct.pack("!HBH", 7, 0, rng.choice((3, 0xFFFF)))
            + b"vpn"
        )
        body += (
            struct.pack("!H", rng.choice((2, 0xFFFF)))
            + b"\x00\x2f"
            + b"\x01\x00"
            + struct.pack("!H", rng.choice((len(ext), 0xFFFF, 0)))
            + ext
        )
    else:
        body += b"\x00" * rng.randrange(3)
    hello = bytes([hs]) + rng.choice((len(body), 0, 0xFFFFFF)).to_bytes(3, "big") + body
    rec = (
        bytes([22, 3, rng.choice((0, 1, 3, 4))])
        + struct.pack("!H", rng.choice((len(hello), 0, 0xFFFF)))
        + hello
    )
    return rec[: rng.randrange(5, len(rec) + 1)]


DTLS_VERSIONS = (0x0100, 0xFEFF, 0xFEFD, 0xFEFC)


def dtls_datagram(rng: random.Random) -> bytes:
    """One UDP payload of DTLS records whose lengths lie (RFC 6347 4.1, 4.2.2)."""
    out = bytearray()
    kind = rng.randrange(5)
    if kind == 0:  # thousands of empty records: bounded work per datagram
        rec = (
            bytes([rng.choice((20, 21, 22, 23))])
            + struct.pack("!H", rng.choice(DTLS_VERSIONS))
            + bytes(8)
        )
        return rec * rng.choice((2, 100, 1000, 5000))
    for _ in range(rng.randrange(1, 5)):
        ctype = rng.choice((20, 21, 22, 22, 23))
        version = rng.choice(DTLS_VERSIONS)
        epoch = rng.choice((0, 0, 1, 0xFFFF))
        if ctype == 22:
            hs_type = rng.choice((1, 2, 3, 11, 0, 255))
            sid_len = rng.choice((0, 32, 255))
            msg = (
                struct.pack("!H", version)
                + bytes(32)
                + bytes([sid_len])
                + bytes(min(sid_len, rng.randrange(40)))
                + bytes([rng.choice((0, 20, 255))])
                + bytes(rng.randrange(8))
            )
            msg = msg[: rng.randrange(0, len(msg) + 1)]
            hlen = rng.choice((len(msg), 0, 0xFFFFFF, len(msg) + 1))
            frag_off = rng.choice((0, 0, 1, 0xFFFFFF))
            frag_len = rng.choice((len(msg), 0, 0xFFFFFF))
            body = (
                bytes([hs_type])
                + hlen.to_bytes(3, "big")
                + struct.pack("!H", rng.randrange(4))
                + frag_off.to_bytes(3, "big")
                + frag_len.to_bytes(3, "big")
                + msg
            )
            body = body[: rng.choice((len(body), 0, 5, 11, 12, 13))]
        else:
            body = bytes(rng.randrange(64))
        length = rng.choice((len(body), len(body), 0, 0xFFFF, len(body) + 1, 13))
        out += (
            bytes([ctype])
            + struct.pack("!HH", version, epoch)
            + bytes(6)
            + struct.pack("!H", length)
            + body
        )
    return bytes(out[: rng.randrange(0, len(out) + 1)] if rng.random() < 0.3 else out)


def _udp_dtls(rng: random.Random, data: bytes, lay: Layers) -> bytes:
    if lay.proto != 17 or len(data) < lay.l4 + 8:
        return data
    b = bytearray(data)
    struct.pack_into("!H", b, lay.l4 + rng.choice((0, 2)), rng.choice((443, 443, 8443, 54107)))
    return _set_payload(bytes(b), lay, 8, dtls_datagram(rng), rng.random() < 0.8)


def _icmp_quote(rng: random.Random, data: bytes, lay: Layers) -> bytes:
    """Turn the packet into an ICMP frag-needed / Packet Too Big quoting a cut original."""
    original = data[lay.l3 :]
    v6 = lay.ver == 6
    # Quotes shorter than the 28 (v4) / 48 (v6) bytes a router must send, and odd ones.
    k = rng.choice((0, 1, 4, 19, 20, 21, 24, 27, 28, 39, 40, 47, 48, len(original)))
    quote = bytearray(original[:k])
    if quote and rng.random() < 0.3:
        quote[0] = (quote[0] & 0xF0) | rng.randrange(16)  # quoted IHL
    mtu = (
        rng.choice((0, 1, 68, 576, 1280, 1347, 0xFFFF))
        if not v6
        else rng.choice((0, 1280, 1347, 0xFFFFFFFF))
    )
    if v6:
        icmp = bytes([2, 0]) + b"\0\0" + struct.pack("!I", mtu)
    else:
        icmp = bytes([3, rng.choice((4, 4, 1, 13))]) + b"\0\0" + struct.pack("!HH", 0, mtu)
    b = bytearray(data[: lay.l4])
    b[lay.l3 + (9 if not v6 else 6)] = 58 if v6 else 1
    # A v6 packet with extension headers keeps them; the next-header byte is then not the
    # one that matters. Good enough: the point is the quote.
    b += icmp + quote
    _fix_ip_len(b, lay)
    return bytes(b)


def _snap(rng: random.Random, data: bytes, lay: Layers) -> bytes:
    """Cut the captured bytes inside a header (a snaplen, or a capture cut short)."""
    cuts = [lay.l3 + d for d in (0, 1, 9, 19, 20, 39, 40)] + [
        lay.l4 + d for d in (0, 1, 7, 8, 12, 13, 19, 20, 21)
    ]
    return data[: max(0, min(rng.choice(cuts), len(data)))]


def _garble(rng: random.Random, data: bytes, lay: Layers) -> bytes:
    b = bytearray(data)
    start = rng.randrange(lay.l3, max(lay.l3 + 1, len(b)))
    for i in range(start, min(len(b), start + rng.randrange(1, 64))):
        b[i] = rng.randrange(256)
    return bytes(b)


PACKET_MUTATIONS: dict[str, Callable[[random.Random, bytes, Layers], bytes]] = {
    "ip-length": _ip_length,
    "ip-header": _ip_header,
    "tcp": _tcp,
    "udp-dtls": _udp_dtls,
    "icmp-short-quote": _icmp_quote,
    "snap": _snap,
    "garble": _garble,
}
