"""Each shipped scenario's ``expect:`` block against ``labkit analyze`` on its captures.

The scenario states which findings (DESIGN.md section 5) its captures must and must not
produce; the analyzer is run as a user runs it, on the three committed captures (identical
to a fresh build, test_scenario_build.py), and :func:`labkit.scenario.expect.check` lists
every unmet expectation.
"""

from __future__ import annotations

import json

import pytest

from labkit.scenario import find, load
from labkit.scenario.build import FILES
from labkit.scenario.expect import check
from tests.helpers.cli import labkit
from tests.helpers.paths import ROOT

PCAPS = ROOT / "pcaps" / "scenarios"
NAMES = sorted(p.stem for p in (ROOT / "configs" / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("name", NAMES)
def test_analyzer_reports_what_the_scenario_expects(name: str) -> None:
    scenario = load(find(name))
    files = [str(PCAPS / name / f) for f in FILES.values()]
    proc = labkit("analyze", "--format", "json", *files)
    assert proc.returncode in (0, 1), proc.stderr
    findings = json.loads(proc.stdout)["findings"]
    assert check(scenario.expect, findings) == []
    # Exit 1 means a problem was found: every scenario but the healthy one shows one.
    assert proc.returncode == (0 if name == "healthy" else 1)
