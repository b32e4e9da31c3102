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

import numpy as np

from labkit.analyze.engine import ChunkView
from labkit.analyze.evidence import FrameSet

CLAUSE = "ip.flags.mf == 0 && ip.frag_offset > 0"  #: the last fragment of each packet


class FragmentDetector:
    def __init__(self, file: str) -> None:
        self.file = file
        self.sizes: Counter = Counter()  # reassembled IP size -> packets
        self.frames = FrameSet(file, CLAUSE)

    def feed(self, view: ChunkView) -> None:
        c = view.cols
        rows = np.flatnonzero((c.ipver == 4) & ~c.first)
        if not len(rows):
            return
        buf = np.frombuffer(view.chunk.buf, np.uint8)
        at = c.l3[rows]
        word = (buf[at + 6].astype(np.int64) << 8) | buf[at + 7]
        last = (word & 0x2000) == 0
        rows, word = rows[last], word[last]
        if not len(rows):
            return
        size = (word & 0x1FFF) * 8 + c.iplen[rows]
        self.sizes.update(size.tolist())
        self.frames.add_many(view.frames[rows].tolist(), view.ts[rows].tolist(), len(rows))
