"""No superlinear path: doubling the items of one kind must not raise the cost per item.

Each check times the same code on a small base, N and 2N items of one kind
(:mod:`benchmarks.scaling` makes them) and compares the cost per item added: from the base to
N, and from N to 2N. A linear path gives a ratio near 1, a quadratic one near 3. The cost is
CPU time (the child's, for the CLI), the best of a few runs: a growth ratio of the same code,
never an absolute time, so a busy machine slows both sides alike.

Kinds covered here: ASA syslog lines, key-log lines, scenario timeline steps, and in a capture
(``labkit analyze`` as a user runs it) distinct flows, DTLS pairs, TLS handshakes and ICMP
errors, each item on a new 5-tuple (:mod:`benchmarks.scaling` makes them), and the text
report's per-flow findings.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks import scaling
from tests.helpers.paths import ROOT
from tests.helpers.tshark import requires_tshark, tshark_fields

#: Cost per item from N to 2N over cost per item from the base to N. Linear: ~1; n log n:
#: ~1.1; quadratic: ~3. The margin absorbs timer noise on a shared machine.
MAX_GROWTH = 1.8
RUNS = 3

pytestmark = pytest.mark.slow


def _child_cpu(cmd: list[str], cwd: Path) -> float:
    """CPU seconds (user + system) of one run of ``cmd`` as a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert proc.returncode in (0, 1), proc.stderr
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _growth(cost: Callable[[int], float], base: int, n: int) -> tuple[float, str]:
    """(cost per item N..2N) / (cost per item base..N), each size timed best of RUNS. The
    sizes take turns, round after round: a machine whose load changes during the check then
    slows each size alike, where timing one size's runs after the other's would not."""
    sizes = (base, n, 2 * n)
    rounds = [[cost(k) for k in sizes] for _ in range(RUNS)]
    t = {k: min(r[i] for r in rounds) for i, k in enumerate(sizes)}
    first = (t[n] - t[base]) / (n - base)
    second = (t[2 * n] - t[n]) / n
    assert first > 0, f"no measurable cost from {base} to {n} items: {t}"
    figures = ", ".join(f"{k}: {v:.3f} s" for k, v in t.items())
    return second / first, figures


def _labkit_analyze(*args: str) -> list[str]:
    return [sys.executable, "-m", "labkit", "analyze", *args, "--format", "json"]


def test_syslog_lines_cost_the_same_each_at_twice_the_lines(tmp_path):
    def cost(n: int) -> float:
        log = tmp_path / f"asa-{n}.log"
        if not log.exists():
            log.write_text(scaling.syslog(n))
        return _child_cpu(_labkit_analyze("--syslog", str(log)), tmp_path)

    ratio, figures = _growth(cost, 1_000, _enough(cost, 1_000, 40_000, 320_000))
    assert ratio < MAX_GROWTH, f"growth {ratio:.2f}: {figures}"


def test_keylog_lines_cost_the_same_each_at_twice_the_lines(tmp_path):
    capture = ROOT / "tests" / "data" / "cstp-tls12.pcap"

    def cost(n: int) -> float:
        keys = tmp_path / f"keys-{n}.log"
        if not keys.exists():
            keys.write_text(scaling.keylog(n))
        return _child_cpu(_labkit_analyze(str(capture), "--keylog", str(keys)), tmp_path)

    ratio, figures = _growth(cost, 1_000, _enough(cost, 1_000, 150_000, 1_200_000))
    assert ratio < MAX_GROWTH, f"growth {ratio:.2f}: {figures}"


def test_connections_cost_the_same_each_beside_a_key_log(tmp_path):
    """With a key log, every new TCP connection's first payload is looked at once (whether
    the log can decrypt it): TLS ClientHellos on new 5-tuples that the log cannot decrypt."""
    keys = ROOT / "tests" / "data" / "cstp-tls12.keylog"

    def cost(n: int) -> float:
        pcap = tmp_path / f"tls-{n}.pcap"
        if not pcap.exists():
            pcap.write_bytes(scaling.capture("tls_handshakes", n))
        return _child_cpu(_labkit_analyze(str(pcap), "--keylog", str(keys)), tmp_path)

    ratio, figures = _growth(cost, 1_000, _enough(cost, 1_000, 400_000, 800_000))
    assert ratio < MAX_GROWTH, f"growth {ratio:.2f}: {figures}"


#: Items per capture kind at N (2N is timed too), and the most N may grow to (see
#: :func:`_enough`): within every per-flow ceiling, so that what is measured is the tables'
#: growth, not their trimming.
CAPTURE_N = {
    "flows": (300_000, 1_200_000),
    "dtls_pairs": (20_000, 160_000),
    "tls_handshakes": (300_000, 1_200_000),
    "icmp_errors": (150_000, 600_000),
    "stun_checks": (150_000, 1_200_000),
    "hello_seqs": (30_000, 120_000),
    "one_sided": (150_000, 600_000),
    "black_holes": (50_000, 200_000),
}
#: CPU seconds the items from the base to N must cost at least. A run of the CLI starts with
#: ~0.3 s of imports that vary by tens of milliseconds from run to run: with 0.1 s of items
#: (100 k SYNs) that jitter alone moved the ratio past the limit. At half a second it cannot.
MIN_WORK = 0.5


def _enough(cost: Callable[[int], float], base: int, n: int, most: int) -> int:
    """``n``, doubled until its items cost :data:`MIN_WORK` beyond the base (at most ``most``):
    a faster labkit then gets larger inputs rather than a check that measures only noise."""
    start = cost(base)
    while 2 * n <= most and cost(n) - start < MIN_WORK:
        n *= 2
    return n


@pytest.mark.parametrize("kind", sorted(CAPTURE_N))
def test_capture_items_cost_the_same_each_at_twice_the_items(tmp_path, kind):
    """Every item on a 5-tuple never seen before: the per-flow state (the MSS detector's
    servers, TLS sessions, DTLS pairs, ICMP quotes) grows by one entry per item, and looking
    an item up or adding it must not cost more in a larger table."""

    def cost(n: int) -> float:
        pcap = tmp_path / f"{kind}-{n}.pcap"
        if not pcap.exists():
            pcap.write_bytes(scaling.capture(kind, n))
        return _child_cpu(_labkit_analyze(str(pcap)), tmp_path)

    n = _enough(cost, 1_000, *CAPTURE_N[kind])
    ratio, figures = _growth(cost, 1_000, n)
    assert ratio < MAX_GROWTH, f"growth {ratio:.2f}: {figures}"


def test_scenario_steps_cost_the_same_each_at_twice_the_steps():
    """Loading and running a scenario's timeline (no packets rendered: that is Scapy's cost per
    packet, linear by construction) with 24 and 48 flow steps, the loader's limit being 50."""
    from labkit.scenario.events import build_timeline
    from labkit.scenario.loader import MAX_STEPS, parse

    n = (MAX_STEPS - scaling.SCENARIO_FIXED_STEPS) // 2
    texts = {k: scaling.scenario(k) for k in (1, n, 2 * n)}
    # Warm caches and check the inputs are what they claim before timing them.
    for k, text in texts.items():
        assert len(build_timeline(parse(text, f"scaling-{k}")).flows) == k

    def cost(k: int) -> float:
        loops, started = 0, time.process_time()
        while loops < 5 or time.process_time() - started < 0.3:
            build_timeline(parse(texts[k], "scaling"))
            loops += 1
        return (time.process_time() - started) / loops

    ratio, figures = _growth(cost, 1, n)
    assert ratio < MAX_GROWTH, f"growth {ratio:.2f}: {figures}"


def test_text_report_costs_the_same_per_finding_at_twice_the_findings():
    """The text report summarises per-flow findings by head-end (a thousand pairs of one kind
    are listed at most, each a finding): deciding whether to summarise an id once per finding,
    over the whole group, cost a million steps at a thousand and made the report of a capture
    of head-end handshakes slower than its analysis."""
    from labkit.analyze.render import to_text
    from labkit.analyze.report import Report
    from labkit.findings import DtlsEstablished, DtlsUnanswered, Evidence

    def report(n: int) -> Report:
        findings = []
        for i in range(n):
            server, client = f"192.0.2.{i % 50}", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
            located = {"evidence": (Evidence("x.pcap", i + 1, 1.0 + i),), "wireshark_filter": ""}
            findings.append(
                DtlsUnanswered(
                    summary="", client=client, server=server, port=443, attempts=3, **located
                )
            )
            findings.append(
                DtlsEstablished(
                    summary="",
                    version=None,
                    version_name=None,
                    port=443,
                    client=client,
                    server=server,
                    **located,
                )
            )
        return Report(files=(), findings=tuple(findings), verdict="")

    reports = {k: report(k) for k in (100, 1_000, 2_000)}
    assert "dtls-unanswered: 2000 flows, 50 head-end(s)" in to_text(reports[2_000])

    def cost(k: int) -> float:
        loops, started = 0, time.process_time()
        while loops < 3 or time.process_time() - started < 0.3:
            to_text(reports[k])
            loops += 1
        return (time.process_time() - started) / loops

    ratio, figures = _growth(cost, 100, 1_000)
    assert ratio < MAX_GROWTH, f"growth {ratio:.2f}: {figures}"


#: What tshark sees once per item of each capture kind (a display filter, UDP 443 as DTLS).
ITEM_FILTER = {
    "flows": "tcp.flags.syn == 1 && tcp.flags.ack == 0",
    "dtls_pairs": "dtls.handshake.type == 3",
    "tls_handshakes": "tls.handshake.type == 1",
    "icmp_errors": "icmp.type == 3 && icmp.code == 4",
    "stun_checks": "stun.type == 0x0001",
    "hello_seqs": "dtls.handshake.type == 1",
    "one_sided": "tcp.len > 0",
    "black_holes": "tcp.len > 0 && !tcp.analysis.retransmission",
}


@requires_tshark
@pytest.mark.parametrize("kind", sorted(scaling.CAPTURE_KINDS))
def test_capture_generators_make_n_items_each_on_a_new_flow(tmp_path, kind):
    """The inputs the per-flow checks use: N items of their kind by tshark's count, each on
    a 5-tuple (for ICMP, the quoted one) never used before."""
    path = tmp_path / f"{kind}.pcap"
    path.write_bytes(scaling.capture(kind, 300))
    rows = tshark_fields(
        path,
        ITEM_FILTER[kind],
        "ip.src",
        "ip.dst",
        "tcp.srcport",
        "udp.srcport",
        extra=("-d", "udp.port==443,dtls", "-E", "occurrence=l"),
    )
    assert len(rows) == 300
    assert len({tuple(r) for r in rows}) == 300
    frames = tshark_fields(path, "frame", "frame.number")
    assert len(frames) == 300 * scaling.PACKETS_PER_ITEM[kind]
