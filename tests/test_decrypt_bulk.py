"""A running tunnel's records counted a chunk at a time: the compiled record walk against its
Python twin, the record keys against Scapy's suite table, and the analyzer's pass (records walked in place, CSTP headers from the first
cipher block) against the generator's truth and against record-by-record decryption of the
same segments, for every record protection AnyConnect head-ends negotiate; damage is still
caught and reported as record-by-record decryption reports it."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import numpy as np
import pytest

from labkit.analyze import Collect, analyze
from labkit.analyze.decrypt import DecryptReport, Segment, decrypt
from labkit.analyze.keylog import parse_keylog
from labkit.analyze.sources import read_keylog
from labkit.wire import tlswalk

# ---------------------------------------------------------------------- the record walk


def _stream(rng: random.Random) -> bytes:
    sizes = [0, 1, 31, 32, 33, 79, 80, 81, 700, 1400, 16384] * 4
    rng.shuffle(sizes)
    return b"".join(
        bytes([rng.choice((20, 21, 22, 23)), 3, 3]) + struct.pack("!H", n) + rng.randbytes(n)
        for n in sizes
    )


@pytest.mark.skipif(not tlswalk.COMPILED, reason="the C walk was not built (no compiler)")
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("pieces", [60, 1])  # 1: more records than segments, the arrays grow
@pytest.mark.parametrize(
    "tail",
    [
        b"",
        b"\x17\x03\x03\x05",
        b"\x17\x03\x03\x00\x10abc",
        b"\x99\x03\x03\x00\x01x",
        b"\x17\x03\x03\x50\x01",
    ],
)
@pytest.mark.parametrize(
    "cuts",
    [(16, -16, 0, -32), (16, -64, 0, -80), (0,), (), (7, -1, 70, -90)],  # CBC, +SHA-384 EtM, GCM
)
def test_compiled_and_python_walks_agree(
    seed: int, pieces: int, tail: bytes, cuts: tuple[int, ...]
) -> None:
    rng = random.Random(seed)
    data = _stream(rng) + tail
    cut = rng.randrange(0, 40)  # an unfinished record carried in from an earlier chunk
    head, rest = data[:cut], data[cut:]
    gaps = [rng.randrange(0, 9) for _ in rest]  # junk between segments, as in a chunk buffer
    bounds = sorted({0, len(rest), *rng.sample(range(1, len(rest)), pieces - 1)})
    buf, offs = bytearray(), []
    for a, b in zip(bounds, bounds[1:]):
        buf += b"\xee" * gaps[a]
        offs.append(len(buf))
        buf += rest[a:b]
    arr = np.frombuffer(bytes(buf), np.uint8)
    lens = np.diff(bounds)
    stream = tlswalk.Stream.of(head, arr, np.array(offs), lens)
    walk = tlswalk.RecordWalk()
    walk(
        tlswalk.Stream.of(b"\x17\x03\x03\x00\x00" * 3, arr, np.zeros(1), np.zeros(1)), (16, 0)
    )  # used arrays
    c = walk(stream, cuts)
    py = tlswalk.RecordWalk(tlswalk.py_records)(stream, cuts)
    for name in ("start", "ctype", "length", "segment", "blocks"):
        assert np.array_equal(getattr(c, name), getattr(py, name)), name
    assert (c.next, c.bad) == (py.next, py.bad)
    assert c.bad == (tail[:1] == b"\x99" or tail == b"\x17\x03\x03\x50\x01")
    assert c.blocks.shape == (len(cuts), len(c.start), 16)
    # every record found is the bytes the stream has there, and the walk stops where it must
    for i in range(len(c.start)):
        s, n = int(c.start[i]), int(c.length[i])
        whole = stream.read(s, s + 5 + n)
        assert whole == data[s : s + 5 + n] and whole[0] == c.ctype[i]
        fragment = whole[5:]
        for j, at in enumerate(n + k if k < 0 else k for k in cuts):
            want = bytes(fragment[b] if 0 <= b < n else 0 for b in range(at, at + tlswalk.BLOCK))
            assert c.blocks[j, i].tobytes() == want
    assert c.next == (len(data) - len(tail) if tail else len(data))


@pytest.mark.skipif(not tlswalk.COMPILED, reason="the C loops were not built (no compiler)")
@pytest.mark.parametrize("mac", [0, 20, 48])
def test_compiled_and_numpy_cbc_peeks_agree(mac: int) -> None:
    """The CBC arithmetic of peek (first bytes, padding check, length), compiled and in numpy,
    on blocks whose last one ends in good padding, bad padding, or neither."""
    from labkit.wire import tlscrypt

    rng = np.random.default_rng(mac)
    n = 4000
    clear = rng.integers(0, 256, (2, n, 16), dtype=np.uint8)
    masks = rng.integers(0, 256, (2, n, 16), dtype=np.uint8)
    for i in range(0, n, 2):  # every other record: a padding of pad + 1 bytes, some spoiled
        pad = int(rng.integers(0, 40))
        last = clear[1, i] ^ masks[1, i]
        last[16 - min(pad + 1, 16) :] = pad
        if i % 6 == 0:
            last[int(rng.integers(16 - min(pad + 1, 16), 16))] ^= 1 << int(rng.integers(0, 8))
        clear[1, i] = last ^ masks[1, i]
    cipher = rng.choice([0, 16, 31, 32, 48, 64, 100, 1408, 1424, 16400], n).astype(np.int64)
    py = tlscrypt.py_cbc_peek(clear.tobytes(), masks, cipher, mac)
    c = tlscrypt.cbc_peek(clear.tobytes(), masks, cipher, mac)
    assert tlscrypt.cbc_peek is not tlscrypt.py_cbc_peek
    assert np.array_equal(py[0], c[0]) and np.array_equal(py[1], c[1])
    assert np.array_equal(py[0], (clear[0] ^ masks[0])[:, :8])
    assert 0 < (c[1] >= 0).sum() < n / 2  # some records fit, most do not


@pytest.mark.skipif(not tlswalk.COMPILED, reason="the C loops were not built (no compiler)")
@pytest.mark.parametrize("spoil", ["none", "magic", "length", "content type"])
def test_compiled_and_numpy_cstp_heads_agree(spoil: str) -> None:
    """The CSTP header of each record (length, type, counts and first record per type, the
    first record that is not one packet), compiled and in numpy, on records of the three
    types a tunnel sends with one spoiled field somewhere or none."""
    from labkit.wire import tlscrypt

    rng = np.random.default_rng(len(spoil))
    n = 3000
    size = rng.integers(0, 1400, n)
    ptype = rng.choice([0, 0, 0, 3, 4], n)
    plain = np.zeros((n, 8), np.uint8)
    plain[:, :4] = np.frombuffer(b"STF\x01", np.uint8)
    plain[:, 4], plain[:, 5], plain[:, 6] = size >> 8, size & 0xFF, ptype
    length, ctype = 8 + size, np.full(n, 23)
    at = int(rng.integers(100, n))
    if spoil == "magic":
        plain[at, 2] ^= 1
    elif spoil == "length":
        length[at] += 16
    elif spoil == "content type":
        ctype[at] = 21
    py = tlscrypt.py_cstp_heads(plain, length, ctype)
    c = tlscrypt.cstp_heads(plain, length, ctype)
    assert tlscrypt.cstp_heads is not tlscrypt.py_cstp_heads
    assert py.misfit == c.misfit == (-1 if spoil == "none" else at)
    for name in ("size", "ptype", "count", "first"):
        assert np.array_equal(getattr(py, name), getattr(c, name)), name
    assert np.array_equal(c.size, size) and np.array_equal(c.ptype, ptype)
    assert c.count[0] == np.count_nonzero(ptype == 0) and c.first[3] == np.argmax(ptype == 3)
    assert c.first[5] == -1 and c.count[5] == 0


# ---------------------------------------------------------------------- the suites


def test_suite_names_are_scapys() -> None:
    """The suites labkit opens itself are named as Scapy's TLS layer names them (the ``tls``
    field of the report is the same whichever decrypts a session)."""
    from scapy.layers.tls.crypto.suites import _tls_cipher_suites

    from labkit.wire.tlskeys import SUITES

    assert {code: s.name for code, s in SUITES.items()} == {
        code: _tls_cipher_suites[code] for code in SUITES
    }


# ---------------------------------------------------------------------- whole sessions


def _segments(path: Path) -> list[Segment]:
    """TCP segments of a generated session (Ethernet, IPv4, TCP), read with struct: a reading
    of the capture independent of labkit's reader and columns."""
    raw = path.read_bytes()
    out, pos, frame = [], 24, 0
    while pos + 16 <= len(raw):
        sec, usec, caplen, _ = struct.unpack_from("<IIII", raw, pos)
        pkt = raw[pos + 16 : pos + 16 + caplen]
        pos += 16 + caplen
        frame += 1
        ip = pkt[14:]
        ihl = (ip[0] & 15) * 4
        total = struct.unpack_from("!H", ip, 2)[0]
        tcp = ip[ihl:total]
        sport, dport, seq = struct.unpack_from("!HHI", tcp)
        payload = tcp[(tcp[12] >> 4) * 4 :]
        if payload:
            src, dst = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20]))
            out.append(Segment(frame, sec + usec / 1e6, src, sport, dst, dport, seq, payload))
    return out


def _session(tmp: Path, cipher: str, etm: bool, size: int = 600_000) -> tuple[Path, Path, dict]:
    import ssl

    from benchmarks.cstp_session import generate

    capture, keys = tmp / "session.pcap", tmp / "session.keylog"
    version = ssl.TLSVersion.TLSv1_1 if "SECLEVEL=0" in cipher else ssl.TLSVersion.TLSv1_2
    truth = generate(capture, keys, size, cipher=cipher, etm=etm, version=version)
    return capture, keys, truth


def _analyze(capture: Path, keys: Path, plot: bool = True) -> DecryptReport:
    """The decryption by the analyzer's pass; ``plot``: the timeline's sizes kept too."""
    report = analyze([str(capture)], collect=Collect(keylog=read_keylog(str(keys)), plot=plot))
    ((_path, decrypted),) = report.decrypted
    return decrypted


TLS11 = "TLS 1.1 "  # a version labkit does not key itself: Scapy, then labkit once the tunnel runs
SUITES = [
    ("AES128-SHA", True, "TLS_RSA_WITH_AES_128_CBC_SHA"),  # AnyConnect's; encrypt-then-MAC
    ("AES128-SHA", False, "TLS_RSA_WITH_AES_128_CBC_SHA"),  # the MAC inside the encryption
    ("AES256-SHA256", False, "TLS_RSA_WITH_AES_256_CBC_SHA256"),
    ("ECDHE-RSA-AES256-SHA384", True, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384"),
    ("AES128-GCM-SHA256", True, "TLS_RSA_WITH_AES_128_GCM_SHA256"),
    ("ECDHE-RSA-AES256-GCM-SHA384", True, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
    # a suite labkit does not open itself: Scapy's TLS layer decrypts every record
    ("ECDHE-RSA-CHACHA20-POLY1305", True, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    ("AES128-SHA:@SECLEVEL=0", True, TLS11 + "TLS_RSA_WITH_AES_128_CBC_SHA"),
]


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")  # deliberately old
@pytest.mark.parametrize("cipher, etm, suite", SUITES)
def test_the_pass_counts_what_the_generator_sent(
    tmp_path: Path, cipher: str, etm: bool, suite: str
) -> None:
    capture, keys, truth = _session(tmp_path, cipher, etm)
    report = _analyze(capture, keys)
    assert not report.notes and report.stopped is None
    (tunnel,) = report.tunnels
    assert tunnel.tls == (suite if suite.startswith(TLS11) else f"TLS 1.2 {suite}")
    assert tunnel.head_end("X-CSTP-MTU") == truth["x_cstp_mtu"]
    assert dict(tunnel.to_client.packets) == truth["cstp"]["to-client"]
    assert dict(tunnel.to_server.packets) == truth["cstp"]["to-server"]
    largest = (tunnel.to_client.largest_data, tunnel.to_server.largest_data)
    assert largest == (truth["largest_data"]["to-client"], truth["largest_data"]["to-server"])
    # the Finished message and every application record, each way
    assert tunnel.records == sum(truth["tls_application_records"].values()) + 2
    # the same report, frame for frame, as the records opened one at a time
    one_by_one = decrypt(_segments(capture), parse_keylog(keys.read_text()))
    assert report.to_json() == one_by_one.to_json()
    assert report.sizes == one_by_one.sizes
    # without a plot no size is kept, and nothing else changes
    bare = _analyze(capture, keys, plot=False)
    assert bare.to_json() == report.to_json() and len(bare.data_sizes) == 0


def _flip(capture: Path, segments: list[Segment], offsets: list[int]) -> None:
    """Flip one byte at each of ``offsets`` in the head-end's byte stream, in the capture."""
    raw = bytearray(capture.read_bytes())
    where: dict[int, list[int]] = {}
    stream = 0
    for seg in segments:
        if seg.sport == 443:
            where.update(
                {seg.frame: [o - stream for o in offsets if 0 <= o - stream < len(seg.payload)]}
            )
            stream += len(seg.payload)
    pos, frame = 24, 0
    while pos + 16 <= len(raw):
        caplen = struct.unpack_from("<I", raw, pos + 8)[0]
        frame += 1
        ip = pos + 16 + 14
        tcp = ip + (raw[ip] & 15) * 4
        for at in where.get(frame, []):
            raw[tcp + (raw[tcp + 12] >> 4) * 4 + at] ^= 0x5A
        pos += 16 + caplen
    capture.write_bytes(bytes(raw))


def _records(segments: list[Segment]) -> list[int]:
    """Where each record of the head-end's byte stream starts."""
    stream = b"".join(s.payload for s in segments if s.sport == 443)
    starts, pos = [], 0
    while pos + 5 <= len(stream):
        starts.append(pos)
        pos += 5 + int.from_bytes(stream[pos + 3 : pos + 5], "big")
    return starts


@pytest.mark.parametrize(
    "cipher, first_block", [("AES128-SHA", 5 + 16), ("AES128-GCM-SHA256", 5 + 8)]
)
def test_damaged_records_are_reported_as_one_by_one_decryption_reports_them(
    tmp_path: Path, cipher: str, first_block: int
) -> None:
    capture, keys, truth = _session(tmp_path, cipher, True)
    segments = _segments(capture)
    starts = _records(segments)
    # One record damaged deep in the session, in the cipher text that holds its CSTP header:
    # it fails its integrity check and is left out, as one-by-one decryption leaves it out.
    _flip(capture, segments, [starts[250] + first_block])
    report = _analyze(capture, keys)
    (tunnel,) = report.tunnels
    assert not report.notes
    one_by_one = decrypt(_segments(capture), parse_keylog(keys.read_text()))
    assert report.to_json() == one_by_one.to_json()
    assert dict(tunnel.to_client.packets)["DATA"] == truth["cstp"]["to-client"]["DATA"] - 1
    # Damage in a row ends the flow with a note, at the frame a person should open.
    _flip(capture, segments, [starts[k] + first_block for k in range(320, 323)])
    report = _analyze(capture, keys)
    (note,) = report.notes
    assert "integrity check failed" in note.message
    assert report.to_json() == decrypt(_segments(capture), parse_keylog(keys.read_text())).to_json()
    # Damage to the framing (a record length) ends it with the splitter's own note.
    _flip(capture, segments, [starts[150] + 3])
    report = _analyze(capture, keys)
    (note,) = report.notes
    assert "not a TLS record header" in note.message or "over the maximum" in note.message
    assert report.to_json() == decrypt(_segments(capture), parse_keylog(keys.read_text())).to_json()


@pytest.mark.parametrize("cipher", ["AES128-SHA", "AES256-GCM-SHA384"])
def test_a_wrong_master_secret_fails_at_the_finished_message(tmp_path: Path, cipher: str) -> None:
    """The record keys come from the key log's master secret: a wrong one fails the first
    protected record (the Finished), and the flow ends with the integrity note."""
    capture, keys, _truth = _session(tmp_path, cipher, True, size=100_000)
    lines = keys.read_text().splitlines()
    keys.write_text(
        "\n".join(
            f"{line[:-2]}{int(line[-2:], 16) ^ 1:02x}" if line.startswith("CLIENT_RANDOM") else line
            for line in lines
        )
    )
    report = _analyze(capture, keys)
    assert report.sessions == () and report.keyed_flows == 1
    (note,) = report.notes
    kind = "AEADTagError" if "GCM" in cipher else "HMACError"
    assert note.message.endswith(f"(record integrity check failed: {kind})")
    ccs = b"\x14\x03\x03\x00\x01\x01"  # ChangeCipherSpec: the client's Finished follows it
    assert note.frame == next(s.frame for s in _segments(capture) if ccs in s.payload)


def test_a_long_session_is_drawn_to_its_end_evenly_thinned(tmp_path: Path) -> None:
    """More DATA packets than the timeline keeps: every stride-th is kept, from the first to
    within one stride of the last, never the first ones alone (a 141 s session was drawn to
    36 s)."""
    capture, keys, _truth = _session(tmp_path, "AES128-SHA", True)
    segments, keylog = _segments(capture), parse_keylog(keys.read_text())
    every = decrypt(segments, keylog).data_sizes
    assert len(every) > 200
    kept = decrypt(segments, keylog, max_sizes=64).data_sizes
    stride = 1  # the smallest power of two that brings the session within 64
    while -(-len(every) // stride) > 64:
        stride *= 2
    assert stride > 1 and 32 < len(kept) <= 64
    assert kept.frame.tolist() == every.frame[::stride].tolist()
    assert kept.frame[-1] > every.frame[-1 - stride]


@pytest.mark.skipif(not tlswalk.COMPILED, reason="the C walk was not built (no compiler)")
@pytest.mark.parametrize("cipher", ["AES128-SHA", "AES128-GCM-SHA256"])
def test_records_walked_while_the_detectors_run_count_the_same(
    tmp_path: Path, cipher: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read in small chunks, the session's tunnel runs across many of them: each chunk's
    records are walked on another thread from before the detectors see the chunk, and the
    report is still record-by-record decryption's, frame for frame."""
    from labkit.analyze import sources
    from labkit.pcapio import reader

    capture, keys, _truth = _session(tmp_path, cipher, True)
    walked_early = []
    walk = sources._Helper.walk

    def spy(helper: sources._Helper, walks: list) -> sources._Walking:
        walked_early.append(len(walks))
        return walk(helper, walks)

    monkeypatch.setattr(sources._Helper, "walk", spy)
    monkeypatch.setattr(reader.Capture.chunks, "__defaults__", (64 << 10,))
    report = _analyze(capture, keys)
    assert walked_early.count(2) > 5  # both directions of a chunk at once, chunk after chunk
    one_by_one = decrypt(_segments(capture), parse_keylog(keys.read_text()))
    assert report.to_json() == one_by_one.to_json()
    assert report.sizes == one_by_one.sizes
