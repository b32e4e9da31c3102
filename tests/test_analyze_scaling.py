"""No superlinear path: doubling each input kind must not raise its cost per item.

For each kind of packet that opens new per-flow state (a TLS ClientHello on its own 5-tuple,
a SYN to its own server, a DTLS ClientHello of its own pair, an ICMP error quoting its own
flow) the same code scans N and 2N of them; the CPU time per item at 2N must stay within
:data:`TOLERANCE` of the time per item at N. A per-event re-sort (the DTLS pairing once
re-sorted every key per new pair) doubles the cost per item at each doubling and fails.
No absolute time is asserted: only the ratio of the same code on two sizes.
"""

from __future__ import annotations

import time

import pytest

from labkit.analyze import analyze, scan_file
from tests.helpers import flowgen
from tests.helpers.findings import assert_filters_select_exactly_the_evidence
from tests.helpers.tshark import requires_tshark

N = 30_000
TOLERANCE = 1.6  # a linear path measures ~1.0; a quadratic one 2.0
ROUNDS = 3


def _cpu(path) -> float:
    t = time.process_time()
    scanned = scan_file(str(path))
    assert scanned.report.error is None and scanned.facts is not None
    return time.process_time() - t


@pytest.mark.parametrize("kind", ["tls", "syn", "dtls", "icmp"])
def test_cost_per_item_does_not_grow_when_the_input_doubles(tmp_path, kind):
    small = flowgen.write(tmp_path / "n.pcap", kind, N)
    large = flowgen.write(tmp_path / "2n.pcap", kind, 2 * N)
    # Interleaved rounds, best of each: both sizes see the same load on a shared machine.
    best_small = best_large = float("inf")
    for _ in range(ROUNDS):
        best_small = min(best_small, _cpu(small))
        best_large = min(best_large, _cpu(large))
    per_small, per_large = best_small / N, best_large / (2 * N)
    assert per_large <= TOLERANCE * per_small, (
        f"{kind}: {per_small * 1e6:.1f} us per item at {N}, {per_large * 1e6:.1f} at {2 * N}"
    )


def test_each_kind_opens_one_new_flow_per_packet(tmp_path):
    """The generator does what the scaling test relies on: N distinct flows, pairs, servers."""
    n = 500
    facts = {
        k: scan_file(str(flowgen.write(tmp_path / f"{k}.pcap", k, n))).facts
        for k in ("tls", "syn", "dtls", "icmp")
    }
    assert len(facts["tls"].tls.sessions) == n
    assert len(facts["syn"].mss.table.keys) == n
    assert len(facts["dtls"].dtls.pairs) == n
    assert sum(g.frames.count for g in facts["icmp"].icmp.frag.values()) == n


def test_the_session_ceiling_drops_the_quietest_and_says_so(tmp_path):
    from labkit.analyze.detectors import FileFacts
    from labkit.analyze.engine import scan
    from labkit.analyze.reader import open_capture

    n, ceiling = 3_000, 1_000
    path = flowgen.write(tmp_path / "tls.pcap", "tls", n)
    facts = FileFacts.new(str(path), max_sessions=ceiling)
    with open_capture(str(path)) as cap:
        scan(cap, facts.detectors, str(path))
    kept = facts.tls.sessions
    assert len(kept) <= ceiling and facts.tls.evicted == n - len(kept)
    # The sessions kept are the latest ones (each flow here is quiet after its hello).
    assert min(s.hello_frame for s in kept.values()) > n - ceiling
    (line,) = facts.warnings()
    assert line.startswith(f"{facts.tls.evicted} TLS session(s) judged early")
    # Unbounded, the same file keeps every session and warns of nothing.
    assert len(scan_file(str(path)).facts.tls.sessions) == n


@requires_tshark
def test_syn_evidence_over_many_servers_is_exact(tmp_path):
    """SYNs to two servers, 40 each, interleaved: each server keeps its first frames only, so
    the merged evidence must stop where either's kept frames end, and the filter must select
    exactly those frames (tshark judges)."""
    import struct

    path = tmp_path / "syns.pcap"
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(80):
            server = 0xC0000264 + i % 2  # 192.0.2.100 and .101
            tcp = flowgen._tcp(40000 + i, 443, 0x02)
            frame = flowgen._ETH + flowgen._ip(flowgen.client(i), server, 6, tcp)
            f.write(struct.pack("<IIII", flowgen.T0 + i, 0, len(frame), len(frame)) + frame)
    r = analyze([path])
    syn = [x for x in r.findings if x.id == "syn-mss"]
    assert len(syn) == 1 and syn[0].fields["mss"] == 1460
    assert len(syn[0].evidence) == 12
    assert_filters_select_exactly_the_evidence(r)
