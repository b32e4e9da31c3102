"""The analyzer on 540 real captures from other projects' test suites, as a customer's
capture would arrive: it never fails inside, its counts equal tshark's, every finding's
Wireshark filter selects exactly its evidence, and it raises no error verdict that a person
has not checked against the capture (``CHECKED_ERRORS`` names each file and why).

tshark runs once per file for the counts (``tests/helpers/corpus.py``) and once per finding and file
for the filters, two at a time: the test takes minutes, so it is marked ``slow``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from labkit.analyze import analyze
from labkit.analyze.report import Report
from tests.helpers.corpus import TsharkCounts, tshark_counts, tshark_frames
from tests.helpers.findings import evidence_by_file
from tests.helpers.paths import ROOT
from tests.helpers.tshark import requires_tshark

CORPUS = ROOT.parent / "shared" / "captures" / "corpus"
COMPARED = (
    "syn_mss",
    "synack_mss",
    "icmp_frag_needed_mtu",
    "icmpv6_packet_too_big_mtu",
    "dtls_client_hellos_by_version",
)

#: Error verdicts a person has checked against the capture: path below the corpus -> why the
#: capture shows that failure. Empty: no file of the corpus shows an MTU or DTLS failure.
CHECKED_ERRORS: dict[str, str] = {}

pytestmark = [
    pytest.mark.slow,
    requires_tshark,
    pytest.mark.skipif(not CORPUS.is_dir(), reason=f"no corpus of real captures at {CORPUS}"),
]


@dataclass
class Result:
    path: Path
    report: Report | None
    crash: str
    tshark: TsharkCounts

    @property
    def name(self) -> str:
        return str(self.path.relative_to(CORPUS))


def _one(path: Path) -> Result:
    try:
        report, crash = analyze([path]), ""
    except Exception as exc:  # the finding of this test: any exception is an internal error
        report, crash = None, f"{type(exc).__name__}: {exc}"
    dups = report.files[0].counts.get("duplicate_frames", 0) if report else 0
    return Result(path, report, crash, tshark_counts(path, dups))


@pytest.fixture(scope="module")
def results() -> list[Result]:
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix != ".md")
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(_one, files))


def test_the_corpus_is_whole(results: list[Result]) -> None:
    assert len(results) >= 540


def test_no_internal_error(results: list[Result]) -> None:
    crashed = [f"{r.name}: {r.crash}" for r in results if r.crash]
    assert not crashed, crashed


def test_counts_equal_tsharks(results: list[Result]) -> None:
    """SYN and SYN-ACK MSS, ICMP frag-needed and Packet Too Big MTUs, DTLS ClientHellos by
    version: inner packets of encapsulations included, ICMP quotes left out, duplicate frames
    counted once (tshark reads editcap's copy), on both sides; and the duplicates agree with
    editcap's."""
    diffs = []
    for r in results:
        if r.report is None:
            continue
        counts = r.report.files[0].counts
        want = r.tshark.as_counts()
        for key in COMPARED:
            if counts.get(key, {}) != want[key]:
                diffs.append(f"{r.name} {key}: labkit {counts.get(key, {})}, tshark {want[key]}")
        by_rule = [n for n in r.tshark.duplicates if n is not None]
        if counts and by_rule:
            n = counts["duplicate_frames"]
            # labkit's rule is both of editcap's at once: at most what either removes, and
            # exactly that where the two agree.
            if n > min(by_rule) or (len(set(by_rule)) == 1 and n != by_rule[0]):
                diffs.append(f"{r.name} duplicate_frames: labkit {n}, editcap -d/-w {by_rule}")
    assert not diffs, "\n".join(diffs)


def test_filters_select_exactly_the_evidence(results: list[Result]) -> None:
    checks = []
    for r in results:
        for f in r.report.findings if r.report else ():
            filters = f.fields.get("wireshark_filters") or {}
            for file, frames in evidence_by_file(f).items():
                checks.append((r.name, f.id, file, filters.get(file, f.wireshark_filter), frames))
    assert checks, "no finding on the whole corpus: the filter check checked nothing"
    with ThreadPoolExecutor(max_workers=2) as pool:
        got = list(pool.map(lambda c: tshark_frames(Path(c[2]), c[3]), checks))
    bad = [
        f"{name} {fid}: {filt!r} selects {frames_got[:12]}, evidence {sorted(frames)}"
        for (name, fid, _file, filt, frames), frames_got in zip(checks, got)
        if frames_got != sorted(frames)
    ]
    assert not bad, "\n".join(bad)


def test_no_error_verdict_unless_checked_by_hand(results: list[Result]) -> None:
    unchecked = [
        f"{r.name}: {f.id}: {f.summary}"
        for r in results
        for f in (r.report.findings if r.report else ())
        if f.severity == "error" and r.name not in CHECKED_ERRORS
    ]
    assert not unchecked, "\n".join(unchecked)
    stale = set(CHECKED_ERRORS) - {
        r.name
        for r in results
        if r.report and any(f.severity == "error" for f in r.report.findings)
    }
    assert not stale, f"checked by hand but no longer an error verdict: {sorted(stale)}"
