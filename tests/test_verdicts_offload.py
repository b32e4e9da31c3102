"""Captures taken on a host with segmentation offload or receive coalescing, and ICMP whose
aftermath the capture does not show: sizes that were never on the wire are no evidence, and an
ICMP alone is path-MTU discovery's start, not a confirmed mismatch.

The TSO captures are ``tests/regressions/offload-*.pcap`` (``build.py``); tshark is the judge
of which segments carry more than the MSS the peers announced.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from labkit.analyze import analyze
from tests.helpers.findings import assert_filters_select_exactly_the_evidence, ids, one
from tests.helpers.tshark import requires_tshark, tshark_frames

pytestmark = requires_tshark

REGRESSIONS = Path(__file__).parent / "regressions"
AFTER_ICMP = REGRESSIONS / "offload-tso-after-icmp-1492.pcap"
BESIDE_IGNORED = REGRESSIONS / "offload-tso-beside-ignored-1492.pcap"
#: Segments above the MSS both peers announced (1460): the stack's, before the NIC cut them.
SUPER = "ip.flags.df == 1 && tcp.len > 1460"


def _offload_warning(path: Path) -> str:
    warnings = [w for w in analyze([path]).files[0].warnings if "segmentation offload" in w]
    assert len(warnings) == 1
    return warnings[0]


def test_super_segments_after_an_icmp_are_neither_oversized_nor_adapted() -> None:
    supers = tshark_frames(AFTER_ICMP, SUPER)
    assert len(supers) == 5
    r = analyze([AFTER_ICMP])
    assert not {"mtu-mismatch", "oversized-df", "pmtud-working", "pmtud-black-hole"} & set(ids(r))
    icmp = one(r, "icmp-frag-needed", mtu=1492)
    assert icmp.severity == "warning" and "segmentation offload" in icmp.summary
    assert _offload_warning(AFTER_ICMP).startswith(f"{len(supers)} DF TCP segment(s) carry more")
    assert_filters_select_exactly_the_evidence(r)


def test_a_sender_that_ignores_its_icmp_is_still_a_mismatch_beside_an_offloading_one() -> None:
    r = analyze([BESIDE_IGNORED])
    mm = one(r, "mtu-mismatch")
    assert (mm.fields["packet_size"], mm.fields["tunnel_mtu"]) == (1500, 1492)
    assert mm.fields["sender_kept_oversized"] is True
    over = one(r, "oversized-df")
    supers = set(tshark_frames(BESIDE_IGNORED, SUPER))
    assert supers and not supers & {e.frame for e in over.evidence}
    assert "!(tcp.len > 1460)" in over.wireshark_filter
    assert_filters_select_exactly_the_evidence(r)


def test_without_super_segments_the_filters_say_nothing_of_them() -> None:
    r = analyze([REGRESSIONS / "pmtud-ignored-1492.pcap"])
    assert "tcp.len" not in one(r, "oversized-df").wireshark_filter
    assert not [w for w in r.files[0].warnings if "offload" in w]


def test_an_icmp_the_capture_ends_at_is_not_a_confirmed_mismatch(tmp_path: Path) -> None:
    """The PMTUD capture cut right after the three ICMPs: the sender's answer is not in it."""
    cut = tmp_path / "ends-at-icmp.pcap"
    subprocess.run(
        ["editcap", "-r", str(REGRESSIONS / "pmtud-working-1492.pcap"), str(cut), "1-8"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert tshark_frames(cut, "icmp.type == 3 && icmp.code == 4") == [4, 6, 8]
    r = analyze([cut])
    assert "mtu-mismatch" not in ids(r) and "pmtud-working" not in ids(r)
    icmp = one(r, "icmp-frag-needed")
    assert "none of its data after the ICMP" in icmp.summary
    assert "ICMP frag-needed (MTU 1492)" in r.diagnosis.headline
