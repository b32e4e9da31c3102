"""`labkit analyze` with --syslog, --dart, --keylog, --clock-offset and --plot: log events join
the capture findings on one timeline; every capture filter is still judged by tshark."""

from __future__ import annotations

import calendar
import json
from pathlib import Path

import pytest
from scapy.utils import wrpcap

from labkit.analyze.plotdata import build
from labkit.analyze.timeline import LogInputs
from tests.helpers import synth
from tests.helpers.cli import labkit
from tests.helpers.tshark import requires_tshark, tshark_frames

DATA = Path(__file__).parent / "data"
SYSLOG, DART = DATA / "asa-seed.log", DATA / "dart-seed.txt"
SEED_DAY = calendar.timegm((2022, 11, 16, 0, 0, 0))
DART_RECONNECT = SEED_DAY + 1 * 3600 + 28 * 60 + 50  # 01:28:50, DART's "Reconfigure reason code 16"
# The synthetic outside capture reconnects at T0 + 45.5 s (outside_dtls_blocked: four hellos
# 1, 2, 4, 8 s apart from 0.5 s, then 30 s): the offset that puts DART's reconnect there.
OFFSET = synth.T0 + 45.5 - DART_RECONNECT


def run_json(*args: str) -> tuple[int, dict, str]:
    proc = labkit("analyze", *args, "--format", "json")
    assert proc.returncode in (0, 1, 2), proc.stderr
    doc = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc.returncode, doc, proc.stderr


def findings(doc: dict, fid: str) -> list[dict]:
    return [f for f in doc["findings"] if f["id"] == fid]


def lines_of(f: dict, path: Path) -> list[int]:
    return [e["frame"] for e in f["evidence"] if e["file"] == str(path)]


def test_logs_alone_confirm_the_seed():
    rc, doc, err = run_json("--syslog", str(SYSLOG), "--dart", str(DART))
    assert rc == 1 and "Traceback" not in err
    assert doc["verdict"].startswith(
        "PROBLEM: MTU mismatch confirmed: 1418-byte packets vs a 1347-byte tunnel"
    )
    (mm,) = findings(doc, "mtu-mismatch")
    assert (mm["packet_size"], mm["tunnel_mtu"], mm["tunnel_mtu_source"]) == (
        1418,
        1347,
        "asa-syslog",
    )
    assert lines_of(mm, SYSLOG) == list(range(6, 18))  # six 722036 + six 602101 lines
    assert mm["evidence"][0]["time"] == SEED_DAY + 1 * 3600 + 27 * 60 + 53
    assert mm["wireshark_filter"] == ""  # no capture: nothing to filter
    (rc_f,) = findings(doc, "vpn-reconnect")
    assert (rc_f["reason_code"], rc_f["server"], rc_f["gap_s"]) == (16, "10.1.1.2", 1.0)
    assert lines_of(rc_f, DART) == [2, 11, 19, 28]
    assert lines_of(rc_f, SYSLOG) == [19, 20, 21, 22]
    kinds = {s["kind"]: s for s in doc["sources"]}
    assert "1 malformed" in kinds["asa-syslog"]["summary"]
    assert any("line 18" in w for w in kinds["asa-syslog"]["warnings"])


def test_text_report_names_log_lines_not_frames():
    proc = labkit("analyze", "--syslog", str(SYSLOG))
    assert proc.returncode == 1
    assert f"evidence: {SYSLOG} line(s) 6, 7, 8" in proc.stdout
    assert "wireshark filter" not in proc.stdout


@pytest.fixture()
def seed_case(tmp_path):
    outside = tmp_path / "outside.pcap"
    inside = tmp_path / "inside.pcap"
    wrpcap(str(outside), synth.outside_dtls_blocked())
    wrpcap(str(inside), synth.inside_icmp_ok())
    return outside, inside


@requires_tshark
def test_clock_offset_joins_logs_and_captures(seed_case):
    outside, inside = seed_case
    rc, doc, _ = run_json(
        str(outside),
        str(inside),
        "--syslog",
        str(SYSLOG),
        "--dart",
        str(DART),
        "--clock-offset",
        f"{OFFSET}",
    )
    assert rc == 1
    (mm,) = findings(doc, "mtu-mismatch")
    assert (mm["packet_size"], mm["tunnel_mtu"], mm["also_from"]) == (1418, 1347, ["asa-syslog"])
    assert lines_of(mm, SYSLOG) == list(range(6, 18)) and lines_of(mm, inside)
    (rc_f,) = findings(doc, "vpn-reconnect")  # one reconnect: capture, DART and ASA agree
    assert (
        lines_of(rc_f, outside)
        and lines_of(rc_f, DART) == [2, 11, 19, 28]
        and lines_of(rc_f, SYSLOG)
    )
    assert rc_f["gap_s"] == 30.0  # the capture's own gap wins over the ASA's
    assert rc_f["reason_code"] == 16
    dart_time = next(e["time"] for e in rc_f["evidence"] if e["file"] == str(DART))
    assert dart_time == pytest.approx(synth.T0 + 45.5)
    # The log evidence leaves each capture filter selecting exactly its capture frames.
    for f in (mm, rc_f):
        for cap in (outside, inside):
            frames = lines_of(f, cap)
            if frames:
                filt = (f.get("wireshark_filters") or {}).get(str(cap), f["wireshark_filter"])
                assert tshark_frames(cap, filt) == sorted(frames)


def test_without_the_offset_the_clocks_do_not_meet(seed_case):
    outside, inside = seed_case
    rc, doc, _ = run_json(str(outside), "--dart", str(DART))
    assert len(findings(doc, "vpn-reconnect")) == 2  # a year apart: two incidents


def test_per_file_offset_and_bad_offsets(seed_case):
    outside, _ = seed_case
    rc, doc, _ = run_json(str(outside), "--dart", str(DART), "--clock-offset", f"{DART}={OFFSET}")
    assert len(findings(doc, "vpn-reconnect")) == 1
    for bad in ("soon", f"{outside}=5", "nan"):
        proc = labkit("analyze", str(outside), "--dart", str(DART), "--clock-offset", bad)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, bad


@requires_tshark
def test_keylog_gives_cstp_connect_judged_by_tshark():
    pcap, keylog = DATA / "cstp-tls12.pcap", DATA / "cstp-tls12.keylog"
    rc, doc, _ = run_json(str(pcap), "--keylog", str(keylog))
    (c,) = findings(doc, "cstp-connect")
    assert (c["x_cstp_mtu"], c["x_dtls_mtu"], c["x_cstp_base_mtu"], c["x_dtls_port"]) == (
        1347,
        1418,
        1500,
        443,
    )
    assert c["client_x_cstp_mtu"] == 1406 and c["dtls_cipher"] == "AES128-SHA"
    assert (c["largest_data_to_client"], c["largest_data_to_server"]) == (1347, 1300)
    assert c["cstp_to_client"] == {"DATA": 4, "DPD-RESP": 1, "KEEPALIVE": 1}
    assert tshark_frames(
        pcap, c["wireshark_filter"], extra=("-o", f"tls.keylog_file:{keylog}")
    ) == [25]
    # The decrypted CONNECT names the head-end: the capture is an outside capture now.
    assert doc["files"][0]["capture_point"] == "outside"


def test_a_key_log_that_opens_no_tunnel_says_so(public_captures):
    pcap = public_captures / "tls12-decryption.pcap"
    rc, doc, err = run_json(str(pcap), "--keylog", str(public_captures / "tls12-decryption.keylog"))
    assert rc == 0 and not findings(doc, "cstp-connect")
    assert "no AnyConnect CONNECT" in err and "GET / HTTP/1.1" in err
    rc, doc, err = run_json(str(pcap), "--keylog", str(DATA / "cstp-tls12.keylog"))
    assert "matches none of the 1 TLS sessions" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--keylog", str(DATA / "cstp-tls12.keylog")], "--keylog decrypts a capture"),
        ([], "give at least one capture"),
        (["--syslog", "/bin/ls"], "binary data"),
        (["--syslog", str(DART)], "no ASA message"),
    ],
)
def test_unusable_inputs_are_one_line_exit_2(args, message):
    proc = labkit("analyze", *args)
    assert proc.returncode == 2 and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_bad_log_next_to_a_good_one_is_a_warning():
    proc = labkit("analyze", "--syslog", "/bin/ls", "--dart", str(DART))
    assert proc.returncode == 1 and "warning: /bin/ls: binary data" in proc.stderr


# ---------------------------------------------------------------------- plot


def _inputs() -> LogInputs:
    from labkit.analyze.sources import read_dart, read_syslog

    _report, syslog = read_syslog(str(SYSLOG), year=None)
    _report, dart = read_dart(str(DART))
    return LogInputs(((str(SYSLOG), syslog),), ((str(DART), dart),))


def test_timeline_of_logs_alone():
    from labkit.analyze.timeline import join

    inputs = _inputs()
    t = build([], join([], inputs), inputs)
    assert [(lv.value, lv.label) for lv in t.levels] == [
        (1418, "packet size the adapter MTU allows"),
        (1347, "tunnel MTU"),
    ]
    (logged,) = t.series  # the ASA names the packets' size: 6 x 722036 + 6 x 602101
    assert len(logged.sizes) == 12 and set(logged.sizes.tolist()) == {1418}
    lanes = {m.lane for m in t.markers}
    assert {"ASA 722036/602101", "ASA session", "DART"} <= lanes
    (reconnect,) = [m for m in t.markers if m.reconnect]
    assert reconnect.time == DART_RECONNECT


def test_timeline_of_a_capture_counts_what_exceeds_the_tunnel(seed_case, tmp_path):
    from labkit.analyze import Collect, analyze

    outside, inside = seed_case
    # DTLS fails outside: the ICMP limit the inside's sender adapted to is the mismatch
    report = analyze([outside, inside], collect=Collect(plot=True))
    samples = tuple(s for s in report.samples if s[0] == str(inside))
    t = build(samples, report.findings, LogInputs(), {str(inside): "inside"})
    low = min(t.levels, key=lambda lv: lv.value)
    assert low.value == 1347 and "(3 packets above)" in low.label  # the three 1418-byte segments
    to_client = next(s for s in t.series if s.direction == "to")
    assert sorted(to_client.sizes.tolist()).count(1418) == 3
    assert len([m for m in t.markers if m.lane == "ICMP frag-needed"]) == 3


def test_plot_is_written_and_never_overwrites(tmp_path, seed_case):
    outside, inside = seed_case
    png = tmp_path / "case.png"
    proc = labkit(
        "analyze",
        str(outside),
        str(inside),
        "--syslog",
        str(SYSLOG),
        "--dart",
        str(DART),
        "--clock-offset",
        f"{OFFSET}",
        "--plot",
        str(png),
    )
    assert proc.returncode == 1, proc.stderr
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    again = labkit("analyze", str(inside), "--plot", str(png))
    assert again.returncode == 2 and "already exists" in again.stderr
    assert png.read_bytes() == data
    refused = labkit("analyze", str(inside), "--plot", str(inside), "--force")
    assert refused.returncode == 2 and "input" in refused.stderr


def test_the_asa_names_the_limit_a_black_hole_hides(tmp_path):
    """A black hole shows the packet size but not the path MTU; 722036 says 1347."""
    inside = tmp_path / "inside.pcap"
    wrpcap(str(inside), synth.inside_black_hole())
    rc, doc, _ = run_json(str(inside), "--syslog", str(SYSLOG), "--clock-offset", f"{OFFSET}")
    (mm,) = findings(doc, "mtu-mismatch")
    assert (mm["packet_size"], mm["tunnel_mtu"], mm["tunnel_mtu_source"]) == (
        1418,
        1347,
        "asa-syslog",
    )
    assert lines_of(mm, inside) and lines_of(mm, SYSLOG)
    assert "1418-byte packets vs a 1347-byte tunnel" in doc["verdict"]


def test_plot_points_are_bounded_and_keep_every_large_packet(monkeypatch):
    import numpy as np

    import labkit.analyze.plotdata as plotdata

    monkeypatch.setattr(plotdata, "MAX_POINTS", 1000)
    pts = plotdata._Points(1347)
    for k in range(50):  # 50 chunks of 1000 packets, every 100th one 1418 bytes
        t = np.arange(1000) + k * 1000.0
        size = np.where(np.arange(1000) % 100 == 0, 1418, 100)
        addr = np.full(1000, 5, np.uint64)
        pts.add(t, size, addr, addr + 1, addr[:1])
    rows = pts.rows()
    assert pts.total == 50_000 and pts.thinned
    assert np.count_nonzero(rows.s == 1418) == 500  # all of them
    small = rows.t[rows.s == 100]
    assert 0 < len(small) <= 1000
    assert small.min() < 1000 and small.max() > 48_000  # spread over the whole capture
    assert np.all(np.diff(rows.t) >= 0)


def test_year_less_syslog_is_dated_by_the_capture_then_dart_then_now():
    """The judging stage's choice of a year for BSD syslog stamps, in order of trust."""
    from labkit.analyze.sources import read_dart
    from labkit.analyze.timeline import syslog_year

    dart = [("dart.txt", read_dart(str(DART))[1])]
    capture_2019 = calendar.timegm((2019, 6, 1, 0, 0, 0))
    assert syslog_year(capture_2019, dart, 0.0) == (2019, "the year of the capture")
    assert syslog_year(None, dart, 0.0) == (2022, "the year of the DART log")
    now_2030 = calendar.timegm((2030, 1, 1, 0, 0, 0))
    year, origin = syslog_year(None, [], now_2030)
    assert year == 2030 and origin.startswith("the current year")
