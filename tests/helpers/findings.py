"""Shared checks for the analyzer tests: tshark judges every finding's filter."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from labkit.analyze.report import Report
from labkit.findings import Finding
from tests.helpers.tshark import tshark_frames


def evidence_by_file(f: Finding) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for e in f.evidence:
        out.setdefault(e.file, []).append(e.frame)
    return out


def assert_filters_select_exactly_the_evidence(report: Report) -> None:
    """For every finding and file: tshark's frames for the filter == the evidence frames.

    The tshark runs (one per finding and file) go in parallel: they are most of the time.
    """
    checks = []
    for f in report.findings:
        assert f.evidence, f"{f.id} has no evidence"
        filters = f.fields.get("wireshark_filters") or {}
        for file, frames in evidence_by_file(f).items():
            filt = filters.get(file, f.wireshark_filter)
            assert "frame.number in" not in filt
            checks.append((f.id, file, filt, sorted(frames)))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda c: tshark_frames(c[1], c[2]), checks))
    for (fid, _file, filt, frames), got in zip(checks, results):
        assert got == frames, f"{fid}: filter {filt!r} selects {got}, evidence {frames}"


def ids(report: Report) -> list[str]:
    return sorted(f.id for f in report.findings)


def one(report: Report, fid: str, **fields) -> Finding:
    found = [
        f
        for f in report.findings
        if f.id == fid and all(f.fields.get(k) == v for k, v in fields.items())
    ]
    assert len(found) == 1, (
        f"expected one {fid} {fields}, got {[x.fields for x in report.findings if x.id == fid]}"
    )
    return found[0]
