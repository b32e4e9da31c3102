"""Turn a scenario's timeline into its three captures, byte for byte the same on every run.

* ``outside.pcapng`` (Ethernet, the client's NIC): each session's TCP connection to the
  head-end, its TLS handshake and protected records cut into segments of the outer MSS, with
  acknowledgements (piggybacked, or a delayed ACK after ``DELACK_US``); the DTLS datagrams.
  Frames carry comments (``frame.comment``) saying what an encrypted record holds.
* ``client-tunnel.pcap`` (raw IP, LINKTYPE_RAW): the inner packets on the client's adapter.
* ``headend-inside.pcap`` (Ethernet, the server's NIC): the inner packets in clear and the
  head-end's ICMP.

Packets come from :mod:`labkit.craft`; nothing is random except through generators seeded by
the scenario's ``seed`` (one per purpose), timestamps are integer microseconds from a fixed
epoch (``--start-time`` moves it) and the files are written by :mod:`labkit.pcapio.writer`.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from random import Random

from scapy.layers.inet import IP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from labkit import craft, mtu
from labkit.errors import OutputError
from labkit.fileio import atomic_output, check_output_path
from labkit.pcapio.writer import Frame, pcap_bytes, pcapng_bytes
from labkit.scenario import tls
from labkit.scenario.events import (
    C2S,
    INSIDE,
    OUTSIDE,
    S2C,
    TUNNEL,
    DtlsDatagram,
    Inner,
    InnerFragment,
    InnerTcp,
    InnerTooBig,
    OuterTcp,
    Seen,
    Timeline,
    TlsMessage,
    build_timeline,
)
from labkit.scenario.numbers import derive
from labkit.scenario.schema import US, Scenario
from labkit.wire import (
    CT_ALERT,
    CT_APPLICATION_DATA,
    DTLS_HANDSHAKE_HEADER_LEN,
    LINKTYPE_ETHERNET,
    LINKTYPE_RAW,
)

FILES: dict[str, str] = {
    OUTSIDE: "outside.pcapng",
    TUNNEL: "client-tunnel.pcap",
    INSIDE: "headend-inside.pcap",
}
EPOCH_US = int(craft.EPOCH) * US  #: 2024-01-01T00:00:00Z, the default start
HEADEND_MTU = mtu.DEFAULT_BASE_MTU  # the head-end's outside NIC
CHUNK_US = 1  # between the TCP segments of one record (the timeline spaces the records)
DELACK_US = 40_000  # Linux's delayed-ACK floor (RFC 1122 4.2.3.2 allows up to 500 ms)
HEADEND_INSIDE_MAC = "02:00:00:00:00:81"
SERVER_MAC = "02:00:00:00:00:50"
PAYLOAD_BLOCK = 4096  # divides 2**32: payload bytes are a function of the sequence number
MASK32 = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Capture:
    point: str
    path: Path
    frames: int


@dataclass(frozen=True, slots=True)
class BuildResult:
    timeline: Timeline
    captures: tuple[Capture, ...]


class _Packets:
    """Scapy packets for the inner observations, the same bytes wherever they are seen."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._block = lru_cache(maxsize=256)(self._make_block)

    def _make_block(self, src: str, sport: int, dport: int, index: int) -> bytes:
        key = f"labkit:{self.seed}:payload:{src}:{sport}:{dport}:{index}"
        return Random(key).randbytes(PAYLOAD_BLOCK)

    def payload(self, src: str, sport: int, dport: int, seq: int, n: int) -> bytes:
        """``n`` opaque stream bytes from ``seq`` on, a function of the sequence number only:
        a retransmission, cut differently or not, carries the same bytes."""
        out = bytearray()
        pos = seq & MASK32
        while len(out) < n:  # bounded: every turn takes at least one byte
            index, offset = divmod(pos, PAYLOAD_BLOCK)
            take = min(PAYLOAD_BLOCK - offset, n - len(out))
            out += self._block(src, sport, dport, index)[offset : offset + take]
            pos = (pos + take) & MASK32
        return bytes(out)

    def tcp(self, p: InnerTcp) -> Packet:
        if p.mss is not None:
            return craft.syn(
                p.src,
                p.dst,
                p.sport,
                p.dport,
                mss=p.mss,
                mtu=mtu.mtu_for_mss(p.mss, p.ipv6),
                flags=p.flags,
                seq=p.seq,
                ack=p.ack,
                window=p.window,
                ip_id=p.ip_id,
            )
        data = self.payload(p.src, p.sport, p.dport, p.seq, p.payload)
        return craft.tcp_segment(
            p.src,
            p.dst,
            p.sport,
            p.dport,
            data,
            flags=p.flags,
            seq=p.seq,
            ack=p.ack,
            window=p.window,
            df=True,
            ip_id=p.ip_id,
        )

    def fragment(self, f: InnerFragment) -> Packet:
        """One RFC 791 fragment: the original's header, DF cleared, MF and the offset set."""
        raw = bytes(self.tcp(f.original))
        o = f.original
        start = mtu.IPV4_HEADER + f.offset
        return IP(
            src=o.src,
            dst=o.dst,
            id=o.ip_id,
            ttl=craft.TTL,
            proto=6,
            flags="MF" if f.more else 0,
            frag=f.offset // 8,
        ) / Raw(raw[start : start + f.length])

    def too_big(self, i: InnerTooBig) -> Packet:
        return craft.icmp_frag_needed(
            self.tcp(i.original), i.mtu, src=i.src, dst=i.dst, ip_id=i.ip_id
        )

    def inner(self, what: Inner) -> Packet:
        if isinstance(what, InnerTcp):
            return self.tcp(what)
        if isinstance(what, InnerFragment):
            return self.fragment(what)
        return self.too_big(what)


@dataclass(frozen=True, slots=True)
class _AckDue:
    """The receiver of ``direction`` owes an ACK for its bytes up to ``end`` (delayed ACK)."""

    session: int
    direction: str
    end: int


@dataclass
class _Conn:
    """One session's TCP connection as the client's NIC sees it (sequence numbers unwrapped)."""

    client_port: int
    isn: dict[str, int]
    next_seq: dict[str, int]
    times: dict[str, list[int]]  # per direction: seen times of data ends ...
    ends: dict[str, list[int]]  # ... and the sequence number after each
    last_ack: dict[str, int]  # per sender direction: the ack value it last sent


class _Outside:
    """Renders the outside observations in time order, with the TCP and DTLS state they need."""

    def __init__(self, timeline: Timeline, packets: _Packets) -> None:
        self.t = timeline
        self.s = timeline.scenario
        self.packets = packets
        self.rtt = 2 * (self.s.path.outside_rtt_us // 2)
        self.client_mss = mtu.mss_for_mtu(self.s.client.base_mtu)
        self.headend_mss = min(self.s.head_end.tcpmss, mtu.mss_for_mtu(HEADEND_MTU))
        self.segment = min(self.client_mss, self.headend_mss)
        self.rng = Random(f"labkit:{self.s.seed}:outside")
        ids = Random(f"labkit:{self.s.seed}:outside-ip-id")
        self.ip_id = {C2S: ids.getrandbits(16), S2C: ids.getrandbits(16)}
        self.conns: dict[int, _Conn] = {}
        self.frames: list[Frame] = []
        self.queue: list[tuple[int, int, Seen | _AckDue]] = []
        self.order = itertools.count()
        dtls_rng = Random(f"labkit:{self.s.seed}:dtls")
        self.dtls_client_random = dtls_rng.randbytes(32)
        self.dtls_server_random = dtls_rng.randbytes(32)
        self.dtls_cookie = dtls_rng.randbytes(20)
        self.dtls_seq = {C2S: 1, S2C: 1}  # epoch 1: the Finished took sequence number 0

    # helpers --------------------------------------------------------------------------------

    def next_id(self, direction: str) -> int:
        self.ip_id[direction] = (self.ip_id[direction] + 1) & 0xFFFF
        return self.ip_id[direction]

    def ends(self, direction: str) -> tuple[str, str, str, str]:
        h = self.s.hosts
        if direction == C2S:
            return h.client_outside, h.head_end_outside, craft.CLIENT_MAC, craft.PEER_MAC
        return h.head_end_outside, h.client_outside, craft.PEER_MAC, craft.CLIENT_MAC

    def emit(self, time_us: int, direction: str, pkt: Packet, comment: str = "") -> None:
        _, _, src_mac, dst_mac = self.ends(direction)
        data = bytes(Ether(src=src_mac, dst=dst_mac) / pkt)
        self.frames.append(Frame(time_us, data, comment))

    def conn(self, session: int) -> _Conn:
        if session not in self.conns:
            r = Random(f"labkit:{self.s.seed}:isn:{session}")
            isn = {C2S: r.getrandbits(32), S2C: r.getrandbits(32)}
            self.conns[session] = _Conn(
                self.t.sessions[session].client_port,
                isn,
                dict(isn),
                {C2S: [], S2C: []},
                {C2S: [], S2C: []},
                {C2S: 0, S2C: 0},
            )
        return self.conns[session]

    def ack_value(self, c: _Conn, direction: str, time_us: int) -> int:
        """What the sender in ``direction`` has received of the other direction by then."""
        other = S2C if direction == C2S else C2S
        horizon = time_us if direction == C2S else time_us - self.rtt
        k = bisect.bisect_right(c.times[other], horizon)
        return c.ends[other][k - 1] if k else 0

    def segment_out(
        self,
        session: int,
        direction: str,
        time_us: int,
        flags: str,
        payload: bytes = b"",
        comment: str = "",
        consume: int = 0,
    ) -> None:
        c = self.conn(session)
        src, dst, _, _ = self.ends(direction)
        sport, dport = (
            (c.client_port, craft.HTTPS_PORT)
            if direction == C2S
            else (craft.HTTPS_PORT, c.client_port)
        )
        seq = c.next_seq[direction]
        ack = self.ack_value(c, direction, time_us)
        if "A" in flags:
            c.last_ack[direction] = ack
        pkt = craft.tcp_segment(
            src,
            dst,
            sport,
            dport,
            payload,
            flags=flags,
            seq=seq & MASK32,
            ack=ack & MASK32,
            window=502 if direction == C2S else 509,
            ip_id=self.next_id(direction),
        )
        self.emit(time_us, direction, pkt, comment)
        advance = len(payload) + consume
        if advance:
            c.next_seq[direction] = seq + advance
            c.times[direction].append(time_us)
            c.ends[direction].append(seq + advance)

    def stream(self, session: int, direction: str, time_us: int, data: bytes, comment: str) -> None:
        """``data`` in segments of the outer MSS, back to back; then the receiver's ACK duty."""
        chunks = [data[i : i + self.segment] for i in range(0, len(data), self.segment)]
        for k, chunk in enumerate(chunks):
            last = k == len(chunks) - 1
            self.segment_out(
                session,
                direction,
                time_us + k * CHUNK_US,
                "PA" if last else "A",
                chunk,
                comment if k == 0 else "",
            )
        end = self.conn(session).next_seq[direction]
        arrival = time_us + (len(chunks) - 1) * CHUNK_US
        deadline = arrival + DELACK_US + (0 if direction == S2C else self.rtt)
        self.push(deadline, _AckDue(session, S2C if direction == C2S else C2S, end))

    def push(self, time_us: int, item: Seen | _AckDue) -> None:
        heapq.heappush(self.queue, (time_us, next(self.order), item))

    # rendering ------------------------------------------------------------------------------

    def render(self) -> list[Frame]:
        for seen in self.t.at(OUTSIDE):
            self.push(seen.time_us, seen)
        while self.queue:  # bounded: every observation queues at most one ACK check
            time_us, _, item = heapq.heappop(self.queue)
            if isinstance(item, Seen):
                self.observe(item)
            else:
                if self.conn(item.session).last_ack[item.direction] < item.end:
                    self.segment_out(item.session, item.direction, time_us, "A")
        return self.frames

    def observe(self, seen: Seen) -> None:
        what, t = seen.what, seen.time_us
        if isinstance(what, OuterTcp):
            self.tcp_control(what, t, seen.comment)
        elif isinstance(what, TlsMessage):
            self.stream(what.session, what.direction, t, self.tls_bytes(what), seen.comment)
        elif isinstance(what, DtlsDatagram):
            self.emit(t, what.direction, self.dtls(what, t), seen.comment)

    def tcp_control(self, what: OuterTcp, t: int, comment: str) -> None:
        c = self.conn(what.session)
        src, dst, _, _ = self.ends(what.direction)
        if what.flags in ("S", "SA"):
            syn = what.flags == "S"
            mss = self.client_mss if syn else self.headend_mss
            sport, dport = (
                (c.client_port, craft.HTTPS_PORT) if syn else (craft.HTTPS_PORT, c.client_port)
            )
            ack = 0 if syn else self.ack_value(c, what.direction, t)
            pkt = craft.syn(
                src,
                dst,
                sport,
                dport,
                mss=mss,
                mtu=mtu.mtu_for_mss(mss),
                flags=what.flags,
                seq=c.isn[what.direction] & MASK32,
                ack=ack & MASK32,
                window=64240 if syn else 65160,
                ip_id=self.next_id(what.direction),
            )
            if not syn:
                c.last_ack[what.direction] = ack
            self.emit(t, what.direction, pkt, comment)
            c.next_seq[what.direction] = c.isn[what.direction] + 1
            c.times[what.direction].append(t)
            c.ends[what.direction].append(c.isn[what.direction] + 1)
            return
        self.segment_out(
            what.session,
            what.direction,
            t,
            what.flags,
            comment=comment,
            consume=1 if "F" in what.flags else 0,
        )

    def tls_bytes(self, m: TlsMessage) -> bytes:
        h = self.s.head_end
        suite, version = h.tls_cipher, h.tls_version
        if m.kind == "client_hello":
            c = self.conn(m.session)
            offered = [suite] + [s for s in craft.DTLS12_SUITES if s != suite]
            hello = craft.tls_client_hello(
                self.s.hosts.client_outside,
                self.s.hosts.head_end_outside,
                c.client_port,
                craft.HTTPS_PORT,
                sni=self.s.hosts.head_end_name,
                cipher_suites=offered,
                rng=Random(f"labkit:{self.s.seed}:client-hello:{m.session}"),
            )
            return bytes(hello["TCP"].payload)
        if m.kind == "server_flight":
            session_id = Random(f"labkit:{self.s.seed}:tls-session:{m.session}").randbytes(32)
            return tls.server_flight(
                suite_code=craft.suite_code(suite),
                suite=suite,
                session_id=session_id,
                version=version,
                rng=self.rng,
            )
        if m.kind == "client_finish":
            return tls.client_finish(suite=suite, version=version, rng=self.rng)
        if m.kind == "server_finish":
            return tls.server_finish(suite=suite, version=version, rng=self.rng)
        if m.kind == "close_notify":
            return tls.protected(CT_ALERT, m.plaintext, suite=suite, version=version, rng=self.rng)
        return tls.protected(
            CT_APPLICATION_DATA, m.plaintext, suite=suite, version=version, rng=self.rng
        )

    def dtls(self, d: DtlsDatagram, t: int) -> Packet:
        h, hosts = self.s.head_end, self.s.hosts
        dtls_out = self.t.dtls
        assert dtls_out is not None  # a DTLS datagram exists only after a dtls step
        session = self.t.sessions[d.session]
        cport, sport = dtls_out.client_port, h.dtls_port
        client, server = hosts.client_outside, hosts.head_end_outside
        session_id = bytes.fromhex(session.connect.dtls_session_id)
        finished = mtu.record_length(
            DTLS_HANDSHAKE_HEADER_LEN + tls.VERIFY_DATA, h.dtls_cipher, "0x0100", dtls=True
        )
        ip_id = self.next_id(d.direction)
        if d.kind in ("client_hello", "client_hello_cookie"):
            cookie = d.kind == "client_hello_cookie"
            return craft.dtls_client_hello(
                client,
                server,
                cport,
                sport,
                session_id=session_id,
                cookie=self.dtls_cookie if cookie else b"",
                cipher_suites=[h.dtls_cipher],
                client_random=self.dtls_client_random,
                message_seq=int(cookie),
                record_seq=int(cookie),
                ip_id=ip_id,
            )
        if d.kind == "hello_verify_request":
            return craft.dtls_hello_verify_request(
                server, client, sport, cport, cookie=self.dtls_cookie, ip_id=ip_id
            )
        if d.kind == "server_finish":
            return craft.dtls_server_hello(
                server,
                client,
                sport,
                cport,
                session_id=session_id,
                cipher_suite=h.dtls_cipher,
                server_random=self.dtls_server_random,
                finished_size=finished,
                ip_id=ip_id,
                rng=self.rng,
            )
        if d.kind == "client_finish":
            return craft.dtls_client_finished(
                client, server, cport, sport, finished_size=finished, ip_id=ip_id, rng=self.rng
            )
        assert d.inner is not None  # a data datagram always carries a packet
        length = mtu.record_length(
            mtu.ANYCONNECT_DTLS_HEADER + d.inner.size, h.dtls_cipher, "0x0100", dtls=True
        )
        seq = self.dtls_seq[d.direction]
        self.dtls_seq[d.direction] += 1
        src, dst, s_port, d_port = (
            (client, server, cport, sport) if d.direction == C2S else (server, client, sport, cport)
        )
        return craft.dtls_application_data(
            src, dst, s_port, d_port, length=length, record_seq=seq, ip_id=ip_id, rng=self.rng
        )


def _ether_inside(pkt: Packet, what: Inner, server: str) -> bytes:
    src = what.src if not isinstance(what, InnerFragment) else what.original.src
    from_server = src == server
    macs = (SERVER_MAC, HEADEND_INSIDE_MAC) if from_server else (HEADEND_INSIDE_MAC, SERVER_MAC)
    return bytes(Ether(src=macs[0], dst=macs[1]) / pkt)


def render(timeline: Timeline, start_us: int = EPOCH_US) -> dict[str, tuple[bytes, int]]:
    """Each file's bytes and frame count, by file name (no file is written)."""
    s = timeline.scenario
    packets = _Packets(s.seed)
    outside = [
        Frame(start_us + f.time_us, f.data, f.comment) for f in _Outside(timeline, packets).render()
    ]
    tunnel = [
        Frame(start_us + x.time_us, bytes(packets.inner(x.what)))  # type: ignore[arg-type]
        for x in timeline.at(TUNNEL)
    ]
    inside = [
        Frame(start_us + x.time_us, _ether_inside(packets.inner(x.what), x.what, s.hosts.server))  # type: ignore[arg-type]
        for x in timeline.at(INSIDE)
    ]
    comment = f"labkit scenario {s.name}: {s.description} | " + "; ".join(timeline.describe())
    return {
        FILES[OUTSIDE]: (
            pcapng_bytes(
                outside,
                LINKTYPE_ETHERNET,
                interface="outside",
                section_comment=comment,
                application="labkit scenario",
            ),
            len(outside),
        ),
        FILES[TUNNEL]: (pcap_bytes(tunnel, LINKTYPE_RAW), len(tunnel)),
        FILES[INSIDE]: (pcap_bytes(inside, LINKTYPE_ETHERNET), len(inside)),
    }


def build(
    scenario: Scenario, out_dir: str | Path, *, force: bool = False, start_us: int = EPOCH_US
) -> BuildResult:
    """Build ``scenario`` into ``out_dir`` (created if missing): one file per capture point.

    Every output path is checked before anything is computed or written, so an existing
    file (without ``force``) costs nothing and leaves nothing half-done.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create the folder ({exc.strerror})") from None
    for name in FILES.values():
        check_output_path(out / name, force=force, inputs=[scenario.source])
    timeline = build_timeline(scenario, derive(scenario))
    files = render(timeline, start_us)
    captures = []
    point_of = {name: point for point, name in FILES.items()}
    for name, (data, frames) in files.items():
        with atomic_output(out / name, force=force, inputs=[scenario.source]) as tmp:
            tmp.write_bytes(data)
        captures.append(Capture(point_of[name], out / name, frames))
    return BuildResult(timeline, tuple(captures))
