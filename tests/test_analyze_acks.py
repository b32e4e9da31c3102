"""Retransmitted segments judged by real acknowledgments only: RST endings, one-sided captures.

Crafted with Scapy: a receiver that acknowledged everything and then sent bare RSTs (ACK flag
clear, ack 0), a capture that holds only the sender's side, and a receiver that reset the
connection before the sender's last copies. None of them is a PMTUD black hole; tshark
confirms what the bytes show (the RSTs carry no acknowledgment, the ACK covers the segment).
"""

from __future__ import annotations

from scapy.layers.inet import TCP
from scapy.utils import wrpcap

from labkit.analyze import analyze
from tests.helpers import synth
from tests.helpers.findings import ids
from tests.helpers.tshark import requires_tshark, tshark_fields


def _bare_rst(ack, t: float):
    """A copy of the client's packet ``ack`` turned into a bare RST (ACK clear, ack 0)."""
    p = ack.copy()
    p[TCP].flags, p[TCP].ack = "R", 0
    del p[TCP].chksum
    p.time = synth.T0 + t
    return p


@requires_tshark
def test_bare_rsts_after_the_ack_do_not_undo_it(tmp_path):
    # The client acknowledges the fourth copy, then resets twice with the ACK flag clear.
    pkts = synth.inside_black_hole(copies=4, acked_at_the_end=True)
    t = float(pkts[-1].time) - synth.T0
    pkts += [_bare_rst(pkts[-1], t + 0.01 + i / 100) for i in range(2)]
    path = tmp_path / "rst.pcap"
    wrpcap(str(path), pkts)
    # The judge: tshark sees the last two client packets with no ACK flag and ack 0, and an
    # earlier client ACK covering the retransmitted segment.
    rows = tshark_fields(path, "tcp.srcport == 40001", "tcp.flags.ack", "tcp.flags.reset")
    assert [r[:2] for r in rows[-2:]] == [["0", "1"], ["0", "1"]]
    acked = tshark_fields(path, "tcp.analysis.acks_frame", "tcp.analysis.acks_frame")
    assert acked
    r = analyze([path])
    assert "pmtud-black-hole" not in ids(r) and "mtu-mismatch" not in ids(r)


def test_receiver_that_reset_before_the_last_copies_is_cannot_tell(tmp_path):
    f = synth.TcpFlow(synth.POOL, synth.SERVER, 40101, 80)
    pkts = f.handshake(0.0, 1378, 1460)
    pkts.append(f.send(0.05, True, b"GET /big HTTP/1.1\r\n\r\n"))
    seq0 = f.s_seq
    pkts.append(f.send(0.10, False, size=1418))
    pkts.append(_bare_rst(pkts[2], 0.15))  # the client is gone
    pkts += [f.resend(0.3 + 0.4 * i, False, seq0, 1418) for i in range(4)]
    path = tmp_path / "gone.pcap"
    wrpcap(str(path), pkts)
    assert "pmtud-black-hole" not in ids(analyze([path]))


def test_one_sided_capture_is_cannot_tell(tmp_path):
    pkts = synth.inside_black_hole(copies=5)
    server_only = [p for p in pkts if p[TCP].sport == 80]
    path = tmp_path / "one-sided.pcap"
    wrpcap(str(path), server_only)
    assert "pmtud-black-hole" not in ids(analyze([path]))
    # The same segment with the receiver's side present (and silent after its request) is
    # still the black hole the synthetic tests describe.
    both = tmp_path / "both.pcap"
    wrpcap(str(both), pkts)
    assert "pmtud-black-hole" in ids(analyze([both]))
