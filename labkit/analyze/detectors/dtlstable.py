"""The DTLS pairs of one capture as columns: one row per client -> server:port pair.

A busy head-end's capture holds hundreds of thousands of pairs, most of them one hello and
one answer: a Python object per pair (its evidence frame sets, a dict of recent hellos, its
address strings) cost ~2 000 bytes, the columns below :data:`ROW_BYTES`. Rows are appended
in the order pairs first appear (the order findings list them) and found through a hash
index of their rows (a probe per new pair, whatever the table holds). What is rare and variable lives in side dicts keyed by the
pair's key (a session id over 32 bytes, message_seq values past the second, evidence frames
past the first two hellos and first answers) or by address hash (an address whose packed
form would not print as the decoder wrote it).

The detector works on :class:`~labkit.analyze.detectors.dtlspairs.DtlsPair` objects made
from rows for the pairs a chunk's handshake records touch (:meth:`DtlsTable.load`), stored
back once per chunk (:meth:`DtlsTable.store`); a report reads pairs the same way.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Final

import numpy as np

from labkit.analyze.engine import LatestIndex
from labkit.analyze.evidence import FrameSet

if TYPE_CHECKING:
    from labkit.analyze.detectors.dtlspairs import DtlsPair

CLIENT_CCS, SERVER_CCS, HANDSHAKE = 1, 2, 4  # bits of the ``flags`` column
_CLIENT_V6, _SERVER_V6 = 8, 16  # the address columns hold IPv6 addresses
_SID_BYTES, _LONG_SID = 32, 255
_NONE = -1  # an absent version, cipher or message_seq
#: evidence kinds: the column prefix, the pair's FrameSet attribute and how many of its first
#: frames have columns (two hellos: AnyConnect's second carries the HelloVerifyRequest's cookie)
_EVIDENCE: Final = (
    ("hello", "hello_frames", 2),
    ("hvr", "hvr_frames", 1),
    ("sh", "server_hello_frames", 1),
)

_COLUMNS: Final[dict[str, type | np.dtype]] = {
    "key": np.uint64,
    "client_h": np.uint64,
    "server_h": np.uint64,
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
    "data_c2s": np.int64,
    "data_s2c": np.int64,
    "unified_c2s": np.int64,
    "unified_s2c": np.int64,
    "first_hello_ts": np.float64,  # read only once a distinct hello was counted
    "last_hello_ts": np.float64,
    "flags": np.uint8,
    "record_version": np.int32,
    "hello_version": np.int32,
    "cipher": np.int32,
    "resumed": np.int8,  # -1: no ServerHello said
    "seen": np.int64,
    "data_frame": np.int64,  # the server's first application data: -1 none yet
    "data_ts": np.float64,
    "seq0": np.int32,  # the first two distinct message_seq values of the hellos
    "seq1": np.int32,
    **{f"{k}_n": np.uint32 for k, _a, _s in _EVIDENCE},
    **{
        f"{k}_{c}{i}": t
        for k, _a, slots in _EVIDENCE
        for i in range(slots)
        for c, t in (("frame", np.int64), ("ts", np.float64))
    },
}
#: what one row costs in the columns (the side dicts hold only what is rare)
ROW_BYTES: Final = sum(np.dtype(t).itemsize for t in _COLUMNS.values())


class DtlsTable:
    """Pair rows in columns grown by doubling, a hash index of their keys' rows
    (:class:`~labkit.analyze.engine.LatestIndex` over the key column: a new pair costs a probe,
    whatever the table holds), and the side dicts."""

    def __init__(self) -> None:
        self.n = 0
        self.cols: dict[str, np.ndarray] = {k: np.zeros(0, t) for k, t in _COLUMNS.items()}
        self._index = LatestIndex()  # key -> its row (keys are unique)
        #: address hash -> address, for an address whose packed form does not give back the
        #: same text (never seen: the decoder writes what inet_ntop writes)
        self.odd_names: dict[int, str] = {}
        self.long_session_ids: dict[int, bytes] = {}  # key -> a session id over 32 bytes
        self.more_seqs: dict[int, tuple[int, ...]] = {}  # key -> message_seq values past two
        self.more_frames: dict[tuple[int, int], list[tuple[int, float]]] = {}  # (kind, key)

    def __len__(self) -> int:
        return self.n

    def col(self, name: str) -> np.ndarray:
        """The live rows of one column (a view: read it, never keep it across chunks)."""
        return self.cols[name][: self.n]

    def rows_of(self, keys: np.ndarray) -> np.ndarray:
        """The row of each key; -1 where the key has none."""
        return self._index.find(self.cols["key"], keys)

    def load(self, rows: np.ndarray, make: Callable[..., DtlsPair]) -> list[DtlsPair]:
        """``make(**fields)`` for each row: a pair object to read or update."""
        c = {k: v[rows].tolist() for k, v in self.cols.items()}
        out = []
        odd, seqs, more = self.odd_names, self.more_seqs, self.more_frames
        for i, key in enumerate(c["key"]):
            flags = c["flags"][i]
            s0, s1 = c["seq0"][i], c["seq1"][i]
            hello_seqs = (() if s0 == _NONE else (s0,) if s1 == _NONE else (s0, s1)) + seqs.get(
                key, ()
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
                    client=odd.get(ch) or _text(c["client_a"][i], flags & _CLIENT_V6),
                    server=odd.get(sh) or _text(c["server_a"][i], flags & _SERVER_V6),
                    port=c["port"][i],
                    client_h=ch,
                    server_h=sh,
                    record_version=None if rv == _NONE else rv,
                    hello_version=None if hv == _NONE else hv,
                    hello_seqs=hello_seqs,
                    distinct_hellos=c["distinct"][i],
                    duplicate_hellos=c["duplicate"][i],
                    first_hello_ts=c["first_hello_ts"][i] if c["distinct"][i] else None,
                    cookie_hellos=c["cookie"][i],
                    client_session_id=self._session_id(key, c["sid"][i], c["sid_len"][i]),
                    resumed=None if resumed == _NONE else bool(resumed),
                    cipher=None if cipher == _NONE else cipher,
                    server_ccs=bool(flags & SERVER_CCS),
                    client_ccs=bool(flags & CLIENT_CCS),
                    data_c2s=c["data_c2s"][i],
                    data_s2c=c["data_s2c"][i],
                    unified_c2s=c["unified_c2s"][i],
                    unified_s2c=c["unified_s2c"][i],
                    first_data_s2c=None
                    if c["data_frame"][i] < 0
                    else (c["data_frame"][i], c["data_ts"][i]),
                    last_hello_ts=c["last_hello_ts"][i],
                    handshake_seen=bool(flags & HANDSHAKE),
                    key=key,
                    seen=c["seen"][i],
                    **sets,
                )
            )
        return out

    def store(self, pairs: list[DtlsPair], rows: np.ndarray) -> None:
        """Write ``pairs`` back to their ``rows``; a row of -1 is a new pair, appended in the
        order given (the order pairs first appeared)."""
        if not pairs:
            return
        new = rows < 0
        n_new = int(np.count_nonzero(new))
        rows = rows.copy()
        rows[new] = np.arange(self.n, self.n + n_new)
        self._grow(self.n + n_new)
        values: dict[str, list] = {k: [] for k in _COLUMNS}
        for p in pairs:
            self._side(p)
            values["key"].append(p.key)
            values["client_h"].append(p.client_h)
            values["server_h"].append(p.server_h)
            client_a, client_v6 = _pack(p.client)
            server_a, server_v6 = _pack(p.server)
            values["client_a"].append(client_a)
            values["server_a"].append(server_a)
            values["port"].append(p.port)
            values["distinct"].append(p.distinct_hellos)
            values["duplicate"].append(p.duplicate_hellos)
            values["cookie"].append(p.cookie_hellos)
            values["data_c2s"].append(p.data_c2s)
            values["data_s2c"].append(p.data_s2c)
            values["unified_c2s"].append(p.unified_c2s)
            values["unified_s2c"].append(p.unified_s2c)
            values["first_hello_ts"].append(p.first_hello_ts or 0.0)
            values["last_hello_ts"].append(p.last_hello_ts)
            values["flags"].append(
                CLIENT_CCS * p.client_ccs
                + SERVER_CCS * p.server_ccs
                + HANDSHAKE * p.handshake_seen
                + _CLIENT_V6 * client_v6
                + _SERVER_V6 * server_v6
            )
            values["record_version"].append(_NONE if p.record_version is None else p.record_version)
            values["hello_version"].append(_NONE if p.hello_version is None else p.hello_version)
            values["cipher"].append(_NONE if p.cipher is None else p.cipher)
            values["resumed"].append(_NONE if p.resumed is None else int(p.resumed))
            values["seen"].append(p.seen)
            data = p.first_data_s2c or (-1, 0.0)
            values["data_frame"].append(data[0])
            values["data_ts"].append(data[1])
            seqs = p.hello_seqs
            sid = p.client_session_id
            values["sid"].append(sid.ljust(_SID_BYTES, b"\0")[:_SID_BYTES])
            values["sid_len"].append(len(sid) if len(sid) <= _SID_BYTES else _LONG_SID)
            values["seq0"].append(seqs[0] if seqs else _NONE)
            values["seq1"].append(seqs[1] if len(seqs) > 1 else _NONE)
            for prefix, attr, slots in _EVIDENCE:
                fs = getattr(p, attr)
                frames = fs.frames if fs is not None else []
                values[f"{prefix}_n"].append(fs.count if fs is not None else 0)
                for j in range(slots):
                    frame, ts = frames[j] if j < len(frames) else (0, 0.0)
                    values[f"{prefix}_frame{j}"].append(frame)
                    values[f"{prefix}_ts{j}"].append(ts)
        for k, v in values.items():
            col = self.cols[k]
            col[rows] = np.array(v, col.dtype)
        if n_new:
            self.n += n_new
            self._index.update(self.cols["key"], rows[new])

    def _side(self, p: DtlsPair) -> None:
        """The rare and variable parts of ``p`` into the side dicts."""
        key = p.key
        for h, address in ((p.client_h, p.client), (p.server_h, p.server)):
            if _text(*_pack(address)) != address:
                self.odd_names[h] = address
        if len(p.client_session_id) > _SID_BYTES:
            self.long_session_ids[key] = p.client_session_id
        if len(p.hello_seqs) > 2:
            self.more_seqs[key] = p.hello_seqs[2:]
        for kind, (_prefix, attr, slots) in enumerate(_EVIDENCE):
            fs = getattr(p, attr)
            if fs is not None and len(fs.frames) > slots:
                self.more_frames[kind, key] = fs.frames[slots:]

    def _grow(self, n: int) -> None:
        cap = len(self.cols["key"])
        if n <= cap:
            return
        cap = max(n, 2 * cap, 16)
        for k, col in self.cols.items():
            grown = np.zeros(cap, col.dtype)
            grown[: self.n] = col[: self.n]
            self.cols[k] = grown

    def keep(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (ascending), in their order; the side dicts follow."""
        for k, col in self.cols.items():
            self.cols[k] = col[rows].copy()
        self.n = len(rows)
        keys = self.cols["key"]
        self._index = LatestIndex()
        self._index.update(keys, np.arange(self.n))
        kept = set(keys.tolist())
        addrs = set(self.cols["client_h"].tolist()) | set(self.cols["server_h"].tolist())
        self.odd_names = {h: s for h, s in self.odd_names.items() if h in addrs}
        self.long_session_ids = {k: v for k, v in self.long_session_ids.items() if k in kept}
        self.more_seqs = {k: v for k, v in self.more_seqs.items() if k in kept}
        self.more_frames = {k: v for k, v in self.more_frames.items() if k[1] in kept}

    def named(self, hashes: np.ndarray, names: Collection[str]) -> np.ndarray:
        """Per address hash of this table: whether its address is one of ``names``."""
        uniq, inv = np.unique(hashes, return_inverse=True)
        texts = self.texts(uniq)
        hit = np.array([texts[h] in names for h in uniq.tolist()], bool)
        return hit[inv.reshape(-1)] if len(uniq) else np.zeros(len(hashes), bool)

    def addresses(self, hashes: np.ndarray) -> set[str]:
        """The addresses of ``hashes`` (each one an address of this table)."""
        return set(self.texts(hashes).values())

    def texts(self, hashes: np.ndarray) -> dict[int, str]:
        """The address of each of ``hashes`` (each one an address of this table), by hash:
        read from the first row that holds it."""
        out: dict[int, str] = {}
        for side, v6_flag in (("client", _CLIENT_V6), ("server", _SERVER_V6)):
            uniq, first = np.unique(self.col(f"{side}_h"), return_index=True)
            want = np.isin(uniq, hashes)
            rows = first[want]
            packed = self.cols[f"{side}_a"][rows].tolist()
            v6 = (self.cols["flags"][rows] & v6_flag).tolist()
            for h, raw, six in zip(uniq[want].tolist(), packed, v6):
                out.setdefault(h, self.odd_names.get(h) or _text(raw, six))
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


def _pack(address: str) -> tuple[bytes, bool]:
    """``address`` packed in 16 bytes, and whether it is IPv6 (zeros for a text that is not
    an address: :attr:`DtlsTable.odd_names` keeps it)."""
    v6 = ":" in address
    try:
        raw = socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, address)
    except OSError:
        return bytes(16), v6
    return raw.ljust(16, b"\0"), v6


def _text(raw: bytes, v6: int | bool) -> str:
    """The address ``raw`` holds, as the decoder writes it (what inet_ntop writes)."""
    if v6:
        return socket.inet_ntop(socket.AF_INET6, raw)
    return socket.inet_ntop(socket.AF_INET, raw[:4])
