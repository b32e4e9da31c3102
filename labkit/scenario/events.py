"""The events of a scenario in time order: who sends what and when, what each point sees.

A scenario states configuration and a few client actions (connect, try DTLS, run a flow);
everything else follows from the configuration here, so changing one knob changes only its
consequences:

* **Sessions.** ``connect`` opens the parent TLS tunnel: TCP handshake, ClientHello with
  SNI, server flight, key exchange, then the CSTP CONNECT exchange (four round trips).
* **DTLS.** ``dtls`` sends a ClientHello resuming the session the CONNECT response named.
  If the path passes UDP to the DTLS port, the legacy 0x0100 resumption follows
  (ClientHello, HelloVerifyRequest, ClientHello with the cookie, ServerHello + CCS +
  Finished, the client's CCS + Finished: anyconnect-vpn.pcap frames 413-466) and inner
  traffic moves to DTLS. If not, the client retransmits at its backoff (1 s doubling,
  RFC 6347 4.2.4.1; the 0 / 1 / 3 / 7 s of dtls-0x0100-hvr-retrans.pcapng), gives up when
  the last timer expires and, when its adapter MTU exceeds the TLS MTU, reconnects the
  session to apply the TLS MTU (DESIGN.md section 1 step 6; DART reason code 16).
* **Flows.** ``flow`` runs one inner TCP connection from the client's tunnel address to
  the server: SYN with the MSS of the adapter MTU in effect, the head-end's MSS clamp
  (``sysopt connection tcpmss``) on SYN and SYN-ACK, a request, then full-sized DF segments
  from the server. The head-end puts each packet into DTLS (limit: DTLS MTU) or TLS (limit:
  TLS MTU). A larger packet is fragmented with ``df-bit-ignore`` (IPv4), else dropped with
  ICMP 3/4 or ICMPv6 Packet Too Big announcing the limit (``icmp_unreachables``, rate
  limited like the ASA's default ``icmp unreachable rate-limit 1 burst-size 1``), which the
  path may filter. The server (a Linux-like sender, RFC 6298) lowers its path MTU on the
  ICMP and re-sends the unacknowledged data at once; without it, it retransmits the first
  unacknowledged segment at 1, 2, 4 ... s: the black hole.

Capture points: ``outside`` is the client's NIC (client <-> head-end, before any path
filter), ``client-tunnel`` the client's virtual adapter, ``headend-inside`` the server's
NIC (head-end <-> server, after any path filter). Everything here is plain data; the
builder (:mod:`labkit.scenario.build`) turns it into packets. No Scapy.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from random import Random

from labkit import mtu
from labkit.scenario import connect
from labkit.scenario.connect import ConnectParams
from labkit.scenario.numbers import Numbers, derive
from labkit.scenario.schema import US, Connect, Dtls, Flow, Scenario, ScenarioError, Step

OUTSIDE, TUNNEL, INSIDE = "outside", "client-tunnel", "headend-inside"
POINTS = (OUTSIDE, TUNNEL, INSIDE)
C2S, S2C = "c2s", "s2c"

# Small fixed delays (microseconds), so the order inside each host is visible and stable.
ENCAP_US = 30  # client: adapter -> encrypted on the wire, and back
FORWARD_US = 20  # head-end: one side to the other
HOST_US = 50  # a host answering what it just received
SERIAL_US = 12  # back-to-back packets: 1500 bytes at 1 Gbit/s
SERVER_MTU = mtu.DEFAULT_BASE_MTU  # the LAN server's NIC
RTO_US = US  # RFC 6298 2.1 and 2.4: 1 s, doubled on each expiry (5.5)
ICMP_RATE_US = US  # ASA default: icmp unreachable rate-limit 1 burst-size 1
MAX_EVENTS = 5000  # per flow: a guard against a bug looping, not a limit a scenario meets
SYN_OPTIONS = 12  # MSS, SACK-permitted, NOP + window scale (craft.syn), padded to 4
CLIENT_WINDOW, SERVER_WINDOW = 64240, 65160
REQUEST_BYTES = 37  # what the client sends first (an iperf3 test cookie is 37 bytes)


# --- what travels -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InnerTcp:
    """A TCP segment inside the tunnel (IPv4 or IPv6, as the addresses say)."""

    src: str
    dst: str
    sport: int
    dport: int
    flags: str
    seq: int
    ack: int
    payload: int = 0
    mss: int | None = None  # the MSS option of a SYN or SYN-ACK
    window: int = 502
    retransmission: bool = False
    ip_id: int = 0  # IPv4 identification (the sender's counter); unused for IPv6

    @property
    def ipv6(self) -> bool:
        return ":" in self.src

    @property
    def size(self) -> int:
        """The IP packet's total length."""
        options = SYN_OPTIONS if self.mss is not None else 0
        return mtu.ip_header(self.ipv6) + mtu.TCP_HEADER + options + self.payload

    def describe(self) -> str:
        family = "IPv6" if self.ipv6 else "IPv4"
        extra = f" MSS {self.mss}" if self.mss is not None else ""
        return (
            f"{self.size}-byte {family} TCP {self.src}.{self.sport} > {self.dst}.{self.dport} "
            f"[{self.flags}]{extra}"
        )


@dataclass(frozen=True, slots=True)
class InnerFragment:
    """One IPv4 fragment of ``original`` (DF cleared): bytes ``offset`` .. ``offset+length``
    of its payload (RFC 791: offsets in 8-byte units, MF on all but the last)."""

    original: InnerTcp
    offset: int
    length: int
    more: bool

    @property
    def size(self) -> int:
        return mtu.IPV4_HEADER + self.length

    def describe(self) -> str:
        return (
            f"fragment {self.offset}+{self.length} of a {self.original.size}-byte packet "
            f"{self.original.src} > {self.original.dst} (DF ignored)"
        )


@dataclass(frozen=True, slots=True)
class InnerTooBig:
    """ICMP 3/4 (RFC 1191) or ICMPv6 Packet Too Big (RFC 4443 3.2) quoting ``original``."""

    src: str
    dst: str
    mtu: int
    original: InnerTcp
    ip_id: int = 0

    def describe(self) -> str:
        kind = "ICMPv6 Packet Too Big" if self.original.ipv6 else "ICMP 3/4"
        return f"{kind} MTU {self.mtu} for a {self.original.size}-byte packet"


Carried = InnerTcp | InnerFragment  # what the tunnel carries
Inner = InnerTcp | InnerFragment | InnerTooBig


@dataclass(frozen=True, slots=True)
class OuterTcp:
    """A TCP control segment of a session's connection to the head-end."""

    session: int
    direction: str
    flags: str  # "S", "SA", "A", "FA"


@dataclass(frozen=True, slots=True)
class TlsMessage:
    """TLS bytes on a session's connection: a handshake flight, or one protected record."""

    session: int
    direction: str
    kind: str  # client_hello server_flight client_finish server_finish connect_request
    #            connect_response close_notify cstp
    plaintext: int = 0  # bytes a protected record carries
    inner: Carried | None = None  # the packet a ``cstp`` record carries


@dataclass(frozen=True, slots=True)
class DtlsDatagram:
    """One DTLS datagram between the client and the head-end's DTLS port."""

    session: int
    direction: str
    kind: str  # client_hello hello_verify_request client_hello_cookie server_finish
    #            client_finish data
    inner: Carried | None = None  # the packet a ``data`` record carries


Wire = Inner | OuterTcp | TlsMessage | DtlsDatagram


@dataclass(frozen=True, slots=True)
class Seen:
    """``what`` as the capture ``point`` records it at ``time_us`` (from the scenario start)."""

    point: str
    time_us: int
    what: Wire
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Fate:
    """What became of a server packet: delivered (client time), icmp (server time), dropped."""

    outcome: str
    time: int
    icmp: InnerTooBig | None = None
    fragments: int = 0


@dataclass(frozen=True, slots=True)
class Session:
    """One TLS session (the parent tunnel carrying CSTP) of the client to the head-end."""

    index: int
    start_us: int  # the client's SYN
    up_us: int  # the client has the CONNECT response: the tunnel carries traffic
    client_port: int
    connect: ConnectParams
    end_us: int | None = None  # the client closed it (reconnect)


@dataclass(frozen=True, slots=True)
class DtlsOutcome:
    attempts: int  # ClientHellos sent (the first and the retransmissions)
    answered: bool
    client_port: int
    up_us: int | None  # the client finished the handshake (client clock)
    gave_up_us: int | None  # the last retransmission timer expired


@dataclass(frozen=True, slots=True)
class FlowOutcome:
    line: int
    start_us: int
    end_us: int
    client_port: int
    mss: int  # what the client's SYN announced
    delivered: int  # payload bytes the client received in order
    total: int  # payload bytes the server had to send
    icmp: int  # frag-needed / packet-too-big the head-end sent
    retransmissions: int
    fragments: int


@dataclass(frozen=True, slots=True)
class Timeline:
    scenario: Scenario
    numbers: Numbers
    sessions: tuple[Session, ...]
    dtls: DtlsOutcome | None
    flows: tuple[FlowOutcome, ...]
    seen: tuple[Seen, ...]  # every observation, in time order per capture point

    @property
    def reconnected(self) -> bool:
        return len(self.sessions) > 1

    def at(self, point: str) -> list[Seen]:
        return [s for s in self.seen if s.point == point]

    def describe(self) -> list[str]:
        """What happens, in a few lines (``labkit scenario validate`` and ``build`` print it)."""
        n, s = self.numbers, self.scenario
        out = [", ".join(n.describe())]
        if self.dtls is None:
            out.append("DTLS: not attempted" + ("" if s.head_end.dtls else " (disabled)"))
        elif self.dtls.up_us is not None:  # answered: the handshake finished
            out.append(
                f"DTLS: answered on UDP {s.head_end.dtls_port}, up at {self.dtls.up_us / US:.3f} s"
            )
        else:
            hellos = "ClientHello" if self.dtls.attempts == 1 else "ClientHellos"
            out.append(
                f"DTLS: {self.dtls.attempts} {hellos} to UDP {s.head_end.dtls_port}, "
                f"unanswered; the client gives up at {(self.dtls.gave_up_us or 0) / US:.3f} s"
            )
        if self.reconnected:
            new = self.sessions[1]
            out.append(
                f"reconnect: new TLS session at {new.start_us / US:.3f} s, adapter MTU "
                f"{n.adapter_mtu} -> {n.fallback_mtu} (MSS {n.fallback_mss})"
            )
        for f in self.flows:
            how = []
            if f.icmp:
                how.append(f"{f.icmp} ICMP too-big")
            if f.fragments:
                how.append(f"{f.fragments} fragments")
            if f.retransmissions:
                how.append(f"{f.retransmissions} retransmissions")
            state = (
                "complete" if f.delivered == f.total else f"{f.delivered}/{f.total} bytes: stalled"
            )
            out.append(
                f"flow at {f.start_us / US:.3f} s: SYN MSS {f.mss}, {state}"
                + (f" ({', '.join(how)})" if how else "")
            )
        return out


# --- the model --------------------------------------------------------------------------------


class _Rng:
    """Independent seeded streams per purpose: adding a draw to one moves no other value."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._streams: dict[str, Random] = {}

    def __call__(self, purpose: str) -> Random:
        if purpose not in self._streams:
            self._streams[purpose] = Random(f"labkit:{self.seed}:{purpose}")
        return self._streams[purpose]

    def port(self, used: set[int]) -> int:
        """An ephemeral port (RFC 6335 6: 49152..65535) not used yet by this client."""
        rng = self("ports")
        for _ in range(1000):
            port = 49152 + rng.getrandbits(14)
            if port not in used:
                used.add(port)
                return port
        raise AssertionError("no free ephemeral port")  # 16384 ports, a handful used


class _Model:
    """Builds a :class:`Timeline`; one instance per build, discarded after."""

    def __init__(self, scenario: Scenario, numbers: Numbers) -> None:
        self.s = scenario
        self.n = numbers
        self.rng = _Rng(scenario.seed)
        self.seen: list[Seen] = []
        self.sessions: list[Session] = []
        self.dtls: DtlsOutcome | None = None
        self.ports: set[int] = set()
        self.ow_out = scenario.path.outside_rtt_us // 2
        self.ow_in = scenario.path.inside_rtt_us // 2
        self.rtt = 2 * self.ow_out
        self.server_pmtu = SERVER_MTU  # the server's path MTU cache for the client
        self.icmp_last: int | None = None  # the head-end's rate limiter
        self.ip_ids: dict[str, int] = {}

    def next_id(self, host: str) -> int:
        """The host's next IPv4 identification: a counter from a seeded start (RFC 6864)."""
        if host not in self.ip_ids:
            self.ip_ids[host] = self.rng("ip-id").getrandbits(16)
        self.ip_ids[host] = (self.ip_ids[host] + 1) & 0xFFFF
        return self.ip_ids[host]

    def see(self, point: str, time_us: int, what: Wire, comment: str = "") -> None:
        self.seen.append(Seen(point, time_us, what, comment))

    def error(self, step: Step, message: str) -> ScenarioError:
        return ScenarioError.at(self.s.source, step.line, "timeline", message)

    # sessions ---------------------------------------------------------------------------

    def open_session(self, start: int, comment: str = "") -> Session:
        index = len(self.sessions)
        r = self.rng(f"session{index}")
        h = self.s.head_end
        params = ConnectParams(
            host=self.s.hosts.head_end_name,
            tunnel_address=self.s.hosts.client_tunnel,
            base_mtu=self.s.client.base_mtu,
            tls_mtu=self.n.tls_mtu,
            dtls_mtu=self.n.dtls_mtu,
            dtls_port=h.dtls_port,
            dtls_cipher=h.dtls_cipher,
            dtls=h.dtls,
            cookie=r.randbytes(16).hex().upper(),
            dtls_session_id=r.randbytes(32).hex().upper(),
            master_secret=r.randbytes(48).hex().upper(),
        )
        # Each side answers HOST_US after the other's message reached it: at the client's NIC
        # an answer is seen one round trip (plus that) after what it answers.
        rtt, gap = self.rtt, self.rtt + HOST_US
        t_hello = start + rtt + 2
        up = t_hello + 3 * gap
        session = Session(index, start, up, self.rng.port(self.ports), params)
        req, resp = connect.request(params), connect.response(params)
        steps: list[tuple[int, Wire, str]] = [
            (start, OuterTcp(index, C2S, "S"), comment),
            (start + rtt, OuterTcp(index, S2C, "SA"), ""),
            (start + rtt + 1, OuterTcp(index, C2S, "A"), ""),
            (
                t_hello,
                TlsMessage(index, C2S, "client_hello"),
                f"TLS ClientHello, SNI {params.host}",
            ),
            (t_hello + gap, TlsMessage(index, S2C, "server_flight"), ""),
            (t_hello + gap + HOST_US, TlsMessage(index, C2S, "client_finish"), ""),
            (t_hello + 2 * gap + HOST_US, TlsMessage(index, S2C, "server_finish"), ""),
            (
                t_hello + 2 * gap + 2 * HOST_US,
                TlsMessage(index, C2S, "connect_request", plaintext=len(req)),
                "CSTP CONNECT /CSCOSSLC/tunnel (encrypted)",
            ),
            (
                up,
                TlsMessage(index, S2C, "connect_response", plaintext=len(resp)),
                f"CSTP CONNECT response, 200 OK (encrypted): {connect.headline(params)}",
            ),
        ]
        for t, what, note in steps:
            self.see(OUTSIDE, t, what, note)
        self.sessions.append(session)
        return session

    def close_session(self, session: Session, at: int, comment: str) -> None:
        i = session.index
        self.see(OUTSIDE, at, TlsMessage(i, C2S, "close_notify", plaintext=2), comment)
        self.see(OUTSIDE, at + 1, OuterTcp(i, C2S, "FA"))
        self.see(OUTSIDE, at + self.rtt + HOST_US, OuterTcp(i, S2C, "FA"))
        self.see(OUTSIDE, at + self.rtt + 2 * HOST_US, OuterTcp(i, C2S, "A"))
        self.sessions[i] = replace(session, end_us=at)

    def session_at(self, t: int, headend: bool) -> Session | None:
        """The session that carries traffic at ``t`` (client or head-end clock)."""
        shift = self.ow_out if headend else 0
        for s in reversed(self.sessions):
            up = s.up_us - shift
            end = None if s.end_us is None else s.end_us + shift
            if up <= t and (end is None or t < end):
                return s
        return None

    def via_dtls(self, session: Session, t: int, headend: bool) -> bool:
        d = self.dtls
        if d is None or d.up_us is None or session.index != 0:
            return False
        return t >= d.up_us + (self.ow_out if headend else 0)

    # DTLS -------------------------------------------------------------------------------

    def run_dtls(self, step: Dtls) -> None:
        session = self.session_at(step.at_us, headend=False)
        if session is None or session.index != 0:
            raise self.error(
                step,
                f"DTLS starts at {step.at_us / US:g} s, before the CONNECT "
                f"response at {self.sessions[0].up_us / US:g} s that names the "
                f"DTLS session",
            )
        port = self.rng.port(self.ports)
        h = self.s.head_end
        gap, t = self.rtt + HOST_US, step.at_us
        if not self.s.path.dtls_udp_blocked:
            i = session.index
            for when, direction, kind, note in (
                (t, C2S, "client_hello", "DTLS ClientHello (0x0100) resuming X-DTLS-Session-ID"),
                (t + gap, S2C, "hello_verify_request", ""),
                (t + gap + HOST_US, C2S, "client_hello_cookie", ""),
                (
                    t + 2 * gap + HOST_US,
                    S2C,
                    "server_finish",
                    "DTLS ServerHello, CCS, Finished: the session is resumed",
                ),
                (t + 2 * gap + 2 * HOST_US, C2S, "client_finish", ""),
            ):
                self.see(OUTSIDE, when, DtlsDatagram(i, direction, kind), note)
            up = t + 2 * gap + 2 * HOST_US
            self.dtls = DtlsOutcome(1, True, port, up, None)
            return
        for k in range(step.attempts):
            when = t + step.timeout_us * (2**k - 1)
            note = (
                f"DTLS ClientHello {k + 1} of {step.attempts}: no answer (UDP {h.dtls_port} "
                f"dropped on the path)"
            )
            self.see(OUTSIDE, when, DtlsDatagram(session.index, C2S, "client_hello"), note)
        gave_up = t + step.timeout_us * (2**step.attempts - 1)
        self.dtls = DtlsOutcome(step.attempts, False, port, None, gave_up)
        if not self.n.mismatch:
            return  # the adapter MTU fits the TLS tunnel: the client carries on over TLS
        self.close_session(
            session,
            gave_up,
            f"the client gives up on DTLS and reconnects to apply the TLS MTU "
            f"{self.n.fallback_mtu} (DART: Reconfigure reason code 16: New MTU "
            f"configuration)",
        )
        self.open_session(
            gave_up + step.reconnect_delay_us,
            f"the reconnect: a new TLS session; adapter MTU {self.n.adapter_mtu} -> "
            f"{self.n.fallback_mtu}",
        )

    # inner packets ----------------------------------------------------------------------

    def _outer(self, session: Session, direction: str, inner: Carried, dtls: bool) -> Wire:
        """The record that carries ``inner``: AnyConnect DTLS data, or CSTP in TLS."""
        if dtls:
            return DtlsDatagram(session.index, direction, "data", inner)
        return TlsMessage(session.index, direction, "cstp", mtu.CSTP_HEADER + inner.size, inner)

    def client_sends(self, step: Flow, t: int, pkt: InnerTcp) -> tuple[int, InnerTcp]:
        """The client's packet through the tunnel; returns (arrival at the server, packet)."""
        session = self.session_at(t, headend=False)
        if session is None:
            raise self.error(
                step,
                f"the flow sends at {t / US:.3f} s while the tunnel is down "
                "(before it is up, or during the reconnect): move it",
            )
        self.see(TUNNEL, t, pkt)
        dtls = self.via_dtls(session, t, headend=False)
        self.see(OUTSIDE, t + ENCAP_US, self._outer(session, C2S, pkt, dtls), _carried(pkt, dtls))
        if pkt.mss is not None and pkt.mss > self.s.head_end.tcpmss:
            pkt = replace(pkt, mss=self.s.head_end.tcpmss)
        arrive = t + ENCAP_US + self.ow_out + FORWARD_US + self.ow_in
        self.see(INSIDE, arrive, pkt)
        return arrive, pkt

    def server_sends(self, step: Flow, t: int, pkt: InnerTcp) -> Fate:
        """The server's packet through the head-end and the tunnel, and what became of it."""
        self.see(INSIDE, t, pkt)
        h = t + self.ow_in
        session = self.session_at(h, headend=True)
        if session is None:
            raise self.error(
                step,
                f"the flow's server sends at {t / US:.3f} s while the tunnel "
                "is down (during the reconnect): start the flow later or "
                "give it fewer retries",
            )
        if pkt.mss is not None and pkt.mss > self.s.head_end.tcpmss:
            pkt = replace(pkt, mss=self.s.head_end.tcpmss)
        dtls = self.via_dtls(session, h, headend=True)
        limit = self.n.dtls_mtu if dtls else self.n.tls_mtu
        out = h + FORWARD_US + self.ow_out
        if pkt.size <= limit:
            self.see(OUTSIDE, out, self._outer(session, S2C, pkt, dtls), _carried(pkt, dtls))
            self.see(TUNNEL, out + ENCAP_US, pkt)
            return Fate("delivered", out + ENCAP_US)
        if not pkt.ipv6 and self.s.head_end.df_bit_ignore:
            frags = _fragments(pkt, limit)
            for k, frag in enumerate(frags):
                when = out + k * SERIAL_US
                self.see(
                    OUTSIDE,
                    when,
                    self._outer(session, S2C, frag, dtls),
                    _carried(frag, dtls)
                    + (
                        f"; the head-end fragments the {pkt.size}-byte DF packet (df-bit-ignore)"
                        if k == 0
                        else ""
                    ),
                )
                self.see(TUNNEL, when + ENCAP_US, frag)
            return Fate(
                "delivered", out + (len(frags) - 1) * SERIAL_US + ENCAP_US, fragments=len(frags)
            )
        # Dropped: %ASA-6-722036 "Transmitting large packet 1418 (threshold 1347)".
        he = self.s.head_end
        if not he.icmp_unreachables:
            return Fate("dropped", h)
        if self.icmp_last is not None and h - self.icmp_last < ICMP_RATE_US:
            return Fate("dropped", h)
        self.icmp_last = h
        inside = self.s.hosts.head_end_inside
        icmp = InnerTooBig(inside, pkt.src, limit, pkt, self.next_id(inside))
        if self.s.path.icmp_blocked:
            return Fate("dropped", h)
        arrive = h + FORWARD_US + self.ow_in
        self.see(INSIDE, arrive, icmp)
        return Fate("icmp", arrive, icmp)

    def adapter(self, t: int) -> tuple[int, int]:
        """(adapter MTU, MSS) of the client at ``t``: the fallback after a reconnect."""
        if len(self.sessions) > 1 and t >= self.sessions[-1].up_us:
            return self.n.fallback_mtu, self.n.fallback_mss
        return self.n.adapter_mtu, self.n.tunnel_mss

    def run_flow(self, step: Flow) -> FlowOutcome:
        return _FlowRun(self, step).run()


def _carried(inner: Carried, dtls: bool) -> str:
    how = "DTLS record (AnyConnect DATA)" if dtls else "TLS record (CSTP DATA)"
    return f"{how} carrying a {inner.describe()}"


def _fragments(pkt: InnerTcp, limit: int) -> list[InnerFragment]:
    """RFC 791 fragmentation of ``pkt`` to fit ``limit``: 8-byte aligned payload pieces."""
    piece = (limit - mtu.IPV4_HEADER) // 8 * 8
    total = pkt.size - mtu.IPV4_HEADER
    out = []
    for offset in range(0, total, piece):
        length = min(piece, total - offset)
        out.append(InnerFragment(pkt, offset, length, offset + length < total))
    return out


class _FlowRun:
    """One inner TCP connection as a small discrete-event simulation (bounded)."""

    def __init__(self, model: _Model, step: Flow) -> None:
        self.m = model
        self.step = step
        hosts = model.s.hosts
        self.client, self.server = hosts.client_tunnel, hosts.server
        self.cport = model.rng.port(model.ports)
        self.sport = hosts.server_port
        r = model.rng(f"flow{step.line}")
        self.ciss, self.siss = r.getrandbits(32), r.getrandbits(32)
        self.v6 = hosts.inner_ipv6
        self.mss = model.adapter(step.at_us)[1]  # what the client's SYN announces
        self.queue: list[tuple[int, int, Callable[[int], None]]] = []
        self.order = itertools.count()
        self.events = 0
        # server state
        self.peer_mss = 0
        self.snd_una = self.snd_nxt = 0  # payload offsets
        self.total = 0
        self.seg_len = 0
        self.rto = RTO_US
        self.retries = 0
        self.timer: int | None = None
        self.sent: dict[int, int] = {}  # offset -> length of segments in flight
        self.started = False
        # client state
        self.c_sent = 0  # request bytes sent
        self.s_rcv = 0  # request bytes the server has
        self.rcv_nxt = 0
        self.ooo: dict[int, int] = {}
        # counters
        self.icmp = self.retransmissions = self.fragments = 0
        self.end = step.at_us

    def at(self, t: int, action: Callable[[int], None]) -> None:
        heapq.heappush(self.queue, (t, next(self.order), action))

    def run(self) -> FlowOutcome:
        self.at(self.step.at_us, self.client_syn)
        while self.queue:
            self.events += 1
            if self.events > MAX_EVENTS:
                raise self.m.error(self.step, f"the flow did not settle within {MAX_EVENTS} events")
            t, _, action = heapq.heappop(self.queue)
            self.end = max(self.end, t)
            action(t)
        return FlowOutcome(
            self.step.line,
            self.step.at_us,
            self.end,
            self.cport,
            self.mss,
            self.rcv_nxt,
            self.total,
            self.icmp,
            self.retransmissions,
            self.fragments,
        )

    # packets ----------------------------------------------------------------------------

    def c_pkt(
        self, flags: str, payload: int = 0, mss: int | None = None, window: int = 502
    ) -> InnerTcp:
        ack = 0 if flags == "S" else self.siss + 1 + self.rcv_nxt
        return InnerTcp(
            self.client,
            self.server,
            self.cport,
            self.sport,
            flags,
            (self.ciss + (0 if flags == "S" else 1 + self.c_sent)) & 0xFFFFFFFF,
            ack & 0xFFFFFFFF,
            payload,
            mss,
            window,
            ip_id=self.m.next_id(self.client),
        )

    def s_pkt(
        self,
        flags: str,
        offset: int,
        payload: int,
        mss: int | None = None,
        window: int = 509,
        retransmission: bool = False,
    ) -> InnerTcp:
        seq = self.siss + (0 if flags == "SA" else 1 + offset)
        ack = self.ciss + 1 + self.s_rcv
        return InnerTcp(
            self.server,
            self.client,
            self.sport,
            self.cport,
            flags,
            seq & 0xFFFFFFFF,
            ack & 0xFFFFFFFF,
            payload,
            mss,
            window,
            retransmission,
            self.m.next_id(self.server),
        )

    # client -----------------------------------------------------------------------------

    def client_syn(self, t: int) -> None:
        syn = self.c_pkt("S", mss=self.mss, window=CLIENT_WINDOW)
        arrive, seen = self.m.client_sends(self.step, t, syn)
        self.at(arrive, lambda t2: self.server_synack(t2, seen.mss or mtu.DEFAULT_TCPMSS))

    def client_established(self, t: int) -> None:
        arrive, _ = self.m.client_sends(self.step, t, self.c_pkt("A"))
        req = self.c_pkt("PA", payload=REQUEST_BYTES)
        self.c_sent = REQUEST_BYTES
        arrive, _ = self.m.client_sends(self.step, t + SERIAL_US, req)
        self.at(arrive, self.server_request)

    def client_data(self, t: int, offset: int, length: int) -> None:
        if offset <= self.rcv_nxt < offset + length:
            self.rcv_nxt = offset + length
            while self.rcv_nxt in self.ooo:  # bounded: each entry is taken once
                self.rcv_nxt += self.ooo.pop(self.rcv_nxt)
        elif offset > self.rcv_nxt:
            self.ooo[offset] = max(length, self.ooo.get(offset, 0))
        arrive, _ = self.m.client_sends(self.step, t + HOST_US, self.c_pkt("A"))
        acked = self.rcv_nxt
        self.at(arrive, lambda t2: self.server_ack(t2, acked))

    # server -----------------------------------------------------------------------------

    def server_synack(self, t: int, peer_mss: int) -> None:
        self.peer_mss = peer_mss
        own = mtu.mss_for_mtu(SERVER_MTU, self.v6)
        synack = self.s_pkt("SA", 0, 0, mss=own, window=SERVER_WINDOW)
        fate = self.m.server_sends(self.step, t + HOST_US, synack)
        if fate.outcome != "delivered":
            raise self.m.error(self.step, "the SYN-ACK did not reach the client")
        self.at(fate.time + HOST_US, self.client_established)

    def segment_size(self) -> int:
        hdr = mtu.ip_header(self.v6) + mtu.TCP_HEADER
        own = mtu.mss_for_mtu(SERVER_MTU, self.v6)
        return min(self.peer_mss, own, self.m.server_pmtu - hdr)

    def server_request(self, t: int) -> None:
        self.s_rcv = REQUEST_BYTES
        if self.started:
            return
        self.started = True
        self.seg_len = self.segment_size()
        self.total = self.seg_len * self.step.segments
        self.send_from(t + HOST_US, self.snd_nxt, self.total)

    def send_from(self, t: int, start: int, end: int) -> None:
        """Send new payload ``start``..``end`` in segments of the current size, back to back."""
        size = self.segment_size()
        offset, k = start, 0
        while offset < end:  # bounded: offset grows by at least 1 each turn
            length = min(size, end - offset)
            self.transmit(t + k * SERIAL_US, offset, length, retransmission=False)
            offset += length
            k += 1
        self.snd_nxt = max(self.snd_nxt, end)
        self.arm(t + k * SERIAL_US)

    def resend_all(self, t: int) -> None:
        """Linux ``tcp_simple_retransmit`` after a smaller path MTU: every unacknowledged
        segment again, each one larger than the new size split first (``tcp_fragment``:
        1378 becomes 1307 + 71, so the boundaries of the first send are kept)."""
        size = self.segment_size()
        k = 0
        for offset in sorted(self.sent):
            length = self.sent[offset]
            if offset + length <= self.snd_una:
                continue
            piece = offset
            while piece < offset + length:  # bounded by the segment's length
                n = min(size, offset + length - piece)
                self.transmit(t + k * SERIAL_US, piece, n, retransmission=True)
                piece += n
                k += 1
        self.arm(t + k * SERIAL_US)

    def transmit(self, t: int, offset: int, length: int, retransmission: bool) -> None:
        pkt = self.s_pkt(
            "PA" if offset + length == self.total else "A",
            offset,
            length,
            retransmission=retransmission,
        )
        self.retransmissions += retransmission
        self.sent[offset] = length
        fate = self.m.server_sends(self.step, t, pkt)
        self.fragments += fate.fragments
        if fate.outcome == "delivered":
            self.at(fate.time, lambda t2: self.client_data(t2, offset, length))
        elif fate.outcome == "icmp" and fate.icmp is not None:
            self.icmp += 1
            mtu_v = fate.icmp.mtu
            self.at(fate.time, lambda t2: self.server_icmp(t2, mtu_v))

    def arm(self, t: int) -> None:
        self.timer = t + self.rto
        deadline = self.timer
        self.at(deadline, lambda t2: self.server_timer(t2, deadline))

    def server_ack(self, t: int, acked: int) -> None:
        if acked > self.snd_una:
            self.snd_una = acked
            self.rto = RTO_US
            self.retries = 0
            self.timer = None
            if self.snd_una < self.snd_nxt:
                self.arm(t)

    def server_icmp(self, t: int, mtu_v: int) -> None:
        if mtu_v >= self.m.server_pmtu:
            return
        self.m.server_pmtu = mtu_v
        if self.snd_una < self.snd_nxt:
            self.resend_all(t + HOST_US)

    def server_timer(self, t: int, deadline: int) -> None:
        if self.timer != deadline or self.snd_una >= self.snd_nxt:
            return  # re-armed or everything acknowledged since
        if self.retries >= self.step.retries:
            self.timer = None
            return  # the flow ends here, stalled
        self.retries += 1
        self.rto *= 2
        length = min(self.sent.get(self.snd_una, self.seg_len), self.snd_nxt - self.snd_una)
        self.transmit(t, self.snd_una, length, retransmission=True)
        self.timer = t + self.rto
        deadline2 = self.timer
        self.at(deadline2, lambda t2: self.server_timer(t2, deadline2))


def build_timeline(scenario: Scenario, numbers: Numbers | None = None) -> Timeline:
    """Run the scenario's steps; a step that cannot happen names its line."""
    n = numbers or derive(scenario)
    model = _Model(scenario, n)
    flows: list[FlowOutcome] = []
    for step in scenario.timeline:
        if isinstance(step, Connect):
            model.open_session(step.at_us, "the parent TLS tunnel to the head-end")
        elif isinstance(step, Dtls):
            model.run_dtls(step)
    for step in scenario.timeline:
        if isinstance(step, Flow):
            flows.append(model.run_flow(step))
    order = {p: i for i, p in enumerate(POINTS)}
    seen = sorted(enumerate(model.seen), key=lambda e: (order[e[1].point], e[1].time_us, e[0]))
    return Timeline(
        scenario, n, tuple(model.sessions), model.dtls, tuple(flows), tuple(s for _, s in seen)
    )
