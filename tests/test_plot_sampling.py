"""The plot sampler's rule, checked against the rule itself written out over a whole capture
at once: of each kind (above the floor or not), every stride-th packet in capture order is
kept, whatever chunks the capture arrives in; the kept packets come out by time, at one time
the large ones first and each kind in capture order; and the packets above a line other than
the floor are estimated from the kept rows, each weighed by its kind's stride."""

from __future__ import annotations

import numpy as np
import pytest

import labkit.analyze.plotdata as plotdata

FLOOR = 1347


def _capture(rng: np.random.Generator, order: str, n: int, large: float) -> dict[str, np.ndarray]:
    """``n`` packets, a share ``large`` of them above the floor."""
    if order == "ties":  # millisecond stamps: many packets share one
        t = np.sort(rng.integers(0, n // 4, n)).astype(np.float64)
    elif order == "shuffled":  # merged captures: not in time order
        t = rng.uniform(0, n, n)
    else:
        t = np.arange(n) * 0.25
    return {
        "t": t,
        "s": np.where(
            rng.random(n) < large, rng.choice([1418, 1500], n), rng.choice([60, 1300], n)
        ),
        "src": rng.integers(1, 4, n).astype(np.uint64),
        "dst": rng.integers(1, 4, n).astype(np.uint64),
        "ip": rng.random(n) < 0.9,  # the others have no place on the axes
    }


def _expected(cap: dict[str, np.ndarray], big_stride: int, small_stride: int) -> np.ndarray:
    """The kept packets' positions in the capture, by the rule, in the order promised."""
    ip = np.flatnonzero(cap["ip"])
    big = ip[cap["s"][ip] > FLOOR]
    small = ip[cap["s"][ip] <= FLOOR]
    listed = np.concatenate([big[::big_stride], small[::small_stride]])
    return listed[np.argsort(cap["t"][listed], kind="stable")]


@pytest.mark.parametrize("order", ["sorted", "ties", "shuffled"])
@pytest.mark.parametrize("large", [0.2, 0.8])  # the fewer rows merged into the others either way
@pytest.mark.parametrize("seed", [1, 2])
def test_the_kept_packets_are_every_stride_th_of_each_kind_by_time(
    order: str, large: float, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plotdata, "MAX_POINTS", 700)
    rng = np.random.default_rng(seed)
    cap = _capture(rng, order, 20_000, large)
    pts = plotdata._Points(FLOOR)
    cuts = np.sort(rng.choice(np.arange(1, 20_000), 40, replace=False))
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, 20_000], strict=True):
        chunk = {k: v[lo:hi] for k, v in cap.items()}
        rows = None if chunk["ip"].all() else np.flatnonzero(chunk["ip"])
        pts.add(chunk["t"], chunk["s"], chunk["src"], chunk["dst"], chunk["src"][:1], rows)
    assert pts.big.stride > 1 and pts.small.stride > 1  # the point of the check
    rows = pts.rows()
    want = _expected(cap, pts.big.stride, pts.small.stride)
    for name in ("t", "s", "src", "dst"):
        assert np.array_equal(getattr(rows, name), cap[name][want]), name
    assert pts.big.kept <= 700 and pts.small.kept <= 700
    ip = cap["ip"]
    assert pts.total == np.count_nonzero(ip)
    assert pts.sent == dict(zip(*np.unique(cap["src"][ip], return_counts=True), strict=True))
    assert pts.above(FLOOR) == (np.count_nonzero(cap["s"][ip] > FLOOR), True)
    kept_over = cap["s"][want] > 1400
    big = cap["s"][want] > FLOOR
    estimate = (
        np.count_nonzero(kept_over & big) * pts.big.stride
        + np.count_nonzero(kept_over & ~big) * pts.small.stride
    )
    assert pts.above(1400) == (estimate, False)
    # a selection (the plot's directions) is the same rule over the rows it holds
    to_two = pts.rows(lambda r: r.dst == 2)
    mine = want[cap["dst"][want] == 2]
    assert np.array_equal(to_two.t, cap["t"][mine]) and np.array_equal(to_two.s, cap["s"][mine])
