"""DTLS verdicts that need evidence: duplicate frames, trimmed captures, DTLS 1.3, WebRTC.

Each capture is crafted with Scapy and struct (tests/synth.py): the bytes are what a client,
a server or a SPAN port would put on the wire; tshark judges every finding's filter.
"""

from __future__ import annotations

import struct

from scapy.utils import wrpcap

from labkit.analyze import analyze
from tests.helpers import synth
from tests.helpers.findings import assert_filters_select_exactly_the_evidence, ids, one
from tests.helpers.tshark import requires_tshark, tshark_frames

C, H = synth.CLIENT, synth.HEADEND


def _tls_session(t: float = 0.0) -> list:
    """The AnyConnect TLS (CSTP) session that makes the DTLS to the same head-end a VPN's."""
    f = synth.TcpFlow(C, H, 51000, 443)
    pkts = f.handshake(t, 1460, 1380)
    pkts.append(f.send(t + 0.05, True, synth.tls_client_hello()))
    pkts.append(f.send(t + 0.08, False, synth.tls_server_hello()))
    return pkts


def _write(tmp_path, name: str, pkts: list):
    path = tmp_path / f"{name}.pcap"
    wrpcap(str(path), sorted(pkts, key=lambda p: float(p.time)))
    return path


def _hello(t: float, rec_seq: int = 0, version: int = 0x0100, port: int = 443, sport=52000, dst=H):
    return synth.udp(C, dst, sport, port, synth.dtls_client_hello(version, rec_seq=rec_seq), t)


def _later(t: float, src: str = C, dst: str = H) -> object:
    """A packet between ``src`` and ``dst`` at ``t``: the capture still covers them."""
    return synth.udp(src, dst, 53000, 53, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", t)


@requires_tshark
def test_a_frame_captured_twice_is_one_attempt(tmp_path):
    # A SPAN port's duplicate: the same hello twice at the same instant, then silence while
    # the TLS session goes on.
    pkts = _tls_session() + [_hello(0.5), _hello(0.5001), _later(10.0)]
    path = _write(tmp_path, "dup", pkts)
    r = analyze([path])
    assert "dtls-unanswered" not in ids(r)
    # The copy is a duplicate frame: counted once everywhere, and reported as a duplicate.
    assert r.files[0].counts["dtls_client_hellos"] == 1
    assert r.files[0].counts["duplicate_frames"] == 1
    assert len(tshark_frames(path, "dtls.handshake.type == 1")) == 2


def test_a_lone_hello_at_the_end_of_a_trimmed_capture_is_not_unanswered(tmp_path):
    # Unrelated traffic a year later used to satisfy the wait.
    year = 365 * 86400.0
    pkts = _tls_session() + [_hello(0.5), _later(year, "192.0.2.77", "192.0.2.78")]
    assert "dtls-unanswered" not in ids(analyze([_write(tmp_path, "trimmed", pkts)]))


def test_retransmissions_need_the_capture_to_go_on(tmp_path):
    hellos = [_hello(0.5 + t, rec_seq=i) for i, t in enumerate((0.0, 1.0, 3.0))]
    # The capture stops at the last hello: nothing shows an answer would have been seen.
    cut = _write(tmp_path, "cut", _tls_session() + hellos)
    assert "dtls-unanswered" not in ids(analyze([cut]))
    # The same hellos, and the client and head-end still talking afterwards: unanswered.
    covered = _write(tmp_path, "covered", _tls_session() + hellos + [_later(8.0)])
    assert one(analyze([covered]), "dtls-unanswered").fields["attempts"] == 3
    # Copies of one hello within milliseconds are not retransmissions, however many.
    burst = [_hello(0.5 + i / 1000) for i in range(4)]
    bursty = _write(tmp_path, "burst", _tls_session() + burst + [_later(8.0)])
    assert "dtls-unanswered" not in ids(analyze([bursty]))


# --- DTLS 1.3 (RFC 9147) ---------------------------------------------------------------------


def _unified(seq: int, body: bytes, cid: bytes = b"") -> bytes:
    """A unified-header record (RFC 9147 section 4): 0b001CSLEE, [CID], 16-bit seq, length."""
    first = 0x20 | (0x10 if cid else 0) | 0x08 | 0x04 | 0x03  # C, S=16-bit, L, epoch 3
    return bytes([first]) + cid + struct.pack("!HH", seq, len(body)) + body


def _dtls13(cid: bytes, both_ways: bool = True) -> list:
    port = 4433
    hello = synth.dtls_client_hello(0xFEFD)
    sh = synth.dtls_server_hello_flight(0xFEFD)
    server_hello = sh[: 13 + struct.unpack("!H", sh[11:13])[0]]  # the plaintext ServerHello only
    pkts = [
        synth.udp(C, H, 52000, port, hello, 0.1),
        # Its own datagram: tshark 4.0 gives up on a datagram that mixes both header forms.
        synth.udp(H, C, port, 52000, server_hello, 0.12),
        synth.udp(H, C, port, 52000, _unified(0, b"\xaa" * 64, cid), 0.13),
    ]
    for i in range(3):
        if both_ways:
            pkts.append(synth.udp(C, H, 52000, port, _unified(i, b"\xbb" * 48, cid), 0.2 + i / 10))
        pkts.append(synth.udp(H, C, port, 52000, _unified(i + 1, b"\xcc" * 48, cid), 0.25 + i / 10))
    return pkts


@requires_tshark
def test_dtls13_with_and_without_connection_ids_is_established(tmp_path):
    for cid in (b"", b"\x01\x02\x03\x04"):
        path = _write(tmp_path, f"dtls13-{len(cid)}", _tls_session() + _dtls13(cid))
        r = analyze([path])
        est = one(r, "dtls-established")
        assert est.fields["version"] == "0xfefd" and est.fields["port"] == 4433
        assert "dtls-unanswered" not in ids(r)
        server_hellos = tshark_frames(path, "dtls.handshake.type == 2")
        assert len(server_hellos) == 1 and server_hellos[0] in {e.frame for e in est.evidence}
        assert_filters_select_exactly_the_evidence(r)


def test_dtls13_server_only_records_are_not_established(tmp_path):
    path = _write(tmp_path, "dtls13-one-way", _tls_session() + _dtls13(b"", both_ways=False))
    assert "dtls-established" not in ids(analyze([path]))


# --- AnyConnect-like or other DTLS -------------------------------------------------------------


def _stun(src: str, dst: str, sport: int, dport: int, t: float, response: bool = False):
    """A STUN Binding request (or success response), RFC 8489 section 5."""
    msg_type = 0x0101 if response else 0x0001
    body = struct.pack("!HHI", msg_type, 0, 0x2112A442) + b"\x5a" * 12
    return synth.udp(src, dst, sport, dport, body, t)


@requires_tshark
def test_webrtc_dtls_after_stun_is_other_dtls_never_a_vpn_problem(tmp_path):
    peer, port = "192.0.2.99", 3478
    pkts = [
        _stun(C, peer, 50000, port, 0.1),
        _stun(peer, C, port, 50000, 0.12, response=True),
    ]
    # Retransmitted, unanswered, on a non-default port, and the capture goes on: as a VPN's
    # DTLS this would be dtls-unanswered and dtls-nondefault-port.
    pkts += [
        _hello(0.5 + t, rec_seq=i, version=0xFEFD, port=port, sport=50000, dst=peer)
        for i, t in enumerate((0.0, 1.0, 3.0))
    ]
    pkts.append(_later(9.0, C, peer))
    path = _write(tmp_path, "webrtc", pkts)
    assert tshark_frames(path, "stun") == [1, 2]
    r = analyze([path])
    other = one(r, "dtls-other")
    assert other.fields["webrtc"] is True and other.fields["established"] is False
    assert other.fields["attempts"] == 3
    assert not {"dtls-unanswered", "dtls-nondefault-port"} & set(ids(r))
    assert not r.verdict.startswith("PROBLEM") and r.exit_code == 0
    assert r.files[0].counts["dtls_flows_other"] == 1
    assert_filters_select_exactly_the_evidence(r)
