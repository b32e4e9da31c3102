"""The retransmission detector's per-chunk answers for the segments it follows, each flow's
rows gathered once, against the same questions asked row by row of every segment's flow (the
rows gathered again for each segment): ACK numbers that wrap past 2^32, go backwards, or
spread wider than the 2^31 serial window; many segments on one flow; rows without ACK."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.analyze import decode as dec
from labkit.analyze.detectors.retrans import (
    _first,
    _serial_ge,
    first_smaller_resend,
    receiver_answers,
)
from labkit.analyze.engine import FlowGroups

MOD = 1 << 32
FLOWS = np.array([(i * 0x9E3779B97F4A7C15 + 1) & ((1 << 64) - 1) for i in range(1, 6)], np.uint64)


def _chunk(rows: list[tuple[int, int, int, int, int]]):
    """Columns of a chunk: (flow, flags, seq, ack, payload length) per row."""
    flow, flags, seq, ack, plen = (np.array(v, np.int64) for v in zip(*rows))
    cols = SimpleNamespace(flags=flags, seq=seq % MOD, ack=ack % MOD, paylen=plen)
    fwd = FLOWS[flow]
    return FlowGroups.of(fwd), cols, np.arange(1, len(rows) + 1, dtype=np.int64)


row = st.tuples(
    st.integers(0, 4),
    st.sampled_from([dec.TCP_ACK, 0, dec.TCP_ACK | dec.TCP_RST]),
    st.integers(0, 12),
    st.one_of(st.integers(-8, 8), st.integers(0, MOD - 1)),
    st.sampled_from([0, 100, 500, 1378]),
)
segment = st.tuples(st.integers(0, 4), st.integers(0, 12), st.sampled_from([500, 1378]))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(row, min_size=1, max_size=60),
    st.lists(segment, min_size=1, max_size=12),
    st.integers(0, MOD - 1),
)
def test_answers_match_a_scan_of_each_segments_rows(rows, segments, base):
    # Sequence and ACK numbers near ``base`` (small offsets), or anywhere (a far jump).
    rows = [
        (f, fl, base + 1000 * s, base + 1000 * a if -8 <= a <= 8 else a, p)
        for f, fl, s, a, p in rows
    ]
    g, c, frames = _chunk(rows)
    fd = FLOWS[[f for f, _s, _n in segments]]
    seq = np.array([(base + 1000 * s) % MOD for _f, s, _n in segments], np.int64)
    length = np.array([n for _f, _s, n in segments], np.int64)
    end = (seq + length) % MOD
    m = len(segments)

    got = first_smaller_resend(g, c, frames, fd, seq, length)
    r, own = g.members(fd)
    p = c.paylen[r]
    want = _first(m, own, (c.seq[r] == seq[own]) & (p > 0) & (p < length[own]), frames[r])
    assert got.tolist() == want

    acked, reset = receiver_answers(g, c, frames, fd, end)
    covers = ((c.flags[r] & dec.TCP_ACK) != 0) & _serial_ge(c.ack[r], end[own])
    assert acked.tolist() == _first(m, own, covers, frames[r])
    assert reset.tolist() == _first(m, own, (c.flags[r] & dec.TCP_RST) != 0, frames[r])


def test_an_ack_more_than_half_the_sequence_space_away_is_judged_serially():
    """The receiver's first ACK lies 2^31 + 5 past the segment's end (serially behind it: it
    does not cover it), the second 10 past (it does): offsets from the first ACK cannot order
    these, so the segment is checked row by row."""
    end = 5000
    g, c, frames = _chunk(
        [(0, dec.TCP_ACK, 0, end + (1 << 31) + 5, 0), (0, dec.TCP_ACK, 0, end + 10, 0)]
    )
    assert receiver_answers(g, c, frames, FLOWS[[0]], np.array([end]))[0].tolist() == [2]
