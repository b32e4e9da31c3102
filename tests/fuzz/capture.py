"""A capture as the mutators see it: records and blocks with their field offsets.

Written here, independently of labkit's reader, so a bug in the reader cannot hide the inputs
that would show it. Only seeds are parsed (valid files); mutants are bytes. A capture
serializes to bytes plus a map of where every length field and block boundary landed, which
is what the byte-level mutators aim at (pcap-savefile(5); draft-ietf-opsawg-pcapng 3-4).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass, field, replace

PCAP_MAGICS = {  # magic as read little-endian -> (byte order, record header length)
    0xA1B2C3D4: ("<", 16),
    0xA1B23C4D: ("<", 16),
    0xA1B2CD34: ("<", 24),
    0xD4C3B2A1: (">", 16),
    0x4D3CB2A1: (">", 16),
    0x34CDB2A1: (">", 24),
}
SHB, IDB, EPB, SPB, PB, ISB = 0x0A0D0D0A, 1, 6, 3, 2, 5


@dataclass(frozen=True)
class Packet:
    """One packet record, container-neutral."""

    data: bytes
    linktype: int
    ts_hi: int = 0  # pcap: seconds; pcapng: high 32 bits of the timestamp
    ts_lo: int = 0
    origlen: int | None = None
    iface: int = 0
    options: bytes = b""  # pcapng EPB options, kept raw


@dataclass(frozen=True)
class Block:
    """A pcapng block that is not a packet (SHB, IDB, ISB, unknown), body kept raw."""

    btype: int
    body: bytes


@dataclass
class Capture:
    """A parsed seed: ``kind`` 'pcap' or 'pcapng'; ``items`` are Packets and Blocks in order."""

    kind: str
    order: str
    header: bytes = b""  # pcap: the 24-byte file header
    rec_len: int = 16
    items: list = field(default_factory=list)

    @property
    def packets(self) -> list[tuple[int, Packet]]:
        return [(i, it) for i, it in enumerate(self.items) if isinstance(it, Packet)]


@dataclass(frozen=True)
class Field:
    """A length or count field in serialized bytes: where, how wide, what it counts."""

    offset: int
    width: int  # bytes
    order: str
    what: str


@dataclass
class Layout:
    """Where things landed when a capture was serialized."""

    boundaries: list[int] = field(default_factory=list)  # offsets where a record/block starts
    fields: list[Field] = field(default_factory=list)
    packet_spans: list[tuple[int, int]] = field(default_factory=list)  # packet data [start, end)


def unwrap(raw: bytes) -> bytes:
    """Seed bytes without gzip (seeds may be stored compressed)."""
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    return raw


def parse(raw: bytes) -> Capture | None:
    """Parse a valid seed; None when it is not a pcap or pcapng file."""
    raw = unwrap(raw)
    if len(raw) < 24:
        return None
    magic = struct.unpack_from("<I", raw)[0]
    if magic in PCAP_MAGICS:
        order, rec_len = PCAP_MAGICS[magic]
        linktype = struct.unpack_from(order + "I", raw, 20)[0] & 0xFFFF
        cap = Capture("pcap", order, raw[:24], rec_len)
        off = 24
        while off + rec_len <= len(raw):
            sec, frac, caplen, orig = struct.unpack_from(order + "IIII", raw, off)
            data = raw[off + rec_len : off + rec_len + caplen]
            cap.items.append(
                Packet(data, linktype, sec, frac, orig, 0, raw[off + 16 : off + rec_len])
            )
            off += rec_len + caplen
        return cap
    if magic != SHB:
        return None
    bom = raw[8:12]
    order = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
    cap = Capture("pcapng", order)
    linktypes: list[int] = []
    off = 0
    while off + 12 <= len(raw):
        btype, blen = struct.unpack_from(order + "II", raw, off)
        if blen < 12 or off + blen > len(raw):
            break
        body = raw[off + 8 : off + blen - 4]
        if btype == SHB:
            linktypes = []
            cap.items.append(Block(btype, body))
        elif btype == IDB:
            linktypes.append(struct.unpack_from(order + "H", body)[0])
            cap.items.append(Block(btype, body))
        elif btype == EPB and len(body) >= 20:
            iface, hi, lo, caplen, orig = struct.unpack_from(order + "IIIII", body)
            data = body[20 : 20 + caplen]
            opts = body[20 + caplen + (-caplen % 4) :]
            lt = linktypes[iface] if iface < len(linktypes) else 1
            cap.items.append(Packet(data, lt, hi, lo, orig, iface, opts))
        else:
            cap.items.append(Block(btype, body))
        off += blen
    return cap


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def serialize(cap: Capture) -> tuple[bytes, Layout]:
    """Bytes of ``cap`` and the layout of its fields."""
    out = bytearray()
    lay = Layout()
    o = cap.order
    if cap.kind == "pcap":
        out += cap.header
        lay.fields += [Field(16, 4, o, "snaplen"), Field(20, 4, o, "linktype")]
        for it in cap.items:
            if not isinstance(it, Packet):
                continue
            start = len(out)
            lay.boundaries.append(start)
            orig = len(it.data) if it.origlen is None else it.origlen
            extra = (
                it.options
                if cap.rec_len == 24 and len(it.options) == 8
                else b"\0" * (cap.rec_len - 16)
            )
            out += (
                struct.pack(
                    o + "IIII",
                    it.ts_hi & 0xFFFFFFFF,
                    it.ts_lo & 0xFFFFFFFF,
                    len(it.data),
                    orig & 0xFFFFFFFF,
                )
                + extra
            )
            lay.fields += [
                Field(start + 8, 4, o, "caplen"),
                Field(start + 12, 4, o, "origlen"),
                Field(start + 4, 4, o, "ts_frac"),
            ]
            lay.packet_spans.append((len(out), len(out) + len(it.data)))
            out += it.data
        lay.boundaries.append(len(out))
        return bytes(out), lay
    for it in cap.items:
        start = len(out)
        lay.boundaries.append(start)
        if isinstance(it, Packet):
            orig = len(it.data) if it.origlen is None else it.origlen
            body = (
                struct.pack(
                    o + "IIIII",
                    it.iface,
                    it.ts_hi & 0xFFFFFFFF,
                    it.ts_lo & 0xFFFFFFFF,
                    len(it.data),
                    orig & 0xFFFFFFFF,
                )
                + _pad4(it.data)
                + it.options
            )
            lay.fields += [
                Field(start + 8, 4, o, "interface_id"),
                Field(start + 20, 4, o, "caplen"),
                Field(start + 24, 4, o, "origlen"),
            ]
            lay.packet_spans.append((start + 28, start + 28 + len(it.data)))
            btype = EPB
        else:
            body, btype = _pad4(it.body), it.btype
            if btype == SHB:
                lay.fields += [
                    Field(start + 8, 4, o, "byte_order_magic"),
                    Field(start + 16, 8, o, "section_length"),
                ]
            elif btype == IDB:
                lay.fields += [
                    Field(start + 8, 2, o, "linktype"),
                    Field(start + 12, 4, o, "snaplen"),
                ]
                p = 8  # options: code(2) length(2) value
                while p + 4 <= len(body):
                    code, length = struct.unpack_from(o + "HH", body, p)
                    lay.fields.append(Field(start + 8 + p + 2, 2, o, f"idb_option_{code}_length"))
                    if code == 0:
                        break
                    if code in (9, 14):
                        lay.fields.append(
                            Field(
                                start + 8 + p + 4,
                                1 if code == 9 else 8,
                                o,
                                "if_tsresol" if code == 9 else "if_tsoffset",
                            )
                        )
                    p += 4 + length + (-length % 4)
            elif btype == ISB:
                lay.fields.append(Field(start + 8, 4, o, "isb_interface_id"))
        total = len(body) + 12
        out += struct.pack(o + "II", btype, total) + body + struct.pack(o + "I", total)
        lay.fields += [
            Field(start + 4, 4, o, "block_length"),
            Field(start + total - 4, 4, o, "trailing_block_length"),
        ]
    lay.boundaries.append(len(out))
    return bytes(out), lay


def with_packets(cap: Capture, changes: dict[int, Packet]) -> Capture:
    """A copy of ``cap`` with some items replaced."""
    items = list(cap.items)
    for i, p in changes.items():
        items[i] = p
    return replace(cap, items=items)


def gzip_bytes(raw: bytes, *, level: int = 6, members: int = 1) -> bytes:
    """``raw`` as a gzip file of ``members`` concatenated members (mtime 0: reproducible)."""
    if members <= 1 or len(raw) < members:
        return gzip.compress(raw, compresslevel=level, mtime=0)
    step = len(raw) // members
    cuts = [i * step for i in range(members)] + [len(raw)]
    return b"".join(
        gzip.compress(raw[a:b], compresslevel=level, mtime=0) for a, b in zip(cuts, cuts[1:])
    )


def deflate_boundaries(gz: bytes) -> list[int]:
    """Offsets in a gzip file where decompression produced output: where a cut means most."""
    out = []
    d = zlib.decompressobj(wbits=31)
    for i in range(0, len(gz), 256):
        try:
            if d.decompress(gz[i : i + 256]):
                out.append(i)
        except zlib.error:
            break
    return out
