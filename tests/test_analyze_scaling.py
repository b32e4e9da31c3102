"""No superlinear path: doubling each input kind must not raise its cost per item.

For each kind of packet that opens new per-flow state (a TLS ClientHello on its own 5-tuple,
a SYN to its own server, a DTLS ClientHello of its own pair, an ICMP error quoting its own
flow) the same code scans N and 2N of them; the CPU time per item at 2N must stay within
:data:`TOLERANCE` of the time per item at N. A per-event re-sort (the DTLS pairing once
re-sorted every key per new pair) doubles the cost per item at each doubling and fails.
No absolute time is asserted: only the ratio of the same code on two sizes.
"""

from __future__ import annotations

import json
import time

import pytest

from labkit.analyze import analyze, scan_file
from tests.helpers import flowgen
from tests.helpers.cli import labkit
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
    from labkit.pcapio.reader import open_capture

    n, ceiling = 3_000, 1_000
    path = flowgen.write(tmp_path / "tls.pcap", "tls", n)
    facts = FileFacts.new(str(path), max_flows=ceiling)
    with open_capture(str(path)) as cap:
        scan(cap, facts.detectors, str(path))
    kept = facts.tls.sessions
    assert len(kept) <= ceiling and facts.tls.evicted == n - len(kept)
    # The sessions kept are the latest ones (each flow here is quiet after its hello).
    assert min(s.hello_frame for s in kept.values()) > n - ceiling
    (line,) = facts.warnings()
    assert line.startswith(f"{facts.tls.evicted} flow(s) judged early")
    assert f"{facts.tls.evicted} TLS session(s)" in line
    assert facts.budget.judged_early == facts.tls.evicted
    # Unbounded, the same file keeps every session and warns of nothing.
    assert len(scan_file(str(path)).facts.tls.sessions) == n


def test_ipv6_sessions_dropped_at_the_ceiling_take_their_side_tables_along(tmp_path):
    """IPv6 sessions keep their addresses packed in a side table: the sessions dropped at the
    ceiling leave it too (each of these clients is new, so it would grow with the file), and
    the kept ones still name their clients."""
    import struct

    from labkit.analyze.detectors import FileFacts
    from labkit.analyze.engine import scan
    from labkit.pcapio.reader import open_capture

    n, ceiling = 3_000, 1_000
    hello = flowgen._tcp(40001, 443, 0x18, flowgen.tls_client_hello())
    eth6 = flowgen._ETH[:12] + b"\x86\xdd"
    path = tmp_path / "tls6.pcap"
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(n):  # 2001:db8::<i + 1> -> 2001:db8:ffff::1
            src = b"\x20\x01\x0d\xb8" + bytes(8) + struct.pack("!I", i + 1)
            dst = b"\x20\x01\x0d\xb8\xff\xff" + bytes(9) + b"\x01"
            fr = eth6 + struct.pack("!IHBB", 6 << 28, len(hello), 6, 64) + src + dst + hello
            f.write(struct.pack("<IIII", flowgen.T0 + i, 0, len(fr), len(fr)) + fr)
    facts = FileFacts.new(str(path), max_flows=ceiling)
    with open_capture(str(path)) as cap:
        scan(cap, facts.detectors, str(path))
    tls = facts.tls
    kept = tls.sessions
    assert len(kept) <= ceiling and tls.evicted == n - len(kept)
    assert tls._ends.table.index.n == len(kept)
    assert {s.client for s in kept.values()} == {
        f"2001:db8::{i + 1:x}" for i in range(n - len(kept), n)
    }


def test_outstanding_segments_answer_to_the_same_budget(tmp_path):
    """Unacknowledged large segments on distinct flows: the carry keeps the latest within the
    ceiling, and the file's warning and count include what it dropped."""
    n, ceiling = 3_000, 1_000
    path = flowgen.write(tmp_path / "seg.pcap", "segment", n)
    facts = scan_file(str(path), max_flows=ceiling).facts
    carry = facts.retrans.carry
    kept = carry["frame"][carry["live"]]
    assert len(kept) == carry.live <= ceiling
    assert facts.budget.evicted["outstanding segment"] == n - carry.live
    # Frame numbers start at 1: the kept segments are the last ones.
    assert sorted(kept.tolist()) == list(range(n - carry.live + 1, n + 1))
    (line,) = facts.warnings()
    assert f"{n - carry.live} outstanding segment(s)" in line
    assert scan_file(str(path)).facts.retrans.carry.live == n


def test_the_ceiling_is_an_analyze_option_and_the_json_counts_what_it_dropped(tmp_path):
    """``AnalyzeOptions.max_flows`` reaches the scan (one process and ``--jobs``); the file's
    JSON says how many flows were judged early, beside the warning that explains it."""
    from labkit.analyze import AnalyzeOptions

    n, ceiling = 3_000, 1_000
    a = flowgen.write(tmp_path / "a.pcap", "tls", n)
    b = flowgen.write(tmp_path / "b.pcap", "tls", n // 10)
    kept = len(scan_file(str(a), max_flows=ceiling).facts.tls.sessions)
    assert kept <= ceiling
    for jobs in (1, 2):
        r = analyze([a, b], AnalyzeOptions(max_flows=ceiling), jobs=jobs)
        big, small = (f.to_json() for f in r.files)
        assert big["flows_judged_early"] == n - kept
        assert any("flow(s) judged early" in w for w in big["warnings"])
        assert small["flows_judged_early"] == 0
        assert not any("judged early" in w for w in small["warnings"])
    unbounded = analyze([a]).files[0].to_json()
    assert unbounded["flows_judged_early"] == 0
    # the same ceiling from the command line, and a bad one refused in one line
    proc = labkit("analyze", str(a), "--max-flows", str(ceiling), "--format", "json")
    assert json.loads(proc.stdout)["files"][0]["flows_judged_early"] == n - kept, proc.stderr
    bad = labkit("analyze", str(a), "--max-flows", "10")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


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


@requires_tshark
def test_syn_servers_past_the_ceiling_are_dropped_and_the_evidence_stays_exact(tmp_path):
    """SYNs to N servers, one each, and a busy server that gets one SYN in ten: past the
    ceiling the servers quiet the longest are dropped (the warning and the JSON count them),
    the busy one stays, the census and the findings still count every SYN, and the evidence
    is still the first SYNs, which the filter selects exactly (tshark judges)."""
    import struct

    from labkit.analyze import AnalyzeOptions

    n, ceiling, busy = 3_000, 1_000, 0xC0000264  # 192.0.2.100
    path = tmp_path / "syns.pcap"
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(n):
            server = busy if i % 10 == 0 else 0x0B000000 + i
            tcp = flowgen._tcp(40000 + i % 20000, 443, 0x02)
            frame = flowgen._ETH + flowgen._ip(flowgen.client(i), server, 6, tcp)
            f.write(struct.pack("<IIII", flowgen.T0 + i, 0, len(frame), len(frame)) + frame)
    facts = scan_file(str(path), max_flows=ceiling).facts
    mss = facts.mss
    servers = n - n // 10 + 1
    assert len(mss.table.keys) <= ceiling and mss.dropped_from == 2  # the first one-SYN server
    assert facts.budget.evicted["SYN server"] == servers - len(mss.table.keys)
    assert int(mss.table.count.max()) == n // 10  # the busy server kept all its SYNs
    (line,) = facts.warnings()
    assert "SYN server(s)" in line
    r = analyze([path], AnalyzeOptions(max_flows=ceiling))
    assert r.files[0].to_json()["flows_judged_early"] == servers - len(mss.table.keys)
    (syn,) = [x for x in r.findings if x.id == "syn-mss"]
    assert syn.fields["mss"] == 1460 and syn.fields["count"] == n
    assert [e.frame for e in syn.evidence] == list(range(1, 13))
    assert_filters_select_exactly_the_evidence(r)
    # The busy server a head-end: its SYNs and the others' are split, each exactly.
    r = analyze([path], AnalyzeOptions(headends=("192.0.2.100",), max_flows=ceiling))
    syns = {x.fields["role"]: x for x in r.findings if x.id == "syn-mss"}
    assert {k: v.fields["count"] for k, v in syns.items()} == {
        "outer": n // 10,
        "inner": n - n // 10,
    }
    # Exact only as far as both the rows (to the first dropped server's SYN, frame 2) and
    # the group's own first twelve (to frame 12) vouch for: fewer frames, none missing.
    assert [e.frame for e in syns["outer"].evidence] == [1, 11]
    assert [e.frame for e in syns["inner"].evidence] == [f for f in range(2, 13) if f != 11]
    assert_filters_select_exactly_the_evidence(r)


def test_session_hashes_not_stored_are_recomputed_exactly(tmp_path):
    """The session table keeps IPv4 addresses, not their hashes: the hashes it recomputes
    must be the ones the columns give each address, and the texts the decoder's (IPv4, IPv6
    and an IPv4 0.0.0.0 end, which the IPv4 columns cannot hold, alike)."""
    import struct

    from labkit.analyze.decode import addr_hash

    hello = flowgen._tcp(40001, 443, 0x18, flowgen.tls_client_hello())
    v6 = struct.pack("!IHBB", 6 << 28, len(hello), 6, 64) + bytes(15) + b"\x01" + bytes(15)
    eth6 = flowgen._ETH[:12] + b"\x86\xdd"
    frames = [
        flowgen._ETH + flowgen._ip(flowgen.client(1), flowgen.SERVER, 6, hello),
        eth6 + v6 + b"\x02" + hello,  # ::1 -> ::2
        flowgen._ETH + flowgen._ip(0, flowgen.SERVER, 6, hello),
    ]
    path = tmp_path / "mixed.pcap"
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", flowgen.T0 + i, 0, len(fr), len(fr)) + fr)
    tls = scan_file(str(path)).facts.tls
    ch, sh = tls._hashes()
    got = [(s.client, s.server) for s in tls.sessions.values()]
    want = [("10.0.0.2", "203.0.113.1"), ("::1", "::2"), ("0.0.0.0", "203.0.113.1")]
    assert sorted(got) == sorted(want)
    for i, (c, s) in enumerate(got):
        assert (int(ch[i]), int(sh[i])) == (addr_hash(c), addr_hash(s))


def test_frame_numbers_past_32_bits_widen_the_session_table_and_stay_exact(tmp_path):
    """Frame numbers cross 2^32 - 1 in the middle of a head-end's capture (read a few frames a
    chunk): the session table's 32-bit frame columns widen to 64 bits, and it holds the very
    sessions of the same capture numbered from 1, their frames shifted."""
    from benchmarks.generate import generate
    from labkit.analyze.detectors.sessions import TlsDetector
    from tests.helpers.shifted import scan_shifted
    from tests.test_analyze_dtls_table import small_chunks

    path = tmp_path / "headend.pcap"
    generate(path, fmt="pcap", count=20_000, size=None, seed=5, tunnel_mtu=1347, mix="headend")

    def sessions(shift: int) -> tuple[list[tuple], str]:
        det = TlsDetector(str(path))
        scan_shifted(path, [det], shift)
        rows = [
            (s.key, s.client, s.server, s.sport, s.dport, s.start_ts, s.hello_ts, s.last_ts)
            + (s.start_frame - shift, s.hello_frame - shift, s.last_frame - shift)
            + (tuple(sorted(s.prev_last.items())),)
            for s in det.sessions.values()
        ]
        return rows, str(det.t["last_frame"].dtype)

    with small_chunks(1 << 20):
        plain, plain_type = sessions(0)
        late, late_type = sessions(2**32 - 1 - 10_000)  # frame 2^32 - 1 is the 10 000th
    assert (plain_type, late_type) == ("uint32", "int64")
    assert len(plain) > 100 and any(r[-2] > r[-3] for r in plain)  # later packets folded in
    assert late == plain
