"""`labkit analyze` as a user runs it: exit codes, bad input in one line, --annotate."""

from __future__ import annotations

import json

import pytest

from tests.helpers import capfiles as cf
from tests.helpers.cli import labkit
from tests.helpers.paths import PUBLIC
from tests.helpers.tshark import requires_tshark, tshark_fields


def one_line_error(proc) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    "content, expect",
    [
        (b"", "empty file"),
        (b"<html>not a capture</html>", "not a pcap or pcapng capture"),
        (bytes(500), "not a pcap or pcapng capture"),
    ],
)
def test_bad_files(tmp_path, content, expect):
    p = tmp_path / "bad.pcap"
    p.write_bytes(content)
    assert expect in one_line_error(labkit("analyze", str(p)))


def test_directory_and_missing(tmp_path):
    assert "is a directory" in one_line_error(labkit("analyze", str(tmp_path)))
    assert "no such file" in one_line_error(labkit("analyze", str(tmp_path / "nope.pcap")))


def test_unknown_link_type_is_named(tmp_path):
    raw = bytearray((PUBLIC / "dtls1_2.pcap").read_bytes())
    raw[20:24] = (187).to_bytes(4, "little")
    p = tmp_path / "bt.pcap"
    p.write_bytes(bytes(raw))
    line = one_line_error(labkit("analyze", str(p)))
    assert "link type 187 (BLUETOOTH_HCI_H4) is not supported" in line


def test_frames_without_ip_name_why(tmp_path):
    """Ethernet frames read as 802.11 carry no IP: the error says what the frames were."""
    raw = bytearray((PUBLIC / "dtls1_2.pcap").read_bytes())
    raw[20:24] = (105).to_bytes(4, "little")
    p = tmp_path / "wifi.pcap"
    p.write_bytes(bytes(raw))
    line = one_line_error(labkit("analyze", str(p)))
    assert "no IP packets to analyze" in line and "802.11 frame control" in line


def test_header_only_capture_has_nothing_to_analyze(tmp_path):
    p = tmp_path / "hdr.pcap"
    p.write_bytes((PUBLIC / "dtls1_2.pcap").read_bytes()[:24])
    assert "no packets" in one_line_error(labkit("analyze", str(p)))


def test_truncated_mid_record_is_analyzed_up_to_the_cut(tmp_path):
    raw = (PUBLIC / "anyconnect-vpn.pcap").read_bytes()
    _, recs = cf.read_pcap(PUBLIC / "anyconnect-vpn.pcap")
    last = 24 + sum(16 + len(r.data) for r in recs[:-1])  # record 589 starts here
    p = tmp_path / "cut.pcap"
    p.write_bytes(raw[: last + 20])
    proc = labkit("analyze", str(p), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    (w,) = doc["files"][0]["warnings"]
    assert w.startswith(f"byte offset {last}: ") and "cut short" in w and "record 589" in w
    assert doc["files"][0]["packets"] == 588
    assert any(f["id"] == "dtls-established" for f in doc["findings"])
    text = labkit("analyze", str(p)).stdout
    assert "warning: byte offset" in text


def test_absurd_caplen_warns_with_offset(tmp_path):
    linktype, recs = cf.read_pcap(PUBLIC / "tcp-mss-fast-retransmit.pcap")
    raw = bytearray(cf.pcap_bytes(linktype, recs))
    off = 24 + sum(16 + len(r.data) for r in recs[:10])
    raw[off + 8 : off + 12] = (2**31).to_bytes(4, "little")
    p = tmp_path / "absurd.pcap"
    p.write_bytes(bytes(raw))
    doc = json.loads(labkit("analyze", str(p), "--format", "json").stdout)
    assert doc["files"][0]["packets"] == 10
    assert doc["files"][0]["warnings"][0].startswith(
        f"byte offset {off}: record 11 claims 2147483648"
    )


def test_one_bad_file_among_good_ones(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"junk")
    proc = labkit("analyze", str(PUBLIC / "tcp-mss-fast-retransmit.pcap"), str(bad))
    assert proc.returncode == 0
    assert "warning:" in proc.stderr and "not a pcap" in proc.stderr
    assert "NOT ANALYZED" in proc.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tunnel-mtu", "abc"], "expected an integer"),
        (["--tunnel-mtu", "100"], "expected 576..65535"),
        (["--headend", "not-an-ip"], "not an IP address"),
    ],
)
def test_bad_options(args, message):
    assert message in one_line_error(labkit("analyze", str(PUBLIC / "dtls1_2.pcap"), *args))


@requires_tshark
def test_annotate_comments_exactly_the_evidence_frames(tmp_path):
    src = PUBLIC / "anyconnect-vpn.pcap"
    out = tmp_path / "annotated.pcapng"
    proc = labkit("analyze", str(src), "--annotate", str(out), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    evidence = sorted({e["frame"] for f in doc["findings"] for e in f["evidence"]})
    rows = tshark_fields(out, "frame.comment", "frame.number", "frame.comment")
    assert [int(r[0]) for r in rows] == evidence
    assert all("labkit" in r[1] for r in rows)
    assert any("dtls-established" in r[1] for r in rows if r[0] == "413")
    # The copy is the same capture: same frames, lengths and times as the input.
    orig = tshark_fields(src, "frame", "frame.number", "frame.len", "frame.time_epoch")
    copy = tshark_fields(out, "frame", "frame.number", "frame.len", "frame.time_epoch")
    assert orig == copy


def test_annotate_never_overwrites(tmp_path):
    src = tmp_path / "in.pcap"
    src.write_bytes((PUBLIC / "dtls1_2.pcap").read_bytes())
    out = tmp_path / "out.pcapng"
    out.write_bytes(b"precious")
    line = one_line_error(labkit("analyze", str(src), "--annotate", str(out)))
    assert "already exists" in line and out.read_bytes() == b"precious"
    line = one_line_error(labkit("analyze", str(src), "--annotate", str(src), "--force"))
    assert "refusing to overwrite an input" in line
    assert src.read_bytes() == (PUBLIC / "dtls1_2.pcap").read_bytes()
    proc = labkit("analyze", str(src), "--annotate", str(out), "--force")
    assert proc.returncode == 0 and out.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    assert not list(tmp_path.glob(".*.part"))


def test_jobs_gives_the_same_report():
    files = [
        str(PUBLIC / n)
        for n in ("anyconnect-vpn.pcap", "dtls1_2.pcap", "tcp-mss-fast-retransmit.pcap")
    ]
    one = json.loads(labkit("analyze", *files, "--format", "json").stdout)
    two = json.loads(labkit("analyze", *files, "--format", "json", "--jobs", "2").stdout)
    assert one["findings"] == two["findings"] and one["verdict"] == two["verdict"]
    assert "expected at least 1" in one_line_error(labkit("analyze", files[0], "--jobs", "0"))
