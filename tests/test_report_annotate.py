"""``--annotate``: one annotated pcapng per capture, checked with tshark against the input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.cli import labkit
from tests.helpers.paths import ROOT
from tests.helpers.tshark import requires_tshark, tshark_fields

CASE = ROOT / "pcaps" / "scenarios" / "dtls-blocked-icmp-ok"
FILES = sorted(str(p) for p in CASE.iterdir())


@requires_tshark
@pytest.mark.parametrize("bare", [False, True])
def test_one_copy_per_capture_with_frames_times_and_comments_kept(tmp_path, bare):
    args = ["--annotate"] if bare else ["--annotate", str(tmp_path / "copies")]
    proc = labkit("analyze", *FILES, *args, "--format", "json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    folder = tmp_path / ("annotated" if bare else "copies")
    assert sorted(p.name for p in folder.iterdir()) == [
        "client-tunnel.annotated.pcapng",
        "headend-inside.annotated.pcapng",
        "outside.annotated.pcapng",
    ]
    for src in FILES:
        copy = folder / (Path(src).name.split(".")[0] + ".annotated.pcapng")
        assert f"wrote {copy.relative_to(tmp_path) if bare else copy}" in proc.stderr
        # Same frames, lengths and times, in the same order: the cited numbers open the frames.
        fields = ("frame.number", "frame.len", "frame.time_epoch")
        assert tshark_fields(copy, "frame", *fields) == tshark_fields(src, "frame", *fields)
        cited = sorted(
            {e["frame"] for f in doc["findings"] for e in f["evidence"] if e["file"] == src}
        )
        rows = tshark_fields(copy, 'frame.comment contains "labkit"', "frame.number")
        assert [int(r[0]) for r in rows] == cited and cited


@pytest.mark.parametrize(
    "name, files, message",
    [
        ("out.pcap", FILES[:1], "the name says pcap"),
        ("out.cap", FILES[:1], "the name says pcap"),
        ("out.pcapng", FILES, "would renumber their frames"),
    ],
)
def test_misleading_annotate_names_are_refused_before_any_work(tmp_path, name, files, message):
    proc = labkit("analyze", *files, "--annotate", str(tmp_path / name))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_existing_copy_is_not_overwritten_without_force(tmp_path):
    out = tmp_path / "copies"
    out.mkdir()
    (out / "outside.annotated.pcapng").write_bytes(b"precious")
    proc = labkit("analyze", *FILES, "--annotate", str(out))
    assert proc.returncode == 2 and "already exists" in proc.stderr
    assert (out / "outside.annotated.pcapng").read_bytes() == b"precious"
    assert sorted(p.name for p in out.iterdir()) == ["outside.annotated.pcapng"]


def test_a_pcap_input_named_as_the_copy_is_refused_as_an_input(tmp_path):
    src = tmp_path / "in.pcap"
    src.write_bytes((CASE / "client-tunnel.pcap").read_bytes())
    proc = labkit("analyze", str(src), "--annotate", str(src), "--force")
    assert proc.returncode == 2 and "refusing to overwrite an input" in proc.stderr
    assert src.read_bytes() == (CASE / "client-tunnel.pcap").read_bytes()
