"""Conversation models for the benchmark capture, each a generator of time-ordered packets.

The capture mixes what a lab engineer gets from a customer: the AnyConnect outer sessions
(TLS to the head-end, DTLS hellos that are answered or not), downloads inside the tunnel
(SYN MSS 1378, 1418-byte DF segments, ICMP 3/4 with MTU 1347 from the head-end, PMTUD black
holes), ordinary HTTPS, DNS and ARP noise, some of it on 802.1Q VLANs. Timing follows one
capture point next to the servers: a server's packet appears when sent, the client's
answer one round trip later.

Every packet carries the ground-truth *tags* it contributes (see :class:`Truth`), decided
by the model that made it, never by parsing the bytes back: the benchmark then checks
labkit and tshark against facts that neither of them produced.
"""

from __future__ import annotations

import heapq
import random
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from benchmarks.wire import Host, Leg, Payload, arp
from labkit.mtu import dtls_mtu, mss_for_mtu, tls_mtu_asa

ADAPTER_MTU = dtls_mtu()  # 1418: the client's adapter while DTLS is assumed
TUNNEL_MSS = mss_for_mtu(ADAPTER_MTU)  # 1378: what SYNs inside the tunnel carry
TUNNEL_MTU = tls_mtu_asa()  # 1347: what the TLS tunnel carries (ICMP next-hop MTU)

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MS = 1000  # timestamps are integer microseconds
SEC = 1_000_000

Tags = tuple[tuple, ...]
FLOW = ("flow",)  # the tag of a packet that opens a TCP or UDP 5-tuple


class Pkt(NamedTuple):
    ts: int
    frame: bytes
    tags: Tags = ()


@dataclass
class Truth:
    """What the generator wrote, counted from the tags of the packets that reached the file.

    Definitions (the runner compares tshark and labkit against these):
    * ``syn_mss``: pure SYNs (SYN without ACK) by MSS option; ``synack_mss`` likewise.
    * ``icmp_frag_needed_mtu``: ICMP type 3 code 4 by next-hop MTU.
    * ``df_over_tunnel_mtu``: IPv4 packets with DF whose total length exceeds the tunnel
      MTU, not counting ICMP errors (nor the headers they quote);
      ``df_over_tunnel_mtu_not_headend``: the same without the outer TLS connections to the
      head-end (whose segments are not inner packets).
    * ``dtls_client_hellos``: datagrams holding a DTLS ClientHello; ``dtls_flows``: UDP
      flows (client address and port, server address and port) with one;
      ``dtls_flows_answered``: those where the server sent a DTLS record back.
    * ``tls_client_hellos``: TCP segments holding a TLS ClientHello.
    * ``blackhole_flows``: downloads whose first dropped big segment went out three times
      (the original and two retransmissions after timeouts) with no ICMP and no ACK.
    * ``flows``: TCP and UDP 5-tuples opened (counted at their first packet): what per-flow
      state grows with.
    * ``retransmissions``: TCP segments with payload whose first sequence number lies
      below the highest sequence number already sent in that direction, i.e. bytes sent
      again, whatever the reason (timeout, fast retransmit, or re-segmentation after an
      ICMP 3/4). tshark calls some of these out-of-order (sent again within the first
      round trip of the previous new segment).
    """

    syn_mss: Counter = field(default_factory=Counter)
    synack_mss: Counter = field(default_factory=Counter)
    icmp_frag_needed_mtu: Counter = field(default_factory=Counter)
    df_over_by_size: Counter = field(default_factory=Counter)
    dtls_client_hellos: Counter = field(default_factory=Counter)  # by version
    dtls_flows: dict = field(default_factory=dict)  # flow key -> version
    dtls_answered: set = field(default_factory=set)
    df_over_outer: int = 0  # of which to or from the head-end (the outer tunnel's segments)
    tls_client_hellos: int = 0
    retransmissions: int = 0
    blackhole_flows: int = 0  # its big segment sent three times (two timeouts), unanswered
    flows: int = 0  # TCP and UDP 5-tuples opened (their first packet was written)

    def add(self, tags: Tags) -> None:
        for tag in tags:
            kind = tag[0]
            if kind == "df":
                self.df_over_by_size[tag[1]] += 1
                self.df_over_outer += tag[2]
            elif kind == "rtx":
                self.retransmissions += 1
            elif kind == "syn":
                self.syn_mss[tag[1]] += 1
            elif kind == "synack":
                self.synack_mss[tag[1]] += 1
            elif kind == "icmp34":
                self.icmp_frag_needed_mtu[tag[1]] += 1
            elif kind == "tls_ch":
                self.tls_client_hellos += 1
            elif kind == "dtls_ch":
                self.dtls_client_hellos[tag[1]] += 1
                self.dtls_flows.setdefault(tag[2], tag[1])
            elif kind == "dtls_reply":
                self.dtls_answered.add(tag[1])
            elif kind == "blackhole":
                self.blackhole_flows += 1
            elif kind == "flow":
                self.flows += 1

    def to_json(self) -> dict[str, object]:
        answered = self.dtls_answered & self.dtls_flows.keys()
        return {
            "syn_mss": _keyed(self.syn_mss),
            "synack_mss": _keyed(self.synack_mss),
            "icmp_frag_needed_mtu": _keyed(self.icmp_frag_needed_mtu),
            "df_over_tunnel_mtu": sum(self.df_over_by_size.values()),
            "df_over_tunnel_mtu_by_size": _keyed(self.df_over_by_size),
            "df_over_tunnel_mtu_not_headend": sum(self.df_over_by_size.values())
            - self.df_over_outer,
            "dtls_client_hellos": sum(self.dtls_client_hellos.values()),
            "dtls_client_hellos_by_version": dict(sorted(self.dtls_client_hellos.items())),
            "dtls_flows": len(self.dtls_flows),
            "dtls_flows_answered": len(answered),
            "dtls_flows_unanswered": len(self.dtls_flows) - len(answered),
            "tls_client_hellos": self.tls_client_hellos,
            "retransmissions": self.retransmissions,
            "blackhole_flows": self.blackhole_flows,
            "flows": self.flows,
        }


def _keyed(counter: Counter) -> dict[str, int]:
    return {str(k): v for k, v in sorted(counter.items())}


class Context:
    """The seeded randomness, the random-bytes pool and the payload cache all models share."""

    def __init__(self, seed: int, tunnel_mtu: int = TUNNEL_MTU) -> None:
        self.rng = random.Random(seed)
        self.tunnel_mtu = tunnel_mtu
        self.pool = self.rng.randbytes(1 << 20)  # stands in for ciphertext
        self._payloads: dict[tuple[int, int], Payload] = {}
        self._hosts = 0
        self._endpoints = 0

    def ciphertext(self, n: int) -> bytes:
        at = self.rng.randrange(len(self.pool) - n)
        return self.pool[at : at + n]

    def app_data(self, n: int) -> Payload:
        """A TLS 1.2 application-data record exactly ``n`` bytes long (header included).

        One record per segment, as servers with dynamic record sizing send them; 64
        variants per size are built once and reused, with their checksum sums.
        """
        key = (n, self.rng.randrange(64))
        found = self._payloads.get(key)
        if found is None:
            body = self.pool[key[1] * 4099 : key[1] * 4099 + n - 5]
            found = self._payloads[key] = Payload.of(
                b"\x17\x03\x03" + (n - 5).to_bytes(2, "big") + body
            )
        return found

    def host(self, a: int, b: int) -> Host:
        """A fresh address in a.b.0.0/16, so flows of different conversations never collide."""
        self._hosts += 1
        n = self._hosts % 65024 + 256
        return Host.v4(a, b, n >> 8, n & 0xFF)

    def endpoint(self, a: int) -> tuple[Host, int]:
        """An (address in a.64.0.0/10, port) pair never handed out before: the many-flows mix
        opens millions of 5-tuples, :meth:`host` wraps at 65 k. The address changes first, so
        up to 4 M calls give 4 M hosts (a DTLS flow is counted per client and server pair)."""
        port, host = divmod(self._endpoints, 1 << 22)
        self._endpoints += 1
        return Host.v4(a, 64 + (host >> 16), (host >> 8) & 0xFF, host & 0xFF), 1024 + port % 64000


EMPTY = Payload(b"", 0)


def syn_options(mss: int, odd: bool = False) -> Payload:
    """MSS, NOP, window scale 7: no timestamps, so a full segment is exactly MSS + 40 bytes.
    ``odd``: NOP and window scale first, as few stacks send them (the MSS is then not where
    a vectorized reader looks)."""
    mss_opt = b"\x02\x04" + mss.to_bytes(2, "big")
    return Payload.of(b"\x01\x03\x03\x07" + mss_opt if odd else mss_opt + b"\x01\x03\x03\x07")


class TcpConn:
    """Sequence state of one TCP connection; tags SYNs, retransmissions and big DF packets."""

    def __init__(
        self,
        ctx: Context,
        client: Host,
        server: Host,
        cport: int,
        sport: int,
        vlan: int | None,
        outer: bool = False,
    ) -> None:
        rng = ctx.rng
        self.ctx = ctx
        self.outer = outer
        self.legs = (
            Leg(client, server, vlan=vlan, ident=rng.randrange(65536)),
            Leg(server, client, vlan=vlan, ident=rng.randrange(65536)),
        )
        self.ports = ((cport, sport), (sport, cport))
        self.nxt = [rng.randrange(1 << 32), rng.randrange(1 << 32)]  # next new byte per side
        self.high = list(self.nxt)  # highest sequence end sent per side, for retransmissions
        self.window = (502, 501)  # scaled by 2**7: about 64 KB

    def segment(
        self,
        side: int,
        flags: int,
        payload: Payload = EMPTY,
        *,
        seq: int | None = None,
        ack: int | None = None,
        options: Payload | None = None,
    ) -> tuple[bytes, Tags]:
        """A segment from ``side`` (0 client, 1 server); ``seq`` set means a resend; ``ack``
        defaults to everything the other side sent."""
        n = len(payload.data)
        if seq is None:
            seq = self.nxt[side]
            self.nxt[side] = (seq + n + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
        if ack is None:
            ack = self.nxt[1 - side] if flags & ACK else 0
        sport, dport = self.ports[side]
        leg = self.legs[side]
        frame = leg.tcp(sport, dport, seq, ack, flags, self.window[side], payload, options)
        tags: list[tuple] = []
        if n:
            end = (seq + n) & 0xFFFFFFFF
            if _seq_lt(seq, self.high[side]):
                tags.append(("rtx",))
            if _seq_lt(self.high[side], end):
                self.high[side] = end
        size = 40 + n + (len(options.data) if options else 0)
        if size > self.ctx.tunnel_mtu:
            tags.append(("df", size, self.outer))
        return frame, tuple(tags)

    def ack_frame(self, side: int, ack: int) -> bytes:
        """A pure ACK from ``side`` acknowledging up to ``ack`` (not the latest byte)."""
        sport, dport = self.ports[side]
        return self.legs[side].tcp(sport, dport, self.nxt[side], ack, ACK, self.window[side], EMPTY)


def _seq_lt(a: int, b: int) -> bool:
    """RFC 1982 serial-number comparison over 32 bits."""
    return a != b and ((b - a) & 0xFFFFFFFF) < 0x80000000


def tls_client_hello(ctx: Context, server_name: str) -> Payload:
    """A TLS 1.2 ClientHello record with SNI, in one segment."""
    sni = server_name.encode()
    ext_sni = (
        b"\x00\x00"
        + (len(sni) + 5).to_bytes(2, "big")
        + (len(sni) + 3).to_bytes(2, "big")
        + b"\x00"
        + len(sni).to_bytes(2, "big")
        + sni
    )
    suites = b"\xc0\x2f\xc0\x30\xc0\x13\xc0\x14\x00\x9c\x00\x9d\x00\x2f\x00\x35"
    body = (
        b"\x03\x03"
        + ctx.ciphertext(32)
        + b"\x00"
        + len(suites).to_bytes(2, "big")
        + suites
        + b"\x01\x00"
        + len(ext_sni).to_bytes(2, "big")
        + ext_sni
    )
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return Payload.of(b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs)


def tls_server_hello(ctx: Context) -> Payload:
    """ServerHello and ServerHelloDone records (no certificate: keeps tshark's parse clean)."""
    body = b"\x03\x03" + ctx.ciphertext(32) + b"\x00" + b"\xc0\x2f" + b"\x00"
    hello = b"\x02" + len(body).to_bytes(3, "big") + body
    done = b"\x0e\x00\x00\x00"
    return Payload.of(
        b"\x16\x03\x03"
        + len(hello).to_bytes(2, "big")
        + hello
        + b"\x16\x03\x03"
        + len(done).to_bytes(2, "big")
        + done
    )


def tls_finished(ctx: Context) -> Payload:
    """ChangeCipherSpec and an encrypted Finished record (its first byte is no handshake type)."""
    return Payload.of(
        b"\x14\x03\x03\x00\x01\x01" + b"\x16\x03\x03\x00\x28\xa5" + ctx.ciphertext(39)
    )


SERVER_NAMES = (
    "intranet.example.com",
    "files.example.com",
    "mail.example.org",
    "wiki.example.net",
    "vpn.example.com",
    "updates.example.com",
)


@dataclass(frozen=True)
class PmtuEvent:
    """A hop on the path that carries at most ``mtu`` bytes: every bigger segment is dropped.

    ``icmp_from`` set: that router answers each drop with ICMP 3/4 (RFC 1191) until the
    server shrinks its segments; None: a black hole, the first big segment is retransmitted
    ``retries`` times with a doubling timeout, never acknowledged.
    """

    mtu: int
    icmp_from: Host | None
    quote: int = 8  # bytes of the original's payload quoted (RFC 792: at least 8)
    retries: int = 5


@dataclass(frozen=True)
class TcpPlan:
    client: Host
    server: Host
    cport: int
    sport: int
    vlan: int | None
    client_mss: int
    server_mss: int
    rtt: int  # µs, client <-> capture point
    gap: int  # µs between the server's segments
    segments: int
    sized: bool  # True: full-sized segments; False: a mix of record sizes (CSTP, HTTPS)
    loss: float = 0.0  # probability that a segment is lost after the capture point
    pmtu: PmtuEvent | None = None
    outer: bool = False  # the outer TLS (CSTP) connection to the head-end


def tls_download(ctx: Context, t0: int, plan: TcpPlan) -> Iterator[Pkt]:
    """A TLS connection: handshake, a request, then the server's data, acknowledged every
    second segment, with the plan's losses (fast retransmit after three duplicate ACKs) and
    PMTU event; ends with FIN, or with the client's RST after a black hole."""
    rng = ctx.rng
    conn = TcpConn(ctx, plan.client, plan.server, plan.cport, plan.sport, plan.vlan, plan.outer)
    rtt, eps = plan.rtt, 40
    frame, tags = conn.segment(0, SYN, options=syn_options(plan.client_mss))
    yield Pkt(t0, frame, tags + (("syn", plan.client_mss), FLOW))
    frame, tags = conn.segment(1, SYN | ACK, options=syn_options(plan.server_mss))
    yield Pkt(t0 + eps, frame, tags + (("synack", plan.server_mss),))
    t = t0 + rtt
    yield Pkt(t, *conn.segment(0, ACK))
    frame, tags = conn.segment(0, PSH | ACK, tls_client_hello(ctx, rng.choice(SERVER_NAMES)))
    yield Pkt(t + 20, frame, tags + (("tls_ch",),))
    yield Pkt(t + 2 * eps, *conn.segment(1, PSH | ACK, tls_server_hello(ctx)))
    t += rtt
    yield Pkt(t, *conn.segment(0, PSH | ACK, tls_finished(ctx)))
    yield Pkt(t + eps, *conn.segment(1, PSH | ACK, tls_finished(ctx)))
    t += rtt
    yield Pkt(t, *conn.segment(0, PSH | ACK, ctx.app_data(rng.randrange(90, 600))))
    yield from _server_data(ctx, conn, plan, t + eps)


def _server_data(ctx: Context, conn: TcpConn, plan: TcpPlan, start: int) -> Iterator[Pkt]:
    """The data phase as a small event simulation: one heap of what the capture sees next."""
    rng = ctx.rng
    rtt = plan.rtt
    size = min(plan.client_mss, plan.server_mss)  # payload of a full segment
    events: list[tuple[int, int, str, object]] = []
    order = 0

    def at(ts: int, kind: str, arg: object = None) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (ts, order, kind, arg))

    sent = 0  # new segments sent
    unacked = 0  # segments the client received since its last ACK
    hole: tuple[int, Payload] | None = None  # lost segment awaiting fast retransmit
    dupacks = 0
    rcv = conn.nxt[1]  # the client's cumulative ACK point
    rcv_high = rcv  # highest sequence end the client holds (above a hole)
    drop_from: int | None = None  # sequence of the first segment the PMTU event dropped
    pmtu = plan.pmtu
    send_token = 0  # bumps to cancel a scheduled "send" when the sender pauses
    window = 8  # segments a black-holed sender still sends before it waits
    rto = max(200 * MS, 2 * rtt)  # Linux: at least 200 ms (TCP_RTO_MIN)
    done = False
    at(start, "send", send_token)
    while events:
        ts, _, kind, arg = heapq.heappop(events)
        if kind == "send":
            if arg != send_token or done:
                continue
            n = size if plan.sized else (size if rng.random() < 0.5 else rng.randrange(60, size))
            payload = ctx.app_data(n)
            seq = conn.nxt[1]
            frame, tags = conn.segment(1, PSH | ACK, payload)
            sent += 1
            dropped = pmtu is not None and n + 40 > pmtu.mtu
            if dropped and drop_from is None:
                drop_from = seq
                if pmtu.icmp_from is None:
                    at(ts + rto, "rto", (seq, payload, 1))
            yield Pkt(ts, frame, tags)
            if dropped and pmtu.icmp_from is None:
                window -= 1  # the sender fills its window (all dropped), then waits
                if window > 0:
                    at(ts + plan.gap, "send", send_token)
                continue
            if dropped:
                eth = len(conn.legs[1].eth)
                at(ts + rtt // 3, "icmp", (frame[eth : eth + 20 + pmtu.quote], drop_from))
            elif hole is None and rng.random() < plan.loss and sent + 10 < plan.segments:
                hole = (seq, payload)
                dupacks = 0
            elif hole is not None:
                rcv_high = conn.nxt[1]
                at(ts + rtt, "ack", rcv)  # out of order at the client: a duplicate ACK
            else:
                rcv = rcv_high = conn.nxt[1]
                unacked += 1
                if unacked >= 2:
                    unacked = 0
                    at(ts + rtt, "ack", rcv)
            at(ts + plan.gap, "send" if sent < plan.segments else "fin", send_token)
        elif kind == "ack":
            yield Pkt(ts, conn.ack_frame(0, arg))
            if hole is not None and arg == hole[0]:
                dupacks += 1
                if dupacks == 3:  # RFC 5681 section 3.2: fast retransmit
                    at(ts + 30, "fastrtx", hole)
        elif kind == "fastrtx":
            if hole is None or hole[0] != arg[0]:
                continue  # already resent on the other path (timeout vs duplicate ACKs)
            seq, payload = arg
            yield Pkt(ts, *conn.segment(1, PSH | ACK, payload, seq=seq))
            hole = None
            rcv = rcv_high
            unacked = 0
            at(ts + rtt, "ack", rcv)
        elif kind == "icmp":
            quoted, first = arg
            leg = Leg(pmtu.icmp_from, plan.server, vlan=plan.vlan, df=False, ttl=255)
            yield Pkt(ts, leg.icmp_frag_needed(pmtu.mtu, quoted), (("icmp34", pmtu.mtu),))
            if size + 40 > pmtu.mtu:
                # The first ICMP: the sender lowers its path MTU and resends everything
                # from the first dropped byte in smaller segments (RFC 1191 section 6.5).
                size = pmtu.mtu - 40
                send_token += 1
                resend = first
                stop = conn.nxt[1]
                t = ts + 30
                while _seq_lt(resend, stop):
                    n = min(size, (stop - resend) & 0xFFFFFFFF)
                    at(t, "piece", (resend, n))
                    resend = (resend + n) & 0xFFFFFFFF
                    t += plan.gap
                at(t, "send" if sent < plan.segments else "fin", send_token)
        elif kind == "piece":
            seq, n = arg
            yield Pkt(ts, *conn.segment(1, PSH | ACK, ctx.app_data(n), seq=seq))
            rcv = rcv_high = (seq + n) & 0xFFFFFFFF
            unacked += 1
            if unacked >= 2:
                unacked = 0
                at(ts + rtt, "ack", rcv)
        elif kind == "rto":
            seq, payload, tries = arg
            frame, tags = conn.segment(1, PSH | ACK, payload, seq=seq)
            # A black hole is evidence once the segment went out three times, unanswered.
            yield Pkt(ts, frame, tags + ((("blackhole",),) if tries == 2 else ()))
            if tries < pmtu.retries:
                at(ts + rto * 2**tries, "rto", (seq, payload, tries + 1))
            else:
                at(ts + 2 * SEC, "rst", None)
        elif kind == "rst":
            yield Pkt(ts, *conn.segment(0, RST | ACK, ack=rcv))  # the client got nothing past rcv
            done = True
            events.clear()
        elif kind == "fin":
            if arg != send_token or done:
                continue
            if hole is not None:  # too few segments after the loss for dupacks: timeout
                at(ts + rto, "fastrtx", hole)
                at(ts + rto + plan.gap, "fin", send_token)
                continue
            yield Pkt(ts, *conn.segment(1, FIN | ACK))
            done = True
            at(ts + rtt, "cfin", None)
        elif kind == "cfin":
            yield Pkt(ts, *conn.segment(0, FIN | ACK))
            yield Pkt(ts + 40, *conn.segment(1, ACK))


_DTLS_RECORD = struct.Struct("!BHHHIH")  # type, version, epoch, sequence (48 bits), length
DTLS_SERVER_VERSION_IN_HVR = {0x0100: 0x0100, 0xFEFF: 0xFEFF, 0xFEFD: 0xFEFF}  # RFC 6347 4.2.1


@dataclass(frozen=True)
class DtlsPlan:
    client: Host
    server: Host
    cport: int
    sport: int
    vlan: int | None
    version: int  # 0x0100 (AnyConnect's DTLS1_BAD_VER), 0xfeff or 0xfefd
    answered: bool
    completed: bool  # the server went on past its HelloVerifyRequest
    attempts: int  # ClientHellos sent when nobody answers
    early_retry: bool  # the first ClientHello is resent before the answer comes
    rtt: int
    records: int  # application-data records after the handshake


class _Dtls:
    """Record layer of one DTLS association: record sequence numbers per side and epoch."""

    def __init__(self, plan: DtlsPlan) -> None:
        self.version = plan.version
        self.legs = (
            Leg(plan.client, plan.server, vlan=plan.vlan, df=False),
            Leg(plan.server, plan.client, vlan=plan.vlan, df=False),
        )
        self.ports = ((plan.cport, plan.sport), (plan.sport, plan.cport))
        self.seq = [0, 0]
        self.epoch = [0, 0]

    def record(self, side: int, ctype: int, body: bytes, version: int | None = None) -> bytes:
        seq = self.seq[side]
        self.seq[side] += 1
        return (
            _DTLS_RECORD.pack(
                ctype,
                version or self.version,
                self.epoch[side],
                seq >> 32,
                seq & 0xFFFFFFFF,
                len(body),
            )
            + body
        )

    def datagram(self, side: int, *records: bytes) -> bytes:
        sport, dport = self.ports[side]
        return self.legs[side].udp(sport, dport, Payload.of(b"".join(records)))


def _handshake(msg_type: int, msg_seq: int, body: bytes) -> bytes:
    n = len(body).to_bytes(3, "big")
    return bytes((msg_type,)) + n + msg_seq.to_bytes(2, "big") + b"\x00\x00\x00" + n + body


def dtls_session(ctx: Context, t0: int, plan: DtlsPlan) -> Iterator[Pkt]:
    """A DTLS attempt to the head-end: ClientHello, then either nothing (retried with
    backoff), or HelloVerifyRequest, ClientHello with the cookie, the server's flight (an
    abbreviated resume for 0x0100, as AnyConnect's X-DTLS-Session-ID asks) and data."""
    rng = ctx.rng
    d = _Dtls(plan)
    key = (plan.client.ip, plan.cport, plan.server.ip, plan.sport)
    name = f"0x{plan.version:04x}"
    session_id = ctx.ciphertext(32)
    client_random = ctx.ciphertext(32)
    suites = b"\x00\x04\x00\x35\x00\x2f" if plan.version == 0x0100 else b"\x00\x04\xc0\x2f\x00\x2f"

    def hello(cookie: bytes, msg_seq: int) -> bytes:
        body = (
            plan.version.to_bytes(2, "big")
            + client_random
            + b"\x20"
            + session_id
            + bytes((len(cookie),))
            + cookie
            + suites
            + b"\x01\x00"
        )
        return d.datagram(0, d.record(0, 22, _handshake(1, msg_seq, body)))

    ch_tag = (("dtls_ch", name, key),)
    first_tag = ch_tag + (FLOW,)
    t = t0
    if not plan.answered:
        for i in range(plan.attempts):
            yield Pkt(t, hello(b"", 0), first_tag if i == 0 else ch_tag)
            t += SEC << i  # 1 s, 2 s, 4 s ...
        return
    if plan.early_retry:
        yield Pkt(t, hello(b"", 0), first_tag)
        t += SEC
    yield Pkt(t, hello(b"", 0), ch_tag if plan.early_retry else first_tag)
    cookie = ctx.ciphertext(20)
    hvr = DTLS_SERVER_VERSION_IN_HVR[plan.version].to_bytes(2, "big") + b"\x14" + cookie
    yield Pkt(
        t + 60,
        d.datagram(
            1, d.record(1, 22, _handshake(3, 0, hvr), DTLS_SERVER_VERSION_IN_HVR[plan.version])
        ),
        (("dtls_reply", key),),
    )
    t += plan.rtt
    if not plan.completed:
        for i in range(plan.attempts):
            yield Pkt(t, hello(cookie, 1), ch_tag)
            t += SEC << i
        return
    yield Pkt(t, hello(cookie, 1), ch_tag)
    resume = plan.version == 0x0100
    sh = (
        plan.version.to_bytes(2, "big")
        + ctx.ciphertext(32)
        + b"\x20"
        + (session_id if resume else ctx.ciphertext(32))
        + b"\x00\x35"
        + b"\x00"
    )
    flight = [d.record(1, 22, _handshake(2, 1, sh))]
    if resume:
        flight.append(d.record(1, 20, b"\x01"))
        d.epoch[1] = 1
        flight.append(d.record(1, 22, b"\xa5" + ctx.ciphertext(63)))
    else:
        flight.append(d.record(1, 22, _handshake(14, 2, b"")))
    yield Pkt(t + 60, d.datagram(1, *flight), (("dtls_reply", key),))
    t += plan.rtt
    d.epoch[0] = 1
    first = d.record(0, 20, b"\x01")
    yield Pkt(t, d.datagram(0, first, d.record(0, 22, b"\xa5" + ctx.ciphertext(63))))
    if not resume:
        d.epoch[1] = 1
        ccs = d.record(1, 20, b"\x01")
        yield Pkt(t + 60, d.datagram(1, ccs, d.record(1, 22, b"\xa5" + ctx.ciphertext(63))))
    t += plan.rtt
    for _ in range(plan.records):
        side = rng.random() < 0.6
        inner = ADAPTER_MTU if rng.random() < 0.3 else rng.randrange(40, ADAPTER_MTU)
        # CBC: explicit IV, then AnyConnect header + packet + SHA1 MAC + padding to 16.
        body = ctx.ciphertext(16 + (inner + 1 + 20 + 1 + 15) // 16 * 16)
        yield Pkt(t, d.datagram(int(side), d.record(int(side), 23, body)))
        t += rng.randrange(200, 5 * MS)


DNS_NAMES = (
    "vpn.example.com",
    "intranet.example.com",
    "files.example.com",
    "time.example.net",
    "mail.example.org",
    "updates.example.com",
    "wiki.example.net",
    "cdn.example.org",
)


def dns_lookup(
    ctx: Context, t0: int, client: Host, resolver: Host, vlan: int | None
) -> Iterator[Pkt]:
    """An A query and its one-answer response on UDP 53."""
    rng = ctx.rng
    qid = rng.randrange(65536)
    cport = rng.randrange(32768, 61000)
    qname = (
        b"".join(bytes((len(p),)) + p for p in rng.choice(DNS_NAMES).encode().split(b".")) + b"\x00"
    )
    question = qname + b"\x00\x01\x00\x01"
    query = qid.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + question
    answer = (
        b"\xc0\x0c\x00\x01\x00\x01"
        + rng.randrange(30, 3600).to_bytes(4, "big")
        + b"\x00\x04"
        + bytes((172, 16, rng.randrange(1, 255), rng.randrange(1, 255)))
    )
    response = (
        qid.to_bytes(2, "big") + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + question + answer
    )
    yield Pkt(
        t0, Leg(client, resolver, vlan=vlan, df=False).udp(cport, 53, Payload.of(query)), (FLOW,)
    )
    back = Leg(resolver, client, vlan=vlan, df=False)
    yield Pkt(t0 + rng.randrange(300, 30 * MS), back.udp(53, cport, Payload.of(response)))


def arp_exchange(
    ctx: Context, t0: int, asker: Host, target: Host, vlan: int | None
) -> Iterator[Pkt]:
    yield Pkt(t0, arp(asker, target, reply=False, vlan=vlan))
    yield Pkt(t0 + ctx.rng.randrange(50, 500), arp(target, asker, reply=True, vlan=vlan))
