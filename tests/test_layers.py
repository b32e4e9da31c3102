"""The Scapy layers: build and dissect each from literal bytes, then the real captures.

Literal bytes are taken from the wire formats (RFC 6347 4.1/4.2, OpenConnect cstp.c) and
from anyconnect-vpn.pcap as tshark prints them; the capture tests compare every record and
handshake header labkit dissects with what tshark dissects in the same frames.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw
from scapy.utils import rdpcap

from labkit.layers import (
    CSTP,
    AnyConnectDTLS,
    DTLSAlert,
    DTLSChangeCipherSpec,
    DTLSClientHello,
    DTLSHandshake,
    DTLSHelloVerifyRequest,
    DTLSRecord,
    DTLSServerHello,
)
from labkit.wire import looks_like_dtls
from tests.helpers.cli import labkit
from tests.helpers.paths import ROOT
from tests.helpers.tshark import requires_tshark, tshark_fields

SESSION_ID = bytes.fromhex("9bb071c8a80440614f8347a2ce2efe01540c7af53be22e1eac07398729e026ef")
COOKIE = bytes.fromhex("6291bcf11a76eec56236218cac4cd4c37c12411d")
CLIENT_RANDOM = bytes.fromhex("ed89c4699ea16489a68421ebd0951f08172d595bf2c2507bd49467c65ee6238a")


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# Frame 440 of anyconnect-vpn.pcap, UDP payload, as `tshark -x` prints it: the ClientHello
# that carries the HelloVerifyRequest's cookie.
FRAME_440_UDP_PAYLOAD = _hex(
    "16 0100 0000 000000000001 006a"  # record: handshake, DTLS1_BAD_VER, epoch 0, seq 1, 106
    "01 00005e 0001 000000 00005e"  # handshake: client_hello, 94, msg_seq 1, unfragmented
    "0100" + CLIENT_RANDOM.hex() + "20" + SESSION_ID.hex() + "14" + COOKIE.hex() + "0002 0039 01 00"
)  # one suite DHE-RSA-AES256-SHA, null compression, no extensions


# --- CSTP and the AnyConnect DTLS header ----------------------------------------------------


def test_cstp_build_dpd_request() -> None:
    assert bytes(CSTP(type="DPD-REQ")) == b"STF\x01\x00\x00\x03\x00"


def test_cstp_build_data_counts_payload_only() -> None:
    inner = IP(src="10.1.1.1", dst="10.1.1.2", id=1) / UDP(sport=1, dport=2)
    pkt = CSTP() / inner
    assert bytes(pkt)[:8] == b"STF\x01\x00\x1c\x00\x00"  # 20 + 8 bytes of IP/UDP
    assert bytes(pkt)[8:] == bytes(inner)


def test_cstp_dissect_data_ipv4_and_trailing_packet() -> None:
    inner = bytes(IP(src="10.1.1.1", dst="10.1.1.2") / UDP(sport=1, dport=2))
    wire = (
        b"STF\x01"
        + len(inner).to_bytes(2, "big")
        + b"\x00\x00"
        + inner
        + b"STF\x01\x00\x00\x07\x00"
    )
    pkt = CSTP(wire)
    assert (pkt.magic, pkt.length, pkt.type) == (b"STF\x01", 28, 0)
    assert pkt[IP].dst == "10.1.1.2" and pkt[UDP].dport == 2
    assert bytes(pkt[IP]).startswith(inner)
    assert pkt[CSTP:2].type == 7 and bytes(pkt) == wire
    assert (
        pkt.summary()
        == "CSTP DATA len=28 / IP / UDP 10.1.1.1:1 > 10.1.1.2:2 / CSTP KEEPALIVE len=0"
    )


def test_cstp_dissect_ipv6_by_version_nibble() -> None:
    inner = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=1, dport=2))
    pkt = CSTP(b"STF\x01" + len(inner).to_bytes(2, "big") + b"\x00\x00" + inner)
    assert pkt[IPv6].dst == "2001:db8::2"


def test_cstp_dissect_terminate_has_no_ip() -> None:
    pkt = CSTP(_hex("53544601 0001 09 00 b0"))
    assert pkt.sprintf("%CSTP.type%") == "TERMINATE"
    assert IP not in pkt and pkt[Raw].load == b"\xb0"


def test_anyconnect_dtls_build_and_dissect() -> None:
    inner = IP(src="10.1.1.1", dst="10.1.1.2", id=7) / UDP(sport=1, dport=2)
    assert bytes(AnyConnectDTLS() / inner) == b"\x00" + bytes(inner)
    assert bytes(AnyConnectDTLS(type="KEEPALIVE")) == b"\x07"
    pkt = AnyConnectDTLS(b"\x00" + bytes(inner))
    assert pkt.type == 0 and pkt[IP].id == 7
    assert AnyConnectDTLS(b"\x03").sprintf("%AnyConnectDTLS.type%") == "DPD-REQ"


def test_record_over_anyconnect_data_is_epoch1_application_data() -> None:
    pkt = (
        DTLSRecord(version=0x0100, sequence_number=5)
        / AnyConnectDTLS()
        / Raw(b"\x45" + b"\x00" * 19)
    )
    assert bytes(pkt)[:13] == _hex("17 0100 0001 000000000005 0015")
    # Dissected back, an epoch-1 body is ciphertext to anyone without the keys.
    assert DTLSRecord(bytes(pkt)).payload.__class__ is Raw


# --- DTLS record ----------------------------------------------------------------------------


def test_record_build_header() -> None:
    pkt = DTLSRecord(content_type=23, version="DTLS1_BAD_VER", epoch=1, sequence_number=258) / Raw(
        b"ab"
    )
    assert bytes(pkt) == _hex("17 0100 0001 000000000102 0002") + b"ab"


def test_record_dissect_header() -> None:
    pkt = DTLSRecord(_hex("17 fefd 0001 0000000000ff 0003 aabbcc"))
    assert (pkt.content_type, pkt.version, pkt.epoch, pkt.sequence_number, pkt.length) == (
        23,
        0xFEFD,
        1,
        255,
        3,
    )
    assert pkt.sprintf("%DTLSRecord.version%") == "DTLS 1.2"
    assert pkt[Raw].load == _hex("aabbcc")


@pytest.mark.parametrize(
    ("version", "name"),
    [(0x0100, "DTLS1_BAD_VER"), (0xFEFF, "DTLS 1.0"), (0xFEFD, "DTLS 1.2"), (0xFEFC, "DTLS 1.3")],
)
def test_record_versions_are_named(version: int, name: str) -> None:
    assert DTLSRecord(version=version).sprintf("%DTLSRecord.version%") == name
    assert DTLSRecord(version=name).version == version


def test_two_records_in_one_datagram_chain() -> None:
    wire = _hex("14 0100 0000 000000000002 0003 010002") + _hex(
        "15 fefd 0000 000000000003 0002 0228"
    )
    pkt = DTLSRecord(wire)
    assert pkt.length == 3 and pkt[DTLSChangeCipherSpec].message_seq == 2
    second = pkt[DTLSRecord:2]
    assert (second.version, second.sequence_number, second.length) == (0xFEFD, 3, 2)
    assert (second[DTLSAlert].level, second[DTLSAlert].description) == (2, 40)
    assert bytes(pkt) == wire


def test_chained_lengths_are_computed_per_record() -> None:
    pkt = (
        DTLSRecord(version=0x0100, content_type=20)
        / DTLSChangeCipherSpec(message_seq=2)
        / DTLSRecord(version=0x0100, epoch=1)
        / Raw(b"\x11" * 4)
    )
    assert bytes(pkt) == (
        _hex("14 0100 0000 000000000000 0003 010002")
        + _hex("16 0100 0001 000000000000 0004")
        + b"\x11" * 4
    )


def test_alert_build() -> None:
    pkt = DTLSRecord(content_type="alert") / DTLSAlert(
        level="fatal", description="handshake_failure"
    )
    assert bytes(pkt) == _hex("15 fefd 0000 000000000000 0002 02 28")


def test_ccs_without_bad_version_has_no_sequence() -> None:
    assert bytes(DTLSRecord(content_type=20) / DTLSChangeCipherSpec()) == _hex(
        "14 fefd 0000 000000000000 0001 01"
    )


def test_record_by_content_on_any_port_and_raw_otherwise() -> None:
    hvr = _hex("16 feff 0000 000000000000 0023 03 000017 0000 000000 000017 feff 14") + COOKIE
    assert looks_like_dtls(hvr)
    assert DTLSRecord(hvr)[DTLSHelloVerifyRequest].cookie == COOKIE
    quic = _hex("c3 00000001 08") + b"\x00" * 20  # a QUIC long header on UDP 443
    assert not looks_like_dtls(quic)
    assert isinstance(DTLSRecord(quic), Raw)
    datagram = IP(
        bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5000, dport=443) / Raw(quic))
    )
    assert DTLSRecord not in datagram and datagram[Raw].load == quic
    off_port = IP(
        bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5000, dport=4400) / Raw(hvr))
    )
    assert DTLSRecord not in off_port  # not bound: hand the payload over
    assert DTLSRecord(bytes(off_port[UDP].payload)).version == 0xFEFF


def test_udp_443_binds_both_ways() -> None:
    built = (
        IP(src="10.0.0.1", dst="10.0.0.2")
        / UDP()
        / DTLSRecord()
        / DTLSHandshake()
        / DTLSClientHello()
    )
    assert (built[UDP].sport, built[UDP].dport) == (443, 443)
    again = IP(
        bytes(
            IP(src="10.0.0.1", dst="10.0.0.2")
            / UDP(sport=54107, dport=443)
            / DTLSRecord()
            / DTLSHandshake()
            / DTLSClientHello()
        )
    )
    assert DTLSClientHello in again


# --- handshake ------------------------------------------------------------------------------


def test_handshake_header_build() -> None:
    pkt = DTLSHandshake(msg_type="hello_verify_request") / DTLSHelloVerifyRequest(
        server_version=0x0100, cookie=COOKIE
    )
    assert bytes(pkt) == _hex("03 000017 0000 000000 000017 0100 14") + COOKIE


def test_handshake_header_dissect() -> None:
    pkt = DTLSHandshake(_hex("0e 000000 0004 000000 000000"))
    assert (
        pkt.msg_type,
        pkt.length,
        pkt.message_seq,
        pkt.fragment_offset,
        pkt.fragment_length,
    ) == (14, 0, 4, 0, 0)
    assert pkt.sprintf("%DTLSHandshake.msg_type%") == "server_hello_done"


def test_fragment_stays_raw() -> None:
    body = DTLSClientHello(cipher_suites=[0xC030]).build()
    head = _hex("01") + len(body).to_bytes(3, "big") + _hex("0000 000000 00000a")
    pkt = DTLSHandshake(head + body[:10])
    assert pkt.is_fragment and DTLSClientHello not in pkt
    assert pkt[Raw].load == body[:10]


def test_client_hello_build_anyconnect_legacy() -> None:
    pkt = DTLSClientHello(
        version=0x0100,
        random=CLIENT_RANDOM,
        session_id=SESSION_ID,
        cookie=COOKIE,
        cipher_suites=[0x0039],
    )
    assert bytes(pkt) == (
        _hex("0100")
        + CLIENT_RANDOM
        + b"\x20"
        + SESSION_ID
        + b"\x14"
        + COOKIE
        + _hex("0002 0039 01 00")
    )


def test_client_hello_dissect_with_extensions() -> None:
    wire = (
        _hex("fefd") + b"\x01" * 32 + _hex("00 00 0004 c030 00ff 01 00") + _hex("0005 000f 0001 01")
    )
    pkt = DTLSClientHello(wire)
    assert pkt.version == 0xFEFD and pkt.session_id == b"" and pkt.cookie == b""
    assert pkt.cipher_suites == [0xC030, 0x00FF] and pkt.compression_methods == [0]
    assert (pkt.extensions_len, pkt.extensions) == (5, _hex("000f 0001 01"))
    assert bytes(pkt) == wire


def test_client_hello_empty_extension_block_survives() -> None:
    with_empty = bytes(DTLSClientHello(cipher_suites=[0x0039], extensions=b""))
    assert with_empty.endswith(_hex("01 00 0000"))
    assert DTLSClientHello(with_empty).extensions_len == 0


def test_server_hello_build_and_dissect() -> None:
    wire = _hex("0100") + b"\x02" * 32 + b"\x20" + SESSION_ID + _hex("0039 00")
    assert (
        bytes(
            DTLSServerHello(
                version=0x0100, random=b"\x02" * 32, session_id=SESSION_ID, cipher_suite=0x0039
            )
        )
        == wire
    )
    pkt = DTLSServerHello(wire)
    assert pkt.session_id == SESSION_ID and pkt.cipher_suite == 0x39
    assert pkt.sprintf("%DTLSServerHello.cipher_suite%") == "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"
    assert pkt.extensions is None


def test_hello_verify_request_dissect() -> None:
    pkt = DTLSHelloVerifyRequest(_hex("0100 14") + COOKIE)
    assert (pkt.server_version, pkt.cookie_len, pkt.cookie) == (0x0100, 20, COOKIE)


def test_full_client_hello_record_matches_frame_440() -> None:
    built = (
        DTLSRecord(version=0x0100, sequence_number=1)
        / DTLSHandshake(message_seq=1)
        / DTLSClientHello(
            version=0x0100,
            random=CLIENT_RANDOM,
            session_id=SESSION_ID,
            cookie=COOKIE,
            cipher_suites=[0x0039],
        )
    )
    assert bytes(built) == FRAME_440_UDP_PAYLOAD


def test_show_and_summary_read_like_scapy() -> None:
    pkt = DTLSRecord(FRAME_440_UDP_PAYLOAD)
    assert pkt.summary() == (
        "DTLS1_BAD_VER handshake epoch=0 seq=1 len=106 / client_hello "
        "msg_seq=1 / ClientHello DTLS1_BAD_VER sid=32B cookie=20B suites=1"
    )
    text = pkt.show(dump=True)
    assert "###[ DTLS Record ]###" in text and "###[ DTLS ClientHello ]###" in text
    assert "cipher_suites= [TLS_DHE_RSA_WITH_AES_256_CBC_SHA]" in text


# --- real captures --------------------------------------------------------------------------


def _dtls_layers(pkt) -> DTLSRecord | None:  # type: ignore[no-untyped-def]
    if UDP not in pkt:
        return None
    if DTLSRecord in pkt:
        return pkt[DTLSRecord]
    payload = bytes(pkt[UDP].payload)
    return DTLSRecord(payload) if looks_like_dtls(payload) else None


def _records(first: DTLSRecord) -> list[DTLSRecord]:
    out, i = [], 1
    while (r := first.getlayer(DTLSRecord, i)) is not None:
        out.append(r)
        i += 1
    return out


def _handshakes(first: DTLSRecord) -> list[DTLSHandshake]:
    out, i = [], 1
    while (h := first.getlayer(DTLSHandshake, i)) is not None:
        out.append(h)
        i += 1
    return out


def test_anyconnect_legacy_handshake(public_captures: Path) -> None:
    frames = rdpcap(str(public_captures / "anyconnect-vpn.pcap"))
    hello, hvr, hello2, server = (frames[n - 1] for n in (413, 439, 440, 465))
    ch = hello[DTLSClientHello]
    assert hello[DTLSRecord].version == 0x0100 and ch.version == 0x0100
    assert ch.session_id == SESSION_ID and ch.cookie == b"" and ch.cipher_suites == [0x0039]
    assert hvr[DTLSHelloVerifyRequest].cookie == COOKIE
    assert hello2[DTLSClientHello].cookie == COOKIE and hello2[DTLSHandshake].message_seq == 1
    assert bytes(hello2[UDP].payload) == FRAME_440_UDP_PAYLOAD
    sh = server[DTLSServerHello]
    assert sh.session_id == SESSION_ID and sh.cipher_suite == 0x0039
    records = _records(server[DTLSRecord])
    assert [(r.content_type, r.epoch, r.sequence_number, r.length) for r in records] == [
        (22, 0, 1, 82),
        (20, 0, 2, 3),
        (22, 1, 0, 64),
    ]
    assert records[1][DTLSChangeCipherSpec].message_seq == 2
    assert (
        isinstance(records[2].payload, Raw) and len(records[2].payload) == 64
    )  # Finished, encrypted
    for pkt in (hello, hvr, hello2, server):  # dissect -> build is the identity
        assert bytes(pkt.__class__(bytes(pkt))) == bytes(pkt)


def test_dtls12_fragmented_handshake(public_captures: Path) -> None:
    frames = rdpcap(str(public_captures / "dtls1_2.pcap"))
    first = _dtls_layers(frames[0])
    assert first is not None and first.version == 0xFEFD
    hs = first[DTLSHandshake]
    assert (hs.length, hs.fragment_offset, hs.fragment_length) == (287, 0, 203)
    assert DTLSClientHello not in first and len(first[Raw].load) == 203
    hvr = _dtls_layers(frames[2])
    assert hvr is not None and hvr[DTLSHelloVerifyRequest].server_version == 0xFEFF
    sh = _dtls_layers(frames[5])
    assert sh is not None and sh[DTLSServerHello].cipher_suite == 0xC030
    assert [h.msg_type for h in _handshakes(_dtls_layers(frames[11]))] == [12, 14]  # type: ignore[arg-type]


def _ours(path: Path) -> dict[int, tuple[list[tuple[int, ...]], list[tuple[int, ...]]]]:
    rows = {}
    for number, pkt in enumerate(rdpcap(str(path)), 1):
        rec = _dtls_layers(pkt)
        if rec is None:
            continue
        records = [
            (r.content_type, r.version, r.epoch, r.sequence_number, r.length) for r in _records(rec)
        ]
        handshakes = [
            (h.msg_type, h.length, h.message_seq, h.fragment_offset, h.fragment_length)
            for h in _handshakes(rec)
        ]
        rows[number] = (records, handshakes)
    return rows


def _theirs(
    path: Path, port: int
) -> dict[int, tuple[list[tuple[int, ...]], list[tuple[int, ...]]]]:
    fields = (
        "frame.number",
        "dtls.record.content_type",
        "dtls.record.version",
        "dtls.record.epoch",
        "dtls.record.sequence_number",
        "dtls.record.length",
        "dtls.handshake.type",
        "dtls.handshake.length",
        "dtls.handshake.message_seq",
        "dtls.handshake.fragment_offset",
        "dtls.handshake.fragment_length",
    )
    rows = {}
    for row in tshark_fields(path, "dtls", *fields, extra=("-d", f"udp.port=={port},dtls")):
        cols = [[int(v, 0) for v in c.split(",")] if c else [] for c in row[1:]]
        rows[int(row[0])] = (list(zip(*cols[:5])), list(zip(*cols[5:])))
    return rows


@requires_tshark
@pytest.mark.parametrize(
    ("name", "port"),
    [("anyconnect-vpn.pcap", 443), ("dtls1_2.pcap", 4400), ("dtls-0x0100-hvr-retrans.pcapng", 443)],
)
def test_headers_agree_with_tshark(public_captures: Path, name: str, port: int) -> None:
    """Every record and plaintext handshake header, frame by frame, as tshark reads them."""
    ours, theirs = _ours(public_captures / name), _theirs(public_captures / name, port)
    assert ours.keys() == theirs.keys() and ours
    for number in ours:
        assert ours[number] == theirs[number], f"{name} frame {number}"


@requires_tshark
def test_hello_fields_agree_with_tshark(public_captures: Path) -> None:
    path = public_captures / "anyconnect-vpn.pcap"
    frames = rdpcap(str(path))
    rows = tshark_fields(
        path,
        "dtls.handshake.type <= 3",
        "frame.number",
        "dtls.handshake.session_id",
        "dtls.handshake.cookie",
        "dtls.handshake.ciphersuite",
    )
    assert [int(r[0]) for r in rows] == [413, 439, 440, 465]
    for number, sid, cookie, suite in rows:
        pkt = frames[int(number) - 1]
        body = pkt[DTLSHandshake].payload
        assert getattr(body, "session_id", b"").hex() == sid
        assert getattr(body, "cookie", b"").hex() == cookie
        suites = getattr(body, "cipher_suites", None) or [getattr(body, "cipher_suite", None)]
        assert [f"0x{s:04x}" for s in suites if s is not None] == ([suite] if suite else [])


# --- Scapy as a user meets it: rdpcap after `import labkit.layers` ---------------------------


@requires_tshark
def test_crafted_cstp_reads_back_as_cstp_with_rdpcap(tmp_path: Path) -> None:
    out = tmp_path / "cstp.pcap"
    proc = labkit("craft", "cstp", "--type", "DPD-REQ", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    # tshark, the judge: a TCP segment to 443 whose payload is the 8-byte CSTP DPD request
    assert tshark_fields(out, "tcp.len > 0", "tcp.dstport", "tcp.payload") == [
        ["443", "5354460100000300"]
    ]
    [pkt] = rdpcap(str(out))
    assert CSTP in pkt and pkt[CSTP].type == 3 and pkt[CSTP].length == 0
    assert pkt.summary().endswith("CSTP DPD-REQ len=0")


def test_tcp_443_is_cstp_only_when_the_payload_starts_with_the_magic() -> None:
    cstp = IP(bytes(IP() / TCP(sport=443, dport=40000) / CSTP(type="KEEPALIVE")))
    assert cstp[CSTP].type == 7
    # a TLS record on 443 stays what Scapy makes of it (TLS if loaded, else raw): never CSTP
    tls = IP(bytes(IP() / TCP(sport=40000, dport=443) / _hex("16 0303 0002 0100")))
    assert CSTP not in tls
    assert type(tls[TCP].payload).__name__ in ("TLS", "Raw")  # TLS once a test loaded it
    # another port is not CSTP until the user binds it
    other = IP(bytes(IP() / TCP(dport=8443) / CSTP(type="KEEPALIVE")))
    assert CSTP not in other


def _readme_python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## labkit's layers in Scapy", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_readme_scapy_section_runs_as_written(tmp_path: Path) -> None:
    """Each code block of the README's Scapy section, run as a user would: a fresh Python,
    in a folder with the crafted capture and the repository's pcaps/."""
    blocks = _readme_python_blocks()
    assert len(blocks) == 3
    (tmp_path / "pcaps").symlink_to(ROOT / "pcaps")
    made = labkit("craft", "cstp", "-o", str(tmp_path / "cstp.pcap"))
    assert made.returncode == 0, made.stderr
    outputs = []
    for code in blocks:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout)
    shown, bound, decrypted = outputs
    assert "/ TCP / CSTP / IP / ICMP" in shown and "type      = DATA" in shown
    count, summary = bound.split(" ", 1)
    assert count == "4" and "> 198.18.2.2:8443 / DTLS 1.2 handshake" in summary
    assert "ClientHello DTLS 1.2" in summary
    assert decrypted.split() == ["1347"]
