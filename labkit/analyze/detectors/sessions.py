"""TLS sessions over TCP: who talks TLS to whom, when each session starts and goes quiet.

A session starts at its SYN (or its ClientHello when the SYN is not in the capture) and is
keyed by the client -> server flow hash. ClientHellos are recognised from the columns (a TCP
payload starting 16 03 xx .. .. 01), with no per-packet decode. The last packet of each
session is folded in per chunk from the shared flow groups. When a new session from a client
to a server begins, the time of the last packet of each earlier session to that server
*before* the new one started is recorded: that is the reconnect gap (``vpn-reconnect gap_s``).

Sessions are facts; whether one is a VPN tunnel and whether a new one is a reconnect is
decided with the DTLS facts in :mod:`labkit.analyze.case`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labkit.analyze import decode as dec
from labkit.analyze.engine import ChunkView


@dataclass(slots=True)
class TlsSession:
    file: str
    key: int
    client: str
    server: str
    sport: int
    dport: int
    start_frame: int
    start_ts: float
    hello_frame: int
    hello_ts: float
    rev_key: int = 0  # flow hash of the server -> client direction
    last_ts: float = 0.0
    last_frame: int = 0
    #: key of an earlier session to the same server -> its last packet time before this began
    prev_last: dict[int, float] = field(default_factory=dict)

    @property
    def endpoint(self) -> tuple[str, str, int]:
        return self.client, self.server, self.dport


class TlsDetector:
    def __init__(self, file: str) -> None:
        self.file = file
        self.sessions: dict[int, TlsSession] = {}
        self.by_endpoint: dict[tuple[str, str, int], list[int]] = {}
        self._by_rev: dict[int, TlsSession] = {}  # server -> client flow hash -> session
        self.client_hellos = 0  # TCP payloads starting with a ClientHello (a census count)
        # SYNs (no ACK) of this and the previous chunk, by flow: a ClientHello may follow its
        # SYN across a chunk edge.
        self._prev_index: dict[int, tuple[int, float]] = {}
        self._cur_index: dict[int, tuple[int, float]] | None = None

    def feed(self, view: ChunkView) -> None:
        fwd, rev = view.tcp_keys()
        srows = view.syn_rows[(view.cols.flags[view.syn_rows] & dec.TCP_ACK) == 0]
        syns = (fwd[srows], view.frames[srows], view.ts[srows])
        c = view.cols
        rows = view.hello_rows
        if len(rows):
            hello = rows[c.p5[rows] == dec.HS_CLIENT_HELLO]
            self.client_hellos += len(hello)
            for row in hello.tolist():
                if int(fwd[row]) not in self.sessions:
                    self._register(view, row, fwd, rev, syns)
        self._prev_index = self._index(syns) if self._cur_index is not None or len(syns[0]) else {}
        self._cur_index = None
        if self.sessions:
            self._fold(view, fwd, rev)

    def _syn_of(self, key: int, frame: int, syns) -> tuple[int, float] | None:
        """The first SYN of flow ``key`` before ``frame``, in this chunk or the one before."""
        for index in (self._prev_index, self._index(syns)):
            hit = index.get(key)
            if hit is not None and hit[0] < frame:
                return hit
        return None

    def _index(self, syns) -> dict[int, tuple[int, float]]:
        """flow hash -> its first SYN, built once per chunk on the first ClientHello."""
        if self._cur_index is None:
            keys, frames, times = syns
            self._cur_index = {}
            for k, f, t in zip(keys.tolist(), frames.tolist(), times.tolist()):
                self._cur_index.setdefault(k, (f, t))
        return self._cur_index

    def _register(self, view: ChunkView, row: int, fwd: np.ndarray, rev: np.ndarray, syns) -> None:
        c = view.cols
        key = int(fwd[row])
        frame, ts = int(view.frames[row]), float(view.ts[row])
        if c.ipver[row] == 4:
            client, server = dec.ip4_text(int(c.src4[row])), dec.ip4_text(int(c.dst4[row]))
        else:
            pkt = dec.decode(view.chunk.packet(row), int(view.chunk.linktype[row]))
            client, server = pkt.src, pkt.dst
        start = self._syn_of(key, frame, syns) or (frame, ts)
        s = TlsSession(
            self.file,
            key,
            client,
            server,
            int(c.sport[row]),
            int(c.dport[row]),
            start[0],
            start[1],
            frame,
            ts,
        )
        s.last_ts, s.last_frame = ts, frame
        earlier = self.by_endpoint.setdefault(s.endpoint, [])
        if earlier:  # the reconnect gap is measured from the session just before this one
            prev = earlier[-1]
            s.prev_last[prev] = self._last_before(view, prev, s.start_frame)
        earlier.append(key)
        self.sessions[key] = s
        s.rev_key = int(rev[row])
        self._by_rev[s.rev_key] = s

    def _last_before(self, view: ChunkView, key: int, frame: int) -> float:
        """Time of session ``key``'s last packet (either direction) before ``frame``."""
        old = self.sessions[key]
        best = old.last_ts if old.last_frame < frame else old.hello_ts
        g = view.tcp_groups()
        for k in (key, old.rev_key):
            t = g.last_before(k, frame, view.frames)
            if t is not None:
                best = max(best, float(view.ts[t]))
        return best

    def _fold(self, view: ChunkView, fwd: np.ndarray, rev: np.ndarray) -> None:
        """Last packet of each session in this chunk, from the shared flow groups."""
        g = view.tcp_groups()
        for j, k in enumerate(fwd[g.first].tolist()):
            s = self.sessions.get(k) or self._by_rev.get(k)
            if s is None:
                continue
            last = int(g.last[j])
            frame = int(view.frames[last])
            if frame > s.last_frame:
                s.last_ts, s.last_frame = float(view.ts[last]), frame
