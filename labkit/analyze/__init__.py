"""The analyzer: capture files -> findings, fast enough for multi-GB customer captures.

Data flows one way (DESIGN.md section 4): :mod:`~labkit.pcapio.reader` (bytes -> record
columns) -> :mod:`~labkit.analyze.decode` (columns and, for the rare packets that decide
verdicts, struct-decoded summaries) -> detectors (per-flow state, never per-packet lists) ->
findings -> :mod:`~labkit.analyze.render`. Scapy is never imported on this path.

Each capture is read once: every consumer of packets (the detectors with their evidence
frames, the key-log decryptor, the plot's sampler) is fed the same chunks in that one pass,
so a pipe can be analyzed. Judging (:mod:`~labkit.analyze.case`) then works on what the pass
collected and never opens a capture.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from labkit.analyze.progress import Progress
from labkit.analyze.report import AnalyzeOptions, FileReport, Report
from labkit.errors import InputError

if TYPE_CHECKING:
    from labkit.analyze.decrypt import DecryptReport
    from labkit.analyze.detectors import FileFacts
    from labkit.analyze.diagnosis import Fragmented
    from labkit.analyze.engine import ScanStats
    from labkit.analyze.grouping import CaseGroup
    from labkit.analyze.keylog import KeyLog
    from labkit.analyze.plotdata import Sampler
    from labkit.analyze.sources import SourceReport
    from labkit.analyze.timeline import LogInputs
    from labkit.findings import Finding
    from labkit.pcapio.reader import Capture

__all__ = ["analyze", "scan", "judge", "AnalyzeOptions", "Collect", "FileReport", "Report"]


@dataclass(frozen=True, slots=True)
class Collect:
    """What the one pass collects besides the detectors' facts: the decryption of the flows
    ``keylog`` holds keys for, and the plot's packet sample (``plot``)."""

    keylog: KeyLog | None = None
    plot: bool = False


@dataclass(frozen=True, slots=True)
class Scanned:
    """One file after its pass: its report, its facts if it was analyzable, and what the
    other consumers collected (None when not asked for, or the file could not be opened)."""

    report: FileReport
    facts: FileFacts | None = None
    decrypted: DecryptReport | None = None
    sample: Sampler | None = None


def analyze(
    paths: Sequence[str | os.PathLike[str]],
    options: AnalyzeOptions | None = None,
    *,
    jobs: int = 1,
    progress: Progress | None = None,
    collect: Collect = Collect(),
) -> Report:
    """Analyze captures of one case; never raises for a bad input file (it becomes an error
    entry in :attr:`Report.files`, and the exit code is 2 only if no file was analyzable).
    :func:`scan`, then :func:`judge`."""
    options = options or AnalyzeOptions()
    return judge(scan(paths, options, jobs=jobs, progress=progress, collect=collect), options)


def scan(
    paths: Sequence[str | os.PathLike[str]],
    options: AnalyzeOptions,
    *,
    jobs: int = 1,
    progress: Progress | None = None,
    collect: Collect = Collect(),
) -> list[Scanned]:
    """The one pass over each capture. ``jobs`` > 1 scans the files in that many processes
    (:mod:`labkit.analyze.parallel`). ``progress`` is told how far the scans are.
    ``collect``: what else the pass gathers (:attr:`Report.decrypted`, :attr:`Report.samples`)."""
    labels = [str(p) for p in paths]
    if jobs > 1 and len(labels) > 1:
        from labkit.analyze.parallel import scan_files

        return scan_files(labels, jobs, progress, collect, options.tunnel_mtu, options.max_flows)
    scanned = []
    bytes_before = packets_before = 0
    for i, label in enumerate(labels):
        hook = (
            None if progress is None else _progress_hook(progress, bytes_before, packets_before, i)
        )
        scanned.append(
            scan_file(label, hook, collect, options.tunnel_mtu, max_flows=options.max_flows)
        )
        bytes_before += _size(label)
        packets_before += scanned[-1].report.packets
    return scanned


def judge(
    scanned: Sequence[Scanned],
    options: AnalyzeOptions,
    logs: LogInputs | None = None,
    sources: Sequence[SourceReport] = (),
) -> Report:
    """The case's findings and verdict: a pure function of what the passes collected and of
    the logs already read (``logs``, with ``sources``, their accounts); it reads no file.
    A decrypted CSTP CONNECT names its server as a head-end; the logs' evidence joins the
    capture findings (:func:`labkit.analyze.timeline.join`)."""
    from labkit.analyze.case import Case, verdict

    reports = {s.report.path: s.report for s in scanned}
    facts = {s.report.path: s.facts for s in scanned if s.facts is not None}
    decrypted = tuple((s.report.path, s.decrypted) for s in scanned if s.decrypted is not None)
    if decrypted:
        from labkit.analyze.timeline import tunnel_dtls, tunnel_headends

        heads = [*options.headends, *tunnel_headends(r for _p, r in decrypted)]
        dtls = [*options.tunnel_dtls, *tunnel_dtls(r for _p, r in decrypted)]
        options = replace(
            options, headends=tuple(dict.fromkeys(heads)), tunnel_dtls=tuple(dict.fromkeys(dtls))
        )
    groups = _groups(facts, reports, options, _vpn_sessions(facts, decrypted, options))
    found: list[Finding] = []
    for g in groups:  # each case judged on its own: one file's MTU is no limit for another
        case = Case({k: facts[k] for k in g.files}, {k: reports[k] for k in g.files}, options)
        mtus = [lim.mtu for lim in case.limits()]
        for label in g.files:
            point, why, cannot = case.capture_point(label)
            reports[label] = replace(
                reports[label],
                capture_point=point,
                capture_point_reason=why,
                cannot_show=cannot,
                cannot_tell=case.cannot_tell(label),
                counts=facts[label].census(mtus),
            )
        found += case.findings()
    dedup = {k: ff.dedup for k, ff in facts.items() if ff.dedup.count}
    if dedup:
        from labkit.analyze.duplicates import without_duplicates

        found = [without_duplicates(f, dedup) for f in found]
    order = {"error": 0, "warning": 1, "info": 2}
    findings = tuple(sorted(found, key=lambda f: order[f.severity or "info"]))
    if sources:
        from labkit.analyze.timeline import LogInputs, join

        inputs = replace(logs or LogInputs(), decrypted=decrypted)
        findings = tuple(join(findings, inputs))
    files = tuple(reports[s.report.path] for s in scanned)
    samples = tuple((s.report.path, s.sample) for s in scanned if s.sample and s.facts)
    logs_read = any(s.analyzable for s in sources)
    return Report(
        files,
        findings,
        verdict(findings, files, logs_read),
        options,
        sources=tuple(sources),
        decrypted=decrypted,
        samples=samples,
        cases=tuple(groups),
        fragments=_fragments(facts),
    )


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


def _vpn_sessions(
    facts: dict[str, FileFacts],
    decrypted: Sequence[tuple[str, DecryptReport]],
    options: AnalyzeOptions,
) -> dict[str, frozenset[str]]:
    """Per file, the VPN sessions it shows by their X-DTLS-Session-ID: the decrypted CONNECTs
    that issued them, and DTLS ClientHellos that carry one of them."""
    if not options.tunnel_dtls:
        return {}
    from labkit.analyze.timeline import tunnel_dtls

    named = {t.session_id for t in options.tunnel_dtls}
    out = {
        k: ff.dtls.table.session_ids_among(np.arange(len(ff.dtls.table)), named)
        for k, ff in facts.items()
    }
    for path, rep in decrypted:
        if path in out:
            out[path] |= {t.session_id for t in tunnel_dtls([rep])}
    return {k: frozenset(v) for k, v in out.items() if v}


def _groups(
    facts: dict[str, FileFacts],
    reports: dict[str, FileReport],
    options: AnalyzeOptions,
    sessions: dict[str, frozenset[str]],
) -> list[CaseGroup]:
    """The cases among the analyzable files (:mod:`labkit.analyze.grouping`)."""
    from labkit.analyze.case import Case
    from labkit.analyze.grouping import FileSketch, group

    if options.one_case or len(facts) < 2:
        return group([FileSketch(k, None, None, np.zeros(0, np.uint64), "") for k in facts], True)
    sketches = [
        FileSketch(
            label,
            reports[label].first_time,
            reports[label].last_time,
            ff.hosts.hosts,
            Case({label: ff}, {label: reports[label]}, options).capture_point(label)[0],
            sessions.get(label, frozenset()),
        )
        for label, ff in facts.items()
    ]
    return group(sketches)


def scan_file(
    label: str,
    on_chunk: Callable[[int, int], None] | None = None,
    collect: Collect = Collect(),
    tunnel_mtu: int | None = None,
    *,
    follow: threading.Event | None = None,
    watch: Callable[[Callable[[], Scanned], bool], None] | None = None,
    max_flows: int | None = None,
) -> Scanned:
    """Read one file once, through every detector and every consumer ``collect`` asks for.

    Self-contained (it takes a path, returns picklable results) so that ``--jobs`` can run
    it in another process. ``tunnel_mtu`` (``--tunnel-mtu``) sets the plot sampler's floor.
    ``follow``: the file is still being written (:func:`~labkit.pcapio.reader.open_capture`);
    ``watch(scanned, quiet)`` is then called after every chunk (``quiet`` False) and while the
    writer is silent (``quiet`` True, every :data:`~labkit.pcapio.reader.FOLLOW_POLL_S`);
    ``scanned()`` gives the file as scanned so far, built only if asked for. ``max_flows``: the
    ceiling of each per-flow table (None: :data:`~labkit.analyze.engine.MAX_FLOWS`)."""
    from labkit.analyze.detectors import FileFacts
    from labkit.analyze.engine import MAX_FLOWS, ScanStats, scan
    from labkit.pcapio.reader import open_capture

    scanning = False  # the writer can fall silent before the file's header is read

    def quiet() -> None:
        if scanning and watch is not None:
            watch(scanned, True)

    try:
        cap = open_capture(label, follow=follow, quiet=quiet if watch is not None else None)
    except InputError as exc:
        return Scanned(FileReport(label, error=str(exc)))
    ff = FileFacts.new(label, MAX_FLOWS if max_flows is None else max_flows)
    consumers: list = list(ff.detectors)
    decryption = sample = None
    if collect.keylog is not None:
        from labkit.analyze.sources import KeyedDecryption

        decryption = KeyedDecryption(collect.keylog, timeline=collect.plot)
        # fed first and last: its tunnel's records are walked while the detectors run
        consumers = [decryption.ahead, *consumers, decryption]
    if collect.plot:
        from labkit.analyze.plotdata import Sampler

        sample = Sampler(tunnel_mtu)
        consumers.append(sample)
    stats = ScanStats()

    def scanned() -> Scanned:
        report = replace(
            _file_report(label, cap, stats, ff.warnings(), ff.coverage.by_reason()),
            flows_judged_early=ff.budget.judged_early,
        )
        return Scanned(
            report,
            ff if report.error is None else None,
            decryption.report() if decryption is not None else None,
            sample,
        )

    hook = on_chunk
    if watch is not None:

        def hook(pos: int, packets: int) -> None:
            if on_chunk is not None:
                on_chunk(pos, packets)
            watch(scanned, False)

    scanning = True
    with cap:
        scan(cap, consumers, label, stats, hook, ff.dedup)
    return scanned()


def _file_report(
    label: str,
    cap: Capture,
    stats: ScanStats,
    given_up: Sequence[str] = (),
    not_inspected: dict[str, int] | None = None,
) -> FileReport:
    """What one file is, from its reader and its scan's counts (so far); ``given_up``: what
    the detectors' bounded tables gave up (:meth:`FileFacts.warnings`); ``not_inspected``:
    frames not inspected by reason (named when a file has no IP packet at all)."""
    from labkit.analyze.detectors.coverage import top_reasons
    from labkit.wire.linktypes import SUPPORTED_LINKTYPES, linktype_name

    warnings = [str(w) for w in cap.warnings] + list(given_up)
    unknown = {
        lt: n
        for lt, n in stats.linktype_frames.items()
        if lt >= 0 and lt not in SUPPORTED_LINKTYPES
    }
    if stats.backward_steps:
        warnings.append(
            f"out of time order: {stats.backward_steps} frame(s) are earlier than the frame "
            f"before them (by up to {stats.backward_max_s:.3f} s; two captures concatenated?): "
            "verdicts that depend on time (reconnects, DTLS answers, PMTUD adaptation) follow "
            "frame order; reordercap sorts the file"
        )
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
            else f" ({top_reasons(not_inspected)})"
            if not_inspected
            else ""
        )
    return FileReport(
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
