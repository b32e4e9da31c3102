"""IPv4 fragments: packets something on the path split, and the size they had before.

With ``anyconnect ssl df-bit-ignore enable`` the head-end fragments the adapter-sized DF
packets into the TLS tunnel instead of dropping them, so the client's adapter sees each one
as fragments. The last fragment (offset > 0, MF clear) says how big the whole packet was:
``offset * 8 + its IP length`` (RFC 791 section 3.2: the offset counts 8-byte units of the
original payload and each fragment repeats the header). Counted per original size, with the
first last-fragment frames as evidence; routers never fragment IPv6 (RFC 8200 section 5).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from labkit.analyze.engine import ChunkView
from labkit.analyze.evidence import FrameSet


@dataclass(frozen=True, slots=True)
class LastFragments:
    """Which frames are the last fragments (offset > 0, MF clear) of IPv4 packets, said once
    and compiled twice, so that the display filter and the rows counted cannot drift apart."""

    def wireshark(self) -> str:
        return "ip.flags.mf == 0 && ip.frag_offset > 0"

    def rows(self, view: ChunkView) -> tuple[np.ndarray, np.ndarray]:
        """The rows of a chunk it selects, and each one's flags and offset word (RFC 791
        section 3.1: flags in the top 3 bits, the offset in 8-byte units below)."""
        c = view.cols
        rows = np.flatnonzero((c.ipver == 4) & ~c.first)
        buf = np.frombuffer(view.chunk.buf, np.uint8)
        at = c.l3[rows]
        word = (buf[at + 6].astype(np.int64) << 8) | buf[at + 7]
        last = (word & 0x2000) == 0
        return rows[last], word[last]


LAST_FRAGMENTS = LastFragments()


class FragmentDetector:
    def __init__(self, file: str) -> None:
        self.file = file
        self.sizes: Counter = Counter()  # reassembled IP size -> packets
        self.frames = FrameSet(file, LAST_FRAGMENTS.wireshark())

    def feed(self, view: ChunkView) -> None:
        rows, word = LAST_FRAGMENTS.rows(view)
        if not len(rows):
            return
        size = (word & 0x1FFF) * 8 + view.cols.iplen[rows]
        self.sizes.update(size.tolist())
        self.frames.add_many(view.frames[rows].tolist(), view.ts[rows].tolist(), len(rows))
