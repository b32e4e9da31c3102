"""``--plot OUT.png``: one picture of the case -- packet sizes over time against the MTUs,
with the events that explain them underneath.

Top panel: every packet's IP size per direction (dots), the MTU levels as labelled
horizontal lines (the adapter/DTLS MTU 1418 and the TLS MTU 1347 in the seed's case), and the
reconnects as vertical lines through both panels. Bottom panel: one lane per kind of event
(DTLS ClientHellos, ICMP frag-needed, TLS session starts, retransmissions, ASA syslog, DART),
so "packets over 1347, ICMP, DTLS retries, reconnect" reads left to right at a glance.

Renderers never decide: :class:`Timeline` is built elsewhere (``labkit.analyze.timeline``);
this module only draws it. matplotlib is imported here, lazily, and only when a plot is asked
for: a :class:`~matplotlib.figure.Figure` on an Agg canvas (no pyplot, no display), its margins
computed once from the sizes of its texts (no layout engine drawing it twice), one collection
of artists per series. :func:`preload` starts the import in the background when the command
knows a PNG will be drawn, while the captures are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Lanes of the event panel, top to bottom, with their colours and marker shapes.
LANES: Final[dict[str, tuple[str, str]]] = {
    "DTLS ClientHello": ("#1f77b4", "|"),
    "TLS session start": ("#2ca02c", "^"),
    "ICMP frag-needed": ("#d62728", "v"),
    "retransmission": ("#ff7f0e", "x"),
    "ASA 722036/602101": ("#9467bd", "D"),
    "ASA session": ("#8c564b", "s"),
    "DART": ("#e377c2", "o"),
    "CSTP CONNECT": ("#17becf", "*"),
}
_GROUP_COLOURS: Final = ("#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf")
_SHAPES: Final[dict[str, str]] = {"to": "v", "from": "^", "other": "."}
MAX_LABELS_PER_LANE: Final = 3  # text labels drawn per lane; the rest are markers only
#: Horizontal spots per series: points of a series that fall on the same spot (this fraction
#: of the time axis, the same size) are drawn once. A 1 GB session's 200 000 decrypted packets
#: fall on a few thousand spots of the 1300-pixel panel; drawing each cost most of the plot.
X_SPOTS: Final = 4000


def _import_matplotlib() -> None:
    """The two modules a PNG needs: the figure and the Agg canvas. pyplot is never imported:
    it adds its backend machinery, GUI hooks and a global figure registry (a fifth of the
    import time) that a picture drawn straight into a file does not use."""
    import matplotlib.backends.backend_agg  # noqa: F401 - the import is the point
    import matplotlib.figure  # noqa: F401


def preload() -> None:
    """Start importing matplotlib (about half a second) in a background thread;
    :func:`render_png` finds it imported, or waits for the import in progress (Python's import
    lock)."""
    import threading

    threading.Thread(
        target=_import_matplotlib, name="labkit-import-matplotlib", daemon=True
    ).start()


def _spots(x: np.ndarray, y: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """The points of one series that fall on distinct spots (:data:`X_SPOTS` across
    ``width`` seconds, sizes to the byte), in their order: the same picture, fewer markers."""
    if len(x) <= X_SPOTS or width <= 0:
        return x, y
    spot = np.floor(x * (X_SPOTS / width)).astype(np.int64) << 20 | (y.astype(np.int64) & 0xFFFFF)
    _, first = np.unique(spot, return_index=True)
    first.sort()
    return x[first], y[first]


Direction = Literal["to", "from", "other"]


@dataclass(frozen=True, slots=True)
class Series:
    """Packets of one capture and direction: times (epoch seconds) and IP sizes, same length.

    ``group`` (the capture) picks the colour, ``direction`` (to / from the client) the shape.
    """

    label: str
    times: np.ndarray
    sizes: np.ndarray
    group: str = ""
    direction: Direction = "other"


@dataclass(frozen=True, slots=True)
class Level:
    value: int
    label: str


@dataclass(frozen=True, slots=True)
class Marker:
    time: float  # epoch seconds, already on the capture's clock
    lane: str  # a key of LANES
    label: str = ""
    reconnect: bool = False  # also drawn as a vertical line through the size panel


@dataclass(frozen=True, slots=True)
class Timeline:
    title: str
    series: tuple[Series, ...] = ()
    levels: tuple[Level, ...] = ()
    markers: tuple[Marker, ...] = ()
    notes: tuple[str, ...] = field(default=())  # drawn under the title, e.g. sampling

    def span(self) -> tuple[float, float] | None:
        times = [float(s.times.min()) for s in self.series if len(s.times)]
        times += [float(s.times.max()) for s in self.series if len(s.times)]
        times += [m.time for m in self.markers]
        return (min(times), max(times)) if times else None


def _lane_order(markers: Sequence[Marker]) -> list[str]:
    used = {m.lane for m in markers}
    return [lane for lane in LANES if lane in used]


def _spaced_labels(markers: Sequence[Marker], span: tuple[float, float] | None) -> list[Marker]:
    """At most MAX_LABELS_PER_LANE labels, none repeated, none on top of the previous one."""
    width = (span[1] - span[0]) if span else 0.0
    out: list[Marker] = []
    for m in sorted(markers, key=lambda m: m.time):
        if not m.label or any(m.label == o.label for o in out):
            continue
        if out and m.time - out[-1].time < 0.08 * width:
            continue
        out.append(m)
        if len(out) == MAX_LABELS_PER_LANE:
            break
    return out


#: The picture: 12 inches wide at 110 dots an inch; the size panel 3.1 inches high, the event
#: panel 0.3 inch a lane (plus 0.35); the margins around them come from their texts. Font sizes in points (1/72 inch), as the texts use them.
WIDTH_IN: Final = 12.0
DPI: Final = 110
_TITLE_PT, _LABEL_PT, _LANE_PT, _LEGEND_PT, _NOTE_PT = 11.0, 10.0, 8.0, 8.0, 7.0
_LINE: Final = 1.2  # a text line's height per point of font size (matplotlib's line spacing)
_PAD: Final = 6.0  # points between the picture's edge and any text
_TICK: Final = 7.0  # a tick (3.5 points) and the pad to its label (3.5): matplotlib's defaults
_AXIS_LABEL_PAD: Final = 4.0  # between tick labels and the axis label (matplotlib's default)
_PANEL_GAP: Final = 18.0  # between the two panels (the upper one has no tick labels)
_LEGEND_ROW: Final = 14.0  # one legend row at 8 points: a line and its spacing
_LEGEND_COLUMNS: Final = 3


@dataclass(frozen=True, slots=True)
class _Frame:
    """The margins around the two panels, in points, from the sizes of the texts that go in
    them: the room a layout engine would find by drawing the figure twice, computed once.

    ``bottom`` holds, from the lower panel down: tick labels, the x label, the legend rows,
    the notes line."""

    left: float
    right: float
    top: float
    bottom: float
    legend_top: float  # from the figure's lower edge

    @classmethod
    def of(cls, lanes: Sequence[str], top_size: float, legend_rows: int) -> _Frame:
        from matplotlib.font_manager import FontProperties
        from matplotlib.textpath import TextToPath

        measure = TextToPath().get_text_width_height_descent

        def width(text: str, size: float) -> float:
            return float(measure(text, FontProperties(size=size), ismath=False)[0])

        # The size panel's left side: the rotated y label, then tick labels as wide as the
        # largest size's digits; the event panel's: its lane names.
        sizes_side = _LABEL_PT * _LINE + _AXIS_LABEL_PAD + width(f"{top_size:.0f}", _LABEL_PT)
        lanes_side = max((width(lane, _LANE_PT) for lane in lanes), default=0.0)
        x_axis = _TICK + 2 * _LABEL_PT * _LINE + _AXIS_LABEL_PAD  # tick labels, "seconds"
        legend = legend_rows * _LEGEND_ROW + (_PAD if legend_rows else 0.0)
        notes = _NOTE_PT * _LINE
        return cls(
            left=_PAD + _TICK + max(sizes_side, lanes_side),
            right=_PAD + width("0000", _LABEL_PT) / 2,  # the last x tick label's right half
            top=_PAD + 2 * _TITLE_PT * _LINE + _PAD,
            bottom=x_axis + legend + notes + 2 * _PAD,
            legend_top=legend + notes + _PAD,
        )


def draw(t: Timeline) -> Figure:
    """The picture of ``t``: a matplotlib figure on an Agg canvas, every artist placed."""
    _import_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    span = t.span()
    t0 = span[0] if span else 0.0
    width = (span[1] - span[0]) if span else 0.0
    lanes = _lane_order(t.markers)
    drawn = [s for s in t.series if len(s.times)]
    levels = sorted(t.levels, key=lambda lv: -lv.value)
    sizes = [s.sizes for s in drawn]
    y_range = None
    if sizes or levels:
        highs = [float(a.max()) for a in sizes] + [lv.value for lv in levels]
        lows = [float(a.min()) for a in sizes] + [lv.value for lv in levels]
        y_range = (max(0.0, min(lows) - 80), max(highs) + 110)
    rows = -(-len(drawn) // _LEGEND_COLUMNS)
    frame = _Frame.of(lanes, y_range[1] if y_range else 1.0, rows)

    heights = [3.1, 0.3 * max(1, len(lanes)) + 0.35]
    high_pt = sum(heights) * 72 + _PANEL_GAP + frame.top + frame.bottom
    wide_pt = WIDTH_IN * 72
    fig = Figure(figsize=(WIDTH_IN, high_pt / 72), dpi=DPI)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(
        2,
        1,
        height_ratios=heights,
        left=frame.left / wide_pt,
        right=1 - frame.right / wide_pt,
        top=1 - frame.top / high_pt,
        bottom=frame.bottom / high_pt,
        hspace=_PANEL_GAP / (sum(heights) * 72 / 2),  # a fraction of the mean panel height
    )
    top = fig.add_subplot(grid[0])
    bottom = fig.add_subplot(grid[1], sharex=top)
    top.tick_params(labelbottom=False)
    start = datetime.fromtimestamp(t0, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    fig.suptitle(
        f"{t.title}\n(t = 0 at {start})", fontsize=_TITLE_PT, y=1 - _PAD / high_pt, va="top"
    )

    groups = list(dict.fromkeys(s.group for s in t.series))
    points = sum(len(s.times) for s in t.series)
    dot = 30 if points <= 3000 else 10 if points <= 100_000 else 3
    for s in drawn:  # one collection per series
        top.scatter(
            *_spots(s.times - t0, s.sizes, width),
            s=dot,
            alpha=0.7,
            color=_GROUP_COLOURS[groups.index(s.group) % len(_GROUP_COLOURS)],
            label=s.label,
            marker=_SHAPES[s.direction],
            linewidths=0 if _SHAPES[s.direction] == "." else 0.8,
        )
    top.set_ylabel("IP packet size (bytes)")
    styles: tuple[tuple[Literal["--", ":"], list[Level]], ...] = (
        ("--", levels[0::2]),  # dashed and dotted in turn, from the highest
        (":", levels[1::2]),
    )
    for style, every in styles:
        if every:  # one collection per style
            top.hlines(
                [lv.value for lv in every],
                0,
                1,
                transform=top.get_yaxis_transform(),
                colors="black",
                linestyles=style,
                linewidth=1,
            )
    for i, lv in enumerate(levels):
        # Inside the axes, right-aligned: the label never steals width from the data.
        top.annotate(
            f"{lv.value}: {lv.label}",
            xy=(0.995, lv.value),
            xycoords=("axes fraction", "data"),
            xytext=(0, 2 if i % 2 == 0 else -2),
            textcoords="offset points",
            ha="right",
            va="bottom" if i % 2 == 0 else "top",
            fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1},
        )
    if y_range:
        top.set_ylim(*y_range)
    if not drawn:
        top.text(
            0.5,
            0.5,
            "no capture: log events only",
            transform=top.transAxes,
            ha="center",
            va="center",
            color="grey",
        )
    top.grid(True, axis="y", alpha=0.3)

    reconnects = [m for m in t.markers if m.reconnect]
    if reconnects:  # one collection per panel for the vertical lines
        xs = [m.time - t0 for m in reconnects]
        colours = [LANES[m.lane][0] for m in reconnects]
        for ax in (top, bottom):
            ax.vlines(
                xs, 0, 1, transform=ax.get_xaxis_transform(), colors=colours, lw=1.2, alpha=0.8
            )
    for m in reconnects:
        top.annotate(
            "reconnect",
            xy=(m.time - t0, 0.5),
            xycoords=("data", "axes fraction"),
            xytext=(-3, 0),
            textcoords="offset points",
            fontsize=8,
            rotation=90,
            ha="right",
            va="center",
            color=LANES[m.lane][0],
        )

    for row, lane in enumerate(lanes):
        colour, shape = LANES[lane]
        xs = [m.time - t0 for m in t.markers if m.lane == lane]
        bottom.scatter(xs, [row] * len(xs), marker=shape, color=colour, s=36)
        for m in _spaced_labels([m for m in t.markers if m.lane == lane], span):
            bottom.annotate(
                m.label,
                xy=(m.time - t0, row),
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=7,
                color=colour,
            )
    bottom.set_yticks(range(len(lanes)), lanes, fontsize=_LANE_PT)
    bottom.set_ylim(len(lanes) - 0.5, -0.7)
    bottom.set_xlabel("seconds")
    bottom.grid(True, axis="x", alpha=0.3)
    if t.notes:
        fig.text(
            _PAD / wide_pt, _PAD / high_pt, "; ".join(t.notes), fontsize=_NOTE_PT, color="grey"
        )
    if drawn:
        fig.legend(
            *top.get_legend_handles_labels(),
            loc="upper center",
            ncol=min(_LEGEND_COLUMNS, len(drawn)),
            fontsize=_LEGEND_PT,
            frameon=False,
            markerscale=1.5 if dot >= 10 else 3,
            bbox_to_anchor=(0.5, frame.legend_top / high_pt),
            borderaxespad=0,
        )
    return fig


def render_png(t: Timeline, out: Path) -> None:
    """Draw ``t`` into ``out`` (a path the caller got from :func:`labkit.fileio.atomic_output`)."""
    draw(t).canvas.print_png(out)  # type: ignore[attr-defined]  # the Agg canvas draw() set
