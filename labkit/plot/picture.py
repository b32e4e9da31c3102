"""What :mod:`labkit.plot.raster` paints, placed by :mod:`labkit.plot.layout`: frozen
descriptions of texts, lines and markers at their pixels, and the font that measures and
draws the texts (Pillow's embedded scalable font, so no font file is needed; one font for
both, so a text fits the room it was measured for).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import ImageFont


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


def width(text: str, size: int) -> int:
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
    """Everything :mod:`labkit.plot.raster` paints, painted in this order: the grid
    (``under``), the markers, the other lines (``rules``), the texts; each in its order."""

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
