"""The hosts a file shows sending (hashes of source addresses, bounded) and when each last
sent. Which hosts: what tells whether two files saw the same network
(:mod:`labkit.analyze.grouping`). When: whether a case's captures kept covering a host after
a moment, when the moment is in one file and the host's later packets are in another (a
capture split by protocol, ``udp`` in one file and ``tcp`` in the other). Sources only: a
multicast or broadcast destination is shared by unrelated captures and never sends."""

from __future__ import annotations

import numpy as np

from labkit.analyze.engine import ChunkView, largest, last_of, member

MAX_HOSTS = 1 << 16  # enough to find one shared host; memory stays bounded on any capture


class HostsDetector:
    def __init__(self, file: str) -> None:
        self.file = file
        self.hosts = np.zeros(0, np.uint64)  # sorted
        self.last = np.zeros(0)  # when each of ``hosts`` last sent

    def feed(self, view: ChunkView) -> None:
        # Any true sighting is sound evidence that the capture still covered a host then, so
        # the chunk's sightings (one per TCP flow) stand for all its packets.
        rows = view.sightings()
        src, ts = view.cols.src_h[rows], view.ts[rows]
        if len(self.hosts) >= MAX_HOSTS:  # full: only the known hosts' times move on
            known = member(src, self.hosts)
            src, ts = src[known], ts[known]
        if not len(src):
            return
        hosts, last = largest(src, ts)
        known = member(hosts, self.hosts)
        at = np.searchsorted(self.hosts, hosts[known])
        self.last[at] = np.maximum(self.last[at], last[known])
        room = MAX_HOSTS - len(self.hosts)
        if room > 0 and not known.all():
            new, when = hosts[~known][:room], last[~known][:room]
            merged = np.concatenate([self.hosts, new])
            order = np.argsort(merged, kind="stable")
            self.hosts, self.last = merged[order], np.concatenate([self.last, when])[order]

    def last_sent(self, hosts: np.ndarray) -> np.ndarray:
        """When each of ``hosts`` (address hashes) last sent in this file; -inf if never (or
        not tracked: past :data:`MAX_HOSTS`, which can only leave coverage unproven)."""
        return last_of(hosts, self.hosts, self.last)
