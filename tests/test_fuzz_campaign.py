"""The bounded fuzz campaign CI runs: >= 2000 inputs, deterministic, no crash, no blow-up.

Seed 0, the same inputs on every run (tests/fuzz/campaign.py): every capture seed cut at
every record/block boundary, then random structure-aware mutations for every target, then
the scaling check (each seed grown 8x twice). The figures are printed (``pytest -s``) and
docs/robustness.md quotes them. Limits: no crash and no hang (an input still running after
the campaign's hang guard is a crash); the slowest input per byte within 10x the median (not
for targets whose input size is bounded -- Scapy dissects one 64 KiB datagram, craft reads up
to one frame --, where cost per byte says nothing); and, the direct test for a quadratic path,
the cost per byte of the large growth step within 3x that of the small one (a quadratic path
gives ~9x). No limit is in seconds: the campaign's own duration depends on the machine and its
load, and says nothing about labkit. Marked ``slow`` (a few minutes; CI runs it).
"""

from __future__ import annotations

import pytest

from tests.fuzz import campaign

pytestmark = pytest.mark.slow

RANDOM_INPUTS = 1600  # after the ~2700 boundary cuts
MAX_PER_BYTE_RATIO = 10.0
MAX_SCALING_RATIO = 3.0
#: Targets whose input size is bounded: one datagram or record (64 KiB), or a capture read up
#: to its second frame.
BOUNDED = {"layers", "craft-original"}


@pytest.fixture(scope="module")
def figures() -> campaign.Figures:
    figs = campaign.run(seed=0, count=RANDOM_INPUTS)
    print("\n" + figs.table())
    return figs


def test_campaign_tries_enough_inputs(figures: campaign.Figures) -> None:
    assert figures.inputs >= 2000
    # Every target ran (a missing seed folder would silently shrink the campaign).
    assert set(figures.targets) >= {
        "capture",
        "capture+annotate",
        "layers",
        "craft-original",
        "syslog",
        "dart",
        "asa-config",
        "keylog",
        "decrypt",
        "cstp-stream",
        "scenario",
    }


def test_no_input_crashes_or_hangs_labkit(figures: campaign.Figures) -> None:
    report = "\n\n".join(
        f"#{c.input.index} [{c.input.target}] {c.input.seed} {c.input.mutation}:\n{c.error}"
        for c in figures.crashes
    )
    assert not figures.crashes, (
        f"{len(figures.crashes)} crash(es); rebuild one with "
        f"'python -m tests.fuzz --seed 0 --index N --save DIR':\n{report}"
    )


def test_slowest_input_per_byte_within_10x_the_median(figures: campaign.Figures) -> None:
    for t in figures.targets.values():
        if t.name not in BOUNDED and t.ratio > MAX_PER_BYTE_RATIO:
            # Expensive content, not a blow-up, only if the input grown 8x costs no more per
            # byte than itself (a quadratic path: ~8x).
            assert t.slowest_growth is not None and t.slowest_growth <= MAX_SCALING_RATIO, (
                f"{t.name}: {t.slowest}\n{figures.table()}"
            )


def test_cost_per_byte_does_not_grow_with_size(figures: campaign.Figures) -> None:
    assert figures.scaling
    for s in figures.scaling:
        assert s.ratio <= MAX_SCALING_RATIO, f"{s.target} {s.seed}\n{figures.table()}"
