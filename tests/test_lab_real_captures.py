"""The committed real captures (pcaps/real/<case>/): tshark, the independent judge, must see
in the bytes what each case's case.json and README say the software did."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit import mtu
from labkit.lab.vpn import BASE_MTU, DTLS_CIPHER, DTLS_VERSION
from tests.helpers.cli import labkit
from tests.helpers.labenv import requires_ocserv, unique
from tests.helpers.paths import ROOT
from tests.helpers.tshark import requires_tshark, tshark_fields, tshark_frames

REAL = ROOT / "pcaps" / "real"
CASES = (
    "dtls-allowed",
    "dtls-blocked-icmp-allowed",
    "dtls-blocked-icmp-blocked",
    "dtls-nondefault-port-blocked",
)
BLOCKED = CASES[1:]
HEADEND, CLIENT, SERVER = "198.18.2.2", "198.18.1.2", "198.18.3.2"


def _case(name: str) -> tuple[Path, dict]:
    folder = REAL / name
    return folder, json.loads((folder / "case.json").read_text())


@pytest.mark.parametrize("name", CASES)
def test_case_folder_is_complete_and_small(name: str) -> None:
    folder, facts = _case(name)
    for f in (
        "outside.pcap",
        "tunnel.pcap",
        "inside.pcap",
        "sslkeylog.txt",
        "README.md",
        "openconnect.log",
        "ocserv.log",
    ):
        assert (folder / f).is_file(), f
    for f in ("outside.pcap", "tunnel.pcap", "inside.pcap"):
        assert (folder / f).stat().st_size < 300_000
    readme = (folder / "README.md").read_text()
    assert f"labkit lab record {name}" in readme
    for key in ("x_cstp_mtu", "x_dtls_mtu", "client_tun_mtu", "headend_tun_mtu"):
        assert f"| {facts['headend'][key]} |" in readme
    assert facts["duration_s"] < 90


@pytest.mark.parametrize("name", CASES)
def test_the_software_showed_the_seeds_numbers(name: str) -> None:
    """ocserv announced 1418 in both headers from its 1484 base (DTLS 1.2 AES256-GCM), the
    client's tun came up at 1418; where DTLS is blocked the head-end's own tun went to 1347."""
    _, facts = _case(name)
    h = facts["headend"]
    assert h["x_cstp_mtu"] == h["x_dtls_mtu"] == h["client_tun_mtu"] == mtu.dtls_mtu() == 1418
    assert h["x_cstp_base_mtu"] == BASE_MTU == mtu.dtls_base_mtu(1418, DTLS_CIPHER, DTLS_VERSION)
    assert h["x_dtls12_ciphersuite"] == DTLS_CIPHER
    assert h["x_dtls_port"] == facts["topology"]["dtls_port"]
    blocked = facts["topology"]["block_dtls"]
    assert h["headend_tun_mtu"] == (mtu.tls_mtu_asa() if blocked else 1418)
    assert h["dtls_established"] is not blocked


@requires_tshark
@pytest.mark.parametrize("name", CASES)
def test_decrypted_connect_response_matches_what_openconnect_logged(name: str) -> None:
    folder, facts = _case(name)
    keylog = ("-o", f"tls.keylog_file:{folder / 'sslkeylog.txt'}")
    rows = tshark_fields(
        folder / "outside.pcap",
        'http.response.code == 200 && http.response.line contains "X-CSTP-MTU"',
        "http.response.line",
        extra=keylog,
    )
    assert len(rows) == 1
    lines = rows[0][0].replace("\\r\\n", "").split(",")  # tshark shows each CRLF as \r\n
    headers = dict(h.strip().split(": ", 1) for h in lines if ": " in h)
    assert int(headers["X-CSTP-MTU"]) == facts["headend"]["x_cstp_mtu"]
    assert int(headers["X-DTLS-MTU"]) == facts["headend"]["x_dtls_mtu"]
    assert headers["X-DTLS-Session-ID"] == facts["headend"]["x_dtls_session_id"]
    assert int(headers["X-CSTP-Base-MTU"]) == facts["headend"]["x_cstp_base_mtu"]
    assert int(headers["X-DTLS-Port"]) == facts["topology"]["dtls_port"]
    assert headers["X-DTLS12-CipherSuite"] == facts["headend"]["x_dtls12_ciphersuite"]


@requires_tshark
@pytest.mark.parametrize("name", CASES)
def test_tunnel_syn_mss_is_the_client_tun_mtu_minus_40(name: str) -> None:
    folder, facts = _case(name)
    rows = tshark_fields(
        folder / "tunnel.pcap", "tcp.flags.syn == 1 && tcp.flags.ack == 0", "tcp.options.mss_val"
    )
    assert rows == [[str(mtu.mss_for_mtu(facts["headend"]["client_tun_mtu"]))]]


@requires_tshark
def test_dtls_allowed_is_a_resumed_dtls_12_session() -> None:
    folder, facts = _case("dtls-allowed")
    rows = tshark_fields(
        folder / "outside.pcap", "dtls.handshake.type == 2", "ip.src", "dtls.record.version"
    )
    assert rows and rows[0][0] == HEADEND and rows[0][1].startswith("0xfefd")
    assert tshark_frames(folder / "inside.pcap", "icmp.type == 3") == []
    assert facts["headend"]["client_tun_mtu"] == facts["headend"]["headend_tun_mtu"]
    assert facts["download"]["completed"]


@requires_tshark
@pytest.mark.parametrize("name", BLOCKED)
def test_dtls_blocked_cases_show_unanswered_client_hellos(name: str) -> None:
    """openconnect sends four DTLS 1.2 ClientHellos to the announced port, then stays on CSTP."""
    folder, facts = _case(name)
    port = facts["topology"]["dtls_port"]
    if port != 443:  # tshark dissects DTLS on 443 only unless told
        extra: tuple[str, ...] = ("-d", f"udp.port=={port},dtls")
    else:
        extra = ()
    hellos = tshark_fields(
        folder / "outside.pcap",
        "dtls.handshake.type == 1",
        "ip.src",
        "udp.dstport",
        "dtls.record.version",
        extra=extra,
    )
    assert hellos == [[CLIENT, str(port), "0xfefd"]] * 4
    assert tshark_frames(folder / "outside.pcap", f"udp && ip.src == {HEADEND}") == []
    assert (
        facts["headend"]["client_tun_mtu"]
        > facts["headend"]["headend_tun_mtu"]
        == mtu.tls_mtu_asa()
    )


@requires_tshark
def test_icmp_allowed_the_server_learns_1347_and_the_download_completes() -> None:
    folder, facts = _case("dtls-blocked-icmp-allowed")
    tun = facts["headend"]["client_tun_mtu"]
    icmp = tshark_fields(
        folder / "inside.pcap",
        "icmp.type == 3 && icmp.code == 4",
        "frame.number",
        "icmp.mtu",
        "ip.len",
    )
    assert icmp and {r[1] for r in icmp} == {str(mtu.tls_mtu_asa())}
    assert {r[2].split(",")[1] for r in icmp} == {str(tun)}  # it quotes the dropped packet
    # one ICMP per segment of the first flight; after the last, the server resends at 1347
    last_icmp = int(icmp[-1][0])
    later = tshark_fields(
        folder / "inside.pcap",
        f"frame.number > {last_icmp} && ip.src == {SERVER} && tcp.len > 0 && !icmp",
        "ip.len",
    )
    assert later and max(int(r[0]) for r in later) == mtu.tls_mtu_asa()
    assert facts["download"]["completed"]


@requires_tshark
def test_icmp_blocked_the_server_retransmits_into_a_black_hole() -> None:
    folder, facts = _case("dtls-blocked-icmp-blocked")
    tun = facts["headend"]["client_tun_mtu"]
    assert tshark_frames(folder / "inside.pcap", "icmp") == []
    retrans = tshark_fields(
        folder / "inside.pcap",
        f"tcp.analysis.retransmission && ip.src == {SERVER}",
        "ip.len",
        "ip.flags.df",
    )
    assert len(retrans) >= 2 and all(r == [str(tun), "1"] for r in retrans)
    delivered = tshark_frames(folder / "tunnel.pcap", f"ip.src == {SERVER} && tcp.len > 0")
    assert delivered == []  # not one data segment reached the client
    assert not facts["download"]["completed"]
    assert facts["headend"]["dropped"]["headend"]["icmp blocked"] >= len(retrans)


@requires_ocserv
def test_record_makes_a_case_and_refuses_to_overwrite(tmp_path: Path) -> None:
    lab = unique("rec")
    proc = labkit("lab", "record", "dtls-allowed", "-o", str(tmp_path), "--lab", lab, timeout=90)
    assert proc.returncode == 0, proc.stderr
    facts = json.loads((tmp_path / "dtls-allowed" / "case.json").read_text())
    assert facts["headend"]["dtls_established"] is True
    assert facts["measured"]["dtls_records_from_headend"] > 0
    again = labkit("lab", "record", "dtls-allowed", "-o", str(tmp_path), "--lab", lab)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert not Path("/run/labkit", lab).exists()


# --- the analyzer's verdict on each real case -------------------------------------------------


def _analyze(name: str) -> tuple[int, dict]:
    folder = REAL / name
    proc = labkit(
        "analyze",
        *(str(folder / f) for f in ("outside.pcap", "tunnel.pcap", "inside.pcap")),
        "--format",
        "json",
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _by_id(report: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in report["findings"]:
        out.setdefault(f["id"], []).append(f)
    return out


def _evidence_matches_filters(report: dict) -> None:
    """Every evidence frame is one the finding's Wireshark filter selects (tshark judges)."""
    for finding in report["findings"]:
        files = {e["file"] for e in finding["evidence"]}
        for path in files:
            frames = {e["frame"] for e in finding["evidence"] if e["file"] == path}
            assert frames <= set(tshark_frames(path, finding["wireshark_filter"])), finding["id"]


@requires_tshark
def test_analyzer_finds_no_problem_when_dtls_works() -> None:
    rc, report = _analyze("dtls-allowed")
    found = _by_id(report)
    assert rc == 0 and report["problem"] is False
    [est] = found["dtls-established"]
    assert (est["version"], est["port"]) == ("0xfefd", 443)
    assert not {"mtu-mismatch", "pmtud-black-hole", "dtls-unanswered"} & found.keys()
    _evidence_matches_filters(report)


@requires_tshark
@pytest.mark.parametrize("name", ["dtls-blocked-icmp-allowed", "dtls-nondefault-port-blocked"])
def test_analyzer_confirms_the_mismatch_when_icmp_gets_through(name: str) -> None:
    _, facts = _case(name)
    rc, report = _analyze(name)
    found = _by_id(report)
    assert rc == 1 and report["problem"] is True
    [unanswered] = found["dtls-unanswered"]
    assert unanswered["attempts"] == facts["measured"]["dtls_client_hellos"] == 4
    assert unanswered["port"] == facts["topology"]["dtls_port"]
    [mismatch] = found["mtu-mismatch"]
    assert mismatch["packet_size"] == facts["headend"]["client_tun_mtu"] == 1418
    assert mismatch["tunnel_mtu"] == mtu.tls_mtu_asa() == 1347
    assert {f["mtu"] for f in found["icmp-frag-needed"]} == {mtu.tls_mtu_asa()}
    assert "pmtud-black-hole" not in found
    _evidence_matches_filters(report)


@requires_tshark
def test_analyzer_finds_the_black_hole_when_icmp_is_blocked() -> None:
    rc, report = _analyze("dtls-blocked-icmp-blocked")
    found = _by_id(report)
    assert rc == 1
    assert {"dtls-unanswered", "mtu-mismatch", "pmtud-black-hole"} <= found.keys()
    assert "icmp-frag-needed" not in found
    _evidence_matches_filters(report)


@requires_tshark
def test_analyzer_names_the_nondefault_dtls_port() -> None:
    _, report = _analyze("dtls-nondefault-port-blocked")
    [port] = _by_id(report)["dtls-nondefault-port"]
    assert (port["port"], port["established"]) == (8443, False)


@requires_tshark
@pytest.mark.parametrize("name", CASES)
def test_analyzer_with_the_key_log_reads_the_connect_headers(name: str) -> None:
    folder, facts = _case(name)
    proc = labkit(
        "analyze",
        str(folder / "outside.pcap"),
        "--keylog",
        str(folder / "sslkeylog.txt"),
        "--format",
        "json",
    )
    assert proc.returncode in (0, 1), proc.stderr
    [connect] = _by_id(json.loads(proc.stdout))["cstp-connect"]
    h = facts["headend"]
    assert (connect["x_cstp_mtu"], connect["x_dtls_mtu"], connect["x_cstp_base_mtu"]) == (
        h["x_cstp_mtu"],
        h["x_dtls_mtu"],
        h["x_cstp_base_mtu"],
    )
    assert connect["x_dtls_port"] == facts["topology"]["dtls_port"]
