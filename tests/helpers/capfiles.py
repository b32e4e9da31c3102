"""Test helpers that write capture files byte by byte, independently of labkit's reader.

The reader is judged against tshark on files made here: pcap in either byte order and
timestamp resolution, pcapng with several sections, interfaces and link types, SPBs, unknown
blocks and options, in either byte order. Also link-layer rewrites of real packets.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Rec:
    ts: float
    data: bytes
    origlen: int | None = None
    iface: int = 0


def read_pcap(path: Path) -> tuple[int, list[Rec]]:
    """(link type, records) of a little- or big-endian microsecond pcap, parsed here."""
    raw = path.read_bytes()
    order = "<" if raw[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    linktype = struct.unpack_from(order + "I", raw, 20)[0]
    out, off = [], 24
    while off + 16 <= len(raw):
        s, us, cap, orig = struct.unpack_from(order + "IIII", raw, off)
        out.append(Rec(s + us / 1e6, raw[off + 16 : off + 16 + cap], orig))
        off += 16 + cap
    return linktype, out


def pcap_bytes(
    linktype: int,
    recs: Iterable[Rec],
    *,
    order: str = "<",
    nano: bool = False,
    snaplen: int = 262144,
) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    div = 10**9 if nano else 10**6
    for r in recs:
        sec = int(r.ts)
        frac = round((r.ts - sec) * div)
        out.append(
            struct.pack(
                order + "IIII",
                sec,
                frac,
                len(r.data),
                r.origlen if r.origlen is not None else len(r.data),
            )
        )
        out.append(r.data)
    return b"".join(out)


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _block(order: str, btype: int, body: bytes) -> bytes:
    body = _pad(body)
    total = len(body) + 12
    return struct.pack(order + "II", btype, total) + body + struct.pack(order + "I", total)


def _options(order: str, opts: Sequence[tuple[int, bytes]]) -> bytes:
    if not opts:
        return b""
    out = b"".join(struct.pack(order + "HH", c, len(v)) + _pad(v) for c, v in opts)
    return out + struct.pack(order + "HH", 0, 0)


def shb(order: str, comment: str | None = None) -> bytes:
    opts = [(1, comment.encode())] if comment else []
    return _block(
        order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1) + _options(order, opts)
    )


def idb(
    order: str,
    linktype: int,
    snaplen: int = 262144,
    tsresol: int | None = None,
    name: str | None = None,
) -> bytes:
    opts: list[tuple[int, bytes]] = []
    if name:
        opts.append((2, name.encode()))
    if tsresol is not None:
        opts.append((9, bytes([tsresol])))
    return _block(
        order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + _options(order, opts)
    )


def epb(order: str, r: Rec, divisor: int = 10**6, comment: str | None = None) -> bytes:
    ticks = round(r.ts * divisor)
    orig = r.origlen if r.origlen is not None else len(r.data)
    opts = [(1, comment.encode())] if comment else []
    return _block(
        order,
        6,
        struct.pack(order + "IIIII", r.iface, ticks >> 32, ticks & 0xFFFFFFFF, len(r.data), orig)
        + _pad(r.data)
        + _options(order, opts),
    )


def spb(order: str, r: Rec) -> bytes:
    orig = r.origlen if r.origlen is not None else len(r.data)
    return _block(order, 3, struct.pack(order + "I", orig) + r.data)


def unknown_block(order: str, btype: int = 0x0BADF00D, size: int = 20) -> bytes:
    return _block(order, btype, bytes(range(size % 256)) * (size // 256) + bytes(size % 256))


def strip_ethernet(frame: bytes) -> tuple[int, bytes]:
    """(ethertype, L3 bytes) of an untagged Ethernet frame."""
    return struct.unpack_from("!H", frame, 12)[0], frame[14:]


def relink(frame: bytes, linktype: int) -> bytes:
    """Rewrite an untagged Ethernet frame for another link type (same IP bytes)."""
    et, l3 = strip_ethernet(frame)
    af = {0x0800: 2, 0x86DD: 24}.get(et, 0)
    if linktype == 101 or linktype in (12, 14):
        return l3
    if linktype == 0:  # NULL: address family in the writer's (here little-endian) order
        return struct.pack("<I", af) + l3
    if linktype == 108:  # LOOP: network order
        return struct.pack("!I", af) + l3
    if linktype == 113:  # SLL: packet type, ARPHRD, addr len, addr(8), protocol
        return struct.pack("!HHH8sH", 0, 1, 6, frame[6:12] + b"\0\0", et) + l3
    if linktype == 276:  # SLL2: protocol, reserved, ifindex, ARPHRD, type, addr len, addr(8)
        return struct.pack("!HHIHBB8s", et, 0, 1, 1, 0, 6, frame[6:12] + b"\0\0") + l3
    raise ValueError(linktype)


def vlan(frame: bytes, tags: Sequence[tuple[int, int]]) -> bytes:
    """Insert 802.1Q/802.1ad tags ``(tpid, vid)`` after the MAC addresses."""
    inner = frame[12:]
    head = b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in tags)
    return frame[:12] + head + inner


def pppoe(frame: bytes) -> bytes:
    et, l3 = strip_ethernet(frame)
    proto = {0x0800: 0x0021, 0x86DD: 0x0057}[et]
    return frame[:12] + struct.pack("!HBBHHH", 0x8864, 0x11, 0, 1, len(l3) + 2, proto) + l3
