"""The shipped scenarios' captures (outside, client tunnel, head-end inside) as one case each:
every finding's filter selects exactly its evidence in each file, and each file is placed at
the capture point it was built for. (The expect blocks are checked in test_scenario_expect.)"""

from __future__ import annotations

import pytest

from labkit.analyze import analyze
from tests.helpers.findings import assert_filters_select_exactly_the_evidence
from tests.helpers.paths import ROOT
from tests.helpers.tshark import requires_tshark

PCAPS = ROOT / "pcaps" / "scenarios"
NAMES = sorted(p.name for p in PCAPS.iterdir() if p.is_dir()) if PCAPS.is_dir() else []
POINTS = {
    "outside.pcapng": "outside",
    "client-tunnel.pcap": "tunnel",
    "headend-inside.pcap": "inside",
}


@requires_tshark
@pytest.mark.parametrize("name", NAMES)
def test_scenario_filters_and_capture_points(name):
    files = sorted((PCAPS / name).glob("*.pcap*"))
    assert files, name
    r = analyze(files)
    assert_filters_select_exactly_the_evidence(r)
    for f in r.files:
        want = POINTS.get(f.path.rsplit("/", 1)[-1])
        if want:
            assert f.capture_point == want, (f.path, f.capture_point_reason)
