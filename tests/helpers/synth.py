"""Synthetic failure captures built with Scapy for the analyzer's tests.

Each builder returns Scapy packets with timestamps; the tests write them with Scapy's writers
(pcap or pcapng) and check the analyzer's findings against what was built, and every finding's
Wireshark filter against tshark. DTLS records are built here with struct (Scapy 2.8 has no
DTLS); TLS hellos with Scapy's TLS layer.
"""

from __future__ import annotations

import struct

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.tls.extensions import ServerName, TLS_Ext_ServerName
from scapy.layers.tls.handshake import TLSClientHello, TLSServerHello
from scapy.layers.tls.record import TLS
from scapy.packet import Packet, Raw

T0 = 1_700_000_000.0
CLIENT, HEADEND = "198.51.100.20", "203.0.113.1"  # outside: client NIC, head-end
POOL, HEADEND_IN, SERVER = "10.8.0.2", "192.0.2.1", "192.0.2.10"  # tunnel/inside


def _eth(p: Packet) -> Packet:
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / p


def _at(p: Packet, t: float) -> Packet:
    p.time = T0 + t
    return p


class TcpFlow:
    """A TCP connection's packets with consistent seq/ack numbers."""

    def __init__(
        self,
        client: str,
        server: str,
        sport: int,
        dport: int,
        c_isn: int = 1000,
        s_isn: int = 50000,
    ) -> None:
        self.c, self.s, self.sport, self.dport = client, server, sport, dport
        self.c_seq, self.s_seq = c_isn, s_isn

    def _pkt(
        self,
        from_client: bool,
        flags: str,
        payload: bytes = b"",
        options=None,
        seq: int | None = None,
        df: bool = True,
        size: int | None = None,
    ) -> Packet:
        src, dst = (self.c, self.s) if from_client else (self.s, self.c)
        sp, dp = (self.sport, self.dport) if from_client else (self.dport, self.sport)
        my = self.c_seq if from_client else self.s_seq
        other = self.s_seq if from_client else self.c_seq
        if size is not None:  # pad the payload so the IP packet is `size` bytes
            payload = payload + b"\x00" * (size - 40 - len(payload))
        tcp = TCP(
            sport=sp,
            dport=dp,
            flags=flags,
            seq=my if seq is None else seq,
            ack=other if "A" in flags else 0,
            window=64000,
            options=options or [],
        )
        return (
            _eth(IP(src=src, dst=dst, flags="DF" if df else 0) / tcp / Raw(payload))
            if payload
            else _eth(IP(src=src, dst=dst, flags="DF" if df else 0) / tcp)
        )

    def handshake(self, t: float, c_mss: int, s_mss: int) -> list[Packet]:
        syn = _at(self._pkt(True, "S", options=[("MSS", c_mss), ("SAckOK", b"")]), t)
        self.c_seq += 1
        synack = _at(self._pkt(False, "SA", options=[("MSS", s_mss)]), t + 0.01)
        self.s_seq += 1
        ack = _at(self._pkt(True, "A"), t + 0.02)
        return [syn, synack, ack]

    def send(
        self,
        t: float,
        from_client: bool,
        payload: bytes = b"",
        size: int | None = None,
        advance: bool = True,
        df: bool = True,
    ) -> Packet:
        p = _at(self._pkt(from_client, "PA", payload, size=size, df=df), t)
        n = len(p[TCP].payload)
        if advance:
            if from_client:
                self.c_seq += n
            else:
                self.s_seq += n
        return p

    def resend(self, t: float, from_client: bool, seq: int, size: int) -> Packet:
        return _at(self._pkt(from_client, "PA", seq=seq, size=size), t)

    def ack(self, t: float, from_client: bool) -> Packet:
        return _at(self._pkt(from_client, "A"), t)


# Hello randoms fixed (Scapy draws them per build), so a synthetic capture, and the fuzz seeds
# made of it, are the same bytes on every run.
def tls_client_hello(sni: str = "vpn.example.com") -> bytes:
    hello = TLSClientHello(
        gmt_unix_time=int(T0),
        random_bytes=b"\x11" * 28,
        ciphers=[0x002F, 0x0035],
        ext=[TLS_Ext_ServerName(servernames=[ServerName(servername=sni.encode())])],
    )
    return bytes(TLS(msg=[hello]))


def tls_server_hello() -> bytes:
    hello = TLSServerHello(gmt_unix_time=int(T0), random_bytes=b"\x22" * 28, cipher=0x002F)
    return bytes(TLS(msg=[hello]))


def dtls_record(ctype: int, version: int, epoch: int, seq: int, body: bytes) -> bytes:
    return (
        struct.pack("!BHH", ctype, version, epoch)
        + seq.to_bytes(6, "big")
        + struct.pack("!H", len(body))
        + body
    )


def dtls_handshake(hs_type: int, msg_seq: int, body: bytes) -> bytes:
    n = len(body).to_bytes(3, "big")
    return bytes([hs_type]) + n + struct.pack("!H", msg_seq) + b"\0\0\0" + n + body


def dtls_client_hello(
    version: int = 0x0100,
    msg_seq: int = 0,
    cookie: bytes = b"",
    session_id: bytes = b"\x11" * 32,
    rec_seq: int = 0,
) -> bytes:
    body = (
        struct.pack("!H", version)
        + b"\x22" * 32
        + bytes([len(session_id)])
        + session_id
        + bytes([len(cookie)])
        + cookie
        + b"\x00\x02\x00\x35"
        + b"\x01\x00"
    )
    return dtls_record(22, version, 0, rec_seq, dtls_handshake(1, msg_seq, body))


def dtls_hello_verify(version: int = 0x0100, cookie: bytes = b"\x33" * 20) -> bytes:
    body = struct.pack("!H", version) + bytes([len(cookie)]) + cookie
    return dtls_record(22, version, 0, 0, dtls_handshake(3, 0, body))


def dtls_server_hello_flight(version: int = 0x0100, session_id: bytes = b"\x11" * 32) -> bytes:
    body = (
        struct.pack("!H", version)
        + b"\x44" * 32
        + bytes([len(session_id)])
        + session_id
        + b"\x00\x35\x00"
    )
    return (
        dtls_record(22, version, 0, 1, dtls_handshake(2, 1, body))
        + dtls_record(20, version, 0, 2, b"\x01")
        + dtls_record(22, version, 1, 0, b"\x55" * 48)
    )


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes, t: float) -> Packet:
    return _at(_eth(IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(payload)), t)


def icmp_frag_needed(router: str, original: Packet, mtu: int, t: float) -> Packet:
    """ICMP 3/4 quoting the original's IP header and 8 bytes of TCP (RFC 792, RFC 1191)."""
    raw = bytes(original[IP])
    quote = raw[: (raw[0] & 15) * 4 + 8]
    ip = original[IP]
    return _at(
        _eth(IP(src=router, dst=ip.src) / ICMP(type=3, code=4, nexthopmtu=mtu) / Raw(quote)), t
    )


# --- scenarios -----------------------------------------------------------------------------


def inside_icmp_ok() -> list[Packet]:
    """Head-end inside: SYN MSS 1378, 1418-byte DF segments, ICMP 3/4 MTU 1347, resent smaller."""
    f = TcpFlow(POOL, SERVER, 40000, 80)
    pkts = f.handshake(0.0, 1378, 1460)
    pkts.append(f.send(0.05, True, b"GET / HTTP/1.1\r\nHost: server\r\n\r\n"))
    pkts.append(f.ack(0.06, False))
    seq0 = f.s_seq
    big = [f.send(0.10 + i * 0.001, False, size=1418) for i in range(3)]
    pkts += big
    pkts += [icmp_frag_needed(HEADEND_IN, b, 1347, 0.1005 + i * 0.001) for i, b in enumerate(big)]
    # The server lowers its size to 1347 and resends the same data.
    seq = seq0
    for i in range(4):
        pkts.append(f.resend(0.2 + i * 0.001, False, seq, 1347))
        seq += 1347 - 40
    f.s_seq = seq
    pkts.append(f.ack(0.25, True))
    return pkts


def inside_black_hole(copies: int = 5, acked_at_the_end: bool = False) -> list[Packet]:
    """No ICMP: the same 1418-byte segment retransmitted with RTO backoff, never acknowledged."""
    f = TcpFlow(POOL, SERVER, 40001, 80)
    pkts = f.handshake(0.0, 1378, 1460)
    pkts.append(f.send(0.05, True, b"GET /big HTTP/1.1\r\n\r\n"))
    pkts.append(f.ack(0.06, False))
    seq0 = f.s_seq
    pkts.append(f.send(0.10, False, size=1418))
    t = 0.10
    for i in range(copies - 1):
        t += 0.2 * 2**i
        pkts.append(f.resend(t, False, seq0, 1418))
    if acked_at_the_end:
        pkts.append(f.ack(t + 0.05, True))
    return pkts


def inside_ordinary_retransmission() -> list[Packet]:
    """A 1418-byte segment lost once, sent again at the same size and acknowledged."""
    f = TcpFlow(POOL, SERVER, 40002, 80)
    pkts = f.handshake(0.0, 1378, 1460)
    pkts.append(f.send(0.05, True, b"GET / HTTP/1.1\r\n\r\n"))
    seq0 = f.s_seq
    pkts.append(f.send(0.10, False, size=1418))
    pkts.append(f.send(0.101, False, size=1418))
    pkts.append(f.resend(0.35, False, seq0, 1418))
    pkts.append(f.ack(0.40, True))
    return pkts


def outside_dtls_blocked(
    port: int = 443, attempts: int = 4, reconnect_after: float = 30.0, answered: bool = False
) -> list[Packet]:
    """TLS tunnel to the head-end, DTLS ClientHellos to `port` unanswered, then a new session."""
    t1 = TcpFlow(CLIENT, HEADEND, 51000, 443)
    pkts = t1.handshake(0.0, 1460, 1380)
    pkts.append(t1.send(0.05, True, tls_client_hello()))
    pkts.append(t1.send(0.08, False, tls_server_hello()))
    pkts.append(t1.send(0.30, True, b"\x17\x03\x03\x00\x40" + b"\x66" * 64))  # CONNECT
    pkts.append(t1.send(0.35, False, b"\x17\x03\x03\x00\x80" + b"\x77" * 128))
    t = 0.5
    for i in range(attempts):
        pkts.append(udp(CLIENT, HEADEND, 52000, port, dtls_client_hello(rec_seq=i), t))
        if answered and i == 0:
            pkts.append(udp(HEADEND, CLIENT, port, 52000, dtls_hello_verify(), t + 0.02))
        t += 1.0 * 2**i
    last = t
    pkts.append(t1.send(last, True, b"\x17\x03\x03\x00\x20" + b"\x88" * 32))
    if reconnect_after:
        t2 = TcpFlow(CLIENT, HEADEND, 51001, 443, c_isn=9000, s_isn=90000)
        start = last + reconnect_after
        pkts += t2.handshake(start, 1460, 1380)
        pkts.append(t2.send(start + 0.05, True, tls_client_hello()))
        pkts.append(t2.send(start + 0.08, False, tls_server_hello()))
    return sorted(pkts, key=lambda p: float(p.time))


def outside_dtls_ok() -> list[Packet]:
    t1 = TcpFlow(CLIENT, HEADEND, 51000, 443)
    pkts = t1.handshake(0.0, 1460, 1380)
    pkts.append(t1.send(0.05, True, tls_client_hello()))
    pkts.append(t1.send(0.08, False, tls_server_hello()))
    pkts.append(udp(CLIENT, HEADEND, 52000, 443, dtls_client_hello(), 0.5))
    pkts.append(udp(HEADEND, CLIENT, 443, 52000, dtls_hello_verify(), 0.52))
    pkts.append(
        udp(
            CLIENT,
            HEADEND,
            52000,
            443,
            dtls_client_hello(msg_seq=1, cookie=b"\x33" * 20, rec_seq=1),
            0.53,
        )
    )
    pkts.append(udp(HEADEND, CLIENT, 443, 52000, dtls_server_hello_flight(), 0.55))
    for i in range(4):
        pkts.append(
            udp(
                CLIENT,
                HEADEND,
                52000,
                443,
                dtls_record(23, 0x0100, 1, 10 + i, b"\x99" * 96),
                0.6 + i / 100,
            )
        )
        pkts.append(
            udp(
                HEADEND,
                CLIENT,
                443,
                52000,
                dtls_record(23, 0x0100, 1, 10 + i, b"\x98" * 96),
                0.605 + i / 100,
            )
        )
    return pkts
