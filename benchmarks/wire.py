"""Frame builders for the benchmark generator: struct, not Scapy (files: labkit.pcapio.writer).

Building one packet with Scapy costs about 100 µs, so a million of them would take minutes.
Here every header is packed with a precompiled :class:`struct.Struct` and its checksum is
patched in from partial sums: the Internet checksum is an order-independent ones'
complement sum (RFC 1071 section 2), so a payload's share is computed once, cached, and
added to the few header words that change from packet to packet.

A ones' complement sum of 16-bit words equals the big-endian integer of the bytes modulo
0xffff (2**16 is 1 modulo 0xffff), which ``int.from_bytes`` computes in C.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from labkit.wire.checksum import checksum_of_sum as checksum
from labkit.wire.checksum import udp_checksum_of_sum as udp_checksum
from labkit.wire.checksum import word_sum

ETH_IPV4 = 0x0800
ETH_ARP = 0x0806
ETH_VLAN = 0x8100
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
IP_DF = 0x4000
MIN_FRAME = 60  # Ethernet minimum without the FCS: short frames arrive padded on a wire tap

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIHHHH")
_UDP = struct.Struct("!HHHH")
_ICMP_FRAG = struct.Struct("!BBHHH")
_VLAN = struct.Struct("!HH")


class Payload(NamedTuple):
    """Bytes with their word sum, so a segment's checksum costs a few additions."""

    data: bytes
    sum: int

    @classmethod
    def of(cls, data: bytes) -> Payload:
        return cls(data, word_sum(data))


class Host(NamedTuple):
    ip: bytes
    mac: bytes

    @classmethod
    def v4(cls, a: int, b: int, c: int, d: int) -> Host:
        """A host with a locally administered MAC derived from its address."""
        ip = bytes((a, b, c, d))
        return cls(ip, b"\x02\x00" + ip)


class Leg:
    """One direction between two hosts on one link: Ethernet (+802.1Q) and IPv4 prefilled.

    The IPv4 words that never change on this leg are summed once; each packet adds only
    its total length and identification.
    """

    __slots__ = ("eth", "src", "dst", "df", "ttl", "ident", "_ip_base", "_pseudo")

    def __init__(
        self,
        src: Host,
        dst: Host,
        *,
        vlan: int | None = None,
        df: bool = True,
        ttl: int = 64,
        ident: int = 0,
    ) -> None:
        tag = _VLAN.pack(ETH_VLAN, vlan) if vlan is not None else b""
        self.eth = dst.mac + src.mac + tag + ETH_IPV4.to_bytes(2, "big")
        self.src, self.dst, self.df, self.ttl, self.ident = src.ip, dst.ip, df, ttl, ident
        addr = word_sum(src.ip) + word_sum(dst.ip)
        self._ip_base = 0x4500 + (IP_DF if df else 0) + (ttl << 8) + addr
        self._pseudo = addr

    def ip(self, proto: int, total_len: int) -> bytes:
        """The 20-byte IPv4 header of the next packet on this leg."""
        self.ident = ident = (self.ident + 1) & 0xFFFF
        csum = checksum(self._ip_base + proto + total_len + ident)
        return _IPV4.pack(
            0x45,
            0,
            total_len,
            ident,
            IP_DF if self.df else 0,
            self.ttl,
            proto,
            csum,
            self.src,
            self.dst,
        )

    def tcp(
        self,
        sport: int,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        payload: Payload,
        options: Payload | None = None,
    ) -> bytes:
        """A whole Ethernet frame carrying one TCP segment, checksums filled in."""
        opt_len = len(options.data) if options else 0
        hlen = 20 + opt_len
        tcp_len = hlen + len(payload.data)
        offs = (hlen << 10) | flags  # data offset in 32-bit words, in the top 4 bits
        total = (
            self._pseudo
            + PROTO_TCP
            + tcp_len
            + sport
            + dport
            + (seq >> 16)
            + (seq & 0xFFFF)
            + (ack >> 16)
            + (ack & 0xFFFF)
            + offs
            + window
            + payload.sum
            + (options.sum if options else 0)
        )
        header = _TCP.pack(sport, dport, seq, ack, offs, window, checksum(total), 0)
        frame = (
            self.eth
            + self.ip(PROTO_TCP, 20 + tcp_len)
            + header
            + (options.data if options else b"")
            + payload.data
        )
        return frame if len(frame) >= MIN_FRAME else frame + bytes(MIN_FRAME - len(frame))

    def udp(self, sport: int, dport: int, payload: Payload) -> bytes:
        """A whole Ethernet frame carrying one UDP datagram, checksums filled in."""
        length = 8 + len(payload.data)
        total = self._pseudo + PROTO_UDP + 2 * length + sport + dport + payload.sum
        frame = (
            self.eth
            + self.ip(PROTO_UDP, 20 + length)
            + _UDP.pack(sport, dport, length, udp_checksum(total))
            + payload.data
        )
        return frame if len(frame) >= MIN_FRAME else frame + bytes(MIN_FRAME - len(frame))

    def icmp_frag_needed(self, mtu: int, quoted: bytes) -> bytes:
        """ICMP type 3 code 4 (RFC 1191 section 4): next-hop MTU, then the quoted original."""
        body_sum = word_sum(quoted)
        csum = checksum(0x0304 + mtu + body_sum)
        icmp = _ICMP_FRAG.pack(3, 4, csum, 0, mtu) + quoted
        frame = self.eth + self.ip(PROTO_ICMP, 20 + len(icmp)) + icmp
        return frame if len(frame) >= MIN_FRAME else frame + bytes(MIN_FRAME - len(frame))


def arp(sender: Host, target: Host, *, reply: bool, vlan: int | None = None) -> bytes:
    """An ARP request (broadcast) or reply (unicast), padded to the Ethernet minimum."""
    dst = target.mac if reply else b"\xff" * 6
    tag = _VLAN.pack(ETH_VLAN, vlan) if vlan is not None else b""
    body = struct.pack(
        "!HHBBH6s4s6s4s",
        1,
        ETH_IPV4,
        6,
        4,
        2 if reply else 1,
        sender.mac,
        sender.ip,
        target.mac if reply else bytes(6),
        target.ip,
    )
    frame = dst + sender.mac + tag + ETH_ARP.to_bytes(2, "big") + body
    return frame + bytes(max(0, MIN_FRAME - len(frame)))
