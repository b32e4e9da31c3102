"""The picture of a :class:`~labkit.plot.Timeline`, placed: every panel, tick, line, text and
marker at its pixel, as a frozen :class:`~labkit.plot.picture.Picture` that
:mod:`labkit.plot.raster` only paints.

Pure: the same timeline gives the same picture, and the tests read what it shows (tick labels,
MTU labels, lanes, legend entries, where each series' points are) without drawing a pixel.
Texts are measured with the font the raster draws them with, which is how the margins fit
their texts and how no text is put on top of another: a label that would overlap one already
placed tries its other places, and is left out when none is free (its marker and line stay).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Final

import numpy as np

from labkit.plot import GROUP_COLOURS, LANES, SHAPES, Marker, Series, Timeline
from labkit.plot.picture import Axis, Box, Picture, Points, Rule, Text, Tick, width

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

GRID: Final = "#ebebeb"  # a light grey line at 0.3 of #b0b0b0: behind the data, not over it
NOTE: Final = "#808080"
_SERIES_ALPHA: Final = 0.7  # overlapping series stay visible through each other
_LANE_MARKER: Final = 6 * DPI / 72  # a 6-point marker


def _line(size: int) -> int:
    """A text line's height for a font of ``size`` pixels (the usual 1.2 line spacing)."""
    return round(size * 1.2)


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


def _wrap(text: str, size: int, room: int) -> tuple[str, ...]:
    """``text`` in lines no wider than ``room`` pixels, broken between words."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and width(f"{lines[-1]} {word}", size) <= room:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return tuple(lines)


_Map = tuple[float, float]  # (offset, factor): pixel = offset + value * factor


def _scale(low: float, high: float, start: int, end: int) -> _Map:
    """The map of [low, high] onto the pixels [start, end]."""
    factor = (end - start) / (high - low)
    return start - low * factor, factor


@dataclass(frozen=True, slots=True)
class _Entry:
    """A series as the picture shows it: its legend text, colour and marker."""

    label: str
    colour: str
    shape: str


def _legend_columns(entries: Sequence[_Entry], marker: int, room: int) -> tuple[int, ...]:
    """The widths of the most columns (up to 3, filled top to bottom then left to right)
    that fit ``room``."""
    for columns in range(min(_LEGEND_COLUMNS, len(entries)), 0, -1):
        rows = -(-len(entries) // columns)
        widths = tuple(
            marker + _PAD + max(width(e.label, _SMALL) for e in entries[c : c + rows])
            for c in range(0, len(entries), rows)
        )
        if sum(widths) + _LEGEND_COLUMN_GAP * (len(widths) - 1) <= room or columns == 1:
            return widths
    return ()


@dataclass(frozen=True, slots=True)
class _Frame:
    """Where everything goes: the picture's size, its two panels, the rows of text around
    them, and the scales from seconds, bytes and lanes to pixels, all from the timeline's
    ranges and the sizes of the texts that go in the margins."""

    t0: float
    width: int
    height: int
    title: tuple[str, ...]
    sizes: Box
    events: Box
    x: Axis
    y: Axis
    x_map: _Map
    y_map: _Map
    lanes: tuple[str, ...]
    entries: tuple[_Entry, ...]
    dot: float  # a series marker's width
    legend_dot: float
    legend_columns: tuple[int, ...]  # widths
    notes: tuple[str, ...]

    @property
    def legend_rows(self) -> int:
        return -(-len(self.entries) // len(self.legend_columns)) if self.legend_columns else 0

    @property
    def x_labels_y(self) -> int:
        return self.events.y1 + _TICK + _TICK_GAP

    @property
    def axis_label_y(self) -> int:
        return self.x_labels_y + _line(_LABEL) + _AXIS_LABEL_PAD

    @property
    def legend_y(self) -> int:
        return self.axis_label_y + _line(_LABEL) + _PAD

    @property
    def notes_y(self) -> int:
        return self.legend_y + self.legend_rows * _LEGEND_ROW + (_PAD if self.legend_rows else 0)

    def column(self, seconds: float) -> int:
        """The pixel column of ``seconds`` after the first packet or event."""
        return round(self.x_map[0] + seconds * self.x_map[1])

    def row(self, size: float) -> int:
        return round(self.y_map[0] + size * self.y_map[1])

    def lane(self, index: int) -> int:
        """A lane's pixel row: lanes top to bottom, the first 0.7 of a lane below the frame,
        the last 0.5 above it."""
        per_lane = (self.events.y1 - 1 - self.events.y0) / (max(1, len(self.lanes)) + 0.2)
        return round(self.events.y0 + (index + 0.7) * per_lane)

    @classmethod
    def of(cls, t: Timeline) -> _Frame:
        span = t.span()
        t0 = span[0] if span else 0.0
        seconds = (span[1] - span[0]) if span else 0.0
        lanes = tuple(lane for lane in LANES if lane in {m.lane for m in t.markers})
        drawn = [s for s in t.series if len(s.times)]
        sized = [float(s.sizes.max()) for s in drawn] + [lv.value for lv in t.levels]
        sized += [float(s.sizes.min()) for s in drawn]
        y_low, y_high = (max(0.0, min(sized) - 80), max(sized) + 110) if sized else (0.0, 1.0)
        # 5 % of room on each side, so the first and last points are not on the frame.
        x_low, x_high = (-0.05 * seconds, 1.05 * seconds) if seconds > 0 else (-1.0, 1.0)
        x_ticks = ticks(x_low, x_high)
        y_ticks = ticks(y_low, y_high) if sized else []  # no sizes: no ruler for them

        full = round(WIDTH_IN * DPI)
        y_labels = max((width(s, _LABEL) for _, s in y_ticks), default=0)
        lanes_side = max((width(lane, _SMALL) for lane in lanes), default=0)
        sizes_side = _line(_LABEL) + _AXIS_LABEL_PAD + y_labels
        left = _PAD + max(sizes_side, lanes_side) + _TICK_GAP + _TICK
        right = full - _PAD - max(width(s, _LABEL) for _, s in x_ticks) // 2 - 1
        start = datetime.fromtimestamp(t0, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        # A title naming many captures takes more lines, never more width; so do the notes.
        title = (*_wrap(t.title, _TITLE, full - 2 * _PAD), f"(t = 0 at {start})")
        notes = _wrap("; ".join(t.notes), _TINY, full - 2 * _PAD) if t.notes else ()
        top = _PAD + len(title) * _line(_TITLE) + _PAD
        sizes = Box(left, top, right, top + round(_SIZE_PANEL_IN * DPI))
        lanes_high = round((_LANE_IN * max(1, len(lanes)) + _LANES_EXTRA_IN) * DPI)
        events = Box(left, sizes.y1 + _PANEL_GAP, right, sizes.y1 + _PANEL_GAP + lanes_high)

        groups = list(dict.fromkeys(s.group for s in t.series))
        entries = tuple(
            _Entry(
                s.label,
                GROUP_COLOURS[groups.index(s.group) % len(GROUP_COLOURS)],
                SHAPES[s.direction],
            )
            for s in drawn
        )
        points = sum(len(s.times) for s in t.series)
        area = 30 if points <= 3000 else 10 if points <= 100_000 else 3  # square points
        dot = math.sqrt(area) * DPI / 72
        legend_dot = dot * (1.5 if area >= 10 else 3)
        x_map = _scale(x_low, x_high, sizes.x0, sizes.x1 - 1)
        y_map = _scale(y_low, y_high, sizes.y1 - 1, sizes.y0)
        frame = cls(
            t0,
            full,
            0,  # the height: the rows under the panels first
            title,
            sizes,
            events,
            Axis(
                x_low, x_high, tuple(Tick(v, round(x_map[0] + v * x_map[1]), s) for v, s in x_ticks)
            ),
            Axis(
                y_low, y_high, tuple(Tick(v, round(y_map[0] + v * y_map[1]), s) for v, s in y_ticks)
            ),
            x_map,
            y_map,
            lanes,
            entries,
            dot,
            legend_dot,
            _legend_columns(entries, round(legend_dot), full - 2 * _PAD),
            notes,
        )
        return replace(frame, height=frame.notes_y + len(notes) * _line(_TINY) + _PAD)


def layout(t: Timeline) -> Picture:
    """Place every part of ``t``'s picture."""
    f = _Frame.of(t)
    texts = _frame_texts(f, empty=not f.entries)
    drawn = [s for s in t.series if len(s.times)]
    points = [_series_points(f, s, e) for s, e in zip(drawn, f.entries, strict=True)]
    rules = _levels(f, t, texts)
    rules += _reconnects(f, t, texts, [r.y0 for r in rules])
    for index, lane in enumerate(f.lanes):
        here = [m for m in t.markers if m.lane == lane]
        points.append(_lane_points(f, index, lane, here))
        texts += _event_labels(f, index, here, texts)
    legend_points, legend_texts = _legend(f)
    points += legend_points
    texts += legend_texts
    texts += [
        Text("note", line, _PAD, f.notes_y + k * _line(_TINY), _TINY, NOTE)
        for k, line in enumerate(f.notes)
    ]
    return Picture(
        f.width,
        f.height,
        f.sizes,
        f.events,
        f.x,
        f.y,
        f.lanes,
        _grid(f),
        tuple(points),
        (*rules, *_frames_and_ticks(f)),
        tuple(texts),
    )


def _frame_texts(f: _Frame, empty: bool) -> list[Text]:
    """The title, the tick labels, the lanes' names and the axes' labels."""
    texts = [
        Text("title", line, f.width // 2, _PAD + k * _line(_TITLE), _TITLE, anchor="ma")
        for k, line in enumerate(f.title)
    ]
    beside = f.sizes.x0 - _TICK - _TICK_GAP  # the right end of the texts left of the panels
    texts += [Text("ytick", k.label, beside, k.at, _LABEL, anchor="rm") for k in f.y.ticks]
    texts += [Text("xtick", k.label, k.at, f.x_labels_y, _LABEL, anchor="ma") for k in f.x.ticks]
    texts += [
        Text("lane", lane, beside, f.lane(k), _SMALL, anchor="rm") for k, lane in enumerate(f.lanes)
    ]
    y_labels = max((width(k.label, _LABEL) for k in f.y.ticks), default=0)
    middle = (f.sizes.y0 + f.sizes.y1) // 2
    across = beside - y_labels - _AXIS_LABEL_PAD - _line(_LABEL) // 2
    texts.append(Text("ylabel", "IP packet size (bytes)", across, middle, _LABEL, vertical=True))
    centre = (f.events.x0 + f.events.x1) // 2
    texts.append(Text("xlabel", "seconds", centre, f.axis_label_y, _LABEL, anchor="ma"))
    if empty:
        centre = (f.sizes.x0 + f.sizes.x1) // 2
        texts.append(
            Text("empty", "no capture: log events only", centre, middle, _LABEL, NOTE, "mm")
        )
    return texts


def _grid(f: _Frame) -> tuple[Rule, ...]:
    """Light lines at the sizes' ticks across the upper panel and at the seconds' ticks down
    the lower one, under everything else."""
    across = [Rule("grid", f.sizes.x0, k.at, f.sizes.x1 - 1, k.at, GRID) for k in f.y.ticks]
    down = [Rule("grid", k.at, f.events.y0, k.at, f.events.y1 - 1, GRID) for k in f.x.ticks]
    return (*across, *down)


def _free(candidates: Iterable[Text], taken: Iterable[Text | Box], within: Box) -> Text | None:
    """The first candidate inside ``within`` that overlaps no text already placed (nor any
    other box in ``taken``)."""
    boxes = [t if isinstance(t, Box) else t.box() for t in taken]
    for c in candidates:
        box = c.box()
        if within.holds(box) and not any(box.overlaps(b) for b in boxes):
            return c
    return None


def _levels(f: _Frame, t: Timeline, texts: list[Text]) -> list[Rule]:
    """The MTU lines, dashed and dotted in turn from the highest, and their labels (added to
    ``texts``): right-aligned inside the panel (a label never steals width from the data),
    above or below the line, whichever is free."""
    rules = []
    end = f.sizes.x1 - 1 - round(0.005 * (f.sizes.x1 - f.sizes.x0))
    for k, lv in enumerate(sorted(t.levels, key=lambda lv: -lv.value)):
        at = f.row(lv.value)
        dash = (6, 3) if k % 2 == 0 else (2, 2)
        rules.append(Rule("mtu", f.sizes.x0, at, f.sizes.x1 - 1, at, dash=dash))
        text = f"{lv.value}: {lv.label}"
        above = Text("mtu", text, end, at - _px(2), _SMALL, anchor="rd", backdrop=True)
        below = Text("mtu", text, end, at + _px(2), _SMALL, anchor="ra", backdrop=True)
        pair = (above, below) if k % 2 == 0 else (below, above)
        texts.append(_free(pair, texts, f.sizes) or pair[0])
    return rules


def _reconnects(f: _Frame, t: Timeline, texts: list[Text], levels: list[int]) -> list[Rule]:
    """A line through both panels at each reconnect, and its label (added to ``texts``)
    beside the line, across no other text nor MTU line (the ``levels`` rows)."""
    rules = []
    lines = [Box(f.sizes.x0, y - 1, f.sizes.x1, y + 2) for y in levels]
    high = f.sizes.y1 - f.sizes.y0
    middle = (f.sizes.y0 + f.sizes.y1) // 2
    beside = _px(3) + _line(_SMALL) // 2  # from the line to the label's centre
    for m in sorted((m for m in t.markers if m.reconnect), key=lambda m: m.time):
        at, colour = f.column(m.time - f.t0), LANES[m.lane][0]
        for box in (f.sizes, f.events):
            rules.append(Rule("reconnect", at, box.y0, at, box.y1 - 1, colour, alpha=0.8, width=2))
        places = [
            Text("reconnect", "reconnect", at + side * beside, y, _SMALL, colour, vertical=True)
            for side in (-1, 1)
            for y in (middle, middle - high // 4, middle + high // 4)
        ]
        placed = _free(places, [*texts, *lines], f.sizes)
        if placed:
            texts.append(placed)
    return rules


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


def _series_points(f: _Frame, s: Series, e: _Entry) -> Points:
    """The pixels of ``s``'s packets, in as few passes over them as it takes: the ranges of
    the axes hold every packet, the clip only keeps a rounding from leaving the panel."""
    panel, (x_off, x_f), (y_off, y_f) = f.sizes, f.x_map, f.y_map
    wide = panel.x1 - panel.x0
    # + 0.5 then truncation: rounding, the columns being positive.
    column = s.times * x_f
    column += x_off - panel.x0 - f.t0 * x_f + 0.5
    # 32-bit pixel numbers: a panel has well under 2**31 pixels, and half the bytes to move.
    at = column.astype(np.int32)
    np.clip(at, 0, wide - 1, out=at)
    # Sizes are whole bytes: each size's row, computed once, looked up per packet.
    rows = (np.arange(int(s.sizes.max()) + 1) * y_f + (y_off - panel.y0 + 0.5)).astype(np.int32)
    np.clip(rows, 0, panel.y1 - panel.y0 - 1, out=rows)
    at += (rows * wide)[s.sizes.astype(np.intp, copy=False)]
    xs, ys = each_pixel_once(at, panel)
    return Points("series", s.label, e.colour, e.shape, f.dot, _SERIES_ALPHA, xs, ys, panel)


def _lane_points(f: _Frame, index: int, lane: str, markers: Sequence[Marker]) -> Points:
    colour, shape = LANES[lane]
    panel = f.events
    columns = np.array([f.column(m.time - f.t0) for m in markers], np.int64) - panel.x0
    xs, ys = each_pixel_once((f.lane(index) - panel.y0) * (panel.x1 - panel.x0) + columns, panel)
    return Points("lane", lane, colour, shape, _LANE_MARKER, 1.0, xs, ys, panel)


def _event_labels(
    f: _Frame, index: int, markers: Sequence[Marker], taken: list[Text]
) -> list[Text]:
    """At most :data:`MAX_LABELS_PER_LANE` labels of one lane, none repeated, each up and to
    the right of its marker (or to the left near the panel's right edge), none on another."""
    colour, _shape = LANES[f.lanes[index]]
    y = f.lane(index) - _px(4)
    out: list[Text] = []
    for m in sorted(markers, key=lambda m: m.time):
        if not m.label or any(m.label == o.text for o in out):
            continue
        at = f.column(m.time - f.t0)
        places = (
            Text("event", m.label, at + _px(4), y, _TINY, colour, "ls"),
            Text("event", m.label, at - _px(4), y, _TINY, colour, "rs"),
        )
        placed = _free(places, [*taken, *out], f.events)
        if placed:
            out.append(placed)
            if len(out) == MAX_LABELS_PER_LANE:
                break
    return out


def _legend(f: _Frame) -> tuple[list[Points], list[Text]]:
    """Each series' marker and label under the axes, in columns filled top to bottom, the
    whole centred."""
    points: list[Points] = []
    texts: list[Text] = []
    whole = Box(0, 0, f.width, f.height)
    marker = round(f.legend_dot)
    columns = f.legend_columns
    x = (f.width - sum(columns) - _LEGEND_COLUMN_GAP * (len(columns) - 1)) // 2
    rows = f.legend_rows
    for c, column_width in enumerate(columns):
        for r, e in enumerate(f.entries[c * rows : (c + 1) * rows]):
            y = f.legend_y + r * _LEGEND_ROW + _LEGEND_ROW // 2
            xs, ys = np.array([x + marker // 2], np.int32), np.array([y], np.int32)
            points.append(
                Points(
                    "legend", e.label, e.colour, e.shape, f.legend_dot, _SERIES_ALPHA, xs, ys, whole
                )
            )
            texts.append(Text("legend", e.label, x + marker + _PAD, y, _SMALL, anchor="lm"))
        x += column_width + _LEGEND_COLUMN_GAP
    return points, texts


def _frames_and_ticks(f: _Frame) -> list[Rule]:
    """The panels' frames and tick marks, over everything drawn in the panels."""
    rules = []
    for box in (f.sizes, f.events):
        rules += [
            Rule("frame", box.x0, box.y0, box.x1 - 1, box.y0),
            Rule("frame", box.x0, box.y1 - 1, box.x1 - 1, box.y1 - 1),
            Rule("frame", box.x0, box.y0, box.x0, box.y1 - 1),
            Rule("frame", box.x1 - 1, box.y0, box.x1 - 1, box.y1 - 1),
        ]
        rules += [Rule("tick", k.at, box.y1, k.at, box.y1 + _TICK - 1) for k in f.x.ticks]
    left = f.sizes.x0
    rules += [Rule("tick", left - _TICK, k.at, left - 1, k.at) for k in f.y.ticks]
    rules += [
        Rule("tick", left - _TICK, f.lane(k), left - 1, f.lane(k)) for k in range(len(f.lanes))
    ]
    return rules
