"""The compiled DTLS handshake pass (``_dtlswalk.c``) against its Python twin
(``DtlsDetector._handshakes``, which runs wherever no C compiler was there at install time):
the same pair table, column by column, the same side dicts, hello census, duplicate count,
recent-hello identities and watched addresses, on the same captures.

Captures: generated hellos, copies, retransmissions, HelloVerifyRequests and ServerHello
flights on a few pairs (IPv4 and IPv6), with session ids of 0, 32 and 40 bytes, more than two
message_seq values, more hellos than the evidence columns hold, two hellos in one datagram,
answers whose hello was not captured; read in chunks of a few frames so that pairs are made
in one chunk and found in the next, and the columns fill up within a chunk. Then the
benchmark's worst-case mix and every shipped capture that has DTLS.
"""

from __future__ import annotations

import contextlib
import io
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from benchmarks.generate import generate
from labkit.analyze import decode as dec
from labkit.analyze import scan_file
from labkit.analyze.detectors import dtlspairs
from labkit.analyze.detectors.dtlstable import DtlsTable
from labkit.pcapio.writer import PcapFileWriter
from labkit.wire import LINKTYPE_ETHERNET
from tests.helpers import synth
from tests.helpers.paths import PUBLIC, ROOT
from tests.helpers.shifted import scan_shifted
from tests.test_analyze_dtls_table import EPOCH, MAC, PAIRS, STEP, small_chunks

pytestmark = pytest.mark.skipif(
    dtlspairs._dtlswalk is None, reason="installed without a C compiler"
)

SESSION_IDS = (b"\x11" * 32, b"", bytes(range(40)))  # usual, none, longer than the column


@contextlib.contextmanager
def python_twin() -> Iterator[None]:
    """The detector's Python pass in place of the compiled one."""
    compiled = dtlspairs._dtlswalk
    dtlspairs._dtlswalk = None
    try:
        yield
    finally:
        dtlspairs._dtlswalk = compiled


def state(path: Path) -> dict[str, object]:
    """What the handshake pass leaves behind, comparable with ==."""
    det = scan_file(str(path)).facts.dtls
    t = det.table
    out: dict[str, object] = {f"col:{k}": t.col(k).tolist() for k in t.cols}
    out |= {
        "long_session_ids": t.long_session_ids,
        "more_seqs": t.more_seqs,
        "more_frames": t.more_frames,
        "hello_versions": det.hello_versions,
        "duplicate_hellos": det.duplicate_hellos,
        "recent": list(det._recent.items()),
        "watched": det.watch.addrs.tolist(),
    }
    return out


def assert_same(path: Path) -> None:
    compiled = state(path)
    with python_twin():
        reference = state(path)
    assert compiled.keys() == reference.keys()
    for k in compiled:
        assert compiled[k] == reference[k], k


def datagram(client: str, server: str, port: int, sport: int, c2s: bool, payload: bytes, n: int):
    src, dst = (client, server) if c2s else (server, client)
    sp, dp = (sport, port) if c2s else (port, sport)
    ip = IPv6(src=src, dst=dst, fl=n) if ":" in src else IP(src=src, dst=dst, id=n)
    return bytes(Ether(src=MAC, dst=MAC) / ip / UDP(sport=sp, dport=dp) / payload)


@st.composite
def handshakes(draw) -> list[tuple[float, bytes]]:
    """(time, frame) in file order."""
    out: list[tuple[float, bytes]] = []
    for n in range(draw(st.integers(1, 40))):
        client, server, port = draw(st.sampled_from(PAIRS))
        sport = draw(st.sampled_from((52000, 52001)))
        t = EPOCH + draw(st.integers(0, 300)) * STEP
        kind = draw(st.sampled_from(("hello", "hello", "two", "copy", "hvr", "sh", "ccs")))
        sid = draw(st.sampled_from(SESSION_IDS))
        if kind in ("hello", "two", "copy"):
            hello = synth.dtls_client_hello(
                version=draw(st.sampled_from((0x0100, 0xFEFD))),
                msg_seq=draw(st.integers(0, 4)),
                cookie=draw(st.sampled_from((b"", b"\x33" * 20))),
                session_id=sid,
                rec_seq=draw(st.integers(0, 3)),
            )
            if kind == "two":  # a second hello in the same datagram: known by its position
                hello += synth.dtls_client_hello(msg_seq=draw(st.integers(0, 4)))
            frame = datagram(client, server, port, sport, True, hello, n)
            out.append((t, frame))
            if kind == "copy":
                out.append((t + draw(st.integers(0, 7)) * STEP, frame))
        elif kind == "hvr":
            out.append(
                (t, datagram(client, server, port, sport, False, synth.dtls_hello_verify(), n))
            )
        elif kind == "sh":
            flight = synth.dtls_server_hello_flight(session_id=sid)
            out.append((t, datagram(client, server, port, sport, False, flight, n)))
        else:  # the client's ChangeCipherSpec
            ccs = synth.dtls_record(20, 0x0100, 0, 5, b"\x01")
            out.append((t, datagram(client, server, port, sport, True, ccs, n)))
    return draw(st.permutations(out))


def write(path: Path, frames: list[tuple[float, bytes]]) -> None:
    out = io.BytesIO()
    writer = PcapFileWriter(out, LINKTYPE_ETHERNET)
    for t, frame in frames:
        writer.write(round(t * 1e6), frame)
    path.write_bytes(out.getvalue())


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(frames=handshakes(), chunk=st.sampled_from((1024, 4096, 1 << 20)))
def test_compiled_pass_equals_python_pass_on_generated_handshakes(tmp_path, frames, chunk):
    path = tmp_path / "dtls.pcap"
    write(path, frames)
    with small_chunks(chunk):
        assert_same(path)


def test_compiled_pass_equals_python_pass_where_the_side_dicts_fill(tmp_path):
    """One pair with every rare part at once: a 40-byte session id, five message_seq values,
    more hellos than the evidence keeps, a ServerHello resuming the long session, and an
    answer from a server whose hello was not captured."""
    client, server, port = PAIRS[0]
    long_sid = SESSION_IDS[2]
    frames = []
    for n in range(14):
        hello = synth.dtls_client_hello(msg_seq=n % 5, session_id=long_sid, rec_seq=n)
        frames.append((EPOCH + n * 0.7, datagram(client, server, port, 52000, True, hello, n)))
    flight = synth.dtls_server_hello_flight(session_id=long_sid)
    frames.append((EPOCH + 11, datagram(client, server, port, 52000, False, flight, 20)))
    frames.append((EPOCH + 12, datagram(*PAIRS[1], 52001, False, synth.dtls_hello_verify(), 21)))
    path = tmp_path / "rare.pcap"
    write(path, frames)
    with small_chunks(1024):
        assert_same(path)
        s = state(path)
    assert s["long_session_ids"] and s["more_seqs"] and s["more_frames"]
    assert s["col:resumed"] == [1, -1]


def test_compiled_pass_equals_python_pass_on_the_worst_case_mix(tmp_path):
    """Every packet a DTLS handshake record, an ICMP error or a SYN: thousands of new pairs
    per chunk, so the columns fill up and grow within a chunk."""
    path = tmp_path / "worst.pcap"
    generate(path, fmt="pcap", count=30_000, size=None, seed=3, tunnel_mtu=1347, mix="worst")
    assert_same(path)


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in sorted([*PUBLIC.glob("*.pcap*"), *ROOT.glob("pcaps/**/*.pcap*")])
        if "dtls" in str(p.relative_to(p.parents[1])).lower() or "anyconnect" in p.name
    ],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_compiled_pass_equals_python_pass_on_shipped_captures(path: Path):
    assert_same(path)


def test_compiled_pass_refuses_inputs_of_the_wrong_shape():
    """Wrong arrays are a Python exception before anything is written, never a crash."""
    walk = dtlspairs._dtlswalk.walk
    t = DtlsTable()
    t.reserve(4)
    cols = tuple(t.cols.values())
    one = np.zeros(1, np.int64)
    per = (one,) * 7
    addr = np.zeros((1, 16), np.uint8)
    sides = ({}, {}, {}, {}, OrderedDict(), [])
    limits = (8, 0.05, 12)
    pkt = (1, 2.0)  # a tuple, but no decode.Packet
    with pytest.raises(ValueError):
        walk([], per[:6], addr[:0], addr[:0], cols, 0, sides, limits)  # six arrays
    with pytest.raises(ValueError):
        walk([], per, addr[:0], addr[:0], cols, 0, sides, limits)  # arrays of 1, no packet
    with pytest.raises(ValueError):
        walk([], (one[:0],) * 7, addr[:0], addr[:0], cols[:-1], 0, sides, limits)
    wide = tuple(c.astype(np.int64) if c.dtype == np.uint32 else c for c in cols)  # widened
    with pytest.raises(ValueError):
        walk([], (one[:0],) * 7, addr[:0], addr[:0], wide, 0, sides, limits)
    with pytest.raises(ValueError):
        walk(
            [], (one[:0],) * 7, addr[:0], addr[:0], cols, len(cols[0]) + 1, sides, limits
        )  # n past the room
    with pytest.raises(TypeError):
        walk([pkt], per, addr, addr, cols, 0, sides, limits)
    with pytest.raises(TypeError):
        walk([], (one[:0],) * 7, addr[:0], addr[:0], cols, 0, ({}, {}, {}, {}, {}, ()), limits)
    assert not t.long_session_ids and len(t) == 0


def _table_after(path: Path, shift: int) -> tuple[dict[str, list], bool]:
    """The pair table's columns after a scan of ``path`` with frames ``shift`` later (frame
    columns given back unshifted, zero staying "none"), and whether it stayed narrow."""
    det = dtlspairs.DtlsDetector(str(path))
    scan_shifted(path, [det], shift)
    t = det.table
    out = {}
    for k in t.cols:
        col = t.col(k).astype(object)
        if k in dtlspairs.FRAME_COLUMNS:
            col = np.where(col > 0, col - shift, 0)
        out[k] = col.tolist()
    return out, t.narrow


def test_frame_numbers_past_32_bits_widen_the_table_and_stay_exact(tmp_path):
    """Frame numbers cross 2^32 - 1 in the middle of a capture (read a few frames a chunk):
    the frame columns widen to 64 bits, the rest of the capture goes to the Python pass, and
    the table holds the very pairs, counts and frames (shifted) of the same capture numbered
    from 1; the compiled pass refuses such a frame rather than cut it to 32 bits."""
    client, server, port = PAIRS[0]
    client6, server6, port6 = PAIRS[-2]
    frames = []
    for n in range(40):
        c, s, p = (client, server, port) if n % 2 else (client6, server6, port6)
        t = EPOCH + n * 0.1
        hello = synth.dtls_client_hello(msg_seq=n % 3, rec_seq=n)
        frames.append((t, datagram(c, s, p, 52000 + n % 4, True, hello, n)))
        answer = synth.dtls_hello_verify() if n % 3 else synth.dtls_server_hello_flight()
        frames.append((t + 0.01, datagram(c, s, p, 52000 + n % 4, False, answer, n)))
        data = synth.dtls_record(23, 0xFEFF, 1, n, b"\0" * 40)
        frames.append((t + 0.02, datagram(c, s, p, 52000 + n % 4, n % 2 == 0, data, n)))
    path = tmp_path / "late.pcap"
    write(path, frames)
    shift = 2**32 - 1 - len(frames) // 2  # frame 2^32 - 1 falls halfway through
    with small_chunks(1024):
        plain, plain_narrow = _table_after(path, 0)
        late, late_narrow = _table_after(path, shift)
    assert plain_narrow and not late_narrow
    assert max(plain["seen"]) == len(frames) and sum(plain["data_c2s"]) > 0
    assert late == plain
    cols = DtlsTable()
    cols.reserve(1)
    pkt = dec.decode(frames[0][1], LINKTYPE_ETHERNET, 2**32)
    with pytest.raises(OverflowError):
        dtlspairs._dtlswalk.walk(
            [pkt],
            (np.zeros(1, np.int64),) * 7,
            np.zeros((1, 16), np.uint8),
            np.zeros((1, 16), np.uint8),
            tuple(cols.cols.values()),
            0,
            (cols.long_session_ids, cols.more_seqs, cols.more_frames, {}, OrderedDict(), []),
            (8, 0.05, 12),
        )
