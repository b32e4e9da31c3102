"""Check a scenario's ``expect:`` block against the findings an analyzer reported.

``expect.report`` entries must each match at least one finding: the same ``id`` and, for
every field the entry states, an equal value (numbers compare as numbers). ``expect.not_report``
ids must not be reported at all. Findings are the JSON objects of ``labkit analyze --format
json`` (``Finding.to_json()``): ``id`` plus their own fields.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from labkit.scenario.schema import Expect, ExpectedFinding


def _equal(want: object, got: object) -> bool:
    numbers = (int, float)
    if (
        isinstance(want, numbers)
        and isinstance(got, numbers)
        and not isinstance(want, bool)
        and not isinstance(got, bool)
    ):
        return math.isclose(float(want), float(got), rel_tol=0, abs_tol=1e-6)
    return want == got


def matches(entry: ExpectedFinding, finding: Mapping[str, Any]) -> bool:
    if finding.get("id") != entry.id:
        return False
    return all(name in finding and _equal(value, finding[name]) for name, value in entry.fields)


def check(expect: Expect, findings: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per unmet expectation; empty when the findings agree with the block."""
    found = list(findings)
    problems = []
    for entry in expect.report:
        if not any(matches(entry, f) for f in found):
            same = [
                {k: f[k] for k, _ in entry.fields if k in f}
                for f in found
                if f.get("id") == entry.id
            ]
            seen = f"; reported with {same}" if same else "; not reported"
            problems.append(f"line {entry.line}: expected {entry.to_json()}{seen}")
    for fid in expect.not_report:
        hits = [f for f in found if f.get("id") == fid]
        if hits:
            problems.append(f"expected no {fid}, got {len(hits)}: {hits[0].get('summary', '')}")
    return problems
