"""``--plot OUT.png``: one picture of the case -- packet sizes over time against the MTUs,
with the events that explain them underneath.

Top panel: every packet's IP size per direction (dots), the MTU levels as labelled
horizontal lines (the adapter/DTLS MTU 1418 and the TLS MTU 1347 in the seed's case), and the
reconnects as vertical lines through both panels. Bottom panel: one lane per kind of event
(DTLS ClientHellos, ICMP frag-needed, TLS session starts, retransmissions, ASA syslog, DART),
so "packets over 1347, ICMP, DTLS retries, reconnect" reads left to right at a glance.

Renderers never decide: :class:`Timeline` is built elsewhere (``labkit.analyze.timeline``);
this module only draws it. matplotlib is imported here, lazily, with the Agg backend (no
display needed), and only when a plot is asked for: :func:`preload` starts that import in the
background when the command knows a PNG will be drawn, while the captures are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Final, Literal

import numpy as np

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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401 - the import is the point


def preload() -> None:
    """Start importing matplotlib (about a second) in a background thread; :func:`render_png`
    finds it imported, or waits for the import in progress (Python's import lock)."""
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


def render_png(t: Timeline, out: Path) -> None:
    """Draw ``t`` into ``out`` (a path the caller got from :func:`labkit.fileio.atomic_output`)."""
    _import_matplotlib()
    import matplotlib.pyplot as plt

    span = t.span()
    t0 = span[0] if span else 0.0
    lanes = _lane_order(t.markers)
    heights = [3.6, 0.35 * max(1, len(lanes)) + 0.4]
    fig, (top, bottom) = plt.subplots(
        2, 1, sharex=True, figsize=(12, sum(heights) + 1.2), gridspec_kw={"height_ratios": heights}
    )
    start = datetime.fromtimestamp(t0, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    fig.suptitle(f"{t.title}\n(t = 0 at {start})", fontsize=11)

    groups = list(dict.fromkeys(s.group for s in t.series))
    points = sum(len(s.times) for s in t.series)
    dot = 30 if points <= 3000 else 10 if points <= 100_000 else 3
    for s in t.series:
        if len(s.times):
            colour = _GROUP_COLOURS[groups.index(s.group) % len(_GROUP_COLOURS)]
            top.scatter(
                *_spots(s.times - t0, s.sizes, (span[1] - span[0]) if span else 0.0),
                s=dot,
                alpha=0.7,
                color=colour,
                label=s.label,
                marker=_SHAPES[s.direction],
                rasterized=True,
                linewidths=0 if _SHAPES[s.direction] == "." else 0.8,
            )
    top.set_ylabel("IP packet size (bytes)")
    levels = sorted(t.levels, key=lambda lv: -lv.value)
    for i, lv in enumerate(levels):
        style = "--" if i % 2 == 0 else ":"
        top.axhline(lv.value, color="black", linestyle=style, linewidth=1)
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
    sizes = [s.sizes for s in t.series if len(s.sizes)]
    if sizes or levels:
        values = [float(a.max()) for a in sizes] + [lv.value for lv in levels]
        lows = [float(a.min()) for a in sizes] + [lv.value for lv in levels]
        top.set_ylim(max(0.0, min(lows) - 80), max(values) + 110)
    drawn = [s for s in t.series if len(s.times)]
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

    for m in t.markers:
        if m.reconnect:
            for ax in (top, bottom):
                ax.axvline(m.time - t0, color=LANES[m.lane][0], linewidth=1.2, alpha=0.8)
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
    bottom.set_yticks(range(len(lanes)), lanes, fontsize=8)
    bottom.set_ylim(len(lanes) - 0.5, -0.7)
    bottom.set_xlabel("seconds")
    bottom.grid(True, axis="x", alpha=0.3)
    if t.notes:
        fig.text(0.01, 0.005, "; ".join(t.notes), fontsize=7, color="grey")
    rows = -(-len(drawn) // 3)  # legend rows under the panels, three series a row
    bottom_room = (0.03 + 0.028 * rows) if drawn else 0.02
    fig.tight_layout(rect=(0, bottom_room, 1, 1))
    if drawn:
        fig.legend(
            *top.get_legend_handles_labels(),
            loc="lower center",
            ncol=min(3, len(drawn)),
            fontsize=8,
            frameon=False,
            markerscale=1.5 if dot >= 10 else 3,
            bbox_to_anchor=(0.5, 0.012),
        )
    fig.savefig(out, format="png", dpi=110)
    plt.close(fig)
