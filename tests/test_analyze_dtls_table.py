"""The DTLS pair table: its per-chunk rules against a plain per-packet reference, and its
rows within the budget.

Captures are written by labkit's own pcap writer from Scapy-built frames: ClientHellos from a
few clients to a few servers, retransmitted (a new record sequence number), resent with the
same one (a DTLS1_BAD_VER client), duplicated within a few milliseconds by a SPAN port (other
IP ids, so the capture-level duplicate filter leaves them to the DTLS rule), answered or not,
in shuffled file order, read in chunks of a few frames so that pairs are stored and reloaded
between chunks.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest import approx
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from benchmarks.scaling import capture
from labkit.analyze import scan_file
from labkit.analyze.decode import addr_hash
from labkit.analyze.detectors.dtlspairs import DUPLICATE_S
from labkit.analyze.detectors.dtlstable import ROW_BYTES
from labkit.analyze.evidence import MAX_FRAMES
from labkit.pcapio import reader
from labkit.pcapio.writer import PcapFileWriter
from labkit.wire import DTLS_VERSIONS, LINKTYPE_ETHERNET
from tests.helpers import synth

#: client, server, port: IPv4 and IPv6 (the table keeps addresses packed, and must print
#: them as the decoder does)
PAIRS = tuple(
    (client, server, port)
    for client in ("10.1.0.1", "10.1.0.2", "10.1.0.3")
    for server, port in (("198.51.100.1", 443), ("198.51.100.2", 4443))
) + (
    ("2001:db8::10", "2001:db8:1::1", 443),
    ("2001:db8::ffff:0:1", "2001:db8:1::1", 443),
    ("::ffff:192.0.2.7", "2001:db8:1::1", 443),  # IPv4-mapped: printed in dotted form
)
EPOCH = 1_767_225_600.0
STEP = 0.007
MAC = "02:00:00:00:00:01"  # set, so that Scapy never resolves one


@dataclass(frozen=True)
class Frame:
    """One datagram: a ClientHello (``hs_type`` 1) from the client or an answer (3: a
    HelloVerifyRequest, 2: a ServerHello) from the server."""

    client: str
    server: str
    port: int
    hs_type: int
    ts: float
    sport: int = 52000
    rec_seq: int = 0
    msg_seq: int = 0

    def payload(self) -> bytes:
        if self.hs_type == 1:
            return synth.dtls_client_hello(rec_seq=self.rec_seq, msg_seq=self.msg_seq)
        if self.hs_type == 3:
            return synth.dtls_hello_verify()
        return synth.dtls_server_hello_flight()


@dataclass
class Expected:
    """What the per-packet reference counts for one pair."""

    attempts: int = 0
    duplicates: int = 0
    seqs: set[int] = field(default_factory=set)
    first: float | None = None
    last: float = 0.0
    answered: bool = False
    hellos: list[tuple[int, float]] = field(default_factory=list)
    hello_count: int = 0


def reference(frames: list[Frame]) -> dict[tuple[str, str, int], Expected]:
    """The rules, one frame at a time in file order: a hello repeating (client port, record
    and message sequence) within DUPLICATE_S of its last copy is a duplicate."""
    out: dict[tuple[str, str, int], Expected] = {}
    last_seen: dict[tuple, float] = {}
    for number, f in enumerate(frames, 1):
        e = out.setdefault((f.client, f.server, f.port), Expected())
        if f.hs_type != 1:
            e.answered = True
            continue
        e.hello_count += 1
        if len(e.hellos) < MAX_FRAMES:
            e.hellos.append((number, f.ts))
        ident = (f.client, f.server, f.port, f.sport, f.rec_seq, f.msg_seq)
        before = last_seen.get(ident)
        last_seen[ident] = f.ts
        if before is not None and abs(f.ts - before) < DUPLICATE_S:
            e.duplicates += 1
            continue
        e.attempts += 1
        e.seqs.add(f.msg_seq)
        e.first = f.ts if e.first is None else e.first
        e.last = max(e.last, f.ts)
    return out


def write(path, frames: list[Frame]) -> None:
    out = io.BytesIO()
    writer = PcapFileWriter(out, LINKTYPE_ETHERNET)
    for ip_id, f in enumerate(frames, 1):
        c2s = f.hs_type == 1
        src, dst = (f.client, f.server) if c2s else (f.server, f.client)
        sport, dport = (f.sport, f.port) if c2s else (f.port, f.sport)
        ip = IPv6(src=src, dst=dst, fl=ip_id) if ":" in src else IP(src=src, dst=dst, id=ip_id)
        pkt = Ether(src=MAC, dst=MAC) / ip / UDP(sport=sport, dport=dport)
        writer.write(round(f.ts * 1e6), bytes(pkt / f.payload()))
    path.write_bytes(out.getvalue())


@contextlib.contextmanager
def small_chunks(size: int = 2048) -> Iterator[None]:
    """Read captures in chunks of a few frames."""
    default = reader.Capture.chunks.__defaults__
    reader.Capture.chunks.__defaults__ = (size,)
    try:
        yield
    finally:
        reader.Capture.chunks.__defaults__ = default


@st.composite
def captures(draw) -> list[Frame]:
    frames: list[Frame] = []
    for _ in range(draw(st.integers(1, 25))):
        client, server, port = draw(st.sampled_from(PAIRS))
        # Every time a multiple of 7 ms: no two hellos are DUPLICATE_S apart to the float.
        t = EPOCH + draw(st.integers(0, 600)) * STEP
        kind = draw(st.sampled_from(("hello", "hello", "resend", "copy", "hvr", "sh")))
        sport = draw(st.sampled_from((52000, 52001)))
        seq, msg = draw(st.integers(0, 3)), draw(st.integers(0, 2))
        if kind in ("hvr", "sh"):
            frames.append(Frame(client, server, port, 3 if kind == "hvr" else 2, t, sport))
            continue
        hello = Frame(client, server, port, 1, t, sport, seq, msg)
        frames.append(hello)
        if kind == "copy":  # a SPAN port's duplicate, a few ms later (or earlier: reordered)
            gap = draw(st.integers(-7, 7)) * STEP
            frames.append(Frame(client, server, port, 1, t + gap, sport, seq, msg))
        elif kind == "resend":  # the same record sequence, a retransmission timer later
            frames.append(Frame(client, server, port, 1, t + 143 * STEP, sport, seq, msg))
    return draw(st.permutations(frames))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(frames=captures())
def test_the_table_counts_hellos_like_a_per_packet_reference(tmp_path, frames):
    path = tmp_path / "dtls.pcap"
    write(path, frames)
    with small_chunks():
        facts = scan_file(str(path)).facts
    got = {(p.client, p.server, p.port): p for p in facts.dtls.pairs.values()}
    want = reference(frames)
    assert got.keys() == want.keys()
    for pair, e in want.items():
        p = got[pair]
        assert (p.attempts, p.duplicate_hellos) == (e.attempts, e.duplicates), pair
        assert p.retransmitted_hellos == e.attempts - len(e.seqs)
        assert p.first_hello_ts == (None if e.first is None else approx(e.first, abs=1e-6))
        assert p.last_hello_ts == approx(e.last, abs=1e-6)
        assert p.answered == e.answered
        # the table hashes its packed addresses as the decoder hashes the printed ones
        assert (p.client_h, p.server_h) == (addr_hash(p.client), addr_hash(p.server))
        assert p.hellos.count == e.hello_count
        assert [f for f, _t in p.hellos.frames] == [f for f, _t in e.hellos]
        assert [t for _f, t in p.hellos.frames] == approx([t for _f, t in e.hellos], abs=1e-6)
    assert facts.dtls.duplicate_hellos == sum(e.duplicates for e in want.values())


def test_answered_pairs_cost_their_column_rows_and_nothing_per_pair_beside(tmp_path):
    """Answered pairs (hello, HelloVerifyRequest, hello with the cookie: a busy head-end's
    usual pair) fill the columns only: no side entry per pair, one address string per
    address, and columns at most twice the rows they hold (grown by engine.room)."""
    n = 2_000
    path = tmp_path / "pairs.pcap"
    path.write_bytes(capture("dtls_pairs", n))
    dtls = scan_file(str(path)).facts.dtls
    table, pairs = dtls.table, dtls.pairs.values()
    assert len(table) == n
    assert (table.col("hello_n") == 2).all() and (table.col("hvr_n") == 1).all()
    assert not table.more_frames and not table.more_seqs
    addresses = set(table.hashes("client").tolist()) | set(table.hashes("server").tolist())
    assert not table.long_session_ids
    texts = table.texts(np.array(sorted(addresses), np.uint64))
    assert sorted(texts.values()) == sorted({p.client for p in pairs} | {p.server for p in pairs})
    held = sum(col.nbytes for col in table.cols.values())
    assert n * ROW_BYTES <= held <= 2 * n * ROW_BYTES


#: (address, port) ends of DTLS data whose handshake is not in the capture: the server is
#: the lower port's end (a client's 20 beside 443 makes the "client" the server); with the
#: same port at both ends, the end the first datagram went to
DATA_ENDS = (
    (("10.1.0.1", 52000), ("198.51.100.1", 443)),
    (("10.1.0.5", 443), ("198.51.100.5", 443)),
    (("10.1.0.2", 20), ("198.51.100.1", 443)),
    (("2001:db8::10", 52001), ("2001:db8:1::1", 4443)),
    (("::ffff:192.0.2.7", 52002), ("2001:db8:1::1", 443)),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sends=st.lists(
        st.tuples(
            st.integers(0, len(DATA_ENDS) - 1),
            st.booleans(),
            st.sampled_from(sorted(DTLS_VERSIONS)),
        ),
        min_size=1,
        max_size=30,
    ),
    chunk=st.sampled_from((1024, 4096, 1 << 20)),
)
def test_pairs_first_seen_by_their_data_follow_a_per_packet_reference(tmp_path, sends, chunk):
    """Application data on pairs whose handshakes the capture missed, read a few frames a
    chunk: each pair once (server: the lower port's end), its first record's version, its
    data counted each way and the server's first data frame."""
    frames, want, lead = [], {}, {}
    for n, (e, forward, version) in enumerate(sends, 1):
        (a, a_port), (b, b_port) = DATA_ENDS[e] if forward else DATA_ENDS[e][::-1]
        rec = synth.dtls_record(23, version, 1, n, b"\0" * 24)
        ip = IPv6(src=a, dst=b, fl=n) if ":" in a else IP(src=a, dst=b, id=n)
        frames.append(bytes(Ether(src=MAC, dst=MAC) / ip / UDP(sport=a_port, dport=b_port) / rec))
        higher_first = sorted(DATA_ENDS[e], key=lambda end: -end[1])
        (client, _c_port), (server, s_port) = lead.setdefault(
            e, ((a, a_port), (b, b_port)) if a_port == b_port else higher_first
        )
        p = want.setdefault((client, server, s_port), {"version": version, "c2s": 0, "s2c": 0})
        from_client = a == client
        p["c2s" if from_client else "s2c"] += 1
        if not from_client:
            p.setdefault("first_s2c", n)
    out = io.BytesIO()
    writer = PcapFileWriter(out, LINKTYPE_ETHERNET)
    for n, frame in enumerate(frames):
        writer.write(round((EPOCH + n * STEP) * 1e6), frame)
    path = tmp_path / "data.pcap"
    path.write_bytes(out.getvalue())
    with small_chunks(chunk):
        pairs = scan_file(str(path)).facts.dtls.pairs.values()
    got = {
        (p.client, p.server, p.port): {
            "version": p.record_version,
            "c2s": p.data_c2s,
            "s2c": p.data_s2c,
            **({"first_s2c": p.first_data_s2c[0]} if p.first_data_s2c else {}),
        }
        for p in pairs
    }
    assert got == want
    for p in pairs:
        assert not p.handshake_seen
        assert (p.client_h, p.server_h) == (addr_hash(p.client), addr_hash(p.server))
