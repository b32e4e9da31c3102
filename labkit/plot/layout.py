"""The picture of a :class:`~labkit.plot.Timeline`, placed: every panel, tick, line, text and
marker at its pixel, as a frozen :class:`Picture` that :mod:`labkit.plot.raster` only paints.

Pure: the same timeline gives the same picture, and the tests read what it shows (tick labels,
MTU labels, lanes, legend entries, where each series' points are) without drawing a pixel.
Texts are measured with the font the raster draws them with (Pillow's embedded scalable font,
so no font file is needed), which is how the margins fit their texts and how no text is put on
top of another: a label that would overlap one already placed tries its other places, and is
left out when none is free (the markers and lines stay).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from typing import Final

import numpy as np
from PIL import ImageFont

from labkit.plot import LANES, Marker, Series, Timeline

#: The picture: 12 inches wide at 110 dots an inch, the size panel 3.1 inches high, the event
#: panel 0.3 inch a lane (plus 0.35); the margins around them come from their texts. Lengths
#: below are in points (1/72 inch), as print sizes are spoken of, and turned into pixels once.
WIDTH_IN: Final = 12.0
DPI: Final = 110
_SIZE_PANEL_IN: Final = 3.1
_LANE_IN, _LANES_EXTRA_IN = 0.3, 0.35


def _px(points: float) -> int:
    return round(points * DPI / 72)


_TITLE, _LABEL, _SMALL, _TINY = _px(11), _px(10), _px(8), _px(7)  # font sizes
_PAD: Final = _px(6)  # between the picture's edge and any text
_TICK: Final = _px(3.5)  # a tick mark's length, outside the panel
_TICK_GAP: Final = _px(3.5)  # between a tick mark and its label
_AXIS_LABEL_PAD: Final = _px(4)  # between tick labels and the axis label
_PANEL_GAP: Final = _px(18)  # between the two panels (the upper one has no tick labels)
_LEGEND_ROW: Final = _px(14)
_LEGEND_COLUMNS: Final = 3
_LEGEND_COLUMN_GAP: Final = _px(20)
_MOST_TICKS: Final = 8  # intervals at most between ticks: 1-2-5 steps of at least range/8
MAX_LABELS_PER_LANE: Final = 3  # text labels drawn per lane; the rest are markers only

GROUP_COLOURS: Final = ("#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf")
SHAPES: Final[dict[str, str]] = {"to": "v", "from": "^", "other": "."}
GRID: Final = "#ebebeb"  # a light grey line at 0.3 of #b0b0b0: behind the data, not over it
NOTE: Final = "#808080"
_SERIES_ALPHA: Final = 0.7  # overlapping series stay visible through each other


def _line(size: int) -> int:
    """A text line's height for a font of ``size`` pixels (the usual 1.2 line spacing)."""
    return round(size * 1.2)


@cache
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's embedded font at ``size`` pixels (scalable since Pillow 10.1, with FreeType)."""
    return ImageFont.load_default(size=size)


@cache
def extent(text: str, size: int, anchor: str) -> tuple[int, int, int, int]:
    """``text``'s ink box about its anchor point (left, top, right, bottom): placing labels
    measures the same texts again and again."""
    left, top, right, bottom = font(size).getbbox(text, anchor=anchor)
    return int(left), int(top), int(right), int(bottom)


def _width(text: str, size: int) -> int:
    left, _, right, _ = extent(text, size, "la")
    return right - left


@dataclass(frozen=True, slots=True)
class Box:
    """A rectangle of pixels: ``x0 <= x < x1``, ``y0 <= y < y1``."""

    x0: int
    y0: int
    x1: int
    y1: int

    def overlaps(self, other: Box) -> bool:
        return (
            self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1
        )

    def holds(self, other: Box) -> bool:
        return (
            self.x0 <= other.x0
            and other.x1 <= self.x1
            and self.y0 <= other.y0
            and other.y1 <= self.y1
        )


@dataclass(frozen=True, slots=True)
class Text:
    """A text at ``(x, y)`` by Pillow's ``anchor`` (``"ls"``: left end of the baseline);
    ``vertical`` texts read bottom to top, centred on ``(x, y)``. ``role`` says what it is."""

    role: str
    text: str
    x: int
    y: int
    size: int
    colour: str = "#000000"
    anchor: str = "la"
    vertical: bool = False
    backdrop: bool = False  # a white box behind it, so a line under it does not cut it

    def box(self) -> Box:
        if self.vertical:  # turned a quarter left about its centre: (dx, dy) -> (dy, -dx)
            left, top, right, bottom = extent(self.text, self.size, "mm")
            return Box(self.x + top, self.y - right, self.x + bottom, self.y - left)
        left, top, right, bottom = extent(self.text, self.size, self.anchor)
        return Box(self.x + left, self.y + top, self.x + right, self.y + bottom)


@dataclass(frozen=True, slots=True)
class Rule:
    """A horizontal or vertical line from ``(x0, y0)`` to ``(x1, y1)``, ends included;
    ``dash`` is (pixels on, pixels off)."""

    role: str
    x0: int
    y0: int
    x1: int
    y1: int
    colour: str = "#000000"
    alpha: float = 1.0
    width: int = 1
    dash: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Points:
    """Markers of one shape and colour centred on pixels (``xs``, ``ys``, each pixel once),
    drawn only inside ``clip``. ``shape`` is spelled as the marker codes the lanes use
    (``v ^ . | x D s o *``); ``size`` is the marker's width in pixels."""

    role: str  # "series", "lane" or "legend"
    label: str
    colour: str
    shape: str
    size: float
    alpha: float
    xs: np.ndarray
    ys: np.ndarray
    clip: Box


@dataclass(frozen=True, slots=True)
class Tick:
    value: float
    at: int  # the pixel column (x axis) or row (y axis)
    label: str


@dataclass(frozen=True, slots=True)
class Axis:
    low: float
    high: float
    ticks: tuple[Tick, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Picture:
    """Everything :mod:`labkit.plot.raster` paints, in painting order within each kind:
    rules under markers, markers under texts."""

    width: int
    height: int
    sizes: Box  # the upper panel: packet sizes over time
    events: Box  # the lower panel: one lane per kind of event
    x: Axis  # seconds since the first packet or event
    y: Axis  # IP packet size in bytes
    lanes: tuple[str, ...]
    under: tuple[Rule, ...]  # the grid: under the markers
    points: tuple[Points, ...]
    rules: tuple[Rule, ...]  # MTU and reconnect lines, frames, ticks: over the markers
    texts: tuple[Text, ...]

    def texts_of(self, role: str) -> list[str]:
        return [t.text for t in self.texts if t.role == role]


def ticks(low: float, high: float) -> list[tuple[float, str]]:
    """Values at a 1-2-5 step between ``low`` and ``high`` (at most :data:`_MOST_TICKS`
    intervals) with their labels, as many decimals as the step needs."""
    raw = (high - low) / _MOST_TICKS
    scale = 10 ** math.floor(math.log10(raw))
    step = next(m * scale for m in (1, 2, 5, 10) if m * scale >= raw * (1 - 1e-9))
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    first, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)
    values = [k * step for k in range(first, last + 1)]
    return [(v, f"{v + 0.0:.{decimals}f}") for v in values]  # + 0.0: never "-0"


_Map = tuple[float, float]  # (offset, factor): pixel = offset + value * factor


def _scale(low: float, high: float, start: int, end: int) -> _Map:
    """(offset, factor) mapping a value in [low, high] to a pixel in [start, end]."""
    factor = (end - start) / (high - low)
    return start - low * factor, factor


def _free(candidates: Iterable[Text], taken: Iterable[Text | Box], within: Box) -> Text | None:
    """The first candidate inside ``within`` that overlaps no text already placed (nor any
    other box in ``taken``)."""
    boxes = [t if isinstance(t, Box) else t.box() for t in taken]
    for c in candidates:
        box = c.box()
        if within.holds(box) and not any(box.overlaps(b) for b in boxes):
            return c
    return None


def _wrap(text: str, size: int, width: int) -> list[str]:
    """``text`` in lines no wider than ``width`` pixels, broken between words."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and _width(f"{lines[-1]} {word}", size) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


@dataclass(frozen=True, slots=True)
class _Entry:
    label: str
    colour: str
    shape: str


def _legend_columns(entries: Sequence[_Entry], marker: int, room: int) -> tuple[int, list[int]]:
    """The most columns (up to 3, filled top to bottom then left to right) whose widths fit
    ``room``, and those widths."""
    for columns in range(min(_LEGEND_COLUMNS, len(entries)), 0, -1):
        rows = -(-len(entries) // columns)
        widths = [
            marker + _PAD + max(_width(e.label, _SMALL) for e in entries[c * rows : (c + 1) * rows])
            for c in range(-(-len(entries) // rows))
        ]
        if sum(widths) + _LEGEND_COLUMN_GAP * (len(widths) - 1) <= room or columns == 1:
            return rows, widths
    return 0, []


def layout(t: Timeline) -> Picture:
    """Place every part of ``t``'s picture."""
    span = t.span()
    t0 = span[0] if span else 0.0
    width = (span[1] - span[0]) if span else 0.0
    lanes = tuple(lane for lane in LANES if lane in {m.lane for m in t.markers})
    drawn = [s for s in t.series if len(s.times)]
    levels = sorted(t.levels, key=lambda lv: -lv.value)
    if drawn or levels:
        highs = [float(s.sizes.max()) for s in drawn] + [lv.value for lv in levels]
        lows = [float(s.sizes.min()) for s in drawn] + [lv.value for lv in levels]
        y_low, y_high = max(0.0, min(lows) - 80), max(highs) + 110
    else:
        y_low, y_high = 0.0, 1.0
    # 5 % of room on each side, so the first and last points are not on the frame.
    x_low, x_high = (-0.05 * width, 1.05 * width) if width > 0 else (-1.0, 1.0)
    x_ticks = ticks(x_low, x_high)
    y_ticks = ticks(y_low, y_high) if drawn or levels else []  # no size: no ruler for one

    groups = list(dict.fromkeys(s.group for s in t.series))
    entries = [
        _Entry(
            s.label, GROUP_COLOURS[groups.index(s.group) % len(GROUP_COLOURS)], SHAPES[s.direction]
        )
        for s in drawn
    ]
    points = sum(len(s.times) for s in t.series)
    area = 30 if points <= 3000 else 10 if points <= 100_000 else 3  # square points, as printed
    dot = math.sqrt(area) * DPI / 72
    legend_dot = dot * (1.5 if area >= 10 else 3)

    # The margins, from the texts that go in them.
    full = round(WIDTH_IN * DPI)
    y_labels = max((_width(s, _LABEL) for _, s in y_ticks), default=0)
    sizes_side = _line(_LABEL) + _AXIS_LABEL_PAD + y_labels
    lanes_side = max((_width(lane, _SMALL) for lane in lanes), default=0)
    left = _PAD + max(sizes_side, lanes_side) + _TICK_GAP + _TICK
    right = full - _PAD - max(_width(s, _LABEL) for _, s in x_ticks) // 2 - 1
    start = datetime.fromtimestamp(t0, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    # A title naming many captures takes more lines, never more width.
    title = [*_wrap(t.title, _TITLE, full - 2 * _PAD), f"(t = 0 at {start})"]
    sizes_y0 = _PAD + len(title) * _line(_TITLE) + _PAD
    sizes = Box(left, sizes_y0, right, sizes_y0 + round(_SIZE_PANEL_IN * DPI))
    events_y0 = sizes.y1 + _PANEL_GAP
    events = Box(
        left,
        events_y0,
        right,
        events_y0 + round((_LANE_IN * max(1, len(lanes)) + _LANES_EXTRA_IN) * DPI),
    )
    rows, column_widths = (
        _legend_columns(entries, round(legend_dot), full - 2 * _PAD) if entries else (0, [])
    )
    x_labels_y = events.y1 + _TICK + _TICK_GAP
    axis_label_y = x_labels_y + _line(_LABEL) + _AXIS_LABEL_PAD
    legend_y = axis_label_y + _line(_LABEL) + _PAD
    notes = _wrap("; ".join(t.notes), _TINY, full - 2 * _PAD) if t.notes else []
    notes_y = legend_y + rows * _LEGEND_ROW + (_PAD if rows else 0)
    height = notes_y + len(notes) * _line(_TINY) + _PAD

    x_off, x_f = _scale(x_low, x_high, sizes.x0, sizes.x1 - 1)
    y_off, y_f = _scale(y_low, y_high, sizes.y1 - 1, sizes.y0)

    def xpx(v: float) -> int:
        return round(x_off + v * x_f)

    def ypx(v: float) -> int:
        return round(y_off + v * y_f)

    # Lanes top to bottom, the first 0.7 of a lane below the frame, the last 0.5 above it.
    lane_f = (events.y1 - 1 - events.y0) / (max(1, len(lanes)) - 0.5 + 0.7)

    def lane_px(row: int) -> int:
        return round(events.y0 + (row + 0.7) * lane_f)

    x_axis = Axis(x_low, x_high, tuple(Tick(v, xpx(v), s) for v, s in x_ticks))
    y_axis = Axis(y_low, y_high, tuple(Tick(v, ypx(v), s) for v, s in y_ticks))
    under = [Rule("grid", sizes.x0, k.at, sizes.x1 - 1, k.at, GRID) for k in y_axis.ticks]
    under += [Rule("grid", k.at, events.y0, k.at, events.y1 - 1, GRID) for k in x_axis.ticks]

    texts: list[Text] = []
    for row, line in enumerate(title):
        texts.append(
            Text("title", line, full // 2, _PAD + row * _line(_TITLE), _TITLE, anchor="ma")
        )
    for k in y_axis.ticks:
        texts.append(
            Text("ytick", k.label, sizes.x0 - _TICK - _TICK_GAP, k.at, _LABEL, anchor="rm")
        )
    for k in x_axis.ticks:
        texts.append(Text("xtick", k.label, k.at, x_labels_y, _LABEL, anchor="ma"))
    for row, lane in enumerate(lanes):
        texts.append(
            Text("lane", lane, events.x0 - _TICK - _TICK_GAP, lane_px(row), _SMALL, anchor="rm")
        )
    texts.append(
        Text(
            "ylabel",
            "IP packet size (bytes)",
            left - _TICK - _TICK_GAP - y_labels - _AXIS_LABEL_PAD - _line(_LABEL) // 2,
            (sizes.y0 + sizes.y1) // 2,
            _LABEL,
            vertical=True,
        )
    )
    texts.append(
        Text("xlabel", "seconds", (events.x0 + events.x1) // 2, axis_label_y, _LABEL, anchor="ma")
    )
    if not drawn:
        texts.append(
            Text(
                "empty",
                "no capture: log events only",
                (sizes.x0 + sizes.x1) // 2,
                (sizes.y0 + sizes.y1) // 2,
                _LABEL,
                NOTE,
                "mm",
            )
        )

    series_points = [
        _series_points(s, e, t0, dot, sizes, (x_off, x_f), (y_off, y_f))
        for s, e in zip(drawn, entries, strict=True)
    ]
    rules: list[Rule] = []
    # The MTU lines, dashed and dotted in turn from the highest; each label right-aligned
    # inside the panel (it never steals width from the data), above or below its line.
    label_end = sizes.x1 - 1 - round(0.005 * (sizes.x1 - sizes.x0))
    for i, lv in enumerate(levels):
        at = ypx(lv.value)
        rules.append(
            Rule(
                "mtu",
                sizes.x0,
                at,
                sizes.x1 - 1,
                at,
                dash=(6, 3) if i % 2 == 0 else (2, 2),
                width=1,
            )
        )
        text = f"{lv.value}: {lv.label}"
        above = Text("mtu", text, label_end, at - _px(2), _SMALL, anchor="rd", backdrop=True)
        below = Text("mtu", text, label_end, at + _px(2), _SMALL, anchor="ra", backdrop=True)
        pair = (above, below) if i % 2 == 0 else (below, above)
        texts.append(_free(pair, texts, sizes) or pair[0])
    mtu_lines = [Box(sizes.x0, r.y0 - 1, sizes.x1, r.y0 + 2) for r in rules]
    reconnects = sorted((m for m in t.markers if m.reconnect), key=lambda m: m.time)
    for m in reconnects:
        at, colour = xpx(m.time - t0), LANES[m.lane][0]
        for box in (sizes, events):
            rules.append(Rule("reconnect", at, box.y0, at, box.y1 - 1, colour, alpha=0.8, width=2))
        half = _line(_SMALL) // 2
        middle = (sizes.y0 + sizes.y1) // 2
        places = [
            Text(
                "reconnect",
                "reconnect",
                at + side * (_px(3) + half),
                middle + shift,
                _SMALL,
                colour,
                vertical=True,
            )
            for side in (-1, 1)
            for shift in (0, -(sizes.y1 - sizes.y0) // 4, (sizes.y1 - sizes.y0) // 4)
        ]
        placed = _free(places, [*texts, *mtu_lines], sizes)  # across no MTU line either
        if placed:
            texts.append(placed)

    lane_points: list[Points] = []
    size = 6 * DPI / 72  # a 6-point marker
    for row, lane in enumerate(lanes):
        colour, shape = LANES[lane]
        here = [m for m in t.markers if m.lane == lane]
        xs = np.array([xpx(m.time - t0) for m in here], np.int64)
        lane_points.append(
            Points(
                "lane",
                lane,
                colour,
                shape,
                size,
                1.0,
                *each_pixel_once(
                    (lane_px(row) - events.y0) * (events.x1 - events.x0) + xs - events.x0, events
                ),
                events,
            )
        )
        texts += _event_labels(here, lane_px(row), colour, xpx, t0, texts, events)

    legend_points: list[Points] = []
    whole = Box(0, 0, full, height)
    x = (full - sum(column_widths) - _LEGEND_COLUMN_GAP * (len(column_widths) - 1)) // 2
    for c, column_width in enumerate(column_widths):
        for r, e in enumerate(entries[c * rows : (c + 1) * rows]):
            y = legend_y + r * _LEGEND_ROW + _LEGEND_ROW // 2
            centre = x + round(legend_dot) // 2
            legend_points.append(
                Points(
                    "legend",
                    e.label,
                    e.colour,
                    e.shape,
                    legend_dot,
                    _SERIES_ALPHA,
                    np.array([centre], np.int32),
                    np.array([y], np.int32),
                    whole,
                )
            )
            texts.append(
                Text("legend", e.label, x + round(legend_dot) + _PAD, y, _SMALL, anchor="lm")
            )
        x += column_width + _LEGEND_COLUMN_GAP
    for row, line in enumerate(notes):
        texts.append(Text("note", line, _PAD, notes_y + row * _line(_TINY), _TINY, NOTE))

    for box in (sizes, events):  # frames and ticks over everything drawn in the panels
        rules += [
            Rule("frame", box.x0, box.y0, box.x1 - 1, box.y0),
            Rule("frame", box.x0, box.y1 - 1, box.x1 - 1, box.y1 - 1),
            Rule("frame", box.x0, box.y0, box.x0, box.y1 - 1),
            Rule("frame", box.x1 - 1, box.y0, box.x1 - 1, box.y1 - 1),
        ]
        rules += [Rule("tick", k.at, box.y1, k.at, box.y1 + _TICK - 1) for k in x_axis.ticks]
    rules += [Rule("tick", sizes.x0 - _TICK, k.at, sizes.x0 - 1, k.at) for k in y_axis.ticks]
    rules += [
        Rule("tick", events.x0 - _TICK, lane_px(r), events.x0 - 1, lane_px(r))
        for r in range(len(lanes))
    ]
    return Picture(
        full,
        height,
        sizes,
        events,
        x_axis,
        y_axis,
        lanes,
        tuple(under),
        (*series_points, *lane_points, *legend_points),
        tuple(rules),
        tuple(texts),
    )


def each_pixel_once(at: np.ndarray, within: Box) -> tuple[np.ndarray, np.ndarray]:
    """The distinct pixels among ``at`` (``row * width + column`` inside ``within``, each
    already in the box) as (xs, ys) in the picture, row by row: a marker stamped twice on one
    pixel is the same marker, so a 1 GB session's 800 000 sampled packets are a few thousand
    stamps. One pass over a bitmap of the box, no sort."""
    wide = within.x1 - within.x0
    seen = np.zeros((within.y1 - within.y0) * wide, bool)
    seen[at] = True
    kept = np.flatnonzero(seen)
    return (kept % wide + within.x0).astype(np.int32), (kept // wide + within.y0).astype(np.int32)


def _series_points(
    s: Series, e: _Entry, t0: float, dot: float, panel: Box, x_map: _Map, y_map: _Map
) -> Points:
    """The pixels of ``s``'s packets, in as few passes over them as it takes: the ranges of
    the axes hold every packet, the clip only keeps a rounding from leaving the box."""
    wide = panel.x1 - panel.x0
    # + 0.5 then truncation: rounding, the columns being positive.
    column = s.times * x_map[1]
    column += x_map[0] - panel.x0 - t0 * x_map[1] + 0.5
    at = column.astype(np.int64)
    np.clip(at, 0, wide - 1, out=at)
    # Sizes are whole bytes: each size's row, computed once, looked up per packet.
    sizes = np.arange(int(s.sizes.max()) + 1)
    rows = (sizes * y_map[1] + (y_map[0] - panel.y0 + 0.5)).astype(np.int64)
    np.clip(rows, 0, panel.y1 - panel.y0 - 1, out=rows)
    at += (rows * wide)[s.sizes.astype(np.intp, copy=False)]
    return Points(
        "series", s.label, e.colour, e.shape, dot, _SERIES_ALPHA, *each_pixel_once(at, panel), panel
    )


def _event_labels(
    markers: Sequence[Marker],
    y: int,
    colour: str,
    xpx: Callable[[float], int],
    t0: float,
    taken: list[Text],
    panel: Box,
) -> list[Text]:
    """At most :data:`MAX_LABELS_PER_LANE` labels of one lane, none repeated, each up and to
    the right of its marker (or to the left near the panel's right edge), none on another."""
    out: list[Text] = []
    for m in sorted(markers, key=lambda m: m.time):
        if not m.label or any(m.label == o.text for o in out):
            continue
        at = xpx(m.time - t0)
        places = (
            Text("event", m.label, at + _px(4), y - _px(4), _TINY, colour, "ls"),
            Text("event", m.label, at - _px(4), y - _px(4), _TINY, colour, "rs"),
        )
        placed = _free(places, [*taken, *out], panel)
        if placed:
            out.append(placed)
            if len(out) == MAX_LABELS_PER_LANE:
                break
    return out
