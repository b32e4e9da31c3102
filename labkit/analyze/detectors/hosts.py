"""The hosts a file shows sending (hashes of source addresses, bounded): what tells whether
two files saw the same network (:mod:`labkit.analyze.grouping`). Sources only: a multicast or
broadcast destination is shared by unrelated captures and never sends."""

from __future__ import annotations

import numpy as np

from labkit.analyze.engine import ChunkView

MAX_HOSTS = 1 << 16  # enough to find one shared host; memory stays bounded on any capture


class HostsDetector:
    def __init__(self, file: str) -> None:
        self.file = file
        self.hosts = np.zeros(0, np.uint64)

    def feed(self, view: ChunkView) -> None:
        if len(self.hosts) >= MAX_HOSTS:
            return
        c = view.cols
        new = np.unique(c.src_h[c.ipver > 0])
        self.hosts = np.union1d(self.hosts, new)[:MAX_HOSTS]
