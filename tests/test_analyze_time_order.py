"""A capture out of time order (``mergecap -a`` of two captures in the wrong order, a clock
stepped back) is analyzed in frame order and says so: how many frames step back in time, and
by how much, so a missing reconnect or DTLS answer is read with that in mind."""

from __future__ import annotations

import subprocess
from pathlib import Path

from labkit.analyze import analyze
from tests.helpers.paths import ROOT
from tests.helpers.tshark import requires_tshark, tshark_fields

pytestmark = requires_tshark

OUTSIDE = ROOT / "pcaps" / "scenarios" / "dtls-blocked-icmp-blocked" / "outside.pcapng"


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=60)


def test_frames_earlier_than_the_one_before_are_counted_and_named(tmp_path: Path) -> None:
    half = len(tshark_fields(OUTSIDE, "frame", "frame.number")) // 2
    first, second = tmp_path / "first.pcap", tmp_path / "second.pcap"
    _run("editcap", "-F", "pcap", "-r", str(OUTSIDE), str(first), f"1-{half}")
    _run("editcap", "-F", "pcap", "-r", str(OUTSIDE), str(second), f"{half + 1}-1000000")
    swapped = tmp_path / "swapped.pcap"
    _run("mergecap", "-F", "pcap", "-a", "-w", str(swapped), str(second), str(first))
    # tshark: frame.time_delta is the time since the previous frame, negative when it steps back.
    deltas = [float(r[0]) for r in tshark_fields(swapped, "frame", "frame.time_delta")]
    back = [d for d in deltas if d < -0.001]
    assert back
    report = analyze([swapped])
    warning = [w for w in report.files[0].warnings if w.startswith("out of time order")]
    assert len(warning) == 1
    assert f": {len(back)} frame(s) are earlier" in warning[0]
    assert f"by up to {max(-d for d in back):.3f} s" in warning[0]


def test_a_capture_in_order_says_nothing_of_order() -> None:
    assert tshark_fields(OUTSIDE, "frame.time_delta < 0", "frame.number") == []
    report = analyze([OUTSIDE])
    assert not [w for w in report.files[0].warnings if "time order" in w]
