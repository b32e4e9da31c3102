"""The DTLS pairs of one capture as columns: one row per client -> server:port pair.

A busy head-end's capture holds hundreds of thousands of pairs, most of them one hello and
one answer: a Python object per pair (its evidence frame sets, a dict of recent hellos, its
address strings) cost ~2 000 bytes, the columns below :data:`ROW_BYTES`. Rows are appended
in the order pairs first appear (the order findings list them) and found through a hash
index of their rows (a probe per new pair, whatever the table holds). What is rare and
variable lives in side dicts keyed by the pair's key (a session id over 32 bytes,
message_seq values past the second, evidence frames past the first two hellos and first
answers). Addresses are kept as the header's bytes, which print as the decoder's text and
hash as the decoder's columns do (:meth:`DtlsTable.hashes`). Counts and frame numbers are 32
bits wide: a column widens to 64 bits the first time a value would not fit it (a capture
of over four billion packets), and the compiled pass then leaves the table to its Python
twin.

The detector edits the rows a chunk's handshake records touch as Python lists
(:class:`RowEdit`), written back once per chunk; a report reads the pairs it lists as
:class:`~labkit.analyze.detectors.dtlspairs.DtlsPair` objects (:meth:`DtlsTable.load`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Final

import numpy as np

from labkit.analyze.decode import addr_hashes, packed_hashes, packed_text
from labkit.analyze.engine import LatestIndex, grown, widened
from labkit.analyze.evidence import MAX_FRAMES, FrameSet

if TYPE_CHECKING:
    from labkit.analyze.detectors.dtlspairs import DtlsPair

CLIENT_CCS, SERVER_CCS, HANDSHAKE = 1, 2, 4  # bits of the ``flags`` column
_CLIENT_V6, _SERVER_V6 = 8, 16  # the address columns hold IPv6 addresses
_SID_BYTES, _LONG_SID = 32, 255
NO_VALUE = -1  # an absent version, cipher or message_seq
#: evidence kinds: the column prefix, the pair's FrameSet attribute and how many of its first
#: frames have columns (two hellos: AnyConnect's second carries the HelloVerifyRequest's cookie)
_EVIDENCE: Final = (
    ("hello", "hello_frames", 2),
    ("hvr", "hvr_frames", 1),
    ("sh", "server_hello_frames", 1),
)
HELLO_FRAMES, HVR_FRAMES, SH_FRAMES = range(3)  # the kinds of :data:`_EVIDENCE`

_COLUMNS: Final[dict[str, type | np.dtype]] = {
    "key": np.uint64,
    "client_a": np.dtype("V16"),  # the addresses, packed (IPv4 in the first 4 bytes)
    "server_a": np.dtype("V16"),
    # The client's session id (AnyConnect's hellos carry the X-DTLS-Session-ID in it): 32
    # bytes at most (RFC 6347 4.2.1 via RFC 5246 7.4.1.2), a longer one in a side dict.
    "sid": np.dtype("V32"),
    "sid_len": np.uint8,  # 0: none; _LONG_SID: in :attr:`DtlsTable.long_session_ids`
    "port": np.int32,
    "distinct": np.uint32,
    "duplicate": np.uint32,
    "cookie": np.uint32,
    "data_c2s": np.uint32,  # counts (widened past 2^32 - 1: :meth:`DtlsTable.widen`)
    "data_s2c": np.uint32,
    "unified_c2s": np.uint32,
    "unified_s2c": np.uint32,
    "first_hello_ts": np.float64,  # read only once a distinct hello was counted
    "last_hello_ts": np.float64,
    "flags": np.uint8,
    "record_version": np.int32,
    "hello_version": np.int32,
    "cipher": np.int32,
    "resumed": np.int8,  # -1: no ServerHello said
    "seen": np.uint32,  # the latest frame of the pair's (frames: 1-based, widened likewise)
    "data_frame": np.uint32,  # the server's first application data: 0 none yet
    "data_ts": np.float64,
    "seq0": np.int32,  # the first two distinct message_seq values of the hellos
    "seq1": np.int32,
    **{f"{k}_n": np.uint32 for k, _a, _s in _EVIDENCE},
    **{
        f"{k}_{c}{i}": t
        for k, _a, slots in _EVIDENCE
        for i in range(slots)
        for c, t in (("frame", np.uint32), ("ts", np.float64))
    },
}
#: what one row costs in the columns (the side dicts hold only what is rare)
ROW_BYTES: Final = sum(np.dtype(t).itemsize for t in _COLUMNS.values())
#: a new row: nothing counted, every version, cipher and message_seq absent
_FRESH: Final[dict[str, object]] = {
    **{k: np.zeros(1, t)[0].item() for k, t in _COLUMNS.items()},
    **dict.fromkeys(
        ("record_version", "hello_version", "cipher", "resumed", "seq0", "seq1"), NO_VALUE
    ),
}
#: the columns that hold frame numbers, and those that hold counts the data adds to
FRAME_COLUMNS: Final = tuple(k for k in _COLUMNS if "frame" in k or k == "seen")
_COUNT_COLUMNS: Final = ("data_c2s", "data_s2c", "unified_c2s", "unified_s2c")


class DtlsTable:
    """Pair rows in columns grown by :func:`~labkit.analyze.engine.room`, a hash index of
    their keys' rows (:class:`~labkit.analyze.engine.LatestIndex` over the key column: a new
    pair costs a probe, whatever the table holds), and the side dicts."""

    def __init__(self) -> None:
        self.n = 0
        self.cols: dict[str, np.ndarray] = {k: np.zeros(0, t) for k, t in _COLUMNS.items()}
        self._index = LatestIndex()  # key -> its row (keys are unique)
        self.long_session_ids: dict[int, bytes] = {}  # key -> a session id over 32 bytes
        # key -> message_seq values past two: a set, as a hostile client may send thousands
        self.more_seqs: dict[int, set[int]] = {}
        self.more_frames: dict[tuple[int, int], list[tuple[int, float]]] = {}  # (kind, key)

    def __len__(self) -> int:
        return self.n

    def col(self, name: str) -> np.ndarray:
        """The live rows of one column (a view: read it, never keep it across chunks)."""
        return self.cols[name][: self.n]

    @property
    def narrow(self) -> bool:
        """Whether every column still has its 32-bit type (what the compiled pass writes)."""
        return all(self.cols[k].dtype == _COLUMNS[k] for k in FRAME_COLUMNS + _COUNT_COLUMNS)

    def widen(self, names: Iterable[str], values: np.ndarray) -> None:
        """Columns ``names`` as int64 when ``values`` (to be stored in them) would not fit."""
        for k in names:
            self.cols[k] = widened(self.cols[k], values)

    def add_counts(self, name: str, rows: np.ndarray, counts: np.ndarray) -> None:
        """``counts`` more in count column ``name`` at ``rows`` (distinct)."""
        total = self.cols[name][rows] + counts
        self.widen((name,), total)
        self.cols[name][rows] = total

    def hashes(self, side: str, rows: np.ndarray | None = None) -> np.ndarray:
        """The address hashes of ``side`` ("client" or "server") of ``rows`` (default: every
        row): the decoder's column hashes of the addresses (the table's identity of an
        address)."""
        packed, flags = self.col(f"{side}_a"), self.col("flags")
        if rows is not None:
            packed, flags = packed[rows], flags[rows]
        return packed_hashes(packed, flags & (_CLIENT_V6 if side == "client" else _SERVER_V6) > 0)

    def rows_of(self, keys: np.ndarray) -> np.ndarray:
        """The row of each key; -1 where the key has none."""
        return self._index.find(self.cols["key"], keys)

    def load(self, rows: np.ndarray, make: Callable[..., DtlsPair]) -> list[DtlsPair]:
        """``make(**fields)`` for each row: a pair object to read or update."""
        c = {k: v[rows].tolist() for k, v in self.cols.items()}
        c["client_h"] = self.hashes("client", rows).tolist()
        c["server_h"] = self.hashes("server", rows).tolist()
        out = []
        seqs, more = self.more_seqs, self.more_frames
        for i, key in enumerate(c["key"]):
            flags = c["flags"][i]
            s0, s1 = c["seq0"][i], c["seq1"][i]
            hello_seqs = (() if s0 == NO_VALUE else (s0,) if s1 == NO_VALUE else (s0, s1)) + tuple(
                sorted(seqs.get(key, ()))
            )
            sets: dict[str, FrameSet | None] = {}
            for kind, (prefix, attr, slots) in enumerate(_EVIDENCE):
                n = c[f"{prefix}_n"][i]
                if n:
                    firsts = [
                        (c[f"{prefix}_frame{j}"][i], c[f"{prefix}_ts{j}"][i])
                        for j in range(min(n, slots))
                    ]
                    sets[attr] = FrameSet("", "", [*firsts, *more.get((kind, key), ())], n)
                else:
                    sets[attr] = FrameSet("", "") if kind == 0 else None
            rv, hv, cipher, resumed = (
                c["record_version"][i],
                c["hello_version"][i],
                c["cipher"][i],
                c["resumed"][i],
            )
            ch, sh = c["client_h"][i], c["server_h"][i]
            out.append(
                make(
                    client=packed_text(c["client_a"][i], flags & _CLIENT_V6),
                    server=packed_text(c["server_a"][i], flags & _SERVER_V6),
                    port=c["port"][i],
                    client_h=ch,
                    server_h=sh,
                    record_version=None if rv == NO_VALUE else rv,
                    hello_version=None if hv == NO_VALUE else hv,
                    hello_seqs=hello_seqs,
                    distinct_hellos=c["distinct"][i],
                    duplicate_hellos=c["duplicate"][i],
                    first_hello_ts=c["first_hello_ts"][i] if c["distinct"][i] else None,
                    cookie_hellos=c["cookie"][i],
                    client_session_id=self._session_id(key, c["sid"][i], c["sid_len"][i]),
                    resumed=None if resumed == NO_VALUE else bool(resumed),
                    cipher=None if cipher == NO_VALUE else cipher,
                    server_ccs=bool(flags & SERVER_CCS),
                    client_ccs=bool(flags & CLIENT_CCS),
                    data_c2s=c["data_c2s"][i],
                    data_s2c=c["data_s2c"][i],
                    unified_c2s=c["unified_c2s"][i],
                    unified_s2c=c["unified_s2c"][i],
                    first_data_s2c=None
                    if not c["data_frame"][i]
                    else (c["data_frame"][i], c["data_ts"][i]),
                    last_hello_ts=c["last_hello_ts"][i],
                    handshake_seen=bool(flags & HANDSHAKE),
                    key=key,
                    seen=c["seen"][i],
                    **sets,
                )
            )
        return out

    def add_rows(
        self,
        keys: np.ndarray,
        client_a: np.ndarray,
        server_a: np.ndarray,
        v6: np.ndarray,
        port: np.ndarray,
        **more: np.ndarray,
    ) -> None:
        """New pairs' rows, appended in order: their keys, packed addresses (of
        :func:`~labkit.analyze.decode.packed_addresses`), whether those are IPv6, ports and
        any ``more`` columns; the rest of each row fresh, as :meth:`RowEdit.new` makes it."""
        m = len(keys)
        if not m:
            return
        self.reserve(m)
        new = slice(self.n, self.n + m)
        for k, col in self.cols.items():
            col[new] = _FRESH[k]
        given = {
            "key": keys,
            "client_a": client_a,
            "server_a": server_a,
            "flags": np.where(v6, _CLIENT_V6 + _SERVER_V6, 0),
            "port": port,
            **more,
        }
        for k, v in given.items():
            self.cols[k][new] = v
        self.appended(m)

    def reserve(self, m: int) -> None:
        """Room for ``m`` more rows after the :attr:`n` in use (fresh: all zeros)."""
        for k, col in self.cols.items():
            self.cols[k] = grown(col, self.n + m)

    def appended(self, m: int) -> None:
        """The ``m`` rows after the :attr:`n` in use were written: they join the table and
        the key index."""
        if m:
            self._index.update(self.cols["key"], np.arange(self.n, self.n + m))
            self.n += m

    def keep(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (ascending), in their order; the side dicts follow."""
        for k, col in self.cols.items():
            self.cols[k] = col[rows].copy()
        self.n = len(rows)
        keys = self.cols["key"]
        self._index = LatestIndex()
        self._index.update(keys, np.arange(self.n))
        kept = set(keys.tolist())
        self.long_session_ids = {k: v for k, v in self.long_session_ids.items() if k in kept}
        self.more_seqs = {k: v for k, v in self.more_seqs.items() if k in kept}
        self.more_frames = {k: v for k, v in self.more_frames.items() if k[1] in kept}

    def named(self, hashes: np.ndarray, names: Collection[str]) -> np.ndarray:
        """Per address hash of this table: whether its address is one of ``names``. Compared
        as the columns' hashes (the table's identity of an address): printing every address
        of a table of a million pairs, to look a few names up, cost ~200 MB of strings."""
        return np.isin(hashes, addr_hashes(names))

    def addresses(self, hashes: np.ndarray) -> set[str]:
        """The addresses of ``hashes`` (each one an address of this table)."""
        return set(self.texts(hashes).values())

    def texts(self, hashes: np.ndarray) -> dict[int, str]:
        """The address of each of ``hashes`` (each one an address of this table), by hash:
        read from the first row that holds it."""
        out: dict[int, str] = {}
        for side, v6_flag in (("client", _CLIENT_V6), ("server", _SERVER_V6)):
            uniq, first = np.unique(self.hashes(side), return_index=True)
            want = np.isin(uniq, hashes)
            rows = first[want]
            packed = self.cols[f"{side}_a"][rows].tolist()
            v6 = (self.cols["flags"][rows] & v6_flag).tolist()
            for h, raw, six in zip(uniq[want].tolist(), packed, v6):
                out.setdefault(h, packed_text(raw, six))
        return out

    def _session_id(self, key: int, raw: bytes, n: int) -> bytes:
        return self.long_session_ids[key] if n == _LONG_SID else raw[:n]

    def with_session_id(self, hexes: Iterable[str]) -> np.ndarray:
        """Per row: whether the client's session id, in hex, is one of ``hexes`` ("": none)."""
        out = np.zeros(self.n, bool)
        lens, words = self.col("sid_len"), self.col("sid").view(np.uint64).reshape(-1, 4)
        for h in hexes:
            try:
                sid = bytes.fromhex(h)
            except ValueError:
                continue
            if sid.hex() != h:  # not as a session id prints: no pair's
                continue
            if len(sid) > _SID_BYTES:
                keys = [k for k, v in self.long_session_ids.items() if v == sid]
                out[self.rows_of(np.array(keys, np.uint64))] = True
                continue
            word = np.frombuffer(sid.ljust(_SID_BYTES, b"\0"), np.uint64)
            out |= (lens == len(sid)) & (words == word).all(axis=1)
        return out

    def session_ids_among(self, rows: np.ndarray, hexes: Iterable[str]) -> set[str]:
        """Which of ``hexes`` is the client session id (hex; "": none) of one of ``rows``."""
        return {h for h in hexes if self.with_session_id([h])[rows].any()}


class RowEdit:
    """A few rows of a :class:`DtlsTable` as one Python list per column: the rows a chunk's
    handshake records touch, read once, changed in place and written back with one
    assignment per column. A pair object per touched row (its frame sets, address strings)
    cost more than the records' own bookkeeping on a capture made of handshakes.

    New pairs take rows reserved up front (:meth:`new`), appended to the table in the order
    they were made: the order pairs first appeared."""

    def __init__(self, table: DtlsTable, keys: np.ndarray, room: int) -> None:
        """Load the rows of ``keys`` that exist; reserve ``room`` new ones."""
        self.table = table
        rows = table.rows_of(np.unique(keys))
        rows = rows[rows >= 0]
        self.rows: list[int] = rows.tolist() + [-1] * room
        self.used = len(rows)
        self.c: dict[str, list] = {
            k: v[rows].tolist() + [_FRESH[k]] * room for k, v in table.cols.items()
        }
        self.at: dict[int, int] = dict(zip(self.c["key"][: self.used], range(self.used)))
        #: per evidence kind: its count column, frame and time columns of its first slots
        self.evidence = [
            (
                self.c[f"{prefix}_n"],
                [self.c[f"{prefix}_frame{j}"] for j in range(slots)],
                [self.c[f"{prefix}_ts{j}"] for j in range(slots)],
            )
            for prefix, _attr, slots in _EVIDENCE
        ]

    def new(self, key: int, client_a: bytes, server_a: bytes, v6: bool, port: int) -> int:
        """A new pair's row (of the reserved ones): its position in the lists. ``client_a``,
        ``server_a``: the addresses as :func:`~labkit.analyze.decode.packed_addresses` gives
        them."""
        i = self.used
        self.used += 1
        self.at[key] = i
        c = self.c
        c["key"][i], c["port"][i] = key, port
        c["client_a"][i], c["server_a"][i] = client_a, server_a
        c["flags"][i] = (_CLIENT_V6 + _SERVER_V6) * v6
        return i

    def add_frame(self, kind: int, i: int, frame: int, ts: float) -> None:
        """One more evidence frame of ``kind`` (an index of :data:`_EVIDENCE`) for row ``i``:
        into its columns, past them into the side dict, past :data:`MAX_FRAMES` counted."""
        counts, frames, times = self.evidence[kind]
        n = counts[i]
        if n < len(frames):
            frames[n][i] = frame
            times[n][i] = ts
        elif n < MAX_FRAMES:
            self.table.more_frames.setdefault((kind, self.c["key"][i]), []).append((frame, ts))
        counts[i] = n + 1

    def add_seq(self, i: int, seq: int) -> None:
        """A hello's message_seq, kept if not seen on the pair before."""
        c, key = self.c, self.c["key"][i]
        more = self.table.more_seqs
        if seq in (c["seq0"][i], c["seq1"][i]):
            return
        if c["seq0"][i] == NO_VALUE:
            c["seq0"][i] = seq
        elif c["seq1"][i] == NO_VALUE:
            c["seq1"][i] = seq
        else:
            more.setdefault(key, set()).add(seq)

    def session_id(self, i: int) -> bytes:
        """The client's session id of row ``i``."""
        return self.table._session_id(self.c["key"][i], self.c["sid"][i], self.c["sid_len"][i])

    def set_session_id(self, i: int, sid: bytes) -> None:
        c = self.c
        c["sid"][i] = sid.ljust(_SID_BYTES, b"\0")[:_SID_BYTES]
        if len(sid) > _SID_BYTES:
            self.table.long_session_ids[c["key"][i]] = sid
        c["sid_len"][i] = len(sid) if len(sid) <= _SID_BYTES else _LONG_SID

    def commit(self) -> None:
        """Write the rows back; the new ones are appended and join the key index."""
        n = self.used
        if not n:
            return
        t = self.table
        rows = np.array(self.rows[:n], np.int64)
        new = rows < 0
        n_new = int(np.count_nonzero(new))
        rows[new] = np.arange(t.n, t.n + n_new)
        t.reserve(n_new)
        for k, v in self.c.items():
            col = t.cols[k]
            col[rows] = np.array(v[:n], col.dtype)
        t.appended(n_new)
