"""Packet builders for the AnyConnect DTLS/TLS MTU failure: pure functions returning Scapy packets.

Each builder returns one IPv4 or IPv6 packet (the family follows the addresses) with every
field a scenario needs settable: addresses, ports, TTL, IP id, TCP seq/ack, TCP timestamps and
the capture time (``pkt.time``). Nothing is random unless the caller passes a seeded
``Random``: the same call builds the same bytes, so generated captures are
reproducible byte for byte. :func:`ether` adds an Ethernet header for files that tools
replay (tcpreplay needs a link layer).

Default sizes come from the MTU model (:mod:`labkit.mtu`, the seed's configuration
``TunnelConfig()``), never from literals: the SYN's MSS is the tunnel MSS (1378), the
oversized packet is the adapter MTU (1418) and the ICMP "fragmentation needed" announces the
TLS MTU (1347).

Default addresses are RFC 5737 documentation prefixes, one per role of the seed's case:
the AnyConnect client's public address and the head-end on the Internet side, the client's
tunnel (pool) address, a server behind the head-end and the head-end's inside interface,
which sends ICMP 3/4 to that server.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from functools import cache
from random import Random

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6PacketTooBig, IPerror6, IPv6
from scapy.layers.l2 import Ether
from scapy.layers.tls.extensions import (
    ServerName,
    TLS_Ext_ServerName,
    TLS_Ext_SignatureAlgorithms,
    TLS_Ext_SupportedGroups,
)
from scapy.layers.tls.handshake import TLSClientHello
from scapy.layers.tls.record import TLS
from scapy.packet import Packet, Raw

from labkit import mtu as mtu_model
from labkit.errors import UsageError
from labkit.layers import (
    CSTP,
    DTLS_PORT,
    DTLSChangeCipherSpec,
    DTLSClientHello,
    DTLSHandshake,
    DTLSHelloVerifyRequest,
    DTLSRecord,
    DTLSServerHello,
)
from labkit.wire import (
    ANYCONNECT_TYPES,
    CT_HANDSHAKE,
    DTLS1_2_VERSION,
    DTLS1_BAD_VER,
    DTLS1_VERSION,
    DTLS_VERSION_NAMES,
    SUITE_CODES,
    TLS_VERSION_CODES,
    parse_dtls_version,
)

# --- defaults ---------------------------------------------------------------------------------

CLIENT = "192.0.2.10"  #: the AnyConnect client's public address
HEADEND = "192.0.2.1"  #: the head-end's outside interface (TLS and DTLS on 443)
TUNNEL_CLIENT = "198.51.100.10"  #: the client's address inside the tunnel (pool)
SERVER = "203.0.113.80"  #: a server behind the head-end
HEADEND_INSIDE = "203.0.113.1"  #: the head-end's inside interface: sends ICMP 3/4 to SERVER
CLIENT6 = "2001:db8::10"  #: IPv6 counterparts (RFC 3849 documentation prefix)
HEADEND6 = "2001:db8::1"
TUNNEL_CLIENT6 = "2001:db8:10::10"
SERVER6 = "2001:db8:80::80"
HEADEND_INSIDE6 = "2001:db8:80::1"
CLIENT_PORT = 50000  #: an ephemeral port
SERVER_PORT = 80  #: the inner server's port (plain data: tshark decodes no TLS on it)
HTTPS_PORT = 443
TTL = 64
EPOCH = 1704067200.0  #: 2024-01-01T00:00:00Z: fixed capture time, so builds are reproducible
CLIENT_MAC = "02:00:00:00:00:0a"  #: locally administered, fixed (RFC 7042 2.1)
PEER_MAC = "02:00:00:00:00:01"
ICMP_QUOTE_LIMIT = 576  #: RFC 1812 4.3.2.3: quote as much as fits in a 576-byte ICMP datagram
ICMP6_QUOTE_LIMIT = mtu_model.MIN_IPV6_MTU  #: RFC 4443 2.4(c): as much as fits the minimum MTU

#: The DTLS versions whose handshakes craft builds (DTLS 1.3's differ: RFC 9147 5.3).
VERSIONS: tuple[int, ...] = (DTLS1_BAD_VER, DTLS1_VERSION, DTLS1_2_VERSION)


@cache
def _model(ipv6: bool = False) -> mtu_model.Prediction:
    """The seed's configuration, the source of every default size here."""
    return mtu_model.predict(mtu_model.TunnelConfig(ipv6=ipv6))


def default_mss(ipv6: bool = False) -> int:
    """The MSS a SYN inside the tunnel carries: adapter MTU - 40 (IPv4) or - 60 (IPv6)."""
    return _model(ipv6).tunnel_mss


def default_size(ipv6: bool = False) -> int:
    """The largest packet the client's adapter sends while DTLS is assumed (1418)."""
    return _model(ipv6).adapter_mtu


def default_icmp_mtu(ipv6: bool = False) -> int:
    """The next-hop MTU the head-end announces in ICMP 3/4: its TLS tunnel MTU (1347)."""
    return _model(ipv6).tls_mtu


# --- helpers ----------------------------------------------------------------------------------


def is_ipv6(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).version == 6
    except ValueError as exc:
        raise UsageError(f"{address!r} is not an IPv4 or IPv6 address") from exc


def _ip(src: str, dst: str, *, ttl: int, ip_id: int, df: bool) -> Packet:
    """An IPv4 or IPv6 header for ``src`` -> ``dst``; both must be the same family."""
    v6 = is_ipv6(src)
    if is_ipv6(dst) != v6:
        raise UsageError(f"source {src} and destination {dst} are not the same IP version")
    if v6:
        return IPv6(src=src, dst=dst, hlim=ttl)
    return IP(src=src, dst=dst, ttl=ttl, id=ip_id, flags="DF" if df else 0)


def _filler(size: int, rng: Random | None) -> bytes:
    """``size`` bytes: zeros, or drawn from the caller's seeded generator."""
    return rng.randbytes(size) if rng is not None else bytes(size)


def _ciphertext(size: int, rng: Random | None) -> bytes:
    """Opaque bytes standing for ciphertext: from ``rng``, else a fixed SHAKE-256 stream.

    Not zeros: dissectors (tshark) try to parse an unknown-key record as plaintext, and
    zeros parse as a run of HelloRequests; ciphertext must look like ciphertext.
    """
    return rng.randbytes(size) if rng is not None else hashlib.shake_256(b"labkit").digest(size)


def _stamp(pkt: Packet, time: float) -> Packet:
    pkt.time = time
    return pkt


def _tcp(
    sport: int,
    dport: int,
    *,
    flags: str,
    seq: int,
    ack: int,
    window: int,
    options: list[tuple[str, object]],
) -> TCP:
    return TCP(
        sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=window, options=options
    )


def _ts(timestamps: tuple[int, int] | None) -> list[tuple[str, object]]:
    """TCP timestamps (RFC 7323), padded to a 4-byte boundary as stacks send them."""
    return [] if timestamps is None else [("NOP", None), ("NOP", None), ("Timestamp", timestamps)]


def suite_code(suite: str | int) -> int:
    """An IANA cipher-suite code from a code or an OpenSSL name the MTU model knows."""
    if isinstance(suite, int):
        return suite
    name = mtu_model.cipher(suite).name
    if name not in SUITE_CODES:
        raise UsageError(
            f"cipher {name!r} has no single IANA code; name one with a key "
            f"exchange, e.g. ECDHE-RSA-{name}"
        )
    return SUITE_CODES[name]


def dtls_version(version: str | int) -> int:
    """0x0100, 0xfeff, 0xfefd from any spelling :func:`labkit.wire.parse_dtls_version` takes
    (``0x0100``, ``1.0``, ``1.2``; ``dtls1.2``, ``0xfefd``), or the code itself."""
    if isinstance(version, int):
        return version
    code = parse_dtls_version(version)
    if code not in VERSIONS:
        names = ", ".join(DTLS_VERSION_NAMES[v] for v in VERSIONS)
        raise UsageError(f"DTLS version {version!r}: expected one of {names}")
    return code


def ether(pkt: Packet, *, src: str = CLIENT_MAC, dst: str = PEER_MAC) -> Packet:
    """``pkt`` in an Ethernet frame (fixed MACs), keeping its capture time."""
    framed: Packet = Ether(src=src, dst=dst) / pkt
    framed.time = pkt.time
    return framed


# --- TCP/IP builders --------------------------------------------------------------------------


def syn(
    src: str = TUNNEL_CLIENT,
    dst: str = SERVER,
    sport: int = CLIENT_PORT,
    dport: int = SERVER_PORT,
    *,
    mss: int | None = None,
    mtu: int | None = None,
    flags: str = "S",
    seq: int = 0,
    ack: int = 0,
    window: int = 64240,
    wscale: int | None = 7,
    sack_ok: bool = True,
    timestamps: tuple[int, int] | None = None,
    ttl: int = TTL,
    ip_id: int = 1,
    time: float = EPOCH,
) -> Packet:
    """A SYN (or SYN-ACK with ``flags="SA"``) announcing ``mss``.

    ``mss`` defaults to the tunnel MSS of the MTU model (1378); ``mtu`` is the sender's
    interface MTU (default: the adapter MTU, 1418) and bounds the MSS at MTU - 40 (- 60 for
    IPv6): a larger MSS cannot come from that interface.
    """
    v6 = is_ipv6(src)
    limit_mtu = default_size(v6) if mtu is None else mtu
    _check_mtu(limit_mtu, v6)
    mss = default_mss(v6) if mss is None else mss
    limit = mtu_model.mss_for_mtu(limit_mtu, v6)
    if not 1 <= mss <= limit:
        raise UsageError(
            f"MSS {mss}: expected 1..{limit} (MTU {limit_mtu} - "
            f"{limit_mtu - limit} bytes of IP and TCP headers)",
            hint="raise --mtu for a larger MSS",
        )
    options: list[tuple[str, object]] = [("MSS", mss)]
    if sack_ok:
        options.append(("SAckOK", b""))
    if timestamps is not None:
        options.append(("Timestamp", timestamps))
    if wscale is not None:
        options += [("NOP", None), ("WScale", wscale)]
    pkt = _ip(src, dst, ttl=ttl, ip_id=ip_id, df=True) / _tcp(
        sport, dport, flags=flags, seq=seq, ack=ack, window=window, options=options
    )
    return _stamp(pkt, time)


def tcp_segment(
    src: str = CLIENT,
    dst: str = HEADEND,
    sport: int = CLIENT_PORT,
    dport: int = HTTPS_PORT,
    payload: bytes = b"",
    *,
    flags: str = "A",
    seq: int = 1,
    ack: int = 1,
    window: int = 502,
    df: bool = True,
    ttl: int = TTL,
    ip_id: int = 1,
    time: float = EPOCH,
) -> Packet:
    """One TCP segment carrying ``payload`` as it is: a piece of a TLS stream, a pure ACK.

    The builders above make the segments whose content matters to the failure; this one
    carries bytes a caller already made (TLS records cut at the MSS by a scenario).
    """
    pkt = _ip(src, dst, ttl=ttl, ip_id=ip_id, df=df) / _tcp(
        sport, dport, flags=flags, seq=seq, ack=ack, window=window, options=[]
    )
    return _stamp(pkt / Raw(payload) if payload else pkt, time)


def _check_mtu(value: int, ipv6: bool) -> None:
    floor = mtu_model.min_mtu(ipv6)
    ceiling = mtu_model.MAX_IP_PACKET
    if not floor <= value <= ceiling:
        kind = "IPv6" if ipv6 else "IPv4"
        raise UsageError(f"MTU {value}: expected {floor}..{ceiling} ({kind} minimum {floor})")


PROTOCOLS = ("tcp", "udp", "icmp")


def oversized(
    src: str = SERVER,
    dst: str = TUNNEL_CLIENT,
    sport: int = SERVER_PORT,
    dport: int = CLIENT_PORT,
    *,
    size: int | None = None,
    proto: str = "tcp",
    df: bool = True,
    flags: str = "A",
    seq: int = 1,
    ack: int = 1,
    window: int = 502,
    timestamps: tuple[int, int] | None = None,
    icmp_id: int = 1,
    icmp_seq: int = 1,
    ttl: int = TTL,
    ip_id: int = 1,
    rng: Random | None = None,
    time: float = EPOCH,
) -> Packet:
    """An IP packet of exactly ``size`` bytes (header included), DF set: TCP, UDP or ICMP echo.

    ``size`` defaults to the adapter MTU (1418): what a host behind a 1418-byte MSS sends,
    and what the head-end cannot put into its 1347-byte TLS tunnel.
    """
    v6 = is_ipv6(src)
    size = default_size(v6) if size is None else size
    if proto not in PROTOCOLS:
        raise UsageError(f"protocol {proto!r}: expected one of {', '.join(PROTOCOLS)}")
    ip = _ip(src, dst, ttl=ttl, ip_id=ip_id, df=df)
    if proto == "tcp":
        l4: Packet = _tcp(
            sport, dport, flags=flags, seq=seq, ack=ack, window=window, options=_ts(timestamps)
        )
    elif proto == "udp":
        l4 = UDP(sport=sport, dport=dport)
    else:
        l4 = (
            ICMPv6EchoRequest(id=icmp_id, seq=icmp_seq)
            if v6
            else ICMP(type="echo-request", id=icmp_id, seq=icmp_seq)
        )
    headers = len(ip / l4)
    # The IPv6 payload length excludes its 40-byte header (RFC 8200 3).
    ceiling = mtu_model.MAX_IP_PACKET + (mtu_model.IPV6_HEADER if v6 else 0)
    if not headers <= size <= ceiling:
        raise UsageError(
            f"size {size}: expected {headers}..{ceiling} "
            f"({headers} bytes of IP and {proto.upper()} headers)"
        )
    pkt = ip / l4 / Raw(_filler(size - headers, rng))
    return _stamp(pkt, time)


def icmp_frag_needed(
    original: Packet,
    mtu: int | None = None,
    *,
    src: str | None = None,
    dst: str | None = None,
    quote: int | None = None,
    ttl: int = 255,
    ip_id: int = 1,
    time: float = EPOCH,
) -> Packet:
    """ICMP "fragmentation needed" (3/4) for ``original``, or ICMPv6 Packet Too Big.

    IPv4 (RFC 792, RFC 1191 section 4): type 3 code 4, 2 unused bytes, the 2-byte next-hop
    MTU, then the original IP header and the start of its payload. RFC 792 asks for at least
    8 bytes of payload; labkit quotes as much as keeps the ICMP datagram within 576 bytes
    (RFC 1812 4.3.2.3, what Linux and most routers do), or ``quote`` bytes of the original.
    IPv6 (RFC 4443 3.2): type 2, a 4-byte MTU, and as much of the original as fits in 1280.

    The sender is a router on the path (default: the head-end's inside interface), the
    destination the original's source. ``mtu`` defaults to the model's TLS MTU (1347).
    """
    orig = original.getlayer(IPv6) or original.getlayer(IP)
    if orig is None:
        raise UsageError("the original packet has no IP header to quote")
    v6 = isinstance(orig, IPv6)
    mtu = default_icmp_mtu(v6) if mtu is None else mtu
    _check_mtu(mtu, v6)
    raw = bytes(orig)
    if v6:  # the header, and the datagram's own length: a capture's link padding is not quoted
        head, total = mtu_model.IPV6_HEADER, mtu_model.IPV6_HEADER + int.from_bytes(raw[4:6], "big")
    else:
        head, total = (raw[0] & 0x0F) * 4, int.from_bytes(raw[2:4], "big")
    raw = raw[:total]
    src = src or (HEADEND_INSIDE6 if v6 else HEADEND_INSIDE)
    dst = dst or orig.src
    outer = _ip(src, dst, ttl=ttl, ip_id=ip_id, df=False)
    if v6:
        limit = ICMP6_QUOTE_LIMIT - mtu_model.IPV6_HEADER - 8
        icmp: Packet = ICMPv6PacketTooBig(mtu=mtu)
    else:
        limit = ICMP_QUOTE_LIMIT - mtu_model.IPV4_HEADER - 8
        icmp = ICMP(type=3, code=4, nexthopmtu=mtu)
    minimum = min(len(raw), head + 8)  # RFC 792: the header and 64 bits of data
    quote = min(len(raw), limit) if quote is None else quote
    if not minimum <= quote <= min(len(raw), limit):
        raise UsageError(
            f"quote {quote} bytes: expected {minimum}..{min(len(raw), limit)} "
            "(the original header plus 8 bytes, up to the RFC limit)"
        )
    quoted = (IPerror6 if v6 else IPerror)(raw[:quote])  # keeps the quoted bytes as they are
    return _stamp(outer / icmp / quoted, time)


# --- DTLS -------------------------------------------------------------------------------------

#: DTLS 1.2 suites AnyConnect offers (X-DTLS12-CipherSuite candidates), strongest first.
DTLS12_SUITES = (
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-GCM-SHA256",
    "AES256-SHA",
    "AES128-SHA",
)


def _ext(ext_type: int, body: bytes) -> bytes:
    return ext_type.to_bytes(2, "big") + len(body).to_bytes(2, "big") + body


def _dtls12_extensions() -> bytes:
    """The extensions an ECDHE suite needs (RFC 8422 5.1, RFC 5246 7.4.1.4.1), raw."""
    groups = b"".join(g.to_bytes(2, "big") for g in (0x001D, 0x0017))  # x25519, secp256r1
    sigalgs = b"".join(a.to_bytes(2, "big") for a in (0x0804, 0x0401, 0x0403))
    return (
        _ext(10, len(groups).to_bytes(2, "big") + groups)  # supported_groups
        + _ext(11, b"\x01\x00")  # ec_point_formats: uncompressed
        + _ext(13, len(sigalgs).to_bytes(2, "big") + sigalgs)
    )  # signature_algorithms


def _udp_dtls(
    src: str, dst: str, sport: int, dport: int, ttl: int, ip_id: int, records: Packet, time: float
) -> Packet:
    pkt = _ip(src, dst, ttl=ttl, ip_id=ip_id, df=False) / UDP(sport=sport, dport=dport) / records
    return _stamp(pkt, time)


def dtls_client_hello(
    src: str = CLIENT,
    dst: str = HEADEND,
    sport: int = CLIENT_PORT,
    dport: int = DTLS_PORT,
    *,
    version: str | int = "0x0100",
    session_id: bytes | None = None,
    cookie: bytes = b"",
    cipher_suites: Sequence[str | int] | None = None,
    extensions: bytes | None = None,
    client_random: bytes | None = None,
    message_seq: int = 0,
    record_seq: int = 0,
    record_version: int | None = None,
    ttl: int = TTL,
    ip_id: int = 1,
    rng: Random | None = None,
    time: float = EPOCH,
) -> Packet:
    """A DTLS ClientHello in one UDP datagram.

    ``version="0x0100"`` is AnyConnect's legacy DTLS: it resumes the session the head-end
    named in X-DTLS-Session-ID, so it carries a 32-byte session id (default: zeros, or drawn
    from ``rng``) and offers the one suite of X-DTLS-CipherSuite (default: the model's
    DTLS cipher, AES128-SHA). Send it again with the HelloVerifyRequest's ``cookie``,
    ``message_seq=1`` and ``record_seq=1``. ``1.0``/``1.2`` offer
    :data:`DTLS12_SUITES` and, for ECDHE, the extensions it needs.
    """
    ver = dtls_version(version)
    legacy = ver == DTLS1_BAD_VER
    if session_id is None:
        session_id = _filler(32, rng) if legacy else b""
    if cipher_suites is None:
        cipher_suites = [mtu_model.DEFAULT_CIPHER] if legacy else list(DTLS12_SUITES)
    if extensions is None and not legacy:
        extensions = _dtls12_extensions()
    _check_opaque("session id", session_id, 32)
    _check_opaque("cookie", cookie, 255)  # RFC 6347 4.2.1: opaque cookie<0..2^8-1>
    hello = DTLSClientHello(
        version=ver,
        random=client_random or _filler(32, rng),
        session_id=session_id,
        cookie=cookie,
        cipher_suites=[suite_code(s) for s in cipher_suites],
        extensions=extensions,
    )
    record = (
        DTLSRecord(version=record_version or ver, sequence_number=record_seq)
        / DTLSHandshake(message_seq=message_seq)
        / hello
    )
    return _udp_dtls(src, dst, sport, dport, ttl, ip_id, record, time)


def _check_opaque(what: str, value: bytes, limit: int) -> None:
    if len(value) > limit:
        raise UsageError(f"{what} of {len(value)} bytes: at most {limit}")


def dtls_hello_verify_request(
    src: str = HEADEND,
    dst: str = CLIENT,
    sport: int = DTLS_PORT,
    dport: int = CLIENT_PORT,
    *,
    cookie: bytes | None = None,
    version: str | int = "0x0100",
    record_seq: int = 0,
    ttl: int = TTL,
    ip_id: int = 1,
    rng: Random | None = None,
    time: float = EPOCH,
) -> Packet:
    """The server's HelloVerifyRequest with a stateless ``cookie`` (default 20 bytes).

    RFC 6347 4.2.1 has the server answer with version DTLS 1.0 whatever it negotiates;
    the legacy head-end answers 0x0100 (anyconnect-vpn.pcap frame 439).
    """
    ver = dtls_version(version)
    hvr_version = DTLS1_BAD_VER if ver == DTLS1_BAD_VER else DTLS1_VERSION
    cookie = _filler(20, rng) if cookie is None else cookie
    _check_opaque("cookie", cookie, 255)
    record = (
        DTLSRecord(version=hvr_version, sequence_number=record_seq)
        / DTLSHandshake(msg_type="hello_verify_request")
        / DTLSHelloVerifyRequest(server_version=hvr_version, cookie=cookie)
    )
    return _udp_dtls(src, dst, sport, dport, ttl, ip_id, record, time)


def dtls_server_hello(
    src: str = HEADEND,
    dst: str = CLIENT,
    sport: int = DTLS_PORT,
    dport: int = CLIENT_PORT,
    *,
    version: str | int = "0x0100",
    session_id: bytes | None = None,
    cipher_suite: str | int | None = None,
    server_random: bytes | None = None,
    message_seq: int = 1,
    record_seq: int = 1,
    resume: bool = True,
    finished: bytes | None = None,
    finished_size: int = 64,
    ttl: int = TTL,
    ip_id: int = 1,
    rng: Random | None = None,
    time: float = EPOCH,
) -> Packet:
    """ServerHello; with ``resume`` also ChangeCipherSpec and the encrypted Finished.

    The legacy AnyConnect resumption puts all three in one datagram (anyconnect-vpn.pcap
    frame 465): ServerHello (epoch 0), ChangeCipherSpec (epoch 0, with the DTLS1_BAD_VER
    message sequence) and Finished under the new keys (epoch 1: the opaque ``finished``
    bytes, else ``finished_size`` bytes that look like ciphertext; 64 is AES-CBC with SHA-1,
    as in that capture).
    """
    ver = dtls_version(version)
    legacy = ver == DTLS1_BAD_VER
    if session_id is None:
        session_id = _filler(32, rng) if legacy else b""
    _check_opaque("session id", session_id, 32)
    suite = suite_code(mtu_model.DEFAULT_CIPHER if cipher_suite is None else cipher_suite)
    records: Packet = (
        DTLSRecord(version=ver, sequence_number=record_seq)
        / DTLSHandshake(msg_type="server_hello", message_seq=message_seq)
        / DTLSServerHello(
            version=ver,
            random=server_random or _filler(32, rng),
            session_id=session_id,
            cipher_suite=suite,
        )
    )
    if resume:
        ccs = (
            DTLSChangeCipherSpec(message_seq=message_seq + 1) if legacy else DTLSChangeCipherSpec()
        )
        records = (
            records
            / DTLSRecord(
                version=ver, content_type="change_cipher_spec", sequence_number=record_seq + 1
            )
            / ccs
            / DTLSRecord(version=ver, epoch=1, sequence_number=0)
            / Raw(finished if finished is not None else _ciphertext(finished_size, rng))
        )
    return _udp_dtls(src, dst, sport, dport, ttl, ip_id, records, time)


def dtls_client_finished(
    src: str = CLIENT,
    dst: str = HEADEND,
    sport: int = CLIENT_PORT,
    dport: int = DTLS_PORT,
    *,
    version: str | int = "0x0100",
    message_seq: int = 2,
    record_seq: int = 2,
    finished: bytes | None = None,
    finished_size: int = 64,
    ttl: int = TTL,
    ip_id: int = 1,
    rng: Random | None = None,
    time: float = EPOCH,
) -> Packet:
    """The client's ChangeCipherSpec and encrypted Finished that end a resumption.

    After the server's ServerHello, ChangeCipherSpec and Finished, the client answers with
    its own two records in one datagram (anyconnect-vpn.pcap frame 466: a 3-byte legacy
    ChangeCipherSpec, then 64 bytes of Finished under epoch 1).
    """
    ver = dtls_version(version)
    ccs = (
        DTLSChangeCipherSpec(message_seq=message_seq)
        if ver == DTLS1_BAD_VER
        else DTLSChangeCipherSpec()
    )
    records = (
        DTLSRecord(version=ver, content_type="change_cipher_spec", sequence_number=record_seq)
        / ccs
        / DTLSRecord(version=ver, epoch=1, sequence_number=0)
        / Raw(finished if finished is not None else _ciphertext(finished_size, rng))
    )
    return _udp_dtls(src, dst, sport, dport, ttl, ip_id, records, time)


def dtls_application_data(
    src: str = CLIENT,
    dst: str = HEADEND,
    sport: int = CLIENT_PORT,
    dport: int = DTLS_PORT,
    *,
    length: int,
    version: str | int = "0x0100",
    epoch: int = 1,
    record_seq: int = 1,
    ttl: int = TTL,
    ip_id: int = 1,
    rng: Random | None = None,
    time: float = EPOCH,
) -> Packet:
    """One DTLS application-data record of ``length`` opaque bytes: a tunnelled packet.

    The caller sizes ``length`` for what the record protects (``mtu.record_length`` of the
    1-byte AnyConnect header plus the IP packet); the bytes look like ciphertext.
    """
    if not 0 <= length <= 0xFFFF:
        raise UsageError(f"DTLS record length {length}: expected 0..65535")
    record = DTLSRecord(
        version=dtls_version(version),
        content_type="application_data",
        epoch=epoch,
        sequence_number=record_seq,
    ) / Raw(_ciphertext(length, rng))
    return _udp_dtls(src, dst, sport, dport, ttl, ip_id, record, time)


# --- TLS and CSTP on TCP ----------------------------------------------------------------------


def tls_client_hello(
    src: str = CLIENT,
    dst: str = HEADEND,
    sport: int = CLIENT_PORT,
    dport: int = HTTPS_PORT,
    *,
    sni: str | None = None,
    cipher_suites: Sequence[str | int] | None = None,
    seq: int = 1,
    ack: int = 1,
    window: int = 502,
    timestamps: tuple[int, int] | None = None,
    ttl: int = TTL,
    ip_id: int = 1,
    rng: Random | None = None,
    time: float = EPOCH,
) -> Packet:
    """A TLS 1.2 ClientHello in one TCP segment (Scapy's TLS layers), with SNI if given.

    The hello that opens AnyConnect's parent tunnel and CSTP tunnel on TCP 443.
    ``gmt_unix_time`` and the random are zeros or from ``rng`` so the bytes are fixed. The
    packet comes back dissected (as read from a file), so its summary names the endpoints.
    """
    suites = DTLS12_SUITES if cipher_suites is None else cipher_suites
    extensions: list[Packet] = []
    if sni is not None:
        try:
            name = sni.encode("idna")
        except UnicodeError as exc:
            raise UsageError(f"SNI {sni!r} is not a valid host name") from exc
        extensions.append(TLS_Ext_ServerName(servernames=[ServerName(servername=name)]))
    extensions += [
        TLS_Ext_SupportedGroups(groups=["x25519", "secp256r1"]),
        TLS_Ext_SignatureAlgorithms(sig_algs=["sha256+rsaepss", "sha256+rsa", "sha256+ecdsa"]),
    ]
    rnd = _filler(32, rng)
    hello = TLSClientHello(
        version=TLS_VERSION_CODES["1.2"],
        gmt_unix_time=int.from_bytes(rnd[:4], "big"),
        random_bytes=rnd[4:],
        sid=b"",
        ciphers=[suite_code(s) for s in suites],
        comp=[0],
        ext=extensions,
    )
    pkt = (
        _ip(src, dst, ttl=ttl, ip_id=ip_id, df=True)
        / _tcp(sport, dport, flags="PA", seq=seq, ack=ack, window=window, options=_ts(timestamps))
        / TLS(type=CT_HANDSHAKE, version=TLS_VERSION_CODES["1.0"], msg=[hello])
    )
    # Scapy's TLS summary needs the session a dissection builds; hand back that view.
    return _stamp(pkt.__class__(bytes(pkt)), time)


def cstp_type(value: str | int) -> int:
    """A CSTP/AnyConnect packet type from its number or name (DATA, DPD-REQ, ...)."""
    if isinstance(value, int) or value.isdigit():
        code = int(value)
        if code in ANYCONNECT_TYPES:
            return code
    else:
        by_name = {name: code for code, name in ANYCONNECT_TYPES.items()}
        code = by_name.get(value.upper().replace("_", "-"), -1)
        if code >= 0:
            return code
    raise UsageError(
        f"CSTP type {value!r}: expected one of "
        + ", ".join(f"{n} ({c})" for c, n in ANYCONNECT_TYPES.items())
    )


def cstp(
    type: str | int = "DATA",
    payload: bytes | Packet | None = None,
    *,  # noqa: A002
    src: str = CLIENT,
    dst: str = HEADEND,
    sport: int = CLIENT_PORT,
    dport: int = HTTPS_PORT,
    seq: int = 1,
    ack: int = 1,
    window: int = 502,
    timestamps: tuple[int, int] | None = None,
    ttl: int = TTL,
    ip_id: int = 1,
    time: float = EPOCH,
) -> Packet:
    """A CSTP packet as the payload of one TCP segment, in clear.

    In a real tunnel CSTP travels inside TLS application data and nobody sees it without
    the keys; a cleartext one is for lab and dissector tests (and is what labkit's
    decryption path yields). A DATA packet without ``payload`` carries a 28-byte ICMP echo
    from the tunnel client to the server, so it holds a real inner packet.
    """
    code = cstp_type(type)
    if payload is None:
        payload = IP(src=TUNNEL_CLIENT, dst=SERVER, id=1) / ICMP(id=1, seq=1) if code == 0 else b""
    body = payload if isinstance(payload, Packet) else Raw(payload) if payload else None
    if body is not None and len(body) > 0xFFFF:
        raise UsageError(f"CSTP payload of {len(body)} bytes: at most 65535")
    frame = CSTP(type=code) / body if body is not None else CSTP(type=code)
    pkt = (
        _ip(src, dst, ttl=ttl, ip_id=ip_id, df=True)
        / _tcp(sport, dport, flags="PA", seq=seq, ack=ack, window=window, options=_ts(timestamps))
        / frame
    )
    return _stamp(pkt, time)


__all__ = [
    "CLIENT",
    "CLIENT6",
    "CLIENT_PORT",
    "DTLS12_SUITES",
    "DTLS_PORT",
    "EPOCH",
    "HEADEND",
    "HEADEND6",
    "HEADEND_INSIDE",
    "HEADEND_INSIDE6",
    "HTTPS_PORT",
    "PROTOCOLS",
    "SERVER",
    "SERVER6",
    "SERVER_PORT",
    "TUNNEL_CLIENT",
    "TUNNEL_CLIENT6",
    "VERSIONS",
    "cstp",
    "cstp_type",
    "default_icmp_mtu",
    "default_mss",
    "default_size",
    "dtls_application_data",
    "dtls_client_finished",
    "dtls_client_hello",
    "dtls_hello_verify_request",
    "dtls_server_hello",
    "dtls_version",
    "ether",
    "icmp_frag_needed",
    "is_ipv6",
    "oversized",
    "suite_code",
    "syn",
    "tcp_segment",
    "tls_client_hello",
]
