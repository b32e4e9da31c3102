"""The compiled record walk (``_walk.c``), column decode and rare-packet summaries
(``_columns.c``) and key tally (``_tally.c``) against their Python twins
(:mod:`labkit.pcapio.walk`, :func:`labkit.analyze.decode.py_columns` and
:func:`labkit.analyze.decode.decode`, :func:`labkit.analyze.engine.py_tally`) on the same
bytes.

The Python versions are the reference and run wherever no C compiler was there at install
time; the compiled ones are what the analyzer's speed rests on (issue 8). Equality is required
field by field (and dtype by dtype) on every capture the suite ships, on link-layer rewrites,
both byte orders, and on generated hostile packets and buffers.
"""

from __future__ import annotations

import random
import shutil
import socket
import struct
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.analyze import decode as dec
from labkit.analyze import duplicates, engine
from labkit.analyze.detectors import dtlspairs
from labkit.pcapio import walk
from labkit.pcapio.reader import MAX_ROWS, open_capture, py_rows_at, rows_at
from tests.fuzz.packet import PACKET_MUTATIONS
from tests.fuzz.packet import locate as fuzz_locate
from tests.helpers.capfiles import Rec, epb, idb, pcap_bytes, pppoe, read_pcap, relink, shb, vlan
from tests.helpers.paths import PUBLIC, ROOT
from tests.helpers.strategies import PROPS, packets

NATIVE = walk.COMPILED and dec._columns is not None
needs_native = pytest.mark.skipif(not NATIVE, reason="installed without a C compiler")

CAPTURES = sorted(
    [
        *ROOT.glob("pcaps/**/*.pcap"),
        *ROOT.glob("pcaps/**/*.pcapng"),
        *PUBLIC.glob("*.pcap"),
        *PUBLIC.glob("*.pcapng"),
    ]
)


def test_extensions_are_built_where_there_is_a_compiler() -> None:
    """pip builds the extensions when it can (they are optional in pyproject.toml): on a
    machine with a C compiler, a pure-Python analyzer means the build configuration broke."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc})")
    where = Path(walk.__file__).parent
    hint = f"no built extension next to {where}: 'pip install -e .' builds them in place"
    assert walk.COMPILED, "labkit.pcapio._walk: " + hint
    assert dec._columns is not None, "labkit.analyze._columns: " + hint
    assert engine._tally is not None, "labkit.analyze._tally: " + hint
    assert duplicates._dupmask is not None, "labkit.analyze._dupmask: " + hint
    assert dtlspairs._dtlswalk is not None, "labkit.analyze._dtlswalk: " + hint


@needs_native
@given(
    st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=40),
    st.lists(st.integers(0, 39), max_size=3000),
)
@PROPS
def test_compiled_tally_equals_numpy_tally(pool: list[int], picks: list[int]) -> None:
    """Any keys (0, 2^64 - 1, unmixed small ones, every row one key or every row its own):
    the same distinct keys in order, the same first rows, the same counts."""
    keys = np.array([pool[i % len(pool)] for i in picks] or pool, np.uint64)
    for a, b in zip(engine.tally(keys), engine.py_tally(keys)):
        assert a.dtype == b.dtype and np.array_equal(a, b)


@needs_native
@given(
    st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=40),
    st.lists(st.integers(0, 39), max_size=3000),
)
@PROPS
def test_compiled_repeats_equal_numpy_repeats(pool: list[int], picks: list[int]) -> None:
    """Any keys: the same set of keys that occur more than once, each named once."""
    keys = np.array([pool[i % len(pool)] for i in picks] or pool, np.uint64)
    got = engine.repeated(keys)
    assert len(set(got.tolist())) == len(got)
    assert sorted(got.tolist()) == engine.py_repeated(keys).tolist()


@needs_native
@given(
    st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=40),
    st.lists(st.tuples(st.integers(0, 39), st.floats(allow_nan=True)), max_size=3000),
    st.sampled_from([np.uint64, np.int64]),
)
@PROPS
def test_compiled_largest_equals_numpy_largest(
    pool: list[int], picks: list[tuple[int, float]], key_type: type
) -> None:
    """Any keys, and any values (infinities, NaN: numpy's maximum keeps a NaN once met):
    the same distinct keys in order, each with the same largest value; integer values
    (sizes) come back as the integers they were."""
    keys = np.array([pool[i % len(pool)] for i, _ in picks] or pool, np.uint64).astype(key_type)
    values = np.array([v for _, v in picks] or [0.0] * len(pool))
    for vals in (values, np.nan_to_num(values).clip(-(2**53), 2**53).astype(np.int64)):
        (k1, v1), (k2, v2) = engine.largest(keys, vals), engine.py_largest(keys, vals)
        assert k1.dtype == k2.dtype and np.array_equal(k1, k2)
        assert v1.dtype == v2.dtype and np.array_equal(v1, v2, equal_nan=True)


@needs_native
@given(
    st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=300, unique=True),
    st.lists(st.lists(st.integers(0, 299), max_size=200), max_size=12),
)
@PROPS
def test_compiled_key_index_equals_sorted_index(pool: list[int], batches: list[list[int]]) -> None:
    """Batches of keys (repeats within and across batches, 0 and 2^64 - 1, enough new ones
    to enlarge the slots several times): every key gets the same row from the hash table as
    from the sorted twin, a new key the next row in the order its batch first holds it, and
    each row keeps its key."""
    fast, ref = engine.KeyIndex(), engine.KeyIndex(compiled=False)
    assert fast._compiled and not ref._compiled
    seen: dict[int, int] = {}
    for batch in batches:
        keys = np.array([pool[i % len(pool)] for i in batch], np.uint64)
        before = np.array([seen.get(int(k), -1) for k in keys], np.int64)
        assert np.array_equal(fast.find(keys), before)
        assert np.array_equal(ref.find(keys), before)
        for k in keys.tolist():
            seen.setdefault(k, len(seen))
        want = np.array([seen[int(k)] for k in keys], np.int64)
        assert np.array_equal(fast.insert(keys), want)
        assert np.array_equal(ref.insert(keys), want)
        assert fast.n == ref.n == len(seen)
        assert np.array_equal(fast.keys, ref.keys)
        assert fast.keys.tolist() == list(seen)


@needs_native
@given(st.lists(st.lists(st.integers(0, 49), max_size=150), max_size=10))
@PROPS
def test_compiled_latest_index_equals_sorted_index(batches: list[list[int]]) -> None:
    """Rows sharing keys, added batch by batch (enough to enlarge the slots): the compiled
    and the sorted index both give each key its latest row, and a key never added none."""
    fast, ref = engine.LatestIndex(), engine.LatestIndex(compiled=False)
    assert fast._compiled and not ref._compiled
    column = np.zeros(0, np.uint64)
    latest: dict[int, int] = {}
    pool = np.array([0, 2**64 - 1, *range(1, 49)], np.uint64)
    for batch in batches:
        rows = np.arange(len(column), len(column) + len(batch))
        column = np.concatenate([column, pool[np.array(batch, np.int64)]])
        for r in rows.tolist():
            latest[int(column[r])] = r
        for index in (fast, ref):
            index.update(column, rows)
            assert index.n == len(latest)
            assert index.rows().tolist() == sorted(latest.values())
            assert index.find(column, pool).tolist() == [latest.get(int(k), -1) for k in pool]


@given(
    st.lists(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 9)), max_size=60), max_size=8)
)
@PROPS
def test_key_table_counts_and_first_attributes(chunks: list[list[tuple[int, int]]]) -> None:
    """A table fed chunk by chunk: per key its count, the attribute of its first row, and an
    id in the order keys first appeared (a chunk's new keys in key order), as a dict says."""
    table = engine.KeyTable(attr=np.int16)
    ids: dict[int, int] = {}
    count: dict[int, int] = {}
    attr: dict[int, int] = {}
    for chunk in chunks:
        if not chunk:
            continue
        keys = np.array([k for k, _ in chunk], np.uint64)
        new = sorted({k for k, _ in chunk} - set(ids))
        assert table.add(keys, attr=np.array([a for _, a in chunk])) == len(new)
        for k in new:
            ids[k] = len(ids)
        for k, a in chunk:
            count[k] = count.get(k, 0) + 1
            attr.setdefault(k, a)
    order = sorted(ids, key=ids.get)
    assert table.keys.tolist() == order
    assert table.count.tolist() == [count[k] for k in order]
    assert table["attr"].tolist() == [attr[k] for k in order]
    assert table["attr"].dtype == np.int16
    if order:
        assert table.ids_of(np.array(order[::-1], np.uint64)).tolist() == [
            ids[k] for k in order[::-1]
        ]


def test_key_table_widens_a_narrow_column_past_its_range() -> None:
    """A 32-bit frame column keeps frame numbers up to 2^32 - 1 as they are and, given one
    past it, becomes int64 holding every number exactly (never a number wrapped)."""
    table = engine.KeyTable(frame=np.uint32)
    top = 2**32 - 1
    table.add(np.array([1, 2], np.uint64), frame=np.array([7, top], np.int64))
    assert table["frame"].dtype == np.uint32
    table.add(np.array([3, 1], np.uint64), frame=np.array([top + 5, 9], np.int64))
    assert table["frame"].dtype == np.int64
    assert table["frame"].tolist() == [7, top, top + 5]
    assert table.count.tolist() == [2, 1, 1]


def test_widened_keeps_a_column_whose_values_fit() -> None:
    """A count column past 2^32 - 1 (billions of packets of one key) widens, negative values
    too; values that fit, or a 64-bit column, are left as they are (no copy)."""
    col = np.zeros(4, np.uint32)
    assert engine.widened(col, np.array([0, 2**32 - 1])) is col
    assert engine.widened(col, np.array([2**32])).dtype == np.int64
    assert engine.widened(col, np.array([-1])).dtype == np.int64
    wide = np.zeros(4, np.uint64)
    assert engine.widened(wide, np.array([2**40], np.uint64)) is wide


def assert_same_columns(chunk) -> None:
    fast, ref = dec.columns(chunk), dec.py_columns(chunk)
    for name in dec.COLUMN_NAMES:
        a, b = getattr(fast, name), getattr(ref, name)
        assert a.dtype == b.dtype, (name, a.dtype, b.dtype)
        bad = np.flatnonzero(a != b)
        assert not len(bad), (name, f"frame {chunk.frame0 + int(bad[0])}", a[bad[:3]], b[bad[:3]])


def shape(v: object) -> object:
    """A summary as nested (type name, value) pairs: NamedTuple == a plain tuple, True == 1 and
    NaN != NaN, so == alone would miss a wrong type and fail on a capture without times."""
    if isinstance(v, tuple):
        return type(v).__name__, tuple(shape(x) for x in v)
    return type(v).__name__, repr(v) if isinstance(v, float) else v


def assert_same_summaries(chunk) -> None:
    """Every row, rare or not: the compiled summary is what :func:`decode` gives the same
    captured bytes and the same innermost IP header."""
    cols = dec.columns(chunk)
    fast = dec.decode_rows(cols, np.arange(len(chunk)))
    assert len(fast) == len(chunk)
    for i, got in enumerate(fast):
        where = (int(cols.l3[i] - chunk.data[i]), int(cols.ipver[i]))
        frame, ts, orig = chunk.frame0 + i, float(chunk.ts[i]), int(chunk.origlen[i])
        want = dec.decode(chunk.packet(i), int(chunk.linktype[i]), frame, ts, orig, where)
        assert shape(got) == shape(want), (f"frame {frame}", got, want)


def all_chunks_same(path: Path) -> int:
    n = 0
    with open_capture(path) as cap:
        for chunk in cap.chunks():
            assert_same_columns(chunk)
            assert_same_summaries(chunk)
            n += len(chunk)
    return n


@needs_native
def test_the_suite_has_captures_to_compare() -> None:
    assert len(CAPTURES) >= 15, CAPTURES


@needs_native
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_compiled_columns_equal_numpy_columns_on_shipped_captures(path: Path) -> None:
    assert all_chunks_same(path) > 0


@needs_native
def test_compiled_columns_on_every_link_layer_and_tagging(tmp_path: Path) -> None:
    """One real capture's frames re-linked as NULL, LOOP, RAW, SLL, SLL2, and re-tagged with
    one and two VLAN tags and PPPoE: the link-layer branches of both decoders."""
    linktype, recs = read_pcap(PUBLIC / "tcp-mss-fast-retransmit.pcap")
    assert linktype == 1
    for lt in (0, 12, 14, 101, 108, 113, 276):
        p = tmp_path / f"lt{lt}.pcap"
        p.write_bytes(pcap_bytes(lt, [Rec(r.ts, relink(r.data, lt)) for r in recs]))
        assert all_chunks_same(p) == len(recs)
    for name, f in (
        ("q", lambda d: vlan(d, [(0x8100, 7)])),
        ("qinq", lambda d: vlan(d, [(0x88A8, 7), (0x8100, 9)])),
        ("pppoe", pppoe),
    ):
        p = tmp_path / f"{name}.pcap"
        p.write_bytes(pcap_bytes(1, [Rec(r.ts, f(r.data)) for r in recs]))
        assert all_chunks_same(p) == len(recs)


@needs_native
@PROPS
@given(st.lists(packets(), min_size=1, max_size=30))
def test_compiled_columns_equal_numpy_columns_on_hostile_packets(tmp_path_factory, pkts) -> None:
    """Random link types, IPv4 header lengths and fragments, IPv6 extension chains and
    payload lengths, cut anywhere: the branches real captures rarely reach."""
    lts = sorted({lt for lt, _ in pkts})
    blob = (
        shb("<")
        + b"".join(idb("<", lt) for lt in lts)
        + b"".join(epb("<", Rec(1.0, data, iface=lts.index(lt))) for lt, data in pkts)
    )
    path = tmp_path_factory.mktemp("native") / "h.pcapng"
    path.write_bytes(blob)
    assert all_chunks_same(path) == len(pkts)


# --- the rare packets' summaries ---------------------------------------------------------------

ALL_CAPTURES = sorted(
    {
        *CAPTURES,
        *(p for p in ROOT.glob("tests/data/**/*") if p.suffix in (".pcap", ".pcapng")),
        *ROOT.glob("tests/regressions/*.pcap"),
    }
)


@needs_native
@pytest.mark.parametrize("path", ALL_CAPTURES, ids=lambda p: str(p.relative_to(ROOT)))
def test_compiled_summaries_equal_decode_on_every_capture(path: Path) -> None:
    """Every frame of every capture the suite has (encapsulations, ICMP quotes inside tunnels,
    DTLS 0x0100, IPv6 Packet Too Big), compared whether or not the analyzer would pick it."""
    assert all_chunks_same(path) > 0


@needs_native
@pytest.mark.parametrize("mutation", sorted(PACKET_MUTATIONS))
def test_compiled_summaries_equal_decode_on_mutated_headers(tmp_path: Path, mutation) -> None:
    """The fuzz campaign's packet mutations (IP lengths, header lengths, TCP offsets and hellos,
    DTLS record chains running past the datagram, short ICMP quotes, snaps, garbage) applied
    to every IP frame of the Ethernet captures, 8 times each with fixed seeds."""
    rng = random.Random(mutation)
    recs = []
    for path in [*PUBLIC.glob("*.pcap"), *ROOT.glob("tests/regressions/*.pcap")]:
        linktype, frames = read_pcap(path)
        for r in frames:
            lay = fuzz_locate(r.data, linktype) if linktype == 1 else None
            if lay is not None:
                recs += [Rec(r.ts, PACKET_MUTATIONS[mutation](rng, r.data, lay)) for _ in range(8)]
    assert len(recs) > 1000
    p = tmp_path / f"{mutation}.pcap"
    p.write_bytes(pcap_bytes(1, recs))
    assert all_chunks_same(p) == len(recs)


@needs_native
def test_compiled_summaries_equal_decode_on_the_worst_mix(tmp_path: Path) -> None:
    """The benchmark's mix of nothing but packets decoded one by one: ICMP errors, DTLS
    handshakes, SYNs with odd options."""
    path = tmp_path / "worst.pcap"
    cmd = [sys.executable, "-m", "benchmarks.generate", "-o", str(path), "--mix", "worst"]
    subprocess.run([*cmd, "--packets", "20000"], cwd=ROOT, check=True, timeout=120)
    assert all_chunks_same(path) == 20000


def _summary_of_ipv6(addr: bytes):
    """The compiled summary of one raw IPv6 UDP packet from ``addr`` to ``addr``."""
    pkt = struct.pack("!IHBB", 0x60000000, 8, 17, 64) + addr + addr + bytes(8)
    buf = np.frombuffer(pkt + bytes(64), np.uint8)

    def col(v, t=np.int64):
        return np.array([v], t)

    one = (col(0), col(len(pkt)), col(101, np.int32), col(1), col(0.0, np.float64))
    return dec._columns.summarise(buf, *one, col(len(pkt)), col(0), col(6))[0]


@needs_native
def test_compiled_ipv6_text_is_inet_ntop() -> None:
    """RFC 5952 as the C library writes it: every pattern of zero and non-zero words (the
    longest, then first, run of zeros shortened), IPv4-mapped and -compatible tails."""
    rng = random.Random(5952)
    addrs = []
    for mask in range(256):
        for _ in range(6):
            words = [
                rng.choice((1, 0xF, 0x10, 0xABC, 0xFFFF, rng.randrange(1, 1 << 16)))
                if mask >> i & 1
                else 0
                for i in range(8)
            ]
            addrs.append(struct.pack("!8H", *words))
    for head in (
        bytes(10) + b"\xff\xff",
        bytes(12),
        bytes(10) + b"\x00\x01",
        bytes(8) + b"\xff\xff\0\0",
    ):
        for tail in (bytes(4), b"\0\0\0\1", b"\0\1\0\0", b"\x01\x02\x03\x04", b"\xff" * 4):
            addrs.append(head + tail)
    for a in addrs:
        got = _summary_of_ipv6(a)
        assert got.src == got.dst == socket.inet_ntop(socket.AF_INET6, a), a.hex()


# --- the record walk ----------------------------------------------------------------------


def both_walks(kind: str, buf: bytes, cap: int, pos: int, have: int, *args) -> tuple:
    """Run the compiled and the Python walk on the same bytes (a slack tail, as the reader's)."""
    results = []
    for fn in (walk.pcap, walk.py_pcap) if kind == "pcap" else (walk.pcapng, walk.py_pcapng):
        b = bytearray(buf) + bytes(256)
        out = np.full(cap, -7, np.int64)
        n, end = fn(b, out, pos, have, *args)
        results.append((n, end, out[:n].tolist()))
    return tuple(results)


@needs_native
@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: str(p.relative_to(p.parents[1])))
@pytest.mark.parametrize("cap", [3, MAX_ROWS])
def test_compiled_walk_equals_python_walk_on_shipped_captures(path: Path, cap: int) -> None:
    raw = path.read_bytes()
    if raw[:4] == b"\x0a\x0d\x0d\x0a":
        fast, ref = both_walks("pcapng", raw, cap, 0, len(raw), False)
    else:
        swapped = walk.swapped(
            "<" if raw[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        )
        fast, ref = both_walks("pcap", raw, cap, 24, len(raw), 16, swapped)
    assert fast == ref
    assert fast[0] == min(cap, fast[0]) and fast[0] > 0


@needs_native
def test_compiled_walk_in_the_other_byte_order(tmp_path: Path) -> None:
    _lt, recs = read_pcap(PUBLIC / "tcp-mss-fast-retransmit.pcap")
    for order in "<>":
        raw = pcap_bytes(1, recs, order=order)
        fast, ref = both_walks("pcap", raw, MAX_ROWS, 24, len(raw), 16, walk.swapped(order))
        assert fast == ref and fast[0] == len(recs) and fast[1] == len(raw)
        ng = shb(order) + idb(order, 1) + b"".join(epb(order, r) for r in recs)
        fast, ref = both_walks("pcapng", ng, MAX_ROWS, 0, len(ng), walk.swapped(order))
        assert fast == ref and fast[0] == len(recs) + 2 and fast[1] == len(ng)


@needs_native
@PROPS
@given(
    st.lists(st.integers(0, 90), max_size=40),
    st.binary(max_size=300),
    st.integers(0, 40),
    st.integers(0, 400),
    st.sampled_from([16, 24]),
    st.booleans(),
    st.integers(1, 40),
)
def test_compiled_walk_equals_python_walk_on_any_bytes(
    lengths, tail, pos, cut, rec_len, swapped, cap
) -> None:
    """A chain of records whose lengths are drawn (0, below 12, not a multiple of 4, running
    past the end), then garbage, cut anywhere: both walks stop at the same record with the
    same offsets, in both byte orders."""
    order = (">" if walk._NATIVE == "<" else "<") if swapped else walk._NATIVE
    buf = bytearray(pos)
    for n in lengths:  # each value is a pcap caplen and, at +4, a pcapng block length
        rec = bytearray(max(n, rec_len))
        struct.pack_into(order + "I", rec, 4, n)
        struct.pack_into(order + "I", rec, 8, max(0, n - rec_len))
        buf += rec
    buf += tail
    have = max(pos, len(buf) - cut)
    a = both_walks("pcap", bytes(buf), cap, pos, have, rec_len, swapped)
    b = both_walks("pcapng", bytes(buf), cap, pos, have, swapped)
    assert a[0] == a[1] and b[0] == b[1]
    for n, end, offs in (a[0], b[0]):
        assert n <= cap and pos <= end <= have and offs == sorted(offs)


def test_pcapng_walk_stops_at_a_length_not_a_multiple_of_4() -> None:
    buf = bytearray(64)
    for off, blen in ((0, 16), (16, 12), (28, 18)):
        struct.pack_into("=I", buf, off + 4, blen)
    for fn in {walk.pcapng, walk.py_pcapng}:
        out = np.zeros(8, np.int64)
        assert fn(buf + bytes(256), out, 0, 64, False) == (2, 28)
        assert out[:2].tolist() == [0, 16]


def test_walks_refuse_offsets_outside_the_buffer() -> None:
    if not walk.COMPILED:
        pytest.skip("installed without a C compiler")
    out = np.zeros(4, np.int64)
    with pytest.raises(ValueError):
        walk.pcap(bytearray(64), out, 0, 65, 16, False)
    with pytest.raises(ValueError):
        walk.pcapng(bytearray(64), out, -1, 64, False)


@needs_native
@PROPS
@given(
    st.binary(min_size=1, max_size=400),
    st.lists(st.integers(0, 500), max_size=60),
    st.integers(1, 200),
)
def test_compiled_gather_equals_numpy_gather(raw: bytes, offsets: list[int], width: int) -> None:
    """The copy of each record's first bytes: the same rows as numpy's fancy index, offsets
    past the end clipped the same way (a record near the buffer's end, a buffer shorter than
    the prefetch distance)."""
    a = np.frombuffer(raw + bytes(max(0, width - len(raw))), np.uint8)
    idx = np.array(offsets, np.int64)
    got = rows_at(a, idx, width)
    assert got.shape == (len(offsets), width)
    assert got.tobytes() == py_rows_at(a, idx, width).tobytes()


@needs_native
def test_compiled_gather_refuses_a_negative_offset_or_a_wrong_shape() -> None:
    a = np.zeros(64, np.uint8)
    assert walk.gather is not None
    with pytest.raises(ValueError):
        walk.gather(a, np.array([-1], np.int64), 8, np.zeros((1, 8), np.uint8))
    with pytest.raises(ValueError):
        walk.gather(a, np.array([0, 8], np.int64), 8, np.zeros((1, 8), np.uint8))
    with pytest.raises(ValueError):
        walk.gather(a, np.array([0], np.int64), 65, np.zeros((1, 65), np.uint8))
