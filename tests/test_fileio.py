"""The one output writer: never loses a user's file, never leaves half a file behind."""

from __future__ import annotations

import os
import stat

import pytest

from labkit.errors import OutputError
from labkit.fileio import atomic_output


def test_refuses_existing_file_without_force_and_keeps_it(tmp_path):
    target = tmp_path / "out.pcap"
    target.write_bytes(b"precious")
    with pytest.raises(OutputError, match="already exists"):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"new")
    assert target.read_bytes() == b"precious"


def test_refuses_to_overwrite_an_input_even_with_force(tmp_path):
    target = tmp_path / "in.pcap"
    target.write_bytes(b"input")
    with pytest.raises(OutputError, match="input"):
        with atomic_output(target, force=True, inputs=[str(target)]) as tmp:
            tmp.write_bytes(b"x")
    assert target.read_bytes() == b"input"


def test_an_error_mid_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.pcap"
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_success_renames_into_place_with_ordinary_permissions(tmp_path):
    target = tmp_path / "out.pcap"
    old = os.umask(0o022)
    try:
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"data")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"data"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out.pcap"]


def test_missing_folder_is_refused_up_front(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        with atomic_output(tmp_path / "nope" / "out.pcap"):
            pass


def test_two_writers_of_one_target_only_the_first_to_finish_wins(tmp_path):
    target = tmp_path / "out.pcap"
    with pytest.raises(OutputError, match="appeared while labkit was writing it"):
        with atomic_output(target) as outer:
            outer.write_bytes(b"slow writer")
            with atomic_output(target) as inner:
                inner.write_bytes(b"fast writer")
    assert target.read_bytes() == b"fast writer"
    assert [p.name for p in tmp_path.iterdir()] == ["out.pcap"]


def test_a_live_writers_part_is_left_alone(tmp_path):
    """Our own pid is alive: its .part must survive another writer's clean-up."""
    from labkit.fileio import remove_stale_parts

    live = tmp_path / f".x.pcap.labkit-{os.getppid()}-0123abcd.part"
    live.write_bytes(b"in progress")
    assert remove_stale_parts(tmp_path) == []
    assert live.exists()


def test_a_name_over_255_bytes_is_one_error(tmp_path):
    with pytest.raises(OutputError, match="File name too long"):
        with atomic_output(tmp_path / ("x" * 300)):
            pass
