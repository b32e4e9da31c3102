"""Sizes of DF packets per address pair: which packets could not cross a smaller tunnel MTU.

Counts every IPv4 packet with DF set and every IPv6 packet (routers never fragment IPv6,
RFC 8200 section 5) of at least :data:`FLOOR` bytes, per (source, destination, IP length).
The tunnel MTU is known only at the end (ICMP, ``--tunnel-mtu``), and so are the head-ends
whose own TLS/DTLS packets are not tunnel traffic; the case decides what is oversized.
ICMP and ICMPv6 packets are left out: their quoted headers are not packets.

The table is numpy only: sorted (pair, size) hashes with the pair's two address hashes, the
size and the count, merged per chunk with one sort. No Python runs per packet or per group,
so a capture with thousands of hosts and every size in between costs the same per packet.

Evidence is kept during the same pass, so that no later stage reads the capture again (a pipe
can be read only once): for every (pair, size) key its first :data:`MAX_FRAMES` frames. Any
selection the case makes later (sizes above a limit, or one size, leaving out the head-ends'
pairs) is a union of keys, and the first frames of a union are among the first frames of its
keys: :meth:`SizeDetector.first_frames` is exact. Memory follows the keys, as the counts do.
:class:`DfSelection` says which packets are evidence once, for the filter and the table.

A capture taken on a host with segmentation offload (TSO/GSO, the default on Linux, Windows
and macOS) shows TCP segments as the stack handed them to the NIC, tens of KB each; one taken
with receive coalescing (GRO/LRO) shows merged segments. Neither size was ever on the wire. No
peer sends a segment larger than the MSS its receiver announced (RFC 9293 3.7.1), so a TCP
payload above every MSS announced in the file (:meth:`FileFacts.segment_ceiling`) marks such a
super-segment: each key keeps its TCP payload length, and the case leaves those keys out of
size verdicts (``!(tcp.len > N)`` in the filter, the same test over the table).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from labkit.analyze import decode as dec
from labkit.analyze.engine import Appended, ChunkView, KeyTable, grown, pair
from labkit.analyze.evidence import MAX_FRAMES, any_of, paren
from labkit.mtu import MIN_IPV4_MTU

FLOOR = MIN_IPV4_MTU  #: no tunnel MTU is smaller, so smaller packets are never oversized
_K = np.uint64(0x9E3779B97F4A7C15)
_ROOM_MASK = np.uint64((1 << 16) - 1)
_ROW_BITS = np.uint64(20)  # a chunk holds fewer than 2^20 records (reader.MAX_ROWS)
_ROW_MASK = np.uint64((1 << 20) - 1)


def _df_rows(c: dec.Columns) -> np.ndarray:
    return np.flatnonzero(
        c.df & (c.iplen >= FLOOR) & (c.proto != dec.PROTO_ICMP) & (c.proto != dec.PROTO_ICMPV6)
    )


class SizeDetector:
    def __init__(self, file: str) -> None:
        self.file = file
        # (address pair, IP size) -> packets; each entry's address hashes and size
        self.table = KeyTable(src=np.uint64, dst=np.uint64, size=np.int64, tcplen=np.int64)
        # Each key's first frames, appended as they come (key id, frame, time): most keys
        # hold one or two packets, so a row per kept frame costs a tenth of a fixed
        # MAX_FRAMES slots per key.
        self.frames = Appended(id=np.int32, frame=np.int64, ts=np.float64)
        self.kept = np.zeros(0, np.uint8)  # by key id (the order keys first appeared)
        #: By a key's low bits: how many keys with those bits still have room for frames
        self._room = np.zeros(_ROOM_MASK + 1, np.int64)

    def feed(self, view: ChunkView) -> None:
        c = view.cols
        rows = _df_rows(c)
        if not len(rows):
            return
        src, dst, size = c.src_h[rows], c.dst_h[rows], c.iplen[rows]
        tcplen = np.where(c.proto[rows] == dec.PROTO_TCP, c.paylen[rows], -1)
        key = dec.mix64(pair(src, dst) ^ (size.astype(np.uint64) * _K) ^ tcplen.astype(np.uint64))
        known = len(self.table.keys)
        if self.table.add(key, src=src, dst=dst, size=size, tcplen=tcplen):
            t = self.table
            self.kept = grown(self.kept, len(t.keys))
            np.add.at(self._room, t.keys[known:] & _ROOM_MASK, 1)  # new keys have room
        # A key's first frames are often all in by its second chunk: 64 K counts of keys with
        # room (by their low bits; mixed, so uniform) skip the rows of full keys with one
        # gather instead of a search per row. A key that fills up leaves its count at once,
        # so the counts never need recounting over every key.
        maybe = self._room[key & _ROOM_MASK] > 0
        if maybe.any():
            full = self._keep_first(self.table.ids_of(key[maybe]), rows[maybe], view)
            np.add.at(self._room, self.table.keys[full] & _ROOM_MASK, -1)

    def _keep_first(self, ids: np.ndarray, rows: np.ndarray, view: ChunkView) -> np.ndarray:
        """Store each row in its key's next free slot while the key has room; the ids of the
        keys that filled up. Rows are sorted by (key id, row) packed in one word: frame order
        within each key (a chunk's rows fit in :data:`_ROW_BITS` bits)."""
        packed = np.sort((ids.astype(np.uint64) << _ROW_BITS) | rows.astype(np.uint64))
        ids = (packed >> _ROW_BITS).astype(np.int64)
        rows = (packed & _ROW_MASK).astype(np.int64)
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        counts = np.diff(np.r_[starts, len(ids)])
        slot = self.kept[ids] + np.arange(len(ids)) - np.repeat(starts, counts)
        ok = slot < MAX_FRAMES
        self.frames.append(id=ids[ok], frame=view.frames[rows[ok]], ts=view.ts[rows[ok]])
        keys = ids[starts]
        before = self.kept[keys].astype(np.int64)
        self.kept[keys] = np.minimum(before + counts, MAX_FRAMES)
        return keys[(before < MAX_FRAMES) & (self.kept[keys] == MAX_FRAMES)]

    def offloaded(self, ceiling: int) -> tuple[int, int]:
        """(packets, largest IP size) of TCP segments with a payload above ``ceiling``."""
        t = self.table
        hit = t["tcplen"] > ceiling
        if not hit.any():
            return 0, 0
        return int(t.count[hit].sum()), int(t["size"][hit].max())

    def over(self, limit: int) -> Counter:
        """Packet counts by IP size above ``limit`` (every pair)."""
        return DfSelection((), limit).counts(self)

    def counts(self, keep: np.ndarray) -> Counter:
        """Packet counts by IP size of the table entries ``keep`` selects."""
        t = self.table
        sizes, idx = np.unique(t["size"][keep], return_inverse=True)
        counts = (
            np.bincount(idx, weights=t.count[keep], minlength=len(sizes))
            if len(sizes)
            else np.zeros(0)
        )
        return Counter({int(s): int(n) for s, n in zip(sizes.tolist(), list(counts))})

    def first_frames(self, keep: np.ndarray) -> list[tuple[int, float]]:
        """The first :data:`MAX_FRAMES` (frame, time) of the entries ``keep`` selects."""
        chosen = np.zeros(len(self.kept), bool)
        chosen[self.table.ids[keep]] = True
        kept = self.frames
        mine = chosen[kept["id"]]
        frames, times = kept["frame"][mine], kept["ts"][mine]
        first = np.argsort(frames, kind="stable")[:MAX_FRAMES]
        return list(zip(frames[first].tolist(), times[first].tolist()))


@dataclass(frozen=True, slots=True)
class DfSelection:
    """Which DF packets are evidence, said once and compiled twice, so that the display
    filter and the frames it is checked against cannot drift apart: IPv4 packets with DF and
    IPv6 packets (ICMP left out, as in :class:`SizeDetector`) larger than ``limit`` or, with
    ``size``, of exactly that IP length (IPv6: payload + 40), leaving out every packet to or
    from a head-end (its TLS/DTLS segments are the tunnel, not tunnel traffic)."""

    headends: tuple[str, ...]
    limit: int
    size: int | None = None
    #: TCP payloads above this are offload super-segments, not wire packets: left out (None:
    #: the file has none, and the filter says nothing of them).
    ceiling: int | None = None

    def wireshark(self) -> str:
        """The display filter (every clause parenthesised: precedence differs by version)."""
        if self.size is not None:
            v4_size, v6_size = f"ip.len == {self.size}", f"ipv6.plen == {self.size - 40}"
        else:  # the table holds nothing below FLOOR: the same packets, and a shorter filter
            lim = max(self.limit, FLOOR - 1)
            v4_size, v6_size = f"ip.len > {lim}", f"ipv6.plen > {lim - 40}"
        v4 = f"ip.flags.df == 1 && {v4_size} && !icmp"
        v6 = f"{v6_size} && !icmpv6"
        if self.ceiling is not None:
            v4 += f" && !(tcp.len > {self.ceiling})"
            v6 += f" && !(tcp.len > {self.ceiling})"
        heads = sorted(self.headends)
        ex4 = any_of(f"ip.addr == {h}" for h in heads if ":" not in h)
        ex6 = any_of(f"ipv6.addr == {h}" for h in heads if ":" in h)
        if ex4:
            v4 += f" && !{paren(ex4)}"
        if ex6:
            v6 += f" && !{paren(ex6)}"
        return f"{paren(v4)} || {paren(v6)}"

    def entries(self, det: SizeDetector) -> np.ndarray:
        """The same selection over the detector's (pair, size) table."""
        t = det.table
        hit = (t["size"] == self.size) if self.size is not None else (t["size"] > self.limit)
        ex = np.array(sorted({dec.addr_hash(h) for h in self.headends}), np.uint64)
        if self.ceiling is not None:
            hit &= t["tcplen"] <= self.ceiling
        return hit & ~np.isin(t["src"], ex) & ~np.isin(t["dst"], ex)

    def counts(self, det: SizeDetector) -> Counter:
        return det.counts(self.entries(det))

    def first_frames(self, det: SizeDetector) -> list[tuple[int, float]]:
        return det.first_frames(self.entries(det))
