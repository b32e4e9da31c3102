"""Record-chain walks: where each record of a buffer starts, the one per-record step of the reader.

Each record's offset is the previous offset plus the previous record's length, so this step
cannot be vectorized: everything else the reader does is numpy over the offsets found here.
A Python loop manages ~0.25 us a record, a quarter of the analyzer's 1 M packets/s budget
(issue 8), so the walk is compiled (``_walk.c``, built by ``pip install``) when a C compiler
was there at install time; the Python twins below give the same answers where it was not
(:data:`COMPILED` says which one runs; the tests run both on the same bytes).

Contract of both walks: fill ``out[:n]`` (an int64 array; at most ``len(out)`` offsets) with
the offsets of the complete records in ``buf[pos:have]`` and return ``(n, next offset)``. They
stop at the first record that does not fit before ``have`` and, for pcapng, at a block length
below 12 or not a multiple of 4; the caller decides what a stop means (a record split by the
end of the buffer, corruption, a new section). ``swapped``: the file's byte order is not this
machine's.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable

import numpy as np

#: What a walk reads: the reader's buffers are anonymous mappings (zeroed pages for free),
#: tests and small callers pass a bytearray; both export the same writable buffer.
Buf = bytearray | mmap.mmap

_NATIVE = "<" if struct.pack("=I", 1) == struct.pack("<I", 1) else ">"


def _u32_views(buf: Buf) -> tuple[memoryview, ...]:
    """Native uint32 views of ``buf`` at the four alignments: view[a][k] = u32 at 4k + a.

    Indexing a cast memoryview returns an int without building a tuple, about twice as fast
    as ``struct.unpack_from``.
    """
    mv = memoryview(buf)
    return tuple(mv[a : a + (len(buf) - a) // 4 * 4].cast("I") for a in range(4))


def _py_walk(
    buf: Buf,
    out: np.ndarray,
    pos: int,
    have: int,
    swapped: bool,
    head: int,
    field: int,
    base: int,
    block: bool,
) -> tuple[int, int]:
    """The walk both formats share: a record needs ``head`` bytes, its length is the u32 at
    ``field``, the next record starts ``base`` + that length on; ``block``: pcapng's rule
    that a length is at least 12 and a multiple of 4."""
    offs: list[int] = []
    app = offs.append
    lim = have - head
    views = _u32_views(buf)
    unpack = struct.Struct(("<" if _NATIVE == ">" else ">") + "I").unpack_from
    try:
        for _ in range(len(out)):
            if pos > lim:
                break
            f = pos + field
            v = unpack(buf, f)[0] if swapped else views[f & 3][f >> 2]
            nxt = pos + base + v
            if nxt > have or (block and (v < 12 or v & 3)):
                break
            app(pos)
            pos = nxt
    finally:
        for m in views:
            m.release()
    out[: len(offs)] = offs
    return len(offs), pos


def py_pcap(
    buf: Buf, out: np.ndarray, pos: int, have: int, rec_len: int, swapped: bool
) -> tuple[int, int]:
    """pcap records: the caplen at +8 of each record header gives the next one."""
    return _py_walk(buf, out, pos, have, swapped, rec_len, 8, rec_len, False)


def py_pcapng(buf: Buf, out: np.ndarray, pos: int, have: int, swapped: bool) -> tuple[int, int]:
    """pcapng blocks: the total length at +4 of each block gives the next one."""
    return _py_walk(buf, out, pos, have, swapped, 12, 4, 0, True)


# The compiled walks take their arguments by position only, so the names are typed as callables.
pcap: Callable[[Buf, np.ndarray, int, int, int, bool], tuple[int, int]]
pcapng: Callable[[Buf, np.ndarray, int, int, bool], tuple[int, int]]
#: The copy of each record's first bytes that follows the walk (``reader.rows_at``), compiled:
#: ``gather(buf, offsets, width, out)``; None without a C compiler (numpy does it).
gather: Callable[[np.ndarray, np.ndarray, int, np.ndarray], None] | None
try:
    from labkit.pcapio import _walk
except ImportError:  # installed without a C compiler: the same walks, slower
    COMPILED = False
    pcap, pcapng, gather = py_pcap, py_pcapng, None
else:
    COMPILED = True
    pcap, pcapng, gather = _walk.pcap, _walk.pcapng, _walk.gather


def swapped(order: str) -> bool:
    """Whether a file in byte order ``order`` ("<" or ">") needs its integers swapped here."""
    return order != _NATIVE
