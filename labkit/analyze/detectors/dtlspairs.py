"""DTLS per client -> server:port, recognised by content on any UDP port (0x0100 too).

State per pair (one client address, one server address and port; the client's source port
may change between attempts): ClientHello datagrams (attempts; a hello whose message_seq was
already seen is a retransmission), HelloVerifyRequests, the ServerHello (cipher, resumption:
its session id equals the client's), ChangeCipherSpec per side, application data per side
(counted with numpy for the whole chunk, never per packet in Python).

Definitions (documented in the README, used by the findings):

* answered: a HelloVerifyRequest or ServerHello from the server, or data from it.
* established: a ServerHello, then the server's ChangeCipherSpec or application data, or (DTLS
  1.3, which has neither) encrypted unified-header records both ways; or, when the handshake
  happened before the capture started, application data both ways (at least
  :data:`MIDSTREAM_MIN` datagrams each way).
* attempts: distinct ClientHello datagrams. Two frames with the same client port, record and
  message sequence numbers less than :data:`DUPLICATE_S` apart are one datagram captured twice
  (a SPAN port's duplicate): it counts once (:attr:`DtlsPair.duplicate_hellos`). A standard
  retransmission carries a new record sequence number (RFC 6347 4.1); DTLS1_BAD_VER clients
  (AnyConnect's 0x0100) resend record 0, but only when their timer fires, a second or more
  later (RFC 6347 4.2.4.1), never within a few milliseconds.
* unanswered: none of the answers above, at least two attempts spread over
  :data:`MIN_RETRY_S` seconds or more, and the capture still covering the client and the server
  after the last one (a packet from or to each). A lone hello at the end of a trimmed capture,
  or copies of one hello, prove nothing: that is "cannot tell", never "unanswered".
* STUN on the pair's ports (RFC 8489 section 5: magic cookie 0x2112A442 at bytes 4-7) marks
  WebRTC's DTLS-SRTP (RFC 5764), which the case stage never takes for a VPN tunnel.

Record layout: RFC 6347 4.1 (13-byte header), 4.2.2 (12-byte handshake header); 0x0100 is
DTLS1_BAD_VER, AnyConnect's pre-standard DTLS (DESIGN.md section 3). DTLS 1.3 encrypts
behind a unified header (RFC 9147 section 4: first byte 0b001CSLEE) with no version field, so
such records count only on a pair whose handshake was seen.

Work per chunk, never per packet: pairs are looked up in a sorted key array merged once per
chunk, application data and unified-header records are counted with numpy, and the
addresses of pairs still waiting for an answer are watched with one binary search per row.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Final

import numpy as np

from labkit import mtu
from labkit.analyze import decode as dec
from labkit.analyze.decode import directed, packed_addresses
from labkit.analyze.detectors.dtlstable import (
    CLIENT_CCS,
    FRAME_COLUMNS,
    HANDSHAKE,
    HELLO_FRAMES,
    HVR_FRAMES,
    NO_VALUE,
    ROW_BYTES,
    SERVER_CCS,
    SH_FRAMES,
    DtlsTable,
    RowEdit,
)
from labkit.analyze.detectors.sessions import TlsDetector
from labkit.analyze.engine import (
    ChunkView,
    FlowBudget,
    KeyTable,
    grown,
    largest,
    last_of,
    member,
    position,
    tally,
    widened,
)
from labkit.analyze.evidence import MAX_FRAMES, FrameSet, dst_field, src_field
from labkit.wire import DTLS1_BAD_VER, HS_CLIENT_HELLO

try:
    from labkit.analyze import _dtlswalk
except ImportError:  # installed without a C compiler: _handshakes does the same, slower
    _dtlswalk = None  # type: ignore[assignment]

MIDSTREAM_MIN = 2
#: What a pair without HelloVerifyRequests or ServerHellos shows of them: read for its count
#: (and left out of every selection, being empty), never added to. One for all pairs: a
#: report on 100 k pairs asks for it several times each.
_NO_FRAMES: Final = FrameSet("", "")
DUPLICATE_S = 0.05  #: a copy closer than this is the same frame twice, not a retransmission
MIN_RETRY_S = 0.5  #: attempts closer than this are one burst, not a client that waited
#: hello identities kept (of all pairs, the latest) to recognise duplicate frames: a copy
#: comes within :data:`DUPLICATE_S`, when a head-end's busiest second has sent ~2 500 others
MAX_RECENT_HELLOS = 1 << 15
STUN_COOKIE = 0x2112A442
#: what one pair costs: its row in the columns (:mod:`dtlstable`), against the budget's
#: 100-byte column rows
PAIR_BYTES = ROW_BYTES
_TABLE = "DTLS pair"  # this table's name in the budget's counts
_STUN = "STUN pair key"  # the STUN keys' name in them
_UNIFIED_MASK, _UNIFIED_BITS = 0xE0, 0x20


@dataclass(slots=True)
class DtlsPair:
    file: str
    client: str
    server: str
    port: int
    client_h: int = 0  # address hashes (the columns' ``src_h``/``dst_h``)
    server_h: int = 0
    record_version: int | None = None
    hello_version: int | None = None  # the ServerHello's (else ClientHello's) version
    # Frames only: each filter is written when a finding asks for it (:attr:`hellos`), as
    # the filter strings cost more than the rest of a pair and most pairs are never reported.
    hello_frames: FrameSet = field(default_factory=lambda: FrameSet("", ""))
    # The distinct message_seq values of its hellos (one or two: a tuple is a quarter of a
    # dict's size); every other distinct hello repeats one of them: a retransmission.
    hello_seqs: tuple[int, ...] = ()
    distinct_hellos: int = 0
    duplicate_hellos: int = 0
    first_hello_ts: float | None = None
    cookie_hellos: int = 0
    # The server's answers, made on the first one: most pairs of a busy capture never get one.
    hvr_frames: FrameSet | None = None
    server_hello_frames: FrameSet | None = None
    client_session_id: bytes = b""
    resumed: bool | None = None
    cipher: int | None = None
    server_ccs: bool = False
    client_ccs: bool = False
    data_c2s: int = 0
    data_s2c: int = 0
    unified_c2s: int = 0  # DTLS 1.3 unified-header records (RFC 9147 section 4)
    unified_s2c: int = 0
    first_data_s2c: tuple[int, float] | None = None
    last_hello_ts: float = 0.0
    handshake_seen: bool = False
    key: int = 0  # hash of (client, server, 0, port)
    watch: Watch | None = field(default=None, repr=False, compare=False)
    seen: int = 0  # frame number of the pair's latest record: how quiet it is

    # Read from the detector's tables when asked, so that a report made while the capture
    # still grows (--follow) is right at every point.
    @property
    def stun(self) -> bool:
        """STUN on the pair's ports: WebRTC (DTLS-SRTP), not a VPN."""
        return self.watch is not None and self.watch.stun(self.key)

    def records(self, handshake: int | None) -> DtlsSelection:
        """This pair's datagrams carrying ``handshake`` messages (None: application data
        from the server)."""
        return DtlsSelection(self.client, self.server, self.port, handshake)

    def _evidence(self, hs_type: int, frames: FrameSet | None) -> FrameSet:
        """``frames`` with this pair's file and the filter that selects them."""
        if frames is None:
            return _NO_FRAMES
        return FrameSet(self.file, self.records(hs_type).wireshark(), frames.frames, frames.count)

    @property
    def hellos(self) -> FrameSet:
        """The client's ClientHellos (first fragments), duplicates included."""
        return self._evidence(HS_CLIENT_HELLO, self.hello_frames)

    @property
    def hvr(self) -> FrameSet:
        """HelloVerifyRequests from the server (an empty set when there was none)."""
        return self._evidence(dec.HS_HELLO_VERIFY, self.hvr_frames)

    @property
    def server_hello(self) -> FrameSet:
        return self._evidence(dec.HS_SERVER_HELLO, self.server_hello_frames)

    @property
    def attempts(self) -> int:
        """Distinct ClientHello datagrams (a frame captured twice counts once)."""
        return self.distinct_hellos

    @property
    def retransmitted_hellos(self) -> int:
        return self.distinct_hellos - len(self.hello_seqs)

    @property
    def answered(self) -> bool:
        return bool(
            self.hvr_frames or self.server_hello_frames or self.data_s2c or self.unified_s2c
        )

    @property
    def established(self) -> bool:
        if self.server_hello_frames:
            return (
                self.server_ccs
                or self.data_s2c > 0
                or (self.unified_c2s > 0 and self.unified_s2c > 0)
            )
        return (
            not self.handshake_seen
            and self.data_c2s >= MIDSTREAM_MIN
            and self.data_s2c >= MIDSTREAM_MIN
        )

    def unanswered_if(self, covered: bool) -> bool:
        """Retried over a real interval and nothing came back; ``covered``: the capture saw
        the client and the server after the last ClientHello (an answer would have shown)."""
        if self.answered or self.attempts < 2 or self.first_hello_ts is None:
            return False
        spread = self.last_hello_ts - self.first_hello_ts
        return spread >= MIN_RETRY_S and covered

    @property
    def version(self) -> int | None:
        return self.hello_version if self.hello_version is not None else self.record_version


@dataclass(frozen=True, slots=True)
class DtlsSelection:
    """Which datagrams of one DTLS pair are evidence, said once for every filter the pair's
    findings show: ``handshake`` 1, the ClientHellos from the client (first fragments: a
    fragmented hello is one attempt); 2 or 3, the ServerHellos or HelloVerifyRequests from
    the server; None, application data from the server (what shows a tunnel whose handshake
    is before the capture). The detector counts the same datagrams per pair."""

    client: str
    server: str
    port: int
    handshake: int | None

    def wireshark(self) -> str:
        c, s, port = self.client, self.server, self.port
        if self.handshake == HS_CLIENT_HELLO:
            return (
                f"{src_field(c)} == {c} && {dst_field(c)} == {s} && udp.dstport == {port} && "
                f"dtls.handshake.type == 1 && dtls.handshake.fragment_offset == 0"
            )
        back = f"{src_field(c)} == {s} && {dst_field(c)} == {c} && udp.srcport == {port}"
        if self.handshake is None:
            return f"{back} && dtls.record.content_type == {dec.CT_APPDATA}"
        return f"{back} && dtls.handshake.type == {self.handshake}"


def with_tls_sessions(
    client_h: np.ndarray, server_h: np.ndarray, tls: Iterable[TlsDetector]
) -> np.ndarray:
    """Per DTLS pair (its client's and server's address hashes): whether its client has a
    TLS session with its server in ``tls``."""
    out = np.zeros(len(client_h), bool)
    if len(client_h):
        for det in tls:
            out |= det.pairs_with_sessions(client_h, server_h)
    return out


@dataclass(slots=True)
class Watch:
    """What the detector learns about pairs beyond their own records: the pair keys on which
    STUN was seen (a key table: a chunk's keys cost a hash probe each, whatever the table
    holds; with the frame each was last seen by, for the budget), and when each address of a
    pair that sent a ClientHello was last seen (sorted columns, grown once per chunk)."""

    stun_keys: KeyTable = field(default_factory=KeyTable)
    stun_seen: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32))
    addrs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    addr_ts: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def stun(self, key: int) -> bool:
        return bool(self.stunned(np.array([key], np.uint64))[0])

    def stunned(self, keys: np.ndarray) -> np.ndarray:
        """Per pair key: whether STUN was seen on it."""
        return self.stun_keys.index.find(keys) >= 0

    def add_stun(self, keys: np.ndarray, frame: int) -> None:
        """STUN on pair keys ``keys``, seen by frame ``frame`` (a chunk's last: the trim
        needs no finer order)."""
        t = self.stun_keys
        t.add(keys)
        seen = widened(grown(self.stun_seen, t.index.n), np.array([frame]))
        seen[t.ids_of(keys)] = frame
        self.stun_seen = seen

    def trim_stun(self, budget: FlowBudget) -> None:
        """Past the budget's ceiling, the STUN keys seen longest ago go: a WebRTC peer keeps
        checking its pair (RFC 7675: every few seconds), so a key still in use stays."""
        t = self.stun_keys
        keep = budget.trim(_STUN, self.stun_seen[: t.index.n])
        if keep is not None:
            t.keep(keep)
            self.stun_seen[: len(keep)] = self.stun_seen[keep]

    def last_seen(self, addrs: np.ndarray) -> np.ndarray:
        """When each of ``addrs`` was last seen (from or to); -inf if not watched."""
        return last_of(addrs, self.addrs, self.addr_ts)


def _be(buf: np.ndarray, at: np.ndarray, n: int) -> np.ndarray:
    """The ``n``-byte big-endian integers at offsets ``at`` of ``buf``."""
    out = np.zeros(len(at), np.int64)
    for i in range(n):
        out = (out << 8) | buf.take(at + i, mode="clip").astype(np.int64)
    return out


class DtlsDetector:
    """Feeds on DTLS handshake records (rare) and counts the rest with numpy, per chunk.

    The pairs live in a :class:`~labkit.analyze.detectors.dtlstable.DtlsTable`; a chunk's
    handshake records update pair objects made from the rows they touch, stored back once
    at the end of the handshake pass."""

    def __init__(self, file: str, budget: FlowBudget | None = None) -> None:
        self.file = file
        self.budget = budget or FlowBudget()  # bounds :attr:`table`; counts what is dropped
        self.table = DtlsTable()  # one row per pair, keyed by hash of (client, server, 0, port)
        self.early_flows = 0  # pairs with a ClientHello dropped at the ceiling
        self.early_answered = 0  # of which answered
        self._recent: OrderedDict[int, float] = OrderedDict()  # hello identity -> last seen
        self.watch = Watch()
        self._new_watch: list[int] = []  # addresses to watch from the next merge
        self.last_ts = 0.0
        self.hello_versions: dict[int, int] = {}  # ClientHellos by record version (census)
        self.duplicate_hellos = 0

    @property
    def pairs(self) -> dict[int, DtlsPair]:
        """Every pair as an object (key -> pair), in the order they first appeared: for a
        report on a few pairs and for tests; the judge reads the columns."""
        pairs = self.pairs_at(np.arange(len(self.table)))
        return {p.key: p for p in pairs}

    def pairs_at(self, rows: np.ndarray) -> list[DtlsPair]:
        """The pairs of ``rows`` of :attr:`table` as objects."""
        return self.table.load(rows, partial(DtlsPair, self.file, watch=self.watch))

    def _merge_watch(self) -> None:
        """Watched addresses join their sorted arrays once per chunk (a sorted insert, never a
        re-sort per pair)."""
        if self._new_watch:
            w = self.watch
            new = np.unique(np.array(self._new_watch, np.uint64))
            new = new[~member(new, w.addrs)]
            at = np.searchsorted(w.addrs, new)
            w.addrs = np.insert(w.addrs, at, new)
            w.addr_ts = np.insert(w.addr_ts, at, -np.inf)
            self._new_watch.clear()

    def feed(self, view: ChunkView) -> None:
        self._feed(view)
        self._trim()

    def _trim(self) -> None:
        """Past the budget's ceiling for rows of :data:`PAIR_BYTES`, drop the pairs quiet for
        the longest (their findings are lost; the census still counts them as flows), and the
        watched addresses no kept pair has: they are watched for the pairs' sake, and kept
        past their pairs they grew with every new client and were copied by every chunk's
        sorted insert."""
        t = self.table
        if len(t) <= self.budget.ceiling(PAIR_BYTES):
            return
        keep = self.budget.trim(_TABLE, t.col("seen"), PAIR_BYTES)
        if keep is None:
            return
        dropped = np.ones(len(t), bool)
        dropped[keep] = False
        tried = dropped & (t.col("distinct") > 0)
        self.early_flows += int(np.count_nonzero(tried))
        self.early_answered += int(np.count_nonzero(tried & self.answered()))
        t.keep(keep)
        self._merge_watch()
        w = self.watch
        if len(w.addrs) > 4 * len(t):  # twice what the pairs can name: a trim every few
            kept = member(w.addrs, np.union1d(t.hashes("client"), t.hashes("server")))
            w.addrs, w.addr_ts = w.addrs[kept], w.addr_ts[kept]

    def answered(self) -> np.ndarray:
        """Per row: a HelloVerifyRequest, a ServerHello or data from the server."""
        t = self.table
        return (
            (t.col("hvr_n") > 0)
            | (t.col("sh_n") > 0)
            | (t.col("data_s2c") > 0)
            | (t.col("unified_s2c") > 0)
        )

    # What the judge asks of every pair, per row of :attr:`table` (the properties of
    # :class:`DtlsPair` of the same names, for all pairs at once).
    def established(self) -> np.ndarray:
        t = self.table
        d_c2s, d_s2c, flags = t.col("data_c2s"), t.col("data_s2c"), t.col("flags")
        after_hello = (
            (flags & SERVER_CCS > 0)
            | (d_s2c > 0)
            | ((t.col("unified_c2s") > 0) & (t.col("unified_s2c") > 0))
        )
        midstream = (flags & HANDSHAKE == 0) & (d_c2s >= MIDSTREAM_MIN) & (d_s2c >= MIDSTREAM_MIN)
        return np.where(t.col("sh_n") > 0, after_hello, midstream)

    def retried(self) -> np.ndarray:
        """:meth:`DtlsPair.unanswered_if` for a capture that covered the pair."""
        t = self.table
        spread = t.col("last_hello_ts") - t.col("first_hello_ts")
        return ~self.answered() & (t.col("distinct") >= 2) & (spread >= MIN_RETRY_S)

    def anyconnect(
        self, with_tls: np.ndarray, headends: Collection[str], session_ids: Collection[str] = ()
    ) -> np.ndarray:
        """Per pair: whether the DTLS flow is (likely) an AnyConnect/OpenConnect tunnel, the
        only DTLS the VPN findings judge: AnyConnect's pre-standard record version 0x0100; or
        DTLS from a client to a server with which it also has a TLS session (the CSTP session
        DTLS accompanies), or to a declared head-end; or the default port without STUN.
        ``with_tls``: per pair, whether the client has a TLS session with the server
        (:func:`with_tls_sessions`). WebRTC (DTLS-SRTP after STUN), CoAP, CAPWAP and test
        servers are other DTLS: counted and described, never a VPN problem. ``session_ids``:
        the X-DTLS-Session-IDs of decrypted CONNECT responses (hex): a ClientHello carrying
        one is that tunnel's DTLS on any port, even seen through NAT on other addresses (a
        head-end named by a CONNECT is in ``headends``: DTLS to it is judged on any port).
        """
        t = self.table
        out = (t.col("record_version") == DTLS1_BAD_VER) | (t.col("hello_version") == DTLS1_BAD_VER)
        out |= t.with_session_id(h for h in session_ids if h)  # an empty one names no tunnel
        out |= with_tls | t.named(t.hashes("server"), headends)
        stun = self.watch.stunned(t.col("key"))
        return out | (~stun & (t.col("port") == mtu.DEFAULT_DTLS_PORT))

    def _feed(self, view: ChunkView) -> None:
        self.table.widen(FRAME_COLUMNS, view.frames[-1:])  # frames ascend: the last is largest
        c = view.cols
        udp = (c.proto == dec.PROTO_UDP) & (c.sport >= 0)
        if not udp.any():
            self._cover(view)
            return
        rows = np.flatnonzero(udp)
        zero = np.zeros(len(rows), np.int64)
        c_key = directed(c.src_h[rows], c.dst_h[rows], zero, c.dport[rows])
        s_key = directed(c.dst_h[rows], c.src_h[rows], zero, c.sport[rows])
        rare = view.rare
        hs = [j for j, pkt in enumerate(rare) if pkt.proto == dec.PROTO_UDP and pkt.dtls]
        edit = None
        if hs:
            # Each column read once per chunk as a list: numpy scalars one by one would cost
            # more than the handshake bookkeeping itself on a capture of handshakes.
            r = view.rare_rows[hs]
            k = np.searchsorted(rows, r)
            rec_seq = _be(view.chunk.buf, c.pay[r] + 5, 6)  # RFC 6347 4.1: 48-bit sequence
            src_a, dst_a = packed_addresses(view.chunk.buf, c.l3[r], c.ipver[r])
            per_row = (c_key[k], s_key[k], c.src_h[r], c.dst_h[r], src_a, dst_a, rec_seq)
            if _dtlswalk is None or not self.table.narrow:
                edit = RowEdit(self.table, np.concatenate([c_key[k], s_key[k]]), len(hs))
                self._handshakes(edit, [rare[j] for j in hs], zip(*(a.tolist() for a in per_row)))
            else:
                self._walk([rare[j] for j in hs], *per_row)
        ts = view.ts[rows]
        finite = ts[~np.isnan(ts)]
        if len(finite):
            self.last_ts = max(self.last_ts, float(finite.max()))
        self._stun(view, rows, c_key, s_key)
        if edit is not None:
            edit.commit()
        self._merge_watch()
        self._records(view, rows, c_key, s_key)
        self._cover(view)

    def _stun(
        self, view: ChunkView, rows: np.ndarray, c_key: np.ndarray, s_key: np.ndarray
    ) -> None:
        """Remember the pair keys (both orientations) of STUN messages: WebRTC's connectivity
        checks precede its DTLS-SRTP handshake on the same ports."""
        c = view.cols
        cand = (c.pcap[rows] >= 20) & (c.p0[rows] < 0x40)
        if not cand.any():
            return
        at = c.pay[rows[cand]]
        stun = _be(c.chunk.buf, at + 4, 4) == STUN_COOKIE
        if stun.any():
            keys = np.concatenate([c_key[cand][stun], s_key[cand][stun]])
            self.watch.add_stun(keys, int(view.frames[-1]))
            self.watch.trim_stun(self.budget)

    def _records(self, view: ChunkView, rows: np.ndarray, c_key, s_key) -> None:
        """Application data (content type 23 with a DTLS version) and DTLS 1.3 unified-header
        records, counted per pair and side."""
        c = view.cols
        p0 = c.p0[rows]
        appdata = (
            (p0 == dec.CT_APPDATA)
            & (c.pcap[rows] >= 13)
            & np.isin((c.p1[rows] << 8) | c.p2[rows], list(dec.DTLS_VERSIONS))
        )
        unified = ((p0 & _UNIFIED_MASK) == _UNIFIED_BITS) & (c.pcap[rows] >= 2)
        both = appdata | unified
        if not both.any():
            return
        sel = np.flatnonzero(both)
        ck, sk, uni = c_key[sel], s_key[sel], unified[sel]
        to_server = self.table.rows_of(ck) >= 0
        to_client = (self.table.rows_of(sk) >= 0) & ~to_server
        for mask, keys, c2s in ((to_server, ck, True), (to_client, sk, False)):
            self._count(keys[mask & ~uni], rows[sel[mask & ~uni]], view, c2s, unified=False)
            self._count(keys[mask & uni], rows[sel[mask & uni]], view, c2s, unified=True)
        loose = ~(to_server | to_client) & ~uni
        if loose.any():
            self._midstream(view, rows[sel[loose]])

    def _count(
        self, keys: np.ndarray, rows: np.ndarray, view: ChunkView, c2s: bool, *, unified: bool
    ) -> None:
        """Count each pair's records one way: DTLS 1.3 unified-header records apart from the
        others (only the latter can carry the first answer's evidence)."""
        if not len(keys):
            return
        uniq, first, counts = tally(keys)
        t = self.table
        at = t.rows_of(uniq)  # every key has a row: the callers looked
        frames = view.frames[rows[first]]
        t.cols["seen"][at] = np.maximum(t.cols["seen"][at], frames)
        side = "c2s" if c2s else "s2c"
        t.add_counts(f"unified_{side}" if unified else f"data_{side}", at, counts)
        if not unified and not c2s:
            unset = t.cols["data_frame"][at] == 0
            t.cols["data_frame"][at[unset]] = frames[unset]
            t.cols["data_ts"][at[unset]] = view.ts[rows[first]][unset]

    def _midstream(self, view: ChunkView, rows: np.ndarray) -> None:
        """Data on a pair whose handshake is not in the capture: server = the lower port's
        end; with both ports the same, the end the pair's first datagram went to (in the
        chunk as across chunks: the reverse of a known pair is found by :meth:`_records`).
        A new pair's row comes from the columns alone (its record's version is the first
        record's, every row here starts with one): a capture of established tunnels has a
        new pair on nearly every datagram."""
        c = view.cols
        sport, dport = c.sport[rows], c.dport[rows]
        zero = np.zeros(len(rows), np.int64)
        forward = directed(c.src_h[rows], c.dst_h[rows], zero, dport)
        backward = directed(c.dst_h[rows], c.src_h[rows], zero, sport)
        to_server = dport <= sport
        ck = np.where(to_server, forward, backward)
        same = np.flatnonzero(sport == dport)
        if len(same):  # each unordered pair's first datagram says which end serves
            f = forward[same]
            ends = np.minimum(f, backward[same])
            uniq, first, _n = tally(ends)
            lead = f[first][position(uniq, ends)]
            to_server[same] = f == lead
            ck[same] = lead
        uniq, first, _n = tally(ck)
        new = self.table.rows_of(uniq) < 0
        if new.any():
            at = first[new]  # each new pair's first datagram, in key order
            r, up = rows[at], to_server[at]
            src_a, dst_a = packed_addresses(view.chunk.buf, c.l3[r], c.ipver[r])
            client_a, server_a = np.where(up, src_a, dst_a), np.where(up, dst_a, src_a)
            self.table.add_rows(
                uniq[new],
                client_a,
                server_a,
                c.ipver[r] == 6,
                np.where(up, dport[at], sport[at]),
                record_version=(c.p1[r].astype(np.int64) << 8) | c.p2[r],
                seen=view.frames[r],
            )
        known = self.table.rows_of(ck) >= 0
        ts, kn = to_server & known, ~to_server & known
        self._count(ck[ts], rows[ts], view, c2s=True, unified=False)
        self._count(ck[kn], rows[kn], view, c2s=False, unified=False)

    def _handshakes(
        self,
        edit: RowEdit,
        pkts: list[dec.Packet],
        per_row: Iterable[tuple[int, int, int, int, bytes, bytes, int]],
    ) -> None:
        """A chunk's datagrams with DTLS handshake records, in order, into ``edit``'s rows.
        ``per_row``, per datagram: the pair's key if the sender is the client, its key if the
        sender is the server, the source's and destination's address hashes and packed
        addresses, and the first record's sequence number.

        One loop with every column bound to a name: on a head-end's capture nearly every
        packet passes here, and each method call or column lookup per record would cost as
        much as the bookkeeping itself."""
        at, c, new, add_frame = edit.at, edit.c, edit.new, edit.add_frame
        seen, flags, record_version = c["seen"], c["flags"], c["record_version"]
        keys, distinct, duplicate = c["key"], c["distinct"], c["duplicate"]
        first_ts, last_ts, cookie, hello_version = (
            c["first_hello_ts"],
            c["last_hello_ts"],
            c["cookie"],
            c["hello_version"],
        )
        recent, versions, watch = self._recent, self.hello_versions, self._new_watch
        client_hello, hvr, server_hello = HS_CLIENT_HELLO, dec.HS_HELLO_VERIFY, dec.HS_SERVER_HELLO
        for pkt, (key_c, key_s, src_h, dst_h, src_a, dst_a, rec_seq) in zip(pkts, per_row):
            recs = pkt.dtls
            from_client = any(r.hs_type == client_hello for r in recs)
            if from_client:
                i = at.get(key_c)
                if i is None:
                    i = new(key_c, src_a, dst_a, pkt.ipver == 6, pkt.dport or 0)
            elif (i := at.get(key_s)) is not None:
                pass
            elif (i := at.get(key_c)) is not None:
                from_client = True
            elif any(r.hs_type in (server_hello, hvr) for r in recs):
                # the hello itself was not captured
                i = new(key_s, dst_a, src_a, pkt.ipver == 6, pkt.sport or 0)
            else:
                continue
            frame, ts = pkt.frame, pkt.ts
            seen[i] = frame
            flags[i] |= HANDSHAKE
            if record_version[i] == NO_VALUE:
                record_version[i] = recs[0].version
            for n, r in enumerate(recs):
                hs_type = r.hs_type
                if r.content_type == dec.CT_CCS:
                    flags[i] |= CLIENT_CCS if from_client else SERVER_CCS
                elif not from_client:
                    if hs_type == hvr:
                        add_frame(HVR_FRAMES, i, frame, ts)
                    elif hs_type == server_hello and r.fragment_offset == 0:
                        self._server_hello(edit, i, r, frame, ts)
                    # A record already encrypted (epoch > 0) from the server also answers.
                elif hs_type == client_hello and r.fragment_offset == 0:
                    versions[r.version] = versions.get(r.version, 0) + 1
                    add_frame(HELLO_FRAMES, i, frame, ts)  # evidence: duplicates included
                    # Its identity: the pair, the client port, the record's sequence number
                    # (read from the columns for the first record only: a hello later in the
                    # datagram is identified by its position instead) and message_seq.
                    msg_seq = r.message_seq or 0
                    ident = hash((keys[i], pkt.sport or 0, rec_seq if n == 0 else -n, msg_seq))
                    before = recent.pop(ident, None)
                    if len(recent) >= MAX_RECENT_HELLOS:
                        recent.popitem(last=False)
                    recent[ident] = ts
                    if before is not None and abs(ts - before) < DUPLICATE_S:
                        duplicate[i] += 1
                        self.duplicate_hellos += 1
                        continue
                    distinct[i] += 1
                    edit.add_seq(i, msg_seq)
                    if distinct[i] == 1:
                        first_ts[i] = ts
                        watch += (src_h, dst_h)  # the client's and the server's
                    if ts > last_ts[i]:
                        last_ts[i] = ts
                    if r.cookie_len:
                        cookie[i] += 1
                    if r.session_id is not None:
                        edit.set_session_id(i, r.session_id)
                    if hello_version[i] == NO_VALUE and r.hello_version is not None:
                        hello_version[i] = r.hello_version

    def _walk(
        self,
        pkts: list[dec.Packet],
        c_keys: np.ndarray,
        s_keys: np.ndarray,
        src_h: np.ndarray,
        dst_h: np.ndarray,
        src_a: np.ndarray,
        dst_a: np.ndarray,
        rec_seq: np.ndarray,
    ) -> None:
        """:meth:`_handshakes`, compiled (``_dtlswalk.c``): the same rules on the table's
        columns in place, the same side dicts and recent-hello identities. The columns grow
        as they do for :class:`RowEdit` (when a new pair finds them full): a
        chunk's datagrams are no measure of its new pairs (a pair is three of them or more)."""
        t, start = self.table, 0
        while start < len(pkts):
            ck, sk = c_keys[start:], s_keys[start:]
            made, duplicates, done = _dtlswalk.walk(
                pkts[start:],
                (
                    ck,
                    sk,
                    t.rows_of(ck),
                    t.rows_of(sk),
                    src_h[start:],
                    dst_h[start:],
                    rec_seq[start:],
                ),
                src_a[start:],
                dst_a[start:],
                tuple(t.cols.values()),
                t.n,
                (
                    t.long_session_ids,
                    t.more_seqs,
                    t.more_frames,
                    self.hello_versions,
                    self._recent,
                    self._new_watch,
                ),
                (MAX_RECENT_HELLOS, DUPLICATE_S, MAX_FRAMES),
            )
            t.appended(made)
            self.duplicate_hellos += duplicates
            start += done
            if start < len(pkts):  # the columns were full: grown, and on
                t.reserve(1)

    @staticmethod
    def _server_hello(edit: RowEdit, i: int, r: dec.DtlsRecord, frame: int, ts: float) -> None:
        """A ServerHello (its first fragment) on row ``i``'s pair: the cipher, the version,
        and whether the session was resumed (its session id is the client's)."""
        c = edit.c
        edit.add_frame(SH_FRAMES, i, frame, ts)
        c["cipher"][i] = NO_VALUE if r.cipher is None else r.cipher
        if r.hello_version is not None:
            c["hello_version"][i] = r.hello_version
        if r.session_id is not None:
            sid = r.session_id
            c["resumed"][i] = int(bool(sid) and sid == edit.session_id(i))

    def _cover(self, view: ChunkView) -> None:
        """Last time each address of a pair that sent a ClientHello was seen: whether the
        capture kept covering the client and the server after their last ClientHello."""
        self._merge_watch()
        w = self.watch
        if not len(w.addrs):
            return
        rows = view.sightings()  # one per TCP flow: latest enough, and true
        if not len(rows):
            return
        # Each address's latest sighting first, then which are watched: a chunk's sightings
        # are mostly a few hosts' (DTLS data between the very pairs watched), and a hashed
        # tally per row costs a fraction of a binary search through the watched addresses.
        c = view.cols
        seen, last = largest(
            np.concatenate([c.src_h[rows], c.dst_h[rows]]), np.tile(view.ts[rows], 2)
        )
        at = position(w.addrs, seen)
        hit = at >= 0
        at = at[hit]
        w.addr_ts[at] = np.maximum(w.addr_ts[at], last[hit])
