"""labkit.craft and `labkit craft`: exact bytes, real-capture equality, tshark as the judge.

Numbers asserted here are the seed's (issue 2): MSS 1378 = 1418 - 20 IP - 20 TCP, adapter
MTU 1418, TLS MTU 1347; the builders take them from the MTU model, the tests state them.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.tls.extensions import TLS_Ext_ServerName
from scapy.utils import rdpcap

from labkit import craft
from labkit.errors import UsageError
from labkit.layers import CSTP, DTLSClientHello, DTLSRecord
from tests.helpers.cli import labkit
from tests.helpers.tshark import requires_tshark, tshark_fields, tshark_problems

SEED_MSS, SEED_ADAPTER_MTU, SEED_TLS_MTU = 1378, 1418, 1347


# --- the Python API ---------------------------------------------------------------------------


def test_syn_defaults_come_from_the_model() -> None:
    pkt = craft.syn()
    assert dict(pkt[TCP].options)["MSS"] == SEED_MSS == 1418 - 20 - 20
    assert pkt[TCP].flags == "S" and pkt[IP].flags == "DF"
    v6 = craft.syn(craft.TUNNEL_CLIENT6, craft.SERVER6)
    assert dict(v6[TCP].options)["MSS"] == 1418 - 40 - 20


def test_syn_rejects_mss_above_mtu_minus_40() -> None:
    with pytest.raises(UsageError, match="MSS 1379"):
        craft.syn(mss=1379)
    assert dict(craft.syn(mss=1460, mtu=1500)[TCP].options)["MSS"] == 1460


@pytest.mark.parametrize("proto", ["tcp", "udp", "icmp"])
def test_oversized_has_the_exact_size_and_df(proto: str) -> None:
    pkt = craft.oversized(proto=proto)
    wire = bytes(pkt)
    assert len(wire) == SEED_ADAPTER_MTU and pkt[IP].len is None  # computed at build
    assert IP(wire).len == SEED_ADAPTER_MTU and IP(wire).flags == "DF"
    assert len(bytes(craft.oversized(proto=proto, size=1500, timestamps=(1, 2)))) == 1500


def test_oversized_ipv6_and_limits() -> None:
    assert len(bytes(craft.oversized(craft.SERVER6, craft.TUNNEL_CLIENT6, size=1280))) == 1280
    with pytest.raises(UsageError, match="size 65536"):
        craft.oversized(size=65536)
    with pytest.raises(UsageError, match="size 39"):
        craft.oversized(size=39)  # 20 IP + 20 TCP
    with pytest.raises(UsageError, match="size 27"):
        craft.oversized(size=27, proto="udp")  # 20 IP + 8 UDP


def test_icmp_frag_needed_layout() -> None:
    original = bytes(craft.oversized())
    wire = bytes(craft.icmp_frag_needed(craft.oversized()))
    icmp = wire[20:]
    assert (icmp[0], icmp[1]) == (3, 4)  # destination unreachable, fragmentation needed
    assert icmp[4:6] == b"\x00\x00"  # unused (RFC 1191 4)
    assert int.from_bytes(icmp[6:8], "big") == SEED_TLS_MTU
    assert len(wire) == 576 and icmp[8:] == original[: 576 - 28]  # RFC 1812 4.3.2.3
    assert IP(wire).src == craft.HEADEND_INSIDE and IP(wire).dst == craft.SERVER


def test_icmp_frag_needed_short_quote_and_limits() -> None:
    original = bytes(craft.oversized())
    wire = bytes(craft.icmp_frag_needed(craft.oversized(), 1300, quote=28))
    assert wire[28:] == original[:28] and int.from_bytes(wire[26:28], "big") == 1300
    padded = IP(bytes(craft.syn()) + b"\x00" * 6)  # Ethernet pads short frames (IEEE 802.3)
    assert bytes(craft.icmp_frag_needed(padded, quote=None))[28:] == bytes(craft.syn())
    with pytest.raises(UsageError, match="quote 27"):
        craft.icmp_frag_needed(craft.oversized(), quote=27)  # header + 8 bytes at least
    with pytest.raises(UsageError, match="MTU 575"):
        craft.icmp_frag_needed(craft.oversized(), 575)


def test_icmpv6_packet_too_big_quotes_up_to_1280() -> None:
    original = craft.oversized(craft.SERVER6, craft.TUNNEL_CLIENT6)
    wire = bytes(craft.icmp_frag_needed(original))
    assert len(wire) == 1280 and IPv6(wire).nh == 58
    assert wire[40] == 2 and int.from_bytes(wire[44:48], "big") == SEED_TLS_MTU
    assert wire[48:] == bytes(original)[: 1280 - 48]
    with pytest.raises(UsageError, match="MTU 1279"):
        craft.icmp_frag_needed(original, 1279)


def test_builders_are_deterministic_and_seedable() -> None:
    assert bytes(craft.dtls_client_hello()) == bytes(craft.dtls_client_hello())
    assert bytes(craft.tls_client_hello(sni="a.example")) == bytes(
        craft.tls_client_hello(sni="a.example")
    )
    one = craft.dtls_client_hello(rng=random.Random(7))
    assert bytes(one) == bytes(craft.dtls_client_hello(rng=random.Random(7)))
    assert bytes(one) != bytes(craft.dtls_client_hello(rng=random.Random(8)))
    assert craft.syn(time=12.5).time == 12.5


def test_dtls_hellos_rebuild_the_real_anyconnect_handshake(public_captures: Path) -> None:
    """Frames 439, 440 and 465 of anyconnect-vpn.pcap, byte for byte, from their values."""
    frames = rdpcap(str(public_captures / "anyconnect-vpn.pcap"))
    hello, hvr, server = (bytes(frames[n - 1][UDP].payload) for n in (440, 439, 465))
    sid, cookie = hello[60:92], hello[93:113]
    assert (
        bytes(
            craft.dtls_client_hello(
                version="0x0100",
                client_random=hello[27:59],
                session_id=sid,
                cookie=cookie,
                cipher_suites=["DHE-RSA-AES256-SHA"],
                message_seq=1,
                record_seq=1,
            )[UDP].payload
        )
        == hello
    )
    assert bytes(craft.dtls_hello_verify_request(cookie=cookie)[UDP].payload) == hvr
    assert (
        bytes(
            craft.dtls_server_hello(
                server_random=server[27:59],
                session_id=sid,
                cipher_suite=0x0039,
                finished=server[-64:],
            )[UDP].payload
        )
        == server
    )


def test_dtls12_hello_offers_ecdhe_extensions() -> None:
    pkt = DTLSRecord(bytes(craft.dtls_client_hello(version="dtls1.2")[UDP].payload))
    hello = pkt[DTLSClientHello]
    assert pkt.version == hello.version == 0xFEFD and hello.session_id == b""
    assert hello.cipher_suites[0] == 0xC030 and hello.extensions.startswith(b"\x00\x0a")


def test_tls_client_hello_carries_sni() -> None:
    pkt = craft.tls_client_hello(sni="vpn.example.com")
    names = pkt[TLS_Ext_ServerName].servernames
    assert [n.servername for n in names] == [b"vpn.example.com"]
    assert pkt[TCP].dport == 443 and pkt[TCP].flags == "PA"


def test_cstp_in_a_tcp_segment() -> None:
    assert bytes(craft.cstp("DPD-REQ")[TCP].payload) == b"STF\x01\x00\x00\x03\x00"
    data = craft.cstp()
    wire = bytes(data[TCP].payload)
    assert wire[:4] == b"STF\x01" and int.from_bytes(wire[4:6], "big") == len(wire) - 8 == 28
    assert CSTP(wire)[ICMP].type == 8
    with pytest.raises(UsageError, match="CSTP type"):
        craft.cstp("BOGUS")


def test_mixed_address_families_are_refused() -> None:
    with pytest.raises(UsageError, match="same IP version"):
        craft.syn("10.0.0.1", "2001:db8::1")


# --- the command and tshark as the judge ------------------------------------------------------


def _craft(tmp_path: Path, name: str, *args: str) -> Path:
    out = tmp_path / name
    proc = labkit("craft", *args, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and len(proc.stdout.splitlines()) >= 1
    return out


@requires_tshark
def test_cli_syn_mss(tmp_path: Path) -> None:
    out = _craft(tmp_path, "syn.pcap", "syn")
    assert tshark_fields(out, "tcp.flags.syn == 1", "tcp.options.mss_val", "ip.flags.df") == [
        [str(SEED_MSS), "1"]
    ]
    assert tshark_problems(out) == []


@requires_tshark
@pytest.mark.parametrize("proto", ["tcp", "udp", "icmp"])
def test_cli_oversized_df(tmp_path: Path, proto: str) -> None:
    out = _craft(tmp_path, "big.pcapng", "oversized", "--proto", proto, "--count", "2")
    rows = tshark_fields(out, "ip", "ip.len", "ip.flags.df", "ip.proto", "frame.time_delta")
    assert [r[:3] for r in rows] == [
        [str(SEED_ADAPTER_MTU), "1", {"tcp": "6", "udp": "17", "icmp": "1"}[proto]]
    ] * 2
    assert float(rows[1][3]) == pytest.approx(1.0)
    assert tshark_problems(out) == []


@requires_tshark
def test_cli_icmp_frag_needed_quotes_the_1418_byte_packet(tmp_path: Path) -> None:
    out = _craft(tmp_path, "icmp.pcap", "icmp-frag-needed")
    rows = tshark_fields(
        out, "icmp.type == 3 && icmp.code == 4", "icmp.mtu", "ip.len", "ip.flags.df"
    )
    assert rows == [[str(SEED_TLS_MTU), "576,1418", "0,1"]]  # outer, then the quoted packet
    assert tshark_problems(out) == []


@requires_tshark
def test_cli_icmp_frag_needed_quotes_a_frame_of_a_capture(
    tmp_path: Path, public_captures: Path
) -> None:
    source = public_captures / "tcp-mss-fast-retransmit.pcap"
    length, src = tshark_fields(source, "frame.number == 6", "ip.len", "ip.src")[0]
    assert length == "1486"  # a full-size segment of that capture
    out = _craft(
        tmp_path, "icmp.pcap", "icmp-frag-needed", "--original", f"{source}:6", "--mtu", "1280"
    )
    rows = tshark_fields(out, "icmp", "icmp.mtu", "ip.len", "ip.dst")
    assert rows[0][0] == "1280" and rows[0][1].split(",")[1] == length
    assert rows[0][2].split(",")[0] == src  # sent back to the original's source
    assert tshark_problems(out) == []


@requires_tshark
def test_cli_packet_too_big_for_ipv6(tmp_path: Path) -> None:
    out = _craft(tmp_path, "ptb.pcap", "icmp-frag-needed", "--ipv6")
    assert tshark_fields(out, "icmpv6.type == 2", "icmpv6.mtu", "frame.len") == [
        [str(SEED_TLS_MTU), str(14 + 1280)]
    ]
    assert tshark_problems(out) == []


@requires_tshark
def test_cli_dtls_legacy_hello(tmp_path: Path) -> None:
    sid, cookie = "9bb071c8" * 8, "6291bcf11a76eec56236218cac4cd4c37c12411d"
    out = _craft(tmp_path, "dtls.pcap", "dtls-hello", "--session-id", sid, "--cookie", cookie)
    # tshark 4.0 takes UDP 443 as DTLS when the bytes look like it; the decode-as makes it explicit.
    rows = tshark_fields(
        out,
        "dtls",
        "dtls.record.version",
        "dtls.handshake.type",
        "dtls.handshake.version",
        "dtls.handshake.session_id",
        "dtls.handshake.cookie",
        "dtls.handshake.ciphersuite",
        extra=("-d", "udp.port==443,dtls"),
    )
    assert rows == [["0x0100", "1", "0x0100", sid, cookie, "0x002f"]]  # AES128-SHA, the model's
    assert tshark_problems(out, extra=("-d", "udp.port==443,dtls")) == []


@requires_tshark
def test_cli_dtls12_hello_on_another_port(tmp_path: Path) -> None:
    out = _craft(tmp_path, "dtls12.pcapng", "dtls-hello", "--version", "dtls1.2", "--port", "4443")
    decode = ("-d", "udp.port==4443,dtls")
    rows = tshark_fields(
        out,
        "dtls",
        "udp.dstport",
        "dtls.record.version",
        "dtls.handshake.type",
        "dtls.handshake.version",
        extra=decode,
    )
    assert rows == [["4443", "0xfefd", "1", "0xfefd"]]
    assert tshark_problems(out, extra=decode) == []


@requires_tshark
def test_cli_tls_hello_sni(tmp_path: Path) -> None:
    out = _craft(tmp_path, "tls.pcap", "tls-hello", "--sni", "vpn.example.com")
    assert tshark_fields(
        out, "tls.handshake.type == 1", "tls.handshake.extensions_server_name"
    ) == [["vpn.example.com"]]
    assert tshark_problems(out) == []


@requires_tshark
def test_cli_cstp_bytes_as_tshark_sees_them(tmp_path: Path) -> None:
    out = _craft(tmp_path, "cstp.pcap", "cstp", "--type", "DPD-REQ")
    # No Wireshark dissector knows CSTP: read the segment as data and check the 8 bytes.
    decode = ("-d", "tcp.port==443,data")
    assert tshark_fields(out, "tcp", "data.data", extra=decode) == [["5354460100000300"]]
    assert tshark_problems(out, extra=decode) == []


def test_cli_output_is_reproducible(tmp_path: Path) -> None:
    one = _craft(tmp_path, "one.pcapng", "dtls-hello", "--count", "2")
    two = _craft(tmp_path, "two.pcapng", "dtls-hello", "--count", "2")
    assert one.read_bytes() == two.read_bytes()


# --- bad input: exit 2, one line on stderr, no traceback --------------------------------------


def _refused(*args: str) -> str:
    proc = labkit("craft", *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == "" and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("syn", "--window", "5"), "unrecognized arguments: --window"),
        (("bogus",), "invalid choice"),
        (("icmp-frag-needed", "--mtu", "575"), "MTU 575"),
        (("icmp-frag-needed", "--ipv6", "--mtu", "1279"), "IPv6 minimum 1280"),
        (("syn", "--mss", "1379"), "MSS 1379"),
        (("syn", "--mss", "1461", "--mtu", "1500"), "MSS 1461"),
        (("oversized", "--size", "65536"), "size 65536"),
        (("oversized", "--size", "27", "--proto", "udp"), "size 27"),
        (("dtls-hello", "--version", "1.3"), "DTLS version"),
        (("dtls-hello", "--cookie", "xyz"), "invalid hex"),
        (("cstp", "--type", "HELLO"), "CSTP type"),
        (("syn", "--count", "0"), "--count 0"),
    ],
)
def test_impossible_values_are_refused(args: tuple[str, ...], message: str) -> None:
    assert message in _refused(*args)


def test_unwritable_output_paths_are_refused(tmp_path: Path) -> None:
    assert "does not exist" in _refused("syn", "-o", str(tmp_path / "missing" / "x.pcap"))
    (tmp_path / "dir.pcap").mkdir()
    assert "is a directory" in _refused("syn", "-o", str(tmp_path / "dir.pcap"))
    (tmp_path / "plain").write_text("")
    assert "does not exist" in _refused("syn", "-o", str(tmp_path / "plain" / "x.pcap"))
    assert ".pcap or .pcapng" in _refused("syn", "-o", str(tmp_path / "x.txt"))


def test_existing_output_needs_force(tmp_path: Path) -> None:
    out = tmp_path / "keep.pcap"
    out.write_bytes(b"precious")
    assert "already exists" in _refused("syn", "-o", str(out))
    assert out.read_bytes() == b"precious"
    assert labkit("craft", "syn", "-o", str(out), "--force").returncode == 0
    assert out.read_bytes()[:4] == b"\xd4\xc3\xb2\xa1"  # a little-endian pcap now


def test_original_must_be_a_capture(tmp_path: Path) -> None:
    text = tmp_path / "notes.pcap"
    text.write_text("not a capture\n")
    assert "not a pcap or pcapng capture" in _refused("icmp-frag-needed", "--original", str(text))
    assert "no such file" in _refused("icmp-frag-needed", "--original", str(tmp_path / "none.pcap"))
