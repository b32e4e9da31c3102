"""Duplicate frames: a SPAN port or a capture on two interfaces delivers one packet twice.

A frame is a duplicate when its captured bytes equal those of one of the 4 frames before it,
captured at most 10 ms earlier: what ``editcap -d`` (a window of 5 frames) and ``editcap -w
0.01`` (a window of 10 ms) both remove. A duplicate
would count twice everywhere (two ClientHellos where the client sent one, a segment "sent
twice"), so its columns are blanked before any detector sees them: it counts once, and the
report says how many there were (``files[].counts.duplicate_frames``).

Compiled (``_dupmask.c``): one pass comparing each record with the 4 before it, length and
time first, then bytes. :func:`py_marks` is the numpy reference and the fallback: the first
40 captured bytes (zero beyond the captured length) and the length single out candidates;
only candidates are compared byte for byte.

Wireshark has no field for "a copy", and a copy matches every display filter its original
matches (same bytes; the filters' only other terms are ``frame.number <=`` bounds). So each
finding's filter leaves out, by frame number, exactly the copies of its own evidence frames
(copies of copies included): a filter selects no other copy, since copies of frames it does not
select are not selected either. That needs, per copy, the frame its bytes first appeared in
(its *original*): the pass keeps both frame numbers for every copy (16 bytes each, at most
:data:`MAX_KEPT` per file), and the judge picks the copies of each finding's evidence. A run
of consecutive copies becomes one frame-number range, so a storm of copies of one frame is one
clause. Beyond :data:`MAX_KEPT` copies a file's later copies are not listed, and the file's
warning says from which frame on a filter may also select copies.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from labkit.analyze import decode as dec
from labkit.analyze.evidence import paren
from labkit.findings import Finding
from labkit.pcapio.reader import Chunk

try:
    from labkit.analyze import _dupmask
except ImportError:  # installed without a C compiler: py_marks does the same, slower
    _dupmask = None  # type: ignore[assignment]

WINDOW = 4  #: frames before a frame that it is compared with (editcap -d: window of 5)
#: ... and at most this long before it (editcap -w): a retransmission is resent after at least
#: 200 ms (RFC 6298's minimum RTO), so a TCP stack that resends identical bytes (no timestamp
#: option, a constant IP ID) is never taken for a copy.
MAX_GAP_S = 0.01
#: copies whose frame numbers (and their originals') are kept per file, as 32-bit numbers: 16 MB
#: at most, reached only by a file with millions of duplicates; the count goes on beyond it (and
#: beyond frame 2^32 - 1, which no 32-bit number holds)
MAX_KEPT = 2_000_000
_MAX_FRAME = np.iinfo(np.uint32).max
_PREFIX = 40
_LANES = np.arange(_PREFIX)


@dataclass(frozen=True, slots=True)
class Tail:
    """The last :data:`WINDOW` records of the chunks before: what a chunk's first records are
    compared with (copies, safe to keep while the buffer is reused)."""

    packets: tuple[bytes, ...] = ()  # captured bytes, oldest first
    ts: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def after(self, chunk: Chunk) -> Tail:
        """The tail once ``chunk`` has been marked."""
        n = len(chunk)
        lo = max(0, n - WINDOW)
        packets = self.packets + tuple(chunk.packet(i) for i in range(lo, n))
        return Tail(packets[-WINDOW:], np.concatenate([self.ts, chunk.ts[lo:]])[-WINDOW:])


def marks(chunk: Chunk, tail: Tail) -> tuple[np.ndarray, np.ndarray]:
    """For each record of ``chunk``: whether it duplicates one of the :data:`WINDOW` records
    before it (``tail`` holds the previous chunks' last ones), and the distance to the nearest
    it equals (0: none). Compiled when it was built, else :func:`py_marks`, its reference."""
    if _dupmask is None:
        return py_marks(chunk, tail)
    n = len(chunk)
    dup, back = np.empty(n, bool), np.empty(n, np.int64)
    _dupmask.marks(
        chunk.buf,
        chunk.win,
        np.ascontiguousarray(chunk.data, np.int64),
        np.ascontiguousarray(chunk.caplen, np.int64),
        np.ascontiguousarray(chunk.ts, np.float64),
        tail.packets,
        np.ascontiguousarray(tail.ts, np.float64),
        WINDOW,
        MAX_GAP_S,
        dup,
        back,
    )
    return dup, back


def py_marks(chunk: Chunk, tail: Tail) -> tuple[np.ndarray, np.ndarray]:
    """:func:`marks` with numpy: candidates by length, time and first 40 bytes over whole
    columns (the tail's records ahead of the chunk's), then their bytes compared."""
    n, t = len(chunk), len(tail.packets)
    pre = b"".join(p[:_PREFIX].ljust(_PREFIX, b"\0") for p in tail.packets)
    tail_words = np.frombuffer(pre, np.uint64).reshape(t, _PREFIX // 8)
    words = np.concatenate([tail_words, _prefix(chunk)])
    caplen = np.concatenate([np.array([len(p) for p in tail.packets], np.int64), chunk.caplen])
    ts = np.concatenate([tail.ts, chunk.ts])

    def packet(i: int) -> bytes:  # record i of the chunk; negative: one of the tail's
        return chunk.packet(i) if i >= 0 else tail.packets[t + i]

    dup = np.zeros(n, bool)
    back = np.zeros(n, np.int64)
    for k in range(1, WINDOW + 1):
        lo = max(t, k)
        if t + n <= lo:
            break
        cur, prev = slice(lo, t + n), slice(lo - k, t + n - k)  # views: no row copies
        cand = (caplen[cur] == caplen[prev]) & (np.abs(ts[cur] - ts[prev]) <= MAX_GAP_S)
        hit = np.flatnonzero(cand)
        hit = hit[(words[lo + hit] == words[lo - k + hit]).all(axis=1)]
        for i in (hit + lo - t).tolist():
            if not dup[i] and packet(i) == packet(i - k):
                dup[i], back[i] = True, k
    return dup, back


class DuplicateFilter:
    """Marks the duplicates of one file's chunks, in order (state carries across chunks)."""

    def __init__(self) -> None:
        self.count = 0
        self.unlisted_from: int | None = None  # the first copy not kept (MAX_KEPT reached)
        self._copies: list[np.ndarray] = []  # per chunk: the copies' frame numbers ...
        self._originals: list[np.ndarray] = []  # ... and each one's original's
        self._distinct = np.zeros(0, np.int64)  # the joined originals, sorted, each once
        self._kept = 0
        self._last_originals = np.zeros(0, np.int64)  # of the last WINDOW records
        self._tail = Tail()

    def mask(self, chunk: Chunk) -> np.ndarray:
        """True for each record of ``chunk`` that duplicates one of the 4 records before it."""
        dup, back = marks(chunk, self._tail)
        self._tail = self._tail.after(chunk)
        self.count += int(np.count_nonzero(dup))
        self._keep(chunk.frames, dup, back)
        return dup

    def _keep(self, frames: np.ndarray, dup: np.ndarray, back: np.ndarray) -> None:
        """Note each copy's frame number and its original's (the record it equals, or that
        record's original: ascending order resolves chains of copies)."""
        t = len(self._last_originals)
        originals = np.concatenate([self._last_originals, frames])
        rows = np.flatnonzero(dup)
        for i, k in zip((rows + t).tolist(), back[rows].tolist()):
            originals[i] = originals[i - k]
        self._last_originals = originals[-WINDOW:].copy()
        room = MAX_KEPT - self._kept
        if not len(rows) or self.unlisted_from is not None:
            return
        room = min(room, int(np.searchsorted(frames[rows], _MAX_FRAME, side="right")))
        if len(rows) > room:
            self.unlisted_from = int(frames[rows[room]])
            rows = rows[:room]
        self._copies.append(frames[rows].astype(np.uint32))
        self._originals.append(originals[rows + t].astype(np.uint32))
        self._kept += len(rows)

    def copies_of(self, frames: Collection[int]) -> np.ndarray:
        """The kept copies (ascending frame numbers) whose original is one of ``frames``."""
        joined = len(self._copies) == 1 and len(self._distinct) > 0
        if self._copies and not joined:  # joined once, then reused by every finding
            self._copies = [np.concatenate(self._copies)]
            self._originals = [np.concatenate(self._originals)]
            self._distinct = np.unique(self._originals[0]).astype(np.int64)
        if not self._copies:
            return np.zeros(0, np.int64)
        # Most findings cite no original of a copy: a binary search says so in a few
        # microseconds, where matching every kept original against them takes many more, and
        # a busy capture has thousands of findings.
        wanted = np.fromiter(frames, np.int64)
        at = np.searchsorted(self._distinct, wanted).clip(max=len(self._distinct) - 1)
        wanted = wanted[self._distinct[at] == wanted]
        if not len(wanted):
            return np.zeros(0, np.int64)
        mine = np.isin(self._originals[0], wanted)
        return self._copies[0][mine].astype(np.int64)

    def warnings(self) -> list[str]:
        """The file warning when copies went unlisted (their filters cannot leave them out)."""
        if self.unlisted_from is None:
            return []
        return [
            f"{self.count} duplicate frames: only the first {MAX_KEPT} are listed, so a "
            f"filter may also select copies of its evidence from frame {self.unlisted_from} on"
        ]


def _prefix(chunk: Chunk) -> np.ndarray:
    """Each record's first 40 captured bytes as five 64-bit words, zero beyond its captured
    length (the gathered window runs on into the next record): one copy of the window's
    columns, and a masked redo of only the short records."""
    words = np.ascontiguousarray(chunk.win[:, :_PREFIX]).view(np.uint64)
    short = np.flatnonzero(chunk.caplen < _PREFIX)
    if len(short):
        win = chunk.win[short, :_PREFIX]
        pre = np.where(_LANES < chunk.caplen[short, None], win, 0).astype(np.uint8)
        words[short] = np.ascontiguousarray(pre).view(np.uint64)
    return words


def without_duplicates(f: Finding, dedup: Mapping[str, DuplicateFilter]) -> Finding:
    """``f`` with each file's filter leaving out the copies of that file's evidence frames: a
    copy matches every filter its original matches, but it is not evidence (it was not
    counted)."""
    evidence: dict[str, list[int]] = {}
    for e in f.evidence:
        if e.file in dedup:
            evidence.setdefault(e.file, []).append(e.frame)
    copies = {k: dedup[k].copies_of(v) for k, v in evidence.items()}
    copies = {k: v for k, v in copies.items() if len(v)}
    if not copies:
        return f

    def cut(filt: str, file: str) -> str:
        if not filt or file not in copies:
            return filt
        return f"{paren(filt)} && !({_frames_clause(copies[file])})"

    per_file = {k: cut(v, k) for k, v in (f.wireshark_filters or {}).items()} or None
    return replace(
        f, wireshark_filter=cut(f.wireshark_filter, f.evidence[0].file), wireshark_filters=per_file
    )


def _frames_clause(frames: np.ndarray) -> str:
    """``frame.number == 7 || (frame.number >= 9 && frame.number <= 40)``: runs of
    consecutive frame numbers as ranges, so the clause grows with the runs, not the frames."""
    starts = np.flatnonzero(np.diff(frames, prepend=frames[0] - 2) != 1)
    ends = np.append(starts[1:], len(frames)) - 1
    return " || ".join(
        f"frame.number == {lo}" if lo == hi else f"(frame.number >= {lo} && frame.number <= {hi})"
        for lo, hi in zip(frames[starts].tolist(), frames[ends].tolist())
    )


def blank(cols: dec.Columns, rows: np.ndarray) -> None:
    """Make ``rows`` invisible to every detector: no IP, no transport, no flow."""
    if not rows.any():
        return
    for name in ("ipver", "iplen", "flags", "seq", "ack", "paylen", "pcap", "src4", "dst4"):
        getattr(cols, name)[rows] = 0
    for name in ("p0", "p1", "p2", "p5", "p13"):
        getattr(cols, name)[rows] = 0
    for name in ("proto", "sport", "dport"):
        getattr(cols, name)[rows] = -1
    cols.df[rows] = False
    cols.first[rows] = False
    cols.tcp_fwd[rows] = 0
    cols.tcp_rev[rows] = 0
    cols.why[rows] = dec.WHY_DUPLICATE << 32
