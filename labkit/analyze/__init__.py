"""The analyzer: capture files -> findings, fast enough for multi-GB customer captures.

Data flows one way (DESIGN.md section 4): :mod:`~labkit.analyze.reader` (bytes -> record
columns) -> :mod:`~labkit.analyze.decode` (columns and, for the rare packets that decide
verdicts, struct-decoded summaries) -> detectors (per-flow state, never per-packet lists) ->
findings -> :mod:`~labkit.analyze.render`. Scapy is never imported on this path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from labkit.analyze.report import AnalyzeOptions, FileReport, Report
from labkit.errors import InputError

__all__ = ["analyze", "AnalyzeOptions", "FileReport", "Report"]


def analyze(paths: Sequence[str | os.PathLike[str]], options: AnalyzeOptions | None = None) -> Report:
    """Analyze captures of one case; never raises for a bad input file (it becomes an error
    entry in :attr:`Report.files`, and the exit code is 2 only if no file was analyzable)."""
    from labkit.analyze.case import Case, verdict
    from labkit.analyze.decode import SUPPORTED_LINKTYPES, linktype_name
    from labkit.analyze.detectors import FileFacts
    from labkit.analyze.engine import ScanStats, scan
    from labkit.analyze.reader import open_capture

    options = options or AnalyzeOptions()
    facts: dict[str, FileFacts] = {}
    reports: dict[str, FileReport] = {}
    order: list[str] = []
    for p in paths:
        label = str(p)
        order.append(label)
        try:
            cap = open_capture(p)
        except InputError as exc:
            reports[label] = FileReport(label, error=str(exc))
            continue
        ff = FileFacts.new(label)
        stats = ScanStats()
        with cap:
            scan(cap, ff.detectors, label, stats)
        warnings = [str(w) for w in cap.warnings]
        unknown = {lt: n for lt, n in stats.linktype_frames.items()
                   if lt >= 0 and lt not in SUPPORTED_LINKTYPES}
        for lt, n in sorted(unknown.items()):
            warnings.append(f"link type {linktype_name(lt)} is not supported: {n} frame(s) skipped")
        error = None
        if stats.packets == 0:
            error = f"{label}: no packets" + (f" ({warnings[0]})" if warnings else "")
        elif stats.ip_packets == 0:
            error = (f"{label}: no IP packets to analyze"
                     + (f" (link type {', '.join(linktype_name(lt) for lt in unknown)} is not supported)"
                        if unknown else ""))
        reports[label] = FileReport(
            label, cap.description, stats.packets, stats.ip_packets,
            tuple(linktype_name(lt) for lt in cap.linktypes), warnings=tuple(warnings), error=error,
            first_time=stats.first_ts, last_time=stats.last_ts, seconds=stats.seconds,
            stage_seconds=dict(stats.stage_seconds))
        if error is None:
            facts[label] = ff
    case = Case(facts, {k: v for k, v in reports.items() if k in facts}, options)
    for label in facts:
        point, why, cannot = case.capture_point(label)
        r = reports[label]
        reports[label] = FileReport(r.path, r.format, r.packets, r.ip_packets, r.linktypes, point, why,
                                    cannot, r.warnings, r.error, r.first_time, r.last_time, r.seconds,
                                    r.stage_seconds)
    findings = tuple(case.findings()) if facts else ()
    files = tuple(reports[label] for label in order)
    return Report(files, findings, verdict(findings, files), options)
