"""Decrypt AnyConnect's TLS (CSTP) sessions with an NSS key log and read what the tunnel says.

Input: the capture's TCP segments (:class:`Segment`, in capture order) and a parsed
:class:`~labkit.analyze.keylog.KeyLog`. Only flows that open with a TLS ClientHello whose
client random the key log knows are followed: every other packet costs one dictionary lookup.
Each followed flow goes segment -> :class:`~labkit.wire.tlsstream.TcpReassembler` -> TLS
records -> decryption, record by record so every record keeps its frame ->
:class:`~labkit.wire.cstpstream.CstpStream` per direction.

Decryption, by what the session negotiated:

* TLS 1.2 with AES-CBC (either MAC order) or AES-GCM, the suites AnyConnect head-ends use:
  the record keys follow from the key log's master secret and the ServerHello
  (:mod:`labkit.wire.tlskeys`); every record from ChangeCipherSpec on is opened with
  ``cryptography`` and authenticated (:func:`~labkit.wire.tlscrypt.open_record`). Scapy is
  not imported.
* Any other suite, and TLS 1.3: Scapy's TLS layer (``tlsSession`` with the key log's
  secrets, the same machinery as ``conf.tls_nss_filename`` + ``TCPSession``, DESIGN.md
  section 3) decrypts the records; once a direction's tunnel runs in a suite labkit opens
  itself (TLS 1.1/1.2 AES), its keys are taken over from Scapy.

Which records are authenticated (MAC or AEAD tag checked): every record fed one at a time
(the handshake's Finished, the CONNECT exchange, anything unusual). A running tunnel's
records, read a chunk at a time (:meth:`Decryptor.plan`, fed by
:class:`~labkit.analyze.sources.KeyedDecryption`), are authenticated whole when they are among
the first :data:`AUTH_FIRST` of their direction or every :data:`AUTH_EVERY`-th after; the
others are counted from their first and last cipher blocks (the CSTP header, the padding),
which a wrong key or damage there fails, sending the chunk back to one record at a time.
Damage confined to the middle of such a record (the tunnelled packet's payload, which the
report never reads) goes unnoticed; record by record it would have dropped the packet.

Output: for each TLS session that carries a tunnel, the client's CONNECT request and the
head-end's ``200 CONNECTED`` response (only the response's X-CSTP-MTU / X-DTLS-MTU /
X-CSTP-Base-MTU / X-DTLS-Port are the head-end's numbers; the client sends its own
X-CSTP-MTU in the request) and the CSTP packets each way: counts per type and the largest
DATA packet, with frames. Sessions that decrypt but carry no CONNECT, and flows that cannot be
followed (no handshake in the capture, a hole in the stream, a secret that fails the integrity
check, a renegotiation), are reported, never fatal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple

import numpy as np

from labkit.analyze.keylog import TLS12_LABEL, KeyLog
from labkit.wire import (
    CSTP_HEADER_LEN,
    CT_ALERT,
    CT_APPLICATION_DATA,
    CT_CHANGE_CIPHER_SPEC,
    CT_HANDSHAKE,
    HS_CLIENT_HELLO,
)
from labkit.wire.cstpstream import (
    NEED_DATA,
    CstpPacket,
    CstpStream,
    HttpHead,
    StreamError,
    type_name,
)
from labkit.wire.tlscrypt import IntegrityError, RecordKeys, cstp_heads, open_record, peek
from labkit.wire.tlskeys import Suite, record_keys, server_hello
from labkit.wire.tlsstream import TLS_HEADER, TcpReassembler, TlsRecordSplitter
from labkit.wire.tlswalk import Records

MAX_RECORDS: Final = 1_000_000  # records decrypted per run: the work bound
MAX_SIZES: Final = 200_000  # data packet sizes kept for the timeline plot (evenly thinned)
MAX_FAILURES: Final = 3  # integrity failures in a row before a flow's secret is judged wrong
#: Records counted from their first block (:meth:`Decryptor.plan`) are authenticated whole too
#: when they are among the first AUTH_FIRST of their direction, or every AUTH_EVERY-th after.
AUTH_FIRST: Final = 16
AUTH_EVERY: Final = 1024

Direction = Literal["to-server", "to-client"]


class Segment(NamedTuple):
    """One TCP segment with payload, as the capture has it."""

    frame: int
    time: float
    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class DataSize:
    """One tunnelled packet, for the timeline: when, where, which way, how big."""

    time: float
    frame: int
    direction: Direction
    size: int


@dataclass(frozen=True, slots=True)
class DataSizes:
    """The tunnelled DATA packets kept for the timeline (at most :data:`MAX_SIZES`, in capture
    order), as columns: a GB session's 200 000 of them cost no Python object each."""

    time: np.ndarray  # float64
    frame: np.ndarray  # int64
    to_client: np.ndarray  # bool: the direction
    size: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.size)

    def of(self, direction: Direction) -> DataSizes:
        return _take(self, self.to_client == (direction == "to-client"))

    def items(self) -> tuple[DataSize, ...]:
        """One :class:`DataSize` per packet."""
        return tuple(
            DataSize(t, f, "to-client" if c else "to-server", z)
            for t, f, c, z in zip(
                self.time.tolist(), self.frame.tolist(), self.to_client.tolist(), self.size.tolist()
            )
        )


def _take(sizes: DataSizes, rows: np.ndarray) -> DataSizes:
    return DataSizes(sizes.time[rows], sizes.frame[rows], sizes.to_client[rows], sizes.size[rows])


def _sizes(parts: list[DataSizes]) -> DataSizes:
    """``parts`` end to end (none: no packet)."""
    empty = DataSizes(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0, np.int64))
    return DataSizes(
        *(np.concatenate([getattr(p, f) for p in (empty, *parts)]) for f in DataSizes.__slots__)
    )


@dataclass(frozen=True, slots=True)
class DirectionStats:
    packets: tuple[tuple[str, int], ...] = ()  # (CSTP type name, count), most frequent first
    largest_data: int | None = None
    largest_frame: int | None = None
    largest_time: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "packets": dict(self.packets),
            "largest_data": self.largest_data,
            "largest_data_frame": self.largest_frame,
        }


@dataclass(frozen=True, slots=True)
class TunnelSession:
    """One decrypted TLS session and what it carried."""

    client: str  # "ip:port"
    server: str
    tls: str  # "TLS 1.2 TLS_RSA_WITH_AES_128_CBC_SHA"
    request: HttpHead | None  # the client's CONNECT (carries the client's own X-CSTP-MTU)
    response: HttpHead | None  # the head-end's 200 CONNECTED
    first_request: str | None  # the first HTTP start line seen, for sessions without a tunnel
    to_server: DirectionStats
    to_client: DirectionStats
    records: int  # records decrypted and authenticated

    @property
    def is_tunnel(self) -> bool:
        return self.response is not None

    def head_end(self, header: str) -> int | None:
        """An integer header of the head-end's CONNECT response; never the client's."""
        return self.response.header_int(header) if self.response is not None else None

    @property
    def dtls_cipher(self) -> str | None:
        if self.response is None:
            return None
        return self.response.header("X-DTLS12-CipherSuite") or self.response.header(
            "X-DTLS-CipherSuite"
        )

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "client": self.client,
            "server": self.server,
            "tls": self.tls,
            "records": self.records,
        }
        if self.response is not None:
            doc["connect_response"] = {
                "frame": self.response.frame,
                "status": self.response.start_line,
                "headers": dict(self.response.headers),
            }
        if self.request is not None:
            doc["connect_request"] = {
                "frame": self.request.frame,
                "request": self.request.start_line,
                "headers": {
                    k: v
                    for k, v in self.request.headers
                    if k.lower().startswith(("x-cstp", "x-dtls")) and "secret" not in k.lower()
                },
            }
        if self.first_request and not self.is_tunnel:
            doc["first_request"] = self.first_request
        doc["cstp"] = {"to_client": self.to_client.to_json(), "to_server": self.to_server.to_json()}
        return doc


@dataclass(frozen=True, slots=True)
class FlowNote:
    """A flow labkit could not follow to the end, and why."""

    client: str
    server: str
    frame: int
    message: str


@dataclass(frozen=True, slots=True)
class BulkPlan:
    """One direction's records of one chunk, counted from their first blocks
    (:meth:`Decryptor.plan`): what :meth:`Decryptor.commit` adds to the flow."""

    flow: _Flow
    direction: Direction
    records: int
    counts: tuple[tuple[str, int], ...]  # CSTP packets by type name, in first-seen order
    largest: CstpPacket | None  # the first largest DATA packet
    sizes: DataSizes  # its DATA packets


@dataclass(frozen=True, slots=True)
class DecryptReport:
    keylog_entries: int
    keylog_malformed: int
    tls_flows: int  # flows that open with a ClientHello in the capture
    keyed_flows: int  # ... whose client random the key log has
    sessions: tuple[TunnelSession, ...]  # keyed flows with at least one decrypted record
    notes: tuple[FlowNote, ...]
    data_sizes: DataSizes
    stopped: str | None = None  # a work bound that ended decryption early

    @property
    def sizes(self) -> tuple[DataSize, ...]:
        return self.data_sizes.items()

    @property
    def tunnels(self) -> tuple[TunnelSession, ...]:
        return tuple(s for s in self.sessions if s.is_tunnel)

    def summary(self) -> str:
        """One sentence: what the key log opened, for the report and the warnings."""
        if self.keylog_entries == 0:
            return "the key log has no usable entry: nothing decrypted"
        if self.keyed_flows == 0:
            return (
                f"the key log ({self.keylog_entries} entries) matches none of the "
                f"{self.tls_flows} TLS sessions that start in the capture: nothing decrypted"
            )
        if not self.sessions:
            return (
                f"the key log matches {self.keyed_flows} TLS session(s) but decrypts none "
                f"of their records (wrong secrets?)"
            )
        tunnels = self.tunnels
        if not tunnels:
            seen = "; ".join(
                f"{s.client} -> {s.server}: {s.first_request or 'no HTTP'}"
                for s in self.sessions[:3]
            )
            return (
                f"decrypted {len(self.sessions)} TLS session(s) but found no AnyConnect "
                f"CONNECT in them (not a CSTP tunnel): {seen}"
            )
        return f"decrypted {len(self.sessions)} TLS session(s); {len(tunnels)} carry a CSTP tunnel"

    def to_json(self) -> dict[str, Any]:
        return {
            "keylog_entries": self.keylog_entries,
            "keylog_malformed": self.keylog_malformed,
            "tls_flows": self.tls_flows,
            "keyed_flows": self.keyed_flows,
            "summary": self.summary(),
            "sessions": [s.to_json() for s in self.sessions],
            "notes": [
                {"client": n.client, "server": n.server, "frame": n.frame, "message": n.message}
                for n in self.notes
            ],
            "stopped": self.stopped,
        }


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _short_cbc(session: Any, record: bytes) -> bool:
    """A keyed CBC record too short to carry its IV and a block (RFC 5246 6.2.3.2).

    Scapy's ``TLS.pre_dissect`` takes the IV as the first block of the fragment (record
    version >= TLS 1.1, from the record header) or keeps the last block of the previous one
    (TLS 1.0), less the MAC with encrypt-then-MAC. A shorter fragment gives it a short IV, and
    cryptography then panics in Rust (``iv_len <= iv.len()``): an abort message and a Rust
    backtrace on stderr, not an exception. Such a record is damage; it never decrypts.
    """
    cipher = session.rcs.cipher
    if getattr(cipher, "type", "") != "block" or not all(getattr(cipher, "ready", {}).values()):
        return False  # not CBC, or no keys yet: Scapy reads the record as plaintext
    size = cipher.block_size
    fragment = min(int.from_bytes(record[3:5], "big"), len(record) - 5)
    if session.encrypt_then_mac:
        fragment -= session.rcs.mac_len
    explicit_iv = int.from_bytes(record[1:3], "big") >= 0x0302
    return fragment < size * (2 if explicit_iv else 1)


def client_random(payload: bytes) -> bytes | None:
    """The ClientHello's random when ``payload`` starts with one (RFC 8446 4.1.2)."""
    if (
        len(payload) < 43
        or payload[0] != CT_HANDSHAKE
        or payload[1] != 3
        or payload[5] != HS_CLIENT_HELLO
    ):
        return None
    return payload[11:43]


def scapy_keys(session: Any) -> RecordKeys | None:
    """The read keys of Scapy's ``session`` (its ``rcs``) when labkit can open its records
    itself: TLS 1.1/1.2 with AES-CBC (explicit IV; either MAC order) or AES-GCM; None for any
    other suite or version, whose records stay with Scapy's TLS layer."""
    rcs = session.rcs
    cipher = rcs.cipher
    if not all(getattr(cipher, "ready", {"": False}).values()):
        return None
    if session.tls_version not in (0x0302, 0x0303):
        return None
    name = type(cipher).__name__
    if name in ("Cipher_AES_128_GCM", "Cipher_AES_256_GCM"):
        return RecordKeys("gcm", bytes(cipher.key), salt=bytes(cipher.fixed_iv))
    mac = {"Hmac_SHA": "sha1", "Hmac_SHA256": "sha256", "Hmac_SHA384": "sha384"}.get(
        type(rcs.hmac).__name__
    )
    if name in ("Cipher_AES_128_CBC", "Cipher_AES_256_CBC") and mac is not None:
        etm = bool(session.encrypt_then_mac)
        return RecordKeys("cbc", bytes(cipher.key), bytes(rcs.hmac.key), mac, etm)
    return None


class _Direction:
    def __init__(self, side: Literal["client", "server"]) -> None:
        self.tcp = TcpReassembler()
        self.records = TlsRecordSplitter()
        self.cstp = CstpStream(side)
        self.counts: Counter[str] = Counter()
        self.largest: CstpPacket | None = None
        # Once the tunnel runs, the records are opened with these keys instead of Scapy's TLS
        # layer: ``seq`` is the next record's sequence number, ``opened`` counts them.
        self.keys: RecordKeys | None = None
        self.seq = 0
        self.opened = 0
        self.finished = True  # False between ChangeCipherSpec and Finished

    def stats(self) -> DirectionStats:
        big = self.largest
        return DirectionStats(
            tuple(self.counts.most_common()),
            big.length if big else None,
            big.frame if big else None,
            big.time if big else None,
        )


class _Flow:
    """Decryption state of one keyed TCP connection.

    Until the server's hello is read the flow's records are held (``held``). A TLS 1.2 session
    in a suite :mod:`labkit.wire.tlskeys` knows then gets its record keys from the key log's
    master secret (``mode`` "native"): each direction's records are opened with them from its
    ChangeCipherSpec on, and Scapy is never needed. Any other session replays the held
    records into Scapy's TLS layer (``mode`` "scapy"), which decrypts its handshake and, once
    the tunnel runs, hands its keys over where it can (:func:`scapy_keys`).
    """

    def __init__(
        self, client: tuple[str, int], server: tuple[str, int], random: bytes, keylog: KeyLog
    ) -> None:
        self.client, self.server = client, server
        self.random = random
        self.keylog = keylog
        self.mode: Literal["hello", "native", "scapy"] = "hello"
        self.held: list[tuple[Direction, bytes, int, float]] = []
        self.server_handshake = bytearray()  # the server's first handshake bytes
        self.suite: Suite | None = None
        self.native: dict[Direction, RecordKeys] = {}
        self.session: Any = None  # Scapy's tlsSession, in "scapy" mode
        self.last: Direction | None = None
        self.dirs: dict[Direction, _Direction] = {
            "to-server": _Direction("client"),
            "to-client": _Direction("server"),
        }
        self.request: HttpHead | None = None
        self.response: HttpHead | None = None
        self.first_request: str | None = None
        self.decrypted = 0
        self.failures = 0
        self.done: str | None = None  # why this flow is no longer followed
        self.done_frame = 0

    @property
    def names(self) -> tuple[str, str]:
        return _endpoint(*self.client), _endpoint(*self.server)

    def tls_name(self) -> str:
        if self.suite is not None:
            return f"TLS 1.2 {self.suite.name}"
        if self.session is None:
            return "TLS ?"
        from scapy.layers.tls.basefields import _tls_version

        version = _tls_version.get(self.session.tls_version or 0, "TLS ?")
        suite = getattr(getattr(self.session.rcs, "ciphersuite", None), "name", None)
        return f"{version} {suite}" if suite else version

    def start_scapy(self) -> None:
        from scapy.layers.tls.session import tlsSession  # Scapy only for the sessions it needs

        self.mode = "scapy"
        self.session = tlsSession()
        self.session.nss_keys = self.keylog.secrets

    def hello(self, data: bytes) -> bool:
        """Read the server's handshake record ``data``; True once the mode is decided."""
        if data[0] == CT_HANDSHAKE:
            self.server_handshake += data[TLS_HEADER:]
        hello = server_hello(bytes(self.server_handshake))
        if hello is None and data[0] == CT_HANDSHAKE and len(self.server_handshake) < 1 << 16:
            return False  # the hello continues in the next record
        master = self.keylog.secrets.get(TLS12_LABEL, {}).get(self.random)
        keys = record_keys(master, self.random, hello) if hello and master else None
        if keys is None:
            self.start_scapy()
        else:
            self.mode = "native"
            self.suite = keys[0]
            self.native = {"to-server": keys[1], "to-client": keys[2]}
        return True


def _sampled(opened: int, n: int) -> list[int]:
    """Which of ``n`` records, the first ``opened`` of its direction's having gone before, are
    authenticated whole: the first :data:`AUTH_FIRST` of the direction, every
    :data:`AUTH_EVERY`-th after."""
    first = range(min(max(AUTH_FIRST - opened, 0), n))
    every = range(-opened % AUTH_EVERY, n, AUTH_EVERY)
    return sorted(set(first) | set(every))


def _type_counts(count: np.ndarray, first: np.ndarray) -> tuple[tuple[str, int], ...]:
    """CSTP packets by type name, in first-seen order: ``count`` and ``first`` per type value
    (a running tunnel sends two or three)."""
    present = np.flatnonzero(count).tolist()
    return tuple(
        (type_name(t), int(count[t])) for _f, t in sorted((int(first[t]), t) for t in present)
    )


class Decryptor:
    """Feed segments in capture order with :meth:`feed`; :meth:`report` at the end."""

    def __init__(
        self, keylog: KeyLog, *, max_records: int = MAX_RECORDS, max_sizes: int = MAX_SIZES
    ) -> None:
        self.keylog = keylog
        self.max_records = max_records
        self.max_sizes = max_sizes
        self._flows: dict[tuple[tuple[str, int], tuple[str, int]], _Flow | None] = {}
        self.tls_flows = 0
        self.records = 0
        self.stopped: str | None = None
        # DATA sizes for the timeline: kept (``_kept``, ``_count`` of them), fed one at a time
        # since the chunk began (``_fed``), counted in bulk in this chunk (``_pending``). Every
        # ``_stride``-th of the ``_seen`` so far is kept: when the kept ones reach
        # ``max_sizes``, every other one is dropped and the stride doubles, so a session of
        # any length is drawn from its start to its end, evenly thinned. ``max_sizes`` 0: no
        # timeline is drawn, and none is kept (the sizes change no fact of the report).
        self._kept: list[DataSizes] = []
        self._count = 0
        self._seen = 0
        self._stride = 1
        self._fed: list[DataSize] = []
        self._pending: list[DataSizes] = []

    def feed(self, seg: Segment) -> None:
        if self.stopped is not None or not seg.payload:
            return
        if self.max_sizes and len(self._fed) >= self.max_sizes and not self._pending:
            # fed alone, never by chunk
            self.end_chunk()
        a, b = (seg.src, seg.sport), (seg.dst, seg.dport)
        key = (a, b) if a <= b else (b, a)
        if key not in self._flows:  # first payload of this connection: a keyed ClientHello?
            random = client_random(seg.payload)
            self.tls_flows += random is not None
            self._flows[key] = (
                _Flow(a, b, random, self.keylog)
                if random is not None and self.keylog.can_decrypt(random)
                else None
            )
        flow = self._flows[key]
        if flow is None or flow.done is not None:
            return
        direction: Direction = "to-server" if a == flow.client else "to-client"
        d = flow.dirs[direction]
        for data, frame, time in d.tcp.feed(seg.seq, seg.payload, seg.frame, seg.time):
            for record in d.records.feed(data, frame, time):
                self._record(flow, direction, record.data, record.frame, record.time)
                if flow.done is not None or self.stopped is not None:
                    return
            if d.records.error is not None:
                self._stop(flow, frame, d.records.error)
                return
        if d.tcp.gap is not None:
            self._stop(
                flow,
                d.tcp.gap.frame,
                f"{d.tcp.gap.missing} bytes missing from the "
                "capture before this frame: cannot decrypt past it",
            )

    def _stop(self, flow: _Flow, frame: int, why: str) -> None:
        flow.done, flow.done_frame = why, frame

    def _failed(self, flow: _Flow, frame: int, kind: str) -> None:
        """A record that does not authenticate: skipped; the flow ends at the MAX_FAILURES-th
        in a row, or at the first when nothing of it decrypted yet (a wrong secret)."""
        flow.failures += 1
        if flow.failures >= MAX_FAILURES or not flow.decrypted:
            self._stop(
                flow,
                frame,
                f"the key log's secret does not decrypt this session "
                f"(record integrity check failed: {kind})",
            )

    def _authenticated(self, flow: _Flow, records: int = 1) -> None:
        flow.failures = 0
        flow.decrypted += records
        self.records += records
        if self.records >= self.max_records:
            self.stopped = f"stopped after decrypting {self.max_records} records (the work bound)"

    def _record(
        self, flow: _Flow, direction: Direction, data: bytes, frame: int, time: float
    ) -> None:
        d = flow.dirs[direction]
        if d.keys is not None:
            self._opened_record(flow, direction, data, frame, time)
        elif flow.mode == "native":
            if data[0] == CT_CHANGE_CIPHER_SPEC:  # this side's next record is its Finished
                d.keys, d.seq, d.finished = flow.native[direction], 0, False
        elif flow.mode == "scapy":
            self._scapy_record(flow, direction, data, frame, time)
        else:
            flow.held.append((direction, data, frame, time))
            if direction == "to-client" and flow.hello(data):
                held, flow.held = flow.held, []
                if flow.mode == "scapy":
                    for record in held:
                        self._scapy_record(flow, *record)

    def _scapy_record(
        self, flow: _Flow, direction: Direction, data: bytes, frame: int, time: float
    ) -> None:
        from scapy.layers.tls.record import TLS, TLSApplicationData

        d = flow.dirs[direction]
        if d.keys is not None:  # Scapy handed this direction over while records were held
            self._opened_record(flow, direction, data, frame, time)
            return
        if flow.last is not None and direction != flow.last:
            flow.session = flow.session.mirror()
        flow.last = direction
        # Records read under the NULL cipher (hellos, certificates) are plaintext: only records
        # protected by the negotiated suite prove that the key log's secret is right.
        protected = type(flow.session.rcs.cipher).__name__ != "Cipher_NULL"
        try:
            if _short_cbc(flow.session, data):
                raise ValueError("a CBC record shorter than its IV and one block")
            pkt = TLS(data, tls_session=flow.session, strict_integrity=True)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - Scapy's integrity errors, bytes it cannot
            # parse, and any other Rust panic in cryptography (pyo3's PanicException is a
            # BaseException; _short_cbc keeps the one we know of, and its stderr noise, away)
            self._failed(flow, frame, type(exc).__name__)
            return
        flow.session = pkt.tls_session
        messages = list(getattr(pkt, "msg", []))
        inner = getattr(pkt, "inner", None)  # TLS 1.3: the decrypted TLSInnerPlaintext
        if inner is not None:
            messages += list(getattr(inner, "msg", []))
        flow.failures = 0
        for msg in messages:
            if isinstance(msg, TLSApplicationData):
                self._plaintext(flow, direction, bytes(msg.data), frame, time)
        if protected and pkt.deciphered_len is not None:
            self._authenticated(flow)
            if d.cstp.at_packet_boundary and flow.done is None:
                # The tunnel runs: the rest of this direction is opened with its keys, record
                # by record (:meth:`_opened_record`) or a chunk at a time (:meth:`plan`).
                d.keys = scapy_keys(flow.session)
                d.seq = flow.session.rcs.seq_num

    def _opened_record(
        self, flow: _Flow, direction: Direction, data: bytes, frame: int, time: float
    ) -> None:
        """One record of a direction past its handshake, decrypted and authenticated whole."""
        d = flow.dirs[direction]
        assert d.keys is not None
        seq, d.seq = d.seq, d.seq + 1
        d.opened += 1
        try:
            plain = open_record(d.keys, seq, data)
        except IntegrityError as exc:
            self._failed(flow, frame, exc.kind)
            return
        self._authenticated(flow)
        if data[0] == CT_APPLICATION_DATA:
            self._plaintext(flow, direction, plain, frame, time)
        elif data[0] == CT_HANDSHAKE and not d.finished:
            d.finished = True  # the Finished message that follows ChangeCipherSpec
        elif data[0] != CT_ALERT:  # a handshake or cipher change: new keys, which Scapy derived
            self._stop(flow, frame, "the session renegotiates its keys: not followed past here")

    def flow_of(self, seg: Segment) -> _Flow | None:
        """The keyed flow ``seg`` belongs to, once its ClientHello was fed."""
        a, b = (seg.src, seg.sport), (seg.dst, seg.dport)
        return self._flows.get((a, b) if a <= b else (b, a))

    def plan(
        self,
        flow: _Flow,
        direction: Direction,
        walk: Records,
        frames: np.ndarray,
        times: np.ndarray,
        read: Callable[[int, int], bytes],
    ) -> BulkPlan | None:
        """The records ``walk`` found in one direction's in-order segments of a chunk, counted
        without Scapy and without decrypting them whole; None (and nothing changed) unless
        every record is what a running tunnel sends: application data holding exactly one
        CSTP packet (magic, length), its padding right where it shows, and every sampled record
        (the first :data:`AUTH_FIRST` of the direction, then every :data:`AUTH_EVERY`-th)
        authenticated whole. Anything else goes record by record, as before.

        ``frames``/``times``: per segment of the walk; ``read(start, end)``: stream bytes.
        """
        d = flow.dirs[direction]
        keys = d.keys
        if keys is None or flow.done is not None or walk.bad or not d.cstp.at_packet_boundary:
            return None
        n = len(walk.start)
        p = peek(keys, walk.length, walk.blocks)
        heads = cstp_heads(p.plain, p.length, walk.ctype)  # one CSTP packet a record?
        if heads.misfit >= 0:
            return None
        size, ptype, count = heads.size, heads.ptype, heads.count
        for i in _sampled(d.opened, n):
            start = int(walk.start[i])
            try:
                end = start + TLS_HEADER + int(walk.length[i])
                clear = open_record(keys, d.seq + i, read(start, end))
            except IntegrityError:
                return None
            if clear[:CSTP_HEADER_LEN] != p.plain[i].tobytes() or len(clear) != p.length[i]:
                return None
        counts = _type_counts(count, heads.first)
        every = count[0] == n  # DATA packets only: a running tunnel's usual chunk
        data = None if every else ptype == 0
        largest = None
        if count[0]:
            j = int(np.argmax(size if data is None else np.where(data, size, -1)))
            at = int(walk.segment[j])
            largest = CstpPacket(int(frames[at]), float(times[at]), 0, int(size[j]))
        sizes = _sizes([])
        if self.max_sizes:
            segment, sized = (
                (walk.segment, size) if data is None else (walk.segment[data], size[data])
            )
            sizes = DataSizes(
                times[segment],
                frames[segment],
                np.full(len(sized), direction == "to-client"),
                sized,
            )
        return BulkPlan(flow, direction, n, counts, largest, sizes)

    def commit(self, plan: BulkPlan) -> None:
        d = plan.flow.dirs[plan.direction]
        d.seq += plan.records
        d.opened += plan.records
        for name, count in plan.counts:
            d.counts[name] += count
        big = plan.largest
        if big is not None and (d.largest is None or big.length > d.largest.length):
            d.largest = big
        self._pending.append(plan.sizes)
        if plan.records:
            self._authenticated(plan.flow, plan.records)

    def end_chunk(self) -> None:
        """The chunk's DATA sizes in capture order, as record-by-record decryption lists them:
        committed plans' sizes merged by frame with those of the records fed one at a time."""
        fed, self._fed = self._fed, []
        parts = [p for p in self._pending if len(p)]
        self._pending = []
        if not self.max_sizes or not (fed or parts):
            return
        if fed:
            parts.insert(
                0,
                DataSizes(
                    np.array([d.time for d in fed], np.float64),
                    np.array([d.frame for d in fed], np.int64),
                    np.array([d.direction == "to-client" for d in fed], bool),
                    np.array([d.size for d in fed], np.int64),
                ),
            )
        merged = parts[0] if len(parts) == 1 else _sizes(parts)
        frame = merged.frame
        # one direction's plan is in frame order already: sorted only when it is not
        in_order = bool(np.all(frame[1:] >= frame[:-1]))
        # the sizes take the places seen + j in the session: kept at multiples of the stride
        first = -self._seen % self._stride
        self._seen += len(merged)
        if in_order and self._stride == 1:
            kept = merged
        elif in_order:
            kept = _take(merged, np.arange(first, len(merged), self._stride))
        else:
            kept = _take(merged, np.argsort(frame, kind="stable")[first :: self._stride])
        self._kept.append(kept)
        self._count += len(kept)
        while self._count > self.max_sizes:
            whole = _sizes(self._kept)
            half = np.arange(0, len(whole), 2)  # kept ones are every stride-th: keep every other
            self._kept, self._count = [_take(whole, half)], len(half)
            self._stride *= 2

    def _plaintext(
        self, flow: _Flow, direction: Direction, data: bytes, frame: int, time: float
    ) -> None:
        d = flow.dirs[direction]
        d.cstp.receive_data(data, frame, time)
        while (event := d.cstp.next_event()) is not NEED_DATA:
            if isinstance(event, HttpHead):
                if flow.first_request is None and direction == "to-server":
                    flow.first_request = event.start_line
                if event.tunnel:
                    if direction == "to-server":
                        flow.request = event
                    else:
                        flow.response = event
            elif isinstance(event, CstpPacket):
                d.counts[event.type_name] += 1
                if event.type == 0:
                    if d.largest is None or event.length > d.largest.length:
                        d.largest = event
                    if self.max_sizes:
                        self._fed.append(DataSize(event.time, event.frame, direction, event.length))
            elif isinstance(event, StreamError):
                self._stop(flow, event.frame, f"decrypted stream is not HTTP/CSTP: {event.message}")
                return

    def report(self) -> DecryptReport:
        self.end_chunk()
        sessions: list[TunnelSession] = []
        notes: list[FlowNote] = []
        for flow in self._flows.values():
            if flow is None:
                continue
            client, server = flow.names
            for d in flow.dirs.values():
                gap = d.tcp.close()
                if gap is not None and flow.done is None:
                    self._stop(
                        flow,
                        gap.frame,
                        f"{gap.missing} bytes missing from the capture "
                        "before this frame: cannot decrypt past it",
                    )
            if flow.done is not None:
                notes.append(FlowNote(client, server, flow.done_frame, flow.done))
            if flow.decrypted:
                sessions.append(
                    TunnelSession(
                        client,
                        server,
                        flow.tls_name(),
                        flow.request,
                        flow.response,
                        flow.first_request,
                        flow.dirs["to-server"].stats(),
                        flow.dirs["to-client"].stats(),
                        flow.decrypted,
                    )
                )
        keyed = sum(1 for f in self._flows.values() if f is not None)
        entries = sum(len(v) for v in self.keylog.secrets.values())
        return DecryptReport(
            entries,
            self.keylog.malformed,
            self.tls_flows,
            keyed,
            tuple(sessions),
            tuple(notes),
            _sizes(self._kept),
            self.stopped,
        )


def decrypt(
    segments: Iterable[Segment],
    keylog: KeyLog,
    *,
    max_records: int = MAX_RECORDS,
    max_sizes: int = MAX_SIZES,
) -> DecryptReport:
    """Run a :class:`Decryptor` over ``segments``."""
    dec = Decryptor(keylog, max_records=max_records, max_sizes=max_sizes)
    for seg in segments:
        dec.feed(seg)
    return dec.report()
