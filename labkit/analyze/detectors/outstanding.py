"""Large TCP segments sent and not yet acknowledged (their first copies): the retransmission
detector's carry from chunk to chunk.

A two-sided capture acknowledges nearly every segment within its own chunk, so the carry is
small; a one-sided capture (the ACKs' direction not captured) acknowledges none, and the
carry holds every large segment of the last 900 s of capture time, up to the flow budget.
Every question a chunk asks of it therefore costs what the chunk brings, never a pass over
the carry:

- a later copy of a segment finds its first copy by the segment's key (a hash index of the
  latest row per key, :class:`~labkit.analyze.engine.LatestIndex`);
- a receiver's cumulative ACK finds the segments it covers by (receiver, end): sorted runs of
  ``receiver << 32 | end`` (:class:`~labkit.analyze.runs.SortedRuns`), asked only for the
  sequence range the ACK newly covers (the range an earlier ACK covered was removed then);
- aging finds the segments older than a bound in sorted runs of their times;
- whether the receiver was seen since a segment's chunk is one number per receiver (the last
  chunk it was seen in), compared with the segment's chunk when a segment is retransmitted.

Rows given up (acknowledged, aged, trimmed) are marked, not moved; the table is compacted
and its indexes renumbered once the given-up rows reach a quarter of the kept ones, so the
memory of the carry follows what it holds (at the flow budget's ceiling, at most a quarter
more rows than the ceiling), and a compaction costs a pass, never a sort.
"""

from __future__ import annotations

import numpy as np

from labkit.analyze.engine import Appended, FlowBudget, KeyIndex, LatestIndex, grown
from labkit.analyze.runs import SortedRuns

_MOD = 1 << 32
_HALF = 1 << 31
_GROUP_BITS = np.uint64(20)  # a chunk's flow groups key flows by their hash's top 44 bits
_MIN_COMPACT = 4096  # given-up rows below which compacting is not worth a rebuild


class Outstanding:
    """The carry: one row per outstanding segment, in the order the segments were first sent.

    ``key``: (flow, seq, length) hashed; ``end``: the segment's last sequence number + 1,
    mod 2^32; ``size``: its IP size; ``rid``: its receiver (the flow direction whose ACKs
    acknowledge it); ``chunk``: the chunk it was first sent in."""

    def __init__(self) -> None:
        self.rows = Appended(
            key=np.uint64,
            end=np.uint32,
            frame=np.int64,
            ts=np.float64,
            size=np.int32,
            rid=np.int32,
            chunk=np.int32,
            live=bool,
            judged=bool,  # dropped as a candidate at the ceiling: later copies are not followed
        )
        self.live = 0  # rows kept
        self._latest = LatestIndex()
        self._by_end = SortedRuns(np.uint64)  # receiver << 32 | end
        self._by_time = SortedRuns(np.float64)
        self._receivers = KeyIndex()  # receiver flow hash, top 44 bits -> rid
        self._sender = np.zeros(0, np.uint64)  # per rid: the sender's directed flow hash
        self._last_seen = np.zeros(0, np.int64)  # per rid: last chunk it sent a packet in
        self._acked = np.zeros(0, np.int64)  # per rid: last ACK applied (-1: none yet)
        self._late = np.zeros(0, bool)  # per rid: a row behind that ACK joined since

    def __getitem__(self, name: str) -> np.ndarray:
        return self.rows[name]

    def sender(self, rows: np.ndarray) -> np.ndarray:
        """The sender's directed flow hash of each row."""
        return self._sender[self.rows["rid"][rows]]

    def seen(self, rows: np.ndarray) -> np.ndarray:
        """Whether each row's receiver sent anything from the row's chunk on."""
        return self._last_seen[self.rows["rid"][rows]] >= self.rows["chunk"][rows]

    def find(self, keys: np.ndarray) -> np.ndarray:
        """The kept row of each segment key, or -1."""
        if not self.live:
            return np.full(len(keys), -1, np.int64)
        rows = self._latest.find(self.rows["key"], keys)
        ok = rows >= 0
        ok[ok] = self.rows["live"][rows[ok]]
        return np.where(ok, rows, -1)

    def judge(self, rows: np.ndarray) -> None:
        """Mark ``rows`` judged early (their segments are no longer followed)."""
        self.rows["judged"][rows] = True

    def receivers(self, groups: np.ndarray, chunk: int) -> np.ndarray:
        """Each of a chunk's flow groups (top-44-bit flow hashes) as a receiver of the carry
        (rid, -1: none), each recorded as seen in ``chunk``."""
        rid = self._receivers.find(groups)
        self._last_seen[rid[rid >= 0]] = chunk
        return rid

    def acknowledge(self, rid: np.ndarray, ack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Give up the rows that receiver ``rid[i]``'s cumulative ACK ``ack[i]`` covers (RFC
        1982: an end at most 2^31 - 1 behind the ACK). Returns their senders and IP sizes.

        No kept row of a receiver lies in the range its last applied ACK covered (those were
        given up then), so an ACK ahead of it asks only for the range beyond it, and an equal
        one for nothing. The whole range is asked for when that does not hold: the first ACK,
        one behind the last (reordering, a new connection on the same ports), or after data
        captured behind the last ACK joined the carry (:meth:`add`)."""
        prev = self._acked[rid]
        d = (ack - prev) % _MOD
        whole = (prev < 0) | (d >= _HALF) | self._late[rid]
        ask = whole | (d > 0)
        rid, ack, prev, whole = rid[ask], ack[ask], prev[ask], whole[ask]
        self._acked[rid] = ack
        self._late[rid] = False
        lo = np.where(whole, ack - _HALF + 1, prev + 1) % _MOD
        wraps = lo > ack
        # A range that wraps past 2^32 - 1 is two: [lo, 2^32 - 1] and [0, ack].
        base = rid.astype(np.uint64) << np.uint64(32)
        hi = np.where(wraps, _MOD - 1, ack).astype(np.uint64)
        rows = self._by_end.between(
            np.concatenate([base | lo.astype(np.uint64), base[wraps]]),
            np.concatenate([base | hi, base[wraps] | ack[wraps].astype(np.uint64)]),
        )
        rows = rows[self.rows["live"][rows]]
        sender, size = self.sender(rows), self.rows["size"][rows]
        self._give_up(rows)
        return sender, size

    def add(
        self,
        key: np.ndarray,
        sender: np.ndarray,
        receiver: np.ndarray,
        end: np.ndarray,
        frame: np.ndarray,
        ts: np.ndarray,
        size: np.ndarray,
        chunk: int,
        receiver_seen: np.ndarray,
    ) -> None:
        """New first copies (keys the carry does not hold), in frame order."""
        if not len(key):
            return
        rx = self._receivers
        before = rx.n
        rid = rx.insert(receiver >> _GROUP_BITS)
        if rx.n > before:
            self._sender = grown(self._sender, rx.n)
            self._last_seen = grown(self._last_seen, rx.n)
            self._acked = grown(self._acked, rx.n)
            self._late = grown(self._late, rx.n)
            new = rid >= before
            first = np.unique(rid[new], return_index=True)[1]
            self._sender[rid[new][first]] = sender[new][first]
            self._last_seen[before : rx.n] = -1
            self._acked[before : rx.n] = -1
        self._last_seen[rid[receiver_seen]] = chunk
        prev = self._acked[rid]
        self._late[rid[(prev >= 0) & (((prev - end) % _MOD) < _HALF)]] = True
        start = self.rows.n
        self.rows.append(
            key=key,
            end=end,
            frame=frame,
            ts=ts,
            size=size,
            rid=rid,
            chunk=np.full(len(key), chunk, np.int32),
            live=np.ones(len(key), bool),
            judged=np.zeros(len(key), bool),
        )
        self.live += len(key)
        self._index(np.arange(start, self.rows.n))

    def age(self, bound: float) -> int:
        """Give up the rows sent before ``bound`` (capture time; a row without a time at the
        first chance); returns how many."""
        rows = self._by_time.pop_below(bound)
        rows = rows[self.rows["live"][rows]]
        self._give_up(rows)
        return len(rows)

    def trim(self, budget: FlowBudget, table: str) -> int:
        """Past the budget's ceiling, give up the rows :meth:`FlowBudget.trim` drops (the
        oldest sent); returns how many."""
        if self.live <= budget.ceiling():
            return 0
        live = np.flatnonzero(self.rows["live"])
        keep = budget.trim(table, self.rows["frame"][live])
        if keep is None:
            return 0
        drop = np.ones(len(live), bool)
        drop[keep] = False
        self._give_up(live[drop])
        return len(live) - len(keep)

    def _give_up(self, rows: np.ndarray) -> None:
        if not len(rows):
            return
        self.rows["live"][rows] = False
        self.live -= len(rows)
        dead = self.rows.n - self.live
        if dead >= _MIN_COMPACT and 4 * dead > self.live:
            self._compact()

    def _compact(self) -> None:
        """Keep the kept rows only, renumbered, their receivers renumbered, the runs
        renumbered in place (no sort) and the key index rebuilt: linear in the table."""
        live = self.rows["live"]
        keep = np.flatnonzero(live)
        new = np.where(live, np.cumsum(live) - 1, -1)
        self.rows.keep(keep)
        rid = self.rows["rid"]
        used, new_rid = np.unique(rid, return_inverse=True)
        rid[:] = new_rid  # in the order of the old numbers: the runs by end stay sorted
        self._by_end.renumber(new, self._end_key)
        self._by_time.renumber(new)
        keys = self._receivers.keys[used]
        self._receivers = KeyIndex()
        self._receivers.insert(keys)  # distinct, ascending rid: they keep their order
        self._sender = self._sender[used].copy()
        self._last_seen = self._last_seen[used].copy()
        self._acked = self._acked[used].copy()
        self._late = self._late[used].copy()
        self._latest = LatestIndex()
        self._latest.update(self.rows["key"], np.arange(self.rows.n))

    def _end_key(self, rows: np.ndarray) -> np.ndarray:
        """Rows' keys in the runs by end: receiver << 32 | end."""
        r = self.rows
        return (r["rid"][rows].astype(np.uint64) << np.uint64(32)) | r["end"][rows].astype(
            np.uint64
        )

    def _index(self, rows: np.ndarray) -> None:
        if not len(rows):
            return
        r = self.rows
        live = r["live"]
        self._latest.update(r["key"], rows)
        self._by_end.add(self._end_key(rows), rows, live)
        ts = r["ts"][rows]
        self._by_time.add(np.where(np.isnan(ts), -np.inf, ts), rows, live)
