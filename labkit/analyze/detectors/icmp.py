"""ICMP errors: "fragmentation needed" (type 3 code 4, RFC 1191) and ICMPv6 "Packet Too Big"
(type 2, RFC 4443 3.2) with the next-hop MTU, plus the flows other unreachables quote.

The quoted original header holds a length and addresses of its own: it is read as a quote
(what did not fit, and for which flow), never counted as a packet. Grouped per MTU; per group
the quoted lengths and the flows they name (bounded).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from labkit.analyze.decode import PROTO_TCP, PROTO_UDP, Quote
from labkit.analyze.engine import ChunkView
from labkit.analyze.evidence import FrameSet

MAX_FLOWS = 64


@dataclass(slots=True)
class FragNeeded:
    v6: bool
    mtu: int
    frames: FrameSet
    original_lengths: Counter = field(default_factory=Counter)
    flows: set[tuple[str, str, int, int | None, int | None]] = field(default_factory=set)
    reporters: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Unreachable:
    """Other ICMP unreachables (port, prohibited...) quoting a UDP/TCP flow: who blocks it."""

    type: int
    code: int
    frames: FrameSet
    flows: set[tuple[str, str, int, int | None, int | None]] = field(default_factory=set)


def flow_of(q: Quote) -> tuple[str, str, int, int | None, int | None]:
    return q.src, q.dst, q.proto, q.sport, q.dport


class IcmpDetector:
    def __init__(self, file: str) -> None:
        self.file = file
        self.frag: dict[tuple[bool, int], FragNeeded] = {}
        self.unreach: dict[tuple[bool, int, int], Unreachable] = {}

    def feed(self, view: ChunkView) -> None:
        for pkt in view.rare:
            err = pkt.icmp
            if err is None:
                continue
            if err.frag_needed and err.mtu is not None:
                g = self.frag.get((err.v6, err.mtu))
                if g is None:
                    clause = (
                        f"icmpv6.type == 2 && icmpv6.mtu == {err.mtu}"
                        if err.v6
                        else f"icmp.type == 3 && icmp.code == 4 && icmp.mtu == {err.mtu}"
                    )
                    g = self.frag[(err.v6, err.mtu)] = FragNeeded(
                        err.v6, err.mtu, FrameSet(self.file, clause)
                    )
                g.frames.add(pkt.frame, pkt.ts)
                g.reporters.add(pkt.src)
                if err.quote is not None:
                    g.original_lengths[err.quote.total_length] += 1
                    if len(g.flows) < MAX_FLOWS:
                        g.flows.add(flow_of(err.quote))
            elif (
                err.quote is not None
                and err.quote.proto in (PROTO_TCP, PROTO_UDP)
                and (err.type == 1 if err.v6 else err.type == 3)
            ):
                key = (err.v6, err.type, err.code)
                u = self.unreach.get(key)
                if u is None:
                    clause = (
                        f"icmpv6.type == {err.type} && icmpv6.code == {err.code}"
                        if err.v6
                        else f"icmp.type == {err.type} && icmp.code == {err.code}"
                    )
                    u = self.unreach[key] = Unreachable(
                        err.type, err.code, FrameSet(self.file, clause)
                    )
                u.frames.add(pkt.frame, pkt.ts)
                if len(u.flows) < MAX_FLOWS:
                    u.flows.add(flow_of(err.quote))

    def quoted_flows(self) -> set[tuple[str, str, int, int | None, int | None]]:
        return {f for g in self.frag.values() for f in g.flows}
