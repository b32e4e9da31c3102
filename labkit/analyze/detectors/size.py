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
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np

from labkit.analyze import decode as dec
from labkit.analyze.engine import ChunkView, KeyTable, pair
from labkit.analyze.evidence import MAX_FRAMES
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
        self.table = KeyTable(src=np.uint64, dst=np.uint64, size=np.int64)
        # by key id (the order keys first appeared): its first frames and their times
        self.frames = np.zeros((0, MAX_FRAMES), np.int64)
        self.times = np.zeros((0, MAX_FRAMES), np.float64)
        self.kept = np.zeros(0, np.int64)
        self._room = np.zeros(_ROOM_MASK + 1, bool)  # by a key's low bits: it may have room

    def feed(self, view: ChunkView) -> None:
        c = view.cols
        rows = _df_rows(c)
        if not len(rows):
            return
        src, dst, size = c.src_h[rows], c.dst_h[rows], c.iplen[rows]
        key = dec.mix64(pair(src, dst) ^ (size.astype(np.uint64) * _K))
        known = len(self.table.keys)
        if self.table.add(key, src=src, dst=dst, size=size):
            t = self.table
            self._grow(len(t.keys))
            self._room[t.keys[t.ids >= known] & _ROOM_MASK] = True  # new keys have room
        # A key's first frames are often all in by its second chunk: a 64 K-entry bitmap of
        # keys with room (by their low bits; mixed, so uniform) skips the rows of full keys
        # with one gather instead of a search per row.
        maybe = self._room[key & _ROOM_MASK]
        if maybe.any() and self._keep_first(self.table.ids_of(key[maybe]), rows[maybe], view):
            self._mark_room()

    def _grow(self, n: int) -> None:
        """Room for ``n`` keys' frames, doubling: keys arrive a few per chunk. Slots beyond
        :attr:`kept` are never read, so they need no initial value."""
        if n <= len(self.kept):
            return
        size = max(n, 2 * len(self.kept))
        frames, times, kept = (
            np.empty((size, MAX_FRAMES), np.int64),
            np.empty((size, MAX_FRAMES)),
            np.zeros(size, np.int64),
        )
        old = len(self.kept)
        frames[:old], times[:old], kept[:old] = self.frames, self.times, self.kept
        self.frames, self.times, self.kept = frames, times, kept

    def _mark_room(self) -> None:
        """Recompute the bitmap of keys with room after some filled up."""
        t = self.table
        self._room[:] = False
        self._room[t.keys[self.kept[t.ids] < MAX_FRAMES] & _ROOM_MASK] = True

    def _keep_first(self, ids: np.ndarray, rows: np.ndarray, view: ChunkView) -> bool:
        """Store each row in its key's next free slot while the key has room; True when some
        key filled up. Rows are sorted by (key id, row) packed in one word: frame order
        within each key (a chunk's rows fit in :data:`_ROW_BITS` bits)."""
        packed = np.sort((ids.astype(np.uint64) << _ROW_BITS) | rows.astype(np.uint64))
        ids = (packed >> _ROW_BITS).astype(np.int64)
        rows = (packed & _ROW_MASK).astype(np.int64)
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        counts = np.diff(np.r_[starts, len(ids)])
        slot = self.kept[ids] + np.arange(len(ids)) - np.repeat(starts, counts)
        ok = slot < MAX_FRAMES
        self.frames[ids[ok], slot[ok]] = view.frames[rows[ok]]
        self.times[ids[ok], slot[ok]] = view.ts[rows[ok]]
        keys = ids[starts]
        before = self.kept[keys]
        self.kept[keys] = np.minimum(before + counts, MAX_FRAMES)
        return bool(((before < MAX_FRAMES) & (self.kept[keys] == MAX_FRAMES)).any())

    def _selected(self, excluded: Iterable[int]) -> np.ndarray:
        """Entries of the table whose pair has no excluded address."""
        t = self.table
        ex = np.array(sorted(set(excluded)), np.uint64)
        return ~np.isin(t["src"], ex) & ~np.isin(t["dst"], ex)

    def over(self, limit: int, excluded: Iterable[int] = ()) -> Counter:
        """Packet counts by IP size above ``limit``, leaving out pairs with an excluded address."""
        t = self.table
        keep = (t["size"] > limit) & self._selected(excluded)
        sizes, idx = np.unique(t["size"][keep], return_inverse=True)
        counts = np.bincount(idx, weights=t.count[keep], minlength=len(sizes)) if len(sizes) else []
        return Counter({int(s): int(n) for s, n in zip(sizes.tolist(), list(counts))})

    def first_frames(
        self, limit: int, size: int | None, excluded: Iterable[int] = ()
    ) -> list[tuple[int, float]]:
        """The first :data:`MAX_FRAMES` (frame, time) of the packets larger than ``limit`` (or
        of exactly ``size`` bytes), leaving out pairs with an excluded address."""
        t = self.table
        hit = (t["size"] == size) if size is not None else (t["size"] > limit)
        ids = t.ids[hit & self._selected(excluded)]
        filled = np.arange(MAX_FRAMES) < self.kept[ids][:, None]
        frames, times = self.frames[ids][filled], self.times[ids][filled]
        first = np.argsort(frames, kind="stable")[:MAX_FRAMES]
        return list(zip(frames[first].tolist(), times[first].tolist()))
