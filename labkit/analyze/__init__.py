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

__all__ = ["analyze", "scan_file", "AnalyzeOptions", "FileReport", "Report"]


def scan_file(path: str | os.PathLike[str], progress=None):
    """Read and fold one file: (its report without the case's conclusions, its facts or None).

    A top-level function so ``--jobs`` can run it in worker processes (facts pickle).
    """
    from labkit.analyze.decode import SUPPORTED_LINKTYPES, linktype_name
    from labkit.analyze.detectors import FileFacts
    from labkit.analyze.engine import ScanStats, scan
    from labkit.analyze.reader import open_capture

    label = str(path)
    try:
        cap = open_capture(path)
    except InputError as exc:
        return FileReport(label, error=str(exc)), None
    ff = FileFacts.new(label)
    stats = ScanStats()
    with cap:
        scan(cap, ff.detectors, label, stats,
             progress=(lambda done, pkts: progress(label, done, cap.size, pkts)) if progress else None)
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
    report = FileReport(label, cap.description, stats.packets, stats.ip_packets,
                        tuple(linktype_name(lt) for lt in cap.linktypes), warnings=tuple(warnings),
                        error=error, first_time=stats.first_ts, last_time=stats.last_ts,
                        seconds=stats.seconds, stage_seconds=dict(stats.stage_seconds))
    return report, (ff if error is None else None)


def analyze(paths: Sequence[str | os.PathLike[str]], options: AnalyzeOptions | None = None,
            *, jobs: int = 1, progress=None) -> Report:
    """Analyze captures of one case; never raises for a bad input file (it becomes an error
    entry in :attr:`Report.files`, and the exit code is 2 only if no file was analyzable).

    ``jobs`` > 1 reads the files in that many worker processes; ``progress(file, done, total,
    packets)`` is called as reading goes on (in this process only).
    """
    from labkit.analyze.case import Case, verdict

    options = options or AnalyzeOptions()
    labels = [str(p) for p in paths]
    if jobs > 1 and len(labels) > 1:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(max_workers=min(jobs, len(labels))) as pool:
            results = []
            for label, res in zip(labels, pool.map(scan_file, labels)):
                results.append(res)
                if progress:
                    progress(label, 1, 1, res[0].packets)
    else:
        results = [scan_file(p, progress) for p in labels]
    reports = {label: r for label, (r, _f) in zip(labels, results)}
    facts = {label: f for label, (_r, f) in zip(labels, results) if f is not None}
    case = Case(facts, {k: v for k, v in reports.items() if k in facts}, options)
    for label in facts:
        point, why, cannot = case.capture_point(label)
        r = reports[label]
        reports[label] = FileReport(r.path, r.format, r.packets, r.ip_packets, r.linktypes, point, why,
                                    cannot, r.warnings, r.error, r.first_time, r.last_time, r.seconds,
                                    r.stage_seconds)
    findings = tuple(case.findings()) if facts else ()
    files = tuple(reports[label] for label in labels)
    return Report(files, findings, verdict(findings, files), options)
