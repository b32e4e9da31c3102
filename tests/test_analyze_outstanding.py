"""The carry of outstanding segments against a plain list that scans every row per question:
the indexes (by key, by receiver and end, by time) and the compaction must give up exactly the
rows the definition gives up, whatever the ACKs do (wrap past 2^32, go backwards, jump)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.analyze.detectors import outstanding
from labkit.analyze.detectors.outstanding import Outstanding
from labkit.analyze.engine import FlowBudget
from labkit.analyze.runs import SortedRuns

MOD = 1 << 32
# Receivers' flow hashes: distinct in their top 44 bits, as a chunk's flow groups key them.
RECEIVERS = [((i * 0x9E3779B97F4A7C15) & ((1 << 64) - 1)) | (i + 1) for i in range(1, 5)]


def _covers(ack: int, end: int) -> bool:
    return (ack - end) % MOD < (1 << 31)


class Plain:
    """Every question answered by a pass over every row."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def live(self) -> list[dict]:
        return [r for r in self.rows if r["live"]]

    def acknowledge(self, receiver: int, ack: int) -> list[tuple[int, int]]:
        out = []
        for r in self.live():
            if r["receiver"] >> 20 == receiver >> 20 and _covers(ack, r["end"]):
                r["live"] = False
                out.append((r["sender"], r["size"]))
        return out

    def age(self, bound: float) -> int:
        old = [r for r in self.live() if math.isnan(r["ts"]) or r["ts"] < bound]
        for r in old:
            r["live"] = False
        return len(old)

    def trim(self, ceiling: int) -> int:
        live = self.live()
        if len(live) <= ceiling:
            return 0
        drop = len(live) - (ceiling - ceiling // 10)
        for r in live[:drop]:
            r["live"] = False
        return drop


step = st.tuples(
    # ACKs: (receiver, offset from its sender's position, or a jump anywhere)
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(-4000, 4000), st.booleans(), st.integers()),
        max_size=4,
    ),
    # new segments: (receiver, length, NaN time)
    st.lists(st.tuples(st.integers(0, 3), st.integers(1, 1500), st.booleans()), max_size=12),
    st.booleans(),  # age
    st.booleans(),  # trim
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(step, min_size=1, max_size=30),
    st.lists(st.integers(0, MOD - 1), min_size=4, max_size=4),
)
def test_the_carry_gives_up_what_a_scan_of_every_row_does(steps, starts):
    saved = outstanding._MIN_COMPACT
    outstanding._MIN_COMPACT = 2  # compact often: renumbering is part of what is checked
    try:
        _run(steps, starts)
    finally:
        outstanding._MIN_COMPACT = saved


def _run(steps, starts) -> None:
    carry, plain = Outstanding(), Plain()
    budget = FlowBudget(max_flows=20)
    pos = list(starts)  # each sender's next sequence number
    frame, ts, key = 0, 1000.0, 1
    sightings: dict[int, set[int]] = {}  # receiver -> chunks it was present in
    for chunk, (acks, segs, age, trim) in enumerate(steps, start=1):
        present = np.array(sorted({RECEIVERS[i] >> 20 for i, *_ in acks}), np.uint64)
        rid = carry.receivers(present, chunk)
        last = {i: (off, jump, anywhere) for i, off, jump, anywhere in acks}  # one per flow
        ask, want_acked = [], []
        for i, (off, jump, anywhere) in sorted(last.items()):
            ack = (anywhere if jump else pos[i] + off) % MOD
            r = int(rid[np.searchsorted(present, RECEIVERS[i] >> 20)])
            if r >= 0:
                ask.append((r, ack))
            want_acked += plain.acknowledge(RECEIVERS[i], ack)
        got_acked: list[tuple[int, int]] = []
        if ask:
            s, z = carry.acknowledge(*(np.array(a, np.int64) for a in zip(*ask)))
            got_acked = list(zip(s.tolist(), z.tolist()))
        assert sorted(got_acked) == sorted(want_acked)
        ts += 100.0
        if age:
            assert carry.age(ts - 250.0) == plain.age(ts - 250.0)
        rows = []
        for i, length, nan in segs:
            frame += 1
            pos[i] = (pos[i] + length) % MOD
            rows.append(
                dict(
                    key=key,
                    sender=1000 + i,
                    receiver=RECEIVERS[i],
                    end=pos[i],
                    ts=math.nan if nan else ts,
                    size=length + 40,
                    frame=frame,
                    chunk=chunk,
                    live=True,
                )
            )
            key += 1
        if rows:
            col = {name: np.array([r[name] for r in rows]) for name in rows[0]}
            receiver = np.array([r["receiver"] for r in rows], np.uint64)
            carry.add(
                key=col["key"].astype(np.uint64),
                sender=col["sender"].astype(np.uint64),
                receiver=receiver,
                end=col["end"].astype(np.int64),
                frame=col["frame"],
                ts=col["ts"].astype(np.float64),
                size=col["size"],
                chunk=chunk,
                receiver_seen=np.isin(receiver >> np.uint64(20), present),
            )
            plain.rows += rows
        if trim:
            assert carry.trim(budget, "t") == plain.trim(budget.ceiling())
        live = plain.live()
        assert carry.live == len(live)
        keys = np.array([r["key"] for r in plain.rows], np.uint64)
        found = carry.find(keys)
        assert [r["live"] for r in plain.rows] == (found >= 0).tolist()
        hit = found[found >= 0]
        assert carry["frame"][hit].tolist() == [r["frame"] for r in live]
        assert carry.sender(hit).tolist() == [r["sender"] for r in live]
        # Seen: the receiver sent something from the row's chunk on.
        for i, *_ in acks:
            sightings.setdefault(RECEIVERS[i], set()).add(chunk)
        seen = [any(c >= r["chunk"] for c in sightings.get(r["receiver"], ())) for r in live]
        assert carry.seen(hit).tolist() == seen


def test_sorted_runs_answer_ranges_and_prefixes_like_a_sorted_list():
    rng = np.random.default_rng(7)
    runs, keys = SortedRuns(np.uint64), np.zeros(0, np.uint64)
    live = np.ones(5000, bool)
    for start in range(0, 5000, 250):  # twenty chunks: runs merge as they come
        k = rng.integers(0, 1 << 40, 250).astype(np.uint64)
        runs.add(k, np.arange(start, start + 250), live)
        keys = np.concatenate([keys, k])
    assert len(runs) == 5000
    lo = np.array([0, 1 << 38, 1 << 39], np.uint64)
    hi = lo + np.uint64(1 << 36)
    want = np.flatnonzero(((keys >= lo[:, None]) & (keys <= hi[:, None])).any(axis=0))
    assert np.sort(runs.between(lo, hi)).tolist() == want.tolist()
    times = SortedRuns(np.float64)
    t = rng.random(5000)
    for start in range(0, 5000, 250):
        times.add(t[start : start + 250], np.arange(start, start + 250), live)
    assert np.sort(times.pop_below(0.3)).tolist() == np.flatnonzero(t < 0.3).tolist()
    assert np.sort(times.pop_below(0.5)).tolist() == np.flatnonzero((t >= 0.3) & (t < 0.5)).tolist()
    assert len(times) == int(np.count_nonzero(t >= 0.5))
