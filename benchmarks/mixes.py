"""The benchmark's traffic mixes: which conversations a capture is made of, and how often.

A mix is a table of *spawners* (a function that starts one conversation at a given time and
returns its packet generators, :mod:`benchmarks.traffic`) with weights, and the mean time
between two spawns. Throughput must be a property of the analyzer's design, not of one
generator, so the mixes pull apart what costs labkit per packet and what costs it per event:

* ``bulk``: a lab engineer's capture, mostly data (the benchmark of issue 8).
* ``headend``: a head-end's outside interface at 9 a.m., thousands of clients connecting:
  ~3.8 % SYNs, ~1.5 % TLS ClientHellos, DTLS attempts on ~11 % of sessions (two in three
  answered), ~0.2 % retransmissions and ICMP, DNS and ARP, random payloads.
* ``handshake10``: the same sessions cut short, so that ~10 % of packets are handshakes.
* ``icmp``: downloads through the narrow tunnel where a router answers every oversized packet
  with an ICMP 3/4 (a sender's whole window of them, before it lowers its MSS).
* ``manyflows``: one packet per 5-tuple (a SYN, a TLS ClientHello, a DTLS ClientHello, each on
  an endpoint never used before): per-flow state, nothing else.
* ``worst``: every packet one that the analyzer decodes one by one (DTLS handshake records,
  ICMP errors, SYNs whose MSS is not the first option): the floor of its throughput.

Every capture opens with :data:`PRELUDE` (each kind of fact once) except ``manyflows`` and
``worst``, whose point is that every packet is the same kind of work.
"""

from __future__ import annotations

import heapq
import itertools
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

from benchmarks.traffic import (
    ACK,
    FLOW,
    MS,
    PSH,
    SYN,
    TUNNEL_MSS,
    Context,
    DtlsPlan,
    Pkt,
    PmtuEvent,
    TcpConn,
    TcpPlan,
    arp_exchange,
    dns_lookup,
    dtls_session,
    syn_options,
    tls_client_hello,
    tls_download,
)
from benchmarks.wire import Host, Leg, Payload

HEADEND_ADDRESS = "203.0.113.10"  # the ASA's outside address
HEADEND = Host.v4(*map(int, HEADEND_ADDRESS.split(".")))
ASA_INSIDE = Host.v4(172, 16, 0, 1)  # sends ICMP 3/4 with the TLS tunnel MTU
ROUTERS = {1400: Host.v4(172, 16, 0, 2), 1280: Host.v4(172, 16, 0, 3)}  # other narrow links
RESOLVER = Host.v4(10, 0, 0, 53)
GATEWAY = Host.v4(10, 0, 0, 1)

CLIENT_MSS = ((TUNNEL_MSS, 50), (1460, 20), (1452, 10), (1360, 10), (536, 5), (1380, 5))
SERVER_MSS = ((1460, 80), (1380, 10), (1452, 10))
OUTER_CLIENT_MSS = ((1460, 60), (1452, 20), (1360, 15), (1380, 5))
HEADEND_MSS = 1380  # `sysopt connection tcpmss` default
DTLS_VERSIONS = ((0x0100, 70), (0xFEFD, 20), (0xFEFF, 10))

Spawner = Callable[[Context, int], list[Iterator[Pkt]]]


def _pick(ctx: Context, table: tuple[tuple[int, int], ...]) -> int:
    values, weights = zip(*table)
    return ctx.rng.choices(values, weights)[0]


def _vlan(ctx: Context) -> int | None:
    return ctx.rng.choice((10, 20, 30)) if ctx.rng.random() < 0.15 else None


def _port(ctx: Context) -> int:
    return ctx.rng.randrange(32768, 61000)


def inner_download(
    ctx: Context,
    t0: int,
    event: str | None = None,
    segments: tuple[int, int] = (50, 2500),
    loss: float = 0.002,
) -> list[Iterator[Pkt]]:
    """A download inside the tunnel; ``event`` (else drawn at random) is what the path does
    to its big segments: "icmp" (the head-end's ICMP 3/4, MTU 1347, for every segment sent
    at the old size), "blackhole" (the same, ICMP filtered), "router" (another narrow hop, a
    Linux-style long quote) or nothing. ``loss``: the share of segments lost after the
    capture point (each fast-retransmitted)."""
    rng = ctx.rng
    cmss, smss = _pick(ctx, CLIENT_MSS), _pick(ctx, SERVER_MSS)
    if event is None:
        roll = rng.random()
        if cmss == TUNNEL_MSS:
            event = "icmp" if roll < 0.3 else "blackhole" if roll < 0.38 else None
        elif roll < 0.15:
            event = "router"
    elif event in ("icmp", "blackhole"):
        cmss, smss = TUNNEL_MSS, 1460
    else:
        cmss, smss = 1460, 1460
    size = min(cmss, smss)
    pmtu = None
    if event == "icmp" and size + 40 > ctx.tunnel_mtu:
        pmtu = PmtuEvent(ctx.tunnel_mtu, ASA_INSIDE)
    elif event == "blackhole" and size + 40 > ctx.tunnel_mtu:
        pmtu = PmtuEvent(ctx.tunnel_mtu, None, retries=rng.randrange(3, 7))
    elif event == "router":
        mtu = rng.choice([m for m in ROUTERS if m < size + 40] or [0])
        pmtu = PmtuEvent(mtu, ROUTERS[mtu], quote=548) if mtu else None
    plan = TcpPlan(
        ctx.host(10, 10),
        ctx.host(172, 16),
        _port(ctx),
        443,
        _vlan(ctx),
        cmss,
        smss,
        rtt=rng.randrange(10 * MS, 80 * MS),
        gap=rng.randrange(100, 1500),
        segments=rng.randrange(*segments),
        sized=True,
        loss=loss,
        pmtu=pmtu,
    )
    return [tls_download(ctx, t0, plan)]


def _dtls_plan(
    ctx: Context,
    client: Host,
    rtt: int,
    dtls: tuple[int, bool] | None = None,
    answered: float = 0.6,
) -> DtlsPlan:
    """A DTLS attempt; ``dtls`` = (version, answered) when not drawn at random."""
    rng = ctx.rng
    version, reply = dtls or (_pick(ctx, DTLS_VERSIONS), rng.random() < answered)
    return DtlsPlan(
        client,
        HEADEND,
        _port(ctx),
        443,
        None,
        version,
        answered=reply,
        completed=rng.random() < 0.9,
        attempts=rng.randrange(3, 6),
        early_retry=rng.random() < 0.15,
        rtt=rtt,
        records=rng.randrange(10, 300),
    )


def outer_session(
    ctx: Context,
    t0: int,
    dtls: tuple[int, bool] | None = None,
    segments: tuple[int, int] = (50, 1500),
    dtls_share: float = 0.85,
    answered: float = 0.6,
) -> list[Iterator[Pkt]]:
    """An AnyConnect session as the head-end's outside sees it: TLS (CSTP), then DTLS for
    ``dtls_share`` of them (the rest never try: dtls-absent), ``answered`` of those answered."""
    rng = ctx.rng
    client = ctx.host(100, 64)
    rtt = rng.randrange(20 * MS, 120 * MS)
    plan = TcpPlan(
        client,
        HEADEND,
        _port(ctx),
        443,
        None,
        _pick(ctx, OUTER_CLIENT_MSS),
        HEADEND_MSS,
        rtt=rtt,
        gap=rng.randrange(200, 3000),
        segments=rng.randrange(*segments),
        sized=False,
        loss=0.001,
        outer=True,
    )
    flows = [tls_download(ctx, t0, plan)]
    if dtls or rng.random() < dtls_share:
        plan_d = _dtls_plan(ctx, client, rtt, dtls, answered)
        flows.append(dtls_session(ctx, t0 + 4 * rtt + 50 * MS, plan_d))
    return flows


def dtls_only(ctx: Context, t0: int, dtls: tuple[int, bool] | None = None) -> list[Iterator[Pkt]]:
    """A DTLS attempt whose TLS session began before the capture did."""
    return [
        dtls_session(
            ctx, t0, _dtls_plan(ctx, ctx.host(100, 64), ctx.rng.randrange(20 * MS, 120 * MS), dtls)
        )
    ]


def https_short(ctx: Context, t0: int) -> list[Iterator[Pkt]]:
    rng = ctx.rng
    plan = TcpPlan(
        ctx.host(10, 10),
        ctx.host(172, 16),
        _port(ctx),
        443,
        _vlan(ctx),
        _pick(ctx, CLIENT_MSS),
        _pick(ctx, SERVER_MSS),
        rtt=rng.randrange(5 * MS, 60 * MS),
        gap=rng.randrange(100, 1000),
        segments=rng.randrange(1, 8),
        sized=False,
    )
    return [tls_download(ctx, t0, plan)]


def dns(ctx: Context, t0: int) -> list[Iterator[Pkt]]:
    return [dns_lookup(ctx, t0, ctx.host(10, 10), RESOLVER, _vlan(ctx))]


def arp_noise(ctx: Context, t0: int) -> list[Iterator[Pkt]]:
    asker = Host.v4(10, 0, 0, ctx.rng.randrange(2, 250))
    return [arp_exchange(ctx, t0, asker, GATEWAY, _vlan(ctx))]


# --- one packet per flow (manyflows) and every packet decoded alone (worst) -------------------


def _lone(pkt: Pkt) -> list[Iterator[Pkt]]:
    return [iter((pkt,))]


def lone_syn(ctx: Context, t0: int, odd: bool = False) -> list[Iterator[Pkt]]:
    """A SYN from an endpoint never seen before to a server never seen before. ``odd``: MSS
    after the window scale option, so the analyzer must decode it alone; then the SYN-ACK too."""
    client, cport = ctx.endpoint(100)
    server, _ = ctx.endpoint(10)
    conn = TcpConn(ctx, client, server, cport, 443, None)
    mss = _pick(ctx, CLIENT_MSS)
    frame, tags = conn.segment(0, SYN, options=syn_options(mss, odd))
    syn = Pkt(t0, frame, tags + (("syn", mss), FLOW))
    if not odd:
        return _lone(syn)
    frame, tags = conn.segment(1, SYN | ACK, options=syn_options(1460, odd))
    return [iter((syn, Pkt(t0 + 40, frame, tags + (("synack", 1460),))))]


def lone_tls_hello(ctx: Context, t0: int) -> list[Iterator[Pkt]]:
    """A TLS ClientHello on a connection whose SYN the capture missed, on a new 5-tuple."""
    client, cport = ctx.endpoint(100)
    conn = TcpConn(ctx, client, HEADEND, cport, 443, None, outer=True)
    frame, tags = conn.segment(0, PSH | ACK, tls_client_hello(ctx, "vpn.example.com"))
    return _lone(Pkt(t0, frame, tags + (("tls_ch",), FLOW)))


def lone_dtls(ctx: Context, t0: int, answered: bool = False) -> list[Iterator[Pkt]]:
    """A DTLS ClientHello from a new endpoint; ``answered``: then the HelloVerifyRequest and
    the ClientHello with its cookie, and nothing more (all three are handshake records)."""
    client, cport = ctx.endpoint(100)
    plan = DtlsPlan(
        client,
        HEADEND,
        cport,
        443,
        None,
        _pick(ctx, DTLS_VERSIONS),
        answered=answered,
        completed=False,
        attempts=1,
        early_retry=False,
        rtt=ctx.rng.randrange(20 * MS, 120 * MS),
        records=0,
    )
    return [dtls_session(ctx, t0, plan)]


STUN_BINDING = struct.Struct("!HHI")  # message type, length, magic cookie (RFC 8489 5)
STUN_COOKIE = 0x2112A442


def lone_stun(ctx: Context, t0: int) -> list[Iterator[Pkt]]:
    """A STUN Binding request (RFC 8489 section 5: the magic cookie, a random transaction id)
    from a new endpoint to a new server on 3478: a WebRTC peer's connectivity check, which
    the analyzer remembers per pair in case DTLS follows on the same ports."""
    client, cport = ctx.endpoint(100)
    server, _ = ctx.endpoint(10)
    request = STUN_BINDING.pack(1, 0, STUN_COOKIE) + ctx.rng.randbytes(12)
    frame = Leg(client, server, df=False).udp(cport, 3478, Payload.of(request))
    return _lone(Pkt(t0, frame, (FLOW,)))


def lone_segment(ctx: Context, t0: int) -> list[Iterator[Pkt]]:
    """A full-size DF data segment from the head-end to a new endpoint whose ACKs the capture
    never sees (a one-sided capture: the ACKs take another path), so the analyzer carries it
    as outstanding."""
    client, cport = ctx.endpoint(100)
    conn = TcpConn(ctx, HEADEND, client, 443, cport, None)
    frame, tags = conn.segment(0, PSH | ACK, ctx.app_data(TUNNEL_MSS))
    return _lone(Pkt(t0, frame, tags + (FLOW,)))


#: when a black-holed segment is sent again after its first copy: RTO backoff (us)
BLACK_HOLE_RESENDS = (300 * MS, 900 * MS)


def lone_black_hole(ctx: Context, t0: int) -> list[Iterator[Pkt]]:
    """A full-size DF segment from the head-end to a new endpoint, sent three times (RTO
    backoff), each copy answered by a duplicate ACK that does not cover it: a PMTUD black hole
    with the ICMP lost. At a head-end's rate there are tens of thousands open at once, more
    than the retransmission candidates' ceiling."""
    client, cport = ctx.endpoint(100)
    conn = TcpConn(ctx, HEADEND, client, 443, cport, None)
    seq = conn.nxt[0]
    data = ctx.app_data(TUNNEL_MSS)
    pkts = []
    for k, dt in enumerate((0, *BLACK_HOLE_RESENDS)):
        frame, tags = conn.segment(0, PSH | ACK, data, seq=seq if k else None)
        pkts.append(Pkt(t0 + dt, frame, tags + (FLOW,)))
        pkts.append(Pkt(t0 + dt + MS, conn.ack_frame(1, seq), (FLOW,)))
    return [iter(pkts)]


def lone_icmp(ctx: Context, t0: int) -> list[Iterator[Pkt]]:
    """An ICMP 3/4 from the head-end quoting a 1418-byte DF segment of a new flow (the
    segment itself was dropped before the capture point: only the error is written)."""
    server, sport = ctx.endpoint(10)
    client, cport = ctx.endpoint(100)
    conn = TcpConn(ctx, server, client, sport, cport, None)
    frame, _ = conn.segment(0, PSH | ACK, ctx.app_data(TUNNEL_MSS))
    eth = len(conn.legs[0].eth)
    leg = Leg(ASA_INSIDE, server, df=False, ttl=255)
    error = leg.icmp_frag_needed(ctx.tunnel_mtu, frame[eth : eth + 28])
    return _lone(Pkt(t0, error, (("icmp34", ctx.tunnel_mtu),)))


# --- the mixes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mix:
    name: str
    summary: str
    spawners: tuple[tuple[Spawner, float], ...]
    mean_arrival_us: int  # mean time between two spawns (exponential)
    prelude: bool = True  # open with PRELUDE: one conversation of each kind
    realistic: bool = True  # the realistic-mix targets apply (not to the worst case)


#: Conversations a capture opens with, so that even a few thousand packets hold each fact
#: the benchmark checks: the customer's problem is in the capture they send.
PRELUDE: tuple[Spawner, ...] = (
    partial(outer_session, dtls=(0x0100, False)),
    partial(inner_download, event="icmp"),
    partial(inner_download, event="blackhole"),
    partial(dtls_only, dtls=(0xFEFD, True)),
    partial(inner_download, event="router"),
    partial(dtls_only, dtls=(0xFEFF, True)),
)

_HEADEND_SESSION = partial(outer_session, segments=(8, 50), dtls_share=0.11, answered=0.69)

MIXES: dict[str, Mix] = {
    m.name: m
    for m in (
        Mix(
            "bulk",
            "downloads in and out of the tunnel, AnyConnect sessions, HTTPS, DNS, ARP",
            (
                (inner_download, 0.04),
                (outer_session, 0.012),
                (dtls_only, 0.03),
                (https_short, 0.25),
                (dns, 0.45),
                (arp_noise, 0.218),
            ),
            8 * MS,
        ),
        Mix(
            "headend",
            "a head-end's outside at 9 a.m.: short AnyConnect sessions, some DTLS, DNS, ARP",
            (
                (_HEADEND_SESSION, 0.30),
                (lone_syn, 0.06),  # connection attempts nobody answers
                (partial(inner_download, segments=(20, 200)), 0.004),
                (https_short, 0.05),
                (dns, 0.40),
                (arp_noise, 0.246),
            ),
            900,
        ),
        Mix(
            "handshake10",
            "head-end sessions cut short: about 10 % of packets are handshakes",
            (
                (partial(outer_session, segments=(1, 10), dtls_share=0.3, answered=0.69), 0.45),
                (https_short, 0.15),
                (dns, 0.25),
                (arp_noise, 0.15),
            ),
            600,
        ),
        Mix(
            "icmp",
            "downloads through the 1347-byte tunnel, every oversized segment answered by ICMP 3/4",
            (
                (partial(inner_download, event="icmp", segments=(20, 120)), 0.8),
                (dns, 0.2),
            ),
            3 * MS,
        ),
        Mix(
            "lossy",
            "downloads in the tunnel over a lossy path: 3 % of segments lost, fast-retransmitted",
            (
                (partial(inner_download, loss=0.03), 0.06),
                (https_short, 0.25),
                (dns, 0.45),
                (arp_noise, 0.24),
            ),
            8 * MS,
        ),
        Mix(
            "manyflows",
            "one packet per 5-tuple: SYNs, TLS and DTLS ClientHellos from new endpoints",
            ((lone_syn, 0.6), (lone_tls_hello, 0.3), (lone_dtls, 0.1)),
            20,
            prelude=False,
        ),
        Mix(
            "worst",
            "every packet decoded alone: DTLS handshakes, ICMP 3/4, SYNs with the MSS not first",
            (
                (lone_icmp, 0.4),
                (partial(lone_dtls, answered=True), 0.2),
                (lone_dtls, 0.1),
                (partial(lone_syn, odd=True), 0.3),
            ),
            20,
            prelude=False,
            realistic=False,
        ),
    )
}


def packets(ctx: Context, mix: Mix) -> Iterator[Pkt]:
    """Every conversation's packets merged in time order, endlessly; the caller stops."""
    spawners, weights = zip(*mix.spawners)
    heap: list[tuple[int, int, Pkt, Iterator[Pkt]]] = []
    order = itertools.count()
    prelude = list(PRELUDE) if mix.prelude else []
    rate = 1 / mix.mean_arrival_us
    t_next = 0
    while True:
        while not heap or t_next <= heap[0][0]:
            spawn = prelude.pop(0) if prelude else ctx.rng.choices(spawners, weights)[0]
            for flow in spawn(ctx, t_next):
                first = next(flow, None)
                if first is not None:
                    heapq.heappush(heap, (first.ts, next(order), first, flow))
            t_next += int(ctx.rng.expovariate(rate)) + 1
        _, _, pkt, flow = heapq.heappop(heap)
        yield pkt
        following = next(flow, None)
        if following is not None:
            heapq.heappush(heap, (following.ts, next(order), following, flow))
