"""The ``--plot`` picture: what its layout shows (packet sizes per direction, the MTU lines,
the event lanes, the reconnects, the legend, ticks at 1-2-5 steps), that no text sits on
another or outside its margin, and that the PNG Pillow reads back has those things where the
layout put them."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scapy.utils import wrpcap

from labkit.analyze.plotdata import build
from labkit.analyze.timeline import LogInputs
from labkit.plot import LANES, Level, Marker, Series, Timeline, render_png
from tests.helpers import synth
from tests.helpers.tshark import requires_tshark, tshark_frames

pytest.importorskip("PIL")

from PIL import Image  # noqa: E402 - after the skip

from labkit.plot.layout import DPI, MAX_LABELS_PER_LANE, WIDTH_IN, layout, ticks  # noqa: E402
from labkit.plot.picture import Axis, Picture, Text  # noqa: E402

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


def _pixel(axis: Axis, value: Any) -> Any:
    """Where ``value`` falls on ``axis``, from two of its ticks: what a reader of the
    picture does with a ruler."""
    a, b = axis.ticks[0], axis.ticks[-1]
    return a.at + (value - a.value) * (b.at - a.at) / (b.value - a.value)


def _near(pixels: list[int], where: list[float]) -> bool:
    """Each pixel within one of where a ruler puts it (the ticks are whole pixels too)."""
    return len(pixels) == len(where) and all(abs(a - b) <= 1 for a, b in zip(pixels, where))


def _texts_in_place(p: Picture) -> None:
    """Every text inside the picture, none on another; the title above the panels, the axes'
    labels beside and under them, the legend and the notes at the bottom."""
    boxes = {x: x.box() for x in p.texts}
    for text, box in boxes.items():
        assert 0 <= box.x0 and box.x1 <= p.width and 0 <= box.y0 and box.y1 <= p.height, text
    for (a, box_a), (b, box_b) in combinations(boxes.items(), 2):
        assert not box_a.overlaps(box_b), (a.text, b.text)
    for text, box in boxes.items():
        if text.role == "title":
            assert box.y1 <= p.sizes.y0
        if text.role in {"ytick", "ylabel", "lane"}:
            assert box.x1 <= p.sizes.x0
        if text.role in {"xtick", "xlabel", "legend", "note"}:
            assert box.y0 >= p.events.y1
        if text.role in {"mtu", "reconnect"}:
            assert p.sizes.holds(box)
        if text.role == "event":
            assert p.events.holds(box)
    assert max(b.y1 for t, b in boxes.items() if t.role == "xlabel") <= min(
        (b.y0 for t, b in boxes.items() if t.role in {"legend", "note"}), default=p.height
    )


def _shown(t: Timeline) -> Picture:
    p = layout(t)
    t0 = t.span()[0]  # type: ignore[index]  # every fixture has something to show
    drawn = [s for s in t.series if len(s.times)]
    # One set of markers per series, each at its packets' times and sizes (to the pixel:
    # where the axes' ticks put them), and the legend names the series with their counts.
    series = [x for x in p.points if x.role == "series"]
    assert [x.label for x in series] == [s.label for s in drawn]
    for x, s in zip(series, drawn, strict=True):
        rows = {round(_pixel(p.y, v)) for v in s.sizes.tolist()}
        columns = {round(_pixel(p.x, v - t0)) for v in s.times.tolist()}
        assert set(x.ys.tolist()) <= {r + d for r in rows for d in (-1, 0, 1)}
        assert {c + d for c in x.xs.tolist() for d in (-1, 0, 1)} >= columns
    assert p.texts_of("legend") == [s.label for s in drawn]
    assert [x.label for x in p.points if x.role == "legend"] == [s.label for s in drawn]
    # Every MTU line at its size, and its label.
    lines = sorted(r.y0 for r in p.rules if r.role == "mtu")
    assert _near(lines, sorted(_pixel(p.y, lv.value) for lv in t.levels))
    assert sorted(p.texts_of("mtu")) == sorted(f"{lv.value}: {lv.label}" for lv in t.levels)
    # One lane per kind of event, top to bottom in LANES order, with its markers.
    lanes = [lane for lane in LANES if lane in {m.lane for m in t.markers}]
    assert list(p.lanes) == p.texts_of("lane") == lanes
    assert [x.label for x in p.points if x.role == "lane"] == lanes
    for lane in lanes:
        events = p.texts_of("event")
        labelled = [m.label for m in t.markers if m.lane == lane and m.label]
        shown = [e for e in events if e in labelled]
        assert len(shown) == len(set(shown)) <= MAX_LABELS_PER_LANE
        assert shown or not labelled  # a lane's first label always has room
    # A reconnect: a line through both panels at its time, and its label.
    reconnects = [m for m in t.markers if m.reconnect]
    at = sorted(r.x0 for r in p.rules if r.role == "reconnect")
    assert _near(at, sorted(_pixel(p.x, m.time - t0) for m in reconnects for _ in range(2)))
    assert (1 if reconnects else 0) <= len(p.texts_of("reconnect")) <= len(reconnects)

    _texts_in_place(p)
    return p


def test_the_captures_picture_shows_sizes_mtus_events_and_legend(captured: Timeline) -> None:
    assert {s.direction for s in captured.series} >= {"to", "from"}
    assert captured.levels and captured.markers
    _shown(captured)


def test_the_logs_picture_shows_lanes_the_reconnect_and_ticks(logged: Timeline) -> None:
    assert any(m.reconnect for m in logged.markers)
    p = _shown(logged)
    # The logs span 61 s and sizes 1347-1418: the axes a reader expects.
    assert [k.label for k in p.x.ticks] == ["0", "10", "20", "30", "40", "50", "60"]
    assert [k.label for k in p.y.ticks] == ["1300", "1350", "1400", "1450", "1500"]
    assert p.texts_of("mtu") == ["1418: packet size the adapter MTU allows", "1347: tunnel MTU"]
    assert p.texts_of("event")[:1] == ["1418 > 1347"]


def test_many_event_labels_keep_apart() -> None:
    """Twenty labelled reconnects a tenth of a second apart in 100 s of events: the labels
    that fit, none on another."""
    crowd = [Marker(1000 + k / 10, "DART", f"reconnect number {k}", True) for k in range(20)]
    t = Timeline("crowded", markers=(*crowd, Marker(1100.0, "ASA session", "end")))
    p = _shown(t)
    assert 1 <= len(p.texts_of("event")) <= MAX_LABELS_PER_LANE
    assert 1 <= len(p.texts_of("reconnect")) < 20
    assert len([r for r in p.rules if r.role == "reconnect"]) == 40  # every line drawn


def _long() -> Timeline:
    """Twelve captures with long names, nine series, four MTU lines, six notes."""
    name = "capture-number-{}-from-the-customer-site.pcap"
    return Timeline(
        "labkit analyze: " + ", ".join(name.format(k) for k in range(12)),
        series=tuple(
            Series(
                f"{name.format(k)} (outside): to the client (123456)",
                np.arange(10.0) + k,
                np.full(10, 100 + k * 50),
                group=str(k),
                direction="to",
            )
            for k in range(9)
        ),
        levels=(Level(1418, "a"), Level(1400, "b"), Level(1347, "c"), Level(1300, "d")),
        notes=tuple(f"{name.format(k)}: 5000000 packets, 1 in 12 sampled" for k in range(6)),
    )


@pytest.mark.parametrize(
    "t",
    [
        Timeline("nothing to show"),
        Timeline("one packet", series=(Series("a (1)", np.array([5.0]), np.array([1418])),)),
        Timeline("one event", markers=(Marker(7.0, "DART", "reconnect", True),)),
        _long(),
    ],
    ids=["nothing", "one-packet", "one-event", "long-names"],
)
def test_odd_timelines_keep_their_texts_in_and_apart(t: Timeline, tmp_path: Path) -> None:
    p = layout(t)
    _texts_in_place(p)
    assert len(p.texts_of("title")) >= 2
    assert len(p.texts_of("legend")) == len([s for s in t.series if len(s.times)])
    assert sorted(p.texts_of("mtu")) == sorted(f"{lv.value}: {lv.label}" for lv in t.levels)
    render_png(t, tmp_path / "odd.png")
    with Image.open(tmp_path / "odd.png") as image:
        assert image.size == (p.width, p.height)


@pytest.mark.parametrize(
    ("low", "high", "labels"),
    [
        (-7.05, 148.05, ["0", "20", "40", "60", "80", "100", "120", "140"]),
        (0.0, 1.0, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]),
        (-0.002, 0.041, ["0.00", "0.01", "0.02", "0.03", "0.04"]),
        (1267.0, 1528.0, ["1300", "1350", "1400", "1450", "1500"]),
        (0.0, 86_400.0 * 1.05, ["0", "20000", "40000", "60000", "80000"]),
    ],
)
def test_ticks_fall_on_1_2_5_steps(low: float, high: float, labels: list[str]) -> None:
    assert [s for _, s in ticks(low, high)] == labels


def test_the_png_has_the_layouts_size_points_and_lines(captured: Timeline, tmp_path: Path) -> None:
    out = tmp_path / "case.png"
    render_png(captured, out)
    p = layout(captured)
    with Image.open(out) as image:  # Pillow's decoder: an independent reader of the file
        assert image.format == "PNG" and image.mode == "RGB"
        assert image.size == (p.width, p.height) and p.width == round(WIDTH_IN * DPI)
        pixels = np.asarray(image).astype(np.int64)
    # Each series' colour (at its alpha over white) at the centre of each of its markers
    # that nothing else covers (another series' marker, a line, a text), and no marker
    # centre left white.
    series = [x for x in p.points if x.role == "series"]
    checked = 0
    for x in series:
        colour = np.array([int(x.colour[i : i + 2], 16) for i in (1, 3, 5)])
        expected = np.rint(255 * (1 - x.alpha) + colour * x.alpha)
        centres = pixels[x.ys, x.xs]
        assert (centres.sum(axis=1) < 3 * 250).all(), x.label
        others = np.array([(a, b) for y in series if y is not x for a, b in zip(y.xs, y.ys)])
        for cx, cy, got in zip(x.xs, x.ys, centres, strict=True):
            if len(others) and (np.abs(others - (cx, cy)).max(axis=1) <= 10).any():
                continue
            if any(r.x0 - 3 <= cx <= r.x1 + 3 and r.y0 - 3 <= cy <= r.y1 + 3 for r in p.rules):
                continue
            if any(b.x0 <= cx < b.x1 and b.y0 <= cy < b.y1 for b in map(Text.box, p.texts)):
                continue
            assert np.abs(got - expected).max() <= 3, x.label
            checked += 1
    assert checked >= 3  # some markers stand apart: the test checks something
    # The MTU lines' rows are dark along the panel (dashes and dots: half of it or more),
    # where the rows just off them, left of the labels, are not.
    half = slice(p.sizes.x0 + 1, (p.sizes.x0 + p.sizes.x1) // 2)
    for r in [r for r in p.rules if r.role == "mtu"]:
        dark = pixels[r.y0, half].sum(axis=1) < 200
        assert dark.mean() >= 0.45
        assert (pixels[r.y0 - 3, half].sum(axis=1) < 200).mean() < 0.1
    # The lane markers in their lane's colour.
    for x in [x for x in p.points if x.role == "lane"]:
        colour = np.array([int(x.colour[i : i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(pixels[x.ys, x.xs] - colour).max(axis=1) <= 3).all(), x.label
    # Texts are drawn: the title's line has ink.
    title = next(t for t in p.texts if t.role == "title").box()
    assert (pixels[title.y0 : title.y1, title.x0 : title.x1].sum(axis=2) < 300).any()


def test_a_dense_series_is_drawn_once_per_pixel() -> None:
    """200 000 packets over a minute: one marker per pixel they fall on, every such pixel."""
    rng = np.random.default_rng(7)
    times = np.sort(rng.uniform(0, 60, 200_000)) + 1.7e9
    sizes = rng.choice([52, 1347, 1418], 200_000)
    t = Timeline("dense", series=(Series("all", times, sizes),))
    p = layout(t)
    (x,) = [x for x in p.points if x.role == "series"]
    pairs = set(zip(x.xs.tolist(), x.ys.tolist(), strict=True))
    assert len(pairs) == len(x.xs) < 5000  # each pixel once, a few thousand of them
    columns, rows = np.rint(_pixel(p.x, times - times[0])), np.rint(_pixel(p.y, sizes))
    expected = set(zip(columns.astype(int).tolist(), rows.astype(int).tolist(), strict=True))
    near = {(c + dc, r + dr) for c, r in expected for dc in (-1, 0, 1) for dr in (-1, 0, 1)}
    assert pairs <= near and len(pairs) >= 0.9 * len(expected)


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
    assert np.count_nonzero(rows.s == 100) == -(-5_000 // pts.small.stride) <= 1000
    assert big.min() < 1000 and big.max() > 48_000  # spread over the whole capture
    assert np.all(np.diff(rows.t) >= 0)
    sampler = plotdata.Sampler()
    sampler.points = pts
    (note,) = build([("big.pcap", sampler)], [], LogInputs()).notes
    assert note == (
        f"big.pcap: 50000 packets, the ones above 1347 bytes sampled 1 in {pts.big.stride}, "
        f"the ones at or below 1347 bytes sampled 1 in {pts.small.stride}"
    )


@requires_tshark
def test_the_tunnel_mtu_line_counts_every_packet_above_it_when_thinned(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The MTU line's "N packets above" counts packets, not the rows kept for the picture:
    thinned to 1 in 8, it still says what tshark counts over the line; split at another size
    than the line's, it says "about" and weighs each kept row by its stride."""
    import labkit.analyze.plotdata as plotdata
    from labkit.analyze import Collect, analyze

    monkeypatch.setattr(plotdata, "MAX_POINTS", 40)
    outside, pcap = tmp_path / "outside.pcap", tmp_path / "inside.pcap"
    wrpcap(str(outside), synth.outside_dtls_blocked())  # outside: not counted against the line
    wrpcap(str(pcap), synth.inside_icmp_ok() * 30)
    report = analyze([outside, pcap], collect=Collect(plot=True))
    points = {f.path: f.capture_point for f in report.files if f.analyzable}
    sample = dict(report.samples)[str(pcap)]
    assert sample.points.big.stride > 1  # the point of the check
    t = build(report.samples, report.findings, LogInputs(), points)
    floor = min(lv.value for lv in t.levels)
    line = next(lv for lv in t.levels if lv.value == floor)
    # ``!icmp``: an ICMP error's quoted header is an ``ip`` layer too, the error itself small
    expected = len(tshark_frames(pcap, f"ip.len > {floor} && !icmp"))
    assert expected > 40 and line.label.endswith(f"({expected} packets above)")
    rows = sample.points.rows()
    n, exact = sample.points.above(floor - 1)
    over, big = rows.s > floor - 1, rows.s > sample.points.floor
    assert not exact and n == (
        int(np.count_nonzero(over & big)) * sample.points.big.stride
        + int(np.count_nonzero(over & ~big)) * sample.points.small.stride
    )


@pytest.mark.parametrize(
    ("pillow", "why"),
    [
        ("None", "Pillow is not installed"),  # a None in sys.modules: the import fails
        ("types.SimpleNamespace(__version__='9.5.0')", "Pillow 9.5.0 is installed"),
    ],
    ids=["missing", "too-old"],
)
def test_plot_without_a_recent_pillow_is_one_line_and_a_hint(
    pillow: str, why: str, tmp_path: Path
) -> None:
    """Pillow is an extra, and before 10.1 it has no scalable font: --plot is refused before
    any work, in one line that says which."""
    import subprocess
    import sys

    out = tmp_path / "case.png"
    args = ["analyze", "--syslog", str(DATA / "asa-seed.log"), "--plot", str(out)]
    run = f"import sys, types; sys.modules['PIL'] = {pillow}; from labkit.cli import main; "
    run += f"sys.exit(main({args!r}))"
    proc = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and not out.exists()
    (line,) = proc.stderr.splitlines()
    assert f"--plot needs Pillow 10.1 or later: {why} (pip install 'labkit[plot]')" in line
