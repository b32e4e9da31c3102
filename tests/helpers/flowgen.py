"""Many-flow captures written with struct, fast enough for N = 10^5..10^7 packets.

Scapy builds a few thousand packets a second; the scaling and memory checks need captures
in which every packet opens a new flow (a distinct 5-tuple, DTLS pair or server), so these
writers lay the bytes out directly: Ethernet, IPv4 (checksums left zero: labkit and tshark
read them as they are), TCP or UDP, and the one payload each kind needs.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from labkit.pcapio.writer import PcapFileWriter
from labkit.wire import LINKTYPE_ETHERNET

T0 = 1_700_000_000
_ETH = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
SERVER = 0xCB007101  # 203.0.113.1


def _ip(src: int, dst: int, proto: int, body: bytes, df: bool = True) -> bytes:
    return (
        struct.pack(
            "!BBHHHBBHII", 0x45, 0, 20 + len(body), 0, 0x4000 if df else 0, 64, proto, 0, src, dst
        )
        + body
    )


def _tcp(sport: int, dport: int, flags: int, payload: bytes = b"", seq: int = 1000) -> bytes:
    mss = b"\x02\x04\x05\xb4" if flags & 0x02 else b""
    off = (20 + len(mss)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, off << 4, flags, 64000, 0, 0) + (
        mss + payload
    )


def _udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def client(i: int) -> int:
    """The i-th client address: 10.0.0.0/8 then 100.64.0.0/10, never 0 in the last byte."""
    return 0x0A000000 + (i % 0xFFFFFF) + 1


def tls_client_hello() -> bytes:
    hello = b"\x03\x03" + b"\x22" * 32 + b"\x00" + b"\x00\x02\x00\x2f" + b"\x01\x00"
    hs = b"\x01" + len(hello).to_bytes(3, "big") + hello
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def dtls_client_hello(rec_seq: int = 0) -> bytes:
    hello = b"\x01\x00" + b"\x22" * 32 + b"\x00" + b"\x00" + b"\x00\x02\x00\x35" + b"\x01\x00"
    n = len(hello).to_bytes(3, "big")
    hs = b"\x01" + n + b"\x00\x00" + b"\x00\x00\x00" + n + hello
    return (
        struct.pack("!BHH", 22, 0x0100, 0) + rec_seq.to_bytes(6, "big") + struct.pack("!H", len(hs))
    ) + hs


_FULL = bytes(1418 - 40)


def packets(kind: str, n: int) -> Iterator[bytes]:
    """``n`` packets of one kind, each opening something new:

    * ``tls``: a TLS ClientHello on its own 5-tuple (client i, port 40000 + i % 20000);
    * ``syn``: a SYN to its own server;
    * ``dtls``: a DTLS ClientHello from its own client (a new pair each);
    * ``icmp``: an ICMP 3/4 (MTU 1347) quoting a 1418-byte packet of its own flow;
    * ``segment``: a full-size DF TCP segment on its own 5-tuple, never acknowledged.
    """
    for i in range(n):
        c = client(i)
        if kind == "tls":
            yield _ip(c, SERVER, 6, _tcp(40000 + i % 20000, 443, 0x18, tls_client_hello()))
        elif kind == "syn":
            yield _ip(c, 0x0B000000 + i + 1, 6, _tcp(40000, 443, 0x02))
        elif kind == "dtls":
            yield _ip(c, SERVER, 17, _udp(52000, 443, dtls_client_hello()))
        elif kind == "icmp":
            # The quote names a 1418-byte packet: one that does not fit the reported 1347,
            # else the ICMP is bogus and never a limit.
            quoted = _ip(SERVER, c, 6, _tcp(443, 40000 + i % 20000, 0x18, _FULL, seq=i))[:28]
            icmp = struct.pack("!BBHHH", 3, 4, 0, 0, 1347) + quoted
            yield _ip(0xC0000201, SERVER, 1, icmp, df=False)
        elif kind == "segment":
            yield _ip(c, SERVER, 6, _tcp(40000 + i % 20000, 443, 0x18, bytes(1300)))
        else:
            raise ValueError(kind)


def write(path: Path, kind: str, n: int) -> Path:
    """A classic pcap (Ethernet) of :func:`packets`, one per millisecond."""
    with open(path, "wb") as f:
        writer = PcapFileWriter(f, LINKTYPE_ETHERNET)
        for i, pkt in enumerate(packets(kind, n)):
            writer.write(T0 * 1_000_000 + i * 1000, _ETH + pkt)
    return path
