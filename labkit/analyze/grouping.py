"""Which files are one case: files are judged together only when they saw the same network
at the same time, or when the user says so (``--one-case``).

Joining unrelated files makes one file's facts evidence about another's: an ICMP MTU of a
test capture from 2012 became the "tunnel MTU" of every file on the command line (3,564 test
captures gave 1,781 oversized-df warnings). Two files are *related* when their capture times
overlap (within :data:`SLACK_S`) and either a host sends in both, or one is an outside capture
of a VPN head-end and the other a tunnel or inside capture (the two sides of one VPN share no
address); or when they show one VPN session: a decrypted CONNECT in one, the DTLS ClientHello
carrying its X-DTLS-Session-ID in the other (NAT between the capture points changes every
address, never the session id). Related files join transitively; every other file is a case
of its own.
Pure: sketches of the files in, groups with the reason out.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

SLACK_S = 60.0  #: capture clocks of two points of one case may differ by this much


@dataclass(frozen=True, slots=True)
class FileSketch:
    """What grouping needs to know of one analyzed file."""

    path: str
    first: float | None  # first and last packet times (None: no timestamps)
    last: float | None
    hosts: np.ndarray  # sorted source-address hashes
    point: str  # capture point judged from this file alone (outside | tunnel | inside | ...)
    #: X-DTLS-Session-IDs of its decrypted CONNECTs and of its DTLS hellos carrying one
    sessions: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class CaseGroup:
    """Files judged together, and why."""

    files: tuple[str, ...]
    reason: str

    def to_json(self) -> dict:
        return {"files": list(self.files), "reason": self.reason}


def _overlap(a: FileSketch, b: FileSketch) -> bool:
    if a.first is None or a.last is None or b.first is None or b.last is None:
        return False
    return a.first <= b.last + SLACK_S and b.first <= a.last + SLACK_S


def group(sketches: list[FileSketch], one_case: bool = False) -> list[CaseGroup]:
    """Cases in the order of their first file on the command line."""
    if not sketches:
        return []
    if one_case or len(sketches) == 1:
        reason = "given as one case (--one-case)" if len(sketches) > 1 else "a single file"
        return [CaseGroup(tuple(s.path for s in sketches), reason)]
    parent = list(range(len(sketches)))
    why: dict[int, set[str]] = defaultdict(set)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int, reason: str) -> None:
        ri, rj = root(i), root(j)
        lo, hi = min(ri, rj), max(ri, rj)
        if lo != hi:
            parent[hi] = lo
            why[lo] |= why.pop(hi, set())
        why[lo].add(reason)

    span = {i: (s.first, s.last) for i, s in enumerate(sketches) if s.first is not None}
    by_host: dict[int, list[int]] = defaultdict(list)
    for i, s in enumerate(sketches):
        if i in span:
            for h in s.hosts.tolist():
                by_host[h].append(i)
    for files in by_host.values():  # a sweep by start time over the files showing one host
        anchor, end = -1, -np.inf
        for i in sorted(files, key=lambda i: span[i][0]):
            first, last = span[i]
            if anchor >= 0 and first <= end + SLACK_S:
                join(anchor, i, "a host sends in each and the capture times overlap")
                end = max(end, last if last is not None else first)
            else:
                anchor, end = i, (last if last is not None else first)
    outside = [i for i, s in enumerate(sketches) if s.point == "outside"]
    for i in outside:
        for j, s in enumerate(sketches):
            if s.point in ("tunnel", "inside") and _overlap(sketches[i], s):
                join(i, j, "outside and inside/tunnel captures of one VPN, capture times overlap")
    by_session: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(sketches):
        for sid in s.sessions:
            by_session[sid].append(i)
    for files in by_session.values():
        for j in files[1:]:
            join(files[0], j, "one VPN session: its CONNECT and its DTLS (X-DTLS-Session-ID)")
    members: dict[int, list[int]] = defaultdict(list)
    for i in range(len(sketches)):
        members[root(i)].append(i)
    out = []
    for r, idx in sorted(members.items()):
        paths = tuple(sketches[i].path for i in idx)
        reason = (
            "; ".join(sorted(why[r]))
            if len(idx) > 1
            else "no other file shares a host with it at the same time"
        )
        out.append(CaseGroup(paths, reason))
    return out
