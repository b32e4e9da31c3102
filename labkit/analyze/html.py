"""``--html case.html``: the report a lab engineer attaches to a customer case.

One self-contained file: the verdict, the diagnosis (each link with its evidence frame), the
fixes with their configuration lines, a timeline picture, and the findings table with filters
(severity and a text search). No network access is needed to view it: the style, the script
and the picture are inline (the picture is SVG drawn here from the same
:class:`~labkit.plot.Timeline` ``--plot`` draws, so Pillow is not needed). Every text from
the capture is escaped. A renderer: it decides nothing, it lays out the report.
"""

from __future__ import annotations

import html
import os

import numpy as np

from labkit import __version__, mtu
from labkit.analyze.diagnosis import Diagnosis
from labkit.analyze.render import tshark_command
from labkit.analyze.report import Report
from labkit.findings import Finding
from labkit.plot import LANES, Timeline

WIDTH, SIZE_H, LANE_H, LEFT, RIGHT, TOP = 1040, 260, 18, 60, 280, 12
MAX_DOTS = 4000  #: points drawn per series: the picture stays small; the JSON has the counts
_COLOURS = ("#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf")
_SEVERITY_COLOUR = {"error": "#c62828", "warning": "#ef6c00", "info": "#546e7a"}

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1100px;color:#222}
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.5em}
.verdict{font-weight:600;padding:.5em;border-left:4px solid #c62828;background:#fbe9e7}
.verdict.ok{border-color:#2e7d32;background:#e8f5e9}
ol.steps li{margin:.2em 0}.ev{color:#555;font-size:.9em}
pre{background:#f5f5f5;padding:.5em;white-space:pre-wrap}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ddd;padding:4px;
vertical-align:top;text-align:left}th{background:#eee}code{font-size:.85em;word-break:break-all}
.error{color:#c62828}.warning{color:#ef6c00}.info{color:#546e7a}
#controls label{margin-right:1em}
"""

# Filters the findings table by severity and text; the state lives in the URL's fragment
# (#severity=error&q=1418) so a colleague opening the same link sees the same rows.
_SCRIPT = """
(function(){
  var rows=[].slice.call(document.querySelectorAll('#findings tbody tr'));
  var boxes=[].slice.call(document.querySelectorAll('#controls input[type=checkbox]'));
  var q=document.getElementById('q');
  var status=document.getElementById('shown');
  function apply(){
    var on={};boxes.forEach(function(b){on[b.value]=b.checked;});
    var text=q.value.toLowerCase(),n=0;
    rows.forEach(function(r){
      var ok=on[r.dataset.severity]&&(!text||r.textContent.toLowerCase().indexOf(text)>=0);
      r.hidden=!ok;if(ok){n++;}
    });
    status.textContent=n+' of '+rows.length+' findings shown';
    document.body.dataset.shown=String(n);
  }
  var h=new URLSearchParams(location.hash.slice(1));
  if(h.has('severity')){var want=h.get('severity').split(',');
    boxes.forEach(function(b){b.checked=want.indexOf(b.value)>=0;});}
  if(h.has('q')){q.value=h.get('q');}
  boxes.forEach(function(b){b.addEventListener('change',apply);});
  q.addEventListener('input',apply);
  apply();
})();
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _diagnosis(d: Diagnosis) -> str:
    items = []
    for s in d.steps:
        ev = ""
        if s.evidence is not None:
            ev = (
                f' <span class="ev">[{_e(s.finding) + ", " if s.finding else ""}'
                f"{_e(os.path.basename(s.evidence.file))} frame {s.evidence.frame}]</span>"
            )
        items.append(f"<li>{_e(s.text)}{ev}</li>")
    unseen = "".join(f"<li>{_e(c)}</li>" for c in d.cannot_show)
    return (
        f'<section id="diagnosis" data-status="{_e(d.status)}"><h2>Diagnosis</h2>'
        f"<p><b>{_e(d.headline)}</b> ({_e(d.confidence)})</p>"
        f'<ol class="steps">{"".join(items)}</ol>'
        + (f"<p>The captures cannot show:</p><ul>{unseen}</ul>" if unseen else "")
        + "</section>"
    )


def _fixes(d: Diagnosis) -> str:
    if not d.fixes:
        return ""
    body = _e("\n".join(mtu.fixes_text(d.fixes)))
    return (
        f'<section id="fixes"><h2>Fixes, best first</h2><p>The MTU model for the numbers '
        f"these captures show, as <code>{_e(d.model)}</code> prints them:</p>"
        f"<pre>{body}</pre></section>"
    )


def _evidence(f: Finding) -> str:
    by_file: dict[str, list[int]] = {}
    for e in f.evidence:
        by_file.setdefault(e.file, []).append(e.frame)
    return "<br>".join(
        f"{_e(os.path.basename(file))}: {_e(', '.join(map(str, frames)))}"
        for file, frames in by_file.items()
    )


def _filters(f: Finding) -> str:
    per_file = f.fields.get("wireshark_filters") or {}
    if per_file:
        return "<br>".join(
            f"{_e(os.path.basename(k))}: <code>{_e(v)}</code>" for k, v in per_file.items()
        )
    return f"<code>{_e(f.wireshark_filter)}</code>" if f.wireshark_filter else ""


def _table(report: Report) -> str:
    rows = "".join(
        f'<tr data-severity="{_e(f.severity)}" data-id="{_e(f.id)}">'
        f'<td class="{_e(f.severity)}">{_e(f.severity)}</td><td>{_e(f.id)}</td>'
        f"<td>{_e(f.summary)}</td><td>{_evidence(f)}</td><td>{_filters(f)}"
        + (f"<br>show it: <code>{_e(cmd)}</code>" if (cmd := tshark_command(f, report)) else "")
        + "</td></tr>"
        for f in report.findings
    )
    boxes = "".join(
        f'<label><input type="checkbox" value="{s}" checked> {s}</label>'
        for s in ("error", "warning", "info")
    )
    return (
        '<section><h2>Findings</h2><div id="controls">'
        f'{boxes}<input id="q" type="search" placeholder="filter text"> '
        '<span id="shown"></span></div>'
        '<table id="findings"><thead><tr><th>severity</th><th>id</th><th>summary</th>'
        f"<th>evidence frames</th><th>Wireshark filter</th></tr></thead><tbody>{rows}"
        "</tbody></table></section>"
    )


def _thin(values: np.ndarray, limit: int) -> np.ndarray:
    if len(values) <= limit:
        return values
    return values[np.linspace(0, len(values) - 1, limit).astype(np.int64)]


def timeline_svg(t: Timeline) -> str:
    """The picture: IP sizes over time per capture and direction, the MTU lines, and one lane
    per kind of event underneath (what ``--plot`` draws, as inline SVG)."""
    span = t.span()
    if span is None:
        return '<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="1" height="1"></svg>'
    t0, t1 = span
    width = WIDTH - LEFT - RIGHT
    lanes = [lane for lane in LANES if any(m.lane == lane for m in t.markers)]
    height = TOP + SIZE_H + 30 + LANE_H * len(lanes) + 20
    top_size = max(
        [
            1500,
            *(lv.value for lv in t.levels),
            *(int(s.sizes.max()) for s in t.series if len(s.sizes)),
        ]
    )

    def x(v: float) -> float:
        return LEFT + (v - t0) / ((t1 - t0) or 1.0) * width

    def y(size: float) -> float:
        return TOP + SIZE_H - size / top_size * SIZE_H

    parts = [
        f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" font-size="11">',
        f"<title>{_e(t.title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{width}" height="{SIZE_H}" fill="none" stroke="#999"/>',
        f'<text x="4" y="{TOP + SIZE_H // 2}">bytes</text>',
        f'<text x="{LEFT}" y="{TOP + SIZE_H + 14}">0 s</text>',
        f'<text x="{LEFT + width}" y="{TOP + SIZE_H + 14}" text-anchor="end">'
        f"{t1 - t0:.1f} s</text>",
    ]
    groups = list(dict.fromkeys(s.group for s in t.series))
    for i, s in enumerate(t.series):
        colour = _COLOURS[groups.index(s.group) % len(_COLOURS)]
        keep = _thin(np.arange(len(s.times)), MAX_DOTS)
        d = "".join(
            f"M{x(float(tt)):.1f} {y(float(sz)):.1f}h0"
            for tt, sz in zip(s.times[keep].tolist(), s.sizes[keep].tolist())
        )
        parts.append(
            f'<path class="series" data-label="{_e(s.label)}" d="{d}" stroke="{colour}" '
            f'stroke-width="{5 if s.direction == "to" else 4}" stroke-linecap="round" '
            'fill="none">'
            f"<title>{_e(s.label)}</title></path>"
        )
        parts.append(
            f'<text x="{LEFT + width + 6}" y="{TOP + 12 + 13 * i}" fill="{colour}">'
            f"{_e(s.label[:44])}</text>"
        )
    for lv in t.levels:
        parts.append(
            f'<line class="mtu" data-mtu="{lv.value}" x1="{LEFT}" x2="{LEFT + width}" '
            f'y1="{y(lv.value):.1f}" y2="{y(lv.value):.1f}" stroke="#c62828" '
            f'stroke-dasharray="4 3"><title>{_e(lv.label)}</title></line>'
            f'<text x="{LEFT - 4}" y="{y(lv.value) + 4:.1f}" text-anchor="end">{lv.value}</text>'
        )
    base = TOP + SIZE_H + 30
    for j, lane in enumerate(lanes):
        colour = LANES[lane][0]
        ly = base + LANE_H * j
        parts.append(f'<text x="{LEFT + width + 6}" y="{ly + 12}">{_e(lane)}</text>')
        for m in (m for m in t.markers if m.lane == lane):
            parts.append(
                f'<line class="event" data-lane="{_e(lane)}" x1="{x(m.time):.1f}" '
                f'x2="{x(m.time):.1f}" y1="{ly + 2}" y2="{ly + LANE_H - 2}" stroke="{colour}" '
                f'stroke-width="2"><title>{_e(m.label or lane)}</title></line>'
            )
            if m.reconnect:
                parts.append(
                    f'<line class="reconnect" x1="{x(m.time):.1f}" x2="{x(m.time):.1f}" '
                    f'y1="{TOP}" y2="{TOP + SIZE_H}" stroke="{colour}"/>'
                )
    parts.append("</svg>")
    return "".join(parts)


def to_html(report: Report, timeline: Timeline | None) -> str:
    """The whole report as one HTML document."""
    d = report.diagnosis
    ok = not report.problem
    files = "".join(
        f"<li>{_e(f.path)}: "
        + (
            f"NOT ANALYZED: {_e(f.error)}"
            if f.error
            else f"{_e(f.format)}, {f.packets} packets; capture point {_e(f.capture_point)}"
        )
        + "</li>"
        for f in report.files
    )
    picture = (
        f'<section><h2>Timeline</h2><figure id="picture">{timeline_svg(timeline)}'
        "<figcaption>IP sizes over time per capture (colour) against the MTUs (dashed), and "
        "the events underneath.</figcaption></figure></section>"
        if timeline is not None
        else ""
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>labkit: {_e(report.verdict)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>labkit analyze report</h1>"
        f'<p class="verdict{" ok" if ok else ""}" id="verdict">{_e(report.verdict)}</p>'
        f"{_diagnosis(d)}{_fixes(d)}{picture}"
        f"<section><h2>Files</h2><ul>{files}</ul></section>"
        f"{_table(report)}"
        f'<footer><p class="ev">labkit {_e(__version__)}</p></footer>'
        f"<script>{_SCRIPT}</script></body></html>"
    )
