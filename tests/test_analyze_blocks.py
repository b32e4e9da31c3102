"""The case stage's whole-table helpers give what their one-shot forms give: hashing in place
(:func:`~labkit.analyze.decode.mix64`) and membership a block at a time
(:func:`~labkit.analyze.engine.member`), across block edges and for every input shape."""

from __future__ import annotations

import numpy as np

from labkit.analyze import decode as dec
from labkit.analyze.engine import BLOCK, Appended, FlowBudget, member, position


def test_mix64_in_place_matches_the_integer_form() -> None:
    rng = np.random.default_rng(7)
    col = rng.integers(0, 2**63, 5000, dtype=np.uint64) | np.uint64(1 << 63)
    want = [dec.mix64_int(v) for v in col.tolist()]
    assert dec.mix64(col).tolist() == want
    assert dec.mix64(col[::3]).tolist() == want[::3]  # a strided view
    before = col.copy()
    dec.mix64(col)
    assert (col == before).all()  # the input is left as it was
    one = dec.mix64(col[0])
    assert isinstance(one, np.uint64) and int(one) == want[0]
    assert dec.mix64(np.zeros(0, np.uint64)).tolist() == []


def test_member_across_block_edges_matches_isin() -> None:
    rng = np.random.default_rng(11)
    values = rng.integers(0, 5000, 2 * BLOCK + 123).astype(np.uint64)
    pool = np.sort(rng.integers(0, 5000, 300).astype(np.uint64))  # with repeats
    got = member(values, pool)
    assert got.dtype == bool and len(got) == len(values)
    assert (got == np.isin(values, pool)).all()
    assert got.any() and not got.all()
    assert not member(values, np.zeros(0, np.uint64)).any()
    assert member(values[:0], pool).tolist() == []


def test_member_of_hashes_matches_isin_with_and_without_the_low_bits_table() -> None:
    """Hashes go through a table of the keys' low bits first (up to 2^15 keys): values that
    share a key's low bits but are no key (the table's false positives) must still be told
    apart, on both sides of the size where the table is left out."""
    rng = np.random.default_rng(13)
    for n_keys in (1, 300, 1 << 15, (1 << 15) + 1):
        keys = np.unique(rng.integers(0, 2**64, n_keys, dtype=np.uint64))
        near = keys[rng.integers(0, len(keys), 5000)] ^ np.uint64(1 << 40)  # same low bits
        values = np.concatenate(
            [
                keys[rng.integers(0, len(keys), 5000)],
                near,
                rng.integers(0, 2**64, 5000, dtype=np.uint64),
            ]
        )
        rng.shuffle(values)
        got = member(values, keys)
        assert (got == np.isin(values, keys)).all(), n_keys
        assert got.sum() >= 5000 and not member(near, keys).any()


def test_position_of_hashes_finds_each_key_with_and_without_the_low_bits_table() -> None:
    """position() takes member()'s look at the low bits too: each value's index in the keys,
    -1 for a value that is no key, also for one that shares a key's low bits."""
    rng = np.random.default_rng(17)
    for n_keys in (1, 300, 1 << 15, (1 << 15) + 1):
        keys = np.unique(rng.integers(0, 2**64, n_keys, dtype=np.uint64))
        at = rng.integers(0, len(keys), 5000)
        near = keys[rng.integers(0, len(keys), 5000)] ^ np.uint64(1 << 40)  # same low bits
        values = np.concatenate([keys[at], near, rng.integers(0, 2**64, 5000, dtype=np.uint64)])
        got = position(keys, values)
        want = np.full(len(values), -1)
        want[:5000] = at
        assert got.tolist() == want.tolist(), n_keys
        assert position(keys, values[:10]).tolist() == at[:10].tolist()  # too few for a table


def test_appended_keeps_rows_in_place_as_a_gather_would() -> None:
    """A table trimmed at the flow ceiling keeps exactly the chosen rows, in order, whatever
    rows go (the first, the last, every other one, all, none)."""
    rng = np.random.default_rng(5)
    n = 1000
    ids, ts = rng.integers(0, 2**40, n), rng.random(n)
    for keep in (
        np.arange(1, n),
        np.arange(n - 1),
        np.arange(0, n, 2),
        np.arange(n),
        np.zeros(0, np.int64),
        np.sort(rng.choice(n, 300, replace=False)),
    ):
        t = Appended(id=np.int64, ts=np.float64)
        t.append(id=ids[:600], ts=ts[:600])
        t.append(id=ids[600:], ts=ts[600:])
        t.keep(keep)
        assert t["id"].tolist() == ids[keep].tolist() and t["ts"].tolist() == ts[keep].tolist()
        t.append(id=ids[:3], ts=ts[:3])  # appending goes on after the kept rows
        assert t["id"].tolist() == ids[keep].tolist() + ids[:3].tolist()


def test_a_trim_keeps_the_latest_rows_and_the_later_of_tied_ones() -> None:
    """Past the ceiling a table keeps nine tenths of it: the rows seen latest, and where the
    cut falls among rows seen at the same moment, the later rows; in row order, counted."""
    rng = np.random.default_rng(3)
    budget = FlowBudget(1000)
    assert budget.trim("t", rng.random(1000)) is None  # within the ceiling
    for recency in (
        rng.permutation(5000).astype(np.float64),  # distinct
        rng.integers(0, 40, 5000).astype(np.float64),  # ~125 rows at each moment
        np.zeros(5000),  # all at once
    ):
        keep = budget.trim("t", recency)
        assert keep is not None and len(keep) == 900 and (np.diff(keep) > 0).all()
        gone = np.setdiff1d(np.arange(5000), keep)
        assert recency[keep].min() >= recency[gone].max()
        tied = recency == recency[keep].min()
        assert (keep[tied[keep]].min() > gone[tied[gone]]).all()  # the later of tied rows
    assert budget.evicted["t"] == 3 * 4100
