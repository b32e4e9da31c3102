"""Retransmitted large DF segments and whether they were ever acknowledged: the PMTUD black hole.

Definition (the one the findings use and the README documents). A **PMTUD black hole** is a
TCP data segment, IPv4 with DF set or IPv6, of at least 576 bytes, such that:

1. the same segment (same flow, sequence number and payload length) was sent at least
   :data:`MIN_COPIES` times (the original and at least two retransmissions);
2. the receiver never acknowledged its last byte, or acknowledged it only after the sender had
   re-sent that data in smaller segments (the sender's own black-hole detection, RFC 4821);
3. no segment that large or larger was ever acknowledged in that direction of the flow, so the
   loss depends on size (a dead peer loses small segments too);
4. no ICMP "fragmentation needed" / "packet too big" in the case quotes the flow, and, when a
   tunnel MTU is known, the segment is larger than it.

Only packets with the ACK flag acknowledge (RFC 9293 3.4: the acknowledgment field is valid
only then): a bare RST (ACK clear, ack 0) that ends a flow says nothing about what arrived.
A black hole also needs a receiver that could have answered: one never seen from the first
copy on (a one-sided capture), or one that reset the connection before the last copy (it was
gone, so nothing could be acknowledged), makes the segment "cannot tell"
(:attr:`Candidate.receiver_gone`, counted by :attr:`RetransDetector.cannot_tell`), never a
black hole. This is judged when asked, so a report made while the capture still grows
(``--follow``) is right at every point.

An ordinary retransmission - lost once, sent again at the same size, acknowledged - fails 2.
A fast retransmission of a re-segmented range (``tcp-mss-fast-retransmit.pcap``) is not the same
segment and fails 1.

How, without per-packet lists: each chunk's large segments are keyed by a hash of (flow, seq,
length) and matched against the *outstanding* segments carried over from earlier chunks (sent,
not yet acknowledged: bounded by the flows' windows). Acknowledged segments leave the carry,
recording per flow the largest acknowledged size. Segments seen twice become candidates
(rare), which are followed individually: copies, first covering ACK, first smaller re-send.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labkit.analyze import decode as dec
from labkit.analyze.decode import Columns
from labkit.analyze.detectors.outstanding import Outstanding
from labkit.analyze.engine import ChunkView, FlowBudget, FlowGroups, largest, member, repeated
from labkit.analyze.evidence import FrameSet, dst_field, src_field
from labkit.mtu import MIN_IPV4_MTU

MIN_COPIES = 3
MIN_SIZE = MIN_IPV4_MTU
MAX_AGE_S = 900.0  #: an outstanding segment older than this (capture time) is forgotten
#: unresolved retransmitted segments followed at once (Python objects of ~1 KB, so fewer than
#: the budget's column rows)
MAX_CANDIDATES = 10_000
_CARRY = "outstanding segment"  # the tables' names in the budget's counts
_CANDIDATES = "retransmission candidate"
_K1 = np.uint64(0xD6E8FEB86659FD93)
_HALF = 1 << 31
_MOD = 1 << 32


@dataclass(frozen=True, slots=True)
class Segment:
    """One TCP segment and every copy of it, said once: the same flow (addresses and ports),
    raw sequence number and payload length, the three things the detector keys a segment by
    (a copy with a different length or start is a re-segmentation, not the same segment)."""

    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    length: int

    def wireshark(self) -> str:
        s, d = self.src, self.dst
        return (
            f"{src_field(s)} == {s} && {dst_field(s)} == {d} && tcp.srcport == {self.sport} && "
            f"tcp.dstport == {self.dport} && tcp.seq_raw == {self.seq} && tcp.len == {self.length}"
        )


@dataclass(slots=True)
class Candidate:
    fd: int  # directed flow hash
    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    length: int  # TCP payload
    size: int  # IP packet
    copies: FrameSet
    ack_key: int = 0  # flow hash of the receiver's direction (its ACKs)
    acked_frame: int | None = None
    shrunk_frame: int | None = None
    last_copy_frame: int = 0
    receiver_seen: bool = False  # a packet from the receiver since the first copy's chunk
    receiver_reset_frame: int | None = None  # the receiver's first RST seen since then

    @property
    def receiver_gone(self) -> bool:
        """Nothing could have acknowledged the copies: the receiver was never seen, or had
        reset the connection before the last copy."""
        return not self.receiver_seen or (
            self.receiver_reset_frame is not None
            and self.receiver_reset_frame < self.last_copy_frame
        )

    @property
    def end(self) -> int:
        return (self.seq + self.length) % _MOD

    @property
    def flow(self) -> tuple[str, str, int, int, int]:
        return self.src, self.dst, dec.PROTO_TCP, self.sport, self.dport

    @property
    def recovered_by_shrinking(self) -> bool:
        return self.shrunk_frame is not None and (
            self.acked_frame is None or self.shrunk_frame < self.acked_frame
        )


def _serial_ge(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """a >= b in TCP sequence space (RFC 1982 serial arithmetic on 32 bits)."""
    return ((a - b) % _MOD) < _HALF


class RetransDetector:
    def __init__(self, file: str, budget: FlowBudget | None = None) -> None:
        self.file = file
        self.budget = budget or FlowBudget()  # bounds the carry; counts what is dropped
        self.candidates: dict[int, Candidate] = {}
        self.acked_size: dict[int, int] = {}  # flow -> largest IP size acknowledged
        self.forgotten = 0
        self.ordinary = 0  # retransmitted segments later acknowledged at their size
        self._last_ack = np.zeros(0, np.int64)  # per flow group of the chunk: last ACK row
        self._chunk = 0  # chunks fed so far: the carry dates its rows and sightings by it
        self.carry = Outstanding()
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def cannot_tell(self) -> int:
        """Unresolved retransmitted segments whose receiver was gone."""
        return sum(cd.receiver_gone for cd in self.candidates.values())

    @property
    def cannot_tell_flows(self) -> int:
        """Flows with a segment sent at least :data:`MIN_COPIES` times whose receiver was
        gone: a black hole there can be neither shown nor ruled out."""
        return len(
            {
                cd.fd
                for cd in self.candidates.values()
                if cd.copies.count >= MIN_COPIES and cd.receiver_gone
            }
        )

    def feed(self, view: ChunkView) -> None:
        c = view.cols
        fwd, rev = view.tcp_keys()
        rows = np.flatnonzero((fwd != 0) & c.df & (c.paylen > 0) & (c.iplen >= MIN_SIZE))
        groups = view.tcp_groups()
        self._chunk += 1
        self._last_ack = groups.last_where((c.flags & dec.TCP_ACK) != 0)
        if self.carry.live:
            self._acks(view)  # the carry first: segments of this chunk are checked on entry
        if len(rows):
            self._segments(view, rows, fwd, rev)
            self.forgotten += self.carry.trim(self.budget, _CARRY)  # the latest stay
        if self.candidates:
            self._follow(view, fwd, rev)
        if len(self.candidates) > MAX_CANDIDATES:  # bounded: keep the most-copied
            kept = sorted(self.candidates.items(), key=lambda kv: -kv[1].copies.count)[
                :MAX_CANDIDATES
            ]
            dropped = [k for k in self.candidates.keys() - dict(kept).keys()]
            self._judged_early(np.array(dropped, np.uint64))
            self.candidates = dict(kept)
            self._arrays = None

    def _judged_early(self, keys: np.ndarray) -> None:
        """Segments dropped at the candidates' ceiling: their first copies in the carry are
        marked, and each segment is counted once. While the table stays full, a marked
        segment's later copies are skipped with one mask (each was decoded, made a candidate
        and dropped anew: a capture of more black holes at once than the ceiling, each sent
        several times, made as many candidates as copies)."""
        rows = self.carry.find(keys)
        at = rows[rows >= 0]
        fresh = int(np.count_nonzero(rows < 0)) + int(np.count_nonzero(~self.carry["judged"][at]))
        self.carry.judge(at)
        self.forgotten += fresh
        self.budget.dropped(_CANDIDATES, fresh)

    def _segments(
        self, view: ChunkView, rows: np.ndarray, fwd: np.ndarray, rev: np.ndarray
    ) -> None:
        """Match this chunk's large segments against the carry; new ones join it."""
        c = view.cols
        fd = fwd[rows]
        seq, plen = c.seq[rows], c.paylen[rows]
        key = dec.mix64(fd ^ dec.mix64(seq.astype(np.uint64) * _K1 + plen.astype(np.uint64)))
        # The carried segments this chunk sends again (found by key: the carry may hold a
        # one-sided capture's every segment).
        found = self.carry.find(key)
        carried = np.unique(found[found >= 0])
        n_old = len(carried)
        some_key = np.concatenate([self.carry["key"][carried], key])
        dup = repeated(some_key)  # none (the common case) -> nothing else to do
        if len(dup):
            both = np.flatnonzero(np.isin(some_key, dup))
            order = both[np.argsort(some_key[both], kind="stable")]  # carried copy first
            ks = some_key[order]
            head = np.r_[True, ks[1:] != ks[:-1]]
            late = self._retransmitted(view, rows, order, head, carried, some_key)
            later = np.zeros(len(some_key), bool)
            later[order[~head]] = True  # second and later copies: not new first copies
            new_first = np.flatnonzero(~later[n_old:])
        else:
            late, new_first = np.zeros(0, np.uint64), np.arange(len(key))
        # Segments acknowledged within this chunk never join the carry (most of them).
        r_new = rows[new_first]
        ends = (seq[new_first] + plen[new_first]) % _MOD
        receiver = view.tcp_groups().find(rev[r_new])
        acked = self._acked(view, ends, receiver)
        if acked.any():
            self._record_acked(fd[new_first][acked], c.iplen[r_new][acked])
            keep = ~acked
            new_first, r_new, ends, receiver = (
                new_first[keep],
                r_new[keep],
                ends[keep],
                receiver[keep],
            )
        self.carry.add(
            key=key[new_first],
            sender=fd[new_first],
            receiver=rev[r_new],
            end=ends,
            frame=view.frames[r_new],
            ts=view.ts[r_new],
            size=c.iplen[r_new],
            chunk=self._chunk,
            receiver_seen=receiver >= 0,
        )
        if len(late):
            self._judged_early(late)  # their first copies are in the carry now

    def _retransmitted(
        self,
        view: ChunkView,
        rows: np.ndarray,
        order: np.ndarray,
        head: np.ndarray,
        carried_rows: np.ndarray,
        some_key: np.ndarray,
    ) -> np.ndarray:
        """Segments seen more than once (carry + this chunk): create or extend candidates.
        ``some_key``: the keys of the carried rows ``carried_rows``, then the chunk's; ``order``
        indexes it. Returns the keys of new segments dropped at the ceiling."""
        starts = np.flatnonzero(head)
        sizes = np.diff(np.r_[starts, len(order)])
        n_old = len(carried_rows)
        first = order[starts]
        group_key = some_key[first]
        multi = sizes > 1
        late: np.ndarray = np.zeros(0, np.uint64)
        if len(self.candidates) >= MAX_CANDIDATES and multi.any():
            # The table is full. A segment not in it whose first copy was dropped before
            # stays dropped (while the table has room again, it is made again). A new segment
            # with no more copies than the least-copied kept one would be dropped at once
            # (copies only grow): it is dropped without being made.
            known = member(group_key, self._candidate_arrays()[0])
            dropped = np.zeros(len(starts), bool)
            if n_old:
                carried_first = carried_rows[np.minimum(first, n_old - 1)]
                dropped = (first < n_old) & self.carry["judged"][carried_first]
            floor = min(cd.copies.count for cd in self.candidates.values())
            skip = multi & ~known & (dropped | (sizes <= floor))
            late = group_key[skip & ~dropped]
            multi &= ~skip
        if multi.any():
            self._copies(
                view, rows, order, starts[multi], sizes[multi], group_key[multi], carried_rows
            )
        return late

    def _copies(
        self,
        view: ChunkView,
        rows: np.ndarray,
        order: np.ndarray,
        starts: np.ndarray,
        sizes: np.ndarray,
        keys: np.ndarray,
        carried_rows: np.ndarray,
    ) -> None:
        """Add the copies of each group of ``order`` (``starts``, ``sizes``; its segment's key
        in ``keys``) to the segment's candidate, made from its first copy in this chunk when
        it has none. Every group's frames, times and attributes are gathered at once from the
        columns; the Python step per group only makes or extends its objects (a packet decode
        per new candidate cost ~15 us, and a lossy capture has thousands of them)."""
        c = view.cols
        n_old = len(carried_rows)
        begin = np.cumsum(sizes) - sizes
        members = order[
            np.repeat(starts, sizes) + np.arange(int(sizes.sum())) - np.repeat(begin, sizes)
        ]
        old = members < n_old
        new_rows = rows[np.maximum(members - n_old, 0)]
        frames = view.frames[new_rows]
        times = view.ts[new_rows]
        has_old = old[begin]  # a carried copy comes first (the carry holds a key once)
        first_seen = np.zeros(len(starts), bool)
        if n_old:
            at = carried_rows[np.minimum(members, n_old - 1)]
            frames = np.where(old, self.carry["frame"][at], frames)
            times = np.where(old, self.carry["ts"][at], times)
            first_seen = has_old & self.carry.seen(at[begin])
        r = new_rows[begin + has_old]  # each group's first copy in this chunk
        src_a, dst_a = (
            a.tolist() for a in dec.packed_addresses(view.chunk.buf, c.l3[r], c.ipver[r])
        )
        ends = np.r_[begin[1:], len(members)].tolist()
        frame_l, time_l = frames.tolist(), times.tolist()
        rev = view.tcp_keys()[1]
        for j, (k, a, b, skip) in enumerate(
            zip(keys.tolist(), begin.tolist(), ends, has_old.tolist())
        ):
            cand = self.candidates.get(k)
            if cand is None:
                cand = self.candidates[k] = self._made(view, int(r[j]), src_a[j], dst_a[j])
                cand.ack_key = int(rev[r[j]])
                cand.receiver_seen = bool(first_seen[j])
                self._arrays = None
            elif skip:
                a += 1  # a candidate holds its first copy already
            cand.copies.add_many(frame_l[a:b], time_l[a:b], b - a)
            cand.last_copy_frame = max(cand.last_copy_frame, frame_l[b - 1])

    def _candidate_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The open candidates' keys sorted (to look keys up in), then, in the table's order,
        their flows' hashes, their receivers' and their keys: rebuilt only when candidates
        come or go, so that a chunk asks which of them it concerns with a search, not a
        Python step per candidate."""
        if self._arrays is None:
            keys = np.fromiter(self.candidates.keys(), np.uint64, len(self.candidates))
            by_key = np.argsort(keys)
            fd = np.fromiter(
                (cd.fd for cd in self.candidates.values()), np.uint64, len(self.candidates)
            )
            ack = np.fromiter(
                (cd.ack_key for cd in self.candidates.values()), np.uint64, len(self.candidates)
            )
            self._arrays = (keys[by_key], fd, ack, keys)
        return self._arrays

    def _made(self, view: ChunkView, r: int, src_a: bytes, dst_a: bytes) -> Candidate:
        """A candidate for the segment at chunk row ``r`` (its addresses packed: the text the
        decoder prints, without a decode)."""
        c = view.cols
        v6 = int(c.ipver[r]) == 6
        src, dst = dec.packed_text(src_a, v6), dec.packed_text(dst_a, v6)
        sport, dport, seq, plen = int(c.sport[r]), int(c.dport[r]), int(c.seq[r]), int(c.paylen[r])
        seg = Segment(src, dst, sport, dport, seq, plen)
        return Candidate(
            int(view.tcp_keys()[0][r]),
            src,
            dst,
            sport,
            dport,
            seq,
            plen,
            int(c.iplen[r]),
            FrameSet(self.file, seg.wireshark()),
        )

    def _acked(self, view: ChunkView, ends: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Whether the receiver's last acknowledgment in this chunk covers each segment's end;
        ``g``: each receiver's flow group in the chunk (-1: none).

        ACKs are cumulative: the receiver's last packet with the ACK flag carries its highest
        (a later bare RST carries none).
        """
        c = view.cols
        last = self._last_ack[np.maximum(g, 0)] if len(self._last_ack) else g
        has = (g >= 0) & (last >= 0)
        if not has.any():
            return has
        return has & _serial_ge(c.ack[np.maximum(last, 0)], ends)

    def _record_acked(self, fds: np.ndarray, sizes: np.ndarray) -> None:
        """Remember, per flow, the largest segment the receiver acknowledged."""
        uf, best = largest(fds, sizes)
        get = self.acked_size.get
        for f, sz in zip(uf.tolist(), best.tolist()):
            if sz > get(f, 0):
                self.acked_size[f] = sz

    def _acks(self, view: ChunkView) -> None:
        """Drop carried segments the peer acknowledged in this chunk; forget very old ones."""
        rid = self.carry.receivers(view.tcp_groups().keys, self._chunk)
        last = self._last_ack
        has = (rid >= 0) & (last >= 0) if len(last) else rid >= 0
        if has.any():
            fds, sizes = self.carry.acknowledge(rid[has], view.cols.ack[last[has]])
            if len(fds):
                self._record_acked(fds, sizes)
        if self.carry.live:
            ts = view.ts
            now = float(np.nanmax(ts)) if len(ts) and not np.isnan(ts).all() else 0.0
            self.forgotten += self.carry.age(now - MAX_AGE_S)

    def _follow(self, view: ChunkView, fwd: np.ndarray, rev: np.ndarray) -> None:
        """For open candidates: the first ACK covering them, the first smaller re-send.

        A candidate acknowledged at its size (no smaller re-send first) is an ordinary
        retransmission: it is dropped, so the table holds only unresolved segments. Only the
        candidates whose flow or receiver sent in this chunk are looked at (a search of the
        chunk's flows), each flow's rows are gathered once however many of them it has
        (:func:`first_smaller_resend`, :func:`receiver_answers`), and the Python step per
        candidate only copies the answers.
        """
        c = view.cols
        g = view.tcp_groups()
        _sorted, fds, acks, keys = self._candidate_arrays()
        # Only candidates whose flow or receiver sent in this chunk can change.
        here = np.flatnonzero((g.find(fds) >= 0) | (g.find(acks) >= 0))
        if not len(here):
            return
        cands = [(k, self.candidates[k]) for k in keys[here].tolist()]
        seq = np.array([cd.seq for _k, cd in cands], np.int64)
        length = np.array([cd.length for _k, cd in cands], np.int64)
        end = np.array([cd.end for _k, cd in cands], np.int64)
        shrunk = first_smaller_resend(g, c, view.frames, fds[here], seq, length).tolist()
        seen = (g.find(acks[here]) >= 0).tolist()
        acked, reset = (a.tolist() for a in receiver_answers(g, c, view.frames, acks[here], end))
        done = []
        for i, (k, cd) in enumerate(cands):
            if cd.shrunk_frame is None and shrunk[i] >= 0:
                cd.shrunk_frame = shrunk[i]
            if seen[i]:
                cd.receiver_seen = True
                if cd.receiver_reset_frame is None and reset[i] >= 0:
                    cd.receiver_reset_frame = reset[i]
                if cd.acked_frame is None and acked[i] >= 0:
                    cd.acked_frame = acked[i]
            if cd.acked_frame is not None and not cd.recovered_by_shrinking:
                done.append(k)
        for k in done:
            del self.candidates[k]
            self.ordinary += 1
        if done:
            self._arrays = None


def _first(m: int, owner: np.ndarray, hit: np.ndarray, frames: np.ndarray) -> list[int]:
    """For each of ``m`` owners, the frame of its first row where ``hit`` holds, or -1 (rows
    grouped by ``owner`` ascending, each group in frame order)."""
    out = np.full(m, -1, np.int64)
    o = owner[hit]
    if len(o):
        first = np.flatnonzero(np.r_[True, o[1:] != o[:-1]])
        out[o[first]] = frames[hit][first]
    return out.tolist()


def first_smaller_resend(
    g: FlowGroups,
    c: Columns,
    frames: np.ndarray,
    fd: np.ndarray,
    seq: np.ndarray,
    length: np.ndarray,
) -> np.ndarray:
    """For each segment (flow ``fd``, ``seq``, ``length``): the frame of the first packet of
    its flow in the chunk that starts at ``seq`` with a shorter payload, or -1 (the sender
    re-sending the data in smaller segments). Each flow's rows are gathered once and joined
    to its segments by sequence number: a lossy flow has many segments followed at once, and
    gathering the flow's rows for each of them cost their product."""
    out = np.full(len(fd), -1, np.int64)
    flows, of = np.unique(fd, return_inverse=True)
    rows, own = g.members(flows)
    rows, own = rows[c.paylen[rows] > 0], own[c.paylen[rows] > 0]
    if not len(rows):
        return out
    by = (own.astype(np.int64) << 32) | c.seq[rows]
    order = np.argsort(by, kind="stable")  # a flow's rows at one seq stay in frame order
    by, rows = by[order], rows[order]
    want = (of.astype(np.int64) << 32) | seq
    lo = np.searchsorted(by, want, "left")
    n = np.searchsorted(by, want, "right") - lo
    owner = np.repeat(np.arange(len(fd)), n)
    r = rows[np.arange(int(n.sum())) + np.repeat(lo - (np.cumsum(n) - n), n)]
    return np.array(_first(len(fd), owner, c.paylen[r] < length[owner], frames[r]), np.int64)


def receiver_answers(
    g: FlowGroups, c: Columns, frames: np.ndarray, receiver: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each segment whose receiver is the flow ``receiver`` and whose data ends at
    ``end``: the frame of the receiver's first packet in the chunk with the ACK flag and an
    acknowledgment covering ``end`` (RFC 1982 serial order), and of its first reset; -1 for
    none.

    Each receiver's rows are gathered once. Offsets from its first ACK in the chunk turn
    serial order into plain order while every value involved lies within 2^31 of every
    other, and then the first covering row is a binary search in the running maximum of its
    ACKs (the first row that covers ``end`` is where the maximum so far first reaches it).
    A segment whose values do not fit that window is checked row by row."""
    out = np.full(len(receiver), -1, np.int64)
    flows, of = np.unique(receiver, return_inverse=True)
    rows, own = g.members(flows)
    resets = _first(len(flows), own, (c.flags[rows] & dec.TCP_RST) != 0, frames[rows])
    reset = np.array(resets, np.int64)[of]
    has_ack = (c.flags[rows] & dec.TCP_ACK) != 0
    rows, own = rows[has_ack], own[has_ack]
    if not len(rows):
        return out, reset
    starts = np.flatnonzero(np.r_[True, own[1:] != own[:-1]])
    base = np.zeros(len(flows), np.int64)
    base[own[starts]] = c.ack[rows[starts]]
    acks_any = np.zeros(len(flows), bool)
    acks_any[own[starts]] = True
    rel = (c.ack[rows] - base[own] + _HALF) % _MOD  # the offset, + 2^31
    lo, hi = np.zeros(len(flows), np.int64), np.zeros(len(flows), np.int64)
    lo[own[starts]] = np.minimum.reduceat(rel, starts)
    hi[own[starts]] = np.maximum.reduceat(rel, starts)
    at = (end - base[of] + _HALF) % _MOD
    fits = acks_any[of] & (np.maximum(hi[of], at) - np.minimum(lo[of], at) < _HALF)
    running = np.maximum.accumulate((own.astype(np.int64) << 33) | rel)  # flows ascending
    j = np.searchsorted(running, (of[fits].astype(np.int64) << 33) | at[fits], "left")
    jj = np.minimum(j, len(rows) - 1)
    found = (j < len(rows)) & (own[jj] == of[fits])
    out[fits] = np.where(found, frames[rows[jj]], -1)
    wide = np.flatnonzero(~fits & acks_any[of])
    if len(wide):
        back, bown = g.members(receiver[wide])
        covers = ((c.flags[back] & dec.TCP_ACK) != 0) & _serial_ge(c.ack[back], end[wide][bown])
        out[wide] = _first(len(wide), bown, covers, frames[back])
    return out, reset
