"""Renderers: a :class:`~labkit.analyze.report.Report` as text or JSON. They never decide.

Text puts the verdict first, then where each file was captured and what that point cannot
show, then each finding: severity, one sentence, its numbers, evidence frames per file and the
Wireshark display filter that selects exactly those frames in that file.
"""

from __future__ import annotations

import json
from typing import Any

from labkit.analyze.detectors.coverage import blind_spots
from labkit.analyze.report import Report
from labkit.findings import Finding
from labkit.terminal import printable

_SKIP_FIELDS = {"wireshark_filters"}


def to_json(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2, sort_keys=False)


def _frames_text(frames: list[int], count: int | None = None) -> str:
    text = ", ".join(str(f) for f in frames)
    if count is not None and count > len(frames):
        text += f" (first {len(frames)} of {count})"
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


def to_text(report: Report) -> str:
    lines = [f"VERDICT: {report.verdict}", ""]
    lines.append("files:")
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
            f"{', '.join(fr.linktypes) or '-'}"
        )
        lines.append(f"    capture point: {fr.capture_point} ({fr.capture_point_reason})")
        if fr.cannot_show:
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
    lines.append("")
    if not report.findings:
        lines.append("findings: none")
    else:
        lines.append("findings:")
    for f in report.findings:
        lines.append(f"  [{f.severity}] {f.id}: {f.summary}")
        fields = _fields_text(f)
        if fields:
            lines.append(f"    {fields}")
        by_file: dict[str, list[int]] = {}
        for e in f.evidence:
            by_file.setdefault(e.file, []).append(e.frame)
        filters: dict[str, Any] = f.fields.get("wireshark_filters") or {}
        logs = {src.path for src in report.sources}
        for file, frames in by_file.items():
            unit = "line(s)" if file in logs else "frame(s)"
            lines.append(f"    evidence: {file} {unit} {_frames_text(frames)}")
            filt = filters.get(file, f.wireshark_filter)
            if filt and file not in logs:
                lines.append(f"    wireshark filter: {filt}")
    return "\n".join(map(printable, lines))  # a newline in a file name forges no line
