"""pcap and pcapng writers that give the same bytes for the same frames, every run.

Scapy's writers would do, but their pcapng section header names the writing application
and its version, so a Scapy upgrade would change every committed capture. These write only
what the frames and the caller's fixed strings say, with ``struct``:

* pcap (the libpcap format, ``pcap-savefile(5)``): microsecond timestamps, little endian.
* pcapng (RFC draft-ietf-opsawg-pcapng, sections 4.1-4.3): one Section Header Block with a
  comment and ``shb_userappl``, one Interface Description Block (microsecond resolution),
  then an Enhanced Packet Block per frame, with ``opt_comment`` where the frame has one
  (Wireshark shows it as ``frame.comment``).

Times are integer microseconds since the epoch: no float rounding can differ between runs.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

SNAPLEN = 262144

_PCAP_MAGIC_US = 0xA1B2C3D4
_SHB, _IDB, _EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_OPT_END, _OPT_COMMENT = 0, 1
_SHB_USERAPPL = 4
_IF_NAME, _IF_TSRESOL = 2, 9


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured frame: link-layer bytes at ``time_us`` microseconds since the epoch."""

    time_us: int
    data: bytes
    comment: str = ""


def pcap_bytes(frames: Iterable[Frame], linktype: int) -> bytes:
    """A whole libpcap file: the 24-byte global header, then a 16-byte header per frame."""
    out = [struct.pack("<IHHiIII", _PCAP_MAGIC_US, 2, 4, 0, 0, SNAPLEN, linktype)]
    for f in frames:
        sec, usec = divmod(f.time_us, 1_000_000)
        out.append(struct.pack("<IIII", sec, usec, len(f.data), len(f.data)))
        out.append(f.data)
    return b"".join(out)


def _pad4(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + _pad4(value)


def _options(*opts: tuple[int, bytes]) -> bytes:
    present = [_option(code, value) for code, value in opts if value]
    return b"".join(present) + _option(_OPT_END, b"") if present else b""


def _block(block_type: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def pcapng_bytes(
    frames: Iterable[Frame],
    linktype: int,
    *,
    interface: str = "",
    section_comment: str = "",
    application: str = "labkit",
) -> bytes:
    """A whole pcapng file: SHB, one IDB, an EPB per frame (with its comment, if any)."""
    shb = _block(
        _SHB,
        struct.pack("<IHHq", _BYTE_ORDER_MAGIC, 1, 0, -1)
        + _options((_OPT_COMMENT, section_comment.encode()), (_SHB_USERAPPL, application.encode())),
    )
    idb = _block(
        _IDB,
        struct.pack("<HHI", linktype, 0, SNAPLEN)
        + _options((_IF_NAME, interface.encode()), (_IF_TSRESOL, b"\x06")),
    )
    out = [shb, idb]
    for f in frames:
        body = struct.pack(
            "<IIIII", 0, f.time_us >> 32, f.time_us & 0xFFFFFFFF, len(f.data), len(f.data)
        )
        out.append(
            _block(_EPB, body + _pad4(f.data) + _options((_OPT_COMMENT, f.comment.encode())))
        )
    return b"".join(out)
