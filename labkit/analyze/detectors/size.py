"""Sizes of DF packets per address pair: which packets could not cross a smaller tunnel MTU.

Counts every IPv4 packet with DF set and every IPv6 packet (routers never fragment IPv6,
RFC 8200 section 5) of at least :data:`FLOOR` bytes, per (source, destination, IP length),
with the first frames of each. The tunnel MTU is known only at the end (ICMP, ``--tunnel-mtu``),
and so are the head-ends whose own TLS/DTLS packets are not tunnel traffic; the case decides
what is oversized. ICMP and ICMPv6 packets are left out: their quoted headers are not packets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labkit.analyze import decode as dec
from labkit.analyze.engine import ChunkView, pair
from labkit.analyze.evidence import MAX_FRAMES
from labkit.mtu import MIN_IPV4_MTU

FLOOR = MIN_IPV4_MTU  #: no tunnel MTU is smaller, so smaller packets are never oversized
_K = np.uint64(0x9E3779B97F4A7C15)


@dataclass(slots=True)
class SizeCount:
    count: int = 0
    frames: list[tuple[int, float]] = field(default_factory=list)


@dataclass(slots=True)
class PairSizes:
    src: str
    dst: str
    ipver: int
    sizes: dict[int, SizeCount] = field(default_factory=dict)


class SizeDetector:
    def __init__(self, file: str) -> None:
        self.file = file
        self.pairs: dict[int, PairSizes] = {}

    def feed(self, view: ChunkView) -> None:
        c = view.cols
        sel = c.df & (c.iplen >= FLOOR) & (c.proto != dec.PROTO_ICMP) & (c.proto != dec.PROTO_ICMPV6)
        rows = np.flatnonzero(sel)
        if not len(rows):
            return
        ph = pair(c.src_h[rows], c.dst_h[rows])
        size = c.iplen[rows]
        key = dec.mix64(ph ^ (size.astype(np.uint64) * _K))
        order = np.argsort(key, kind="stable")
        ks = key[order]
        starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
        ends = np.r_[starts[1:], len(ks)]
        frames, ts = view.frames, view.ts
        for st, en in zip(starts.tolist(), ends.tolist()):
            first = int(order[st])
            p = int(ph[first])
            ps = self.pairs.get(p)
            if ps is None:
                r = int(rows[first])
                pkt = dec.decode(view.chunk.packet(r), int(view.chunk.linktype[r]))
                ps = self.pairs[p] = PairSizes(pkt.src, pkt.dst, pkt.ipver)
            sz = int(size[first])
            sc = ps.sizes.get(sz)
            if sc is None:
                sc = ps.sizes[sz] = SizeCount()
            sc.count += en - st
            room = MAX_FRAMES - len(sc.frames)
            if room > 0:
                for o in order[st:min(en, st + room)].tolist():
                    r = int(rows[o])
                    sc.frames.append((int(frames[r]), float(ts[r])))
