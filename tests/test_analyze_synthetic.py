"""Failure captures built with Scapy: each failure is found, with the right numbers and filters."""

from __future__ import annotations

import pytest
from scapy.utils import PcapNgWriter, wrpcap

from labkit.analyze import AnalyzeOptions, analyze
from tests.helpers import synth
from tests.helpers.cli import labkit
from tests.helpers.findings import assert_filters_select_exactly_the_evidence, ids, one
from tests.helpers.tshark import requires_tshark


def write(tmp_path, name, pkts, ng=False):
    path = tmp_path / (name + (".pcapng" if ng else ".pcap"))
    if ng:
        with PcapNgWriter(str(path)) as w:
            for p in pkts:
                w.write(p)
    else:
        wrpcap(str(path), pkts)
    return path


@requires_tshark
@pytest.mark.parametrize("ng", [False, True])
def test_icmp_1347_and_the_sender_adapting_is_pmtud_working(tmp_path, ng):
    """1418-byte DF segments, ICMP 3/4 with MTU 1347, the server resends at 1347 within 0.1 s:
    with no VPN in the case that is path-MTU discovery doing its job, not a mismatch (the
    same capture beside an outside one where DTLS fails is: test_outside_and_inside...)."""
    path = write(tmp_path, "inside", synth.inside_icmp_ok(), ng)
    r = analyze([path])
    works = one(r, "pmtud-working")
    assert works.fields["mtu"] == 1347 and 0 < works.fields["adapted_after_s"] < 0.2
    icmp = one(r, "icmp-frag-needed")
    assert (icmp.fields["mtu"], icmp.fields["original_length"]) == (1347, 1418)
    assert icmp.fields["quoted_flows"] == [f"TCP {synth.SERVER}:80 -> {synth.POOL}:40000"]
    assert icmp.severity == "info"
    assert one(r, "syn-mss", direction="syn").fields["implied_mtu"] == 1418
    assert not {"mtu-mismatch", "oversized-df", "pmtud-black-hole"} & set(ids(r))
    assert r.exit_code == 0 and "path-MTU discovery works (path MTU 1347)" in r.verdict
    assert_filters_select_exactly_the_evidence(r)


@requires_tshark
def test_same_oversized_segment_retransmitted_without_icmp_is_a_black_hole(tmp_path):
    path = write(tmp_path, "bh", synth.inside_black_hole(copies=5))
    r = analyze([path])
    bh = one(r, "pmtud-black-hole")
    assert bh.fields["packet_size"] == 1418 and bh.fields["copies"] == 5
    assert len(bh.evidence) == 5
    mm = one(r, "mtu-mismatch")
    assert mm.fields == {"packet_size": 1418}  # no tunnel MTU in evidence: left out, not guessed
    assert_filters_select_exactly_the_evidence(r)
    # Told the tunnel MTU, the mismatch gets its second number and the DF sizes their finding.
    r2 = analyze([path], AnalyzeOptions(tunnel_mtu=1347))
    mm2 = one(r2, "mtu-mismatch")
    assert (mm2.fields["packet_size"], mm2.fields["tunnel_mtu"]) == (1418, 1347)
    assert one(r2, "pmtud-black-hole").fields["tunnel_mtu"] == 1347
    assert_filters_select_exactly_the_evidence(r2)


@pytest.mark.parametrize(
    "pkts",
    [
        pytest.param(synth.inside_ordinary_retransmission(), id="lost-once-then-acked"),
        pytest.param(
            synth.inside_black_hole(copies=4, acked_at_the_end=True), id="resent-thrice-then-acked"
        ),
        pytest.param(synth.inside_black_hole(copies=2), id="one-retransmission-only"),
    ],
)
def test_ordinary_retransmissions_are_not_black_holes(tmp_path, pkts):
    r = analyze([write(tmp_path, "x", pkts)])
    assert "pmtud-black-hole" not in ids(r) and "mtu-mismatch" not in ids(r)


@requires_tshark
def test_unanswered_dtls_and_reconnect(tmp_path):
    path = write(
        tmp_path, "outside", synth.outside_dtls_blocked(attempts=4, reconnect_after=30.0), ng=True
    )
    r = analyze([path])
    un = one(r, "dtls-unanswered")
    assert (un.fields["client"], un.fields["server"], un.fields["port"], un.fields["attempts"]) == (
        synth.CLIENT,
        synth.HEADEND,
        443,
        4,
    )
    rc = one(r, "vpn-reconnect")
    assert rc.fields["gap_s"] == 30.0 and rc.fields["server"] == synth.HEADEND
    assert "dtls-established" not in ids(r) and "mtu-mismatch" not in ids(r)
    assert r.files[0].capture_point == "outside"
    assert_filters_select_exactly_the_evidence(r)


@requires_tshark
def test_dtls_on_8443(tmp_path):
    path = write(
        tmp_path, "port", synth.outside_dtls_blocked(port=8443, attempts=3, reconnect_after=0)
    )
    r = analyze([path])
    port = one(r, "dtls-nondefault-port")
    assert port.fields["port"] == 8443 and port.severity == "warning"
    assert one(r, "dtls-unanswered").fields["attempts"] == 3
    assert_filters_select_exactly_the_evidence(r)


def test_answered_dtls_is_not_unanswered_and_healthy_is_clean(tmp_path):
    r = analyze([write(tmp_path, "ok", synth.outside_dtls_ok())])
    est = one(r, "dtls-established")
    assert est.fields["version"] == "0x0100" and est.fields["hello_verify_request"] is True
    assert r.exit_code == 0 and [i for i in ids(r) if i != "syn-mss"] == ["dtls-established"]


def test_dtls_absent_needs_a_known_headend(tmp_path):
    pkts = [
        p
        for p in synth.outside_dtls_blocked(attempts=1, reconnect_after=0)
        if not p.haslayer("UDP")
    ]
    path = write(tmp_path, "tls-only", pkts)
    assert "dtls-absent" not in ids(analyze([path]))
    r = analyze([path], AnalyzeOptions(headends=(synth.HEADEND,)))
    absent = one(r, "dtls-absent")
    assert absent.fields["client"] == synth.CLIENT and [e.frame for e in absent.evidence] == [4]


@requires_tshark
def test_outside_and_inside_are_one_case(tmp_path):
    """Outside shows DTLS failing, inside the 1418 vs 1347: evidence names each file's frames."""
    outside = write(tmp_path, "outside", synth.outside_dtls_blocked(), ng=True)
    inside = write(tmp_path, "inside", synth.inside_icmp_ok())
    r = analyze([outside, inside])
    points = {f.path: f.capture_point for f in r.files}
    assert points == {str(outside): "outside", str(inside): "inside"}
    assert "no inner traffic here" in r.files[0].cannot_show
    assert {"dtls-unanswered", "vpn-reconnect", "mtu-mismatch"} <= set(ids(r))
    mm = one(r, "mtu-mismatch")
    assert {e.file for e in mm.evidence} == {str(inside)}
    assert "adapter is at the DTLS MTU" in mm.summary  # DTLS failed in the same case
    assert_filters_select_exactly_the_evidence(r)
    proc = labkit("analyze", str(outside), str(inside))
    assert proc.returncode == 1 and proc.stdout.startswith(
        "VERDICT: PROBLEM: MTU mismatch confirmed"
    )


def test_a_chunk_without_tcp_after_tls_sessions(tmp_path):
    """Sessions known, then a buffer of only UDP: the shared flow groups are empty (a crash
    found by a hostile pcapng)."""
    from labkit.pcapio import reader

    pkts = synth.outside_dtls_blocked(attempts=2, reconnect_after=0)
    udp_tail = [
        synth.udp(synth.CLIENT, "192.0.2.99", 5000, 53, b"\x00" * 40, 100.0 + i) for i in range(400)
    ]
    path = write(tmp_path, "udp-tail", pkts + udp_tail)
    small = reader.CHUNK_BYTES
    try:
        reader.CHUNK_BYTES = 4096
        reader.Capture.chunks.__defaults__ = (4096,)
        r = analyze([path])
    finally:
        reader.CHUNK_BYTES = small
        reader.Capture.chunks.__defaults__ = (small,)
    assert one(r, "dtls-unanswered").fields["attempts"] == 2
