"""Retransmissions the analyzer cannot judge are said, not hidden behind "no black hole".

Crafted with Scapy: a large DF segment sent three times to a receiver that is never seen again
(a one-sided capture), and the same segment acknowledged by the receiver (the control).
"""

from __future__ import annotations

from scapy.layers.inet import TCP
from scapy.utils import wrpcap

from labkit.analyze import analyze
from tests.helpers import synth
from tests.helpers.findings import ids

_QUALIFIER = "1 flow(s) could not be judged"


def _flow(acked: bool) -> list:
    f = synth.TcpFlow(synth.POOL, synth.SERVER, 40301, 80)
    pkts = f.handshake(0.0, 1378, 1460)
    pkts.append(f.send(0.05, True, b"GET /big HTTP/1.1\r\n\r\n"))
    seq0 = f.s_seq
    pkts.append(f.send(0.10, False, size=1418))
    pkts += [f.resend(0.5 + 0.4 * i, False, seq0, 1418) for i in range(2)]
    if acked:
        pkts.append(f.ack(1.5, True))
    else:  # the receiver is never seen again: only the server's side was captured
        pkts = [p for p in pkts if p[TCP].sport == 80]
    return pkts


def test_receiver_never_seen_again_is_counted_and_said(tmp_path):
    path = tmp_path / "gone.pcap"
    pkts = _flow(acked=False)
    assert sum(p[TCP].seq == pkts[-1][TCP].seq and len(p[TCP].payload) > 500 for p in pkts) == 3
    wrpcap(str(path), pkts)
    r = analyze([path])
    assert "pmtud-black-hole" not in ids(r)
    assert r.files[0].counts["retrans_cannot_tell"] == 1
    assert "no black hole (" + _QUALIFIER in r.verdict
    assert "receiver was never seen again" in r.verdict
    doc = r.to_json()
    assert doc["files"][0]["counts"]["retrans_cannot_tell"] == 1
    assert _QUALIFIER in doc["diagnosis"]["headline"]


def test_receiver_that_acknowledged_is_not_counted(tmp_path):
    path = tmp_path / "acked.pcap"
    wrpcap(str(path), _flow(acked=True))
    r = analyze([path])
    assert "pmtud-black-hole" not in ids(r)
    assert r.files[0].counts["retrans_cannot_tell"] == 0
    assert "could not be judged" not in r.verdict
    assert "could not be judged" not in r.to_json()["diagnosis"]["headline"]
