"""The analyzer: capture files -> findings, fast enough for multi-GB customer captures.

Data flows one way (DESIGN.md section 4): :mod:`~labkit.analyze.reader` (bytes -> record
columns) -> :mod:`~labkit.analyze.decode` (columns and, for the rare packets that decide
verdicts, struct-decoded summaries) -> detectors (per-flow state, never per-packet lists) ->
findings -> :mod:`~labkit.analyze.render`. Scapy is never imported on this path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from labkit.analyze.progress import Progress
from labkit.analyze.report import AnalyzeOptions, FileReport, Report
from labkit.errors import InputError

if TYPE_CHECKING:
    from labkit.analyze.detectors import FileFacts
    from labkit.analyze.diagnosis import Fragmented

__all__ = ["analyze", "AnalyzeOptions", "FileReport", "Report"]


def analyze(
    paths: Sequence[str | os.PathLike[str]],
    options: AnalyzeOptions | None = None,
    *,
    jobs: int = 1,
    progress: Progress | None = None,
) -> Report:
    """Analyze captures of one case; never raises for a bad input file (it becomes an error
    entry in :attr:`Report.files`, and the exit code is 2 only if no file was analyzable).

    ``jobs`` > 1 scans the files in that many processes (:mod:`labkit.analyze.parallel`);
    the case is joined here either way. ``progress`` is told how far the scans are."""
    from labkit.analyze.case import Case, verdict

    options = options or AnalyzeOptions()
    labels = [str(p) for p in paths]
    if jobs > 1 and len(labels) > 1:
        from labkit.analyze.parallel import scan_files

        scanned = scan_files(labels, jobs, progress)
    else:
        scanned = []
        bytes_before = packets_before = 0
        for i, label in enumerate(labels):
            hook = (
                None
                if progress is None
                else _progress_hook(progress, bytes_before, packets_before, i)
            )
            scanned.append(scan_file(label, hook))
            bytes_before += _size(label)
            packets_before += scanned[-1][0].packets
    reports = {r.path: r for r, _ in scanned}
    facts = {r.path: ff for r, ff in scanned if ff is not None}
    case = Case(facts, {k: v for k, v in reports.items() if k in facts}, options)
    mtus = [lim.mtu for lim in case.limits()]
    for label in facts:
        point, why, cannot = case.capture_point(label)
        r = reports[label]
        reports[label] = FileReport(
            r.path,
            r.format,
            r.packets,
            r.ip_packets,
            r.linktypes,
            point,
            why,
            cannot,
            r.warnings,
            r.error,
            r.first_time,
            r.last_time,
            r.seconds,
            r.stage_seconds,
            facts[label].census(mtus),
        )
    findings = tuple(case.findings()) if facts else ()
    files = tuple(reports[label] for label in labels)
    return Report(files, findings, verdict(findings, files), options, fragments=_fragments(facts))


def _fragments(facts: dict[str, FileFacts]) -> tuple[Fragmented, ...]:
    """Each file's IPv4 fragments, as the diagnosis reads them."""
    from labkit.analyze.diagnosis import Fragmented
    from labkit.findings import Evidence

    return tuple(
        Fragmented(
            file,
            tuple(ff.frags.sizes.most_common()),
            tuple(Evidence(file, fr, t) for fr, t in ff.frags.frames.frames),
        )
        for file, ff in facts.items()
        if ff.frags.sizes
    )


def scan_file(
    label: str, on_chunk: Callable[[int, int], None] | None = None
) -> tuple[FileReport, FileFacts | None]:
    """Read one file through every detector: its report, and its facts if it was analyzable.

    Self-contained (it takes a path, returns picklable results) so that ``--jobs`` can run
    it in another process."""
    from labkit.analyze.decode import SUPPORTED_LINKTYPES, linktype_name
    from labkit.analyze.detectors import FileFacts
    from labkit.analyze.engine import ScanStats, scan
    from labkit.analyze.reader import open_capture

    try:
        cap = open_capture(label)
    except InputError as exc:
        return FileReport(label, error=str(exc)), None
    ff = FileFacts.new(label)
    stats = ScanStats()
    with cap:
        scan(cap, ff.detectors, label, stats, on_chunk)
    warnings = [str(w) for w in cap.warnings]
    unknown = {
        lt: n
        for lt, n in stats.linktype_frames.items()
        if lt >= 0 and lt not in SUPPORTED_LINKTYPES
    }
    for lt, n in sorted(unknown.items()):
        warnings.append(f"link type {linktype_name(lt)} is not supported: {n} frame(s) skipped")
    error = None
    if stats.packets == 0:
        error = f"{label}: no packets" + (f" ({warnings[0]})" if warnings else "")
    elif stats.ip_packets == 0:
        error = f"{label}: no IP packets to analyze" + (
            f" (link type {', '.join(linktype_name(lt) for lt in unknown)} is not supported)"
            if unknown
            else f" ({warnings[0]})"
            if warnings
            else ""
        )
    report = FileReport(
        label,
        cap.description,
        stats.packets,
        stats.ip_packets,
        tuple(linktype_name(lt) for lt in cap.linktypes),
        warnings=tuple(warnings),
        error=error,
        first_time=stats.first_ts,
        last_time=stats.last_ts,
        seconds=stats.seconds,
        stage_seconds=dict(stats.stage_seconds),
    )
    return report, (ff if error is None else None)


def _progress_hook(
    progress: Progress, bytes_before: int, packets_before: int, i: int
) -> Callable[[int, int], None]:
    """File ``i``'s chunk callback: its position, offset by the files scanned before it."""

    def on_chunk(pos: int, packets: int) -> None:
        progress.update(bytes_before + pos, packets_before + packets, i)

    return on_chunk


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
