"""DTLS on a busy head-end: many client/server pairs stay bounded, in memory and in the report.

The captures are crafted with Scapy (tests/helpers/synth.py): AnyConnect clients (record
version 0x0100) retrying their ClientHellos to a head-end that never answers; tshark counts
the pairs on its own and judges the listed findings' filters.
"""

from __future__ import annotations

from scapy.utils import wrpcap

from benchmarks import scaling
from labkit.analyze import analyze, scan_file
from labkit.analyze.case import MAX_LISTED_PAIRS
from labkit.analyze.detectors.dtlspairs import PAIR_BYTES
from labkit.analyze.engine import FlowBudget
from tests.helpers import flowgen, synth
from tests.helpers.cli import labkit
from tests.helpers.tshark import requires_tshark, tshark_fields, tshark_frames

H = synth.HEADEND


def _unanswered_clients(n: int) -> list:
    """``n`` clients, each retrying a ClientHello a second later with no answer, then still
    talking to the head-end (the capture covers them after their last hello)."""
    pkts = []
    for i in range(n):
        client = f"10.9.{i // 200}.{i % 200 + 1}"
        t = i * 0.01
        for k in range(2):
            hello = synth.dtls_client_hello(0x0100, rec_seq=k)
            pkts.append(synth.udp(client, H, 52000, 443, hello, t + k))
        dns = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
        pkts.append(synth.udp(client, H, 53000, 53, dns, t + 5))
        pkts.append(synth.udp(H, client, 53, 53000, dns, t + 5.001))
    return sorted(pkts, key=lambda p: float(p.time))


@requires_tshark
def test_many_unanswered_pairs_are_listed_up_to_the_bound_and_counted(tmp_path):
    n = MAX_LISTED_PAIRS + 13
    path = tmp_path / "busy.pcap"
    wrpcap(str(path), _unanswered_clients(n))
    clients = {r[0] for r in tshark_fields(path, "dtls.handshake.type == 1", "ip.src")}
    assert len(clients) == n  # tshark sees every pair
    r = analyze([path])
    found = [f for f in r.findings if f.id == "dtls-unanswered"]
    assert len(found) == MAX_LISTED_PAIRS + 1
    listed, rest = found[:-1], found[-1]
    assert all("more_pairs" not in f.fields for f in listed)
    # The last one stands for itself and the pairs not listed: every pair is accounted for.
    assert rest.fields["more_pairs"] == n - MAX_LISTED_PAIRS - 1
    assert f"{n - MAX_LISTED_PAIRS - 1} more client/server pair(s)" in rest.summary
    assert {f.fields["client"] for f in found} <= clients
    assert len({f.fields["client"] for f in found}) == len(found)
    assert r.verdict.startswith("PROBLEM") and "DTLS unanswered" in r.verdict
    for f in (listed[0], listed[-1], rest):  # tshark runs once a finding: three of them
        assert tshark_frames(path, f.wireshark_filter) == sorted(e.frame for e in f.evidence)
    # The text report's summary counts every pair, listed or not.
    text = labkit("analyze", str(path)).stdout
    assert f"] dtls-unanswered: {n} flows, 1 head-end(s)" in text
    assert f"(and {n - MAX_LISTED_PAIRS - 1} more not listed one by one)" in text


def test_pairs_up_to_the_bound_are_each_listed(tmp_path):
    path = tmp_path / "few.pcap"
    wrpcap(str(path), _unanswered_clients(MAX_LISTED_PAIRS))
    found = [f for f in analyze([path]).findings if f.id == "dtls-unanswered"]
    assert len(found) == MAX_LISTED_PAIRS
    assert all("more_pairs" not in f.fields for f in found)


def test_the_dtls_table_stays_within_the_budget_and_drops_the_quietest(tmp_path):
    """N DTLS ClientHellos, each of its own pair: past the budget's ceiling for rows of a
    pair's size the table keeps the latest pairs, the file's warning says how many were
    dropped, and the census still counts every flow."""
    n, max_flows = 4_000, 2_000
    path = flowgen.write(tmp_path / "dtls.pcap", "dtls", n)
    budget = FlowBudget(max_flows)
    ceiling = budget.ceiling(PAIR_BYTES)
    assert ceiling < n // 2  # the file outgrows the ceiling
    facts = scan_file(str(path), max_flows=max_flows).facts
    pairs = facts.dtls.pairs
    assert len(pairs) <= ceiling
    dropped = facts.budget.evicted["DTLS pair"]
    assert dropped == n - len(pairs) == facts.dtls.early_flows
    # Each pair is quiet after its one hello (frame i + 1): the kept ones are the last ones.
    assert sorted(p.seen for p in pairs.values()) == list(range(n - len(pairs) + 1, n + 1))
    (line,) = facts.warnings()
    assert line.startswith(f"{dropped} flow(s) judged early") and f"{dropped} DTLS pair(s)" in line
    assert facts.census(())["dtls_flows"] == n
    # The addresses watched for coverage go with their pairs: past twice what the kept pairs
    # can name (two each), those of dropped pairs are dropped.
    watched = facts.dtls.watch.addrs
    assert len(watched) <= 4 * ceiling
    # Unbounded, the same file keeps every pair (every address watched), and warns of nothing.
    unbounded = scan_file(str(path)).facts
    assert len(unbounded.dtls.pairs) == n and not unbounded.warnings()
    assert len(unbounded.dtls.watch.addrs) == n + 1 > 4 * ceiling  # each client, the server


def test_stun_pair_keys_stay_within_the_budget_and_keep_the_latest(tmp_path):
    """N STUN checks, each from a new endpoint (two pair keys each, one per orientation):
    past the ceiling the keys seen longest ago go, the file's warning counts them, and the
    keys of the latest checks are still known (a DTLS pair on them would be WebRTC)."""
    n, max_flows = 6_000, 2_000
    path = tmp_path / "stun.pcap"
    path.write_bytes(scaling.capture("stun_checks", n))
    facts = scan_file(str(path), max_flows=max_flows).facts
    watch = facts.dtls.watch
    kept = watch.stun_keys.index.n
    assert kept <= FlowBudget(max_flows).ceiling()
    assert facts.budget.evicted["STUN pair key"] == 2 * n - kept
    (line,) = facts.warnings()
    assert f"{2 * n - kept} STUN pair key(s)" in line
    everything = scan_file(str(path)).facts.dtls.watch
    keys = everything.stun_keys.keys  # by id: chunk after chunk, as first seen
    assert len(keys) == 2 * n
    assert watch.stunned(keys[-kept:]).all() and not watch.stunned(keys[:-kept]).any()
