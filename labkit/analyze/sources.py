"""Inputs besides captures: ASA syslog, DART export and NSS key log, read with bounds.

This is the I/O edge for :mod:`labkit.logs` and :mod:`labkit.analyze.decrypt` (whose parsers
never open files): each reader returns a :class:`SourceReport` (what the file is, what was
wrong with it, never an exception for bad content) and the parsed events, with their times moved
onto the capture's clock by the file's clock offset (``--clock-offset``). Log events are
folded as they are read (:mod:`labkit.analyze.logfold`): memory follows what is distinct in a
log, not its length.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from labkit.errors import InputError

if TYPE_CHECKING:  # the parsers and file readers (zip, xz, gzip) are imported where used: a
    # capture-only run never pays for them
    from concurrent.futures import Future, ThreadPoolExecutor

    from labkit.analyze.decrypt import BulkPlan, DecryptReport, Direction, Segment, _Flow
    from labkit.analyze.engine import ChunkView
    from labkit.analyze.keylog import KeyLog
    from labkit.analyze.logfold import DartFold, SyslogFold
    from labkit.analyze.timeline import LogInputs
    from labkit.logs.dart import DartParser
    from labkit.wire.tlscrypt import RecordKeys
    from labkit.wire.tlswalk import Records, RecordWalk, Stream

    _Walking = Future[list[Records]]  # walks under way on the helper thread

MAX_KEYLOG_BYTES = 64 << 20
#: A log that has no event within this of a capture is on another clock (--clock-offset).
CLOCK_SLACK_S = 86400.0


@dataclass(frozen=True, slots=True)
class SourceReport:
    """One non-capture input: its kind, a one-line account of it, and its problems."""

    path: str
    kind: str  # "asa-syslog", "dart" or "keylog"
    summary: str
    warnings: tuple[str, ...] = ()
    error: str | None = None  # nothing usable in the file
    offset: float = 0.0  # seconds added to its timestamps (--clock-offset)

    @property
    def analyzable(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "path": self.path,
            "kind": self.kind,
            "summary": self.summary,
            "warnings": list(self.warnings),
            "clock_offset_s": self.offset,
        }
        if self.error:
            doc["error"] = self.error
        return doc


def _examples(examples: Any, what: str) -> tuple[str, ...]:
    return tuple(f"line {e.line}: {what}: {e.reason}" for e in examples)


def read_syslog(
    path: str,
    *,
    year: int | None,
    year_from: str = "",
    offset: float = 0.0,
    span: tuple[float, float] | None = None,
) -> tuple[SourceReport, SyslogFold]:
    """ASA messages of ``path`` folded, with times on the capture clock; year-less stamps get
    ``year`` (``year_from`` says where that year came from, for the warning)."""
    from labkit.analyze.logfold import SyslogFold
    from labkit.logs.files import lines
    from labkit.logs.syslog import SyslogParser

    parser = SyslogParser(year=year)
    fold = SyslogFold(path, offset)
    try:
        for line in lines(path):
            e = parser.feed(line)
            if e is not None:
                fold.add(e)
    except InputError as exc:
        report = SourceReport(path, "asa-syslog", "not read", error=str(exc), offset=offset)
        return report, SyslogFold(path, offset)
    fold.close()
    warnings = list(_examples(parser.examples, "skipped"))
    if parser.malformed > len(parser.examples):
        warnings.append(f"{parser.malformed} malformed line(s) skipped in all")
    if parser.year_supplied:
        warnings.append(
            f"{parser.year_supplied} event(s) have no year in their timestamp: dated "
            f"{year} ({year_from or 'assumed'})"
        )
    if parser.untimed:
        warnings.append(
            f"{parser.untimed} event(s) have no usable timestamp and are left off the timeline"
        )
    warnings += fold.warnings()
    warnings += _clock_warning(path, fold.first_time, fold.last_time, span, offset)
    summary = (
        f"ASA syslog: {parser.lines} lines, {fold.events} AnyConnect/MTU event(s), "
        f"{parser.other} other ASA message(s), {parser.malformed} malformed"
    )
    error = None
    if not fold.events:
        error = f"{path}: no ASA message labkit models (722036, 602101, 722022 ...)"
    return SourceReport(path, "asa-syslog", summary, tuple(warnings), error, offset), fold


def _dart_pass(path: str, line_source: Iterator[str], offset: float) -> tuple[DartParser, DartFold]:
    from labkit.analyze.logfold import DartFold
    from labkit.logs.dart import DartParser

    parser = DartParser()
    fold = DartFold(path, offset)
    for line in line_source:
        e = parser.feed(line)
        if e is not None:
            fold.add(e)
    last = parser.close()
    if last is not None:
        fold.add(last)
    fold.close()
    return parser, fold


def read_dart(
    path: str, *, offset: float = 0.0, span: tuple[float, float] | None = None
) -> tuple[SourceReport, DartFold]:
    """DART event blocks of a text export, or of the bundle ``.zip`` as the customer sends
    it (the member with the most event blocks: the VPN log), folded; ``span`` is the
    captures'."""
    from labkit.analyze.logfold import DartFold
    from labkit.logs.files import bundle_members, lines, member_lines

    where = ""
    try:
        members = bundle_members(path)
        if members is None:
            parser, fold = _dart_pass(path, lines(path), offset)
        else:
            best = None
            for member in members:
                found = _dart_pass(path, member_lines(path, member), offset)
                if found[1].events and (best is None or found[1].events > best[2].events):
                    best = (member, *found)
            if best is None:
                raise InputError(
                    f"{path}: a zip with no DART event log among its {len(members)} text file(s)"
                )
            where, parser, fold = f" ({best[0]})", best[1], best[2]
    except InputError as exc:
        report = SourceReport(path, "dart", "not read", error=str(exc), offset=offset)
        return report, DartFold(path, offset)
    warnings = tuple(f"line {b.line}: block skipped: {b.reason}" for b in parser.examples)
    if parser.malformed > len(parser.examples):
        warnings += (f"{parser.malformed} malformed block(s) skipped in all",)
    warnings += tuple(fold.warnings())
    warnings += _clock_warning(path, fold.earliest, fold.latest, span, offset)
    summary = (
        f"DART{where}: {parser.lines} lines, {fold.events} event block(s), {fold.about_tunnel} "
        f"about the tunnel (reconfigure, reconnect, MTU), {parser.malformed} malformed"
    )
    error = None
    if not fold.events:
        error = f"{path}: no DART event block (Date/Time/Type/Source/Description)"
    return SourceReport(path, "dart", summary, warnings, error, offset), fold


def read_logs(
    dart_paths: Sequence[str],
    syslog_paths: Sequence[str],
    offsets: Mapping[str | None, float],
    first_capture_time: float | None,
    capture_span: tuple[float, float] | None = None,
) -> tuple[list[SourceReport], LogInputs]:
    """The --dart and --syslog files: their accounts, and their events on the capture clock.
    ``offsets``: seconds per log path (None: every log). DART is read first: it can date
    year-less syslog lines when no capture can (:func:`~labkit.analyze.timeline.syslog_year`).
    ``capture_span``: the captures' first and last times, to warn of a log on another clock."""
    import time

    from labkit.analyze.timeline import LogInputs, syslog_year

    def offset(path: str) -> float:
        return offsets.get(path, offsets.get(None, 0.0))

    found: list[SourceReport] = []
    dart, syslog = [], []
    for path in dart_paths:
        src, folded = read_dart(path, offset=offset(path), span=capture_span)
        found.append(src)
        dart.append((path, folded))
    year, year_from = syslog_year(first_capture_time, dart, time.time())
    for path in syslog_paths:
        src, msgs = read_syslog(
            path, year=year, year_from=year_from, offset=offset(path), span=capture_span
        )
        found.append(src)
        syslog.append((path, msgs))
    return found, LogInputs(tuple(syslog), tuple(dart))


def _clock_warning(
    path: str,
    first: float | None,
    last: float | None,
    span: tuple[float, float] | None,
    offset: float,
) -> tuple[str, ...]:
    """A warning when no event of a log lies within a day of the captures (``first`` and
    ``last``: its earliest and latest event): its clock (or its year, or its time zone) is not
    the captures', and the join would match nothing."""
    if span is None or first is None or last is None:
        return ()
    if last >= span[0] - CLOCK_SLACK_S and first <= span[1] + CLOCK_SLACK_S:
        return ()
    gap = span[0] - last if last < span[0] else first - span[1]
    shift = round(span[0] - first + offset)
    return (
        f"its times lie {_duration(gap)} {'before' if last < span[0] else 'after'} the "
        f"capture's: if its clock differs, align it with --clock-offset {path}=SECONDS "
        f"({shift} would move its first event to the capture's start)",
    )


def _duration(seconds: float) -> str:
    days = seconds / 86400
    return f"{days / 365.25:.1f} years" if days >= 365 else f"{days:.1f} days"


def read_keylog(path: str) -> KeyLog:
    from labkit.analyze.keylog import parse_keylog
    from labkit.logs.files import keylog_lines

    return parse_keylog(keylog_lines(path, MAX_KEYLOG_BYTES))


#: Times a flow fed one row at a time is offered for bulk again within one chunk.
BULK_TRIES = 4


def _ready(flow: _Flow) -> bool:
    """Both directions of ``flow`` open their records with keys, each at a CSTP packet
    boundary: the records that follow can be counted in bulk."""
    return all(d.keys is not None and d.cstp.at_packet_boundary for d in flow.dirs.values())


def _keys(flow: _Flow, direction: Direction) -> RecordKeys:
    keys = flow.dirs[direction].keys
    assert keys is not None, "a direction whose stream was taken opens with keys"
    return keys


def _walk_all(walks: Sequence[tuple[RecordWalk, Stream, tuple[int, ...]]]) -> list[Records]:
    """Each stream walked by its walker, in turn."""
    return [walk(stream, cuts) for walk, stream, cuts in walks]


class _Helper:
    """The one thread that walks records beside the pass, started at the first walk and kept
    to the end of the capture: a thread started per chunk waited for a core to run on (the
    read-ahead thread has the other), a millisecond and more a chunk."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None

    def walk(self, walks: Sequence[tuple[RecordWalk, Stream, tuple[int, ...]]]) -> _Walking:
        from concurrent.futures import ThreadPoolExecutor

        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="labkit-walk")
        return self._pool.submit(_walk_all, walks)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def _done(walking: _Walking) -> None:
    """Wait for ``walking`` to end, whatever its outcome: never leave a walk reading a chunk
    the reader may reuse."""
    walking.exception()


@dataclass(frozen=True, slots=True)
class _Planned:
    """A direction's records of a chunk, counted (``plan``), and where its stream then stands:
    the unfinished record's bytes (``tail``) and the next sequence number."""

    plan: BulkPlan
    tail: bytes
    next_seq: int


@dataclass(frozen=True, slots=True)
class _Early:
    """What :meth:`KeyedDecryption.start` found in a chunk: its keyed rows (``picked``) and,
    when one connection's tunnel runs both ways, that connection (``key``), its directions'
    streams (``ready``) and their walks under way (``aside``)."""

    view: ChunkView
    picked: tuple[np.ndarray, np.ndarray, list[int]] | None
    key: int | None = None
    ready: list[tuple[Direction, np.ndarray, Stream]] | None = None
    aside: _Walking | None = None

    def join(self) -> None:
        if self.aside is not None:
            _done(self.aside)


class _WalkAhead:
    """:class:`KeyedDecryption`'s consumer fed before the detectors: its
    :meth:`~KeyedDecryption.start` on each chunk."""

    def __init__(self, owner: KeyedDecryption) -> None:
        self._owner = owner

    def feed(self, view: ChunkView) -> None:
        self._owner.start(view)


class KeyedDecryption:
    """The key-log decryptor as a consumer of the analyzer's one pass over a capture.

    Only connections whose first payload is a ClientHello with a client random the key log
    holds reach the decryptor; every other connection costs a look at its first payload,
    counted as the decryptor itself would count it (``tls_flows``: connections that open with
    a ClientHello). Connections are told apart by the columns' flow hashes; addresses are
    decoded once per address pair.

    Two ways into the decryptor. Once a direction's tunnel runs and its segments in a chunk
    continue its stream in order (no hole, retransmission or reordering), its records are
    walked in place in the chunk's buffer (:class:`~labkit.wire.tlswalk.RecordWalk`) and
    counted a chunk at a time (:meth:`~labkit.analyze.decrypt.Decryptor.plan`): no Python per
    segment or record. Everything else (the handshake, the CONNECT exchange, a chunk with a
    hole or a record that is not one CSTP packet) is fed segment by segment, as
    :func:`~labkit.analyze.decrypt.decrypt` does.
    """

    def __init__(self, keylog: KeyLog, *, timeline: bool = True) -> None:
        """``timeline``: keep the DATA packets' sizes for the timeline (the plot), which no
        finding reads: without a plot, each chunk's share of them is neither built nor kept."""
        from labkit.analyze.decrypt import MAX_SIZES, Decryptor
        from labkit.analyze.engine import KeyIndex
        from labkit.wire.tlswalk import RecordWalk

        self.keylog = keylog
        self.decryptor = Decryptor(keylog, max_sizes=MAX_SIZES if timeline else 0)
        # connections whose first payload was looked at: a hash probe per chunk's connection
        # (a sorted array re-sorted per chunk made a capture of new connections quadratic)
        self._seen = KeyIndex()
        self._keyed = np.zeros(0, np.uint64)  # of those, the ones the key log can decrypt
        self._names: dict[tuple[int, int], tuple[str, str]] = {}
        # keyed connection -> its decryption state and the client's directed flow hash
        self._flows: dict[int, tuple[_Flow, int]] = {}
        self._tries: dict[int, int] = {}  # keyed connection -> offers to bulk in this chunk
        # A walk's arrays live until the walker's next walk: a plan keeps none of them (it
        # copies what it counts). Two walkers: a flow's two directions are walked at once.
        self._walk = RecordWalk()
        self._walk_aside = RecordWalk()
        self._helper = _Helper()
        self._early: _Early | None = None  # this chunk's pick and walks, from :meth:`start`
        self.ahead = _WalkAhead(self)

    def start(self, view: ChunkView) -> None:
        """A chunk's first look, before the detectors see it (:attr:`ahead`, fed first): its
        keyed rows picked and, when they are one connection whose tunnel runs both ways, its
        records walked on another thread while the detectors run. Nothing reaches the
        decryptor until :meth:`feed`, so what :meth:`feed` would have walked is what was
        walked."""
        from labkit.wire.tlscrypt import peek_blocks
        from labkit.wire.tlswalk import COMPILED

        self._early = None
        picked = self._pick(view)
        early = _Early(view, picked)
        if picked is not None and COMPILED:  # a walk in Python would hold the interpreter
            rows, conn, _hellos = picked
            if len(conn) and bool((conn == conn[0]).all()):
                known = self._flows.get(int(conn[0]))
                streams = self._sides(view, *known, rows) if known is not None else []
                ready = [(d, r, st) for d, r, st in streams if st is not None]
                if ready and len(ready) == len(streams) and known is not None:
                    walkers = (self._walk, self._walk_aside)
                    walks = [
                        (walkers[i], st, peek_blocks(_keys(known[0], d)))
                        for i, (d, _r, st) in enumerate(ready)
                    ]
                    early = _Early(view, picked, int(conn[0]), ready, self._helper.walk(walks))
        self._early = early

    def _pick(self, view: ChunkView) -> tuple[np.ndarray, np.ndarray, list[int]] | None:
        """The chunk's TCP rows with payload of keyed connections and their connection keys,
        and the rows opening an unkeyed TLS connection (counted in order); None when there is
        nothing to feed. Looks at the first payload of each new connection."""
        from labkit.analyze.decode import PROTO_TCP
        from labkit.analyze.decrypt import client_random
        from labkit.analyze.engine import MAX_FLOWS, KeyIndex, tally

        c = view.cols
        rows = np.flatnonzero((c.proto == PROTO_TCP) & (c.pcap > 0))
        if self.decryptor.stopped is not None or not len(rows):
            return None
        conn = np.minimum(c.tcp_fwd[rows], c.tcp_rev[rows])  # one key for both directions
        mine = np.isin(conn, self._keyed)
        # New connections are among the other rows (a keyed one was seen): in the usual
        # capture, a few rows beside the tunnel's.
        others = np.flatnonzero(~mine)
        keys, first, _n = tally(conn[others])
        # Past the per-flow ceiling the connections looked at are forgotten: a later payload
        # of one is looked at again, opens no TLS session and is passed over as before.
        if self._seen.n > MAX_FLOWS:
            self._seen = KeyIndex()
        new = self._seen.find(keys) < 0
        hellos: list[int] = []
        if new.any():
            self._seen.insert(keys[new])
            keyed = []
            for key, row in zip(keys[new].tolist(), rows[others[first[new]]].tolist()):
                random = client_random(self._payload(view, row))
                if random is not None and self.keylog.can_decrypt(random):
                    keyed.append(key)
                elif random is not None:
                    hellos.append(row)
            if keyed:
                self._keyed = np.union1d(self._keyed, np.array(keyed, np.uint64))
                mine = np.isin(conn, self._keyed)
        return rows[mine], conn[mine], hellos

    def feed(self, view: ChunkView) -> None:
        early, self._early = self._early, None
        if early is not None and early.view is not view:  # not started on this chunk
            early.join()
            early = None
        try:
            picked = early.picked if early is not None else self._pick(view)
            if picked is None:
                return
            rows, conn, hellos = picked
            opening = set(hellos)
            self._tries.clear()
            todo = sorted(self._bulk(view, rows, conn, early) + hellos)
            while todo:
                todo = self._one_by_one(view, todo, opening)
            self.decryptor.end_chunk()
        finally:  # never leave a walk reading a chunk the reader may reuse
            if early is not None:
                early.join()

    def _one_by_one(self, view: ChunkView, todo: list[int], opening: set[int]) -> list[int]:
        """Feed rows one at a time until one makes a flow ready for bulk (both directions
        opened with keys, each at a CSTP packet boundary: its tunnel runs): the rows after it
        are offered to :meth:`_bulk` again, and the rows it leaves are returned to feed. A flow
        is offered at most :data:`BULK_TRIES` times a chunk, so a damaged stretch that keeps
        failing costs no rescan per row."""
        dec = self.decryptor
        c = view.cols
        for k, row in enumerate(todo):
            if dec.stopped is not None:
                return []
            if row in opening:
                dec.tls_flows += 1
                continue
            seg = self._segment(view, row)
            key = int(min(c.tcp_fwd[row], c.tcp_rev[row]))
            known = self._flows.get(key)
            was_ready = known is not None and _ready(known[0])
            dec.feed(seg)
            if known is None:
                flow = dec.flow_of(seg)
                if flow is not None:  # the ClientHello, sent by the client
                    self._flows[key] = (flow, int(c.tcp_fwd[row]))
            elif not was_ready and _ready(known[0]) and self._tries.get(key, 0) < BULK_TRIES:
                self._tries[key] = self._tries.get(key, 0) + 1
                rest = np.array(todo[k + 1 :], np.int64)
                later = rest[~np.isin(rest, list(opening))]
                conn = np.minimum(c.tcp_fwd[later], c.tcp_rev[later])
                again = self._bulk(view, later, conn)
                return sorted(again + [r for r in todo[k + 1 :] if r in opening])
        return []

    def _bulk(
        self, view: ChunkView, rows: np.ndarray, conn: np.ndarray, early: _Early | None = None
    ) -> list[int]:
        """Count the records of every flow whose directions can all go a chunk at a time; the
        rows left to feed one by one. A flow goes whole or not at all, so a record that stops
        it stops it where capture order says; and if the chunk could reach the decryptor's
        work bound, every row goes one by one, so the bound stops where it always did.
        ``early``: the chunk's walks started before the detectors (:meth:`start`)."""
        dec = self.decryptor
        plans: list[_Planned] = []
        rest: list[np.ndarray] = []
        groups: Iterable[tuple[int, np.ndarray]]
        if len(conn) and bool((conn == conn[0]).all()):  # one connection: the usual capture
            groups = [(int(conn[0]), rows)]
        else:  # rows grouped by connection, in capture order
            order = np.argsort(conn, kind="stable")
            keys, starts = np.unique(conn[order], return_index=True)
            groups = zip(keys.tolist(), np.split(rows[order], starts[1:]))
        for key, mine in groups:
            known = self._flows.get(key)
            if known is None:
                rest.append(mine)
                continue
            flow, client = known
            if early is not None and early.key == key and early.ready and early.aside:
                # started on the same rows and state (nothing was fed since): already walking
                planned = self._count(view, flow, early.ready, early.aside)
            else:
                streams = self._sides(view, flow, client, mine)
                ready = [(d, r, st) for d, r, st in streams if st is not None]
                planned = self._count(view, flow, ready) if len(ready) == len(streams) else [None]
            if all(p is not None for p in planned):
                plans += [p for p in planned if p is not None]
            else:
                rest.append(mine)
        if plans and dec.records + sum(p.plan.records for p in plans) >= dec.max_records:
            return rows.tolist()
        for p in plans:
            dec.commit(p.plan)
            d = p.plan.flow.dirs[p.plan.direction]
            d.records.buf = bytearray(p.tail)
            d.tcp.next_seq = p.next_seq
        return np.concatenate(rest).tolist() if rest else []

    def _sides(
        self, view: ChunkView, flow: _Flow, client: int, rows: np.ndarray
    ) -> list[tuple[Direction, np.ndarray, Stream | None]]:
        """A keyed connection's rows of a chunk split by direction, each with its stream
        (:meth:`_stream`, None when it cannot go a chunk at a time)."""
        to_server = view.cols.tcp_fwd[rows] == client
        sides: tuple[tuple[Direction, np.ndarray], ...] = (
            ("to-server", rows[to_server]),
            ("to-client", rows[~to_server]),
        )
        return [(d, r, self._stream(view, flow, d, r)) for d, r in sides if len(r)]

    def _stream(
        self, view: ChunkView, flow: _Flow, direction: Direction, rows: np.ndarray
    ) -> Stream | None:
        """One direction's rows of a chunk as its stream, when they continue it in order (no
        hole, retransmission or reordering) and its records open with keys."""
        from labkit.wire.tlswalk import Stream

        c = view.cols
        d = flow.dirs[direction]
        seq = c.seq[rows].astype(np.int64, copy=False)  # the columns are int64: no copy
        lens = c.pcap[rows].astype(np.int64, copy=False)
        if (
            d.keys is None
            or d.tcp.gap is not None
            or d.tcp.pending
            or d.records.error is not None
            or d.tcp.next_seq != int(seq[0])
            or not np.array_equal(seq[1:], (seq[:-1] + lens[:-1]) & 0xFFFFFFFF)
        ):
            return None
        return Stream.of(bytes(d.records.buf), view.chunk.buf, c.pay[rows], lens)

    def _count(
        self,
        view: ChunkView,
        flow: _Flow,
        streams: list[tuple[Direction, np.ndarray, Stream]],
        walking: _Walking | None = None,
    ) -> list[_Planned | None]:
        """Each direction's records counted (:meth:`~labkit.analyze.decrypt.Decryptor.plan`),
        or None. ``walking``: every direction already being walked on another thread (in
        order). Else, with both directions, the larger one's walk runs on another thread while
        this one walks and counts the other: the compiled walk waits on memory with the
        interpreter lock released, and the pass has a core to spare beside the read-ahead
        thread."""
        from labkit.wire.tlscrypt import peek_blocks
        from labkit.wire.tlswalk import COMPILED

        if walking is not None:
            walked = walking.result()
            return [self._plan(view, flow, s, w) for s, w in zip(streams, walked, strict=True)]
        cuts = [peek_blocks(_keys(flow, d)) for d, _r, _s in streams]
        big = max(range(len(streams)), key=lambda i: len(streams[i][1]))
        aside = None
        if len(streams) > 1 and COMPILED:
            aside = self._helper.walk([(self._walk_aside, streams[big][2], cuts[big])])
        out: list[_Planned | None] = [None] * len(streams)
        try:
            for i in sorted(range(len(streams)), key=lambda i: i == big):  # the larger last
                stream = streams[i][2]
                walk = (
                    aside.result()[0]
                    if aside is not None and i == big
                    else self._walk(stream, cuts[i])
                )
                out[i] = self._plan(view, flow, streams[i], walk)
        finally:  # never leave a walk reading a chunk the reader may reuse
            if aside is not None:
                _done(aside)
        return out

    def _plan(
        self,
        view: ChunkView,
        flow: _Flow,
        side: tuple[Direction, np.ndarray, Stream],
        walk: Records,
    ) -> _Planned | None:
        direction, rows, stream = side
        plan = self.decryptor.plan(
            flow, direction, walk, view.frames[rows], view.chunk.ts[rows], stream.read
        )
        if plan is None:
            return None
        seq = int(view.cols.seq[rows[-1]]) + int(view.cols.pcap[rows[-1]])
        return _Planned(plan, stream.read(walk.next, stream.length), seq & 0xFFFFFFFF)

    @staticmethod
    def _payload(view: ChunkView, row: int) -> bytes:
        start = int(view.cols.pay[row])
        return view.chunk.buf[start : start + int(view.cols.pcap[row])].tobytes()

    def _segment(self, view: ChunkView, row: int) -> Segment:
        from labkit.analyze.decode import decode
        from labkit.analyze.decrypt import Segment

        c, chunk = view.cols, view.chunk
        key = (int(c.src_h[row]), int(c.dst_h[row]))
        if key not in self._names:
            pkt = decode(chunk.packet(row), int(chunk.linktype[row]))
            self._names[key] = (pkt.src, pkt.dst)
        src, dst = self._names[key]
        return Segment(
            int(view.frames[row]),
            float(chunk.ts[row]),
            src,
            int(c.sport[row]),
            dst,
            int(c.dport[row]),
            int(c.seq[row]),
            self._payload(view, row),
        )

    def finish(self) -> None:
        """The end of the capture (the pass calls it): the helper thread ends."""
        self._helper.close()

    def report(self) -> DecryptReport:
        return self.decryptor.report()


def keylog_source(path: str, keylog: KeyLog, reports: dict[str, DecryptReport]) -> SourceReport:
    """The key log's account: how many entries, what each capture's decryption found."""
    warnings = [f"line {n}: not a key log line: {text}" for n, text in keylog.examples]
    parts = []
    for capture, r in reports.items():
        if r.tls_flows or r.sessions:  # captures without TLS (tunnel, inside) have nothing to say
            parts.append(f"{capture}: {r.summary()}")
        warnings += [
            f"{capture} frame {n.frame}: {n.client} -> {n.server}: {n.message}" for n in r.notes
        ]
        if r.stopped:
            warnings.append(f"{capture}: {r.stopped}")
    entries = sum(len(v) for v in keylog.secrets.values())
    summary = (
        f"NSS key log: {entries} entr{'y' if entries == 1 else 'ies'}"
        + (f", {keylog.malformed} malformed line(s)" if keylog.malformed else "")
        + "; "
        + ("; ".join(parts) or "no TLS session starts in the capture(s): nothing to decrypt")
    )
    error = None
    if entries == 0:
        error = f"{path}: no usable key log entry (expected 'CLIENT_RANDOM <hex> <hex>' lines)"
    return SourceReport(path, "keylog", summary, tuple(warnings), error)
