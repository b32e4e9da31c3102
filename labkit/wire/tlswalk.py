"""TLS records of one in-order stream direction, found in place in the segments that carry them
(sans-IO): where each record starts, its type and length, the segment of its last byte, and
the few 16-byte blocks of it a decryptor asks for, without copying the stream.

A decrypting reader needs from most records only a few blocks (:mod:`labkit.wire.tlscrypt`
decrypts the first and last cipher blocks), so the walk copies those and leaves the bulk where
the capture has it. Each record's offset is the previous offset plus the previous record's
length: the walk is compiled (``_tlswalk.c``, built by ``pip install``) when a C compiler was
there at install time; :func:`py_records` gives the same answers where it was not
(:data:`COMPILED` says which one runs; the tests run both on the same bytes).

Contract: the stream is ``head`` (the start of a record an earlier call could not finish)
followed by ``buf[offs[i] : offs[i] + lens[i]]`` for each segment ``i``; ``cuts`` are the
blocks wanted, each an offset in a record's fragment (after its 5-byte header), negative from
the fragment's end. From stream offset ``pos`` the walk fills, for each complete record, row
``n`` (from ``row`` on) of ``rec`` (``cap`` rows of (start, content type, length, segment of
its last byte)) and of each plane of ``blocks`` (plane ``j``: ``cap`` blocks of 16 bytes, the
fragment's bytes at ``cuts[j]``, zeros where they fall outside it), and returns ``(rows, next
offset, status)``. When it stops before ``rec`` is full, the planes are packed: plane ``j``'s
rows then start at block ``j * rows``, so the planes read as one ``(len(cuts), rows, 16)``
array. It stops at the first record that does not end in the stream (status 0), when ``rec``
is full (status 0), or at a header that is not TLS's: a content type outside 20-24 or a major
version not 3 (status 1), a length over 2**14 + 2048 (status 2, RFC 5246 6.2.3); then the next
offset is that header's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

from labkit.wire.tlsstream import MAX_RECORD, TLS_HEADER

BLOCK: Final = 16
FIELDS: Final = 4  # start, content type, length, segment of the last byte


def py_records(
    head: bytes,
    buf: np.ndarray,
    offs: np.ndarray,
    lens: np.ndarray,
    pos: int,
    rec: np.ndarray,
    blocks: np.ndarray,
    cuts: np.ndarray,
    row: int,
) -> tuple[int, int, int]:
    """The walk in Python: the reference the compiled walk is tested against."""
    stream = head + b"".join(bytes(buf[o : o + n]) for o, n in zip(offs.tolist(), lens.tolist()))
    ends = np.cumsum(np.concatenate(([len(head)], lens))) - 1  # last stream offset per segment
    rec = rec.reshape(-1, FIELDS)
    cap = len(rec)
    planes = blocks[: len(cuts) * cap * BLOCK].reshape(len(cuts), cap, BLOCK)
    n, status = row, 0
    while n < cap and pos + TLS_HEADER <= len(stream):
        ctype, major = stream[pos], stream[pos + 1]
        length = int.from_bytes(stream[pos + 3 : pos + 5], "big")
        if not 20 <= ctype <= 24 or major != 3:
            status = 1
            break
        if length > MAX_RECORD:
            status = 2
            break
        end = pos + TLS_HEADER + length
        if end > len(stream):
            break
        fragment = stream[pos + TLS_HEADER : end]
        for j, cut in enumerate(cuts.tolist()):
            at = length + cut if cut < 0 else cut
            planes[j, n] = 0
            lo, hi = max(at, 0), min(at + BLOCK, length)
            if lo < hi:
                planes[j, n, lo - at : hi - at] = np.frombuffer(fragment[lo:hi], np.uint8)
        segment = int(np.searchsorted(ends, end - 1)) - 1
        rec[n] = (pos, ctype, length, segment)
        n += 1
        pos = end
    if n < cap:
        packed = planes[:, :n].copy()
        blocks[: packed.size] = packed.reshape(-1)
    return n, pos, status


Walk = Callable[
    [bytes, np.ndarray, np.ndarray, np.ndarray, int, np.ndarray, np.ndarray, np.ndarray, int],
    tuple[int, int, int],
]
records: Walk
try:
    from labkit.wire import _tlswalk
except ImportError:  # installed without a C compiler: the same walk, slower
    COMPILED = False
    records = py_records
else:
    COMPILED = True
    records = _tlswalk.records


@dataclass(frozen=True, slots=True)
class Records:
    """The complete records of a stream, one row each, and where the walk stopped."""

    start: np.ndarray  # int64 stream offset of the header
    ctype: np.ndarray  # int64 content type
    length: np.ndarray  # int64 fragment length (the header's length field)
    segment: np.ndarray  # int64 segment holding the last byte (the frame to report)
    blocks: np.ndarray  # (len(cuts), n, 16) uint8: blocks[j, i] is record i's block at cuts[j]
    next: int  # stream offset after the last complete record
    bad: bool  # the walk stopped at a header that is not TLS's (at ``next``)


class RecordWalk:
    """Walks streams (the module's contract) into arrays it keeps from one walk to the next:
    a chunk's records would otherwise land in fresh pages, whose faults cost as much as the
    walk. The arrays of the :class:`Records` it returns are valid until its next walk."""

    def __init__(self, walk: Walk | None = None) -> None:
        self._walk = walk or records
        self._rec = np.empty((0, FIELDS), np.int64)
        self._blocks = np.empty(0, np.uint8)

    def __call__(self, stream: Stream, cuts: tuple[int, ...]) -> Records:
        """Every complete record of ``stream``, with its blocks at ``cuts``."""
        head, buf, offs, lens = stream.head, stream.buf, stream.offs, stream.lens
        cut = np.array(cuts, np.int64)
        k = len(cuts)
        # A record per segment and a few more is the usual count: the arrays grow only when a
        # walk fills them (more records than segments: small records).
        cap = len(lens) + 16
        n = pos = status = 0
        while True:
            rec, blocks = self._arrays(cap, k, n)
            n, pos, status = self._walk(head, buf, offs, lens, pos, rec, blocks, cut, n)
            if n < cap or status:
                break
            cap *= 2
        rec = rec[:n]
        planes = blocks[: k * n * BLOCK].reshape(k, n, BLOCK)
        return Records(rec[:, 0], rec[:, 1], rec[:, 2], rec[:, 3], planes, pos, bool(status))

    def _arrays(self, cap: int, k: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """``cap`` rows of records and ``k`` planes of ``cap`` blocks, the first ``rows`` of
        each (a walk that filled smaller arrays) kept."""
        old_rec, old = self._rec[:rows].copy(), self._blocks[: k * rows * BLOCK].copy()
        if len(self._rec) < cap:
            self._rec = np.empty((cap, FIELDS), np.int64)
        if len(self._blocks) < k * cap * BLOCK:
            self._blocks = np.empty(k * cap * BLOCK, np.uint8)
        rec, blocks = self._rec[:cap], self._blocks[: k * cap * BLOCK]
        if rows:
            rec[:rows] = old_rec
            blocks.reshape(k, cap, BLOCK)[:, :rows] = old.reshape(k, rows, BLOCK)
        return rec, blocks


@dataclass(frozen=True, slots=True)
class Stream:
    """The contract's stream, read in place: ``head`` then ``buf[offs[i] : offs[i] + lens[i]]``
    for each segment ``i`` (int64 arrays); ``ends``: the stream offset after each segment."""

    head: bytes
    buf: np.ndarray
    offs: np.ndarray
    lens: np.ndarray
    ends: np.ndarray

    @classmethod
    def of(cls, head: bytes, buf: np.ndarray, offs: np.ndarray, lens: np.ndarray) -> Stream:
        offs = np.ascontiguousarray(offs, np.int64)
        lens = np.ascontiguousarray(lens, np.int64)
        return cls(head, buf, offs, lens, len(head) + np.cumsum(lens))

    @property
    def length(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else len(self.head)

    def read(self, start: int, end: int) -> bytes:
        """Bytes ``start:end``: a whole record to authenticate, or the unfinished tail to
        carry into the next walk."""
        out = []
        if start < len(self.head):
            out.append(self.head[start:end])
            start = len(self.head)
        i = int(self.ends.searchsorted(start, "right"))
        while i < len(self.lens) and start < end:  # a record spans two or three segments
            seg_end = int(self.ends[i])
            at = int(self.offs[i]) + start - (seg_end - int(self.lens[i]))
            take = min(end, seg_end) - start
            out.append(self.buf[at : at + take].tobytes())
            start += take
            i += 1
        return b"".join(out)
