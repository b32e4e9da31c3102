"""TLS records of one in-order stream direction, found in place in the segments that carry them
(sans-IO): where each record starts, its type and length, the segment of its last byte, and
its first and last bytes, without copying the stream.

A decrypting reader needs from most records only their edges (:mod:`labkit.wire.tlscrypt`
decrypts the first and last cipher blocks), so the walk copies those and leaves the bulk where
the capture has it. Each record's offset is the previous offset plus the previous record's
length: the walk is compiled (``_tlswalk.c``, built by ``pip install``) when a C compiler was
there at install time; :func:`py_records` gives the same answers where it was not
(:data:`COMPILED` says which one runs; the tests run both on the same bytes).

Contract: the stream is ``head`` (the start of a record an earlier call could not finish)
followed by ``buf[offs[i] : offs[i] + lens[i]]`` for each segment ``i``. From stream offset
``pos`` the walk fills, for each complete record, ``rec[k] = (start, content type, length,
segment of its last byte)``, ``heads[k]`` with its first :data:`EDGE` bytes after the header
and ``tails[k]`` with its last :data:`EDGE` bytes (right-aligned; zeros where the record is
shorter), and returns ``(n, next offset, status)``. It stops at the first record that does not
end in the stream (status 0), when ``rec`` is full (status 0), or at a header that is not
TLS's: a content type outside 20-24 or a major version not 3 (status 1), a length over
2**14 + 2048 (status 2, RFC 5246 6.2.3); then the next offset is that header's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

from labkit.wire.tlscrypt import PEEK_HEAD, PEEK_TAIL
from labkit.wire.tlsstream import MAX_RECORD, TLS_HEADER

#: Bytes kept of each record's start and end: what :func:`labkit.wire.tlscrypt.peek` reads
#: (up to the last two cipher blocks before a SHA-384 MAC). ``_tlswalk.c`` has the same number;
#: the tests compare the two walks row by row.
EDGE: Final = max(PEEK_HEAD, PEEK_TAIL)
FIELDS: Final = 4  # start, content type, length, segment of the last byte
#: Records walked per call: a chunk's worth at a time keeps the edge arrays small.
BATCH: Final = 1 << 16


def py_records(
    head: bytes,
    buf: np.ndarray,
    offs: np.ndarray,
    lens: np.ndarray,
    pos: int,
    rec: np.ndarray,
    heads: np.ndarray,
    tails: np.ndarray,
) -> tuple[int, int, int]:
    """The walk in Python: the reference the compiled walk is tested against."""
    stream = head + b"".join(bytes(buf[o : o + n]) for o, n in zip(offs.tolist(), lens.tolist()))
    ends = np.cumsum(np.concatenate(([len(head)], lens))) - 1  # last stream offset per segment
    rec, heads, tails = rec.reshape(-1, FIELDS), heads.reshape(-1, EDGE), tails.reshape(-1, EDGE)
    n = status = 0
    while n < len(rec) and pos + TLS_HEADER <= len(stream):
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
        edge = min(length, EDGE)
        heads[n] = 0
        tails[n] = 0
        heads[n, :edge] = np.frombuffer(stream, np.uint8, edge, pos + TLS_HEADER)
        tails[n, EDGE - edge :] = np.frombuffer(stream, np.uint8, edge, end - edge)
        segment = int(np.searchsorted(ends, end - 1)) - 1
        rec[n] = (pos, ctype, length, segment)
        n += 1
        pos = end
    return n, pos, status


Walk = Callable[
    [bytes, np.ndarray, np.ndarray, np.ndarray, int, np.ndarray, np.ndarray, np.ndarray],
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
    heads: np.ndarray  # (n, EDGE) uint8
    tails: np.ndarray  # (n, EDGE) uint8
    next: int  # stream offset after the last complete record
    bad: bool  # the walk stopped at a header that is not TLS's (at ``next``)


def walk_records(
    head: bytes,
    buf: np.ndarray,
    offs: np.ndarray,
    lens: np.ndarray,
    *,
    walk: Walk | None = None,
) -> Records:
    """Every complete record of ``head`` + the segments (see the module's contract)."""
    run = walk or records
    offs = np.ascontiguousarray(offs, np.int64)
    lens = np.ascontiguousarray(lens, np.int64)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    pos, status = 0, 0
    # A record per segment and a few more is the usual count: fresh pages cost more than the
    # walk, so the arrays start that small and grow only when a call fills them.
    batch = min(BATCH, len(lens) + 16)
    while True:
        rec = np.empty((batch, FIELDS), np.int64)
        heads = np.empty((batch, EDGE), np.uint8)
        tails = np.empty((batch, EDGE), np.uint8)
        n, pos, status = run(head, buf, offs, lens, pos, rec, heads, tails)
        parts.append((rec[:n], heads[:n], tails[:n]))
        if n < batch or status:
            break
        batch = min(BATCH, 2 * batch)
    rec, heads, tails = (
        parts[0] if len(parts) == 1 else tuple(np.concatenate(p) for p in zip(*parts))
    )
    return Records(rec[:, 0], rec[:, 1], rec[:, 2], rec[:, 3], heads, tails, pos, bool(status))


def stream_bytes(
    head: bytes, buf: np.ndarray, offs: np.ndarray, lens: np.ndarray, start: int, end: int
) -> bytes:
    """Bytes ``start:end`` of the stream ``head`` + segments (the contract's stream): a whole
    record to authenticate, or the unfinished tail to carry into the next call."""
    out = [head[start:end]] if start < len(head) else []
    ends = len(head) + np.cumsum(lens)  # stream offset after each segment
    first = int(np.searchsorted(ends, start, side="right"))
    for i in range(first, len(lens)):
        seg_start = int(ends[i] - lens[i])
        if seg_start >= end:
            break
        a, b = max(start, seg_start) - seg_start, min(end, int(ends[i])) - seg_start
        out.append(bytes(buf[int(offs[i]) + a : int(offs[i]) + b]))
    return b"".join(out)
