"""SYN MSS per direction: what each TCP endpoint announces it can receive (RFC 9293 3.7.1).

An MSS says which MTU the announcing host sized its packets for: MSS + 40 (IPv4) or + 60
(IPv6) (:func:`labkit.mtu.mtu_for_mss`). Inside the tunnel, SYNs carry the adapter MTU's MSS
(1418 - 40 = 1378 in the seed's case); the outer TLS connection to the head-end carries the
physical path's. Which SYN is which is decided once the head-ends are known (case level), so
SYNs are counted per (SYN or SYN-ACK, MSS, IP version, server) in a numpy table, and the first
frames of each (SYN or SYN-ACK, MSS, IP version) group are kept with their server: the case
splits them by role. The first frames of each (SYN or SYN-ACK, MSS, IP version, server) are
kept too (at most :data:`MAX_FRAMES` each, so Python touches a SYN only while its server's
list is filling): a role's evidence is then exact whatever the order of the SYNs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labkit.analyze import decode as dec
from labkit.analyze.engine import ChunkView, tally
from labkit.analyze.evidence import MAX_FRAMES


@dataclass(slots=True)
class SynGroup:
    """SYNs (or SYN-ACKs) announcing one MSS: the first frames, each with its server."""

    synack: bool
    mss: int
    ipver: int
    count: int = 0
    frames: list[tuple[int, float, int, str]] = field(default_factory=list)  # frame, ts, server hash, server

    @property
    def complete(self) -> bool:
        return self.count == len(self.frames)


class MssDetector:
    def __init__(self, file: str) -> None:
        self.file = file
        self.groups: dict[tuple[bool, int, int], SynGroup] = {}
        # (synack, MSS, IP version, server) -> count, as sorted numpy columns
        self.keys = np.zeros(0, np.uint64)
        self.k_synack = np.zeros(0, bool)
        self.k_mss = np.zeros(0, np.int64)
        self.k_ipver = np.zeros(0, np.int64)
        self.k_server = np.zeros(0, np.uint64)
        self.k_count = np.zeros(0, np.int64)
        self.k_entry = np.zeros(0, np.int64)  # sorted position -> index in entry_frames
        self.entry_frames: list[list[tuple[int, float]]] = []
        self.entry_full = np.zeros(0, bool)

    def feed(self, view: ChunkView) -> None:
        c = view.cols
        ok = view.syn_mss >= 0
        rows, mss = view.syn_rows[ok], view.syn_mss[ok]
        # SYNs whose MSS is not the first option came decoded (rare).
        extra = [(r, p.tcp.mss) for r, p in zip(view.rare_rows.tolist(), view.rare)
                 if p.tcp is not None and p.tcp.syn and p.tcp.mss is not None]
        if extra:
            e_rows = np.array([r for r, _m in extra], np.int64)
            keep = ~np.isin(e_rows, rows)
            rows = np.r_[rows, e_rows[keep]]
            mss = np.r_[mss, np.array([m for _r, m in extra], np.int64)[keep]]
            o = np.argsort(rows, kind="stable")
            rows, mss = rows[o], mss[o]
        if not len(rows):
            return
        synack = (c.flags[rows] & dec.TCP_ACK) != 0
        server = np.where(synack, c.src_h[rows], c.dst_h[rows])
        ipver = c.ipver[rows]
        self._count(view, rows, synack, mss, ipver, server)
        self._frames(view, rows, synack, mss, ipver, server)

    def _count(self, view: ChunkView, rows, synack, mss, ipver, server) -> None:
        tag = ((ipver.astype(np.uint64) << np.uint64(20)) | (mss.astype(np.uint64) << np.uint64(1))
               | synack.astype(np.uint64))
        key = dec.mix64(server ^ dec.mix64(tag))
        uk, first, counts = tally(key)
        pos = np.minimum(np.searchsorted(self.keys, uk), max(len(self.keys) - 1, 0))
        found = self.keys[pos] == uk if len(self.keys) else np.zeros(len(uk), bool)
        self.k_count[pos[found]] += counts[found]
        new = ~found
        if new.any():
            f = first[new]
            base = len(self.entry_frames)
            self.entry_frames += [[] for _ in range(int(new.sum()))]
            self.entry_full = np.concatenate([self.entry_full, np.zeros(int(new.sum()), bool)])
            keys = np.concatenate([self.keys, uk[new]])
            o = np.argsort(keys, kind="stable")
            self.keys = keys[o]
            self.k_synack = np.concatenate([self.k_synack, synack[f]])[o]
            self.k_mss = np.concatenate([self.k_mss, mss[f]])[o]
            self.k_ipver = np.concatenate([self.k_ipver, ipver[f]])[o]
            self.k_server = np.concatenate([self.k_server, server[f]])[o]
            self.k_count = np.concatenate([self.k_count, counts[new]])[o]
            self.k_entry = np.concatenate([self.k_entry, np.arange(base, base + int(new.sum()))])[o]
        # First frames per (direction, MSS, version, server), while its list is not full.
        ent = self.k_entry[np.searchsorted(self.keys, key)]
        needy = np.flatnonzero(~self.entry_full[ent])
        if len(needy):
            frames = view.frames[rows[needy]].tolist()
            times = view.ts[rows[needy]].tolist()
            for e, fr, t in zip(ent[needy].tolist(), frames, times):
                lst = self.entry_frames[e]
                if len(lst) < MAX_FRAMES:
                    lst.append((fr, t))
            touched = tally(ent[needy])[0]
            self.entry_full[touched] = [len(self.entry_frames[e]) >= MAX_FRAMES for e in touched.tolist()]

    def role_sets(self, synack: bool, mss: int, ipver: int, heads: np.ndarray,
                  outer: bool | None) -> list[tuple[list[tuple[int, float]], int]]:
        """(first frames, count) per server of one group; ``outer``: only head-end servers
        (True), only others (False), all (None)."""
        m = (self.k_synack == synack) & (self.k_mss == mss) & (self.k_ipver == ipver)
        if outer is not None:
            m &= np.isin(self.k_server, heads) == outer
        return [(self.entry_frames[e], n) for e, n in zip(self.k_entry[m].tolist(), self.k_count[m].tolist())]

    def _frames(self, view: ChunkView, rows, synack, mss, ipver, server) -> None:
        """Per (SYN/SYN-ACK, MSS, IP version): count, and the first frames with their server."""
        gkey = (mss << 4) | (ipver << 1) | synack
        for g in tally(gkey)[0].tolist():
            sel = np.flatnonzero(gkey == g)
            key = (bool(g & 1), g >> 4, (g >> 1) & 7)
            grp = self.groups.get(key)
            if grp is None:
                grp = self.groups[key] = SynGroup(*key)
            room = MAX_FRAMES - len(grp.frames)
            for i in sel[:max(room, 0)].tolist():
                r = int(rows[i])
                pkt = dec.decode(view.chunk.packet(r), int(view.chunk.linktype[r]))
                grp.frames.append((int(view.frames[r]), float(view.ts[r]), int(server[i]),
                                   pkt.src if key[0] else pkt.dst))
            grp.count += len(sel)

    def role_counts(self, synack: bool, mss: int, ipver: int, heads: np.ndarray) -> tuple[int, int]:
        """(SYNs to a head-end, SYNs to others) of one group."""
        m = (self.k_synack == synack) & (self.k_mss == mss) & (self.k_ipver == ipver)
        to_head = m & np.isin(self.k_server, heads)
        return int(self.k_count[to_head].sum()), int(self.k_count[m & ~to_head].sum())
