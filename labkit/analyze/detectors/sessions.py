"""TLS sessions over TCP: who talks TLS to whom, when each session starts and goes quiet.

A session starts at its SYN (or its ClientHello when the SYN is not in the capture) and is
keyed by the client -> server flow hash. ClientHellos are recognised from the columns (a TCP
payload starting 16 03 xx .. .. 01), with no per-packet decode. The last packet of each
session is folded in per chunk from the shared flow groups. When a new session from a client
to a server begins, the time of the last packet of the session just before it on the same
(client, server, port) *before* the new one started is recorded: that is the reconnect gap
(``vpn-reconnect gap_s``).

State is columnar: one row of numpy columns per session (about 100 bytes), in the order the
sessions began, found by flow hash through a :class:`~labkit.analyze.engine.KeyIndex`; new
sessions are appended once per chunk (a chunk's cost never depends on how many sessions came
before), and nothing is done per ClientHello in Python. Addresses are kept as the IPv4
integers, their 64-bit hashes recomputed when asked; an address they cannot hold (IPv6, or
IPv4 0.0.0.0) is kept packed in a side table by session (:class:`PackedEnds`). :attr:`TlsDetector.sessions` and
:attr:`TlsDetector.by_endpoint` build :class:`TlsSession` objects only when the case stage
asks. The file's :class:`~labkit.analyze.engine.FlowBudget` bounds the table: beyond it the
sessions quiet for the longest are dropped and counted (:attr:`TlsDetector.evicted`).

Sessions are facts; whether one is a VPN tunnel and whether a new one is a reconnect is
decided with the DTLS facts in :mod:`labkit.analyze.case`.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable, Iterator, Mapping, ValuesView
from dataclasses import dataclass, field

import numpy as np

from labkit.analyze import decode as dec
from labkit.analyze.engine import (
    BLOCK,
    Appended,
    ChunkView,
    FlowBudget,
    KeyIndex,
    KeyTable,
    LatestIndex,
    member,
    position,
    tally,
)
from labkit.analyze.evidence import dst_field, src_field

_TABLE = "TLS session"  # this table's name in the budget's counts
_FRAMES = ("hello_frame", "last_frame")  # the columns of frame numbers
_REL_BITS = 22  # frames of one chunk relative to its first: < 2^21 (a 16 MiB chunk)
_COLUMNS = {
    # and "key", the client -> server flow hash: the index's own column (:attr:`TlsDetector.t`)
    # IPv4 client and server (0: IPv6, text and hashes in side tables); an IPv4 address's
    # hash is recomputed from it when asked (:meth:`TlsDetector._hashes`), never stored
    "c4": np.uint32,
    "s4": np.uint32,
    "ports": np.uint32,  # client port << 16 | server port
    "hello_frame": np.uint32,  # frames: 32 bits, widened by a capture past them (:meth:`feed`)
    "start_back": np.int32,  # frames from the start (SYN) to the ClientHello
    "start_dt": np.float32,  # seconds from the start (SYN) to the ClientHello
    "hello_ts": np.float64,
    "last_frame": np.uint32,
    "last_ts": np.float64,
    # seconds the session before this one on its endpoint had been quiet when this one
    # started (NaN: none); which session that was is found from the order they began in
    "quiet": np.float32,
    "ep": np.uint64,  # hash of (client, server, server port): the reconnect join's key
}


@dataclass(frozen=True, slots=True)
class TlsHellos:
    """Which TLS ClientHellos are evidence, said once: those from ``client`` to ``server``,
    on ``port`` (None: any) from one of ``client_ports`` (empty: any). Each session's first
    ClientHello is its ``hello_frame``: a selection of whole sessions selects theirs."""

    client: str
    server: str
    port: int | None = None
    client_ports: tuple[int, ...] = ()

    def wireshark(self) -> str:
        c = self.client
        clause = (
            f"tls.handshake.type == 1 && {src_field(c)} == {c} && {dst_field(c)} == {self.server}"
        )
        if self.port is not None:
            clause += f" && tcp.dstport == {self.port}"
        if self.client_ports:
            clause += " && (" + " || ".join(f"tcp.srcport == {p}" for p in self.client_ports) + ")"
        return clause


@dataclass(frozen=True, slots=True)
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
    last_ts: float = 0.0
    last_frame: int = 0
    #: key of the session before this one to the same endpoint -> its last packet time
    #: before this one began
    prev_last: dict[int, float] = field(default_factory=dict)

    @property
    def endpoint(self) -> tuple[str, str, int]:
        return self.client, self.server, self.dport


def _endpoint(c_h: np.ndarray, s_h: np.ndarray, ports: np.ndarray) -> np.ndarray:
    """Hash of (client, server, server port)."""
    dport = (ports & np.uint32(0xFFFF)).astype(np.uint64)
    return dec.mix64(c_h ^ dec.mix64(s_h ^ dport))


class PackedEnds:
    """The two addresses of the sessions whose IPv4 columns cannot name them (IPv6, or an
    IPv4 0.0.0.0 end), packed (:func:`~labkit.analyze.decode.packed_addresses`) in a
    :class:`~labkit.analyze.engine.KeyTable` by session key: ~50 bytes a session found by a
    hash probe, hashed and printed when asked. A Python decode per session for its texts,
    kept in dicts beside the hashes, cost ~8 us and ~500 bytes a session on a capture of
    IPv6 handshakes."""

    def __init__(self) -> None:
        self.table = KeyTable(client=np.dtype("V16"), server=np.dtype("V16"), v6=np.dtype(bool))

    def add(self, keys: np.ndarray, client: np.ndarray, server: np.ndarray, v6: np.ndarray) -> None:
        """The ends of sessions ``keys``; a key already here keeps its own (the key hashes
        the addresses)."""
        self.table.add(keys, client=client, server=server, v6=v6)

    def hashes(self, keys: np.ndarray, j: int) -> np.ndarray:
        """The client (``j`` 0) or server (1) address hashes of sessions ``keys``."""
        t, ids = self.table, self.table.ids_of(keys)
        return dec.packed_hashes(t[("client", "server")[j]][ids], t["v6"][ids])

    def text(self, key: int, j: int) -> str:
        """The client (``j`` 0) or server (1) address of session ``key``, as the decoder
        writes it."""
        t, i = self.table, int(self.table.ids_of(np.array([key], np.uint64))[0])
        return dec.packed_text(bytes(t[("client", "server")[j]][i]), t["v6"][i])

    def keep(self, keys: np.ndarray) -> None:
        """Keep the ends of sessions ``keys`` only."""
        ids = self.table.ids_of(keys)
        self.table.keep(np.sort(ids[ids >= 0]))


class TlsDetector:
    def __init__(self, file: str, budget: FlowBudget | None = None) -> None:
        self.file = file
        self.budget = budget or FlowBudget()
        self.client_hellos = 0  # TCP payloads starting with a ClientHello (a census count)
        self._rows = Appended(**_COLUMNS)  # one per session, in the order they began
        self._index = KeyIndex()  # session key -> row
        self._latest = LatestIndex()  # endpoint ("ep") -> the row of its latest session
        self._ends = PackedEnds()  # the sessions whose c4 or s4 is 0 (IPv6 mostly), by key
        # the sessions that follow another on their endpoint (rows) and that one's key
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self._prev_n = 0  # the sessions when it was computed
        # First SYN (no ACK) per flow of the previous chunk: a ClientHello may follow its SYN
        # across a chunk edge.
        self._prev_syns = (np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0))

    @property
    def t(self) -> dict[str, np.ndarray]:
        """The table's columns (views: writing through them updates the table), the session
        keys among them."""
        return {"key": self._index.keys} | {name: self._rows[name] for name in _COLUMNS}

    def _find(self, keys: np.ndarray) -> np.ndarray:
        """Row of each session key, or -1."""
        return self._index.find(keys)

    # --- the scan -------------------------------------------------------------------------
    def feed(self, view: ChunkView) -> None:
        self._rows.widen(_FRAMES, view.frames[-1:])  # frames ascend: the last is largest
        c = view.cols
        fwd = view.tcp_keys()[0]
        srows = view.syn_rows[(c.flags[view.syn_rows] & dec.TCP_ACK) == 0]
        sk, sfirst, _n = tally(fwd[srows])
        syns = (sk, view.frames[srows][sfirst], view.ts[srows][sfirst])
        rows = view.hello_rows
        if len(rows):
            hello = rows[c.p5[rows] == dec.HS_CLIENT_HELLO]
            self.client_hellos += len(hello)
            if len(hello):
                self._register(view, hello, syns)
        self._prev_syns = syns
        if self._rows.n:
            self._fold(view)

    def _register(self, view: ChunkView, hello: np.ndarray, syns) -> None:
        """New sessions of this chunk, all at once: start, addresses, reconnect gap."""
        c = view.cols
        uk, first, _n = tally(view.tcp_keys()[0][hello])
        r = hello[first]
        fresh = self._find(uk) < 0
        r = np.sort(r[fresh])  # frame order: the order sessions begin in
        if not len(r):
            return
        key = view.tcp_keys()[0][r]
        frame, ts = view.frames[r].astype(np.int64), view.ts[r].astype(np.float64)
        start_frame, start_ts = frame.copy(), ts.copy()
        for sk, sf, st in (syns, self._prev_syns):  # the previous chunk's SYN wins
            if not len(sk):
                continue
            at = position(sk, key)
            hit = (at >= 0) & (sf[np.maximum(at, 0)] < frame)
            start_frame[hit] = sf[at[hit]]
            start_ts[hit] = st[at[hit]]
        c_h, s_h = c.src_h[r], c.dst_h[r]
        other = np.flatnonzero((c.src4[r] == 0) | (c.dst4[r] == 0))
        if len(other):
            o = r[other]
            src_a, dst_a = dec.packed_addresses(view.chunk.buf, c.l3[o], c.ipver[o])
            self._ends.add(key[other], src_a, dst_a, c.ipver[o] == 6)
        ports = (c.sport[r].astype(np.uint32) << np.uint32(16)) | c.dport[r].astype(np.uint32)
        new = {
            "key": key,
            "c_h": c_h,
            "s_h": s_h,
            "c4": c.src4[r],
            "s4": c.dst4[r],
            "ports": ports,
            "hello_frame": frame,
            "start_back": frame - start_frame,
            "start_dt": ts - start_ts,
            "hello_ts": ts,
            "last_frame": frame,
            "last_ts": ts,
        }
        new["quiet"] = start_ts - self._previous(view, new, start_frame)
        self._index.insert(key)  # all new: their rows follow the table's, in this order
        cols = self._rows
        cols.append(**{name: np.asarray(new[name], cols[name].dtype) for name in _COLUMNS})
        self._latest.update(self._rows["ep"], np.arange(self._rows.n - len(key), self._rows.n))
        keep = self.budget.trim(_TABLE, self.t["last_ts"])
        if keep is not None:
            self._evict(keep)

    def _previous(
        self, view: ChunkView, new: dict[str, np.ndarray], start_frame: np.ndarray
    ) -> np.ndarray:
        """For each new session (in frame order): the last packet time, before it started, of
        the session just before it on the same endpoint (NaN: none)."""
        n = len(start_frame)
        ep = new["ep"] = _endpoint(new["c_h"], new["s_h"], new["ports"])
        o = np.argsort(ep, kind="stable")  # by endpoint, then frame order
        se = ep[o]
        head = np.r_[True, se[1:] != se[:-1]]
        prev = np.zeros(n, np.uint64)
        last_ts = np.full(n, np.nan)  # the previous session's last packet as known so far
        last_frame = np.zeros(n, np.int64)
        hello_ts = np.full(n, np.nan)
        # Within this chunk: the previous new session of the same endpoint.
        inner = o[~head]
        before = o[np.flatnonzero(~head) - 1]
        prev[inner] = new["key"][before]
        last_ts[inner] = hello_ts[inner] = new["hello_ts"][before]
        last_frame[inner] = new["hello_frame"][before]
        # The first of each endpoint: the table's latest session there, if any.
        firsts = o[head]
        at = self._latest.find(self._rows["ep"], ep[firsts])
        known = at >= 0
        t = self.t
        if known.any():
            f, idx = firsts[known], at[known]
            prev[f] = t["key"][idx]
            last_ts[f], last_frame[f], hello_ts[f] = (
                t["last_ts"][idx],
                t["last_frame"][idx],
                t["hello_ts"][idx],
            )
        has = prev != 0
        best = np.where(last_frame < start_frame, last_ts, hello_ts)
        if has.any():
            # This chunk's packets of the previous session (either direction) before the start.
            rev = dec.directed(
                new["s_h"], new["c_h"], new["ports"] & 0xFFFF, new["ports"] >> np.uint32(16)
            )
            prev_rev = np.zeros(n, np.uint64)
            prev_rev[inner] = rev[before]
            if known.any():
                idx = at[known]
                ports = t["ports"][idx]
                ch, sh = self._hashes(idx)
                prev_rev[firsts[known]] = dec.directed(
                    sh, ch, ports & 0xFFFF, ports >> np.uint32(16)
                )
            for k in (prev, prev_rev):
                best = np.fmax(best, self._last_before(view, k, start_frame, has))
        return np.where(has, best, np.nan)

    def _last_before(
        self, view: ChunkView, keys: np.ndarray, frames: np.ndarray, want: np.ndarray
    ) -> np.ndarray:
        """Time of each flow's last packet in this chunk with a frame number below
        ``frames`` (NaN: none), for the rows where ``want`` holds."""
        out = np.full(len(keys), np.nan)
        g = view.tcp_groups()
        gi = np.where(want, g.find(keys), -1)
        sel = np.flatnonzero(gi >= 0)
        if not len(sel) or not len(g.rows):
            return out
        base = int(view.frames[0])
        gid = np.repeat(np.arange(len(g.starts)), np.diff(np.r_[g.starts, len(g.rows)]))
        comb = (gid.astype(np.int64) << _REL_BITS) | (view.frames[g.rows] - base)
        rel = np.clip(frames[sel] - base, 0, (1 << _REL_BITS) - 1)
        q = (gi[sel].astype(np.int64) << _REL_BITS) | rel
        pos = np.searchsorted(comb, q) - 1
        ok = (pos >= 0) & (gid[np.maximum(pos, 0)] == gi[sel])
        out[sel[ok]] = view.ts[g.rows[pos[ok]]]
        return out

    def _fold(self, view: ChunkView) -> None:
        """Last packet of each session in this chunk, either direction, from the flow groups:
        a packet from the server has the session's key as its reverse hash."""
        g = view.tcp_groups()
        if not len(g.first):
            return
        fwd, rev = view.tcp_keys()
        last = g.last
        for k in (fwd[g.first], rev[g.first]):
            idx = self._find(k)
            hit = idx >= 0
            i, rows = idx[hit], last[hit]
            fr = view.frames[rows]
            later = fr > self.t["last_frame"][i]
            self.t["last_frame"][i[later]] = fr[later]
            self.t["last_ts"][i[later]] = view.ts[rows[later]]

    @property
    def evicted(self) -> int:
        """Sessions dropped at the ceiling."""
        return self.budget.evicted.get(_TABLE, 0)

    def _evict(self, keep: np.ndarray) -> None:
        """Keep only the rows ``keep`` (the budget chose the sessions quiet for the longest);
        the old key index let go before the new one is built, as :meth:`KeyTable.keep` does."""
        keys = self.t["key"][keep]
        self._index = KeyIndex()
        self._index.insert(keys)
        self._rows.keep(keep)
        if self._ends.table.index.n:  # the packed ends go with their sessions
            self._ends.keep(self.t["key"][(self.t["c4"] == 0) | (self.t["s4"] == 0)])
        # An endpoint whose latest session is dropped is forgotten (its older sessions, if
        # kept, are not the one a new session follows).
        latest = self._latest.rows()
        latest = latest[np.isin(latest, keep, assume_unique=True)]
        self._latest = LatestIndex()
        self._latest.update(self._rows["ep"], np.searchsorted(keep, latest))

    def _hashes(self, idx: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """Client and server address hashes of rows ``idx``: an IPv4 address's is recomputed
        as :func:`~labkit.analyze.decode.columns` computes it, the others' come from the side
        table, so that the table does not carry 16 bytes per session for them."""
        return self._hash(0, idx), self._hash(1, idx)

    def _hash(self, j: int, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The client (``j`` 0) or server (1) hashes of :meth:`_hashes` alone."""
        v4 = self.t[("c4", "s4")[j]][idx]
        h = dec.mix64(v4.astype(np.uint64))
        other = np.flatnonzero(v4 == 0)
        if len(other):
            h[other] = self._ends.hashes(self.t["key"][idx][other], j)
        return h

    # --- what the case stage reads --------------------------------------------------------
    def _text(self, key: int, j: int, v4: int) -> str:
        """The client's (``j`` 0) or server's (1) address of session ``key``."""
        return dec.ip4_text(v4) if v4 else self._ends.text(key, j)

    def _session(self, i: int) -> TlsSession:
        t = self.t
        ports = int(t["ports"][i])
        frame = int(t["hello_frame"][i])
        prev = self._prev_key(i)
        key = int(t["key"][i])
        start_ts = float(t["hello_ts"][i]) - float(t["start_dt"][i])
        quiet = float(t["quiet"][i])
        return TlsSession(
            self.file,
            key,
            self._text(key, 0, int(t["c4"][i])),
            self._text(key, 1, int(t["s4"][i])),
            ports >> 16,
            ports & 0xFFFF,
            frame - int(t["start_back"][i]),
            start_ts,
            frame,
            float(t["hello_ts"][i]),
            float(t["last_ts"][i]),
            int(t["last_frame"][i]),
            {prev: start_ts - quiet} if prev and not np.isnan(quiet) else {},
        )

    def _prev_key(self, i: int) -> int:
        """The key of the session before row ``i`` on its endpoint (0: none)."""
        rows, keys = self._prev_keys()
        at = int(np.searchsorted(rows, i))
        return int(keys[at]) if at < len(rows) and rows[at] == i else 0

    def _prev_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows of the sessions that follow another on their endpoint (ascending) and the
        key of the one before each: computed once the scan is over, so the table never
        carries it, and only for those sessions (a column of every session's, mostly zeros,
        was 8 bytes a session at the judge's peak)."""
        n = len(self.t["key"])
        if self._prev is None or self._prev_n != n:
            t = self.t
            ep = t["ep"]
            o = np.lexsort((t["hello_frame"], ep))
            se = ep[o]
            later = np.flatnonzero(se[1:] == se[:-1]) + 1
            del se
            rows = o[later]
            by_row = np.argsort(rows)
            self._prev = rows[by_row], t["key"][o[later - 1]][by_row]
            self._prev_n = n
        return self._prev

    @property
    def sessions(self) -> Mapping[int, TlsSession]:
        """Every session by key, built on access (the table holds columns, not objects)."""
        return _SessionView(self)

    @property
    def by_endpoint(self) -> dict[tuple[str, str, int], list[int]]:
        """(client, server, server port) -> keys of its sessions in the order they began, for
        the endpoints with more than one session (the only ones a reconnect can show on)."""
        return self.endpoints_to(None)

    def endpoints_to(self, servers: Iterable[str] | None) -> dict[tuple[str, str, int], list[int]]:
        """:attr:`by_endpoint` for the sessions to ``servers`` only (None: all): the case asks
        for head-ends, so a table of millions of other sessions is never grouped."""
        t = self.t
        idx = np.arange(len(t["key"])) if servers is None else self._server_rows(servers)
        # Only endpoints with two sessions or more are grouped: most of millions have one.
        se = np.sort(t["ep"][idx])
        twice = se[1:][se[1:] == se[:-1]]
        idx = idx[member(t["ep"][idx], twice)]
        ep = t["ep"][idx]
        o = idx[np.lexsort((t["hello_frame"][idx], ep))]
        se = se[member(se, twice)]
        starts = np.flatnonzero(np.r_[True, se[1:] != se[:-1]])
        sizes = np.diff(np.r_[starts, len(se)])
        out: dict[tuple[str, str, int], list[int]] = {}
        for st, n in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist()):
            s = self._session(int(o[st]))
            out[s.endpoint] = t["key"][o[st : st + n]].tolist()
        return out

    def servers_among(self, servers: Iterable[str]) -> set[str]:
        """Those of ``servers`` (addresses as text) with at least one session here: what the
        capture point needs, without building a session object for each of millions."""
        return {s for s in set(servers) if len(self._server_rows([s]))}

    def sessions_to(self, servers: Iterable[str]) -> list[TlsSession]:
        """The sessions to any of ``servers`` (addresses as text), in the order they began."""
        idx = self._server_rows(servers)
        idx = idx[np.argsort(self.t["hello_frame"][idx], kind="stable")]
        return [self._session(i) for i in idx.tolist()]

    def clients_to(self, server: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The sessions to ``server`` as columns: (rows, client address hash, client IPv4 or
        0), so that a head-end's million clients are grouped without an object each (one
        :class:`TlsSession` per session cost ~4 kB with its evidence)."""
        rows = self._server_rows([server])
        return rows, self._hash(0, rows), self._rows["c4"][rows]

    def sessions_at(self, rows: np.ndarray) -> list[TlsSession]:
        """The sessions of ``rows``, made on demand."""
        return [self._session(i) for i in rows.tolist()]

    def _server_rows(self, servers: Iterable[str]) -> np.ndarray:
        """The rows of the sessions to any of ``servers`` (addresses as text). IPv4 servers
        are compared as the 4-byte addresses the table holds, so that no 8-byte hash per
        session is made for the question (at 5 M sessions, the hashes and their temporaries
        were the largest allocation of the whole run); the others (and 0.0.0.0, the
        column's "not IPv4") by their hashes in the side table."""
        v4: set[int] = set()
        hashed: set[int] = set()
        for s in servers:
            a = 0 if ":" in s else struct.unpack("!I", socket.inet_aton(s))[0]
            if a:
                v4.add(a)
            else:
                hashed.add(dec.addr_hash(s))
        s4 = self._rows["s4"]
        hit = np.isin(s4, np.array(sorted(v4), np.uint32))
        if hashed:
            other = np.flatnonzero(s4 == 0)
            hashes = self._ends.hashes(self.t["key"][other], 1)
            hit[other] = np.isin(hashes, np.array(sorted(hashed), np.uint64))
        return np.flatnonzero(hit)

    def pairs_with_sessions(self, client_h: np.ndarray, server_h: np.ndarray) -> np.ndarray:
        """Whether each (client, server) address-hash pair has a TLS session here."""
        want, which = np.unique(dec.mix64(client_h ^ dec.mix64(server_h)), return_inverse=True)
        found = np.zeros(len(want), bool)
        # The sessions' pairs a block at a time: hashing all of millions of sessions at once
        # held several of their columns' worth of temporaries at the judge's peak.
        n = len(self._index.keys)
        for lo in range(0, n, BLOCK):
            ch, sh = self._hashes(slice(lo, lo + BLOCK))
            at = position(want, dec.mix64(ch ^ dec.mix64(sh)))
            found[at[at >= 0]] = True
        return found[which]


class _SessionView(Mapping[int, TlsSession]):
    """The detector's table seen as {key: TlsSession}, objects made on access."""

    def __init__(self, det: TlsDetector) -> None:
        self._det = det

    def __getitem__(self, key: int) -> TlsSession:
        i = int(self._det._find(np.array([key], np.uint64))[0])
        if i < 0:
            raise KeyError(key)
        return self._det._session(i)

    def __iter__(self) -> Iterator[int]:
        return iter(np.sort(self._det.t["key"]).tolist())

    def __len__(self) -> int:
        return len(self._det.t["key"])

    def values(self) -> ValuesView[TlsSession]:
        return _SessionValues(self)


class _SessionValues(ValuesView[TlsSession]):
    """The sessions in key order (as the mapping iterates), made row by row rather than by
    one key lookup each."""

    def __init__(self, view: _SessionView) -> None:
        super().__init__(view)
        self._det = view._det

    def __iter__(self) -> Iterator[TlsSession]:
        return (self._det._session(i) for i in np.argsort(self._det.t["key"]).tolist())
