"""Every input that once crashed or hung labkit, replayed through the target that found it.

Files live in ``tests/fuzz_regressions/<target>/``; their README says what each broke and
where it was fixed. A file passes when labkit handles it the way the fuzz harness demands: no
exception but a documented user error, strict JSON, an ``--annotate`` copy that reads back
frame for frame, and an answer at all: :data:`HANG_S` only ends a run that would never finish
(a speed budget would fail on a loaded machine). The two quadratic cases (a DART host of 20 000
dots, a CSTP head fed a byte at a time) are checked by how their cost grows with size, in
``tests/test_robustness_resources.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.campaign import _Timer
from tests.fuzz.targets import TARGETS, check

HERE = Path(__file__).parent / "fuzz_regressions"
HANG_S = 60.0
CASES = sorted(p for p in HERE.glob("*/*") if p.is_file() and p.parent.name in TARGETS)


def test_every_regression_folder_is_a_target() -> None:
    folders = {p.name for p in HERE.iterdir() if p.is_dir()}
    assert folders <= set(TARGETS), folders - set(TARGETS)
    assert CASES


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_regression_input_is_handled(path: Path, tmp_path: Path) -> None:
    with _Timer(HANG_S):
        check(TARGETS[path.parent.name], path.read_bytes(), tmp_path, annotate=True)
