"""Probes: parsers on real and literal bytes, then pmtu/mss/dtls against the real lab."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.utils import rdpcap, wrpcap

from labkit import mtu
from labkit.lab.probe import (
    DtlsAnswer,
    EchoReply,
    FragNeeded,
    Reset,
    SynAck,
    Unreachable,
    echo_request,
    parse_dtls_answer,
    parse_icmp,
    parse_tcp_answer,
    tcp_options_mss,
    tcp_syn,
)
from tests.helpers.cli import labkit
from tests.helpers.labenv import lab, requires_lab, requires_ocserv, unique
from tests.helpers.paths import ROOT
from tests.helpers.tshark import requires_tshark, tshark_fields

CONFIGS = ROOT / "configs" / "lab"


# --- parsers (no root) ----------------------------------------------------------------------


def test_dtls_answer_parser_on_a_real_anyconnect_capture(public_captures: Path) -> None:
    packets = rdpcap(str(public_captures / "anyconnect-vpn.pcap"))
    hvr = bytes(packets[438][UDP].payload)  # frame 439: the head-end's first answer
    assert parse_dtls_answer(hvr) == DtlsAnswer(
        "Handshake", "0x0100", "DTLS 0x0100 (Cisco legacy, DTLS1_BAD_VER)", "HelloVerifyRequest"
    )
    server_hello = parse_dtls_answer(bytes(packets[464][UDP].payload))
    assert server_hello is not None and server_hello.handshake == "ServerHello"
    assert parse_dtls_answer(b"\x16\x03\x03\x00\x05hello") is None  # TLS, not DTLS
    assert parse_dtls_answer(b"\x16\x01\x00") is None  # truncated


def test_tcp_answer_parser_reads_the_synack_mss_tshark_reads(public_captures: Path) -> None:
    path = public_captures / "tcp-mss-fast-retransmit.pcap"
    synack = bytes(rdpcap(str(path))[1][IP])
    [[mss]] = tshark_fields(path, "frame.number == 2", "tcp.options.mss_val")
    assert parse_tcp_answer(synack, "192.168.0.27", 80, 50368) == SynAck(int(mss))
    assert parse_tcp_answer(synack, "192.168.0.27", 80, 50369) is None  # not our port
    rst = bytearray(synack)
    rst[20 + 13] = 0x14
    assert parse_tcp_answer(bytes(rst), "192.168.0.27", 80, 50368) == Reset()


def test_tcp_options_parser_is_bounded_on_bad_options() -> None:
    assert tcp_options_mss(b"\x01\x01\x02\x04\x05\x6a") == 1386
    assert tcp_options_mss(b"\x08\x00\x02\x04\x05\x6a") is None  # zero length: stop, no loop
    assert tcp_options_mss(b"\x02\x04\x05") is None


def _ipv4(src: str, dst: str, proto: int, payload: bytes, df: bool = True) -> bytes:
    """Test-local IPv4 header (checksum left 0: the parser does not check it)."""
    return (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(payload),
            1,
            0x4000 if df else 0,
            64,
            proto,
            0,
            socket.inet_aton(src),
            socket.inet_aton(dst),
        )
        + payload
    )


def test_icmp_parser_ties_errors_to_our_probe() -> None:
    probe = _ipv4("198.18.3.2", "198.18.1.2", 1, echo_request(0x1234, 7, 1418)[:1398])
    frag = _ipv4(
        "198.18.3.1", "198.18.3.2", 1, struct.pack("!BBHHH", 3, 4, 0, 0, 1347) + probe[:28]
    )
    assert parse_icmp(frag, 0x1234) == FragNeeded(7, 1347, "198.18.3.1", 1418)
    assert parse_icmp(frag, 0x4321) is None  # someone else's probe
    unreach = bytearray(frag)
    unreach[21] = 1
    assert parse_icmp(bytes(unreach), 0x1234) == Unreachable(7, 1, "198.18.3.1")
    reply = _ipv4("198.18.1.2", "198.18.3.2", 1, b"\x00\x00\x00\x00\x12\x34\x00\x07")
    assert parse_icmp(reply, 0x1234) == EchoReply(7, "198.18.1.2")
    assert parse_icmp(frag[:40], 0x1234) is None  # quote cut short


@requires_tshark
def test_crafted_syn_and_echo_are_valid_for_tshark(tmp_path: Path) -> None:
    syn = tcp_syn("198.18.1.2", "198.18.3.2", 40000, 8080, 1, mtu.mss_for_mtu(mtu.dtls_mtu()))
    echo = echo_request(1, 1, 1418)
    path = tmp_path / "p.pcap"
    wrpcap(
        str(path),
        [
            IP(src="198.18.1.2", dst="198.18.3.2", proto=6) / syn,
            IP(src="198.18.3.2", dst="198.18.1.2", proto=1, flags="DF") / echo,
        ],
    )
    extra = ("-o", "tcp.check_checksum:TRUE")
    rows = tshark_fields(path, "tcp", "tcp.options.mss_val", "tcp.checksum.status", extra=extra)
    assert rows == [["1378", "1"]]  # 1 = Good (0 Bad, 2 unverified)
    rows = tshark_fields(path, "icmp", "ip.len", "icmp.checksum.status", "icmp.type")
    assert rows == [["1418", "1", "8"]]


# --- against the real lab (root) ------------------------------------------------------------


def _probe_json(*args: str) -> tuple[int, dict]:
    proc = labkit("probe", *args, "--format", "json", timeout=60)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@requires_lab
def test_pmtu_from_server_to_client_finds_1347_by_icmp() -> None:
    with lab(unique("pm")) as name:
        rc, out = _probe_json(
            "pmtu", "198.18.1.2", "--from", "server", "--lab", name, "--timeout", "0.3"
        )
    assert rc == 0
    assert out["path_mtu"] == mtu.tls_mtu_asa(1380, "AES128-SHA") == 1347
    assert out["source"] == "icmp" and out["icmp_from"] == "198.18.3.1"
    assert len(out["steps"]) <= 6  # the ICMP's MTU is tried first: no long bisection


@requires_lab
def test_pmtu_black_hole_when_icmp_is_blocked() -> None:
    with lab(unique("bh"), "--block-icmp") as name:
        rc, out = _probe_json(
            "pmtu", "198.18.1.2", "--from", "server", "--lab", name, "--timeout", "0.25"
        )
        status = json.loads(labkit("lab", "status", "--lab", name, "--format", "json").stdout)
    assert rc == 1  # a black hole is a problem
    assert out["path_mtu"] == 1347 and out["source"] == "black-hole"
    assert out["icmp_mtu"] is None
    assert {s["outcome"] for s in out["steps"]} == {"fits", "lost"}
    # the head-end's filter really dropped its ICMP 3/4s
    assert status["nodes"]["headend"]["dropped"]["icmp blocked"] > 0


@contextlib.contextmanager
def _listener(ns: str, port: int) -> Iterator[None]:
    code = (
        "import socket,time\n"
        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('0.0.0.0', {port})); s.listen(); print('ok', flush=True); time.sleep(30)"
    )
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, "python3", "-c", code], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ok"
        yield
    finally:
        proc.kill()
        proc.wait()


@requires_lab
def test_mss_probe_sees_the_server_mss_and_a_clamp() -> None:
    with lab(unique("ms"), "--clamp-mss", str(mtu.mss_for_mtu(mtu.tls_mtu_asa()))) as name:
        with _listener(f"lk-{name}-server", 8080):
            rc, out = _probe_json("mss", "198.18.3.2:8080", "--from", "client", "--lab", name)
            rc_closed, closed = _probe_json(
                "mss", "198.18.3.2:8081", "--from", "client", "--lab", name
            )
    assert rc == 0 and out["syn_mss"] == 1378 and out["answer"] == "syn-ack"
    assert out["synack_mss"] == 1307 and out["clamped"] is True
    assert rc_closed == 1 and closed["answer"] == "reset"
    with lab(unique("mn")) as name:
        with _listener(f"lk-{name}-server", 8080):
            _, plain = _probe_json("mss", "198.18.3.2:8080", "--from", "client", "--lab", name)
    assert plain["synack_mss"] == mtu.mss_for_mtu(1500) and plain["clamped"] is False


def test_probe_usage_errors_are_one_line() -> None:
    for args in (
        ("mss", "198.18.3.2"),
        ("pmtu", "nohost"),
        ("pmtu", "::1"),
        ("dtls", "198.18.2.2:x"),
        ("pmtu", "198.18.1.2", "--timeout", "0"),
    ):
        proc = labkit("probe", *args)
        assert proc.returncode == 2, (args, proc.stdout)
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


# --- DTLS against ocserv (one lab per case, reused by its tests) -----------------------------


def _ocserv_lab(stem: str, *flags: str):
    name = unique(stem)
    with lab(name, "--topology", str(CONFIGS / "ocserv-dtls-open.yaml"), *flags):
        status = json.loads(labkit("lab", "status", "--lab", name, "--format", "json").stdout)
        yield name, status


@pytest.fixture(scope="module")
def ocserv_open():
    yield from _ocserv_lab("oo")


@pytest.fixture(scope="module")
def ocserv_blocked():
    yield from _ocserv_lab("ob", "--block-dtls")


def _dtls_from_client(lab_name: str, session_id: str, *, timeout: float, tries: int):
    return _probe_json(
        "dtls",
        "198.18.2.2",
        "--from",
        "client",
        "--lab",
        lab_name,
        "--session-id",
        session_id,
        "--timeout",
        str(timeout),
        "--tries",
        str(tries),
    )


@requires_ocserv
def test_ocserv_lab_is_a_real_anyconnect_session(ocserv_open) -> None:
    _, status = ocserv_open
    info = status["headend_info"]
    # ocserv announces one MTU in both, the seed's 1418: its `mtu` base less the DTLS 1.2
    # AES256-GCM overhead (labkit.mtu's arithmetic, not written here by hand)
    assert info["x_cstp_mtu"] == info["x_dtls_mtu"] == mtu.dtls_mtu() == 1418
    assert info["x_cstp_base_mtu"] == mtu.dtls_base_mtu(1418, "AES256-GCM-SHA384", "1.2") == 1484
    assert info["client_tun_mtu"] == max(info["x_cstp_mtu"], info["x_dtls_mtu"])
    assert info["x_dtls12_ciphersuite"] == "AES256-GCM-SHA384"
    assert status["tunnel_mtus"] == {"client": 1418, "headend": 1418}
    assert status["nodes"]["client"]["tunnel_addresses"][0].startswith("198.18.100.")
    assert status["nodes"]["headend"]["tunnel_addresses"]


@requires_ocserv
def test_dtls_probe_gets_ocserv_answer_on_an_open_path(ocserv_open) -> None:
    name, status = ocserv_open
    live = status["headend_info"]["x_dtls_session_id"]
    # ocserv ignores a hello for a session whose UDP it took over within the last 3-4 s
    # ("received UDP connection too soon", whole seconds): openconnect's own DTLS just did;
    # the doubling timer (sends at 0, 1, 3, 7 s) outlasts that.
    rc, out = _dtls_from_client(name, live, timeout=1.0, tries=4)
    assert rc == 0 and out["answered"] is True
    # ocserv resumes the session in the DTLS version it negotiated for it: DTLS 1.2
    assert out["version"] == "0xfefd" and out["handshake"] == "ServerHello"
    # ocserv stays silent for a session it does not know: "no answer" is not proof of a block
    rc, out = _dtls_from_client(name, os.urandom(32).hex(), timeout=0.3, tries=2)
    assert rc == 1 and out["answered"] is False


@requires_ocserv
def test_dtls_probe_gets_no_answer_when_the_router_drops_udp(ocserv_blocked) -> None:
    name, status = ocserv_blocked
    live = status["headend_info"]["x_dtls_session_id"]
    rc, out = _dtls_from_client(name, live, timeout=0.5, tries=3)
    assert rc == 1 and out["answered"] is False and out["attempts"] == 3
    assert out["refused"] is False
    assert status["headend_info"]["dtls_established"] is False
    after = json.loads(labkit("lab", "status", "--lab", name, "--format", "json").stdout)
    assert after["nodes"]["router"]["dropped"]["dtls blocked"] >= 2


@requires_ocserv
def test_ocserv_lab_reproduces_1418_announced_1347_carried() -> None:
    """The seed's numbers with real software (the shipped ocserv-dtls-blocked topology): 1418
    announced and on the client's tun, the head-end's own tun lowered to the TLS MTU by a
    smaller path MTU toward the client, which ocserv reads at its periodic check."""
    name = unique("seed")
    with lab(name, "--topology", str(CONFIGS / "ocserv-dtls-blocked.yaml")):
        status = json.loads(labkit("lab", "status", "--lab", name, "--format", "json").stdout)
        text = labkit("lab", "status", "--lab", name)
    info = status["headend_info"]
    assert info["x_cstp_mtu"] == info["x_dtls_mtu"] == mtu.dtls_mtu() == 1418
    assert mtu.tls_mtu_asa() == 1347
    assert status["tunnel_mtus"] == {"client": 1418, "headend": 1347}
    # the route that did it: path MTU less ocserv's DTLS overhead (base 1484 - 1418 = 66)
    assert info["headend_route_mtu"] == 1347 + (info["x_cstp_base_mtu"] - 1418) == 1413
    assert text.returncode == 0, text.stderr
    assert "announced: X-CSTP-MTU 1418, X-DTLS-MTU 1418, X-CSTP-Base-MTU 1484" in text.stdout
    assert "tunnel devices now: client 1418, head-end 1347" in text.stdout
