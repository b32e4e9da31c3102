"""Rows of a table ordered by a sort key, kept as a few sorted runs (a log-structured merge).

A table that grows by a chunk's rows at a time and is asked "which rows have a key in this
range" every chunk cannot be sorted whole per chunk (a copy of everything per chunk: the
cost per row grows with the table), nor scanned whole per question. Each chunk's rows are
sorted once into a run of their own; runs of like size merge, as the digits of a binary
counter carry, so there are about log2(rows / chunk rows) runs and each row is merged
about as many times. A question is a binary search per run.

The runs hold row numbers of a table their owner keeps, and know nothing of its contents:
rows the owner gives up (acknowledged, aged out) stay in the runs until a merge drops them
(``live``) or the owner renumbers the runs after compacting its table.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class SortedRuns:
    """Row numbers (int32) by a sort key of one dtype, for range and prefix questions."""

    def __init__(self, dtype: type | np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []

    def __len__(self) -> int:
        """Rows held, given-up rows not yet dropped included."""
        return sum(len(k) for k, _r in self._runs)

    def add(self, keys: np.ndarray, rows: np.ndarray, live: np.ndarray) -> None:
        """Hold ``rows`` under ``keys``; ``live``: the owner's mask of rows still wanted, by
        row number (a merge leaves the others out)."""
        if not len(keys):
            return
        order = np.argsort(keys, kind="stable")
        self._runs.append((keys[order].astype(self.dtype), rows[order].astype(np.int32)))
        runs = self._runs
        while len(runs) >= 2 and len(runs[-2][0]) <= 2 * len(runs[-1][0]):
            (k2, r2), (k1, r1) = runs.pop(), runs.pop()
            k, r = np.concatenate([k1, k2]), np.concatenate([r1, r2])
            keep = live[r]
            k, r = k[keep], r[keep]
            order = np.argsort(k, kind="stable")  # two sorted runs: one merge pass
            runs.append((k[order], r[order]))

    def renumber(
        self, new: np.ndarray, key_of: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> None:
        """Rows renumbered by the owner's compaction: ``new[row]`` is a row's new number, -1
        for a row given up (dropped here); ``key_of``: the keys of rows by their new numbers,
        when the keys themselves changed in an order-keeping way. Each run keeps its order:
        no sort."""
        runs = []
        for k, r in self._runs:
            to = new[r]
            keep = to >= 0
            if keep.any():
                to = to[keep].astype(np.int32)
                runs.append((k[keep] if key_of is None else key_of(to).astype(self.dtype), to))
        self._runs = runs

    def between(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """The rows whose key lies in any [lo[i], hi[i]] (inclusive bounds, ranges that do not
        overlap), given-up rows included: the owner filters them."""
        found = []
        for k, r in self._runs:
            a = np.searchsorted(k, lo, "left")
            b = np.searchsorted(k, hi, "right")
            n = np.maximum(b - a, 0)
            total = int(n.sum())
            if total:
                at = np.arange(total) + np.repeat(a - (np.cumsum(n) - n), n)
                found.append(r[at])
        return np.concatenate(found) if found else np.zeros(0, np.int32)

    def pop_below(self, bound: float | int) -> np.ndarray:
        """Remove and return the rows whose key is below ``bound``. A run keeps a view of what
        is left until the part removed outgrows it, then a copy: the memory of removed rows
        is let go, and each row is copied a bounded number of times."""
        found, runs = [], []
        for k, r in self._runs:
            if not k[0] < bound:  # nothing to remove: no search of a long run per question
                runs.append((k, r))
                continue
            j = int(np.searchsorted(k, bound, "left"))
            if j:
                found.append(r[:j])
                k, r = (k[j:].copy(), r[j:].copy()) if j >= len(k) - j else (k[j:], r[j:])
            if len(k):
                runs.append((k, r))
        self._runs = runs
        return np.concatenate(found) if found else np.zeros(0, np.int32)
