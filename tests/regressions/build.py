"""Minimal captures of what customer captures carry, crafted where no public capture shows it.

Each case is a list of (time, linktype, frame bytes). The inner packets are Scapy's; the
encapsulation headers are written byte by byte from their specifications, so that tshark (the
judge in the tests) dissects them independently of labkit. ``python tests/regressions/build.py``
rewrites the ``.pcap`` files; the tests require the files to equal what this builds.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable
from pathlib import Path

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6PacketTooBig, IPv6
from scapy.packet import Raw

HERE = Path(__file__).parent
T0 = 1_700_000_000.0
CISCO = b"\x00\x00\x0c\x00\x00\x01" + b"\x00\x00\x0c\x00\x00\x02"  # a known vendor
MAC = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01"
Frame = tuple[float, int, bytes]


def syn(mss: int, v6: bool = False) -> bytes:
    """A client SYN announcing ``mss``: the fact each encapsulation case must not hide."""
    tcp = TCP(sport=40000, dport=443, flags="S", seq=1000, options=[("MSS", mss)])
    ip = IPv6(src="2001:db8::2", dst="2001:db8::10") if v6 else IP(src="10.1.0.2", dst="10.2.0.10")
    return bytes(ip / tcp)


def outer4(proto: int, payload: bytes) -> bytes:
    return bytes(IP(src="192.0.2.1", dst="192.0.2.2", proto=proto) / Raw(payload))


def outer6(nh: int, payload: bytes) -> bytes:
    return bytes(IPv6(src="2001:db8:f::1", dst="2001:db8:f::2", nh=nh) / Raw(payload))


def udp4(dport: int, payload: bytes) -> bytes:
    hdr = struct.pack("!HHHH", 50000, dport, 8 + len(payload), 0)
    return outer4(17, hdr + payload)


def eth(ethertype: int, payload: bytes) -> bytes:
    return MAC + struct.pack("!H", ethertype) + payload


def mpls(labels: list[int], payload: bytes) -> bytes:
    out = b""
    for i, label in enumerate(labels):
        out += struct.pack("!I", label << 12 | (i == len(labels) - 1) << 8 | 64)
    return out + payload


def pppoe(ppp: bytes) -> bytes:
    """A PPPoE session header (RFC 2516 5.4) before a PPP frame."""
    return b"\x11\x00\x00\x01" + struct.pack("!H", len(ppp)) + ppp


def gre(ptype: int, payload: bytes, flags: int = 0, extra: bytes = b"") -> bytes:
    return struct.pack("!HH", flags, ptype) + extra + payload


# --- encapsulations: one SYN each, with its own MSS ---------------------------------------------


def _encapsulations() -> dict[str, bytes]:
    s = syn
    return {
        "mpls-3-labels": eth(0x8847, mpls([16, 17, 18], s(1301))),
        "mpls-pw-ethernet": eth(0x8847, mpls([20], CISCO + b"\x08\x00" + s(1302))),
        "pppoe-1-byte-protocol": eth(0x8864, pppoe(b"\x21" + s(1303))),
        "vlan-3-tags": eth(
            0x88A8, b"\x00\x0a\x81\x00" + b"\x00\x0b\x81\x00" + b"\x00\x0c\x08\x00" + s(1304)
        ),
        "llc-snap": MAC + struct.pack("!H", 52) + b"\xaa\xaa\x03\x00\x00\x00\x08\x00" + s(1305),
        "macsec-unencrypted": eth(
            0x88E5, b"\x20\x00\x00\x00\x00\x01" + b"\x11" * 8 + b"\x08\x00" + s(1306) + b"\x22" * 16
        ),
        "nsh": eth(0x894F, b"\x0f\xc6\x01\x01" + b"\x00\x00\x01\xff" + b"\x00" * 16 + s(1307)),
        "vn-tag": eth(0x8926, b"\x80\x01\x00\x02\x08\x00" + s(1308)),
        "e-tag": eth(0x893F, b"\x00\x00\x10\x01\x00\x00\x08\x00" + s(1309)),
        "pbb": eth(0x88E7, b"\x00\x01\x00\x01" + eth(0x0800, s(1310))),
        "gre-ipv4": eth(0x0800, outer4(47, gre(0x0800, s(1311)))),
        "gre-key-seq-bridged": eth(
            0x0800,
            outer4(
                47, gre(0x6558, eth(0x0800, s(1312)), 0x3000, b"\x00\x00\x00\x07\x00\x00\x00\x01")
            ),
        ),
        "erspan-ii": eth(
            0x0800,
            outer4(
                47,
                gre(
                    0x88BE,
                    eth(0x0800, s(1313)),
                    0x1000,
                    b"\x00\x00\x00\x05" + b"\x10\x01\x00\x01\x00\x00\x00\x00",
                ),
            ),
        ),
        "erspan-iii": eth(
            0x0800,
            outer4(
                47,
                gre(
                    0x22EB,
                    eth(0x0800, s(1314)),
                    0x1000,
                    b"\x00\x00\x00\x05" + b"\x20\x01\x00\x01" + b"\x00" * 4 + b"\x00\x00\x00\x00",
                ),
            ),
        ),
        "vxlan": eth(
            0x0800, udp4(4789, b"\x08\x00\x00\x00\x00\x00\x2a\x00" + eth(0x0800, s(1315)))
        ),
        "geneve": eth(
            0x0800, udp4(6081, b"\x00\x00\x65\x58\x00\x00\x2a\x00" + eth(0x0800, s(1316)))
        ),
        "ipip-4in4": eth(0x0800, outer4(4, s(1317))),
        "ipip-6in4": eth(0x0800, outer4(41, s(1318, v6=True))),
        "ipip-4in6": eth(0x86DD, outer6(4, s(1319))),
        "ipip-6in6": eth(0x86DD, outer6(41, s(1320, v6=True))),
        "gtp-u": eth(
            0x0800, udp4(2152, b"\x30\xff" + struct.pack("!H", 60) + b"\x00\x00\x00\x01" + s(1321))
        ),
        "capwap-data": eth(
            0x0800, udp4(5247, b"\x00\x10\x02\x00" + b"\x00" * 4 + eth(0x0800, s(1322)))
        ),
        "l2tp-ppp": eth(
            0x0800, udp4(1701, b"\x00\x02\x00\x01\x00\x01" + b"\xff\x03\x00\x21" + s(1323))
        ),
        "mpls-in-udp": eth(0x0800, udp4(6635, mpls([30, 31], s(1324)))),
        "teredo-origin-indication": eth(
            0x0800, udp4(3544, b"\x00\x00" + b"\x0d\x96" + bytes(4) + s(1325, v6=True))
        ),
    }


# --- ICMP cases ---------------------------------------------------------------------------------


def _tcp(src: str, dst: str, sp: int, dp: int, flags: str, seq: int, size: int = 40, **kw) -> bytes:
    pay = b"\x00" * (size - 40)
    return (
        bytes(
            IP(src=src, dst=dst, flags="DF")
            / TCP(sport=sp, dport=dp, flags=flags, seq=seq, ack=1, **kw)
            / Raw(pay)
        )
        if pay
        else bytes(
            IP(src=src, dst=dst, flags="DF")
            / TCP(sport=sp, dport=dp, flags=flags, seq=seq, ack=1, **kw)
        )
    )


def _frag_needed(router: str, original: bytes, mtu: int) -> bytes:
    dst = ".".join(str(b) for b in original[12:16])
    return bytes(
        IP(src=router, dst=dst) / ICMP(type=3, code=4, nexthopmtu=mtu) / Raw(original[:28])
    )


def _pmtud(keep_oversized: bool) -> list[Frame]:
    """A server sends 1500-byte DF segments, a PPPoE router answers MTU 1492; the server
    either resends at 1492 within 3 ms (path-MTU discovery works) or ignores it for 3 s."""
    c, s = "10.9.0.2", "198.18.0.80"
    out: list[Frame] = [
        (0.0, 1, eth(0x0800, _tcp(c, s, 40100, 80, "S", 100, options=[("MSS", 1460)]))),
        (0.01, 1, eth(0x0800, _tcp(s, c, 80, 40100, "SA", 500, options=[("MSS", 1460)]))),
    ]
    seq, t = 501, 0.1
    big = [_tcp(s, c, 80, 40100, "PA", seq + i * 1460, 1500) for i in range(3)]
    for i, b in enumerate(big):
        out.append((t + i * 0.001, 1, eth(0x0800, b)))
        out.append((t + i * 0.001 + 0.0005, 1, eth(0x0800, _frag_needed("192.0.2.254", b, 1492))))
    if keep_oversized:
        for i in range(4):
            out.append((t + 1.5 + i, 1, eth(0x0800, _tcp(s, c, 80, 40100, "PA", seq, 1500))))
    else:
        for i in range(4):
            out.append(
                (
                    t + 0.003 + i * 0.0001,
                    1,
                    eth(0x0800, _tcp(s, c, 80, 40100, "PA", seq + i * 1452, 1492)),
                )
            )
        out.append((t + 0.05, 1, eth(0x0800, _tcp(c, s, 40100, 80, "A", 101))))
    return out


def _pmtud_udp(keep_oversized: bool, after: int = 1400) -> list[Frame]:
    """The same for a datagram sender (a VPN's, on UDP 51000): 1500-byte DF datagrams, ICMP
    MTU 1400 for each; the sender either sends ``after``-byte datagrams from 3 ms on or keeps
    sending 1500-byte ones for 3 s. Each datagram has its own IP ID (none is a copy)."""
    c, s = "10.9.0.2", "198.18.0.80"

    def datagram(src: str, dst: str, size: int, ident: int) -> bytes:
        sport, dport = (51000, 40100) if src == s else (40100, 51000)
        udp = UDP(sport=sport, dport=dport) / Raw(b"\x00" * (size - 28))
        return eth(0x0800, bytes(IP(src=src, dst=dst, flags="DF", id=ident) / udp))

    out: list[Frame] = [(0.0, 1, datagram(c, s, 60, 1))]
    t = 0.1
    for i in range(3):
        big = datagram(s, c, 1500, 10 + i)
        out.append((t + i * 0.001, 1, big))
        out.append(
            (t + i * 0.001 + 0.0005, 1, eth(0x0800, _frag_needed("192.0.2.254", big[14:], 1400)))
        )
    later = (
        [(t + 1.5 + i, 1500) for i in range(4)]
        if keep_oversized
        else [(t + 0.003 + i * 0.0001, after) for i in range(4)]
    )
    out += [(when, 1, datagram(s, c, size, 20 + i)) for i, (when, size) in enumerate(later)]
    out.append((later[-1][0] + 0.05, 1, datagram(c, s, 60, 2)))
    return out


def _offload(beside_ignored: bool) -> list[Frame]:
    """Captured on a server with segmentation offload (TSO): its segments appear as the stack
    handed them to the NIC, two MSS (2920 bytes of payload) each, though the client announced
    MSS 1460. A PPPoE router answers MTU 1492 quoting the 1500-byte wire segment; afterwards
    the capture shows only super-segments (the wire sizes cannot be seen). ``beside_ignored``
    adds the capture of :func:`_pmtud` (a sender that ignores its ICMP) on another flow."""
    c, s = "10.9.1.2", "198.18.1.80"
    out: list[Frame] = [
        (0.0, 1, eth(0x0800, _tcp(c, s, 41000, 443, "S", 100, options=[("MSS", 1460)]))),
        (0.01, 1, eth(0x0800, _tcp(s, c, 443, 41000, "SA", 500, options=[("MSS", 1460)]))),
    ]
    seq, t = 501, 0.2
    wire = _tcp(s, c, 443, 41000, "PA", seq, 1500)
    out.append((t, 1, eth(0x0800, _tcp(s, c, 443, 41000, "PA", seq, 2960))))
    out.append((t + 0.0005, 1, eth(0x0800, _frag_needed("192.0.2.254", wire, 1492))))
    for i in range(4):
        at = t + 0.003 + i * 1.0
        out.append((at, 1, eth(0x0800, _tcp(s, c, 443, 41000, "PA", seq + i * 2904, 2944))))
        out.append((at + 0.02, 1, eth(0x0800, _tcp(c, s, 41000, 443, "A", 101))))
    if beside_ignored:
        out += _pmtud(True)
    return sorted(out, key=lambda f: f[0])


def _bogus() -> list[Frame]:
    """Packet Too Big with MTU 1200 (below IPv6's 1280), quoting a 1500-byte packet; ICMP
    frag-needed with MTU 0 and with MTU 60 (below IPv4's 68): none is a limit."""
    big6 = bytes(
        IPv6(src="2001:db8::10", dst="2001:db8::2")
        / TCP(sport=443, dport=40000, flags="PA")
        / Raw(b"\x00" * 1440)
    )
    ptb = bytes(
        IPv6(src="2001:db8::1", dst="2001:db8::10")
        / ICMPv6PacketTooBig(mtu=1200)
        / Raw(big6[:1232])
    )
    big4 = _tcp("198.18.0.80", "10.9.0.2", 80, 40100, "PA", 501, 1500)
    return [
        (0.0, 1, eth(0x86DD, syn(1440, v6=True))),
        (0.1, 1, eth(0x86DD, big6)),
        (0.1005, 1, eth(0x86DD, ptb)),
        (0.2, 1, eth(0x0800, big4)),
        (0.2005, 1, eth(0x0800, _frag_needed("192.0.2.254", big4, 0))),
        (0.2006, 1, eth(0x0800, _frag_needed("192.0.2.254", big4, 60))),
        (0.3, 1, eth(0x0800, _tcp("198.18.0.80", "10.9.0.2", 80, 40100, "PA", 501, 1500))),
    ]


def _tunnelled_quotes() -> list[Frame]:
    """Inside GRE, the same frag-needed MTU 1400 twice: once quoting a 1500-byte segment (a
    limit), once a 1300-byte one that already fits (bogus). Telling them apart needs the
    quote's length, which is the third IP layer here, not the second."""
    big = _tcp("198.18.0.80", "10.9.0.2", 80, 40100, "PA", 501, 1500)
    small = _tcp("198.18.0.80", "10.9.0.2", 80, 40101, "PA", 501, 1300)

    def tunnelled(inner: bytes) -> bytes:
        return bytes(IP(src="203.0.113.1", dst="203.0.113.2", proto=47) / Raw(gre(0x0800, inner)))

    return [
        (0.0, 1, eth(0x0800, tunnelled(big))),
        (0.001, 1, eth(0x0800, tunnelled(_frag_needed("192.0.2.254", big, 1400)))),
        (0.1, 1, eth(0x0800, tunnelled(small))),
        (0.101, 1, eth(0x0800, tunnelled(_frag_needed("192.0.2.254", small, 1400)))),
    ]


def _duplicates() -> list[Frame]:
    """A SPAN port's copies: a SYN and a DTLS ClientHello each captured twice, 20 us apart."""
    c, s = "10.9.0.2", "198.18.0.80"
    hello = bytes.fromhex("16fefd0000000000000000002e") + bytes.fromhex("010000220000000000000022")
    hello += bytes.fromhex("fefd") + b"\x00" * 32  # client_version, random (body cut short)
    dtls = bytes(IP(src=c, dst=s, id=7) / UDP(sport=50001, dport=443) / Raw(hello))
    first = eth(0x0800, _tcp(c, s, 40200, 443, "S", 100, options=[("MSS", 1460)]))
    return [
        (0.0, 1, first),
        (0.00002, 1, first),
        (0.01, 1, eth(0x0800, _tcp(s, c, 443, 40200, "SA", 500, options=[("MSS", 1400)]))),
        (0.5, 1, eth(0x0800, dtls)),
        (0.50002, 1, eth(0x0800, dtls)),
    ]


def _mixed_versions() -> list[Frame]:
    """SYN-ACKs announcing MSS 1440 over IPv4, over IPv6 inside IPv4 (6in4), over IPv6, and over
    IPv4 inside IPv6 (DS-Lite's 4in6): each version's filter must select its own."""
    return [
        (0.0, 1, eth(0x0800, bytes(IP(src="10.7.0.1", dst="10.7.0.2") / _synack(1440)))),
        (0.1, 1, eth(0x0800, outer4(41, bytes(IPv6(src="2001:db8:7::1") / _synack(1440))))),
        (0.2, 1, eth(0x86DD, bytes(IPv6(src="2001:db8:7::3") / _synack(1440)))),
        (0.3, 1, eth(0x86DD, outer6(4, bytes(IP(src="10.7.0.3", dst="10.7.0.4") / _synack(1440))))),
    ]


def _synack(mss: int) -> TCP:
    return TCP(sport=443, dport=40000, flags="SA", seq=1, ack=1001, options=[("MSS", mss)])


def cases() -> dict[str, Callable[[], list[Frame]]]:
    out: dict[str, Callable[[], list[Frame]]] = {
        f"encap-{name}": (lambda f=frame: [(0.0, 1, f)])
        for name, frame in _encapsulations().items()
    }
    out["pmtud-working-1492"] = lambda: _pmtud(False)
    out["pmtud-ignored-1492"] = lambda: _pmtud(True)
    out["pmtud-udp-working-1400"] = lambda: _pmtud_udp(False)
    out["pmtud-udp-ignored-1400"] = lambda: _pmtud_udp(True)
    out["offload-tso-after-icmp-1492"] = lambda: _offload(False)
    out["offload-tso-beside-ignored-1492"] = lambda: _offload(True)
    out["syn-mss-inner-versions"] = _mixed_versions
    out["icmp-bogus-mtus"] = _bogus
    out["duplicate-frames"] = _duplicates
    out["icmp-quotes-in-gre"] = _tunnelled_quotes
    return out


def pcap(frames: list[Frame]) -> bytes:
    """Classic pcap, microseconds, little-endian; one link type per file."""
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, frames[0][1])
    for t, _lt, data in frames:
        ts = T0 + t
        sec = int(ts)
        out += struct.pack("<IIII", sec, round((ts - sec) * 1e6), len(data), len(data)) + data
    return out


def main() -> None:
    for name, build in cases().items():
        (HERE / f"{name}.pcap").write_bytes(pcap(build()))


if __name__ == "__main__":
    sys.exit(main())
