"""DTLS per client -> server:port, recognised by content on any UDP port (0x0100 too).

State per pair (one client address, one server address and port; the client's source port
may change between attempts): ClientHello datagrams (attempts; a hello whose message_seq was
already seen is a retransmission), HelloVerifyRequests, the ServerHello (cipher, resumption:
its session id equals the client's), ChangeCipherSpec per side, application data per side
(counted with numpy for the whole chunk, never per packet in Python).

Definitions (documented in the README, used by the findings):

* answered: a HelloVerifyRequest or ServerHello from the server, or data from it.
* established: a ServerHello, then the server's ChangeCipherSpec or application data; or, when
  the handshake happened before the capture started, application data both ways (at least
  :data:`MIDSTREAM_MIN` datagrams each way).
* unanswered: ClientHellos and none of the above, with at least two attempts or the capture
  running on :data:`WAIT_S` seconds after the last one (one hello at the very end of a
  capture proves nothing).

Record layout: RFC 6347 4.1 (13-byte header), 4.2.2 (12-byte handshake header); 0x0100 is
DTLS1_BAD_VER, AnyConnect's pre-standard DTLS (DESIGN.md section 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labkit.analyze import decode as dec
from labkit.analyze.decode import directed
from labkit.analyze.engine import ChunkView, tally
from labkit.analyze.evidence import FrameSet, dst_field, src_field

MIDSTREAM_MIN = 2
WAIT_S = 2.0
MAX_CLIENT_PORTS = 32


@dataclass(slots=True)
class DtlsPair:
    file: str
    client: str
    server: str
    port: int
    client_ports: set[int] = field(default_factory=set)
    record_version: int | None = None
    hello_version: int | None = None  # the ServerHello's (else ClientHello's) version
    hellos: FrameSet | None = None
    hello_seqs: dict[int, int] = field(default_factory=dict)  # message_seq -> datagrams
    cookie_hellos: int = 0
    hvr: FrameSet | None = None
    server_hello: FrameSet | None = None
    client_session_id: bytes = b""
    resumed: bool | None = None
    cipher: int | None = None
    server_ccs: bool = False
    client_ccs: bool = False
    data_c2s: int = 0
    data_s2c: int = 0
    first_data_s2c: tuple[int, float] | None = None
    last_hello_ts: float = 0.0
    handshake_seen: bool = False

    def __post_init__(self) -> None:
        c, s = self.client, self.server
        base = f"{src_field(c)} == {c} && {dst_field(c)} == {s} && udp.dstport == {self.port}"
        self.hellos = FrameSet(
            self.file, f"{base} && dtls.handshake.type == 1 && dtls.handshake.fragment_offset == 0"
        )
        back = f"{src_field(c)} == {s} && {dst_field(c)} == {c} && udp.srcport == {self.port}"
        self.hvr = FrameSet(self.file, f"{back} && dtls.handshake.type == 3")
        self.server_hello = FrameSet(self.file, f"{back} && dtls.handshake.type == 2")

    @property
    def attempts(self) -> int:
        return self.hellos.count if self.hellos else 0

    @property
    def retransmitted_hellos(self) -> int:
        return sum(n - 1 for n in self.hello_seqs.values() if n > 1)

    @property
    def answered(self) -> bool:
        return bool(self.hvr.count or self.server_hello.count or self.data_s2c)  # type: ignore[union-attr]

    @property
    def established(self) -> bool:
        if self.server_hello.count:  # type: ignore[union-attr]
            return self.server_ccs or self.data_s2c > 0
        return (
            not self.handshake_seen
            and self.data_c2s >= MIDSTREAM_MIN
            and self.data_s2c >= MIDSTREAM_MIN
        )

    @property
    def version(self) -> int | None:
        return self.hello_version if self.hello_version is not None else self.record_version


def _member(values: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """np.isin against a sorted, non-empty key array: one binary search per value (isin sorts
    both sides every call)."""
    pos = np.minimum(np.searchsorted(sorted_keys, values), len(sorted_keys) - 1)
    return sorted_keys[pos] == values


class DtlsDetector:
    """Feeds on DTLS handshake records (rare) and counts application data with numpy."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.pairs: dict[int, DtlsPair] = {}  # hash of (client, server, 0, port) -> pair
        self._keys = np.zeros(0, np.uint64)
        self.last_ts = 0.0
        self.hello_versions: dict[int, int] = {}  # ClientHellos by record version (census)

    def _pair(self, pkt: dec.Packet, client_side: bool, key: int) -> DtlsPair:
        pair = self.pairs.get(key)
        if pair is None:
            client, server = (pkt.src, pkt.dst) if client_side else (pkt.dst, pkt.src)
            port = pkt.dport if client_side else pkt.sport
            pair = self.pairs[key] = DtlsPair(self.file, client, server, int(port or 0))
            self._keys = np.array(sorted(self.pairs), np.uint64)
        cport = pkt.sport if client_side else pkt.dport
        if len(pair.client_ports) < MAX_CLIENT_PORTS and cport is not None:
            pair.client_ports.add(cport)
        return pair

    def feed(self, view: ChunkView) -> None:
        c = view.cols
        udp = (c.proto == dec.PROTO_UDP) & (c.sport >= 0)
        if not udp.any():
            return
        rows = np.flatnonzero(udp)
        c_key = directed(c.src_h[rows], c.dst_h[rows], np.zeros(len(rows), np.int64), c.dport[rows])
        s_key = directed(c.dst_h[rows], c.src_h[rows], np.zeros(len(rows), np.int64), c.sport[rows])
        pos = np.searchsorted(rows, view.rare_rows)
        for j, pkt in enumerate(view.rare):
            if pkt.proto == dec.PROTO_UDP and pkt.dtls:
                k = int(pos[j])
                self._handshake(pkt, int(c_key[k]), int(s_key[k]))
        ts = view.ts[rows]
        finite = ts[~np.isnan(ts)]
        if len(finite):
            self.last_ts = max(self.last_ts, float(finite.max()))
        # Application data: content type 23 with a DTLS version, counted per pair and side.
        appdata = (
            (c.p0[rows] == dec.CT_APPDATA)
            & (c.pcap[rows] >= 13)
            & np.isin((c.p1[rows] << 8) | c.p2[rows], list(dec.DTLS_VERSIONS))
        )
        if not appdata.any():
            return
        a_rows = rows[appdata]
        ck, sk = c_key[appdata], s_key[appdata]
        if len(self._keys):
            to_server = _member(ck, self._keys)
            to_client = _member(sk, self._keys) & ~to_server
            self._count(ck[to_server], a_rows[to_server], view, c2s=True)
            self._count(sk[to_client], a_rows[to_client], view, c2s=False)
            loose = ~(to_server | to_client)
        else:
            loose = np.ones(len(a_rows), bool)
        if loose.any():
            self._midstream(view, a_rows[loose])

    def _count(self, keys: np.ndarray, rows: np.ndarray, view: ChunkView, c2s: bool) -> None:
        if not len(keys):
            return
        uniq, first, counts = tally(keys)
        for k, i, n in zip(uniq.tolist(), first.tolist(), counts.tolist()):
            pair = self.pairs[k]
            if c2s:
                pair.data_c2s += n
            else:
                if pair.first_data_s2c is None:
                    r = rows[i]
                    pair.first_data_s2c = (int(view.frames[r]), float(view.ts[r]))
                pair.data_s2c += n

    def _midstream(self, view: ChunkView, rows: np.ndarray) -> None:
        """Data on a pair whose handshake is not in the capture: server = the lower port."""
        c = view.cols
        sport, dport = c.sport[rows], c.dport[rows]
        to_server = dport <= sport
        ck = np.where(
            to_server,
            directed(c.src_h[rows], c.dst_h[rows], np.zeros(len(rows), np.int64), dport),
            directed(c.dst_h[rows], c.src_h[rows], np.zeros(len(rows), np.int64), sport),
        )
        uniq, first, _n = tally(ck)
        for k, i in zip(uniq.tolist(), first.tolist()):
            if k not in self.pairs:
                r = int(rows[i])
                pkt = dec.decode(
                    view.chunk.packet(r), int(view.chunk.linktype[r]), int(view.frames[r])
                )
                if pkt.dtls:
                    pair = self._pair(pkt, bool(to_server[i]), k)
                    pair.record_version = pkt.dtls[0].version
        self._count(ck[to_server], rows[to_server], view, c2s=True)
        self._count(ck[~to_server], rows[~to_server], view, c2s=False)

    def _handshake(self, pkt: dec.Packet, key_c: int, key_s: int) -> None:
        """``key_c``: the pair's key if the sender is the client; ``key_s``: if it is the server."""
        rec0 = pkt.dtls[0]
        hs = [r for r in pkt.dtls if r.hs_type is not None]
        from_client = any(r.hs_type == dec.HS_CLIENT_HELLO for r in hs)
        if from_client:
            pair = self._pair(pkt, True, key_c)
        elif key_s in self.pairs:
            pair = self.pairs[key_s]
        elif key_c in self.pairs:
            pair = self.pairs[key_c]
            from_client = True
        elif any(r.hs_type in (dec.HS_SERVER_HELLO, dec.HS_HELLO_VERIFY) for r in hs):
            pair = self._pair(pkt, False, key_s)  # the hello itself was not captured
        else:
            return
        pair.handshake_seen = True
        if pair.record_version is None:
            pair.record_version = rec0.version
        for r in pkt.dtls:
            if r.content_type == dec.CT_CCS:
                if from_client:
                    pair.client_ccs = True
                else:
                    pair.server_ccs = True
            if r.hs_type == dec.HS_CLIENT_HELLO and r.fragment_offset == 0 and from_client:
                pair.hellos.add(pkt.frame, pkt.ts)  # type: ignore[union-attr]
                self.hello_versions[r.version] = self.hello_versions.get(r.version, 0) + 1
                seq = r.message_seq or 0
                pair.hello_seqs[seq] = pair.hello_seqs.get(seq, 0) + 1
                pair.last_hello_ts = pkt.ts
                if r.cookie_len:
                    pair.cookie_hellos += 1
                if r.session_id is not None:
                    pair.client_session_id = r.session_id
                if pair.hello_version is None and r.hello_version is not None:
                    pair.hello_version = r.hello_version
            elif r.hs_type == dec.HS_HELLO_VERIFY and not from_client:
                pair.hvr.add(pkt.frame, pkt.ts)  # type: ignore[union-attr]
            elif r.hs_type == dec.HS_SERVER_HELLO and not from_client and r.fragment_offset == 0:
                pair.server_hello.add(pkt.frame, pkt.ts)  # type: ignore[union-attr]
                pair.cipher = r.cipher
                if r.hello_version is not None:
                    pair.hello_version = r.hello_version
                if r.session_id is not None:
                    pair.resumed = bool(r.session_id) and r.session_id == pair.client_session_id
            # A record already encrypted (epoch > 0) from the server also answers.

    def unanswered(self, pair: DtlsPair) -> bool:
        if pair.answered or not pair.attempts:
            return False
        return pair.attempts >= 2 or self.last_ts - pair.last_hello_ts >= WAIT_S
