"""Evidence frames and the Wireshark display filters that select exactly them.

A finding's filter must select exactly its evidence frames (tests run it with tshark). Many
findings rest on thousands of frames (every 1418-byte DF segment); the evidence lists the
first :data:`MAX_FRAMES` and the filter says so with a frame-number bound:
``(ip.flags.df == 1 && ip.len > 1347 && !icmp) && frame.number <= 812`` selects exactly the
first 12 of them. ``frame.number in {...}`` would be a cop-out: it teaches nothing and breaks
as soon as the file is edited; a protocol filter is what a person would type.

Display-filter precedence differs between Wireshark versions, so every clause is parenthesised.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from labkit.findings import Evidence, Located

MAX_FRAMES = 12  #: evidence frames kept per filter clause


@dataclass(slots=True)
class FrameSet:
    """The first :data:`MAX_FRAMES` frames (in frame order) of one file matching ``clause``."""

    file: str
    clause: str
    frames: list[tuple[int, float]] = field(default_factory=list)
    count: int = 0

    def add(self, frame: int, ts: float) -> None:
        self.count += 1
        if len(self.frames) < MAX_FRAMES:
            self.frames.append((frame, ts))

    def add_many(self, frames: Sequence[int], times: Sequence[float], count: int) -> None:
        """Add ``count`` matches of which ``frames`` (ascending) are the first ones."""
        room = MAX_FRAMES - len(self.frames)
        if room > 0:
            self.frames.extend(zip(list(frames)[:room], list(times)[:room]))
        self.count += count

    @property
    def complete(self) -> bool:
        return self.count == len(self.frames)


@dataclass(frozen=True, slots=True)
class Selection:
    """Frames of one file and a filter selecting exactly them in that file."""

    file: str
    frames: tuple[tuple[int, float], ...]
    filter: str
    count: int  # how many frames the clause matched in all (>= len(frames))


def paren(clause: str) -> str:
    return (
        clause
        if clause.startswith("(") and clause.endswith(")") and _balanced(clause[1:-1])
        else f"({clause})"
    )


def _balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


def any_of(clauses: Iterable[str]) -> str:
    parts = sorted({paren(c) for c in clauses if c})
    return parts[0] if len(parts) == 1 else " || ".join(parts)


def select(
    sets: Sequence[FrameSet], limit: int = MAX_FRAMES, clause: str | None = None
) -> Selection | None:
    """Merge frame sets of one file: the first ``limit`` frames of their union, exactly.

    Each set knows only its own first frames, so the merged list is cut at the earliest frame
    beyond which some incomplete set might have matches we did not keep; the filter carries
    that cut as ``frame.number <= N``. ``clause`` replaces the sets' own clauses when the
    caller knows a shorter filter that selects the same frames.
    """
    sets = [s for s in sets if s.count]
    if not sets:
        return None
    files = {s.file for s in sets}
    if len(files) != 1:
        raise ValueError("select() merges frame sets of one file")
    merged = sorted({f for s in sets for f in s.frames})
    cut: int | None = None
    for s in sets:
        if not s.complete:
            last = s.frames[-1][0]
            cut = last if cut is None else min(cut, last)
    if cut is not None:
        merged = [f for f in merged if f[0] <= cut]
    if len(merged) > limit:
        merged = merged[:limit]
        cut = merged[-1][0]
    clause = clause or any_of(s.clause for s in sets)
    filt = f"{paren(clause)} && frame.number <= {cut}" if cut is not None else clause
    return Selection(sets[0].file, tuple(merged), filt, sum(s.count for s in sets))


def located(selections: Sequence[Selection | None]) -> Located:
    """A finding's evidence and filters from selections of one or more files (one selection
    per file): each file's frames, the first file's filter, and every file's filter when
    there are several."""
    sels = [s for s in selections if s is not None]
    filters = {s.file: s.filter for s in sels}
    return Located(
        evidence=tuple(Evidence(s.file, f, t) for s in sels for f, t in s.frames),
        wireshark_filter=sels[0].filter if sels else "",
        wireshark_filters=filters if len(filters) > 1 else None,
    )


def src_field(address: str) -> str:
    return "ipv6.src" if ":" in address else "ip.src"


def dst_field(address: str) -> str:
    return "ipv6.dst" if ":" in address else "ip.dst"
