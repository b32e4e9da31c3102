"""Renderers: a :class:`~labkit.analyze.report.Report` as text or JSON. They never decide.

Text is what a lab engineer reads with a customer on the phone, so it opens with the verdict,
the diagnosis (the causal chain, each link with its evidence frame, and what the captures
cannot show) and the fixes; the files and the findings follow. A busy capture must still fit
one screen: per-flow findings of one kind are summarised by head-end, then client (counts,
first and last time, the top few, "and N more"), with one display filter per head-end and
port; ``--all`` lists each finding with its fields, and the per-flow filters stay in JSON.
Findings below ``--min-severity`` (default: warnings) are counted in one line, never dropped
silently, and so is evidence beyond the frames cited.
"""

from __future__ import annotations

import os
import shlex
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from labkit import jsontext, mtu
from labkit.analyze.detectors.coverage import blind_spots
from labkit.analyze.diagnosis import Diagnosis, Step
from labkit.analyze.report import Report
from labkit.findings import SEVERITY_RANK, Finding
from labkit.terminal import printable

_SKIP_FIELDS = {"wireshark_filters"}
SUMMARISE_OVER = 3  #: more per-flow findings of one kind than this are summarised
TOP = 3  #: members listed per summarised group
MAX_FRAMES_SHOWN = 12  #: frame numbers listed per file in the text
MAX_FILTER_TEXT = 400  #: a longer filter is cut in the text (the JSON has it whole)


@dataclass(frozen=True, slots=True)
class TextOptions:
    """How much of the report the text shows: ``all`` lists every finding with its fields;
    ``min_severity`` hides (and counts) the findings below it."""

    all: bool = False
    min_severity: str = "warning"


def to_json(report: Report) -> str:
    return jsontext.dumps(report.to_json())


def _frames_text(frames: list[int], count: int | None = None, filt: str = "") -> str:
    shown = frames[:MAX_FRAMES_SHOWN]
    text = ", ".join(str(f) for f in shown)
    cited = len(frames)
    if len(shown) < cited:
        text += f" ... ({len(shown)} of the {cited} cited shown; --all or JSON lists them)"
    if count is not None and count > cited:
        # Never capped silently: say how many there are and what the filter selects.
        selects = (
            f"the filter selects the {cited} cited"
            if "frame.number <=" in filt
            else f"the filter selects all {count}"
        )
        text += f" ({cited} of {count} frames cited; {selects})"
    return text


def _fields_text(f: Finding) -> str:
    parts = []
    for k, v in f.fields.items():
        if k in _SKIP_FIELDS:
            continue
        if isinstance(v, (list, tuple)):
            v = ", ".join(str(x) for x in v)
        elif isinstance(v, dict):
            v = ", ".join(f"{a}: {b}" for a, b in v.items())
        parts.append(f"{k}={v}")
    return "  ".join(parts)


def _filter_text(filt: str, full: bool) -> str:
    if full or len(filt) <= MAX_FILTER_TEXT:
        return filt
    return f"{filt[:MAX_FILTER_TEXT]} ... ({len(filt)} characters: --all or JSON has it whole)"


def _clock(t: float | None) -> str:
    if t is None or t != t:
        return "?"
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def _where(step: Step) -> str:
    e = step.evidence
    if e is None:
        return ""
    return f" [{step.finding + ', ' if step.finding else ''}{os.path.basename(e.file)} frame {e.frame}]"


def tshark_command(f: Finding, report: Report) -> str | None:
    """The tshark command line that shows a decrypted finding's frames: the key log must be
    given to tshark too (``-o tls.keylog_file:FILE``), or the filter matches nothing."""
    if not f.fields.get("keylog_needed_for_filter") or not f.evidence:
        return None
    keylog = next((s.path for s in report.sources if s.kind == "keylog"), None)
    if keylog is None:
        return None
    return shlex.join(
        [
            "tshark",
            "-r",
            f.evidence[0].file,
            "-o",
            f"tls.keylog_file:{keylog}",
            "-Y",
            f.wireshark_filter,
        ]
    )


def diagnosis_lines(d: Diagnosis, commands: dict[str, str] | None = None) -> list[str]:
    """The diagnosis and the fixes: what a person acts on, before any detail. ``commands``:
    finding id -> the command that shows its frame, printed under the step citing it."""
    lines = [f"DIAGNOSIS: {d.headline} ({d.confidence})"]
    todo = dict(commands or {})
    for i, s in enumerate(d.steps, start=1):
        lines.append(f"  {i}. {s.text}{_where(s)}")
        if s.finding in todo:
            lines.append(f"     show it: {todo.pop(s.finding)}")
    lines += [f"  cannot show: {c}" for c in d.cannot_show]
    if d.fixes:
        lines.append("")
        lines.append(f"FIXES, best first (the MTU model for these numbers, as `{d.model}` prints):")
        lines += [f"  {line}" for line in mtu.fixes_text(d.fixes)]
    return lines


def _files_lines(report: Report, full: bool) -> list[str]:
    lines = ["files:"]
    for fr in report.files:
        if fr.error:
            lines.append(f"  {fr.path}: NOT ANALYZED: {fr.error}")
            continue
        dur = (
            f", {fr.last_time - fr.first_time:.1f} s"
            if fr.first_time is not None and fr.last_time is not None
            else ""
        )
        lines.append(
            f"  {fr.path}: {fr.format}, {fr.packets} packets{dur}, link type "
            f"{', '.join(fr.linktypes) or '-'}; capture point: {fr.capture_point} "
            f"({fr.capture_point_reason})"
        )
        if fr.cannot_show and full:
            lines.append(f"    cannot show: {fr.cannot_show}")
        unseen = blind_spots([fr.counts])
        if unseen:
            lines.append(f"    not inspected: {unseen}")
        for w in fr.warnings:
            lines.append(f"    warning: {w}")
    if len(report.cases) > 1 or any(len(c.files) > 1 for c in report.cases):
        lines.append("cases (files judged together, and why):")
        for i, c in enumerate(report.cases, 1):
            lines.append(f"  case {i}: {', '.join(c.files)} ({c.reason})")
    for src in report.sources:
        offset = f" (clock offset {src.offset:+.3f} s)" if src.offset else ""
        lines.append(f"  {src.path}: {src.error or src.summary}{offset}")
        for w in src.warnings:
            lines.append(f"    warning: {w}")
    return lines


def _finding_lines(f: Finding, logs: set[str], full: bool, command: str | None) -> list[str]:
    lines = [f"  [{f.severity}] {f.id}: {f.summary}"]
    fields = _fields_text(f)
    if fields and full:
        lines.append(f"    {fields}")
    by_file: dict[str, list[int]] = {}
    for e in f.evidence:
        by_file.setdefault(e.file, []).append(e.frame)
    filters: dict[str, Any] = f.fields.get("wireshark_filters") or {}
    count = f.fields.get("count") if len(by_file) == 1 else None
    for file, frames in by_file.items():
        unit = "line(s)" if file in logs else "frame(s)"
        total = count if isinstance(count, int) and file not in logs else None
        filt = filters.get(file, f.wireshark_filter)
        lines.append(f"    evidence: {file} {unit} {_frames_text(frames, total, filt)}")
        if filt and file not in logs:
            lines.append(f"    wireshark filter: {_filter_text(filt, full)}")
    if command:
        lines.append(f"    show it: {command}")
    return lines


# --- summarising per-flow findings -------------------------------------------------------------


def _parties(f: Finding) -> tuple[str, str] | None:
    """(group, member) of a per-flow finding: head-end:port and client, or sender and receiver
    for a flow (``TCP a:p -> b:q``); None when the finding is not about one flow."""
    x = f.fields
    if "server" in x and "client" in x:
        port = x.get("port")
        return (f"{x['server']}:{port}" if port is not None else str(x["server"])), str(x["client"])
    flow = x.get("flow")
    if isinstance(flow, str) and " -> " in flow:
        src, dst = flow.split(" ", 1)[-1].split(" -> ")
        return src, dst
    return None


def _weight(f: Finding) -> int:
    for key in ("attempts", "copies", "count"):
        v = f.fields.get(key)
        if isinstance(v, int):
            return v
    return 1


def _group_filter(fid: str, group: str) -> str | None:
    """One exact-as-can-be filter for a summarised group: the ClientHellos to one head-end and
    port (the per-flow filters, one per client, are in the JSON)."""
    if fid != "dtls-unanswered":
        return None
    host, _, port = group.rpartition(":")
    host = host.strip("[]")
    ip = "ipv6" if ":" in host else "ip"
    return (
        f"{ip}.dst == {host} && udp.dstport == {port} && dtls.handshake.type == 1 "
        f"&& dtls.handshake.fragment_offset == 0"
    )


def _summary_lines(fid: str, group: list[Finding], findings: Sequence[Finding]) -> list[str]:
    sev = group[0].severity
    by_group: dict[str, list[Finding]] = {}
    for f in group:
        g, _m = _parties(f)  # type: ignore[misc]
        by_group.setdefault(g, []).append(f)
    times = [e.time for f in group for e in f.evidence if e.time is not None and e.time == e.time]
    span = f", {_clock(min(times))} - {_clock(max(times))} UTC" if times else ""
    label = "head-end" if "server" in group[0].fields else "sender"
    member = "client" if label == "head-end" else "receiver"
    unlisted = sum(int(f.fields.get("more_pairs") or 0) for f in group)
    not_listed = f" (and {unlisted} more not listed one by one)" if unlisted else ""
    lines = [
        f"  [{sev}] {fid}: {len(group) + unlisted} flows, {len(by_group)} {label}(s){span} "
        f"(summarised; --all lists each){not_listed}"
    ]
    ranked = sorted(by_group.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    answered = Counter((_parties(f) or ("", ""))[0] for f in findings if f.id == "dtls-established")
    # Every head-end is named (the engineer fixes head-ends); other groups, the top few.
    listed = ranked if label == "head-end" else ranked[:TOP]
    for g, members in listed:
        per_member: Counter = Counter()
        first: dict[str, int] = {}
        for f in members:
            m = _parties(f)[1]  # type: ignore[index]
            per_member[m] += _weight(f)
            if f.evidence:
                first.setdefault(m, f.evidence[0].frame)
        ts = [e.time for f in members for e in f.evidence if e.time is not None]
        top = ", ".join(
            f"{m} ({n}, frame {first.get(m, '?')})" for m, n in per_member.most_common(TOP)
        )
        more = len(per_member) - min(TOP, len(per_member))
        lines.append(
            f"    {label} {g}: {len(members)} flow(s) from {len(per_member)} {member}(s), "
            f"{_clock(min(ts)) if ts else '?'} - {_clock(max(ts)) if ts else '?'}; "
            f"top: {top}" + (f" and {more} more" if more else "")
        )
        filt = _group_filter(fid, g)
        if filt:
            note = (
                f" (also selects the hellos of {answered[g]} answered flow(s) to this head-end)"
                if answered[g]
                else ""
            )
            lines.append(f"      wireshark filter: {filt}{note}")
    if len(listed) < len(ranked):
        rest = ranked[len(listed) :]
        lines.append(
            f"    and {len(rest)} more {label}(s) with {sum(len(m) for _g, m in rest)} flow(s)"
        )
    return lines


def _findings_lines(report: Report, opts: TextOptions) -> list[str]:
    logs = {src.path for src in report.sources}
    floor = SEVERITY_RANK.get(opts.min_severity, 0) if not opts.all else 0
    shown = [f for f in report.findings if SEVERITY_RANK[f.severity or "info"] >= floor]
    hidden = Counter(f.id for f in report.findings if SEVERITY_RANK[f.severity or "info"] < floor)
    lines = ["findings:" if shown else "findings: none" + (" shown" if hidden else "")]
    by_id: dict[str, list[Finding]] = {}
    for f in shown:
        by_id.setdefault(f.id, []).append(f)
    # Decided once per id: asked per finding, it cost a pass over the id's whole group for
    # each of its (up to a thousand listed) findings.
    summarised = {
        fid
        for fid, group in by_id.items()
        if not opts.all
        and len(group) > SUMMARISE_OVER
        and all(_parties(g) is not None for g in group)
    }
    done: set[str] = set()
    for f in shown:
        group = by_id[f.id]
        if not opts.all and f is not group[0] and _parties(f) is None:
            # A repeat of a kind already shown in full: one line, its first frame.
            first = f.evidence[0] if f.evidence else None
            where = f"; first frame {first.frame}" if first else ""
            lines.append(f"  [{f.severity}] {f.id}: {f.summary} [evidence{where}: --all or JSON]")
            continue
        if f.id in summarised:
            if f.id not in done:
                done.add(f.id)
                lines += _summary_lines(f.id, group, report.findings)
            continue
        lines += _finding_lines(f, logs, opts.all, tshark_command(f, report))
    if hidden:
        kinds = ", ".join(f"{fid} x{n}" for fid, n in hidden.most_common())
        lines.append(
            f"  and {sum(hidden.values())} {'info' if floor == 1 else 'lower-severity'} "
            f"finding(s) not listed ({kinds}): --min-severity info or --all lists them"
        )
    return lines


def to_text(report: Report, opts: TextOptions | None = None) -> str:
    opts = opts or TextOptions()
    lines = [f"VERDICT: {report.verdict}", ""]
    if any(f.analyzable for f in report.files):
        commands = {f.id: c for f in report.findings if (c := tshark_command(f, report))}
        lines += diagnosis_lines(report.diagnosis, commands)
        lines.append("")
    lines += _files_lines(report, opts.all)
    lines.append("")
    lines += _findings_lines(report, opts)
    return "\n".join(map(printable, lines))  # a newline in a file name forges no line
