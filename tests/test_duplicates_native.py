"""The compiled duplicate-frame mask (``_dupmask.c``) against its numpy twin
(:func:`labkit.analyze.duplicates.py_marks`): the same copies, at the same distances, on every
capture of the suite and on crafted SPAN copies, chunk boundaries included. The rule itself
(what a copy is, as editcap removes it) is checked in ``tests/test_verdicts.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labkit.analyze import duplicates
from labkit.analyze.duplicates import WINDOW, Tail, marks, py_marks
from labkit.pcapio.reader import open_capture
from tests.helpers.copies import frames_with_copies
from tests.helpers.paths import PUBLIC, ROOT
from tests.regressions import build

needs_native = pytest.mark.skipif(
    duplicates._dupmask is None, reason="installed without a C compiler"
)

CAPTURES = sorted(
    [
        *ROOT.glob("pcaps/**/*.pcap"),
        *ROOT.glob("pcaps/**/*.pcapng"),
        *ROOT.glob("tests/regressions/*.pcap"),
        *PUBLIC.glob("*.pcap"),
        *PUBLIC.glob("*.pcapng"),
    ]
)


def both_ways(path: Path, chunk_bytes: int) -> tuple[int, int]:
    """Mark every chunk of ``path`` both ways, each from the same tail; (records, copies)."""
    tail, n, copies = Tail(), 0, 0
    with open_capture(path) as cap:
        for chunk in cap.chunks(chunk_bytes):
            dup, back = marks(chunk, tail)
            ref_dup, ref_back = py_marks(chunk, tail)
            assert dup.tolist() == ref_dup.tolist(), f"{path.name}: chunk from {chunk.frame0}"
            assert back.tolist() == ref_back.tolist(), f"{path.name}: chunk from {chunk.frame0}"
            tail = tail.after(chunk)
            n, copies = n + len(chunk), copies + int(dup.sum())
    return n, copies


def span_capture(tmp_path: Path) -> Path:
    """Random frames, some shorter than the 40 bytes the reference compares first, with
    copies, near-copies and storms of one frame copied many times (a SPAN port's)."""
    frames, times = frames_with_copies(11, 4000, [14, 20, 33, 39, 40, 41, 64, 600], storm=0.05)
    path = tmp_path / "span.pcap"
    path.write_bytes(build.pcap([(ts, 1, f) for ts, f in zip(times, frames)]))
    return path


@needs_native
def test_the_suite_has_captures_with_copies() -> None:
    """The premise of the comparison below: captures, and copies among them."""
    assert len(CAPTURES) >= 40, CAPTURES
    assert both_ways(ROOT / "tests/regressions/duplicate-frames.pcap", 1 << 20)[1] == 2


@needs_native
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_compiled_marks_equal_numpy_marks_on_every_capture(path: Path) -> None:
    assert both_ways(path, 1 << 20)[0] > 0


@needs_native
@pytest.mark.parametrize("chunk_bytes", [1 << 10, 1 << 12, 1 << 20])
def test_compiled_marks_equal_numpy_marks_on_span_copies(tmp_path: Path, chunk_bytes: int) -> None:
    """Small chunks put copies and their originals on either side of a boundary, and chunks
    of fewer records than the window."""
    n, copies = both_ways(span_capture(tmp_path), chunk_bytes)
    assert n > 4000 and copies > 1000


@needs_native
def test_compiled_marks_refuse_records_outside_the_buffer(tmp_path: Path) -> None:
    with open_capture(span_capture(tmp_path)) as cap:
        chunk = next(iter(cap.chunks()))
        n = len(chunk)
        data, caplen = chunk.data.astype(np.int64), chunk.caplen.astype(np.int64)

        def run(tail: tuple[bytes, ...]) -> int:
            dup, back = np.empty(n, bool), np.empty(n, np.int64)
            t = np.zeros(len(tail))
            return duplicates._dupmask.marks(
                chunk.buf, chunk.win, data, caplen, chunk.ts, tail, t, WINDOW, 0.01, dup, back
            )

        assert run(()) >= 0
        with pytest.raises(ValueError, match="inconsistent"):
            run(tuple(b"x" for _ in range(WINDOW + 1)))  # a tail longer than the window
        data[-1] = len(chunk.buf) - 1  # its bytes run past the buffer's end
        with pytest.raises(ValueError, match="outside the buffer"):
            run(())


def test_copies_past_frame_2_to_the_32_are_counted_not_kept() -> None:
    """Copies are kept as 32-bit frame numbers: the first copy past 2^32 - 1 ends the list
    (the file's warning names it), and the copies before it are all found."""
    f = duplicates.DuplicateFilter()
    top = 2**32 - 1
    frames = np.array([top - 2, top - 1, top, top + 1, top + 2], np.int64)
    dup = np.array([False, True, True, True, True])
    back = np.array([0, 1, 1, 1, 1], np.int64)
    f._keep(frames, dup, back)
    assert f.copies_of([top - 2]).tolist() == [top - 1, top]
    assert f.unlisted_from == top + 1
    assert f"from frame {top + 1} on" in f.warnings()[0]
