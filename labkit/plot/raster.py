"""Paint a :class:`~labkit.plot.picture.Picture` and write it as a PNG.

The grid, the markers and the lines are painted in a numpy array: a series' markers are one
small coverage mask (the marker drawn by Pillow at 4x and averaged down, so its edges are
smooth) stamped at all of its pixels at once, one numpy assignment per pixel of the mask,
whatever the number of points. Texts go through Pillow's ``ImageDraw`` and its FreeType font.
The PNG is written here, not by Pillow's ``Image.save``: its first use imports four other
formats' plugins (15 ms) and its filter chosen per row costs 9 ms more, where this picture --
flat colour, long runs -- deflates as well with rows unfiltered, at zlib level 3 (4 ms; a
higher level costs more time than it saves bytes). Pillow reads the file back in the tests.
"""

from __future__ import annotations

import math
import struct
import zlib
from functools import cache
from pathlib import Path
from typing import Final

import numpy as np
from PIL import Image, ImageDraw

from labkit.plot.picture import Box, Picture, Points, Rule, Text, extent, font

_SUPERSAMPLE: Final = 4
_COMPRESS_LEVEL: Final = 3
_BACKDROP_ALPHA: Final = 0.7  # behind a label on a line: the line still shows through


@cache
def _bytes(colour: str) -> tuple[int, int, int]:
    """``#rrggbb`` as numbers (Pillow's own colour parser compiles its patterns on first use)."""
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _rgb(colour: str) -> np.ndarray:
    return np.array(_bytes(colour), np.float32)


def _outline(shape: str, r: float) -> list[tuple[float, float]]:
    """The polygon of a filled marker of radius ``r`` about (0, 0), y down: each fills the
    square of its size, as printed markers do."""
    if shape == "^":
        return [(0, -r), (r, r), (-r, r)]
    if shape == "v":
        return [(0, r), (r, -r), (-r, -r)]
    if shape == "D":
        d = 1.25 * r  # a square on its corner: as wide as the square markers look
        return [(0, -d), (d, 0), (0, d), (-d, 0)]
    if shape == "s":
        return [(-r, -r), (r, -r), (r, r), (-r, r)]
    if shape == "*":  # five points, the inner ones at 0.4 of the radius
        return [
            (
                (r if k % 2 == 0 else 0.4 * r) * math.sin(k * math.pi / 5),
                -(r if k % 2 == 0 else 0.4 * r) * math.cos(k * math.pi / 5),
            )
            for k in range(10)
        ]
    raise ValueError(f"no outline for marker {shape!r}")


@cache
def _mask(shape: str, size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The marker ``shape`` ``size`` pixels wide as (row offsets, column offsets, coverage
    0..1) of the pixels it touches around its centre."""
    half = math.ceil(size / 2) + 1
    side = 2 * half + 1
    big = Image.new("L", (side * _SUPERSAMPLE, side * _SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(big)
    c = (half + 0.5) * _SUPERSAMPLE  # the centre pixel's centre
    r = (size / 2 + 0.5) * _SUPERSAMPLE  # half a pixel more: the outline printed markers have
    stroke = max(1, round(1.2 * _SUPERSAMPLE))  # a line marker's width: about 1.2 pixels
    if shape in {"o", "."}:
        d = r if shape == "o" else max(r / 2, _SUPERSAMPLE)  # a point is half a circle's size
        draw.ellipse((c - d, c - d, c + d, c + d), fill=255)
    elif shape == "|":
        draw.line((c, c - r, c, c + r), fill=255, width=stroke)
    elif shape == "x":
        q = r * 0.75
        draw.line((c - q, c - q, c + q, c + q), fill=255, width=stroke)
        draw.line((c - q, c + q, c + q, c - q), fill=255, width=stroke)
    else:
        draw.polygon([(c + x, c + y) for x, y in _outline(shape, r)], fill=255)
    small = np.asarray(big, np.float32).reshape(side, _SUPERSAMPLE, side, _SUPERSAMPLE)
    cover = small.mean(axis=(1, 3)) / 255
    dy, dx = np.nonzero(cover > 0.02)
    return dy - half, dx - half, cover[dy, dx]


def _stamp(canvas: np.ndarray, p: Points) -> None:
    """Blend ``p``'s markers into ``canvas``: their coverage first (the largest where two
    markers of the series meet), then the colour once, so a series is one even tone."""
    if not len(p.xs):
        return
    dys, dxs, weights = _mask(p.shape, p.size)
    reach = int(max(np.abs(dys).max(), np.abs(dxs).max()))
    # The coverage of the markers' whole bounding box (no test per pixel of the mask whether
    # it falls off the box), then only its part inside the clip is blended.
    bx0, by0 = int(p.xs.min()) - reach, int(p.ys.min()) - reach
    wide = int(p.xs.max()) + reach + 1 - bx0
    cover = np.zeros((int(p.ys.max()) + reach + 1 - by0, wide), np.float32)
    flat, centres = cover.reshape(-1), (p.ys - by0).astype(np.int64) * wide + (p.xs - bx0)
    for dy, dx, w in zip(dys.tolist(), dxs.tolist(), weights.tolist(), strict=True):
        at = centres + (dy * wide + dx)
        flat[at] = np.maximum(flat[at], w)
    x0, x1 = max(p.clip.x0, bx0), min(p.clip.x1, bx0 + wide)
    y0, y1 = max(p.clip.y0, by0), min(p.clip.y1, by0 + cover.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    cover = cover[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0]
    rows, columns = np.nonzero(cover)  # only the pixels touched: a series is sparse
    a = cover[rows, columns, None] * p.alpha
    region = canvas[y0:y1, x0:x1]
    region[rows, columns] = _over(region[rows, columns], a, p.colour)


def _over(under: np.ndarray, alpha: np.ndarray | float, colour: str) -> np.ndarray:
    """``colour`` at ``alpha`` over the RGB bytes ``under``, rounded back to bytes."""
    return (under * (1 - alpha) + alpha * _rgb(colour) + 0.5).astype(np.uint8)


def _rule(canvas: np.ndarray, r: Rule) -> None:
    """A horizontal or vertical line, ``width`` pixels thick, dashed if asked."""
    high, wide = canvas.shape[:2]
    along = np.arange(r.x0, r.x1 + 1) if r.y0 == r.y1 else np.arange(r.y0, r.y1 + 1)
    if r.dash:
        along = along[(along - along[0]) % sum(r.dash) < r.dash[0]]
    start = (r.y0 if r.y0 == r.y1 else r.x0) - (r.width - 1) // 2
    across = np.arange(max(0, start), min(high if r.y0 == r.y1 else wide, start + r.width))
    rows, columns = np.ix_(across, along) if r.y0 == r.y1 else np.ix_(along, across)
    canvas[rows, columns] = _over(canvas[rows, columns], r.alpha, r.colour)


def _text(image: Image.Image, draw: ImageDraw.ImageDraw, t: Text) -> None:
    f = font(t.size)
    if not t.vertical:
        draw.text((t.x, t.y), t.text, fill=_bytes(t.colour), font=f, anchor=t.anchor)
        return
    left, top, right, bottom = extent(t.text, t.size, "mm")
    flat = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(flat).text((-left, -top), t.text, fill=255, font=f, anchor="mm")
    box = t.box()
    image.paste(_bytes(t.colour), (box.x0, box.y0), flat.rotate(90, expand=True))


def paint(p: Picture) -> Image.Image:
    """``p`` as an RGB image."""
    canvas = np.full((p.height, p.width, 3), 255, np.uint8)
    for r in p.under:
        _rule(canvas, r)
    for points in p.points:
        _stamp(canvas, points)
    for r in p.rules:
        _rule(canvas, r)
    for t in p.texts:
        if t.backdrop:
            b = _padded(t.box(), 1, p.width, p.height)
            box = canvas[b.y0 : b.y1, b.x0 : b.x1]
            box[...] = _over(box, _BACKDROP_ALPHA, "#ffffff")
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for t in p.texts:
        _text(image, draw, t)
    return image


def _padded(b: Box, pad: int, width: int, height: int) -> Box:
    return Box(
        max(0, b.x0 - pad), max(0, b.y0 - pad), min(width, b.x1 + pad), min(height, b.y1 + pad)
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk: length, type, data, CRC-32 of type and data (PNG specification, 5.3)."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(image: Image.Image) -> bytes:
    """``image`` (RGB) as PNG bytes: 8-bit truecolour, every row unfiltered (filter type 0)."""
    pixels = np.asarray(image)
    high, wide = pixels.shape[:2]
    rows = np.zeros((high, 1 + wide * 3), np.uint8)  # each row: its filter type byte, pixels
    rows[:, 1:] = pixels.reshape(high, wide * 3)
    # 8 bits per sample, colour type 2 (RGB), deflate, filter method 0, no interlace.
    header = struct.pack(">IIBBBBB", wide, high, 8, 2, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(rows.tobytes(), _COMPRESS_LEVEL)),
            _chunk(b"IEND", b""),
        )
    )


def write_png(p: Picture, out: Path) -> None:
    """Paint ``p`` into the PNG file ``out``."""
    out.write_bytes(png(paint(p)))
