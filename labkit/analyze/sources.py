"""Inputs besides captures: ASA syslog, DART export and NSS key log, read with bounds.

This is the I/O edge for :mod:`labkit.logs` and :mod:`labkit.decrypt` (whose parsers never
open files): each reader returns a :class:`SourceReport` (what the file is, what was wrong
with it, never an exception for bad content) and the parsed events, with their times moved
onto the capture's clock by the file's clock offset (``--clock-offset``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from labkit.errors import InputError
from labkit.logs.files import bundle_members, keylog_lines, lines, member_lines

if TYPE_CHECKING:  # the parsers are imported where used: a capture-only run never pays for them
    from labkit.decrypt import DecryptReport, Segment
    from labkit.keylog import KeyLog
    from labkit.logs.dart import DartEvent, DartParser
    from labkit.logs.syslog import AsaMessage

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
) -> tuple[SourceReport, tuple[AsaMessage, ...]]:
    """ASA messages of ``path`` with times on the capture clock; year-less stamps get ``year``
    (``year_from`` says where that year came from, for the warning)."""
    from labkit.logs.syslog import SyslogParser

    parser = SyslogParser(year=year)
    events = []
    try:
        for line in lines(path):
            e = parser.feed(line)
            if e is not None:
                events.append(
                    e if e.time is None or not offset else replace(e, time=e.time + offset)
                )
    except InputError as exc:
        return SourceReport(path, "asa-syslog", "not read", error=str(exc), offset=offset), ()
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
    warnings += _clock_warning(path, [e.time for e in events], span, offset)
    summary = (
        f"ASA syslog: {parser.lines} lines, {len(events)} AnyConnect/MTU event(s), "
        f"{parser.other} other ASA message(s), {parser.malformed} malformed"
    )
    error = None if events else f"{path}: no ASA message labkit models (722036, 602101, 722022 ...)"
    return SourceReport(path, "asa-syslog", summary, tuple(warnings), error, offset), tuple(events)


def _dart_pass(line_source: Iterator[str], offset: float) -> tuple[DartParser, list[DartEvent]]:
    from labkit.logs.dart import DartParser

    parser = DartParser()
    events = []
    for line in line_source:
        e = parser.feed(line)
        if e is not None:
            events.append(replace(e, time=e.time + offset))
    last = parser.close()
    if last is not None:
        events.append(replace(last, time=last.time + offset))
    return parser, events


def read_dart(
    path: str, *, offset: float = 0.0, span: tuple[float, float] | None = None
) -> tuple[SourceReport, tuple[DartEvent, ...]]:
    """DART event blocks of a text export, or of the bundle ``.zip`` as the customer sends
    it (the member with the most event blocks: the VPN log); ``span`` is the captures'."""
    where = ""
    try:
        members = bundle_members(path)
        if members is None:
            parser, events = _dart_pass(lines(path), offset)
        else:
            best = None
            for member in members:
                found = _dart_pass(member_lines(path, member), offset)
                if found[1] and (best is None or len(found[1]) > len(best[2])):
                    best = (member, *found)
            if best is None:
                raise InputError(
                    f"{path}: a zip with no DART event log among its {len(members)} text file(s)"
                )
            where, parser, events = f" ({best[0]})", best[1], best[2]
    except InputError as exc:
        return SourceReport(path, "dart", "not read", error=str(exc), offset=offset), ()
    warnings = tuple(f"line {b.line}: block skipped: {b.reason}" for b in parser.examples)
    if parser.malformed > len(parser.examples):
        warnings += (f"{parser.malformed} malformed block(s) skipped in all",)
    warnings += _clock_warning(path, [e.time for e in events], span, offset)
    kinds = sum(1 for e in events if e.kind != "other")
    summary = (
        f"DART{where}: {parser.lines} lines, {len(events)} event block(s), {kinds} about the "
        f"tunnel (reconfigure, reconnect, MTU), {parser.malformed} malformed"
    )
    error = None if events else f"{path}: no DART event block (Date/Time/Type/Source/Description)"
    return SourceReport(path, "dart", summary, warnings, error, offset), tuple(events)


def _clock_warning(
    path: str, times: list[float | None], span: tuple[float, float] | None, offset: float
) -> tuple[str, ...]:
    """A warning when no event of a log lies within a day of the captures: its clock (or its
    year, or its time zone) is not the captures', and the join would match nothing."""
    known = [t for t in times if t is not None]
    if span is None or not known:
        return ()
    first, last = min(known), max(known)
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
    from labkit.keylog import parse_keylog

    return parse_keylog(keylog_lines(path, MAX_KEYLOG_BYTES))


def tcp_segments(path: str) -> Iterator[Segment]:
    """Every TCP segment with payload of a capture, through the analyzer's reader.

    The reader's columns pick the rows (no per-packet Python for the rest); addresses are
    decoded once per address pair.
    """
    import numpy as np

    from labkit.analyze.decode import PROTO_TCP, columns, decode
    from labkit.analyze.reader import open_capture
    from labkit.decrypt import Segment

    names: dict[tuple[int, int], tuple[str, str]] = {}
    with open_capture(path) as cap:
        for chunk in cap.chunks():
            c = columns(chunk)
            for i in np.flatnonzero((c.proto == PROTO_TCP) & (c.pcap > 0)):
                key = (int(c.src_h[i]), int(c.dst_h[i]))
                if key not in names:
                    pkt = decode(chunk.packet(int(i)), int(chunk.linktype[i]))
                    names[key] = (pkt.src, pkt.dst)
                src, dst = names[key]
                start = int(c.pay[i])
                yield Segment(
                    chunk.frame0 + int(i),
                    float(chunk.ts[i]),
                    src,
                    int(c.sport[i]),
                    dst,
                    int(c.dport[i]),
                    int(c.seq[i]),
                    chunk.buf[start : start + int(c.pcap[i])].tobytes(),
                )


def decrypt_capture_or_none(path: str, keylog: KeyLog) -> DecryptReport | None:
    """The decryption of one capture; None when the file is no capture (the analyzer says why)."""
    from labkit.decrypt import Decryptor

    dec = Decryptor(keylog)
    try:
        for seg in tcp_segments(path):
            dec.feed(seg)
            if dec.stopped:
                break
    except InputError:
        return None
    return dec.report()


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
