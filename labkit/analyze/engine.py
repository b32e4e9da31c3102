"""One pass over one capture: chunks -> columns -> (rare packets, vector updates) -> detectors.

Theory of operation. Every detector sees every chunk once, as a :class:`ChunkView`: the
numpy columns of all its packets plus the few packets worth decoding one by one (SYNs, TLS
hellos, DTLS handshake/CCS/alert records, ICMP errors), already decoded into frozen
:class:`~labkit.analyze.decode.Packet` summaries in frame order. A detector folds a chunk into
per-flow tables with numpy (group by a 64-bit flow hash, merge the few groups into dicts)
and handles the rare packets in Python. Nothing is kept per packet, so memory follows the
number of flows, never the number of packets, and the buffer is reused for the next chunk.

Flow hashes: addresses are already 64-bit hashes in the columns; a directed flow is
``mix(src, mix(dst, ports))``. Two different flows share a hash with probability ~n^2/2^64
(1e-8 for a million flows); evidence frames always come from decoded packets.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from labkit.analyze import decode as dec
from labkit.analyze.decode import Columns, Packet
from labkit.analyze.duplicates import DuplicateFilter, blank
from labkit.pcapio.reader import Capture, Chunk

try:
    from labkit.analyze import _tally
except ImportError:  # installed without a C compiler: py_tally does the same, slower
    _tally = None  # type: ignore[assignment]

_DTLS_VERSION_CODES = np.array(sorted(dec.DTLS_VERSIONS), np.int64)


def pair(src_h: np.ndarray, dst_h: np.ndarray) -> np.ndarray:
    """64-bit hash of a directed address pair."""
    return dec.mix64(src_h ^ dec.mix64(dst_h + np.uint64(0x2545F4914F6CDD1D)))


def tally(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct keys (sorted), the first row holding each, and how many rows hold it:
    what ``np.unique(keys, return_index=True, return_counts=True)`` gives, as detectors ask on
    every chunk. Compiled (``_tally.c``): one hashing pass, then only the distinct keys are
    sorted, where numpy must sort every row; :func:`py_tally` is the reference."""
    if _tally is None or not len(keys):
        return py_tally(keys)
    uk, first, count = _first_seen(keys)
    order = np.argsort(uk)
    return uk[order], first[order], count[order]


def _first_seen(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The compiled tally's answer as it comes: distinct keys in order of first appearance,
    each one's first row and count."""
    k = np.ascontiguousarray(keys, np.uint64)
    uk, first, count = (
        np.empty(len(k), np.uint64),
        np.empty(len(k), np.int64),
        np.empty(len(k), np.int64),
    )
    u = _tally.tally(k, uk, first, count)
    return uk[:u], first[:u], count[:u]


def py_tally(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`tally` with numpy alone: one unstable sort of every row, then the smallest row
    of each run (about 3x faster than ``np.unique`` with indexes and counts)."""
    if not len(keys):
        return keys[:0], np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(keys)
    s = keys[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    return s[starts], np.minimum.reduceat(order, starts), np.diff(np.r_[starts, len(s)])


def repeated(keys: np.ndarray) -> np.ndarray:
    """The keys that occur more than once, in no particular order: whether a chunk's segments
    repeat one another or the carried ones. Compiled like :func:`tally`, without its sort of
    the distinct keys (here nearly every key is distinct: sorting them was the cost);
    :func:`py_repeated` is the reference."""
    if _tally is None or not len(keys):
        return py_repeated(keys)
    uk, _first, count = _first_seen(keys)
    return uk[count > 1]


def py_repeated(keys: np.ndarray) -> np.ndarray:
    """:func:`repeated` with numpy alone: one sort of every key (sorted, each repeated key once)."""
    s = np.sort(np.asarray(keys, np.uint64))
    return np.unique(s[1:][s[1:] == s[:-1]])


def largest(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys (sorted) and the largest of each one's values: per host its latest
    sighting, per flow its largest acknowledged segment. Compiled like :func:`tally` (a
    chunk's sightings are a few keys over many rows); :func:`py_largest` is the reference.
    Values of any real dtype come back in it (integers up to 2^53 pass through doubles
    exactly: sizes and times)."""
    if _tally is None or not len(keys):
        return py_largest(keys, values)
    k = np.ascontiguousarray(keys, np.uint64)
    uk, best = np.empty(len(k), np.uint64), np.empty(len(k))
    u = _tally.largest(k, np.ascontiguousarray(values, np.float64), uk, best)
    distinct = uk[:u].astype(keys.dtype, copy=False)  # signed keys sort as numpy sorts them
    order = np.argsort(distinct)
    return distinct[order], best[order].astype(values.dtype, copy=False)


def py_largest(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`largest` with numpy alone: one sort of every row, then each run's maximum."""
    order = np.argsort(keys)
    s = keys[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    return s[starts], np.maximum.reduceat(values[order], starts)


def with_keys(sorted_keys: np.ndarray, new: list[int]) -> np.ndarray:
    """``sorted_keys`` with ``new`` (keys not in it yet) inserted in order: a table of keys
    grown once per chunk by one sorted insert, never re-sorted whole."""
    add = np.unique(np.array(new, np.uint64))
    return np.insert(sorted_keys, np.searchsorted(sorted_keys, add), add)


#: rows a question over a whole per-flow table works on at once (:func:`member`)
BLOCK = 1 << 18


#: low bits of a hash that :func:`member` looks up in a table first (256 KiB of bools: it stays
#: in cache), for key sets of at most an eighth of its size (at most one value in eight that
#: is no key passes it)
_FILTER_BITS = 18
_FILTER_MASK = np.uint64((1 << _FILTER_BITS) - 1)


def member(values: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """np.isin against a sorted key array: one binary search per value (isin sorts both sides
    every call), a block of values at a time, so that asking it of millions of flows holds a
    bool each rather than two int64 columns of temporaries.

    Hashes (uint64) are first looked up by their low bits in a table of the keys' low bits:
    one gather in cache rules out most values that are no key, where the binary search costs
    a cache miss per step (~70 ns a value among a few thousand keys, ~15 ns through the table).
    """
    out = np.zeros(len(values), bool)
    if not len(sorted_keys):
        return out
    last = len(sorted_keys) - 1
    table = _low_bits(values, sorted_keys)
    for lo in range(0, len(values), BLOCK):
        v = values[lo : lo + BLOCK]
        if table is None:
            out[lo : lo + BLOCK] = (
                sorted_keys[np.minimum(np.searchsorted(sorted_keys, v), last)] == v
            )
            continue
        cand = np.flatnonzero(table[(v & _FILTER_MASK).astype(np.intp)])
        w = v[cand]
        out[lo + cand] = sorted_keys[np.minimum(np.searchsorted(sorted_keys, w), last)] == w
    return out


def _low_bits(values: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray | None:
    """The table of the keys' low bits that :func:`member` and :func:`position` look hashes
    up in first, or None where it would not pay (few values, many keys, no hashes)."""
    if (
        values.dtype != np.uint64
        or sorted_keys.dtype != np.uint64
        or len(values) <= 64
        or len(sorted_keys) > 1 << (_FILTER_BITS - 3)
    ):
        return None
    table = np.zeros(1 << _FILTER_BITS, bool)
    table[(sorted_keys & _FILTER_MASK).astype(np.intp)] = True
    return table


def position(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Where each of ``keys`` is in ``sorted_keys``, or -1: one binary search per key, after
    :func:`member`'s look at the low bits of hashes (a carry of a million segments asks
    which of them a chunk's few thousand flows acknowledge)."""
    if not len(sorted_keys):
        return np.full(len(keys), -1, np.int64)
    table = _low_bits(keys, sorted_keys)
    if table is None:
        return _search(sorted_keys, keys)
    out = np.full(len(keys), -1, np.int64)
    cand = np.flatnonzero(table[(keys & _FILTER_MASK).astype(np.intp)])
    out[cand] = _search(sorted_keys, keys[cand])
    return out


def _search(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return np.where(sorted_keys[pos] == keys, pos, -1)


def last_of(keys: np.ndarray, sorted_keys: np.ndarray, times: np.ndarray) -> np.ndarray:
    """``times`` of each of ``keys`` in ``sorted_keys`` (its twin column); -inf where absent."""
    out = np.full(len(keys), -np.inf)
    if len(sorted_keys):
        pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
        hit = sorted_keys[pos] == keys
        out[hit] = times[pos[hit]]
    return out


def room(have: int, need: int) -> int:
    """The size a column of ``have`` rows grows to when it needs ``need``: at least a quarter
    more, so that a table growing by a few rows per chunk is copied a logarithmic number of
    times (each row ~5 times in all). A quarter, not a doubling: the per-flow tables are
    most of the memory of a capture with millions of flows, and doubling left up to half of
    every column unused, and needed three times a column's size while it was copied (a
    quarter: at most a fifth unused, 2.25 times while copied)."""
    return max(need, have + have // 4, 16)


def grown(a: np.ndarray, n: int) -> np.ndarray:
    """``a`` with room for ``n`` items (its own items kept, the new ones zero), grown by
    :func:`room`."""
    if n <= len(a):
        return a
    out = np.zeros(room(len(a), n), a.dtype)
    out[: len(a)] = a
    return out


def widened(col: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``col``, or a copy of it as int64 when it is unsigned and ``values`` (integers to be
    stored in it) fall outside its range: a narrow column's rare overflow costs one copy,
    never a wrong number."""
    if col.dtype.kind != "u" or col.itemsize == 8 or values.dtype.kind not in "iu":
        return col
    if not len(values):
        return col
    if int(values.min()) >= 0 and int(values.max()) <= np.iinfo(col.dtype).max:
        return col
    return col.astype(np.int64)


class Appended:
    """Columns that rows are appended to, chunk after chunk (kept evidence frames): grown by
    :func:`room`, so that appending costs what is appended, never a copy of all that came
    before."""

    def __init__(self, **dtypes: type | np.dtype) -> None:
        self.n = 0
        self._cols: dict[str, np.ndarray] = {name: np.zeros(0, dt) for name, dt in dtypes.items()}

    def __getitem__(self, name: str) -> np.ndarray:
        return self._cols[name][: self.n]

    def append(self, **values: np.ndarray) -> None:
        """One array per column, all of one length."""
        end = self.n + len(next(iter(values.values())))
        for name, v in values.items():
            col = self._cols[name] = grown(self._cols[name], end)
            col[self.n : end] = v
        self.n = end

    def widen(self, names: Iterable[str], values: np.ndarray) -> None:
        """Columns ``names`` as int64 when ``values`` (to be stored in them) would not fit
        (:func:`widened`): a table keeps 32-bit frame numbers until a capture passes them."""
        for name in names:
            self._cols[name] = widened(self._cols[name], values)

    def keep(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (ascending, distinct), in their order, in place: one column's
        copy at a time. A new set of columns held the table twice over at the moment a
        table at the flow ceiling is trimmed, and three times with the kept rows gathered
        first (50 M TLS sessions peaked at 1.4 GB against a ceiling meant for ~1 GB)."""
        for col in self._cols.values():
            col[: len(rows)] = col[: self.n][rows]
        self.n = len(rows)


def _slots_for(n: int, slots: np.ndarray) -> np.ndarray | None:
    """Slots at most three quarters full with ``n`` keys: None when ``slots`` already are,
    else a larger empty array (doubled: the table is rebuilt a logarithmic number of times)."""
    if 4 * n <= 3 * len(slots):
        return None
    cap = len(slots)
    while 3 * cap < 4 * n:
        cap *= 2
    return np.full(cap, -1, np.int32)


def _rows_at(rows: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``rows[pos]``, -1 where ``pos`` is (a sorted twin's answer for keys it lacks)."""
    return np.where(pos >= 0, rows[np.maximum(pos, 0)] if len(rows) else -1, -1)


class KeyIndex:
    """The row of each 64-bit key of a table whose rows are in the order the keys arrived
    (the i-th key ever added is row i).

    A hash table of row numbers (``_tally.c``): adding a chunk's new keys costs a probe each
    whatever the table's size, where a table sorted by key moved every later row on every
    chunk (with millions of flows, that copying was most of the pass). ``compiled=False`` (or
    an install without a C compiler) keeps a sorted copy of the keys instead: the same rows,
    with the old cost; the tests hold the two equal."""

    def __init__(self, compiled: bool = True) -> None:
        self.n = 0
        self._keys = np.zeros(16, np.uint64)  # by row; the rows beyond n are room
        self._compiled = compiled and _tally is not None
        self._slots = np.full(32, -1, np.int32)  # compiled: row numbers, at most 3/4 full
        self._sorted = np.zeros(0, np.uint64)  # otherwise: the keys sorted, and their rows
        self._sorted_rows = np.zeros(0, np.int64)

    @property
    def keys(self) -> np.ndarray:
        """The keys by row."""
        return self._keys[: self.n]

    def find(self, query: np.ndarray) -> np.ndarray:
        """Each key's row, -1 for a key without one."""
        q = np.ascontiguousarray(query, np.uint64)
        rows = np.empty(len(q), np.int64)
        if self._compiled:
            _tally.find(self._slots, self._keys, q, rows)
            return rows
        return _rows_at(self._sorted_rows, position(self._sorted, q))

    def insert(self, query: np.ndarray) -> np.ndarray:
        """Each key's row; a key without one gets the next, in the order ``query`` first
        holds them."""
        q = np.ascontiguousarray(query, np.uint64)
        need = self.n + len(q)
        self._keys = grown(self._keys, need)
        if self._compiled:
            bigger = _slots_for(need, self._slots)
            if bigger is not None:
                self._slots = bigger
                _tally.rehash(self._slots, self._keys, self.n)
            rows = np.empty(len(q), np.int64)
            self.n = _tally.insert(self._slots, self._keys, self.n, q, rows)
            return rows
        rows = self.find(q)
        if (rows < 0).any():
            uk, first = np.unique(q[rows < 0], return_index=True)
            fresh = uk[np.argsort(first)]  # in order of first appearance
            ids = np.arange(self.n, self.n + len(fresh))
            self._keys[self.n : self.n + len(fresh)] = fresh
            self.n += len(fresh)
            at = np.searchsorted(self._sorted, uk)
            self._sorted = np.insert(self._sorted, at, uk)
            self._sorted_rows = np.insert(self._sorted_rows, at, ids[np.argsort(np.argsort(first))])
            rows = self.find(q)
        return rows


class LatestIndex:
    """The latest row of each key in a key column the caller owns, where rows may share a
    key: of each endpoint, its latest TLS session. The slots hold row numbers only (the
    column is the table's own), so the index costs ~4-8 bytes per key. Compiled
    (``_tally.latest``); without it a sorted twin holds the keys and their latest rows."""

    def __init__(self, compiled: bool = True) -> None:
        self.n = 0  # keys with a row
        self._compiled = compiled and _tally is not None
        self._slots = np.full(32, -1, np.int32)
        self._sorted = np.zeros(0, np.uint64)
        self._sorted_rows = np.zeros(0, np.int64)

    def find(self, column: np.ndarray, query: np.ndarray) -> np.ndarray:
        """The latest row holding each key (-1: none)."""
        q = np.ascontiguousarray(query, np.uint64)
        if not self._compiled:
            return _rows_at(self._sorted_rows, position(self._sorted, q))
        rows = np.empty(len(q), np.int64)
        _tally.find(self._slots, column, q, rows)
        return rows

    def update(self, column: np.ndarray, rows: np.ndarray) -> None:
        """``rows`` (ascending, later than any before) become the latest of their keys."""
        r = np.ascontiguousarray(rows, np.int64)
        if self._compiled:
            bigger = _slots_for(self.n + len(r), self._slots)
            if bigger is not None:
                self.n = _tally.latest(bigger, column, 0, self.rows())
                self._slots = bigger
            self.n = _tally.latest(self._slots, column, self.n, r)
            return
        keys = column[r]
        uk, last = np.unique(keys[::-1], return_index=True)
        newest = r[::-1][last]
        pos = position(self._sorted, uk)
        old = pos >= 0
        self._sorted_rows[pos[old]] = newest[old]
        at = np.searchsorted(self._sorted, uk[~old])
        self._sorted = np.insert(self._sorted, at, uk[~old])
        self._sorted_rows = np.insert(self._sorted_rows, at, newest[~old])
        self.n = len(self._sorted)

    def rows(self) -> np.ndarray:
        """Every key's latest row, ascending."""
        if self._compiled:
            return np.sort(self._slots[self._slots >= 0]).astype(np.int64)
        return np.sort(self._sorted_rows)


class KeyTable:
    """Per-key counts across chunks: one row per 64-bit key, in the order the keys first
    appeared (a row's number is its key's id; a chunk's new keys take theirs in key order),
    with a count and attribute columns taken from the key's first row. The shape of every
    "per flow / per pair x size" table: memory follows the keys, never the packets, and a new
    key costs the same in a table of ten rows or ten million (:class:`KeyIndex`; the columns
    grow by :func:`room`).

    The counts, and any unsigned integer column, hold 32 bits until a value passes their
    range, when that column is widened to int64 once: a count or frame number past 2^32 - 1
    needs a capture of billions of packets, and the 4 bytes a row it would cost in every
    table of millions of flows are what keeps the tables within their budget."""

    def __init__(self, **dtypes: type | np.dtype) -> None:
        self.index = KeyIndex()
        self._count = np.zeros(0, np.uint32)
        self._cols: dict[str, np.ndarray] = {name: np.zeros(0, dt) for name, dt in dtypes.items()}

    @property
    def keys(self) -> np.ndarray:
        """The keys by id."""
        return self.index.keys

    @property
    def count(self) -> np.ndarray:
        return self._count[: self.index.n]

    @property
    def ids(self) -> np.ndarray:
        """Each row's id: its number."""
        return np.arange(self.index.n)

    def __getitem__(self, name: str) -> np.ndarray:
        return self._cols[name][: self.index.n]

    def add(self, keys: np.ndarray, **values: np.ndarray) -> int:
        """Count each row under its key; a new key takes its attributes from its first row
        (``values``: one array per column, aligned with ``keys``). Returns how many keys are new.
        Every column keeps the dtype it was declared with (narrow columns stay narrow), but
        an unsigned one widens when a value would not fit it (:func:`widened`)."""
        uk, first, counts = tally(keys)
        before = self.index.n
        rows = self.index.insert(uk)  # sorted: new keys numbered in key order
        n = self.index.n
        self._count = grown(self._count, n)
        totals = self._count[rows].astype(np.int64) + counts
        self._count = widened(self._count, totals)
        self._count[rows] = totals
        new = rows >= before
        if n > before:
            f = first[new]
            for name, col in self._cols.items():
                v = values[name][f]
                col = self._cols[name] = widened(grown(col, n), v)
                col[rows[new]] = v.astype(col.dtype)
        return n - before

    def keep(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (ascending, distinct): they become ids 0.. in their order, the
        columns moved to the front in place (:meth:`Appended.keep`) and the index rebuilt,
        the old one let go first (both at once were the peak of a trim at the ceiling)."""
        keys, compiled = self.keys[rows], self.index._compiled
        self.index = KeyIndex(compiled)
        self.index.insert(keys)
        for col in (self._count, *self._cols.values()):
            col[: len(rows)] = col[rows]

    def ids_of(self, keys: np.ndarray) -> np.ndarray:
        """The id of each key (every one of them already added)."""
        return self.index.find(keys)


#: rows each per-flow table of one file keeps at once: the largest row is ~100 bytes, so one
#: full table is ~600 MB and a file's scan stays within about 1 GB of RSS
MAX_FLOWS = 6_000_000
ROW_BYTES = 100  #: the per-flow row :data:`MAX_FLOWS` is counted in


@dataclass(slots=True)
class FlowBudget:
    """The ceiling every per-flow table of one file answers to, and what it gave up.

    One object per file, shared by its detectors, so that one setting (``max_flows``, from
    :class:`~labkit.analyze.report.AnalyzeOptions`) bounds them all and one warning can say how
    many flows were judged early. A table that grows past the ceiling keeps the rows seen
    most recently and drops the rest: a tenth of the ceiling at once, so that the copy is not
    made per chunk."""

    max_flows: int = MAX_FLOWS
    evicted: dict[str, int] = field(default_factory=dict)  # table name -> rows dropped

    def ceiling(self, row_bytes: int = ROW_BYTES) -> int:
        """Rows a table may hold when each costs ``row_bytes``: :attr:`max_flows` column rows
        of :data:`ROW_BYTES` each, so that a table of Python objects holds as many bytes."""
        return max(1, self.max_flows * ROW_BYTES // max(row_bytes, ROW_BYTES))

    def trim(
        self, table: str, recency: np.ndarray, row_bytes: int = ROW_BYTES
    ) -> np.ndarray | None:
        """The rows to keep (ascending) of a table whose rows were last seen at ``recency``,
        or None while it is within the ceiling (:meth:`ceiling` for ``row_bytes``); the rows
        dropped are counted under ``table``. Those kept are the ones seen after the
        threshold that a partition of the values finds, and of those seen at it, the later
        rows: a mask read in row order, where sorting the kept row numbers cost more than
        the rest of a trim of millions of rows."""
        n, ceiling = len(recency), self.ceiling(row_bytes)
        if n <= ceiling:
            return None
        keep_n = ceiling - ceiling // 10
        threshold = np.partition(recency, n - keep_n)[n - keep_n]
        mask = recency > threshold
        at = np.flatnonzero(recency == threshold)
        mask[at[len(at) - (keep_n - int(np.count_nonzero(mask))) :]] = True
        self.dropped(table, n - keep_n)
        return np.flatnonzero(mask)

    def dropped(self, table: str, n: int) -> None:
        """Count ``n`` rows a table dropped at a ceiling of its own (one smaller than
        :attr:`max_flows`, for rows that cost far more than a column's 100 bytes)."""
        if n:
            self.evicted[table] = self.evicted.get(table, 0) + n

    @property
    def judged_early(self) -> int:
        """Flows dropped at the ceiling, over every table."""
        return sum(self.evicted.values())


_ROW_BITS = 20  # rows of a chunk fit in 20 bits (a 16 MiB chunk holds < 2^20 records)
_ROW_MASK = np.uint64((1 << _ROW_BITS) - 1)


@dataclass(frozen=True, slots=True)
class FlowGroups:
    """The chunk's TCP rows grouped by directed flow: one sort, shared by the detectors.

    Each row's flow hash, cut to its top 44 bits, and its row number share one 64-bit word,
    so a plain (fast, unstable) sort orders rows by flow and, within a flow, by time.
    Two flows of one chunk sharing the top 44 bits happens with probability ~n^2/2^45.
    """

    keys: np.ndarray  # sorted unique flow hashes, top 44 bits
    first: np.ndarray  # row of each flow's first packet in the chunk
    last: np.ndarray  # row of each flow's last packet in the chunk
    rows: np.ndarray  # TCP rows sorted by (flow, row)
    starts: np.ndarray  # where each flow's rows begin in :attr:`rows`

    @classmethod
    def of(cls, fwd: np.ndarray) -> FlowGroups:
        rows = np.flatnonzero(fwd)
        if not len(rows):  # a chunk without TCP
            z, zu = np.zeros(0, np.int64), np.zeros(0, np.uint64)
            return cls(zu, z, z, z, z)
        if len(rows) >= 1 << _ROW_BITS:
            raise ValueError("chunk too large for FlowGroups")
        packed = np.sort(
            ((fwd[rows] >> np.uint64(_ROW_BITS)) << np.uint64(_ROW_BITS)) | rows.astype(np.uint64)
        )
        srows = (packed & _ROW_MASK).astype(np.int64)
        gk = packed >> np.uint64(_ROW_BITS)
        starts = np.flatnonzero(np.r_[True, gk[1:] != gk[:-1]])
        ends = np.r_[starts[1:], len(gk)].astype(np.int64)
        return cls(gk[starts], srows[starts], srows[ends - 1], srows, starts)

    def last_where(self, mask: np.ndarray) -> np.ndarray:
        """Per flow, the row of its last packet for which ``mask`` (one bool per row of the
        chunk) holds, or -1: e.g. the last packet that carries an acknowledgment."""
        if not len(self.rows):
            return np.zeros(0, np.int64)
        idx = np.where(mask[self.rows], np.arange(len(self.rows)), -1)
        best = np.maximum.reduceat(idx, self.starts)
        return np.where(best >= self.starts, self.rows[np.maximum(best, 0)], -1)

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Index of each (full 64-bit) flow hash in :attr:`keys`, or -1."""
        return position(self.keys, np.asarray(keys, np.uint64) >> np.uint64(_ROW_BITS))

    def members(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows of each flow hash's flow (in order), one flow after the other in the order
        of ``keys``, and the index in ``keys`` each row belongs to (ascending): one search and
        one gather for many flows, none of them a Python step."""
        j = self.find(keys)
        if not len(self.starts):
            z = np.zeros(0, np.int64)
            return z, z
        ends = np.r_[self.starts[1:], len(self.rows)]
        at = np.maximum(j, 0)
        lo = np.where(j >= 0, self.starts[at], 0)
        n = np.where(j >= 0, ends[at] - lo, 0)
        owner = np.repeat(np.arange(len(keys)), n)
        into = np.arange(len(owner)) + np.repeat(lo - (np.cumsum(n) - n), n)
        return self.rows[into], owner

    def rows_of(self, key: int) -> np.ndarray:
        """Rows of flow ``key`` in this chunk, in order."""
        j = int(self.find(np.array([key], np.uint64))[0])
        if j < 0:
            return self.rows[:0]
        hi = int(self.starts[j + 1]) if j + 1 < len(self.starts) else len(self.rows)
        return self.rows[int(self.starts[j]) : hi]

    def last_before(self, key: int, frame: int, frames: np.ndarray) -> int | None:
        """Row of flow ``key``'s last packet with a frame number below ``frame``."""
        rows = self.rows_of(key)
        i = int(np.searchsorted(frames[rows], frame)) - 1
        return int(rows[i]) if i >= 0 else None


@dataclass(slots=True)
class ChunkView:
    """One chunk as detectors see it. Valid only during :meth:`Detector.feed`."""

    file: str
    cols: Columns
    frames: np.ndarray  # Wireshark frame numbers
    rare: list[Packet]  # decoded packets, frame order
    rare_rows: np.ndarray  # their row numbers in the columns
    syn_rows: np.ndarray  # rows of TCP SYNs and SYN-ACKs
    syn_mss: np.ndarray  # their MSS when it is the first option (-1: see the rare packets)
    hello_rows: np.ndarray  # rows whose TCP payload starts with a TLS ClientHello/ServerHello
    _groups: FlowGroups | None = None
    _sightings: np.ndarray | None = None

    @property
    def chunk(self) -> Chunk:
        return self.cols.chunk

    @property
    def ts(self) -> np.ndarray:
        return self.cols.chunk.ts

    def tcp_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """Directed flow hash of every row, and of its reverse (0 where not TCP)."""
        return self.cols.tcp_fwd, self.cols.tcp_rev

    def tcp_groups(self) -> FlowGroups:
        if self._groups is None:
            self._groups = FlowGroups.of(self.tcp_keys()[0])
        return self._groups

    def sightings(self) -> np.ndarray:
        """Rows that stand for the chunk when only "which hosts were seen, and until when"
        matters: each directed TCP flow's last packet, and every other IP packet. A fraction
        of a bulk transfer's rows, each a true sighting of its addresses at its time."""
        if self._sightings is None:
            c = self.cols
            other = np.flatnonzero((c.ipver > 0) & (c.tcp_fwd == 0))
            rows = np.concatenate([self.tcp_groups().last, other])
            self._sightings = rows[~np.isnan(self.ts[rows])]
        return self._sightings


class Detector(Protocol):
    """Folds chunks into per-flow state. One instance per file."""

    def feed(self, view: ChunkView) -> None: ...


@dataclass(slots=True)
class ScanStats:
    packets: int = 0
    ip_packets: int = 0
    rare_packets: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    #: Steps back in time of more than :data:`BACKWARD_S` between consecutive frames, and the
    #: largest: a capture out of time order (two files concatenated, a clock stepped back).
    backward_steps: int = 0
    backward_max_s: float = 0.0
    prev_ts: float = float("nan")
    linktype_frames: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)


#: A frame this much earlier than the one before it is out of order; smaller steps back are
#: the jitter of multi-queue capture and change no verdict.
BACKWARD_S = 0.001


def _time_order(st: ScanStats, ts: np.ndarray) -> None:
    """Count the steps back in time in ``ts`` (after ``st.prev_ts``), NaN times skipped."""
    known = ts[~np.isnan(ts)]
    back = -np.diff(np.r_[st.prev_ts, known])  # NaN first: a first chunk compares nothing
    steps = back > BACKWARD_S
    if steps.any():
        st.backward_steps += int(np.count_nonzero(steps))
        st.backward_max_s = max(st.backward_max_s, float(back[steps].max()))
    st.prev_ts = float(known[-1])


def syn_mss(c: Columns) -> tuple[np.ndarray, np.ndarray]:
    """Rows of SYNs and, vectorized, their MSS when it is the first TCP option.

    Linux, Windows and macOS all put the MSS option first; other layouts (and SYNs whose
    options were not captured) go through the scalar decoder (-1 here).
    """
    tcp = (c.proto == dec.PROTO_TCP) & (c.sport >= 0)
    rows = np.flatnonzero(tcp & ((c.flags & dec.TCP_SYN) != 0))
    l4 = c.l4[rows]
    end = c.chunk.data[rows] + c.chunk.caplen[rows]
    a = c.chunk.buf
    ok = (
        (c.pay[rows] - l4 >= 24)
        & (l4 + 24 <= end)
        & (a.take(l4 + 20, mode="clip") == 2)
        & (a.take(l4 + 21, mode="clip") == 4)
    )
    mss = (a.take(l4 + 22, mode="clip").astype(np.int64) << 8) | a.take(l4 + 23, mode="clip")
    return rows, np.where(ok, mss, -1)


def hello_rows(c: Columns) -> np.ndarray:
    """Rows whose TCP payload starts with a TLS handshake record holding a Client/ServerHello
    (16 03 xx .. .. 01|02): the sessions detector reads them from the columns."""
    tcp = (c.proto == dec.PROTO_TCP) & (c.sport >= 0)
    return np.flatnonzero(
        tcp
        & (c.pcap >= 6)
        & (c.p0 == dec.CT_HANDSHAKE)
        & (c.p1 == 3)
        & ((c.p5 == dec.HS_CLIENT_HELLO) | (c.p5 == dec.HS_SERVER_HELLO))
    )


def rare_rows(c: Columns, syn_rows: np.ndarray, syn_mss: np.ndarray) -> np.ndarray:
    """Rows worth a scalar decode: DTLS non-data records, ICMP errors, SYNs whose MSS is not
    the first option."""
    udp = (c.proto == dec.PROTO_UDP) & (c.sport >= 0)
    cand = np.flatnonzero(udp & (c.pcap >= 13) & (c.p0 >= dec.CT_CCS) & (c.p0 <= dec.CT_HANDSHAKE))
    dtls = np.zeros(len(c), bool)
    dtls[cand[np.isin((c.p1[cand] << 8) | c.p2[cand], _DTLS_VERSION_CODES)]] = True
    icmp = ((c.proto == dec.PROTO_ICMP) | (c.proto == dec.PROTO_ICMPV6)) & c.first
    if icmp.any():
        itype = np.where(icmp, c.chunk.buf.take(np.where(icmp, c.l4, 0), mode="clip"), 255)
        icmp &= np.where(
            c.proto == dec.PROTO_ICMP,
            (itype == 3) | (itype == 11) | (itype == 12),
            (itype >= 1) & (itype <= 4),
        )
    sel = dtls | icmp
    odd = syn_rows[(syn_mss < 0) & (c.pay[syn_rows] - c.l4[syn_rows] > 20)]
    sel[odd] = True
    return np.flatnonzero(sel)


def scan(
    capture: Capture,
    detectors: Sequence[Detector],
    label: str,
    stats: ScanStats | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
    dedup: DuplicateFilter | None = None,
) -> ScanStats:
    """Feed every chunk of ``capture`` to ``detectors``; return counts and timings.

    ``on_chunk(file bytes consumed, packets so far)`` runs after each chunk (progress). Stage
    times are this thread's CPU seconds (the read-ahead thread's copying is not in them);
    ``seconds`` is wall. ``dedup`` blanks duplicate frames before any detector sees them.

    Python's cyclic garbage collector is paused for the scan: the detectors' long-lived
    per-flow objects form no cycles, and its full passes over them made the cost of each new
    DTLS pair grow with the number of pairs (80 k pairs: 28 us each instead of 15)."""
    _large_blocks_from_mmap()
    paused = gc.isenabled()
    gc.disable()
    try:
        return _scan(capture, detectors, label, stats, on_chunk, dedup)
    finally:
        if paused:
            gc.enable()


_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
_MMAP_FROM = 8 << 20
_TRIM_FROM = 32 << 20


@functools.cache  # once per process: a scan of a small file must not pay for it again
def _large_blocks_from_mmap() -> None:
    """Serve blocks of 8 MiB or more with mmap, returned to the system when freed.

    Per-flow columns grow by one reallocation per chunk (a sorted insert). glibc raises its
    mmap threshold to 32 MiB after the first large free, so columns of 8-32 MiB then come
    from the heap, whose freed blocks are too small for the next, larger copy and stay
    resident: 5 M TLS sessions peaked at 810 MB instead of 661. Below 8 MiB (a chunk's own
    columns) the heap stays: mmap for those cost ~15 % of the bulk mix's time in page faults.
    Setting the mmap threshold also freezes glibc's trim threshold at 128 KiB: every chunk's
    columns and temporaries (a few MB, freed at the top of the heap) went back to the system
    and were faulted in again on the next chunk, 50 k page faults and ~0.1 s of CPU a million
    packets. Up to 32 MiB of free heap top is kept for the next chunk instead (peak RSS is
    unchanged: the next chunk needs as much). Elsewhere (musl, macOS) the allocator's default
    is kept. The process's own symbols are searched (``CDLL(None)``): ``find_library`` would
    run ``ldconfig``, milliseconds a call."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return
    if hasattr(libc, "mallopt"):
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_FROM)
        libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_FROM)


def _scan(
    capture: Capture,
    detectors: Sequence[Detector],
    label: str,
    stats: ScanStats | None,
    on_chunk: Callable[[int, int], None] | None,
    dedup: DuplicateFilter | None,
) -> ScanStats:
    st = stats or ScanStats()
    t_start = time.perf_counter()
    stage = st.stage_seconds
    it = iter(capture.chunks())
    while True:
        t0 = time.thread_time()
        chunk = next(it, None)
        t1 = time.thread_time()
        stage["read"] = stage.get("read", 0.0) + t1 - t0
        if chunk is None:
            break
        cols = dec.columns(chunk)
        if dedup is not None:
            blank(cols, dedup.mask(chunk))
        t2 = time.thread_time()
        frames = chunk.frames
        s_rows, s_mss = syn_mss(cols)
        rows = rare_rows(cols, s_rows, s_mss)
        rare = dec.decode_rows(cols, rows)
        t3 = time.thread_time()
        view = ChunkView(label, cols, frames, rare, rows, s_rows, s_mss, hello_rows(cols))
        for det in detectors:
            td = time.thread_time()
            det.feed(view)
            name = "detect:" + type(det).__name__.removesuffix("Detector").lower()
            stage[name] = stage.get(name, 0.0) + time.thread_time() - td
        t4 = time.thread_time()
        stage["decode"] = stage.get("decode", 0.0) + t2 - t1
        stage["rare"] = stage.get("rare", 0.0) + t3 - t2
        stage["detect"] = stage.get("detect", 0.0) + t4 - t3
        st.packets += len(chunk)
        st.ip_packets += int(np.count_nonzero(cols.ipver))
        st.rare_packets += len(rare)
        if not np.isnan(chunk.ts).all():
            _time_order(st, chunk.ts)
            lo, hi = float(np.nanmin(chunk.ts)), float(np.nanmax(chunk.ts))
            st.first_ts = lo if st.first_ts is None else min(st.first_ts, lo)
            st.last_ts = hi if st.last_ts is None else max(st.last_ts, hi)
        lt0 = int(chunk.linktype[0])
        if (chunk.linktype == lt0).all():
            st.linktype_frames[lt0] = st.linktype_frames.get(lt0, 0) + len(chunk)
        else:
            lts, counts = np.unique(chunk.linktype, return_counts=True)
            for lt, n in zip(lts.tolist(), counts.tolist()):
                st.linktype_frames[lt] = st.linktype_frames.get(lt, 0) + n
        if on_chunk is not None:  # after the counts: a live reader judges what it has so far
            on_chunk(capture.position, st.packets)
    for det in detectors:
        finish = getattr(det, "finish", None)
        if finish is not None:
            finish()
    st.seconds += time.perf_counter() - t_start
    return st
