"""Captures taken with a short snap length: what was cut is named, never read as absence.

Customers' captures often come from ``tcpdump -s 68`` (old tcpdump's default) or a switch's
truncating mirror port. Every IP header is kept, so sizes and DF are judged, but a SYN's MSS
option, the first bytes of a TLS or DTLS record and an ICMP error's quote may be gone. The cuts
here are editcap's (``editcap -s N``), and tshark says which frames were cut.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from labkit.analyze import analyze
from labkit.analyze.report import Report
from tests.helpers.paths import ROOT
from tests.helpers.tshark import requires_tshark, tshark_frames

pytestmark = requires_tshark

SCENARIOS = ROOT / "pcaps" / "scenarios"
REGRESSIONS = ROOT / "tests" / "regressions"
DTLS_BLOCKED = SCENARIOS / "dtls-blocked-icmp-blocked" / "outside.pcapng"
PMTUD_IGNORED = REGRESSIONS / "pmtud-ignored-1492.pcap"


def cut(src: Path, snaplen: int, tmp_path: Path) -> Path:
    out = tmp_path / f"{src.stem}.s{snaplen}.pcap"
    subprocess.run(
        ["editcap", "-F", "pcap", "-s", str(snaplen), str(src), str(out)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return out


def verdicts(report: Report) -> set[tuple[str, str | None]]:
    return {(f.id, f.severity) for f in report.findings}


def snap_reasons(report: Report) -> dict[str, int]:
    by_reason = report.files[0].counts["not_inspected_by_reason"]
    return {k: n for k, n in by_reason.items() if k.startswith("snap length cut")}


def test_dtls_cut_by_the_snap_length_is_not_judged_and_says_why(tmp_path: Path) -> None:
    whole = analyze([DTLS_BLOCKED])
    assert ("dtls-unanswered", "error") in verdicts(whole)
    short = cut(DTLS_BLOCKED, 54, tmp_path)
    report = analyze([short])
    assert not [f for f in report.findings if f.severity == "error"]
    # tshark: the UDP datagrams whose payload the cut reached, frame by frame.
    cut_udp = tshark_frames(short, "udp && frame.cap_len < frame.len && udp.length > 8")
    assert cut_udp
    reasons = snap_reasons(report)
    assert reasons["snap length cut the UDP payload's first bytes (DTLS unread)"] == len(cut_udp)
    fr = report.files[0]
    assert fr.capture_point == "unknown"
    assert any("snap length cut" in line and "UDP" in line for line in fr.cannot_tell)
    assert "not inspected" in report.verdict and "snap length" in report.verdict


def test_an_icmp_whose_quote_was_cut_is_no_black_hole(tmp_path: Path) -> None:
    """The router's ICMP reached the sender, but its quote is gone: the sender got an ICMP
    for some flow, so "no ICMP came back" (a black hole) cannot be said, and the diagnosis
    names the ICMP it saw rather than denying it."""
    short = cut(PMTUD_IGNORED, 54, tmp_path)
    report = analyze([short])
    assert "pmtud-black-hole" not in {f.id for f in report.findings}
    icmp = tshark_frames(short, "icmp.type == 3 && icmp.code == 4")
    assert icmp
    assert snap_reasons(report)[
        "snap length cut an ICMP error's quoted header (its flow unread)"
    ] == len(icmp)
    assert "no ICMP frag-needed" not in report.diagnosis.headline
    assert "ICMP frag-needed (MTU 1492)" in report.diagnosis.headline
    assert any(f"{len(icmp)} ICMP error(s)" in line for line in report.files[0].cannot_tell)


def test_syn_options_cut_are_counted_per_syn(tmp_path: Path) -> None:
    short = cut(PMTUD_IGNORED, 54, tmp_path)
    report = analyze([short])
    syns = tshark_frames(short, "tcp.flags.syn == 1 && tcp.hdr_len > 20")
    assert syns
    assert report.files[0].counts["syn_mss"] == {}
    assert snap_reasons(report)["snap length cut a SYN's TCP options (MSS unread)"] == len(syns)


@pytest.mark.parametrize(
    "path",
    [
        DTLS_BLOCKED,
        SCENARIOS / "healthy" / "outside.pcapng",
        SCENARIOS / "dtls-nondefault-port" / "headend-inside.pcap",
        PMTUD_IGNORED,
        REGRESSIONS / "pmtud-working-1492.pcap",
        REGRESSIONS / "pmtud-udp-working-1400.pcap",
        REGRESSIONS / "icmp-bogus-mtus.pcap",
    ],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_a_snap_length_that_keeps_the_headers_changes_no_verdict(
    path: Path, tmp_path: Path
) -> None:
    """128 bytes keep every header labkit reads (IPv6, TCP options, a DTLS record header, an
    ICMPv6 quote): the findings and counts are those of the whole capture, and no frame is
    said to be cut."""
    whole, short = analyze([path]), analyze([cut(path, 128, tmp_path)])
    assert verdicts(short) == verdicts(whole)
    for key in ("syn_mss", "synack_mss", "icmp_frag_needed_mtu", "dtls_client_hellos_by_version"):
        assert short.files[0].counts[key] == whole.files[0].counts[key]
    assert snap_reasons(short) == {}
    assert short.files[0].capture_point == whole.files[0].capture_point
