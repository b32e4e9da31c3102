"""The capture reader on every format variant, judged by tshark and by the original records."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from labkit.errors import InputError
from labkit.pcapio import reader
from labkit.pcapio.reader import MAX_CAPLEN, open_capture
from tests.helpers import capfiles as cf
from tests.helpers.paths import PUBLIC
from tests.helpers.tshark import requires_tshark, tshark_fields

PUBLIC_FILES = sorted(p.name for p in PUBLIC.glob("*.pcap*")) if PUBLIC.is_dir() else []


def read_all(path: Path, chunk_bytes: int | None = None):
    with open_capture(path) as cap:
        chunks = cap.chunks(chunk_bytes) if chunk_bytes else cap.chunks()
        recs = [
            (int(c.frame0 + i), float(c.ts[i]), int(c.origlen[i]), int(c.linktype[i]), c.packet(i))
            for c in chunks
            for i in range(len(c))
        ]
        return cap, recs


def tshark_view(path: Path) -> list[tuple[int, float, int, int]]:
    rows = tshark_fields(
        path, "frame", "frame.number", "frame.time_epoch", "frame.len", "frame.cap_len"
    )
    return [(int(n), float(t) if t else float("nan"), int(ln), int(cl)) for n, t, ln, cl in rows]


def same_as_tshark(path: Path, recs) -> None:
    view = tshark_view(path)
    assert [r[0] for r in recs] == [v[0] for v in view]
    for (frame, ts, orig, _lt, data), (_n, t, ln, cl) in zip(recs, view):
        assert abs(ts - t) < 2e-6, frame
        assert (orig, len(data)) == (ln, cl), frame


@requires_tshark
@pytest.mark.parametrize("name", PUBLIC_FILES)
def test_public_captures_match_tshark(name):
    cap, recs = read_all(PUBLIC / name)
    assert not cap.warnings
    same_as_tshark(PUBLIC / name, recs)


def editcap(src: Path, dst: Path, *args: str) -> Path:
    subprocess.run(["editcap", *args, str(src), str(dst)], check=True, capture_output=True)
    return dst


needs_editcap = pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap not installed")


@needs_editcap
@pytest.mark.parametrize("fmt", ["pcapng", "nsecpcap", "modpcap", "pcap"])
@pytest.mark.parametrize(
    "name",
    ["anyconnect-vpn.pcap", "dtls-0x0100-hvr-retrans.pcapng", "tcp-mss-fast-retransmit.pcap"],
)
def test_editcap_variants_give_the_same_records(tmp_path, name, fmt):
    _, want = read_all(PUBLIC / name)
    out = editcap(PUBLIC / name, tmp_path / f"x.{fmt}", "-F", fmt)
    cap, got = read_all(out)
    assert not cap.warnings
    assert [(f, o, lt, d) for f, _t, o, lt, d in got] == [(f, o, lt, d) for f, _t, o, lt, d in want]
    assert all(abs(a[1] - b[1]) < 2e-6 for a, b in zip(got, want))
    assert cap.format == ("pcapng" if fmt == "pcapng" else "pcap")


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path, order, nano):
    linktype, want = cf.read_pcap(PUBLIC / "anyconnect-vpn.pcap")
    path = tmp_path / "x.pcap"
    path.write_bytes(cf.pcap_bytes(linktype, want, order=order, nano=nano))
    cap, got = read_all(path)
    assert not cap.warnings and cap.byteorder == order
    assert [d for *_, d in got] == [r.data for r in want]
    assert [o for _f, _t, o, _l, _d in got] == [r.origlen for r in want]
    assert all(abs(g[1] - w.ts) < 2e-6 for g, w in zip(got, want))


@pytest.mark.parametrize("name", ["anyconnect-vpn.pcap", "dtls-0x0100-hvr-retrans.pcapng"])
def test_gzip_compressed(tmp_path, name):
    _, want = read_all(PUBLIC / name)
    path = tmp_path / (name + ".gz")
    path.write_bytes(gzip.compress((PUBLIC / name).read_bytes()))
    cap, got = read_all(path)
    assert cap.compressed and not cap.warnings
    assert got == want


def test_small_chunks_split_records_anywhere(tmp_path):
    """Records split across buffer refills: 1 KiB buffers force a split at every record."""
    _, want = read_all(PUBLIC / "anyconnect-vpn.pcap")
    for chunk in (1600, 4096, 65536 + 7):
        cap, got = read_all(PUBLIC / "anyconnect-vpn.pcap", chunk)
        assert got == want and not cap.warnings
    _, want = read_all(PUBLIC / "dtls-0x0100-hvr-retrans.pcapng")
    cap, got = read_all(PUBLIC / "dtls-0x0100-hvr-retrans.pcapng", 600)
    assert got == want and not cap.warnings


@pytest.mark.parametrize("piece", [1, 13, 700, 4096])
def test_read_ahead_walks_piece_by_piece_to_the_same_records(tmp_path, monkeypatch, piece):
    """The read-ahead walks each piece of a buffer as it lands: records split by a piece's
    end (every one, with 1-byte pieces), a buffer's end, a cut file and pcapng sections in
    both byte orders read as they do when the buffer is walked whole."""
    files = []
    for name in ("anyconnect-vpn.pcap", "dtls-0x0100-hvr-retrans.pcapng"):
        raw = (PUBLIC / name).read_bytes()
        cut = tmp_path / f"cut-{name}"
        cut.write_bytes(raw[: len(raw) - 40])
        files += [PUBLIC / name, cut]
    mixed = tmp_path / "mixed.pcapng"
    mixed.write_bytes(5 * (pcapng_multi("<")[0] + pcapng_multi(">")[0]))
    files.append(mixed)
    want = [read_all(f, 4096) for f in files]
    monkeypatch.setattr(reader, "READ_PIECE", piece)
    for f, (wcap, wrecs) in zip(files, want):
        cap, recs = read_all(f, 4096)
        assert repr(recs) == repr(wrecs) and len(recs) >= 6, f.name  # NaN times: repr
        assert [(w.offset, w.message) for w in cap.warnings] == [
            (w.offset, w.message) for w in wcap.warnings
        ]
    assert len(want[-1][1]) == 5 * 22 and not want[-1][0].warnings


def pcapng_multi(order: str) -> tuple[bytes, list[tuple[int, int, bytes]]]:
    """Two sections; interfaces with Ethernet and raw IP; EPB, SPB, unknown blocks, options."""
    _, recs = cf.read_pcap(PUBLIC / "anyconnect-vpn.pcap")
    recs = recs[20:30]
    parts = [
        cf.shb(order, "first section"),
        cf.idb(order, 1, name="eth0"),
        cf.unknown_block(order),
        cf.idb(order, 101, tsresol=9, name="tun0"),
    ]
    expect = []
    for i, r in enumerate(recs[:6]):
        if i % 2:
            parts.append(
                cf.epb(
                    order,
                    cf.Rec(r.ts, cf.relink(r.data, 101), r.origlen - 14, 1),
                    divisor=10**9,
                    comment=f"c{i}",
                )
            )
            expect.append((101, r.origlen - 14, cf.relink(r.data, 101)))
        else:
            parts.append(cf.epb(order, r))
            expect.append((1, r.origlen, r.data))
    parts.append(cf.unknown_block(order, 0x00000BAD, 40))  # a custom block: a frame in Wireshark
    expect.append((-1, 0, b""))
    # Section two: its own interface table; SPBs use interface 0 (snaplen applies).
    parts += [cf.shb(order), cf.idb(order, 113, snaplen=100)]
    for r in recs[6:]:
        sll = cf.relink(r.data, 113)
        parts.append(cf.spb(order, cf.Rec(r.ts, sll[:100], len(sll))))
        expect.append((113, len(sll), sll[:100]))
    return b"".join(parts), expect


@requires_tshark
@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_sections_interfaces_spb_unknown_blocks(tmp_path, order):
    raw, expect = pcapng_multi(order)
    path = tmp_path / "multi.pcapng"
    path.write_bytes(raw)
    cap, got = read_all(path)
    assert not cap.warnings
    assert [(lt, o, d) for _f, _t, o, lt, d in got] == expect
    # tshark agrees on frame numbers, lengths and (where present) timestamps.
    view = tshark_view(path)
    assert [v[0] for v in view] == [g[0] for g in got]
    assert [(v[2], v[3]) for v in view if v[0] != 7] == [
        (g[2], len(g[4])) for g in got if g[0] != 7
    ]
    for g, v in zip(got[:6], view[:6]):
        assert abs(g[1] - v[1]) < 2e-6


def test_mixed_byte_order_sections(tmp_path):
    a, ea = pcapng_multi("<")
    b, eb = pcapng_multi(">")
    path = tmp_path / "mixed.pcapng"
    path.write_bytes(a + b)
    cap, got = read_all(path, 4096)
    assert not cap.warnings
    assert [(lt, o, d) for _f, _t, o, lt, d in got] == ea + eb
    assert [g[0] for g in got] == list(range(1, len(ea) + len(eb) + 1))


def test_truncated_mid_record_reads_up_to_the_cut(tmp_path):
    raw = (PUBLIC / "anyconnect-vpn.pcap").read_bytes()
    _, full = read_all(PUBLIC / "anyconnect-vpn.pcap")
    # Cut inside the packet bytes of record 300, then inside its header.
    off = 24
    for _ in range(299):
        off += 16 + int.from_bytes(raw[off + 8 : off + 12], "little")
    for cut, kind in ((off + 16 + 5, "packet bytes"), (off + 7, "header bytes")):
        path = tmp_path / "cut.pcap"
        path.write_bytes(raw[:cut])
        cap, got = read_all(path)
        assert got == full[:299]
        assert len(cap.warnings) == 1
        w = cap.warnings[0]
        assert w.offset == off and kind in w.message and "record 300" in w.message


def test_truncated_pcapng_and_gzip(tmp_path):
    raw = (PUBLIC / "dtls-0x0100-hvr-retrans.pcapng").read_bytes()
    _, full = read_all(PUBLIC / "dtls-0x0100-hvr-retrans.pcapng")
    path = tmp_path / "cut.pcapng"
    path.write_bytes(raw[:-30])
    cap, got = read_all(path)
    assert got == full[:-1] and "cut short" in cap.warnings[0].message
    gz = gzip.compress((PUBLIC / "anyconnect-vpn.pcap").read_bytes())
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(gz[: len(gz) // 2])
    cap, got = read_all(path)
    assert 0 < len(got) < 589
    assert any("compressed stream" in w.message for w in cap.warnings)


def test_absurd_caplen_stops_with_a_warning_and_allocates_nothing(tmp_path):
    linktype, recs = cf.read_pcap(PUBLIC / "dtls1_2.pcap")
    raw = bytearray(cf.pcap_bytes(linktype, recs))
    off = 24 + sum(16 + len(r.data) for r in recs[:5])
    raw[off + 8 : off + 12] = (0xFFFFFFF0).to_bytes(4, "little")
    path = tmp_path / "absurd.pcap"
    path.write_bytes(bytes(raw))
    cap, got = read_all(path)
    assert len(got) == 5
    assert cap.warnings[0].offset == off and str(MAX_CAPLEN) in cap.warnings[0].message
    # Also when the absurd length still fits inside the buffer.
    raw[off + 8 : off + 12] = (MAX_CAPLEN + 1).to_bytes(4, "little")
    path.write_bytes(bytes(raw) + bytes(MAX_CAPLEN + 100))
    cap, got = read_all(path)
    assert len(got) == 5 and cap.warnings[0].offset == off


def test_bad_pcapng_block_length(tmp_path):
    raw = bytearray((PUBLIC / "dtls-0x0100-hvr-retrans.pcapng").read_bytes())
    _, full = read_all(PUBLIC / "dtls-0x0100-hvr-retrans.pcapng")
    # Find the 3rd EPB and give it an impossible length.
    off, seen = 0, 0
    while True:
        btype, blen = (
            int.from_bytes(raw[off : off + 4], "little"),
            int.from_bytes(raw[off + 4 : off + 8], "little"),
        )
        if btype == 6:
            seen += 1
            if seen == 3:
                break
        off += blen
    raw[off + 4 : off + 8] = (7).to_bytes(4, "little")
    path = tmp_path / "bad.pcapng"
    path.write_bytes(bytes(raw))
    cap, got = read_all(path)
    assert got == full[:2] and cap.warnings[0].offset == off


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"hello world, not a capture\n", "not a pcap or pcapng capture (looks like text"),
        (bytes(range(7, 64)), "starts with bytes 07 08 09 0a"),
        (b"\xd4\xc3", "not a pcap or pcapng capture (only 2 bytes long)"),
    ],
)
def test_not_a_capture(tmp_path, content, message):
    path = tmp_path / "x.pcap"
    path.write_bytes(content)
    with pytest.raises(InputError, match=".*") as exc:
        open_capture(path)
    assert message in str(exc.value) and str(path) in str(exc.value)


def test_directory_missing_and_unreadable(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        open_capture(tmp_path)
    with pytest.raises(InputError, match="no such file"):
        open_capture(tmp_path / "nope.pcap")
    if os.geteuid() != 0:  # root reads anything
        p = tmp_path / "locked.pcap"
        p.write_bytes(b"x")
        p.chmod(0)
        with pytest.raises(InputError, match="cannot read"):
            open_capture(p)


def test_header_only_and_empty_gzip(tmp_path):
    p = tmp_path / "hdr.pcap"
    p.write_bytes((PUBLIC / "dtls1_2.pcap").read_bytes()[:24])
    cap, got = read_all(p)
    assert got == [] and not cap.warnings
    p = tmp_path / "e.gz"
    p.write_bytes(gzip.compress(b""))
    with pytest.raises(InputError, match="empty file"):
        open_capture(p)


@pytest.mark.parametrize(
    "layout", ["idb-per-packet", "section-per-packet", "byte-order-flip-per-packet"]
)
def test_hostile_pcapng_layouts_read_the_same_records(tmp_path, layout):
    """One interface or one section (even in alternating byte orders) per packet: the same
    records as a plain file, at the same cost per packet (no split per block)."""
    _, recs = cf.read_pcap(PUBLIC / "anyconnect-vpn.pcap")
    plain = b"".join([cf.shb("<"), cf.idb("<", 1)] + [cf.epb("<", r) for r in recs])
    blocks = [cf.shb("<")] if layout == "idb-per-packet" else []
    for i, r in enumerate(recs):
        order = ">" if layout == "byte-order-flip-per-packet" and i % 2 else "<"
        if layout == "idb-per-packet":
            blocks += [cf.idb(order, 1), cf.epb(order, cf.Rec(r.ts, r.data, r.origlen, i))]
        else:
            blocks += [cf.shb(order), cf.idb(order, 1), cf.epb(order, r)]
    a, b = tmp_path / "plain.pcapng", tmp_path / "hostile.pcapng"
    a.write_bytes(plain)
    b.write_bytes(b"".join(blocks))
    cap_a, want = read_all(a)
    cap_b, got = read_all(b, 65536)
    assert not cap_b.warnings
    assert [(f, o, lt, d) for f, _t, o, lt, d in got] == [(f, o, lt, d) for f, _t, o, lt, d in want]
    assert all(abs(x[1] - y[1]) < 2e-6 for x, y in zip(got, want))
