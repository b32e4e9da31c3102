"""Inputs of each kind at any size N: for checks that labkit's cost per item does not grow.

A quadratic path hides at the sizes tests use (a few hundred DTLS pairs cost nothing) and
shows at a head-end's (40 k pairs: half a minute). The check that finds it times the same
code on N and 2N items of one kind and compares the cost per item; these are the inputs:

* captures (:func:`capture`): ``flows`` (SYNs, each on a 5-tuple and to a server never seen
  before), ``dtls_pairs`` (DTLS ClientHello, HelloVerifyRequest, ClientHello with cookie, per
  new client), ``tls_handshakes`` (TLS ClientHellos, each on its own 5-tuple), ``icmp_errors``
  (ICMP 3/4 quoting a 1418-byte DF segment of a new flow), ``stun_checks`` (a STUN Binding
  request from a new endpoint: a pair key the DTLS detector remembers), ``hello_seqs`` (a DTLS
  ClientHello from one of four clients with a message_seq that client never sent before),
  ``one_sided`` (a full-size data segment to a new endpoint, never acknowledged: a capture
  that misses the ACKs' direction), ``black_holes`` (a full-size segment to a new endpoint
  sent three times, each copy answered by a duplicate ACK: tens of thousands open at once,
  past the retransmission candidates' ceiling);
* text (:func:`syslog`, :func:`keylog`, :func:`scenario`): ASA syslog lines of AnyConnect
  sessions, NSS key-log lines with distinct client randoms, scenario timeline steps.

Each is deterministic (seeded), built with the benchmark generator's pieces.
"""

from __future__ import annotations

import io
import random
import struct
from collections.abc import Iterator
from functools import partial

from benchmarks.generate import EPOCH_US
from benchmarks.mixes import (
    HEADEND,
    Spawner,
    lone_black_hole,
    lone_dtls,
    lone_icmp,
    lone_segment,
    lone_stun,
    lone_syn,
    lone_tls_hello,
)
from benchmarks.traffic import FLOW, Context, Pkt
from benchmarks.wire import Host, Leg, Payload
from labkit.pcapio.writer import PcapFileWriter
from labkit.wire import LINKTYPE_ETHERNET

ITEM_GAP_US = 20  # one item starts every 20 us: 50 k a second, a head-end's busiest
SEQ_CLIENTS = 4  # the clients of ``hello_seqs``
#: a DTLS ClientHello's body: version 0x0100, a zero random, no session id or cookie, one
#: suite, null compression
_HELLO_BODY = b"\x01\x00" + bytes(32) + b"\x00\x00\x00\x02\x00\x35\x01\x00"


def hello_seq(ctx: Context, t0: int) -> list[Iterator[Pkt]]:
    """Item ``t0 // ITEM_GAP_US`` of ``hello_seqs``: a ClientHello from one of
    :data:`SEQ_CLIENTS` clients to the head-end, from a new source port, with a message_seq
    (and record sequence number) that client never sent before. Each pair's distinct
    message_seq values, what tells a retransmitted hello from a new attempt, grow with the
    items (up to 65 536 a pair: 262 144 items)."""
    i = t0 // ITEM_GAP_US
    seq = i // SEQ_CLIENTS
    if seq > 0xFFFF:
        raise ValueError(f"hello_seqs: at most {SEQ_CLIENTS << 16} items")
    n = len(_HELLO_BODY).to_bytes(3, "big")
    hs = b"\x01" + n + seq.to_bytes(2, "big") + b"\x00\x00\x00" + n + _HELLO_BODY
    record = struct.pack("!BHHH", 22, 0x0100, 0, 0) + seq.to_bytes(4, "big")
    record += len(hs).to_bytes(2, "big") + hs
    client = Host.v4(100, 64, 0, 1 + i % SEQ_CLIENTS)
    frame = Leg(client, HEADEND, df=False).udp(1024 + seq, 443, Payload.of(record))
    return [iter((Pkt(t0, frame, (FLOW,)),))]


#: Capture kinds: the conversation that makes one item.
CAPTURE_KINDS: dict[str, Spawner] = {
    "flows": lone_syn,
    "dtls_pairs": partial(lone_dtls, answered=True),
    "tls_handshakes": lone_tls_hello,
    "icmp_errors": lone_icmp,
    "stun_checks": lone_stun,
    "hello_seqs": hello_seq,
    "one_sided": lone_segment,
    "black_holes": lone_black_hole,
}
#: The kinds whose every item opens a new flow, at any N (``hello_seqs`` is one pair's
#: message_seq values: 16 bits of them): what ``benchmarks.run --per-flow`` measures.
PER_FLOW_KINDS = (
    "flows",
    "dtls_pairs",
    "tls_handshakes",
    "icmp_errors",
    "stun_checks",
    "one_sided",
)
#: Packets one item of each capture kind is made of.
PACKETS_PER_ITEM = {
    "flows": 1,
    "dtls_pairs": 3,
    "tls_handshakes": 1,
    "icmp_errors": 1,
    "stun_checks": 1,
    "hello_seqs": 1,
    "one_sided": 1,
    "black_holes": 6,
}


def capture(kind: str, n: int, seed: int = 1) -> bytes:
    """A pcap of exactly ``n`` items of ``kind`` (see :data:`CAPTURE_KINDS`), every packet of
    each, in time order."""
    ctx = Context(seed)
    spawn = CAPTURE_KINDS[kind]
    pkts = [p for i in range(n) for flow in spawn(ctx, i * ITEM_GAP_US) for p in flow]
    pkts.sort(key=lambda p: p.ts)  # stable: an item's packets at one instant keep their order
    out = io.BytesIO()
    writer = PcapFileWriter(out, LINKTYPE_ETHERNET)
    for pkt in pkts:
        writer.write(EPOCH_US + pkt.ts, pkt.frame)
    return out.getvalue()


_SESSION = (
    "%ASA-6-113039: Group <ac_users_group> User <{user}> IP <{ip}> AnyConnect parent session "
    "started.",
    "%ASA-6-722022: Group <ac_users_group> User <{user}> IP <{ip}> TCP SVC connection "
    "established without compression",
    "%ASA-6-722036: Group <ac_users_group> User <{user}> IP <{ip}> Transmitting large packet "
    "1418 (threshold 1347).",
    "%ASA-6-602101: PMTU-D packet 1418 bytes greater than effective mtu 1347, "
    "dest_addr={inner}, src_addr=192.168.10.20, prot=TCP",
    "%ASA-4-722037: Group <ac_users_group> User <{user}> IP <{ip}> SVC closing connection: "
    "Reconnecting.",
)


def syslog(n: int) -> str:
    """``n`` ASA syslog lines (a syslog server's RFC 3164 prefix, then the ASA's timestamp):
    AnyConnect sessions of distinct users, five messages each, one second apart."""
    lines = []
    for i in range(n):
        s, m = divmod(i, len(_SESSION))
        t = i  # seconds after midnight
        stamp = f"{t // 3600 % 24:02d}:{t // 60 % 60:02d}:{t % 60:02d}"
        day = 16 + t // 86400
        ip = f"10.{64 + (s >> 16) % 64}.{(s >> 8) & 255}.{s & 255}"
        body = _SESSION[m].format(user=f"u{s}", ip=ip, inner=f"192.168.{(s >> 8) & 255}.{s & 255}")
        lines.append(f"<166>Nov {day} {stamp} 10.1.1.2 Nov {day} 2022 {stamp} asa : {body}")
    return "\n".join(lines) + "\n"


def keylog(n: int, seed: int = 1) -> str:
    """``n`` NSS key-log lines: TLS 1.2 ``CLIENT_RANDOM`` entries, every random distinct."""
    rng = random.Random(seed)
    lines = ["# TLS secrets log file, generated by labkit benchmarks/scaling.py"]
    for i in range(n):
        client_random = i.to_bytes(8, "big") + rng.randbytes(24)
        lines.append(f"CLIENT_RANDOM {client_random.hex()} {rng.randbytes(48).hex()}")
    return "\n".join(lines) + "\n"


#: Scenario steps beside the ``n`` flows :func:`scenario` adds: the connect and the DTLS try.
SCENARIO_FIXED_STEPS = 2


def scenario(n: int) -> str:
    """A scenario (the seed's case: DTLS blocked, ICMP allowed) whose timeline has ``n`` flow
    steps after the connect and the DTLS attempts, 2 s apart."""
    flows = "\n".join(
        f"  - {{step: flow, at: {1 + 2 * i}, segments: 4, retries: 3}}" for i in range(n)
    )
    return f"""\
name: scaling-{n}
seed: 1
hosts:
  client: {{outside: 192.0.2.10, tunnel: 198.51.100.10}}
  head_end: {{outside: 192.0.2.1, inside: 203.0.113.1, name: vpn.example.com}}
  server: {{address: 203.0.113.80, port: 5201}}
path:
  dtls_udp_blocked: true
timeline:
  - {{step: connect, at: 0}}
  - {{step: dtls, at: 0.2, attempts: 4, timeout: 1, reconnect_delay: 1}}
{flows}
"""
