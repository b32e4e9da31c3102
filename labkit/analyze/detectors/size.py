"""Sizes of DF packets per address pair: which packets could not cross a smaller tunnel MTU.

Counts every IPv4 packet with DF set and every IPv6 packet (routers never fragment IPv6,
RFC 8200 section 5) of at least :data:`FLOOR` bytes, per (source, destination, IP length).
The tunnel MTU is known only at the end (ICMP, ``--tunnel-mtu``), and so are the head-ends
whose own TLS/DTLS packets are not tunnel traffic; the case decides what is oversized.
ICMP and ICMPv6 packets are left out: their quoted headers are not packets.

The table is numpy only: sorted (pair, size) hashes with the pair's two address hashes, the
size and the count, merged per chunk with one sort. No Python runs per packet or per group,
so a capture with thousands of hosts and every size in between costs the same per packet.
Evidence frames are not kept here: once the limit and the head-ends are known, the case asks
for the first matching frames in an early-stopping pass (:func:`evidence_frames`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np

from labkit.analyze import decode as dec
from labkit.analyze.engine import ChunkView, KeyTable, pair
from labkit.analyze.evidence import MAX_FRAMES, FrameSet
from labkit.analyze.reader import open_capture
from labkit.mtu import MIN_IPV4_MTU

FLOOR = MIN_IPV4_MTU  #: no tunnel MTU is smaller, so smaller packets are never oversized
EVIDENCE_CHUNK = 2 << 20  #: the evidence re-read usually stops within its first chunk
_K = np.uint64(0x9E3779B97F4A7C15)


def _df_rows(c: dec.Columns) -> np.ndarray:
    return np.flatnonzero(
        c.df & (c.iplen >= FLOOR) & (c.proto != dec.PROTO_ICMP) & (c.proto != dec.PROTO_ICMPV6)
    )


class SizeDetector:
    def __init__(self, file: str) -> None:
        self.file = file
        # (address pair, IP size) -> packets; each entry's address hashes and size
        self.table = KeyTable(src=np.uint64, dst=np.uint64, size=np.int64)

    def feed(self, view: ChunkView) -> None:
        c = view.cols
        rows = _df_rows(c)
        if not len(rows):
            return
        src, dst, size = c.src_h[rows], c.dst_h[rows], c.iplen[rows]
        key = dec.mix64(pair(src, dst) ^ (size.astype(np.uint64) * _K))
        self.table.add(key, src=src, dst=dst, size=size)

    def over(self, limit: int, excluded: Iterable[int] = ()) -> Counter:
        """Packet counts by IP size above ``limit``, leaving out pairs with an excluded address."""
        t = self.table
        ex = np.array(sorted(set(excluded)), np.uint64)
        keep = (t["size"] > limit) & ~np.isin(t["src"], ex) & ~np.isin(t["dst"], ex)
        sizes, idx = np.unique(t["size"][keep], return_inverse=True)
        counts = np.bincount(idx, weights=t.count[keep], minlength=len(sizes)) if len(sizes) else []
        return Counter({int(s): int(n) for s, n in zip(sizes.tolist(), list(counts))})


def evidence_frames(
    path: str,
    clauses: dict[str, tuple[Callable[[dec.Columns], np.ndarray], int]],
    file: str,
    df_only: bool = True,
) -> dict[str, FrameSet]:
    """The first :data:`MAX_FRAMES` frames matching each predicate, in one early-stopping pass.

    ``clauses`` maps a display-filter clause to (a vectorized predicate over a chunk's columns
    that selects the same packets, the total count known from the first pass). Reading stops
    as soon as every clause has its frames, usually within the first chunk.
    """
    sets = {cl: FrameSet(file, cl) for cl in clauses}
    with open_capture(path) as cap:
        for chunk in cap.chunks(EVIDENCE_CHUNK):
            cols = dec.columns(chunk)
            base = np.zeros(len(chunk), bool)
            if df_only:
                base[_df_rows(cols)] = True
            else:
                base[:] = True
            for cl, (pred, _total) in clauses.items():
                fs = sets[cl]
                room = MAX_FRAMES - len(fs.frames)
                if room <= 0:
                    continue
                hit = np.flatnonzero(base & pred(cols))[:room]
                fs.frames.extend(zip(chunk.frames[hit].tolist(), chunk.ts[hit].tolist()))
            if all(len(fs.frames) >= min(MAX_FRAMES, clauses[cl][1]) for cl, fs in sets.items()):
                break
    for cl, fs in sets.items():
        fs.count = max(clauses[cl][1], len(fs.frames))
    return sets
