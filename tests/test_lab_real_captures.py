"""The committed real captures (pcaps/real/<case>/): tshark, the independent judge, must see
in the bytes what each case's case.json and README say the software did."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit import mtu
from tests.helpers.cli import labkit
from tests.helpers.labenv import requires_ocserv, unique
from tests.helpers.paths import ROOT
from tests.helpers.tshark import requires_tshark, tshark_fields, tshark_frames

REAL = ROOT / "pcaps" / "real"
CASES = ("dtls-allowed", "dtls-blocked-icmp-allowed", "dtls-blocked-icmp-blocked")
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


@requires_tshark
@pytest.mark.parametrize("name", CASES)
def test_tunnel_syn_mss_is_the_client_tun_mtu_minus_40(name: str) -> None:
    folder, facts = _case(name)
    rows = tshark_fields(
        folder / "tunnel.pcap", "tcp.flags.syn == 1 && tcp.flags.ack == 0", "tcp.options.mss_val"
    )
    assert rows == [[str(mtu.mss_for_mtu(facts["headend"]["client_tun_mtu"]))]]


@requires_tshark
def test_dtls_allowed_is_a_legacy_dtls_session() -> None:
    folder, facts = _case("dtls-allowed")
    rows = tshark_fields(
        folder / "outside.pcap", "dtls.handshake.type == 2", "ip.src", "dtls.record.version"
    )
    assert rows and rows[0][0] == HEADEND and rows[0][1].startswith("0x0100")
    assert tshark_frames(folder / "inside.pcap", "icmp.type == 3") == []
    assert facts["headend"]["client_tun_mtu"] == facts["headend"]["headend_tun_mtu"]
    assert facts["download"]["completed"]


@requires_tshark
@pytest.mark.parametrize("name", CASES[1:])
def test_dtls_blocked_cases_show_unanswered_client_hellos(name: str) -> None:
    folder, facts = _case(name)
    hellos = tshark_fields(
        folder / "outside.pcap", "dtls.handshake.type == 1", "ip.src", "dtls.record.version"
    )
    assert len(hellos) >= 2 and all(r == [CLIENT, "0x0100"] for r in hellos)
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
    assert (est["version"], est["port"]) == ("0x0100", 443)
    assert not {"mtu-mismatch", "pmtud-black-hole", "dtls-unanswered"} & found.keys()
    _evidence_matches_filters(report)


@requires_tshark
def test_analyzer_confirms_the_mismatch_when_icmp_gets_through() -> None:
    _, facts = _case("dtls-blocked-icmp-allowed")
    rc, report = _analyze("dtls-blocked-icmp-allowed")
    found = _by_id(report)
    assert rc == 1 and report["problem"] is True
    [unanswered] = found["dtls-unanswered"]
    assert unanswered["attempts"] == facts["measured"]["dtls_client_hellos"]
    [mismatch] = found["mtu-mismatch"]
    assert mismatch["packet_size"] == facts["headend"]["client_tun_mtu"]
    assert mismatch["tunnel_mtu"] == mtu.tls_mtu_asa()
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
