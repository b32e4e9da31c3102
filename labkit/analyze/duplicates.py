"""Duplicate frames: a SPAN port or a capture on two interfaces delivers one packet twice.

A frame is a duplicate when its captured bytes equal those of one of the 4 frames before it,
captured at most 10 ms earlier: what ``editcap -d`` (a window of 5 frames) and ``editcap -w
0.01`` (a window of 10 ms) both remove. A duplicate
would count twice everywhere (two ClientHellos where the client sent one, a segment "sent
twice"), so its columns are blanked before any detector sees them: it counts once, and the
report says how many there were (``files[].counts.duplicate_frames``).

Vectorized: the first 40 captured bytes (zero beyond the captured length) and the length
single out candidates; only candidates are compared byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from labkit.analyze import decode as dec
from labkit.analyze.evidence import paren
from labkit.analyze.reader import Chunk
from labkit.findings import Finding

WINDOW = 4  #: frames before a frame that it is compared with (editcap -d: window of 5)
#: ... and at most this long before it (editcap -w): a retransmission is resent after at least
#: 200 ms (RFC 6298's minimum RTO), so a TCP stack that resends identical bytes (no timestamp
#: option, a constant IP ID) is never taken for a copy.
MAX_GAP_S = 0.01
MAX_LISTED = 64  #: duplicate frame numbers kept per file, for the filters to leave them out
_PREFIX = 40
_LANES = np.arange(_PREFIX)


class DuplicateFilter:
    """Marks the duplicates of one file's chunks, in order (state carries across chunks)."""

    def __init__(self) -> None:
        self.count = 0
        self.frames: list[int] = []  # the first MAX_LISTED duplicates' frame numbers
        self._words = np.zeros((0, _PREFIX // 8), np.uint64)
        self._caplen = np.zeros(0, np.int64)
        self._ts = np.zeros(0, np.float64)
        self._bytes: list[bytes] = []

    def mask(self, chunk: Chunk) -> np.ndarray:
        """True for each record of ``chunk`` that duplicates one of the 4 records before it."""
        n = len(chunk)
        words = np.concatenate([self._words, _prefix(chunk)])
        caplen = np.concatenate([self._caplen, chunk.caplen])
        ts = np.concatenate([self._ts, chunk.ts])
        t = len(self._caplen)
        dup = np.zeros(n, bool)
        for k in range(1, WINDOW + 1):
            lo = max(t, k)
            if t + n <= lo:
                break
            cur, prev = slice(lo, t + n), slice(lo - k, t + n - k)  # views: no row copies
            cand = (caplen[cur] == caplen[prev]) & (np.abs(ts[cur] - ts[prev]) <= MAX_GAP_S)
            hit = np.flatnonzero(cand)
            hit = hit[(words[lo + hit] == words[lo - k + hit]).all(axis=1)]
            for i in (hit + lo).tolist():
                if not dup[i - t] and self._packet(chunk, i - t) == self._packet(chunk, i - k - t):
                    dup[i - t] = True
        keep = min(WINDOW, t + n)
        self._words, self._caplen = words[-keep:].copy(), caplen[-keep:].copy()
        self._ts = ts[-keep:].copy()
        self._bytes = (self._bytes + [chunk.packet(i) for i in range(max(0, n - keep), n)])[-keep:]
        self.count += int(np.count_nonzero(dup))
        if len(self.frames) < MAX_LISTED and dup.any():
            self.frames += chunk.frames[dup][: MAX_LISTED - len(self.frames)].tolist()
        return dup

    def _packet(self, chunk: Chunk, i: int) -> bytes:
        """Record ``i`` of the chunk; negative: one of the previous chunk's last records."""
        return chunk.packet(i) if i >= 0 else self._bytes[len(self._bytes) + i]


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


def without_duplicates(f: Finding, dups: Mapping[str, list[int]]) -> Finding:
    """``f`` with each file's filter leaving out that file's duplicate frames: a copy matches
    every filter its original matches, but it is not evidence (it was not counted)."""
    files = {e.file for e in f.evidence} & dups.keys()
    if not files or not f.evidence:
        return f

    def cut(filt: str, file: str) -> str:
        if not filt or file not in files:
            return filt
        copies = " || ".join(f"frame.number == {d}" for d in dups[file])
        return f"{paren(filt)} && !({copies})"

    fields = f.fields
    if f.fields.get("wireshark_filters"):
        per_file = {k: cut(v, k) for k, v in f.fields["wireshark_filters"].items()}
        fields = {**f.fields, "wireshark_filters": per_file}
    return replace(f, wireshark_filter=cut(f.wireshark_filter, f.evidence[0].file), fields=fields)


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
