"""The truth set on the public captures: verdicts, fields, and every filter judged by tshark."""

from __future__ import annotations

import json

import pytest

from labkit.analyze import analyze
from tests.helpers.cli import labkit
from tests.helpers.findings import assert_filters_select_exactly_the_evidence, ids, one
from tests.helpers.paths import PUBLIC
from tests.helpers.tshark import requires_tshark

pytestmark = requires_tshark


@pytest.fixture(scope="module")
def reports():
    names = [
        "anyconnect-vpn.pcap",
        "dtls-0x0100-hvr-retrans.pcapng",
        "dtls1_2.pcap",
        "icmp6-packet-too-big.pcap",
        "tcp-mss-fast-retransmit.pcap",
        "tls12-decryption.pcap",
    ]
    return {n: analyze([PUBLIC / n]) for n in names}


def test_anyconnect_dtls_0x0100_established_after_hello_verify(reports):
    r = reports["anyconnect-vpn.pcap"]
    est = one(r, "dtls-established")
    assert est.fields["version"] == "0x0100" and est.fields["port"] == 443
    assert est.fields["hello_verify_request"] is True and est.fields["resumed"] is True
    assert est.fields["cipher"] == "0x0039"  # DHE-RSA-AES256-SHA, per SOURCES.md
    assert [e.frame for e in est.evidence] == [413, 439, 440, 465]
    assert "mtu-mismatch" not in ids(r) and "vpn-reconnect" not in ids(r)
    assert r.exit_code == 0 and r.verdict.startswith("no problem found")
    assert r.files[0].capture_point == "outside"


def test_dtls_established_despite_retransmitted_client_hello(reports):
    r = reports["dtls-0x0100-hvr-retrans.pcapng"]
    est = one(r, "dtls-established")
    assert est.fields["version"] == "0x0100"
    assert est.fields["retransmitted_hellos"] == 2 and est.fields["attempts"] == 4
    assert "dtls-unanswered" not in ids(r) and r.exit_code == 0


def test_dtls_1_2_test_server_is_other_dtls(reports):
    # A DTLS 1.2 test server on UDP 4400: no TLS session beside it, standard record version,
    # so not a VPN tunnel. It is described; no VPN finding (port, unanswered) is drawn from it.
    r = reports["dtls1_2.pcap"]
    other = one(r, "dtls-other")
    assert (other.fields["version"], other.fields["port"], other.fields["established"]) == (
        "0xfefd",
        4400,
        True,
    )
    # The fragmented ClientHello counts once per transmission: frames 1 and 4.
    assert other.fields["attempts"] == 2
    assert not {"dtls-established", "dtls-nondefault-port", "dtls-unanswered"} & set(ids(r))
    assert r.files[0].counts["dtls_flows_other"] == 1
    assert r.exit_code == 0


def test_icmp6_packet_too_big_quoting_a_packet_that_fits_is_bogus(reports):
    """MTU 1280 quoting a 52-byte packet: that packet met no 1280-byte limit, so the MTU is not
    taken as one (a crafted Packet Too Big), and nothing is a problem."""
    r = reports["icmp6-packet-too-big.pcap"]
    bogus = one(r, "icmp-bogus-mtu")
    assert bogus.fields["mtu"] == 1280 and bogus.fields["ip_version"] == 6
    assert "52-byte packet already fits" in bogus.fields["reason"]
    assert "icmp-frag-needed" not in ids(r)
    assert "mtu-mismatch" not in ids(r) and "oversized-df" not in ids(r)
    assert r.files[0].counts["icmpv6_packet_too_big_mtu"] == {"1280": 1}  # still counted
    assert r.exit_code == 0


def test_mss_1452_1430_and_a_retransmission_that_is_not_a_black_hole(reports):
    r = reports["tcp-mss-fast-retransmit.pcap"]
    assert one(r, "syn-mss", direction="syn").fields["mss"] == 1452
    assert one(r, "syn-mss", direction="syn-ack").fields["mss"] == 1430
    assert ids(r) == ["syn-mss", "syn-mss"]
    assert r.exit_code == 0


def test_never_a_mismatch_on_healthy_public_captures(reports):
    for name, r in reports.items():
        assert "mtu-mismatch" not in ids(r), name
        assert "pmtud-black-hole" not in ids(r), name


@pytest.mark.parametrize(
    "name",
    [
        "anyconnect-vpn.pcap",
        "dtls-0x0100-hvr-retrans.pcapng",
        "dtls1_2.pcap",
        "icmp6-packet-too-big.pcap",
        "tcp-mss-fast-retransmit.pcap",
    ],
)
def test_every_filter_selects_exactly_its_evidence(reports, name):
    assert_filters_select_exactly_the_evidence(reports[name])


def test_cli_json_is_the_contract():
    proc = labkit("analyze", str(PUBLIC / "anyconnect-vpn.pcap"), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["problem"] is False and doc["files"][0]["capture_point"] == "outside"
    est = [f for f in doc["findings"] if f["id"] == "dtls-established"][0]
    assert {"id", "severity", "summary", "evidence", "wireshark_filter", "version", "port"} <= set(
        est
    )
    assert est["evidence"][0] == {
        "file": str(PUBLIC / "anyconnect-vpn.pcap"),
        "frame": 413,
        "time": est["evidence"][0]["time"],
    }


def test_cli_text_verdict_first():
    # The bogus-MTU finding is info: listed once info findings are asked for.
    proc = labkit("analyze", str(PUBLIC / "icmp6-packet-too-big.pcap"), "--min-severity", "info")
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("VERDICT: no problem found") and "no ICMP" not in first
    assert "wireshark filter: (icmpv6.type == 2 && icmpv6.mtu == 1280)" in proc.stdout
