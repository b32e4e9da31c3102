"""``--plot OUT.png``: one picture of the case -- packet sizes over time against the MTUs,
with the events that explain them underneath.

Top panel: every packet's IP size per direction (dots), the MTU levels as labelled
horizontal lines (the adapter/DTLS MTU 1418 and the TLS MTU 1347 in the seed's case), and the
reconnects as vertical lines through both panels. Bottom panel: one lane per kind of event
(DTLS ClientHellos, ICMP frag-needed, TLS session starts, retransmissions, ASA syslog, DART),
so "packets over 1347, ICMP, DTLS retries, reconnect" reads left to right at a glance.

Renderers never decide: :class:`Timeline` is built elsewhere (``labkit.analyze.timeline``);
this package only draws it, in two steps: :mod:`labkit.plot.layout` places everything in
pixels as a :mod:`labkit.plot.picture` description (a pure function of the timeline, testable
without a picture) and :mod:`labkit.plot.raster` paints that into a numpy array, with Pillow's
font for the texts, and writes the PNG. The picture is simple enough that a plotting
library's generality costs more than it gives: matplotlib took 0.4 s to import and 0.2 s to
draw this picture; Pillow imports in 12 ms and the whole picture draws in under 0.1 s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
#: Each capture's colour, in turn, and each direction's marker shape (to / from the client).
GROUP_COLOURS: Final = ("#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf")
SHAPES: Final[dict[str, str]] = {"to": "v", "from": "^", "other": "."}
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
    notes: tuple[str, ...] = field(default=())  # drawn under the legend, e.g. sampling

    def span(self) -> tuple[float, float] | None:
        times = [float(s.times.min()) for s in self.series if len(s.times)]
        times += [float(s.times.max()) for s in self.series if len(s.times)]
        times += [m.time for m in self.markers]
        return (min(times), max(times)) if times else None


#: Pillow's first version with a scalable embedded font (``ImageFont.load_default(size=)``),
#: which every text of the picture is drawn with.
PILLOW: Final = (10, 1)


def unavailable() -> str | None:
    """Why :func:`render_png` cannot work here (Pillow missing or too old), else None: said
    before any capture is read, not after."""
    try:
        import PIL
    except ImportError:
        return "Pillow is not installed"
    found = tuple(int(part) for part in PIL.__version__.split(".")[:2])
    if found < PILLOW:
        return f"Pillow {PIL.__version__} is installed"
    return None


def render_png(t: Timeline, out: Path) -> None:
    """Draw ``t`` into ``out`` (a path the caller got from :func:`labkit.fileio.atomic_output`)."""
    from labkit.plot.layout import layout
    from labkit.plot.raster import write_png

    write_png(layout(t), out)
