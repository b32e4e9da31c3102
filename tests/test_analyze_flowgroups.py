"""FlowGroups.members, the rows of many flows in one gather, against rows_of, one flow at a
time, on the TCP rows of real captures: the same rows, in the same order, for flows present,
absent and asked for twice."""

from __future__ import annotations

import numpy as np
import pytest

from labkit.analyze import decode as dec
from labkit.analyze.engine import FlowGroups
from labkit.pcapio.reader import open_capture
from tests.helpers.paths import PUBLIC, ROOT

CAPTURES = [
    ROOT / "tests/regressions/duplicate-frames.pcap",
    PUBLIC / "tcp-mss-fast-retransmit.pcap",
    *sorted(ROOT.glob("pcaps/real/*/outside.pcap")),
]


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_members_are_rows_of_each_flow_in_turn(path) -> None:
    rng = np.random.default_rng(3)
    checked = 0
    with open_capture(path) as cap:
        for chunk in cap.chunks(1 << 14):
            cols = dec.columns(chunk)
            g = FlowGroups.of(cols.tcp_fwd)
            present = cols.tcp_fwd[cols.tcp_fwd != 0]
            absent = rng.integers(1, 2**63, 3, dtype=np.int64).astype(np.uint64)
            keys = np.concatenate([present[::3], absent, present[:2]])
            rng.shuffle(keys)
            rows, owner = g.members(keys)
            expect = [g.rows_of(int(k)) for k in keys]
            assert rows.tolist() == np.concatenate([np.zeros(0, np.int64), *expect]).tolist()
            assert owner.tolist() == [i for i, e in enumerate(expect) for _ in e]
            checked += len(rows)
    assert checked > 0
