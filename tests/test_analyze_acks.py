"""Retransmitted segments judged by real acknowledgments only: RST endings, one-sided captures.

Crafted with Scapy: a receiver that acknowledged everything and then sent bare RSTs (ACK flag
clear, ack 0), a capture that holds only the sender's side, and a receiver that reset the
connection before the sender's last copies. None of them is a PMTUD black hole; tshark
confirms what the bytes show (the RSTs carry no acknowledgment, the ACK covers the segment).
"""

from __future__ import annotations

from scapy.layers.inet import TCP
from scapy.utils import wrpcap

from labkit.analyze import analyze, scan_file
from labkit.analyze.detectors import retrans
from labkit.pcapio import reader
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


def _scanned_with_a_ceiling_of_4(path, pkts, monkeypatch):
    """The facts of ``pkts`` written to ``path``, read a few packets per chunk with at most
    four retransmission candidates followed."""
    wrpcap(str(path), pkts)
    monkeypatch.setattr(retrans, "MAX_CANDIDATES", 4)
    monkeypatch.setattr(reader.Capture.chunks, "__defaults__", (4096,))
    return scan_file(str(path)).facts


def test_black_holes_past_the_ceiling_are_dropped_once_and_not_made_again_while_full(
    tmp_path, monkeypatch
):
    """More black-holed segments at once than the candidates' ceiling, each sent five times,
    read a few packets per chunk: the first ones stay followed to their last copy, each of the
    others is counted once as judged early, and while the table stays full its later copies do
    not make it a candidate again (that decoded and dropped it anew at every copy)."""
    flows = [synth.TcpFlow(synth.POOL, synth.SERVER, 41000 + i, 80) for i in range(12)]
    pkts = []
    for i, f in enumerate(flows):
        t0 = i * 0.001
        pkts += f.handshake(t0, 1378, 1460)
        pkts.append(f.send(t0 + 0.05, True, b"GET /big HTTP/1.1\r\n\r\n"))
        pkts.append(f.ack(t0 + 0.06, False))
        seq0 = f.s_seq
        pkts.append(f.send(t0 + 0.10, False, size=1418))
        pkts += [f.resend(t0 + 0.3 + 0.4 * k, False, seq0, 1418) for k in range(4)]
    pkts.sort(key=lambda p: float(p.time))
    path = tmp_path / "many-holes.pcap"
    facts = _scanned_with_a_ceiling_of_4(path, pkts, monkeypatch)
    kept = facts.retrans.candidates.values()
    assert sorted(cd.dport for cd in kept) == [41000, 41001, 41002, 41003]
    assert [cd.copies.count for cd in kept] == [5, 5, 5, 5]
    assert facts.retrans.forgotten == 8
    assert facts.budget.evicted == {"retransmission candidate": 8}
    assert any("8 retransmission candidate(s)" in w for w in facts.warnings())


def test_a_segment_dropped_at_the_ceiling_is_followed_again_once_there_is_room(
    tmp_path, monkeypatch
):
    """Four ordinary retransmissions fill a ceiling of 4 while a black-holed segment is sent
    a second and third time, each in a chunk of its own: it is dropped (once). Once the four
    are acknowledged the table has room, and the segment's later copies make it a candidate
    again: still a black hole."""
    pkts = []
    for i in range(4):  # sent twice, then acknowledged at 2 s
        f = synth.TcpFlow(synth.POOL, synth.SERVER, 42000 + i, 80)
        t0 = i * 0.001
        pkts += f.handshake(t0, 1378, 1460)
        seq0 = f.s_seq
        pkts.append(f.send(t0 + 0.10, False, size=1418))
        pkts.append(f.resend(t0 + 0.30, False, seq0, 1418))
        pkts.append(f.ack(t0 + 2.0, True))
    f = synth.TcpFlow(synth.POOL, synth.SERVER, 42100, 80)
    pkts += f.handshake(0.01, 1378, 1460)
    pkts.append(f.send(0.05, True, b"GET /big HTTP/1.1\r\n\r\n"))
    pkts.append(f.ack(0.06, False))
    seq0 = f.s_seq
    pkts.append(f.send(0.12, False, size=1418))
    for t in (0.5, 1.0, 2.5, 3.5, 4.5):  # each copy answered by a duplicate ACK
        pkts.append(f.resend(t, False, seq0, 1418))
        dup = f.ack(t + 0.01, True)
        dup[TCP].ack = seq0
        del dup[TCP].chksum
        pkts.append(dup)
    # Unrelated large packets without DF between the copies: each copy in a chunk of its own.
    other = synth.TcpFlow(synth.POOL, synth.SERVER, 42200, 80)
    pkts += [
        other.send(t + 0.01 * k, False, size=1418, df=False) for t in (0.7, 1.5) for k in range(3)
    ]
    pkts.sort(key=lambda p: float(p.time))
    path = tmp_path / "room-again.pcap"
    facts = _scanned_with_a_ceiling_of_4(path, pkts, monkeypatch)
    (cd,) = facts.retrans.candidates.values()
    assert (cd.dport, cd.copies.count) == (42100, 4)  # its first copy and the last three
    assert facts.retrans.forgotten == 1 and facts.retrans.ordinary == 4
    assert "pmtud-black-hole" in ids(analyze([path]))
