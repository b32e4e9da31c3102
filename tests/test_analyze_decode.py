"""Decoders: the vectorized columns agree with the scalar decoder on every packet, on every
link type; headers are read from literal bytes; hostile lengths never crash."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.packet import Raw

from labkit.analyze import analyze
from labkit.analyze import decode as dec
from labkit.analyze.engine import rare_rows, syn_mss
from labkit.pcapio.reader import open_capture
from labkit.wire.dtlsrecord import DtlsHeader, dtls_header
from tests.helpers import capfiles as cf
from tests.helpers import synth
from tests.helpers.findings import assert_filters_select_exactly_the_evidence
from tests.helpers.paths import PUBLIC
from tests.helpers.tshark import requires_tshark

LINKTYPES = {"raw": 101, "dlt12": 12, "dlt14": 14, "null": 0, "loop": 108, "sll": 113, "sll2": 276}


def columns_agree_with_scalar(path) -> int:
    n = 0
    with open_capture(path) as cap:
        for ch in cap.chunks():
            c = dec.columns(ch)
            for i in range(len(ch)):
                p = dec.decode(ch.packet(i), int(ch.linktype[i]))
                want = (
                    p.ipver,
                    p.ip_len if p.ipver else 0,
                    bool(p.df) if p.ipver else False,
                    p.proto if p.ipver else -1,
                    -1 if p.sport is None else p.sport,
                    -1 if p.dport is None else p.dport,
                    p.tcp.flags if p.tcp else 0,
                    p.tcp.seq if p.tcp else 0,
                    p.tcp.ack if p.tcp else 0,
                    p.tcp.payload_len if p.tcp else (p.udp_payload_len or 0),
                )
                got = (
                    int(c.ipver[i]),
                    int(c.iplen[i]),
                    bool(c.df[i]),
                    int(c.proto[i]),
                    int(c.sport[i]),
                    int(c.dport[i]),
                    int(c.flags[i]),
                    int(c.seq[i]),
                    int(c.ack[i]),
                    int(c.paylen[i]),
                )
                assert got == want, (path, ch.frame0 + i)
                n += 1
    return n


@pytest.mark.parametrize("name", sorted(LINKTYPES) + ["vlan", "qinq", "pppoe"])
def test_link_types_give_the_same_analysis(tmp_path, name):
    if name in LINKTYPES:
        lt, how = LINKTYPES[name], (lambda d, lt=LINKTYPES[name]: cf.relink(d, lt))
    elif name == "vlan":
        lt, how = 1, (lambda d: cf.vlan(d, [(0x8100, 42)]))
    elif name == "qinq":
        lt, how = 1, (lambda d: cf.vlan(d, [(0x88A8, 100), (0x8100, 42)]))
    else:
        lt, how = 1, cf.pppoe
    _, recs = cf.read_pcap(PUBLIC / "anyconnect-vpn.pcap")
    ip_only = [r for r in recs if struct.unpack_from("!H", r.data, 12)[0] in (0x0800, 0x86DD)]
    base = tmp_path / "eth.pcap"
    base.write_bytes(cf.pcap_bytes(1, ip_only))
    path = tmp_path / f"{name}.pcap"
    path.write_bytes(
        cf.pcap_bytes(
            lt,
            [
                cf.Rec(r.ts, how(r.data), r.origlen - len(r.data) + len(how(r.data)))
                for r in ip_only
            ],
        )
    )
    assert columns_agree_with_scalar(path) == len(ip_only)
    want, got = analyze([base]), analyze([path])

    def strip(r):
        return [
            (f.id, {k: v for k, v in f.fields.items()}, [e.frame for e in f.evidence])  # noqa: E731
            for f in r.findings
        ]

    assert strip(got) == strip(want)
    if name in ("raw", "null", "loop", "dlt12", "dlt14"):
        assert got.files[0].capture_point == "outside"  # TLS/DTLS to the head-end wins over raw IP


@requires_tshark
@pytest.mark.parametrize("name", ["sll2", "qinq"])
def test_filters_hold_on_other_link_types(tmp_path, name):
    lt, how = (
        (276, lambda d: cf.relink(d, 276))
        if name == "sll2"
        else (1, lambda d: cf.vlan(d, [(0x88A8, 100), (0x8100, 42)]))
    )
    pkts = synth.inside_icmp_ok()
    recs = [cf.Rec(float(p.time), how(bytes(p))) for p in pkts]
    path = tmp_path / f"{name}.pcap"
    path.write_bytes(cf.pcap_bytes(lt, recs))
    assert_filters_select_exactly_the_evidence(analyze([path]))


def test_raw_ip_capture_is_a_tunnel_point(tmp_path):
    pkts = synth.inside_icmp_ok()
    path = tmp_path / "tun.pcap"
    path.write_bytes(
        cf.pcap_bytes(101, [cf.Rec(float(p.time), cf.relink(bytes(p), 101)) for p in pkts])
    )
    r = analyze([path])
    assert r.files[0].capture_point == "tunnel"
    assert "capture outside" in r.files[0].cannot_show


@pytest.mark.parametrize("name", sorted(p.name for p in PUBLIC.glob("*.pcap*")))
def test_columns_agree_with_scalar_on_public_captures(name):
    assert columns_agree_with_scalar(PUBLIC / name) > 0


def _raw_capture(tmp_path, pkts):
    path = tmp_path / "x.pcap"
    path.write_bytes(cf.pcap_bytes(101, [cf.Rec(1.0 + i, bytes(p)) for i, p in enumerate(pkts)]))
    return path


def test_ipv6_extension_headers_and_fragments(tmp_path):
    syn6 = (
        IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrHopByHop()
        / TCP(sport=1234, dport=443, flags="S", options=[("MSS", 1358)])
    )
    frags = fragment(
        IP(src="10.0.0.1", dst="10.0.0.2", flags=0) / UDP(sport=1, dport=2) / Raw(b"x" * 3000),
        fragsize=1000,
    )
    frag6 = (
        IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrFragment(offset=100, m=0, nh=6)
        / Raw(b"y" * 40)
    )
    path = _raw_capture(tmp_path, [syn6, *frags, frag6])
    assert columns_agree_with_scalar(path) == 2 + len(frags)
    p = dec.decode(bytes(syn6), 101)
    assert (p.ipver, p.proto, p.tcp.mss, p.dport) == (6, 6, 1358, 443)
    assert dec.decode(bytes(frags[1]), 101).sport is None  # a later fragment: no ports
    assert dec.decode(bytes(frag6), 101).tcp is None
    r = analyze([path])
    s = [f for f in r.findings if f.id == "syn-mss"][0]
    assert (s.fields["mss"], s.fields["implied_mtu"], s.fields["ip_version"]) == (1358, 1418, 6)


def test_syn_mss_not_first_option_goes_the_slow_way(tmp_path):
    odd = IP(src="10.0.0.1", dst="10.0.0.2") / TCP(
        sport=5, dport=80, flags="S", options=[("NOP", None), ("NOP", None), ("MSS", 1378)]
    )
    plain = IP(src="10.0.0.1", dst="10.0.0.2") / TCP(
        sport=6, dport=80, flags="S", options=[("MSS", 1378)]
    )
    path = _raw_capture(tmp_path, [odd, plain])
    with open_capture(path) as cap:
        ch = next(cap.chunks())
        c = dec.columns(ch)
        rows, mss = syn_mss(c)
        assert mss.tolist() == [-1, 1378]
        assert rare_rows(c, rows, mss).tolist() == [0]
    s = [f for f in analyze([path]).findings if f.id == "syn-mss"][0]
    assert s.fields["count"] == 2 and [e.frame for e in s.evidence] == [1, 2]


def test_dtls_records_from_literal_bytes():
    flight = synth.dtls_server_hello_flight(0x0100, b"\xab" * 32)
    recs = dec.dtls_records(flight)
    assert [(r.content_type, r.epoch, r.hs_type) for r in recs] == [
        (22, 0, 2),
        (20, 0, None),
        (22, 1, None),
    ]
    assert (
        recs[0].session_id == b"\xab" * 32
        and recs[0].cipher == 0x0035
        and recs[0].hello_version == 0x0100
    )
    ch = dec.dtls_records(synth.dtls_client_hello(0xFEFD, msg_seq=1, cookie=b"\x01" * 20))[0]
    assert (ch.hs_type, ch.message_seq, ch.cookie_len, ch.version) == (1, 1, 20, 0xFEFD)
    assert dtls_header(synth.dtls_record(23, 0xFEFC, 1, 7, b"x")) == DtlsHeader(23, 0xFEFC, 1, 7, 1)
    assert dtls_header(synth.dtls_record(23, 0x0303, 1, 0, b"x")) is None  # TLS, not DTLS
    assert dtls_header(b"\x17\x01\x00") is None  # too short
    # A length running past the datagram: the header is still a record, the body cut.
    cut = synth.dtls_client_hello()[:40]
    assert dec.dtls_records(cut)[0].hs_type == 1


def test_tls_hello_sni_from_literal_bytes():
    hello = synth.tls_client_hello("vpn.example.org")
    p = dec._tls_hello(hello, 0, len(hello))
    assert p.hs_type == 1 and p.sni == "vpn.example.org"
    for cut in range(0, len(hello), 7):  # cut anywhere: never raises
        dec._tls_hello(hello, 0, cut)
    sh = synth.tls_server_hello()
    s = dec._tls_hello(sh, 0, len(sh))
    assert s.hs_type == 2 and s.cipher == 0x002F


@pytest.mark.parametrize("cut", [0, 1, 8, 20, 27, 28, 40])
def test_icmp_quotes_of_any_length_never_crash(cut):
    big = (
        IP(src="192.0.2.10", dst="10.8.0.2", flags="DF")
        / TCP(sport=80, dport=4000)
        / Raw(b"z" * 1378)
    )
    icmp = synth.icmp_frag_needed("192.0.2.1", big, 1347, 0)
    raw = bytes(icmp)
    raw = raw[: 14 + 20 + 8 + cut]
    p = dec.decode(raw, 1)
    assert p.icmp is not None and p.icmp.mtu == 1347
    if cut >= 20:
        assert p.icmp.quote.total_length == 1418
    if cut < 20:
        assert p.icmp.quote is None


def test_hostile_bytes_never_raise():
    rng = np.random.default_rng(7)
    for lt in (0, 1, 101, 108, 113, 276, 105):
        for n in (0, 1, 13, 14, 20, 33, 34, 60, 200):
            for _ in range(20):
                data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
                dec.decode(data, lt)


def test_the_scalar_hashes_are_the_column_hashes() -> None:
    """The rare packets hash one flow at a time in Python integers; they must land on the
    same 64-bit keys as the columns' numpy hashes, or a followed flow is never found."""
    import random

    from labkit.pcapio.reader import open_capture

    rnd = random.Random(5)
    for _ in range(2000):
        a, b = rnd.getrandbits(64), rnd.getrandbits(64)
        sp, dp = rnd.randrange(65536), rnd.randrange(65536)
        col = dec.directed(
            np.array([a], np.uint64), np.array([b], np.uint64), np.array([sp]), np.array([dp])
        )
        assert dec.directed_int(a, b, sp, dp) == int(col[0])
    for name in ("icmp6-packet-too-big.pcap", "anyconnect-vpn.pcap"):  # IPv6, IPv4 hosts
        with open_capture(PUBLIC / name) as cap:
            chunk = next(iter(cap.chunks()))
            cols = dec.columns(chunk)
            for i in range(min(len(chunk), 200)):
                p = dec.decode(chunk.packet(i), int(chunk.linktype[i]))
                if p.ipver:
                    assert dec.addr_hash(p.src) == int(cols.src_h[i]), p.src


@pytest.mark.parametrize(
    "path",
    sorted([*PUBLIC.glob("*.pcap*"), *(PUBLIC.parents[1] / "regressions").glob("*.pcap")]),
    ids=lambda p: p.name,
)
def test_decoding_from_the_columns_position_is_decoding_from_the_bytes(path) -> None:
    """The engine hands each rare packet's IP position from the column decode instead of
    walking its link layers again: every frame must decode to the same summary either way
    (tunnels, VLANs and cut headers included)."""
    from labkit.pcapio.reader import open_capture

    with open_capture(path) as cap:
        for chunk in cap.chunks():
            cols = dec.columns(chunk)
            for i in range(len(chunk)):
                data, lt = chunk.packet(i), int(chunk.linktype[i])
                where = (int(cols.l3[i] - chunk.data[i]), int(cols.ipver[i]))
                assert dec.decode(data, lt, where=where) == dec.decode(data, lt), (path, i)
