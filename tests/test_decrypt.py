"""Key-log decryption of CSTP: the sans-IO pieces on literal bytes, the whole path on real
TLS captures (tests/data/cstp-tls1{2,3}.pcap, made by make_cstp_captures.py on loopback, and
the public tls12-decryption.pcap), with tshark's own decryption as the judge."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from labkit.analyze.decrypt import Segment, client_random, decrypt
from labkit.analyze.keylog import parse_keylog
from labkit.wire.cstpstream import NEED_DATA, CstpPacket, CstpStream, HttpHead, StreamError
from labkit.wire.tlsstream import TcpReassembler, TlsRecordSplitter
from tests.helpers.paths import ROOT
from tests.helpers.tshark import requires_tshark, tshark_fields

DATA = Path(__file__).parent / "data"


def cstp(ptype: int, payload: bytes = b"") -> bytes:
    return b"STF\x01" + struct.pack("!HBB", len(payload), ptype, 0) + payload


def events(stream: CstpStream) -> list:
    out = []
    while (e := stream.next_event()) is not NEED_DATA:
        out.append(e)
    return out


# ---------------------------------------------------------------------- CSTP stream


RESPONSE = (
    b"HTTP/1.1 200 CONNECTED\r\nX-CSTP-MTU: 1347\r\nX-DTLS-MTU: 1418\r\n"
    b"X-CSTP-Base-MTU: 1500\r\nX-DTLS-Port: 443\r\n\r\n"
)


def test_server_side_skips_auth_then_reads_the_tunnel_head_and_packets():
    s = CstpStream("server")
    body = b"<config-auth/>"
    s.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:5], 10, 1.0)
    first = events(s)
    assert [type(e) for e in first] == [HttpHead] and not first[0].tunnel
    s.receive_data(body[5:] + RESPONSE + cstp(4) + cstp(0, b"E" * 1347)[:100], 12, 2.0)
    head, dpd = events(s)
    assert head.tunnel and head.header_int("x-cstp-mtu") == 1347 and head.frame == 12
    assert isinstance(dpd, CstpPacket) and dpd.type_name == "DPD-RESP" and dpd.length == 0
    s.receive_data(cstp(0, b"E" * 1347)[100:], 13, 3.0)
    (data,) = events(s)
    assert (data.type, data.length, data.frame, data.time) == (0, 1347, 13, 3.0)


def test_client_side_tunnel_starts_after_connect_not_after_a_post():
    s = CstpStream("client")
    s.receive_data(b"POST / HTTP/1.1\r\nX-CSTP-MTU: 1406\r\nContent-Length: 2\r\n\r\nhi", 1, 0.0)
    s.receive_data(
        b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\nX-CSTP-MTU: 1406\r\n\r\n" + cstp(3), 2, 0.0
    )
    post, connect, dpd = events(s)
    assert not post.tunnel and connect.tunnel and connect.header("X-CSTP-MTU") == "1406"
    assert dpd.type_name == "DPD-REQ"


def test_numbers_labkit_cannot_model_are_no_numbers():
    """A Content-Length of thousands of digits (Python refuses to convert it) or a digit that is
    not ASCII ('\xb2' reads as a digit in latin-1): not a number, never an exception."""
    s = CstpStream("client")
    s.receive_data(
        b"POST / HTTP/1.1\r\nContent-Length: " + b"9" * 5000 + b"\r\nX-CSTP-MTU: \xb2\r\n\r\n"
        b"CONNECT /CSCOSSLC/tunnel HTTP/1.1\r\n\r\n",
        1,
        0.0,
    )
    post, connect = events(s)
    assert post.header_int("X-CSTP-MTU") is None and post.header_int("Content-Length") is None
    assert connect.tunnel  # the POST had no usable body length: the next head follows it


def test_chunked_body_is_skipped():
    s = CstpStream("server")
    s.receive_data(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n"
        + RESPONSE
        + cstp(7),
        5,
        0.0,
    )
    ok, tunnel, keepalive = events(s)
    assert not ok.tunnel and tunnel.tunnel and keepalive.type_name == "KEEPALIVE"


@pytest.mark.parametrize(
    "data, message",
    [
        (RESPONSE + b"XXXX" + b"\0" * 8, "bad CSTP magic"),
        (b"\x16\x03\x01garbage\r\n\r\n", "not an HTTP head"),
        (b"A" * 70000, "no end of HTTP head"),
    ],
)
def test_stream_errors_end_the_stream(data, message):
    s = CstpStream("server")
    s.receive_data(data, 7, 0.0)
    got = events(s)
    assert isinstance(got[-1], StreamError) and message in got[-1].message
    s.receive_data(cstp(0, b"x"), 8, 0.0)
    assert events(s) == []


# ---------------------------------------------------------------------- TCP and TLS records


def test_reassembler_orders_trims_and_reports_gaps():
    r = TcpReassembler()
    assert r.feed(1000, b"abc", 1, 0.0) == [(b"abc", 1, 0.0)]
    assert r.feed(1006, b"ghi", 2, 0.0) == []  # early: waits
    assert r.feed(1001, b"bcdef", 3, 0.0) == [(b"def", 3, 0.0), (b"ghi", 2, 0.0)]  # overlap trimmed
    assert r.feed(1000, b"abcdefghi", 4, 0.0) == []  # pure retransmission
    r.feed(2000, b"zzz", 5, 0.0)
    gap = r.close()
    assert gap is not None and (gap.frame, gap.missing) == (5, 2000 - 1009)


def test_reassembler_wraps_sequence_numbers():
    r = TcpReassembler()
    start = 2**32 - 2
    assert r.feed(start, b"ab", 1, 0.0) == [(b"ab", 1, 0.0)]
    assert r.feed(0, b"cd", 2, 0.0) == [(b"cd", 2, 0.0)]


def test_record_splitter_tags_the_frame_of_the_last_byte():
    rec = b"\x17\x03\x03\x00\x04abcd"
    s = TlsRecordSplitter()
    assert s.feed(rec[:6], 1, 0.0) == []
    (got,) = s.feed(rec[6:] + rec[:2], 2, 0.0)
    assert (got.data, got.frame, got.content_type) == (rec, 2, 23)
    fresh = TlsRecordSplitter()
    assert fresh.feed(b"HTTP/1.1 200 OK", 3, 0.0) == []
    assert fresh.error is not None and "not a TLS record" in fresh.error
    assert fresh.feed(rec, 4, 0.0) == []  # nothing more after an error


def test_client_random_only_from_a_client_hello():
    hello = bytes([22, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3]) + bytes(range(32)) + b"\0" * 10
    assert client_random(hello) == bytes(range(32))
    assert client_random(bytes([22, 3, 3, 0, 200, 2]) + b"\0" * 60) is None  # ServerHello


def test_keylog_keeps_good_lines_and_counts_bad_ones():
    good = "CLIENT_RANDOM " + "ab" * 32 + " " + "cd" * 48
    k = parse_keylog(
        f"# comment\n\n{good}\nCLIENT_RANDOM xyz 00\nRSA 0011223344556677 " + "ee" * 48
    )
    assert k.malformed == 1 and k.examples == ((4, "CLIENT_RANDOM xyz 00"),)
    assert k.can_decrypt(bytes.fromhex("ab" * 32)) and not k.can_decrypt(b"\0" * 32)


# ---------------------------------------------------------------------- real captures


def _segments(path: Path) -> list[Segment]:
    """TCP segments by Scapy's own dissection: an independent reading of the capture."""
    from scapy.all import IP, TCP, IPv6, rdpcap

    out = []
    for frame, p in enumerate(rdpcap(str(path)), start=1):
        if TCP in p:
            ip = p[IP] if IP in p else p[IPv6]
            out.append(
                Segment(
                    frame,
                    float(p.time),
                    ip.src,
                    p[TCP].sport,
                    ip.dst,
                    p[TCP].dport,
                    p[TCP].seq,
                    bytes(p[TCP].payload),
                )
            )
    return out


@pytest.mark.parametrize("name, tls", [("cstp-tls12", "TLS 1.2"), ("cstp-tls13", "TLS 1.3")])
def test_cstp_capture_decrypts_to_the_head_ends_numbers(name, tls):
    report = decrypt(
        _segments(DATA / f"{name}.pcap"), parse_keylog((DATA / f"{name}.keylog").read_text())
    )
    assert report.keyed_flows == 2 and not report.notes
    (tunnel,) = report.tunnels
    assert tunnel.tls.startswith(tls)
    assert (
        tunnel.head_end("X-CSTP-MTU"),
        tunnel.head_end("X-DTLS-MTU"),
        tunnel.head_end("X-CSTP-Base-MTU"),
        tunnel.head_end("X-DTLS-Port"),
    ) == (1347, 1418, 1500, 443)
    assert (
        tunnel.request is not None and tunnel.request.header_int("X-CSTP-MTU") == 1406
    )  # the client's
    assert tunnel.dtls_cipher == "AES128-SHA"
    assert dict(tunnel.to_client.packets) == {"DATA": 4, "DPD-RESP": 1, "KEEPALIVE": 1}
    assert dict(tunnel.to_server.packets) == {"DATA": 3, "DPD-REQ": 1, "KEEPALIVE": 1}
    assert (tunnel.to_client.largest_data, tunnel.to_server.largest_data) == (1347, 1300)
    assert sorted(s.size for s in report.sizes if s.direction == "to-client") == [
        60,
        576,
        1347,
        1347,
    ]
    auth = next(s for s in report.sessions if not s.is_tunnel)
    assert auth.first_request == "POST / HTTP/1.1"


@requires_tshark
@pytest.mark.parametrize("name", ["cstp-tls12", "cstp-tls13"])
def test_frames_agree_with_tsharks_decryption(name):
    pcap, keylog = DATA / f"{name}.pcap", DATA / f"{name}.keylog"
    report = decrypt(_segments(pcap), parse_keylog(keylog.read_text()))
    (tunnel,) = report.tunnels
    extra = ("-o", f"tls.keylog_file:{keylog}")
    connect = tshark_fields(pcap, 'http.request.method == "CONNECT"', "frame.number", extra=extra)
    connected = tshark_fields(
        pcap, 'http.response.phrase == "CONNECTED"', "frame.number", extra=extra
    )
    assert tunnel.request is not None and tunnel.response is not None
    assert [[str(tunnel.request.frame)]] == connect
    assert [[str(tunnel.response.frame)]] == connected
    # The 1347-byte packet plus its 8-byte CSTP header: 1355 bytes of decrypted data.
    big = tshark_fields(pcap, "data.len == 1355", "frame.number", extra=extra)
    assert tunnel.to_client.largest_frame == int(big[0][0])


def test_public_http_capture_decrypts_but_is_no_tunnel(public_captures):
    pcap = public_captures / "tls12-decryption.pcap"
    report = decrypt(
        _segments(pcap), parse_keylog((public_captures / "tls12-decryption.keylog").read_text())
    )
    (session,) = report.sessions
    assert session.first_request == "GET / HTTP/1.1" and not session.is_tunnel
    assert session.tls == "TLS 1.2 TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
    assert report.tunnels == ()
    assert "no AnyConnect CONNECT" in report.summary() and "GET / HTTP/1.1" in report.summary()


def test_a_key_log_for_other_sessions_decrypts_nothing(public_captures):
    other = parse_keylog((DATA / "cstp-tls12.keylog").read_text())
    report = decrypt(_segments(public_captures / "tls12-decryption.pcap"), other)
    assert report.sessions == () and report.tls_flows == 1 and report.keyed_flows == 0
    assert "matches none of the 1 TLS sessions" in report.summary()


def test_a_wrong_secret_is_caught_by_the_integrity_check():
    text = (DATA / "cstp-tls12.keylog").read_text()
    wrong = "\n".join(
        line[:-4] + "0000" if line.startswith("CLIENT_RANDOM") else line
        for line in text.splitlines()
    )
    report = decrypt(_segments(DATA / "cstp-tls12.pcap"), parse_keylog(wrong))
    assert report.sessions == () and report.keyed_flows == 2
    assert (
        all("integrity check failed" in n.message for n in report.notes) and len(report.notes) == 2
    )
    assert "decrypts none" in report.summary()


def test_a_hole_in_the_capture_stops_that_flow_with_a_note():
    segs = _segments(DATA / "cstp-tls12.pcap")
    drop = next(s for s in segs if s.frame == 30)  # a data segment inside the tunnel
    report = decrypt(
        [s for s in segs if s is not drop], parse_keylog((DATA / "cstp-tls12.keylog").read_text())
    )
    (tunnel,) = report.tunnels
    assert tunnel.response is not None  # decrypted up to the hole
    (note,) = report.notes
    assert "missing from the capture" in note.message


# ---------------------------------------------------------------------- real ocserv/openconnect


REAL = ROOT / "pcaps" / "real"
CASES = (
    sorted(p.name for p in REAL.iterdir() if (p / "sslkeylog.txt").exists())
    if REAL.is_dir()
    else []
)


def _decrypt(d):
    """The decryption of a lab case's outside capture, by the analyzer's one pass."""
    from labkit.analyze import Collect, analyze
    from labkit.analyze.sources import read_keylog

    capture = str(d / "outside.pcap")
    report = analyze([capture], collect=Collect(read_keylog(str(d / "sslkeylog.txt"))))
    ((path, decrypted),) = report.decrypted
    assert path == capture
    return decrypted


@pytest.mark.parametrize("case", CASES)
def test_real_lab_captures_decrypt_to_what_the_software_logged(case):
    """The lab's case.json records what ocserv/openconnect logged; the decryption (through the
    analyzer's reader) must find the same CONNECT numbers in the bytes."""
    import json

    d = REAL / case
    facts = json.loads((d / "case.json").read_text())["headend"]
    report = _decrypt(d)
    assert not report.notes
    (tunnel,) = report.tunnels
    assert tunnel.head_end("X-CSTP-MTU") == facts["x_cstp_mtu"]
    assert tunnel.head_end("X-DTLS-MTU") == facts["x_dtls_mtu"]
    assert tunnel.head_end("X-CSTP-Base-MTU") == facts["x_cstp_base_mtu"]
    assert tunnel.head_end("X-DTLS-Port") == facts["x_dtls_port"]
    # DTLS 1.2 (the lab's captures) names its suite in X-DTLS12-CipherSuite, legacy DTLS in
    # X-DTLS-CipherSuite: openconnect logged whichever the head-end sent
    assert tunnel.dtls_cipher == (facts.get("x_dtls12_ciphersuite") or facts["x_dtls_ciphersuite"])
    if facts["dtls_established"]:
        assert tunnel.to_client.largest_data is None  # the data went over DTLS
    else:  # the data ran in the TLS tunnel, never above the head-end's tun MTU
        assert tunnel.to_client.largest_data is not None
        assert tunnel.to_client.largest_data <= facts["headend_tun_mtu"]


@requires_tshark
@pytest.mark.parametrize("case", CASES)
def test_real_connect_frame_agrees_with_tshark(case):
    d = REAL / case
    report = _decrypt(d)
    (tunnel,) = report.tunnels
    extra = ("-o", f"tls.keylog_file:{d / 'sslkeylog.txt'}")
    got = tshark_fields(
        d / "outside.pcap", 'http.response.phrase == "CONNECTED"', "frame.number", extra=extra
    )
    assert tunnel.response is not None and got == [[str(tunnel.response.frame)]]
