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
from labkit.analyze.engine import ChunkView, KeyTable, tally
from labkit.analyze.evidence import MAX_FRAMES


@dataclass(slots=True)
class SynGroup:
    """SYNs (or SYN-ACKs) announcing one MSS: the first frames, each with its server."""

    synack: bool
    mss: int
    ipver: int
    count: int = 0
    frames: list[tuple[int, float, int, str]] = field(
        default_factory=list
    )  # frame, ts, server hash, server

    @property
    def complete(self) -> bool:
        return self.count == len(self.frames)


class MssDetector:
    def __init__(self, file: str) -> None:
        self.file = file
        self.groups: dict[tuple[bool, int, int], SynGroup] = {}
        # (synack, MSS, IP version, server) -> count; a key's id indexes entry_frames
        self.table = KeyTable(synack=bool, mss=np.int64, ipver=np.int64, server=np.uint64)
        self.entry_frames: list[list[tuple[int, float]]] = []
        self.entry_full = np.zeros(0, bool)

    def feed(self, view: ChunkView) -> None:
        c = view.cols
        ok = view.syn_mss >= 0
        rows, mss = view.syn_rows[ok], view.syn_mss[ok]
        # SYNs whose MSS is not the first option came decoded (rare).
        extra = [
            (r, p.tcp.mss)
            for r, p in zip(view.rare_rows.tolist(), view.rare)
            if p.tcp is not None and p.tcp.syn and p.tcp.mss is not None
        ]
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
        tag = (
            (ipver.astype(np.uint64) << np.uint64(20))
            | (mss.astype(np.uint64) << np.uint64(1))
            | synack.astype(np.uint64)
        )
        key = dec.mix64(server ^ dec.mix64(tag))
        new = self.table.add(key, synack=synack, mss=mss, ipver=ipver, server=server)
        if new:
            self.entry_frames += [[] for _ in range(new)]
            self.entry_full = np.concatenate([self.entry_full, np.zeros(new, bool)])
        # First frames per (direction, MSS, version, server), while its list is not full.
        ent = self.table.ids_of(key)
        needy = np.flatnonzero(~self.entry_full[ent])
        if len(needy):
            frames = view.frames[rows[needy]].tolist()
            times = view.ts[rows[needy]].tolist()
            for e, fr, t in zip(ent[needy].tolist(), frames, times):
                lst = self.entry_frames[e]
                if len(lst) < MAX_FRAMES:
                    lst.append((fr, t))
            touched = tally(ent[needy])[0]
            self.entry_full[touched] = [
                len(self.entry_frames[e]) >= MAX_FRAMES for e in touched.tolist()
            ]

    def role_sets(
        self, synack: bool, mss: int, ipver: int, heads: np.ndarray, outer: bool | None
    ) -> list[tuple[list[tuple[int, float]], int]]:
        """(first frames, count) per server of one group; ``outer``: only head-end servers
        (True), only others (False), all (None)."""
        t = self.table
        m = (t["synack"] == synack) & (t["mss"] == mss) & (t["ipver"] == ipver)
        if outer is not None:
            m &= np.isin(t["server"], heads) == outer
        return [(self.entry_frames[e], n) for e, n in zip(t.ids[m].tolist(), t.count[m].tolist())]

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
            for i in sel[: max(room, 0)].tolist():
                r = int(rows[i])
                pkt = dec.decode(view.chunk.packet(r), int(view.chunk.linktype[r]))
                grp.frames.append(
                    (
                        int(view.frames[r]),
                        float(view.ts[r]),
                        int(server[i]),
                        pkt.src if key[0] else pkt.dst,
                    )
                )
            grp.count += len(sel)

    def role_counts(self, synack: bool, mss: int, ipver: int, heads: np.ndarray) -> tuple[int, int]:
        """(SYNs to a head-end, SYNs to others) of one group."""
        t = self.table
        m = (t["synack"] == synack) & (t["mss"] == mss) & (t["ipver"] == ipver)
        to_head = m & np.isin(t["server"], heads)
        return int(t.count[to_head].sum()), int(t.count[m & ~to_head].sum())
