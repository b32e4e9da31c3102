"""The ``--plot`` picture: what it shows (packet sizes per direction, the MTU lines, the event
lanes, the legend) and that its margins, computed from the texts' sizes instead of by a layout
engine, hold every text inside the picture and clear of the panels."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from scapy.utils import wrpcap

from labkit.analyze.plotdata import build
from labkit.analyze.timeline import LogInputs
from labkit.plot import DPI, LANES, WIDTH_IN, X_SPOTS, Timeline, _spots, draw, render_png
from tests.helpers import synth

if TYPE_CHECKING:
    from matplotlib.axis import Axis
    from matplotlib.text import Text

pytest.importorskip("matplotlib")

DATA = Path(__file__).parent / "data"


@pytest.fixture
def captured(tmp_path: Path) -> Timeline:
    """The seed case's two captures, through the analyzer's one pass and the plot's sampler."""
    from labkit.analyze import Collect, analyze

    outside, inside = tmp_path / "outside.pcap", tmp_path / "inside.pcap"
    wrpcap(str(outside), synth.outside_dtls_blocked())
    wrpcap(str(inside), synth.inside_icmp_ok())
    report = analyze([outside, inside], collect=Collect(plot=True))
    points = {f.path: f.capture_point for f in report.files if f.analyzable}
    return build(report.samples, report.findings, LogInputs(), points)


@pytest.fixture
def logged() -> Timeline:
    """The ASA's syslog and the client's DART log alone: lanes, a reconnect, no packets."""
    from labkit.analyze.sources import read_dart, read_syslog
    from labkit.analyze.timeline import join

    syslog, dart = DATA / "asa-seed.log", DATA / "dart-seed.txt"
    inputs = LogInputs(
        ((str(syslog), read_syslog(str(syslog), year=None)[1]),),
        ((str(dart), read_dart(str(dart))[1]),),
    )
    return build([], join([], inputs), inputs)


def _in_view(axis: Axis) -> list[Text]:
    """The tick labels drawn: matplotlib also places ticks just outside the view, undrawn."""
    low, high = sorted(axis.get_view_interval())
    return [x for x, at in zip(axis.get_ticklabels(), axis.get_ticklocs()) if low <= at <= high]


def _shown(t: Timeline) -> None:
    fig = draw(t)
    top, bottom = fig.axes
    drawn = [s for s in t.series if len(s.times)]
    # One collection of points per series, at the series' sizes, and the legend names them.
    points = [c for c in top.collections if c.get_label() in {s.label for s in drawn}]
    assert [c.get_label() for c in points] == [s.label for s in drawn]
    for c, s in zip(points, drawn, strict=True):
        assert set(c.get_offsets()[:, 1].tolist()) == set(s.sizes.tolist())
    assert [x.get_text() for x in fig.legends[0].get_texts()] == [s.label for s in drawn]
    # Every MTU line at its size, and its label.
    ys = {
        round(float(seg[0][1]))
        for c in top.collections
        if c not in points
        for seg in c.get_segments()  # type: ignore[attr-defined]
        if seg[0][1] == seg[1][1]  # horizontal: not a reconnect's vertical line
    }
    assert ys == {lv.value for lv in t.levels}
    labels = {x.get_text() for x in top.texts}
    assert {f"{lv.value}: {lv.label}" for lv in t.levels} <= labels
    # One lane per kind of event, top to bottom in LANES order.
    lanes = [x.get_text() for x in bottom.get_yticklabels()]
    assert lanes == [lane for lane in LANES if lane in {m.lane for m in t.markers}]
    reconnects = [m for m in t.markers if m.reconnect]
    assert [x.get_text() for x in top.texts].count("reconnect") == len(reconnects)

    # The margins: the title above the upper panel, tick and axis labels beside and under the
    # panels, the legend and notes under the lower one, all inside the picture.
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    whole = fig.bbox
    up, low = top.get_window_extent(renderer), bottom.get_window_extent(renderer)
    (title,) = [x for x in fig.texts if x.get_text().startswith(t.title)]
    box = title.get_window_extent(renderer)
    assert box.y0 >= up.y1 and box.y1 <= whole.y1
    for label in [*_in_view(top.yaxis), top.yaxis.label, *_in_view(bottom.yaxis)]:
        if label.get_text():
            box = label.get_window_extent(renderer)
            assert 0 <= box.x0 and box.x1 <= up.x0, label.get_text()
    for label in [*_in_view(bottom.xaxis), bottom.xaxis.label]:
        if label.get_text():
            box = label.get_window_extent(renderer)
            assert 0 <= box.y0 and box.y1 <= low.y0 and box.x1 <= whole.x1, label.get_text()
    axis_label = bottom.xaxis.label.get_window_extent(renderer)
    if drawn:
        legend = fig.legends[0].get_window_extent(renderer)
        assert 0 <= legend.y0 and legend.y1 <= axis_label.y0
        assert 0 <= legend.x0 and legend.x1 <= whole.x1
    for note in [x for x in fig.texts if x is not title]:
        box = note.get_window_extent(renderer)
        assert 0 <= box.y0 and box.x1 <= whole.x1
        assert not drawn or box.y1 <= fig.legends[0].get_window_extent(renderer).y0


def test_the_captures_picture_shows_sizes_mtus_events_and_legend(captured: Timeline) -> None:
    assert {s.direction for s in captured.series} >= {"to", "from"}
    _shown(captured)


def test_the_logs_picture_shows_lanes_and_the_reconnect(logged: Timeline) -> None:
    assert any(m.reconnect for m in logged.markers)
    _shown(logged)


def test_the_png_is_the_figure_at_its_size(captured: Timeline, tmp_path: Path) -> None:
    png = tmp_path / "case.png"
    render_png(captured, png)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    fig = draw(captured)
    assert width == round(WIDTH_IN * DPI) == round(fig.get_figwidth() * DPI)
    assert height == round(fig.get_figheight() * DPI)


def test_a_dense_series_is_drawn_once_per_spot_to_the_byte() -> None:
    rng = np.random.default_rng(7)
    times = np.sort(rng.uniform(0, 100, 50_000))
    sizes = rng.choice([52, 1347, 1418], 50_000)
    x, y = _spots(times, sizes, 100.0)
    assert len(x) < len(times) and np.all(np.diff(x) >= 0)
    spot = np.floor(times * (X_SPOTS / 100.0)).astype(np.int64)
    kept = set(zip(np.floor(x * (X_SPOTS / 100.0)).astype(np.int64).tolist(), y.tolist()))
    assert kept == set(zip(spot.tolist(), sizes.tolist()))  # every (spot, size) once


def test_more_large_packets_than_the_budget_are_thinned_over_the_whole_capture(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Keeping the first large packets only would end the picture's line where the budget
    ran out; thinned evenly, the line spans the capture, and the note says so."""
    import labkit.analyze.plotdata as plotdata

    monkeypatch.setattr(plotdata, "MAX_POINTS", 1000)
    pts = plotdata._Points(1347)
    for k in range(50):  # 50 chunks of 1000 packets, nine in ten of them 1418 bytes
        t = np.arange(1000) + k * 1000.0
        size = np.where(np.arange(1000) % 10 == 0, 100, 1418)
        addr = np.full(1000, 5, np.uint64)
        pts.add(t, size, addr, addr + 1, addr[:1])
    rows = pts.rows()
    big = rows.t[rows.s == 1418]
    assert len(big) == -(-45_000 // pts.big.stride) and 500 < len(big) <= 1000
    assert len(rows[rows.s == 100]) == -(-5_000 // pts.small.stride) <= 1000
    assert big.min() < 1000 and big.max() > 48_000  # spread over the whole capture
    assert np.all(np.diff(rows.t) >= 0)
    sampler = plotdata.Sampler()
    sampler.points = pts
    (note,) = build([("big.pcap", sampler)], [], LogInputs()).notes
    assert note == (
        f"big.pcap: 50000 packets, the ones above 1347 bytes sampled 1 in {pts.big.stride}, "
        f"the ones at or below 1347 bytes sampled 1 in {pts.small.stride}"
    )
