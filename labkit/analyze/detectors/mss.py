"""SYN MSS per direction: what each TCP endpoint announces it can receive (RFC 9293 3.7.1).

An MSS says which MTU the announcing host sized its packets for: MSS + 40 (IPv4) or + 60
(IPv6) (:func:`labkit.mtu.mtu_for_mss`). Inside the tunnel, SYNs carry the adapter MTU's MSS
(1418 - 40 = 1378 in the seed's case); the outer TLS connection to the head-end carries the
physical path's. Which SYN is which is decided once the head-ends are known (case level):
here SYNs are grouped, with numpy, by (SYN or SYN-ACK, MSS, server address, server port).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labkit.analyze import decode as dec
from labkit.analyze.engine import ChunkView
from labkit.analyze.evidence import MAX_FRAMES, FrameSet

MAX_GROUPS = 50_000  # distinct (direction, MSS, server) groups kept; more are counted only


@dataclass(frozen=True, slots=True)
class SynKey:
    synack: bool
    mss: int
    server: str
    port: int
    ipver: int


class MssDetector:
    def __init__(self, file: str) -> None:
        self.file = file
        self.groups: dict[SynKey, FrameSet] = {}
        self._by_hash: dict[int, SynKey] = {}
        self.dropped = 0

    def _set(self, key: SynKey) -> FrameSet | None:
        fs = self.groups.get(key)
        if fs is None:
            if len(self.groups) >= MAX_GROUPS:
                return None
            ack = 1 if key.synack else 0
            fs = self.groups[key] = FrameSet(
                self.file, f"tcp.flags.syn == 1 && tcp.flags.ack == {ack} && "
                           f"tcp.options.mss_val == {key.mss}")
        return fs

    def feed(self, view: ChunkView) -> None:
        c = view.cols
        ok = view.syn_mss >= 0
        rows, mss = view.syn_rows[ok], view.syn_mss[ok]
        if len(rows):
            synack = (c.flags[rows] & dec.TCP_ACK) != 0
            server_h = np.where(synack, c.src_h[rows], c.dst_h[rows])
            port = np.where(synack, c.sport[rows], c.dport[rows])
            tag = ((c.ipver[rows].astype(np.uint64) << np.uint64(40))
                   | (port.astype(np.uint64) << np.uint64(20))
                   | (mss.astype(np.uint64) << np.uint64(1)) | synack.astype(np.uint64))
            key = dec.mix64(server_h ^ dec.mix64(tag))
            order = np.argsort(key, kind="stable")
            ks = key[order]
            starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
            ends = np.r_[starts[1:], len(ks)]
            for st, en in zip(starts.tolist(), ends.tolist()):
                h = int(ks[st])
                skey = self._by_hash.get(h)
                if skey is None:
                    r = int(rows[order[st]])
                    pkt = dec.decode(view.chunk.packet(r), int(view.chunk.linktype[r]))
                    sa = bool(synack[order[st]])
                    skey = self._by_hash[h] = SynKey(sa, int(mss[order[st]]), pkt.src if sa else pkt.dst,
                                                     int(port[order[st]]), pkt.ipver)
                fs = self._set(skey)
                if fs is None:
                    self.dropped += en - st
                    continue
                first = rows[order[st:min(en, st + MAX_FRAMES)]]
                fs.add_many(view.frames[first].tolist(), view.ts[first].tolist(), en - st)
        # SYNs whose MSS is not the first option came decoded.
        for pkt in view.rare:
            tcp = pkt.tcp
            if tcp is None or not tcp.syn or tcp.mss is None:
                continue
            synack = bool(tcp.flags & dec.TCP_ACK)
            server, port = (pkt.src, pkt.sport) if synack else (pkt.dst, pkt.dport)
            if self._vectorized(view, pkt.frame):
                continue
            fs = self._set(SynKey(synack, tcp.mss, server, int(port or 0), pkt.ipver))
            if fs is None:
                self.dropped += 1
            else:
                fs.add(pkt.frame, pkt.ts)

    @staticmethod
    def _vectorized(view: ChunkView, frame: int) -> bool:
        i = int(np.searchsorted(view.frames[view.syn_rows], frame))
        return i < len(view.syn_rows) and int(view.frames[view.syn_rows[i]]) == frame \
            and view.syn_mss[i] >= 0
