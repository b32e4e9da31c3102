"""Capture containers that lie about time or interfaces, and compressions labkit does not read:
a warning or one clear line, never an internal error. Files are built here byte by byte."""

from __future__ import annotations

import bz2
import importlib.util
import json
import lzma
import struct
from pathlib import Path

import pytest

from tests.helpers.cli import labkit
from tests.helpers.paths import ROOT
from tests.helpers.tshark import requires_tshark

PACKET = bytes.fromhex(
    "020000000002020000000001080045000028000140004006"
    + "0000c0a80001c0a80002"
    + "04d201bb00000001000000005002ffff00000000"
)  # Ethernet/IPv4/TCP SYN, 54 B
T_US = 1_700_000_000_000_000  # 2023-11-14 in microseconds


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def _opt(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


SHB = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))


def _idb(options: bytes = b"") -> bytes:
    return _block(
        1, struct.pack("<HHI", 1, 0, 262144) + options + (_opt(0, b"") if options else b"")
    )


def _epb(ticks: int) -> bytes:
    body = struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(PACKET), len(PACKET))
    return _block(6, body + PACKET)


#: Interfaces whose options put microsecond ticks outside years 1-9999.
WILD = {
    "tsresol-seconds": _opt(9, b"\x00"),  # ticks read as seconds: year 53 872 825
    "tsoffset-huge": _opt(14, struct.pack("<q", 1 << 62)),
    "tsoffset-negative": _opt(14, struct.pack("<q", -(1 << 62))),
}


def _wild(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.pcapng"
    path.write_bytes(SHB + _idb(WILD[name]) + _epb(T_US) + _epb(T_US + 1_000_000))
    return path


def _analyze_json(*args: str) -> tuple[int, dict, str]:
    proc = labkit("analyze", *args, "--format", "json")
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stderr


@pytest.mark.parametrize("name", sorted(WILD))
def test_timestamps_outside_years_1_to_9999_are_a_warning(name: str, tmp_path: Path) -> None:
    path = _wild(tmp_path, name)
    rc, doc, _ = _analyze_json(str(path))
    assert rc == 0
    (f,) = doc["files"]
    assert f["packets"] == 2 and "first_time" not in f
    assert any(
        w.endswith(
            "frame 1: timestamp outside the years 1-9999 (its interface's if_tsresol "
            "or if_tsoffset does not fit its packets): such frames are analyzed without "
            "a time"
        )
        for w in f["warnings"]
    ), f["warnings"]
    text = labkit("analyze", str(path))
    assert text.returncode == 0 and "timestamp outside the years 1-9999" in text.stdout


def test_wild_timestamps_with_logs_clock_offset_and_plot(tmp_path: Path) -> None:
    path = _wild(tmp_path, "tsresol-seconds")
    log = ROOT / "tests" / "data" / "asa-seed.log"
    rc, doc, err = _analyze_json(str(path), "--syslog", str(log), "--clock-offset", "5")
    assert rc == 1 and doc["sources"][0]["kind"] == "asa-syslog", err
    if importlib.util.find_spec("PIL") is not None:
        png = tmp_path / "t.png"
        proc = labkit("analyze", str(path), "--plot", str(png))
        assert proc.returncode == 0, proc.stderr
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@requires_tshark
def test_a_section_without_an_idb_does_not_borrow_the_next_ones(tmp_path: Path) -> None:
    """Section 1 declares no interface (1000 packets), section 2 one: section 1's packets are
    skipped with one warning, not read with section 2's link type and clock."""
    import subprocess

    path = tmp_path / "orphan.pcapng"
    orphans = b"".join(_epb(T_US + k) for k in range(1000))
    path.write_bytes(SHB + orphans + SHB + _idb() + _epb(T_US + 5_000_000))
    tshark = subprocess.run(["tshark", "-r", str(path)], capture_output=True, text=True)
    assert "interface index 0 is not less than section interface count 0" in tshark.stderr
    rc, doc, _ = _analyze_json(str(path))
    (f,) = doc["files"]
    assert f["ip_packets"] == 1 and f["first_time"] == (T_US + 5_000_000) / 1e6
    assert f["warnings"] == [
        "byte offset 28: frame 1: its pcapng section declares no interface (no IDB): the "
        "section's packets are skipped"
    ]


@pytest.mark.parametrize(
    "suffix, data, what",
    [
        (".bz2", lambda b: bz2.compress(b), "bzip2-compressed: bunzip2 -k it first"),
        (".xz", lambda b: lzma.compress(b), "xz-compressed: unxz -k it first"),
        (".zst", lambda b: b"\x28\xb5\x2f\xfd" + b, "zstd-compressed: unzstd it first"),
    ],
)
def test_other_compressions_are_named(suffix: str, data, what: str, tmp_path: Path) -> None:
    """bzip2 ("BZh9") was called text; say what the file is and how to undo it."""
    path = tmp_path / f"cap.pcapng{suffix}"
    path.write_bytes(data(SHB + _idb() + _epb(T_US)))
    proc = labkit("analyze", str(path))
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        f"labkit analyze: error: {path}: not a pcap or pcapng capture ({what}, or gzip it)"
    )
    assert proc.stderr.count("\n") == 1
