"""What ``labkit replay`` reads: captures through labkit's reader (pcap, pcapng, ``.gz``,
pipes), the outermost IP header found as the analyzer finds link layers, bad input refused
in one line. No packet is sent here: sending is tested in the lab (test_lab_replay.py)."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from labkit.errors import InputError
from labkit.lab.replay import CaptureFile, Record, ip_offset
from labkit.pcapio.writer import PcapngFileWriter
from labkit.wire import LINKTYPE_ETHERNET, LINKTYPE_RAW
from labkit.wire.linktypes import LINKTYPE_LINUX_SLL2, LINKTYPE_NULL
from tests.helpers.cli import labkit
from tests.helpers.paths import PUBLIC, ROOT
from tests.helpers.tshark import requires_tshark, tshark_fields

CAPTURE = PUBLIC / "tcp-mss-fast-retransmit.pcap"
IPV4 = bytes.fromhex("4500001c00010000400100000a0000010a000002") + bytes(8)  # ICMP, 28 bytes


def records(path: Path) -> list[Record]:
    return list(CaptureFile(path).records())


@requires_tshark
def test_records_are_tsharks_frames() -> None:
    rows = tshark_fields(CAPTURE, "frame", "frame.time_epoch", "frame.len", "frame.cap_len")
    got = records(CAPTURE)
    assert [(round(r.time, 6), r.wire_len, len(r.data)) for r in got] == [
        (round(float(t), 6), int(n), int(c)) for t, n, c in rows
    ]


def test_gzip_and_pcapng_give_the_same_records(tmp_path: Path) -> None:
    gz = tmp_path / "copy.pcap.gz"
    gz.write_bytes(gzip.compress(CAPTURE.read_bytes()))
    ng = tmp_path / "copy.pcapng"
    with open(ng, "wb") as f:
        w = PcapngFileWriter(f)
        w.interface(LINKTYPE_ETHERNET)
        for r in records(CAPTURE):
            w.write(round(r.time * 1e6), r.data, origlen=r.wire_len)
    plain = records(CAPTURE)
    assert len(plain) > 10
    assert records(gz) == plain
    assert [(round(r.time, 6), r.data, r.wire_len) for r in records(ng)] == [
        (round(r.time, 6), r.data, r.wire_len) for r in plain
    ]
    assert CaptureFile(gz).linktype == CaptureFile(ng).linktype == LINKTYPE_ETHERNET


def test_a_pipe_is_replayed_as_its_writer_writes(tmp_path: Path) -> None:
    """The first packet is handed out while the writer still holds the pipe open: a pipe is
    read a packet at a time, not a buffer (or a whole file) at a time."""
    fifo = tmp_path / "live.pcap"
    os.mkfifo(fifo)
    raw = CAPTURE.read_bytes()
    first_end = 24 + 16 + struct.unpack_from("<I", raw, 24 + 8)[0]
    release = threading.Event()

    def writer() -> None:
        with open(fifo, "wb") as f:
            f.write(raw[:first_end])
            f.flush()
            release.wait(10)  # bounded: the test releases it at once, or it gives up

    t = threading.Thread(target=writer)
    t.start()
    try:
        capture = CaptureFile(fifo)  # reads up to the first packet
        first = next(iter(capture.records()))
        assert first.data == raw[40:first_end] and not release.is_set()
    finally:
        release.set()
        t.join(10)


def test_a_cut_capture_ends_in_one_error_after_its_packets(tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(CAPTURE.read_bytes()[:-7])
    capture = CaptureFile(cut)
    seen: list[Record] = []
    with pytest.raises(InputError) as err:
        seen.extend(capture.records())
    n = len(records(CAPTURE)) - 1
    assert len(seen) == n
    assert f"damaged capture after {n} packets" in str(err.value) and "cut short" in str(err.value)


def test_mixed_link_types_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "two.pcapng"
    with open(path, "wb") as f:
        w = PcapngFileWriter(f)
        eth, raw = w.interface(LINKTYPE_ETHERNET), w.interface(LINKTYPE_RAW)
        w.write(1, bytes(12) + b"\x08\x00" + IPV4, iface=eth)
        w.write(2, IPV4, iface=raw)
    with pytest.raises(InputError, match="mixes link types 1 and 101"):
        records(path)


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    text = tmp_path / "notes.pcap.gz"
    text.write_bytes(gzip.compress(b"not a capture\n"))
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    cases = {
        text: "not a pcap or pcapng capture",
        empty: "empty file",
        tmp_path / "none.pcap": "no such file",
    }
    for path, message in cases.items():
        proc = labkit("replay", str(path), "--iface", "lo", "--allow-any-iface")
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert message in proc.stderr, proc.stderr


ETH = bytes(12)
LINK_LAYERS = [
    (LINKTYPE_ETHERNET, ETH + b"\x08\x00" + IPV4, 14),
    (LINKTYPE_ETHERNET, ETH + b"\x81\x00\x00\x07\x08\x00" + IPV4, 18),  # 802.1Q
    (LINKTYPE_ETHERNET, ETH + b"\x88\xa8\x00\x07\x81\x00\x00\x08\x08\x00" + IPV4, 22),  # QinQ
    (LINKTYPE_ETHERNET, ETH + b"\x08\x06" + bytes(28), None),  # ARP
    (LINKTYPE_RAW, IPV4, 0),
    (LINKTYPE_NULL, struct.pack("<I", 2) + IPV4, 4),
    (LINKTYPE_LINUX_SLL2, b"\x08\x00" + bytes(18) + IPV4, 20),
    (LINKTYPE_ETHERNET, ETH + b"\x08\x00" + IPV4[:9] + b"\x04" + IPV4[10:20] + IPV4, 14),  # 4in4
    (147, IPV4, None),  # a link type labkit does not read
]


@pytest.mark.parametrize(("linktype", "frame", "offset"), LINK_LAYERS)
def test_ip_offset_reads_link_layers_as_the_analyzer_does(
    linktype: int, frame: bytes, offset: int | None
) -> None:
    assert ip_offset(frame, linktype) == offset


def test_standard_input_is_read_gzip_too() -> None:
    """``labkit replay -`` reads standard input (here a gzip stream) like a file."""
    code = (
        "from labkit.lab.replay import CaptureFile; c = CaptureFile('-'); "
        "print(c.linktype, len(list(c.records())))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=gzip.compress(CAPTURE.read_bytes()),
        capture_output=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [b"1", str(len(records(CAPTURE))).encode()]
