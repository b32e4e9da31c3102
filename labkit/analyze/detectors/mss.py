"""SYN MSS per direction: what each TCP endpoint announces it can receive (RFC 9293 3.7.1).

An MSS says which MTU the announcing host sized its packets for: MSS + 40 (IPv4) or + 60
(IPv6) (:func:`labkit.mtu.mtu_for_mss`). Inside the tunnel, SYNs carry the adapter MTU's MSS
(1418 - 40 = 1378 in the seed's case); the outer TLS connection to the head-end carries the
physical path's. Which SYN is which is decided once the head-ends are known (case level), so
SYNs are counted per (SYN or SYN-ACK, MSS, IP version, server) in a numpy table, and the first
frames of each (SYN or SYN-ACK, MSS, IP version) group are kept with their server: the case
splits them by role. The first frames of each (SYN or SYN-ACK, MSS, IP version, server) are
kept too (at most :data:`MAX_FRAMES` each): a role's evidence is then exact whatever the
order of the SYNs. Both tables are columnar (about 60 bytes per server with one SYN, where a
list per server cost ~500), and filled per chunk with numpy, never per SYN in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labkit.analyze import decode as dec
from labkit.analyze.engine import Appended, ChunkView, KeyTable, grown, tally
from labkit.analyze.evidence import MAX_FRAMES, any_of, paren


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
        # (synack, MSS, IP version, server) -> count; its first frames, by the key's id
        self.table = KeyTable(synack=bool, mss=np.uint16, ipver=np.uint8, server=np.uint64)
        self.kept = np.zeros(0, np.uint8)  # per id: frames kept (at most MAX_FRAMES)
        self.frames = Appended(id=np.int64, frame=np.int64, ts=np.float64)  # as they came

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
        if self.table.add(key, synack=synack, mss=mss, ipver=ipver, server=server):
            self.kept = grown(self.kept, len(self.table.keys))
        # First frames per (direction, MSS, version, server), while it has room: each row's
        # rank among its key's rows of this chunk says whether it still fits.
        ent = self.table.ids_of(key)
        needy = np.flatnonzero(self.kept[ent] < MAX_FRAMES)
        if not len(needy):
            return
        e = ent[needy]
        o = np.argsort(e, kind="stable")  # by key, rows in frame order within it
        es = e[o]
        starts = np.flatnonzero(np.r_[True, es[1:] != es[:-1]])
        sizes = np.diff(np.r_[starts, len(es)])
        rank = np.arange(len(es)) - np.repeat(starts, sizes)
        fits = rank + self.kept[es] < MAX_FRAMES
        take = rows[needy[o[fits]]]
        self.frames.append(id=es[fits], frame=view.frames[take], ts=view.ts[take])
        first = es[starts]
        self.kept[first] = np.minimum(self.kept[first].astype(np.int64) + sizes, MAX_FRAMES)

    def selected(self, sel: SynSelection) -> tuple[list[tuple[int, float]], int]:
        """The first frames and the count of the SYNs ``sel`` selects, merged over servers.

        One (frames, count) for all the servers, never one per server (5 M servers would be
        5 M lists): the frames are the first of the union that are exact, i.e. up to the
        earliest last-kept frame of a server whose frames were not all kept (what
        :func:`labkit.analyze.evidence.select` makes of per-server sets)."""
        t = self.table
        m = sel.entries(self)
        ids, counts = t.ids[m], t.count[m]
        if not len(ids):
            return [], 0
        kept = self.frames
        mine = np.isin(kept["id"], ids)
        fid, frames, times = kept["id"][mine], kept["frame"][mine], kept["ts"][mine]
        short = ids[self.kept[ids].astype(np.int64) < counts]
        if len(short):
            # Each server's frames were kept in frame order: its last kept is its largest.
            inc = np.isin(fid, short)
            cut = _min_of_last(fid[inc], frames[inc])
            fine = frames <= cut
            frames, times = frames[fine], times[fine]
        o = np.argsort(frames, kind="stable")[:MAX_FRAMES]
        return list(zip(frames[o].tolist(), times[o].tolist())), int(counts.sum())

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
        m = _group(t, synack, mss, ipver)
        to_head = m & np.isin(t["server"], heads)
        return int(t.count[to_head].sum()), int(t.count[m & ~to_head].sum())


def _group(t: KeyTable, synack: bool, mss: int, ipver: int) -> np.ndarray:
    return (t["synack"] == synack) & (t["mss"] == mss) & (t["ipver"] == ipver)


#: The SYN's own IP version, in a display filter. ``ip`` or ``ipv6`` alone would also match
#: the outer header of a tunnel (IPv6 over IPv4: 6in4, Teredo, L2TP; IPv4 over IPv6: DS-Lite),
#: and a filter cannot say which IP layer is the last. An IPv6 header whose next header is
#: IPv4 (4in6) is the one common way IPv4 rides in IPv6; every other IPv6 layer carries IPv6
#: traffic.
_INNER_V4 = "(!ipv6 || ipv6.nxt == 4)"
_INNER_V6 = "ipv6 && !(ipv6.nxt == 4)"


@dataclass(frozen=True, slots=True)
class SynSelection:
    """Which SYNs (or SYN-ACKs) are evidence, said once and compiled twice, so that the
    display filter and the table it is checked against cannot drift apart: those announcing
    ``mss`` over IP version ``ipver`` whose server (the SYN's destination, the SYN-ACK's
    source) is one of ``headends`` (``outer`` True), is none of them (False), or either
    (None).

    The filter also needs two facts of the file, which the table holds by construction:
    ``mixed_versions`` (SYNs of both IP versions, so the filter names the version: the MSS
    alone would select the other's too) and ``icmp_errors`` (an ICMP error quotes a SYN's
    header, which tshark dissects as a SYN; the detector never counts a quote)."""

    synack: bool
    mss: int
    ipver: int
    headends: tuple[str, ...] = ()
    outer: bool | None = None
    mixed_versions: bool = False
    icmp_errors: bool = False

    def wireshark(self) -> str:
        ack = 1 if self.synack else 0
        clause = (
            f"tcp.flags.syn == 1 && tcp.flags.ack == {ack} && tcp.options.mss_val == {self.mss}"
        )
        if self.mixed_versions:
            clause += " && " + (_INNER_V6 if self.ipver == 6 else _INNER_V4)
        if self.icmp_errors:
            clause += " && !icmp && !icmpv6"
        if self.outer is not None:
            fld = "src" if self.synack else "dst"
            heads = any_of(
                f"{'ipv6' if ':' in h else 'ip'}.{fld} == {h}" for h in sorted(self.headends)
            )
            clause += f" && {paren(heads)}" if self.outer else f" && !{paren(heads)}"
        return clause

    def entries(self, det: MssDetector) -> np.ndarray:
        """The same selection over the detector's (SYN or SYN-ACK, MSS, version, server)
        table."""
        t = det.table
        m = _group(t, self.synack, self.mss, self.ipver)
        if self.outer is not None:
            heads = np.array(sorted({dec.addr_hash(h) for h in self.headends}), np.uint64)
            m &= np.isin(t["server"], heads) == self.outer
        return m

    def first_frames(self, det: MssDetector) -> tuple[list[tuple[int, float]], int]:
        """The first selected frames that are exact, and how many frames are selected."""
        return det.selected(self)


def _min_of_last(ids: np.ndarray, frames: np.ndarray) -> int:
    """The smallest, over ids, of each id's largest frame."""
    o = np.lexsort((frames, ids))
    i = ids[o]
    ends = np.r_[np.flatnonzero(i[1:] != i[:-1]), len(i) - 1]
    return int(frames[o][ends].min())
