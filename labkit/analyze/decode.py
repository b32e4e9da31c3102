"""Packet decoding: link layer -> IP -> TCP/UDP/ICMP -> TLS/DTLS hello, with struct only.

Summaries are typed ``NamedTuple``s: immutable, compact, and built in a fraction of the time
a frozen dataclass takes (its ``__init__`` goes through ``object.__setattr__`` per field), which
matters on the path that decodes every SYN-less handshake of a multi-GB capture.

Two decoders, one set of facts:

* :func:`decode` (scalar): one packet's bytes -> a frozen :class:`Packet` summary. For the rare
  packets that decide verdicts (SYNs, TLS/DTLS handshakes, ICMP errors) and for tests. Sans-IO:
  bytes in, summary out; a short or broken header never raises, it leaves the layer out.
  The analyzer summarises a chunk's rare packets with :func:`decode_rows`, compiled in
  ``_columns.c``; a test requires it to equal :func:`decode` on every packet it has.
* :func:`columns` (vectorized): a whole :class:`~labkit.pcapio.reader.Chunk` -> numpy columns
  (IP version, lengths from the IP header, DF, ports, TCP flags/seq/ack, payload offset and
  its first bytes). The per-packet path of the analyzer: no Python per packet. A test checks it
  against :func:`decode` on every packet of the public captures and their format variants.

Sizes come from the IP header (total length / payload length), never from the captured length:
customer captures are often snapped (``tcp-mss-fast-retransmit.pcap`` keeps 54 of 1500 bytes).

Link types (pcap-linktype(7)): NULL 0 and LOOP 108 (BSD loopback, address family in host or
network order), Ethernet 1 (with 802.1Q/802.1ad/QinQ tags and PPPoE sessions), raw IP 101 and
the DLT values 12 and 14 that some systems write for it, IPV4 228, IPV6 229, Linux SLL 113 and
SLL2 276. Others are named by :func:`linktype_name` and skipped.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from labkit import wire
from labkit.pcapio.reader import Chunk, rows_at
from labkit.wire import (
    CT_APPLICATION_DATA,
    CT_CHANGE_CIPHER_SPEC,
    CT_HANDSHAKE,
    DTLS1_2_VERSION,
    DTLS1_3_VERSION,
    DTLS1_BAD_VER,
    DTLS1_VERSION,
    HS_CLIENT_HELLO,
    HS_HELLO_VERIFY_REQUEST,
    HS_SERVER_HELLO,
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
)
from labkit.wire.dtlsrecord import dtls_header
from labkit.wire.linktypes import (
    LINKTYPE_ARCNET_LINUX,
    LINKTYPE_C_HDLC,
    LINKTYPE_FDDI,
    LINKTYPE_IEEE802_11,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NFLOG,
    LINKTYPE_NULL,
    LINKTYPE_PPP,
    LINKTYPE_PPP_HDLC,
    LINKTYPE_RADIOTAP,
    RAW_LINKTYPES,
    SUPPORTED_LINKTYPES,
)

try:
    from labkit.analyze import _columns
except ImportError:  # installed without a C compiler: py_columns does the same, slower
    _columns = None  # type: ignore[assignment]

_ETH_IPV4, _ETH_IPV6, _ETH_PPPOE = 0x0800, 0x86DD, 0x8864
_AF_INET6 = (10, 24, 28, 30)  # Linux, BSDs, FreeBSD/DragonFly, macOS

# --- IP and transport ------------------------------------------------------------------------
PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_ICMPV6 = 1, 6, 17, 58
_V6_EXT = (0, 43, 60, 51, 44)  # hop-by-hop, routing, destination options, AH, fragment
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10

# --- TLS / DTLS --------------------------------------------------------------------------------
DTLS_VERSIONS = {  # the versions labkit.wire knows, named as the findings name them
    DTLS1_BAD_VER: "DTLS 1.0 (OpenSSL pre 0.9.8f, AnyConnect legacy)",
    DTLS1_VERSION: "DTLS 1.0",
    DTLS1_2_VERSION: "DTLS 1.2",
    DTLS1_3_VERSION: "DTLS 1.3",
}
TLS_VERSIONS = {
    0x0300: "SSL 3.0",
    0x0301: "TLS 1.0",
    0x0302: "TLS 1.1",
    0x0303: "TLS 1.2",
    0x0304: "TLS 1.3",
}
CT_CCS, CT_APPDATA = CT_CHANGE_CIPHER_SPEC, CT_APPLICATION_DATA  # the detectors' short names
HS_HELLO_VERIFY = HS_HELLO_VERIFY_REQUEST
MAX_DTLS_RECORDS = 16  # records looked at per datagram: bounded work on hostile input


class TcpInfo(NamedTuple):
    flags: int
    seq: int
    ack: int
    payload_len: int  # from the IP header: what was sent, not what was captured
    mss: int | None = None  # MSS option, parsed on SYNs only

    @property
    def syn(self) -> bool:
        return bool(self.flags & TCP_SYN)


class TlsHello(NamedTuple):
    """A TLS ClientHello or ServerHello at the start of a TCP segment."""

    hs_type: int  # 1 ClientHello, 2 ServerHello
    version: int  # legacy_version in the hello
    session_id: bytes
    sni: str | None = None  # server_name from a ClientHello, when present and captured
    cipher: int | None = None  # ServerHello's chosen suite


class DtlsRecord(NamedTuple):
    """One DTLS record header; handshake fields only for plaintext handshake records."""

    content_type: int
    version: int
    epoch: int
    length: int
    hs_type: int | None = None
    message_seq: int | None = None
    fragment_offset: int | None = (
        None  # a handshake message split over datagrams: > 0 after the first
    )
    session_id: bytes | None = None  # ClientHello / ServerHello
    cookie_len: int | None = None  # ClientHello (non-zero: the second, cookie-bearing hello)
    cipher: int | None = None  # ServerHello
    hello_version: int | None = None  # client_version / server_version inside the hello


class Quote(NamedTuple):
    """The original packet's header quoted inside an ICMP error (RFC 792, RFC 4443)."""

    ipver: int
    src: str
    dst: str
    total_length: int  # the ORIGINAL packet's length: the size that did not fit
    proto: int
    sport: int | None
    dport: int | None
    df: bool


class IcmpError(NamedTuple):
    v6: bool  # ICMPv6 (RFC 4443) rather than ICMP (RFC 792)
    type: int
    code: int
    mtu: int | None  # next-hop MTU (type 3 code 4, RFC 1191) or Packet Too Big MTU
    quote: Quote | None
    quote_layer: int = 2  # Wireshark's index of the quoted header among the frame's IPv4/IPv6

    @property
    def frag_needed(self) -> bool:
        """ICMP "fragmentation needed and DF set" or ICMPv6 "Packet Too Big"."""
        return self.type == 2 if self.v6 else (self.type, self.code) == (3, 4)


class Packet(NamedTuple):
    """What the detectors need from one packet; layers that were absent or cut are None."""

    frame: int
    ts: float
    origlen: int
    ipver: int = 0
    src: str = ""
    dst: str = ""
    ip_len: int = 0  # IPv4 total length / IPv6 40 + payload length
    df: bool = False  # IPv4 DF bit; IPv6 packets are never fragmented by routers (RFC 8200)
    proto: int = -1
    sport: int | None = None
    dport: int | None = None
    tcp: TcpInfo | None = None
    udp_payload_len: int | None = None
    tls: TlsHello | None = None
    dtls: tuple[DtlsRecord, ...] = ()
    icmp: IcmpError | None = None


if _columns is not None:  # the compiled decode builds these very types (decode_rows)
    _columns.set_types(
        Packet,
        TcpInfo,
        TlsHello,
        DtlsRecord,
        Quote,
        IcmpError,
        tuple(wire.DTLS_VERSIONS),
        MAX_DTLS_RECORDS,
    )

_S_H = struct.Struct("!H")
_S_I = struct.Struct("!I")
_S_TCP = struct.Struct("!HHIIBB")
_S_IP4 = struct.Struct("!BBHHHBBH4s4s")


# --- encapsulations: the innermost IP header ------------------------------------------------
# A customer capture taken on a SPAN port, a tunnel head-end or a provider link carries the
# traffic that matters inside other headers: MPLS labels, GRE (ERSPAN copies of whole frames),
# VXLAN/Geneve overlays, IP-in-IP, GTP-U, CAPWAP, PPPoE, stacked VLAN tags. Detectors judge the
# innermost IP packet, as tshark's fields do; what cannot be opened is named, never skipped
# silently (:func:`why_text`). :func:`locate` is the one definition, ``_columns.c`` its twin.

#: Why a frame's innermost packet was not inspected: ``kind << 32 | value`` (0: inspected).
WHY_ETHERTYPE, WHY_LINKTYPE, WHY_PPP, WHY_GRE, WHY_CUT, WHY_DEPTH = 1, 2, 3, 4, 5, 6
WHY_MPLS, WHY_LLC, WHY_MACSEC, WHY_NSH, WHY_INNER, WHY_FAMILY, WHY_WLAN = range(7, 14)
WHY_ARCNET, WHY_NFLOG = 14, 15
WHY_IP_PROTO, WHY_BAD_IP = 16, 17  # given by the coverage count, not by :func:`locate`
WHY_DUPLICATE = 18  # a frame the duplicate filter blanked (counted apart, never "not inspected")
#: The IP header was read but the snap length cut what a detector reads beyond it; the value
#: says what (:data:`SNAP_CUT_PARTS`). Given by the coverage count, not by :func:`locate`.
WHY_SNAP = 19
SNAP_TCP_HEADER, SNAP_SYN_OPTIONS, SNAP_TCP_PAYLOAD = 1, 2, 3
SNAP_UDP_HEADER, SNAP_UDP_PAYLOAD, SNAP_ICMP_QUOTE = 4, 5, 6
SNAP_CUT_PARTS = {
    SNAP_TCP_HEADER: "the TCP header",
    SNAP_SYN_OPTIONS: "a SYN's TCP options (MSS unread)",
    SNAP_TCP_PAYLOAD: "the TCP payload's first bytes (TLS unread)",
    SNAP_UDP_HEADER: "the UDP header",
    SNAP_UDP_PAYLOAD: "the UDP payload's first bytes (DTLS unread)",
    SNAP_ICMP_QUOTE: "an ICMP error's quoted header (its flow unread)",
}
MAX_LAYERS = 16  # headers peeled per frame (each VLAN tag or MPLS label is one): bounded work
#: VXLAN, VXLAN-GPE, Geneve, GTP-U, CAPWAP data, L2TP, GRE-in-UDP (RFC 8086), AYIYA,
#: Teredo (RFC 4380), MPLS-in-UDP (RFC 7510): the ports tshark decodes them on by default
TUNNEL_PORTS = (4789, 4790, 6081, 2152, 5247, 1701, 4754, 5072, 3544, 6635)
_VLAN_TAGS = (0x8100, 0x88A8, 0x9100, 0x9200)
_ETH_MPLS = (0x8847, 0x8848)
_PW_PLAIN = (0x0800, 0x86DD, 0x8100, 0x88A8, 0x0806)
_ETH_BRIDGED = 0x6558  # transparent Ethernet bridging (RFC 1701 protocol type, VXLAN-GPE/Geneve)
_PPP_TO_ETHERTYPE = {0x0021: _ETH_IPV4, 0x0057: _ETH_IPV6}  # 1 or 2 bytes: the same value
_ST_ETH, _ST_ET, _ST_IP, _ST_MPLS, _ST_PPP, _ST_GRE, _ST_GTP_INNER, _ST_WLAN = range(8)
_TUNNEL_PROTOCOLS = (4, 41, 47, 51)  # IP-in-IP, GRE, AH (tunnel mode)
_ST_WLAN_SWAPPED = 8  # CAPWAP's 802.11 frames, frame control bytes swapped as Wireshark reads them
_GRE_ARUBA_WLAN = 0x8200  # Aruba controllers tunnel 802.11 frames in GRE


def _why(kind: int, value: int = 0) -> int:
    return (kind << 32) | value


def _next_proto(code: int) -> tuple[int, int]:
    """VXLAN-GPE and NSH next-protocol codes (RFC 8300 2.3): (state, ethertype) or (-1, 0)."""
    return {
        1: (_ST_ET, _ETH_IPV4),
        2: (_ST_ET, _ETH_IPV6),
        3: (_ST_ETH, 0),
        4: (_ST_ET, 0x894F),
        5: (_ST_MPLS, 0),
    }.get(code, (-1, 0))


def locate(
    b: bytes, linktype: int, passed: list[int] | None = None, *, outermost: bool = False
) -> tuple[int, int, int]:
    """(offset, version, why) of the innermost IP header of one captured frame ``b``.

    ``version`` is 4 or 6 (0 when no IP header was reached); ``why`` is 0 when the packet at
    ``offset`` is what to inspect, else the reason the frame's content was not reached
    (:func:`why_text`), with ``offset``/``version`` the last IP header passed, if any.
    The outermost IP header is returned unchecked (the column decode validates it, as it
    always did); an inner one is entered only through a valid outer header, and a broken
    inner header leaves the outer one with a reason. Every read is bounded by ``len(b)``.
    ``passed`` gets the version of each IP header passed, outermost first: Wireshark's layer
    index of a header is its place among the frame's headers of that version.
    ``outermost``: stop at the first IP header, unchecked (``labkit replay`` rewrites the
    addresses of the packet on the wire, not of what it tunnels).
    """
    n = len(b)
    ip_off = ip_ver = 0
    et = 0
    if linktype == LINKTYPE_ETHERNET:
        st, p = _ST_ETH, 0
    elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if n < 4:
            return 0, 0, _why(WHY_CUT)
        fam = b[3] if linktype == LINKTYPE_LOOP else (b[0] if b[0] != 0 else b[3])
        if fam != 2 and fam not in _AF_INET6:
            return 0, 0, _why(WHY_FAMILY, fam)
        st, p, et = _ST_ET, 4, (_ETH_IPV4 if fam == 2 else _ETH_IPV6)
    elif linktype == LINKTYPE_LINUX_SLL:
        if n < 16:
            return 0, 0, _why(WHY_CUT)
        st, p, et = _ST_ET, 16, (b[14] << 8) | b[15]
    elif linktype == LINKTYPE_LINUX_SLL2:
        if n < 20:
            return 0, 0, _why(WHY_CUT)
        st, p, et = _ST_ET, 20, (b[0] << 8) | b[1]
    elif linktype in RAW_LINKTYPES:
        if n < 1:
            return 0, 0, _why(WHY_CUT)
        v = b[0] >> 4
        if v != 4 and v != 6:
            return 0, 0, _why(WHY_FAMILY, v)
        st, p, et = _ST_ET, 0, (_ETH_IPV4 if v == 4 else _ETH_IPV6)
    elif linktype == LINKTYPE_FDDI:  # frame control and two addresses, then 802.2 LLC
        st, p, et = _ST_ET, 13, 0
    elif linktype == LINKTYPE_PPP or linktype == LINKTYPE_PPP_HDLC:
        st, p = _ST_PPP, 0
    elif linktype == LINKTYPE_C_HDLC:  # address, control, then an EtherType
        if n < 4:
            return 0, 0, _why(WHY_CUT)
        st, p, et = _ST_ET, 4, (b[2] << 8) | b[3]
    elif linktype == LINKTYPE_IEEE802_11:
        st, p = _ST_WLAN, 0
    elif linktype == LINKTYPE_RADIOTAP:  # version 0, little-endian header length
        if n < 4:
            return 0, 0, _why(WHY_CUT)
        st, p = _ST_WLAN, b[2] | (b[3] << 8)
    elif linktype == LINKTYPE_ARCNET_LINUX:  # RFC 1201 (split flag, sequence) or RFC 1051 IP
        if n < 6:
            return 0, 0, _why(WHY_CUT)
        if b[4] == 0xD4:
            st, p, et = _ST_ET, (12 if b[5] == 0xFF else 8), _ETH_IPV4
        elif b[4] == 0xF0:
            st, p, et = _ST_ET, 5, _ETH_IPV4
        else:
            return 0, 0, _why(WHY_ARCNET, b[4])
    elif linktype == LINKTYPE_NFLOG:  # address family, then TLVs; type 9 holds the packet
        p, et = _nflog_payload(b)
        if p < 0:
            return 0, 0, _why(WHY_NFLOG, et)
        st = _ST_ET
    else:
        return 0, 0, _why(WHY_LINKTYPE, linktype)

    def stop(why: int) -> tuple[int, int, int]:
        return ip_off, ip_ver, why

    for _ in range(MAX_LAYERS):
        if st == _ST_ETH:  # a whole Ethernet header at p
            if p + 14 > n:
                return stop(_why(WHY_CUT))
            et, p, st = (b[p + 12] << 8) | b[p + 13], p + 14, _ST_ET
        elif st == _ST_ET:  # EtherType et, its payload at p
            if et == _ETH_IPV4 or et == _ETH_IPV6:
                st = _ST_IP
                continue
            if et in _VLAN_TAGS:  # 802.1Q / 802.1ad, any depth
                if p + 4 > n:
                    return stop(_why(WHY_CUT))
                et, p = (b[p + 2] << 8) | b[p + 3], p + 4
            elif et <= 1500:  # 802.3 length: 802.2 LLC, with SNAP for an EtherType
                if p + 8 > n:
                    return stop(_why(WHY_CUT))
                if b[p] != 0xAA or b[p + 1] != 0xAA or b[p + 2] != 3:
                    return stop(_why(WHY_LLC, (b[p] << 8) | b[p + 1]))
                et, p = (b[p + 6] << 8) | b[p + 7], p + 8
            elif et in _ETH_MPLS:
                st = _ST_MPLS
            elif et == _ETH_PPPOE:  # PPPoE session header (RFC 2516), then PPP
                st, p = _ST_PPP, p + 6
            elif et == 0x88E5:  # MACsec SecTAG (802.1AE 9.3): only unencrypted, unmodified
                if p + 2 > n:
                    return stop(_why(WHY_CUT))
                if b[p] & 0x0C:  # E or C: the user data is encrypted or changed
                    return stop(_why(WHY_MACSEC))
                p += 14 if b[p] & 0x20 else 6  # TCI/AN, SL, PN, and the SCI when SC is set
                if p + 2 > n:
                    return stop(_why(WHY_CUT))
                et, p = (b[p] << 8) | b[p + 1], p + 2
            elif et == 0x894F:  # NSH (RFC 8300 2.2): length in 4-byte words
                if p + 4 > n:
                    return stop(_why(WHY_CUT))
                hlen, code = (b[p + 1] & 0x3F) * 4, b[p + 3]
                st, et = _next_proto(code)
                if st < 0 or hlen < 8:
                    return stop(_why(WHY_NSH, code))
                p += hlen
            elif et == 0x8926 or et == 0x893F:  # VN-Tag (4 bytes), E-Tag (802.1BR, 6 bytes)
                k = 4 if et == 0x8926 else 6
                if p + k + 2 > n:
                    return stop(_why(WHY_CUT))
                et, p = (b[p + k] << 8) | b[p + k + 1], p + k + 2
            elif et == 0x88E7:  # PBB I-Tag (802.1ah): then the customer's addresses
                st, p = _ST_ETH, p + 4
            elif et == _ETH_BRIDGED:
                st = _ST_ETH
            else:
                return stop(_why(WHY_ETHERTYPE, et))
        elif st == _ST_MPLS:  # labels to the bottom of the stack, then the payload's nibble
            if p + 5 > n:
                return stop(_why(WHY_CUT))
            bos, p = b[p + 2] & 1, p + 4
            if bos:
                nib = b[p] >> 4
                if nib == 4 or nib == 6:
                    st, et = _ST_ET, (_ETH_IPV4 if nib == 4 else _ETH_IPV6)
                elif nib == 0:  # an Ethernet pseudowire (RFC 4448): with a control word
                    # unless an IP or VLAN EtherType sits where a plain frame has it
                    plain = p + 14 <= n and ((b[p + 12] << 8) | b[p + 13]) in _PW_PLAIN
                    st, p = _ST_ETH, (p if plain else p + 4)
                else:
                    return stop(_why(WHY_MPLS, nib))
        elif st == _ST_PPP:  # optional HDLC address/control, then a 1- or 2-byte protocol
            if p + 2 > n:
                return stop(_why(WHY_CUT))
            if b[p] == 0xFF and b[p + 1] == 0x03:
                p += 2
                if p + 2 > n:
                    return stop(_why(WHY_CUT))
            if b[p] & 1:  # protocol field compression (RFC 1661 6.5)
                proto, p = b[p], p + 1
            else:
                proto, p = (b[p] << 8) | b[p + 1], p + 2
            if proto == 0x0281:
                st = _ST_MPLS
                continue
            et = _PPP_TO_ETHERTYPE.get(proto, 0)
            if not et:
                return stop(_why(WHY_PPP, proto))
            st = _ST_ET
        elif st == _ST_IP:
            ver = 4 if et == _ETH_IPV4 else 6
            if outermost:
                return p, ver, 0
            hdr = _ip_fields(b, p, ver)
            if hdr is None:
                if ip_ver:  # a broken inner header: inspect the outer packet, say why
                    return stop(_why(WHY_INNER, ver))
                return p, ver, 0
            ip_off, ip_ver = p, ver
            if passed is not None:
                passed.append(ver)
            proto, l4, first = hdr
            if not first:
                return stop(0)
            if proto == 4 or proto == 41:  # IP in IP (RFC 2003, RFC 4213, RFC 2473)
                st, p, et = _ST_ET, l4, (_ETH_IPV4 if proto == 4 else _ETH_IPV6)
            elif proto == 47:
                st, p = _ST_GRE, l4
            elif proto == 51 and ver == 4 and l4 + 2 <= n and (b[l4] == 4 or b[l4] == 41):
                # AH in tunnel mode (RFC 4302 3.1): the protected packet follows it
                st, p = _ST_ET, l4 + (b[l4 + 1] + 2) * 4
                et = _ETH_IPV4 if b[l4] == 4 else _ETH_IPV6
            elif proto == PROTO_UDP and l4 + 8 <= n:
                sport, dport = (b[l4] << 8) | b[l4 + 1], (b[l4 + 2] << 8) | b[l4 + 3]
                st, p, et = _udp_tunnel(b, l4 + 8, sport, dport)
                if st < 0:
                    return stop(0 if st == -1 else _why(WHY_CUT))
            else:
                return stop(0)
        elif st == _ST_GRE:  # RFC 2784/2890; version 1 is PPTP's (RFC 2637 4.1)
            if p + 4 > n:
                return stop(_why(WHY_CUT))
            flags, ptype = (b[p] << 8) | b[p + 1], (b[p + 2] << 8) | b[p + 3]
            gv = flags & 7
            if gv > 1 or flags & 0x4000:  # unknown version, or source routing
                return stop(_why(WHY_GRE, ptype))
            seq = bool(flags & 0x1000)
            p += 4 + 4 * (bool(flags & 0x8000) + bool(flags & 0x2000) + seq)
            if gv == 1:
                p += 4 * bool(flags & 0x0080)  # acknowledgment number
            if ptype == 0x88BE:  # ERSPAN: type II has an 8-byte header (and a sequence number)
                st, p = _ST_ETH, p + (8 if seq else 0)
            elif ptype == 0x22EB:  # ERSPAN type III: 12 bytes, 8 more with the platform word
                if p + 12 > n:
                    return stop(_why(WHY_CUT))
                st, p = _ST_ETH, p + (20 if b[p + 11] & 1 else 12)
            elif ptype == 0x880B:
                st = _ST_PPP
            elif ptype == _GRE_ARUBA_WLAN:
                st = _ST_WLAN
            else:
                st, et = _ST_ET, ptype
        elif st == _ST_GTP_INNER:  # a GTP-U T-PDU or L2TP payload: IP by its version nibble
            if p >= n:
                return stop(_why(WHY_CUT))
            nib = b[p] >> 4
            if nib != 4 and nib != 6:
                return stop(_why(WHY_INNER, nib))
            st, et = _ST_ET, (_ETH_IPV4 if nib == 4 else _ETH_IPV6)
        elif st == _ST_WLAN or st == _ST_WLAN_SWAPPED:  # 802.11 (IEEE 802.11-2020 9.2.4):
            # unprotected data, then LLC
            if p + 24 > n:
                return stop(_why(WHY_CUT))
            fc0, fc1 = (b[p], b[p + 1]) if st == _ST_WLAN else (b[p + 1], b[p])
            if (fc0 >> 2) & 3 != 2 or fc0 & 0x40 or fc1 & 0x40:  # not data, no data, protected
                return stop(_why(WHY_WLAN, (fc0 << 8) | fc1))
            p += 24 + (6 if fc1 & 3 == 3 else 0)
            if fc0 & 0x80:  # QoS data: QoS control, and HT control when "order" is set
                p += 2 + (4 if fc1 & 0x80 else 0)
            st, et = _ST_ET, 0  # 802.2 LLC/SNAP follows
    return stop(_why(WHY_DEPTH))


def _nflog_payload(b: bytes) -> tuple[int, int]:
    """(offset, EtherType) of the packet in an NFLOG record (its TLV type 9), or (-1, family).
    TLV lengths and types are little-endian (the capturing host's order, x86 and ARM alike)."""
    n = len(b)
    if n < 4:
        return -1, 0
    fam = b[0]
    if fam != 2 and fam != 10:
        return -1, fam
    p = 4
    for _ in range(32):
        if p + 4 > n:
            break
        length, kind = b[p] | (b[p + 1] << 8), b[p + 2] | (b[p + 3] << 8)
        if length < 4:
            break
        if kind == 9:
            return p + 4, (_ETH_IPV4 if fam == 2 else _ETH_IPV6)
        p += (length + 3) & ~3
    return -1, fam


def _ip_fields(b: bytes, p: int, ver: int) -> tuple[int, int, bool] | None:
    """(upper protocol, its offset, carries the L4 header) of a valid IP header at ``p``, as
    the column decode reads it (IPv6: at most 4 extension headers), or None."""
    n = len(b)
    if p >= n:
        return None
    if ver == 4:
        if p + 20 > n or b[p] >> 4 != 4 or b[p] & 15 < 5:
            return None
        return b[p + 9], p + (b[p] & 15) * 4, ((b[p + 6] << 8 | b[p + 7]) & 0x1FFF) == 0
    if p + 40 > n or b[p] >> 4 != 6:
        return None
    nh, q, first = b[p + 6], p + 40, True
    for _ in range(4):
        if nh not in _V6_EXT or q + 8 > n:
            break
        if nh == 44:
            first = first and ((b[q + 2] << 8 | b[q + 3]) & 0xFFF8) == 0
            nh, q = b[q], q + 8
        elif nh == 51:
            nh, q = b[q], q + (b[q + 1] + 2) * 4
        else:
            nh, q = b[q], q + (b[q + 1] + 1) * 8
    return nh, q, first and nh not in _V6_EXT


def _teredo(b: bytes, q: int) -> tuple[int, int, int]:
    """What follows the UDP header of a Teredo packet at ``q``: its optional authentication
    (0x0001, with client identifier and authentication value lengths, a nonce and a
    confirmation byte) and origin indication (0x0000, 8 bytes) headers, then IPv6."""
    n = len(b)
    if b[q] == 0 and b[q + 1] == 1:
        q += 4 + b[q + 2] + b[q + 3] + 8 + 1
        if q + 2 > n:
            return -2, 0, 0
    if b[q] == 0 and b[q + 1] == 0:
        q += 8
    if q + 1 > n:
        return -2, 0, 0
    return (_ST_ET, q, _ETH_IPV6) if b[q] >> 4 == 6 else (-1, 0, 0)


def _udp_tunnel(b: bytes, q: int, sport: int, dport: int) -> tuple[int, int, int]:
    """(state, offset, ethertype) of what a UDP tunnel header at ``q`` carries; state -1: not a
    tunnel (plain UDP, inspected as such), -2: a tunnel header cut short."""
    n = len(b)
    port = dport if dport in TUNNEL_PORTS else sport if sport in TUNNEL_PORTS else 0
    if not port:
        return -1, 0, 0
    if q + 8 > n:
        return -2, 0, 0
    f = b[q]
    if port == 4789:  # VXLAN (RFC 7348 5): I flag set, then an Ethernet frame
        return (_ST_ETH, q + 8, 0) if f & 0x08 else (-1, 0, 0)
    if port == 4790:  # VXLAN-GPE: P flag, next protocol in byte 3
        st, et = _next_proto(b[q + 3]) if f & 0x04 else (-1, 0)
        return (st, q + 8, et) if st >= 0 else (-1, 0, 0)
    if port == 6081:  # Geneve (RFC 8926 3.4): version 0, options, protocol type
        if f >> 6:
            return -1, 0, 0
        return _ST_ET, q + 8 + (f & 0x3F) * 4, (b[q + 2] << 8) | b[q + 3]
    if port == 2152:  # GTP-U (3GPP TS 29.281 5.1): version 1, G-PDU, extension headers
        if f >> 5 != 1 or not f & 0x10 or b[q + 1] != 0xFF:
            return -1, 0, 0
        p = q + 8
        if f & 7:
            if p + 4 > n:
                return -2, 0, 0
            nxt, p = (b[q + 11] if f & 4 else 0), p + 4
            for _ in range(MAX_LAYERS):
                if not nxt:
                    break
                if p + 1 > n or b[p] == 0 or p + b[p] * 4 > n:
                    return -2, 0, 0
                nxt, p = b[p + b[p] * 4 - 1], p + b[p] * 4
        return _ST_GTP_INNER, p, 0
    if port == 5247:  # CAPWAP data (RFC 5415 4.3): plain preamble, unfragmented, then an
        # 802.3 frame or, with the T bit and wireless binding 1, an 802.11 frame
        if f != 0 or b[q + 3] & 0x80:
            return -1, 0, 0
        native = b[q + 2] & 1
        if native and (b[q + 2] >> 1) & 0x1F != 1:
            return -1, 0, 0
        return (_ST_WLAN_SWAPPED if native else _ST_ETH), q + (b[q + 1] >> 3) * 4, 0
    if port == 4754:
        return _ST_GRE, q, 0
    if port == 6635:
        return _ST_MPLS, q, 0
    if port == 3544:  # Teredo (RFC 4380 5.1.1): authentication, origin indication, IPv6
        return _teredo(b, q)
    if port == 5072:  # AYIYA: forward opcode, next header IP; identity and signature sizes
        if b[q + 2] & 15 != 1 or b[q + 3] not in (4, 41):
            return -1, 0, 0
        et = _ETH_IPV4 if b[q + 3] == 4 else _ETH_IPV6
        return _ST_ET, q + 8 + (1 << (f >> 4)) + (b[q + 1] >> 4) * 4, et
    # L2TPv2 data (RFC 2661 3.1): not a control message, then PPP
    if f & 0x80 or b[q + 1] & 15 != 2:
        return -1, 0, 0
    p = q + 2 + (2 if f & 0x40 else 0) + 4 + (4 if f & 0x08 else 0)
    if f & 0x02:
        if p + 2 > n:
            return -2, 0, 0
        p += 2 + ((b[p] << 8) | b[p + 1])
    return _ST_PPP, p, 0


_WHY_NAMES = {
    WHY_ETHERTYPE: "EtherType 0x{:04x}",
    WHY_LINKTYPE: "link type {}",
    WHY_PPP: "PPP protocol 0x{:04x}",
    WHY_GRE: "GRE protocol 0x{:04x} (routing or unknown version)",
    WHY_CUT: "headers cut short by the snap length",
    WHY_DEPTH: f"more than {MAX_LAYERS} nested headers",
    WHY_MPLS: "MPLS payload starting with 0x{:x}",
    WHY_LLC: "802.2 LLC 0x{:04x} without SNAP",
    WHY_MACSEC: "MACsec encrypted",
    WHY_NSH: "NSH next protocol {}",
    WHY_INNER: "broken inner IP header (version {})",
    WHY_FAMILY: "address family / IP version {}",
    WHY_WLAN: "802.11 frame control 0x{:04x} (not unprotected data)",
    WHY_ARCNET: "ARCNET protocol 0x{:02x}",
    WHY_NFLOG: "NFLOG record of family {} without a packet",
    WHY_IP_PROTO: "IP protocol {}",
    WHY_DUPLICATE: "duplicate frame",
    WHY_BAD_IP: "malformed or cut IP header",
    WHY_SNAP: "snap length cut {}",
}
_IP_PROTO_NAMES = {
    0: "hop-by-hop options",
    2: "IGMP",
    4: "IPv4-in-IP",
    41: "IPv6-in-IP",
    43: "IPv6 routing header",
    44: "IPv6 fragment header",
    47: "GRE",
    50: "ESP",
    51: "AH",
    59: "no next header",
    60: "IPv6 destination options",
    88: "EIGRP",
    89: "OSPF",
    103: "PIM",
    112: "VRRP",
    132: "SCTP",
}


def why_text(why: int) -> str:
    """How a report names a reason code of :func:`locate` (0: nothing)."""
    kind, value = why >> 32, why & 0xFFFFFFFF
    fmt = _WHY_NAMES.get(kind)
    arg = SNAP_CUT_PARTS.get(value, value) if kind == WHY_SNAP else value
    text = fmt.format(arg) if fmt else f"reason {why}"
    name = _IP_PROTO_NAMES.get(value) if kind == WHY_IP_PROTO else None
    return f"{text} ({name})" if name else text


def decode(
    data: bytes,
    linktype: int,
    frame: int = 0,
    ts: float = 0.0,
    origlen: int | None = None,
    where: tuple[int, int] | None = None,
) -> Packet:
    """Summarize one captured packet. Never raises on short or odd bytes. ``where``: the
    (offset, version) of its innermost IP header when the column decode already found it
    (what :func:`locate` would say), so the link layers are not walked a second time."""
    orig = len(data) if origlen is None else origlen
    off, ver = where if where is not None else locate(data, linktype)[:2]
    if not ver:
        return Packet(frame, ts, orig)
    ip = _ip(data, off, ver)
    if ip is None:
        return Packet(frame, ts, orig)
    src, dst, ip_len, df, proto, l4, first_fragment = ip
    ip_end = off + ip_len
    if not first_fragment:
        return Packet(frame, ts, orig, ver, src, dst, ip_len, df, proto)
    n = len(data)
    if proto == PROTO_TCP and n >= l4 + 20:
        sport, dport, seq, ack, doff_b, flags = _S_TCP.unpack_from(data, l4)
        doff = (doff_b >> 4) * 4
        payload_len = max(0, ip_end - l4 - doff)
        mss = _mss(data, l4 + 20, min(l4 + doff, n)) if flags & TCP_SYN else None
        tls = (
            _tls_hello(data, l4 + doff, min(ip_end, n)) if payload_len >= 6 and doff >= 20 else None
        )
        return Packet(
            frame,
            ts,
            orig,
            ver,
            src,
            dst,
            ip_len,
            df,
            proto,
            sport,
            dport,
            TcpInfo(flags, seq, ack, payload_len, mss),
            None,
            tls,
        )
    if proto == PROTO_UDP and n >= l4 + 8:
        sport, dport = struct.unpack_from("!HH", data, l4)
        return Packet(
            frame,
            ts,
            orig,
            ver,
            src,
            dst,
            ip_len,
            df,
            proto,
            sport,
            dport,
            None,
            max(0, ip_end - l4 - 8),
            None,
            dtls_records(data[l4 + 8 : min(ip_end, n)]),
        )
    if proto in (PROTO_ICMP, PROTO_ICMPV6) and n >= l4 + 8:
        return Packet(
            frame,
            ts,
            orig,
            ver,
            src,
            dst,
            ip_len,
            df,
            proto,
            icmp=_icmp(data, l4, min(ip_end, n), proto, _layer_index(data, linktype, ver)),
        )
    return Packet(frame, ts, orig, ver, src, dst, ip_len, df, proto)


def decode_rows(cols: Columns, rows: np.ndarray) -> list[Packet]:
    """:func:`decode` of each of ``rows`` (indices into the chunk of ``cols``), given where the
    column decode found its innermost IP header: the summaries of the rare packets.

    Compiled (``_columns.summarise``, one call a chunk, no Python per packet) when it was
    built, else :func:`decode` row by row, its reference: a capture made only of handshakes
    spent half its time here, ~13 us a packet in Python."""
    chunk = cols.chunk
    data, caplen = chunk.data[rows], chunk.caplen[rows]
    frames = rows.astype(np.int64) + chunk.frame0
    ts, origlen, lts = chunk.ts[rows], chunk.origlen[rows], chunk.linktype[rows]
    l3, ipver = cols.l3[rows], cols.ipver[rows]
    if _columns is not None:
        return _columns.summarise(
            chunk.buf,
            np.ascontiguousarray(data, np.int64),
            np.ascontiguousarray(caplen, np.int64),
            np.ascontiguousarray(lts, np.int32),
            frames,
            np.ascontiguousarray(ts, np.float64),
            np.ascontiguousarray(origlen, np.int64),
            np.ascontiguousarray(l3, np.int64),
            np.ascontiguousarray(ipver, np.int64),
        )
    buf = chunk.buf
    return [
        decode(buf[d : d + n].tobytes(), lt, f, t, o, (a - d, v))
        for d, n, lt, f, t, o, a, v in zip(
            data.tolist(),
            caplen.tolist(),
            lts.tolist(),
            frames.tolist(),
            ts.tolist(),
            origlen.tolist(),
            l3.tolist(),
            ipver.tolist(),
        )
    ]


def _layer_index(data: bytes, linktype: int, ver: int) -> int:
    """Wireshark's index of a header after the innermost IP header of version ``ver`` among
    the frame's headers of that version (the quote of an ICMP error): walked only for ICMP
    errors, the one place an index is needed."""
    passed: list[int] = []
    locate(data, linktype, passed)
    return passed.count(ver) + 1


def _ip(data: bytes, off: int, ver: int):
    """(src, dst, length, df, upper protocol, L4 offset, carries the L4 header) or None."""
    n = len(data)
    if ver == 4:
        if n < off + 20:
            return None
        vihl, _tos, total, _id, frag, _ttl, proto, _ck, s, d = _S_IP4.unpack_from(data, off)
        ihl = (vihl & 15) * 4
        if vihl >> 4 != 4 or ihl < 20:
            return None
        return (
            socket.inet_ntop(socket.AF_INET, s),
            socket.inet_ntop(socket.AF_INET, d),
            total,
            bool(frag & 0x4000),
            proto,
            off + ihl,
            (frag & 0x1FFF) == 0,
        )
    if n < off + 40 or data[off] >> 4 != 6:
        return None
    plen = _S_H.unpack_from(data, off + 4)[0]
    nh = data[off + 6]
    src = socket.inet_ntop(socket.AF_INET6, data[off + 8 : off + 24])
    dst = socket.inet_ntop(socket.AF_INET6, data[off + 24 : off + 40])
    p, first = off + 40, True
    for _ in range(8):  # bounded: a chain of extension headers
        if nh not in _V6_EXT or n < p + 8:
            break
        if nh == 44:
            first = first and (_S_H.unpack_from(data, p + 2)[0] & 0xFFF8) == 0
            nh, p = data[p], p + 8
        elif nh == 51:
            nh, p = data[p], p + (data[p + 1] + 2) * 4
        else:
            nh, p = data[p], p + (data[p + 1] + 1) * 8
    return src, dst, 40 + plen, True, nh, p, first and nh not in _V6_EXT


def _mss(data: bytes, p: int, end: int) -> int | None:
    """The MSS option (kind 2) among the TCP options in ``data[p:end]`` (RFC 9293 3.2)."""
    for _ in range(40):
        if p >= end:
            return None
        kind = data[p]
        if kind == 0:
            return None
        if kind == 1:
            p += 1
            continue
        if p + 1 >= end:
            return None
        length = data[p + 1]
        if kind == 2 and length == 4 and p + 4 <= end:
            return _S_H.unpack_from(data, p + 2)[0]
        if length < 2:
            return None
        p += length
    return None


def _tls_hello(data: bytes, p: int, end: int) -> TlsHello | None:
    """A ClientHello/ServerHello at ``data[p:end]``, the start of a TCP payload (RFC 8446 4.1,
    RFC 5246 7.4). Offsets, not slices: this runs for every TLS connection of a capture."""
    if end - p < 6 or data[p] != CT_HANDSHAKE or data[p + 1] != 3:
        return None
    hs_type = data[p + 5]
    if hs_type != HS_CLIENT_HELLO and hs_type != HS_SERVER_HELLO:
        return None
    b = p + 9
    if end - b < 35:
        return TlsHello(hs_type, 0, b"")
    version = (data[b] << 8) | data[b + 1]
    sid_len = data[b + 34]
    session_id = data[b + 35 : min(end, b + 35 + sid_len)]
    q = b + 35 + sid_len
    if hs_type == HS_SERVER_HELLO:
        cipher = (data[q] << 8) | data[q + 1] if end >= q + 2 else None
        return TlsHello(hs_type, version, session_id, cipher=cipher)
    return TlsHello(hs_type, version, session_id, sni=_sni(data, q, end))


def _sni(data: bytes, p: int, end: int) -> str | None:
    """server_name (RFC 6066 3) in a ClientHello, from the cipher suites' offset ``p``."""
    if p + 2 > end:
        return None
    p += 2 + ((data[p] << 8) | data[p + 1])  # cipher suites
    if p + 1 > end:
        return None
    p += 1 + data[p]  # compression methods
    if p + 2 > end:
        return None
    ext_end = min(end, p + 2 + ((data[p] << 8) | data[p + 1]))
    p += 2
    for _ in range(64):  # bounded: a hostile hello cannot make this loop long
        if p + 4 > ext_end:
            return None
        etype, elen = (data[p] << 8) | data[p + 1], (data[p + 2] << 8) | data[p + 3]
        if etype == 0 and elen >= 5 and p + 9 <= ext_end:
            name_len = (data[p + 7] << 8) | data[p + 8]
            name = data[p + 9 : p + 9 + name_len]
            return name.decode("ascii", "replace") if len(name) == name_len else None
        p += 4 + elen
    return None


def dtls_records(payload: bytes) -> tuple[DtlsRecord, ...]:
    """The DTLS records of one UDP datagram (RFC 6347 4.1, 4.2.2); () if it is not DTLS."""
    out: list[DtlsRecord] = []
    p = 0
    while len(out) < MAX_DTLS_RECORDS and (h := dtls_header(payload, p)) is not None:
        ctype, version, epoch, length = h.content_type, h.version, h.epoch, h.length
        body = payload[p + 13 : p + 13 + length]
        if ctype == CT_HANDSHAKE and epoch == 0 and len(body) >= 12:
            out.append(_dtls_handshake(ctype, version, epoch, length, body))
        else:
            out.append(DtlsRecord(ctype, version, epoch, length))
        p += 13 + length
    return tuple(out)


def _dtls_handshake(ctype: int, version: int, epoch: int, length: int, body: bytes) -> DtlsRecord:
    hs_type = body[0]
    msg_seq = _S_H.unpack_from(body, 4)[0]
    frag_off = int.from_bytes(body[6:9], "big")
    msg = body[12:]
    sid = cookie = cipher = hello_version = None
    if (
        frag_off == 0
        and hs_type in (HS_CLIENT_HELLO, HS_SERVER_HELLO, HS_HELLO_VERIFY)
        and len(msg) >= 2
    ):
        hello_version = _S_H.unpack_from(msg, 0)[0]
    if frag_off == 0 and hs_type in (HS_CLIENT_HELLO, HS_SERVER_HELLO) and len(msg) >= 35:
        sid_len = msg[34]
        if len(msg) >= 35 + sid_len:
            sid = msg[35 : 35 + sid_len]
            p = 35 + sid_len
            if hs_type == HS_CLIENT_HELLO and len(msg) > p:
                cookie = msg[p]
            elif hs_type == HS_SERVER_HELLO and len(msg) >= p + 2:
                cipher = _S_H.unpack_from(msg, p)[0]
    return DtlsRecord(
        ctype,
        version,
        epoch,
        length,
        hs_type,
        msg_seq,
        frag_off,
        sid,
        cookie,
        cipher,
        hello_version,
    )


def _icmp(data: bytes, l4: int, end: int, proto: int, quote_layer: int) -> IcmpError | None:
    """ICMP errors that quote a packet: v4 type 3/11/12, v6 type 1-4 (RFC 792, 1191, 4443)."""
    itype, code = data[l4], data[l4 + 1]
    if proto == PROTO_ICMP:
        if itype not in (3, 11, 12):
            return None
        mtu = _S_H.unpack_from(data, l4 + 6)[0] if (itype, code) == (3, 4) else None
    else:
        if itype not in (1, 2, 3, 4):
            return None
        mtu = _S_I.unpack_from(data, l4 + 4)[0] if itype == 2 else None
    quote = _quote(data[l4 + 8 : end])
    return IcmpError(proto == PROTO_ICMPV6, itype, code, mtu, quote, quote_layer)


def _quote(q: bytes) -> Quote | None:
    """The quoted original header: its addresses, ports and total length (not a packet)."""
    if not q:
        return None
    ver = q[0] >> 4
    ip = _ip(q, 0, ver) if ver in (4, 6) else None
    if ip is None:
        return None
    src, dst, total, df, proto, l4, first = ip
    sport = dport = None
    if first and proto in (PROTO_TCP, PROTO_UDP) and len(q) >= l4 + 4:
        sport, dport = struct.unpack_from("!HH", q, l4)
    return Quote(ver, src, dst, total, proto, sport, dport, df)


# --- vectorized ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Columns:
    """Per-record columns of one chunk. Rows that are not IP have ``ipver == 0``.

    Offsets are absolute positions in ``chunk.buf``. ``paylen`` is the transport payload length
    from the IP header; ``pcap`` how many payload bytes were captured. ``p0``/``p1``/``p2``/``p5``/
    ``p13`` are payload bytes at those positions (0 when not captured): enough to recognise a
    TLS hello (16 03 xx .. .. 01) and a DTLS record (14-17, version, ... handshake type at 13).
    Addresses are folded into 64-bit hashes: ``src_h``, ``dst_h`` per address.
    """

    chunk: Chunk
    ipver: np.ndarray
    l3: np.ndarray
    iplen: np.ndarray
    df: np.ndarray
    proto: np.ndarray
    first: np.ndarray  # carries the transport header (not a later fragment)
    l4: np.ndarray
    sport: np.ndarray
    dport: np.ndarray
    flags: np.ndarray
    seq: np.ndarray
    ack: np.ndarray
    pay: np.ndarray
    paylen: np.ndarray
    pcap: np.ndarray
    p0: np.ndarray
    p1: np.ndarray
    p2: np.ndarray
    p5: np.ndarray
    p13: np.ndarray
    src_h: np.ndarray
    dst_h: np.ndarray
    src4: np.ndarray  # IPv4 addresses as integers (0 on other rows): names without a decode
    dst4: np.ndarray
    tcp_fwd: np.ndarray  # TCP rows: directed flow hash (:func:`directed`); 0 on other rows
    tcp_rev: np.ndarray  # TCP rows: the reverse direction's flow hash; 0 on other rows
    why: np.ndarray  # :func:`locate`'s reason the frame's content was not reached (0: it was)

    def __len__(self) -> int:
        return len(self.ipver)


_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_V6_MIX = 0x9E3779B97F4A7C15  # an IPv6 address's hash: mix64(mix64(hi) * this + lo)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a cheap, well-spread 64-bit hash of a uint64 column. Worked
    in place on one result and one scratch column: on a column of millions of flows, a new
    array per step was several columns' worth of temporaries (and their page faults)."""
    x = np.asarray(x, np.uint64)
    out = np.right_shift(x, np.uint64(30), out=np.empty_like(x))
    np.bitwise_xor(out, x, out=out)
    tmp = np.empty_like(out)
    for mult, shift in ((_M1, 27), (_M2, 31)):
        np.multiply(out, mult, out=out)
        np.bitwise_xor(out, np.right_shift(out, np.uint64(shift), out=tmp), out=out)
    return out if out.ndim else out[()]  # a scalar stays a scalar


_MASK64 = (1 << 64) - 1


def mix64_int(x: int) -> int:
    """:func:`mix64` of one value, in Python integers: for the rare packets, one at a time,
    a numpy call on a one-element array costs ten times the arithmetic."""
    x ^= x >> 30
    x = (x * int(_M1)) & _MASK64
    x ^= x >> 27
    x = (x * int(_M2)) & _MASK64
    return x ^ (x >> 31)


def directed_int(src_h: int, dst_h: int, sport: int, dport: int) -> int:
    """:func:`directed` of one flow, in Python integers."""
    return mix64_int(src_h ^ mix64_int(dst_h ^ ((sport << 16) | dport)))


def directed(
    src_h: np.ndarray, dst_h: np.ndarray, sport: np.ndarray, dport: np.ndarray
) -> np.ndarray:
    """64-bit hash of a directed 5-tuple's addresses and ports (protocol kept apart by callers)."""
    ports = (sport.astype(np.uint64) << np.uint64(16)) | dport.astype(np.uint64)
    return mix64(src_h ^ mix64(dst_h ^ ports))


def _u8(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return a.take(idx, mode="clip").astype(np.int64)


def _u16(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return (_u8(a, idx) << 8) | _u8(a, idx + 1)


def _link(chunk: Chunk, rows: np.ndarray, linktype: int) -> tuple[np.ndarray, np.ndarray]:
    """(IP header offset relative to the packet start, IP version or 0) for ``rows``."""
    whole = len(rows) == len(chunk)
    w = chunk.win if whole else chunk.win[rows]
    caplen = chunk.caplen if whole else chunk.caplen[rows]
    n = len(rows)
    if linktype in RAW_LINKTYPES:
        ver = (w[:, 0] >> 4).astype(np.int64)
        return np.zeros(n, np.int64), np.where((caplen > 0) & ((ver == 4) | (ver == 6)), ver, 0)
    h16 = w.view(">u2")
    if linktype == LINKTYPE_ETHERNET:
        et = h16[:, 6].astype(np.int64)
        rel = np.full(n, 14, np.int64)
        tag = np.isin(et, _VLAN_TAGS)
        if tag.any():  # 802.1Q / 802.1ad, up to two tags here (more: :func:`locate`)
            et = np.where(tag, h16[:, 8], et)
            rel = np.where(tag, 18, rel)
            tag2 = tag & np.isin(et, _VLAN_TAGS)
            if tag2.any():
                et = np.where(tag2, h16[:, 10], et)
                rel = np.where(tag2, 22, rel)
        pppoe = et == _ETH_PPPOE
        if pppoe.any():  # PPPoE session: 6-byte header, then the PPP protocol (RFC 2516)
            ppp = _at(w, rel + 6, 2).view(">u2")[:, 0]
            et = np.where(
                pppoe, np.where(ppp == 0x21, _ETH_IPV4, np.where(ppp == 0x57, _ETH_IPV6, 0)), et
            )
            rel = np.where(pppoe, rel + 8, rel)
    elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        b0, b3 = w[:, 0].astype(np.int64), w[:, 3].astype(np.int64)
        fam = b3 if linktype == LINKTYPE_LOOP else np.where(b0 != 0, b0, b3)
        et = np.where(fam == 2, _ETH_IPV4, np.where(np.isin(fam, _AF_INET6), _ETH_IPV6, 0))
        rel = np.full(n, 4, np.int64)
    elif linktype == LINKTYPE_LINUX_SLL:
        et, rel = h16[:, 7].astype(np.int64), np.full(n, 16, np.int64)
    elif linktype == LINKTYPE_LINUX_SLL2:
        et, rel = h16[:, 0].astype(np.int64), np.full(n, 20, np.int64)
    else:
        return np.zeros(n, np.int64), np.zeros(n, np.int64)
    ver = np.where(et == _ETH_IPV4, 4, np.where(et == _ETH_IPV6, 6, 0))
    return rel, np.where(rel < caplen, ver, 0)


def _at(
    w: np.ndarray,
    rel: np.ndarray,
    width: int,
    chunk: Chunk | None = None,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """``width`` bytes at per-row offsets ``rel`` into the packet windows ``w``, as (n, width).

    Offsets take few values (14 for Ethernet, 18 with a VLAN tag ...). The most common one is
    a column slice (a view when it is the only one); the other rows are copied per value.
    Bytes beyond the window come from the buffer (``chunk``'s data at ``rows``) when given,
    else read as zero.
    """
    n, win = w.shape
    if not n:
        return np.zeros((0, width), np.uint8)
    v0 = int(np.argmax(np.bincount(np.minimum(rel, 255))))
    other = np.flatnonzero(rel != v0)
    if v0 + width <= win:
        if not len(other):
            return w[:, v0 : v0 + width]
        out = np.ascontiguousarray(w[:, v0 : v0 + width])
    else:
        out = np.zeros((n, width), np.uint8)
        other = np.arange(n)
    ro = rel[other]
    for v in np.unique(ro).tolist():
        sel = other[ro == v]
        if v + width <= win:
            out[sel] = w[sel, v : v + width]
        elif chunk is not None and rows is not None:
            out[sel] = rows_at(chunk.buf, chunk.data[rows[sel]] + v, width)
        else:
            out[sel] = 0
            if v < win:
                out[sel, : win - v] = w[sel, v:]
    return out


_PAYLOAD_PROBE = np.array([0, 1, 2, 5, 13])


#: The integer columns of :class:`Columns` after ``chunk``, in order: ``_columns.c`` writes
#: them as the rows of one (len, n) int64 array.
COLUMN_NAMES = (
    "ipver",
    "l3",
    "iplen",
    "df",
    "proto",
    "first",
    "l4",
    "sport",
    "dport",
    "flags",
    "seq",
    "ack",
    "pay",
    "paylen",
    "pcap",
    "p0",
    "p1",
    "p2",
    "p5",
    "p13",
    "src_h",
    "dst_h",
    "src4",
    "dst4",
    "tcp_fwd",
    "tcp_rev",
    "why",
)
_BOOL_COLUMNS = frozenset({"df", "first"})
_HASH_COLUMNS = frozenset({"src_h", "dst_h", "tcp_fwd", "tcp_rev"})


def columns(chunk: Chunk) -> Columns:
    """Decode every record of ``chunk`` into columns, without a Python loop over packets:
    compiled (``_columns.c``) when it was built, else :func:`py_columns`, its reference."""
    if _columns is None:
        return py_columns(chunk)
    n = len(chunk)
    out = np.empty((len(COLUMN_NAMES), n), np.int64)
    _columns.columns(
        chunk.buf,
        chunk.win,
        np.ascontiguousarray(chunk.data, np.int64),
        np.ascontiguousarray(chunk.caplen, np.int64),
        np.ascontiguousarray(chunk.linktype, np.int32),
        out,
    )
    cols = {
        name: (
            row != 0
            if name in _BOOL_COLUMNS
            else row.view(np.uint64)
            if name in _HASH_COLUMNS
            else row
        )
        for name, row in zip(COLUMN_NAMES, out)
    }
    return Columns(chunk, **cols)


def py_columns(chunk: Chunk) -> Columns:
    """Decode every record of ``chunk`` into columns with numpy: the reference for the compiled
    decode, and the decode where no C compiler was there at install time.

    Fields are read from the packet windows the reader copied with the record headers (one
    memory pass per packet); about 0.25 us a packet. Frames whose link layer is not plain
    Ethernet/VLAN/PPPoE IP, and IP packets that are tunnels, are located again one by one
    with :func:`locate` (rare in most captures), and their columns decoded from the inner IP.
    """
    n = len(chunk)
    lt0 = int(chunk.linktype[0]) if n else 1
    lts = [lt0] if n and (chunk.linktype == lt0).all() else np.unique(chunk.linktype).tolist()
    why = np.zeros(n, np.int64)
    if len(lts) == 1:
        rel3, ver = _link(chunk, np.arange(n), lts[0])
    else:
        rel3 = np.zeros(n, np.int64)
        ver = np.zeros(n, np.int64)
        for lt in lts:
            rows = np.flatnonzero(chunk.linktype == lt)
            rel3[rows], ver[rows] = _link(chunk, rows, int(lt))
    supported = np.isin(chunk.linktype, list(SUPPORTED_LINKTYPES))
    why[~supported] = (WHY_LINKTYPE << 32) | chunk.linktype[~supported].astype(np.int64)
    cols = _from_l3(chunk, rel3, ver, why)
    tunnel = np.isin(cols.proto, _TUNNEL_PROTOCOLS)
    tunnel |= (cols.proto == PROTO_UDP) & (
        np.isin(cols.sport, TUNNEL_PORTS) | np.isin(cols.dport, TUNNEL_PORTS)
    )
    again = np.flatnonzero(supported & ((ver == 0) | (cols.first & tunnel)))
    if not len(again):
        return cols
    for r, d, c, lt in zip(
        again.tolist(),
        chunk.data[again].tolist(),
        chunk.caplen[again].tolist(),
        chunk.linktype[again].tolist(),
    ):
        rel3[r], ver[r], why[r] = locate(chunk.buf[d : d + c].tobytes(), lt)
    return _from_l3(chunk, rel3, ver, why)


def _from_l3(chunk: Chunk, rel3: np.ndarray, ver: np.ndarray, why: np.ndarray) -> Columns:
    """The columns of ``chunk`` given where each row's IP header is (``rel3``, ``ver``)."""
    a = chunk.buf
    n = len(chunk)
    allrows = np.arange(n)
    caplen = chunk.caplen
    w = _at(chunk.win, rel3, 40, chunk, allrows)
    w16, w32 = w.view(">u2"), w.view(">u4")
    b0 = w[:, 0]
    v4 = (ver == 4) & ((b0 >> 4) == 4) & ((b0 & 15) >= 5) & (rel3 + 20 <= caplen)
    v6 = (ver == 6) & ((b0 >> 4) == 6) & (rel3 + 40 <= caplen)
    frag = w16[:, 3]
    iplen = w16[:, 1].astype(np.int64)
    df = v4 & ((frag & 0x4000) != 0)
    first = v4 & ((frag & 0x1FFF) == 0)
    proto = w[:, 9].astype(np.int64)
    rel4 = rel3 + (b0 & 15).astype(np.int64) * 4
    src_h = mix64(w32[:, 3].astype(np.uint64))
    dst_h = mix64(w32[:, 4].astype(np.uint64))
    l3 = chunk.data + rel3
    if v6.any():
        r = np.flatnonzero(v6)
        iplen[r] = 40 + w16[r, 2].astype(np.int64)  # widened: 40 + 65535 must not wrap in uint16
        df[r] = True
        addr = np.ascontiguousarray(w[r, 8:40]).view(">u8").astype(np.uint64)
        k = np.uint64(_V6_MIX)
        src_h[r] = mix64(mix64(addr[:, 0]) * k + addr[:, 1])
        dst_h[r] = mix64(mix64(addr[:, 2]) * k + addr[:, 3])
        # Extension headers (bounded chain), vectorized over the IPv6 rows, from the buffer.
        nh = w[r, 6].astype(np.int64)
        p = l3[r] + 40
        fr = np.ones(len(r), bool)
        er = chunk.data[r] + caplen[r]
        for _ in range(4):
            ext = np.isin(nh, _V6_EXT) & (p + 8 <= er)
            if not ext.any():
                break
            hl = np.where(
                nh == 44, 8, np.where(nh == 51, (_u8(a, p + 1) + 2) * 4, (_u8(a, p + 1) + 1) * 8)
            )
            fr &= ~(ext & (nh == 44) & ((_u16(a, p + 2) & 0xFFF8) != 0))
            nh = np.where(ext, _u8(a, p), nh)
            p = np.where(ext, p + hl, p)
        proto[r] = nh
        rel4[r] = p - chunk.data[r]
        first[r] = fr & ~np.isin(nh, _V6_EXT)
    ip = v4 | v6
    t = _at(chunk.win, rel4, 20, chunk, allrows)
    t16, t32 = t.view(">u2"), t.view(">u4")
    tcp = first & (proto == PROTO_TCP) & (rel4 + 20 <= caplen)
    udp = first & (proto == PROTO_UDP) & (rel4 + 8 <= caplen)
    ports = tcp | udp
    # Columns are widened before np.where: a -1 default must not wrap in a uint16 view.
    sport = np.where(ports, t16[:, 0].astype(np.int64), -1)
    dport = np.where(ports, t16[:, 1].astype(np.int64), -1)
    doff = np.where(tcp, (t[:, 12] >> 4).astype(np.int64) * 4, np.where(udp, 8, 0))
    flags = np.where(tcp, t[:, 13].astype(np.int64), 0)
    seq = np.where(tcp, t32[:, 1].astype(np.int64), 0)
    ack = np.where(tcp, t32[:, 2].astype(np.int64), 0)
    relp = rel4 + doff
    paylen = np.where(ports, np.maximum(0, rel3 + iplen - relp), 0)
    pcap = np.clip(np.minimum(paylen, caplen - relp), 0, None)
    # The payload's first bytes (type and version of a TLS/DTLS record, the handshake type):
    # five bytes per row straight from the windows; rows whose payload starts beyond the
    # window (deep IPv6 extension chains) read the buffer.
    win = chunk.win.shape[1]
    relp_c = np.where(ports, relp, 0)
    deep = relp_c + 14 > win
    pb = np.take_along_axis(chunk.win, np.minimum(relp_c, win - 14)[:, None] + _PAYLOAD_PROBE, 1)
    pb = pb.astype(np.int64)
    if deep.any():
        d = np.flatnonzero(deep)
        pb[d] = rows_at(a, chunk.data[d] + relp_c[d], 14)[:, _PAYLOAD_PROBE]
    p0 = np.where(pcap > 0, pb[:, 0], 0)
    p1 = np.where(pcap > 1, pb[:, 1], 0)
    p2 = np.where(pcap > 2, pb[:, 2], 0)
    p5 = np.where(pcap > 5, pb[:, 3], 0)
    p13 = np.where(pcap > 13, pb[:, 4], 0)
    zero = np.uint64(0)
    return Columns(
        chunk,
        np.where(v4, 4, np.where(v6, 6, 0)),
        l3,
        np.where(ip, iplen, 0),
        df,
        np.where(ip, proto, -1),
        first & ip,
        chunk.data + rel4,
        sport,
        dport,
        flags,
        seq,
        ack,
        chunk.data + relp,
        paylen,
        pcap,
        p0,
        p1,
        p2,
        p5,
        p13,
        src_h,
        dst_h,
        np.where(v4, w32[:, 3], 0).astype(np.int64),
        np.where(v4, w32[:, 4], 0).astype(np.int64),
        np.where(tcp, directed(src_h, dst_h, sport, dport), zero),
        np.where(tcp, directed(dst_h, src_h, dport, sport), zero),
        why,
    )


def ip4_text(value: int) -> str:
    """192.0.2.1 from its integer (the columns keep IPv4 addresses as integers)."""
    return socket.inet_ntoa(value.to_bytes(4, "big"))


def addr_hashes(addresses: Iterable[str]) -> np.ndarray:
    """The column hashes of ``addresses`` (:func:`addr_hash`), sorted and distinct; a text that
    is no address has none."""
    out = set()
    for a in addresses:
        try:
            out.add(addr_hash(a))
        except (OSError, ValueError):
            continue
    return np.array(sorted(out), np.uint64)


def addr_hash(address: str) -> int:
    """The 64-bit hash :func:`columns` gives ``address``: to find an address's rows."""
    if ":" in address:
        raw = socket.inet_pton(socket.AF_INET6, address)
        hi, lo = struct.unpack("!QQ", raw)
        return mix64_int((mix64_int(hi) * _V6_MIX + lo) & _MASK64)
    return mix64_int(struct.unpack("!I", socket.inet_aton(address))[0])


def packed_addresses(
    buf: np.ndarray, l3: np.ndarray, ipver: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The source and destination addresses of the IP headers at offsets ``l3`` of ``buf``,
    packed as the per-flow tables keep them: 16 bytes, IPv4 in the first 4. They are the very
    bytes the decoder prints (its text comes from the header at ``l3``), so
    :func:`packed_text` gives back the decoder's text and :func:`packed_hashes` its hash."""
    v6 = ipver == 6
    out = []
    for at in (np.where(v6, l3 + 8, l3 + 12), np.where(v6, l3 + 24, l3 + 16)):
        raw = buf.take(at[:, None] + np.arange(16), mode="clip")
        raw[~v6, 4:] = 0
        out.append(np.ascontiguousarray(raw).view("V16").reshape(-1))
    return out[0], out[1]


def packed_text(raw: bytes, v6: int | bool) -> str:
    """The address ``raw`` (of :func:`packed_addresses`) holds, as the decoder writes it (what
    inet_ntop writes)."""
    if v6:
        return socket.inet_ntop(socket.AF_INET6, raw)
    return socket.inet_ntop(socket.AF_INET, raw[:4])


def packed_hashes(packed: np.ndarray, v6: np.ndarray) -> np.ndarray:
    """The column hashes (:func:`addr_hash`) of addresses kept packed: 16 bytes each, an IPv4
    address in the first 4 (``v6`` False). A table of millions of pairs keeps its addresses
    so and hashes them when asked: a hash column per address cost 8 bytes a row."""
    raw = np.ascontiguousarray(packed).view(np.uint8).reshape(-1, 16)
    out = mix64(np.ascontiguousarray(raw[:, :4]).view(">u4").reshape(-1).astype(np.uint64))
    if v6.any():
        words = np.ascontiguousarray(raw[v6]).view(">u8").astype(np.uint64)
        out[v6] = mix64(mix64(words[:, 0]) * np.uint64(_V6_MIX) + words[:, 1])
    return out
