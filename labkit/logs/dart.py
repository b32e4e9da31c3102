"""AnyConnect DART text export in, typed client events out (sans-IO).

DART (the Diagnostics and Reporting Tool) writes the client's event log as blocks separated by
a line of asterisks, each block ``Key : value`` lines -- Date (MM/DD/YYYY), Time, Type,
Source -- and a Description that runs on over the following lines until the next separator.
Cisco tech note 116881 quotes the blocks of the DTLS-to-TLS fallback:

    ******************************************
    Date        : 11/16/2022
    Time        : 01:28:50
    Type        : Warning
    Source      : acvpnagent

    Description : Reconfigure reason code 16:
    New MTU configuration.
    ******************************************

:class:`DartParser` takes lines, yields a :class:`DartEvent` per complete block and classifies
the descriptions the fallback writes (reconfigure reason 16, the reconnect, the new MTU on the
virtual adapter). A block without a readable Date and Time is counted as malformed, never
fatal. Dates are read as naive local times (UTC unless a clock offset says otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final, Literal

from labkit.logs.timestamps import naive_epoch

MAX_BLOCK_LINES: Final = 2000  # a DART description is tens of lines; more is not one block
MAX_EXAMPLES: Final = 5

_SEPARATOR: Final = re.compile(r"^\s*\*{10,}\s*$")
_FIELD: Final = re.compile(r"^\s*(Date|Time|Type|Source|Description)\s*:\s?(.*)$")
_US_DATE: Final = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_ISO_DATE: Final = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_TIME: Final = re.compile(r"(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)(?:\s*([AP]M))?", re.I)

DartKind = Literal[
    "mtu-reconfigure",
    "reconfigure",
    "reconnecting",
    "new-mtu",
    "connected",
    "disconnected",
    "other",
]

# Description -> kind. The first four are the fallback's own lines (tech note 116881).
# Host names are whole words; their trailing dots ("Reconnecting to 10.1.1.2...") are stripped
# in classify(): a lazy "(\S+?)\.*(?:\s|$)" backtracks quadratically on a long run of dots.
_KINDS: Final[tuple[tuple[re.Pattern[str], DartKind], ...]] = (
    (re.compile(r"Reconfigure reason code (\d{1,9})", re.I), "mtu-reconfigure"),
    (re.compile(r"entire VPN connection is being reconfigured", re.I), "reconfigure"),
    (re.compile(r"Reconnecting to (\S+)", re.I), "reconnecting"),
    (re.compile(r"new MTU needs to be applied", re.I), "new-mtu"),
    (
        re.compile(
            r"VPN (?:session|connection) (?:established|connected)|Connected to (\S+)", re.I
        ),
        "connected",
    ),
    (
        re.compile(
            r"VPN connection (?:has been )?(?:terminated|disconnected)|Disconnected from", re.I
        ),
        "disconnected",
    ),
)


@dataclass(frozen=True, slots=True)
class DartEvent:
    """One DART block. ``reason_code`` and ``host`` only where the description names them."""

    line: int  # 1-based line of the block's first field
    time: float
    type: str  # Information, Warning, Error
    source: str  # acvpnagent, acvpnui, ...
    description: str  # lines joined with single spaces
    kind: DartKind
    reason_code: int | None = None  # "Reconfigure reason code 16": 16 = new MTU configuration
    host: str | None = None  # "Reconnecting to 10.1.1.2...": the head-end


@dataclass(frozen=True, slots=True)
class MalformedBlock:
    line: int
    reason: str


def classify(description: str) -> tuple[DartKind, int | None, str | None]:
    for pattern, kind in _KINDS:
        m = pattern.search(description)
        if m is None:
            continue
        if kind == "mtu-reconfigure":
            code = int(m.group(1))
            return ("mtu-reconfigure" if code == 16 else "reconfigure"), code, None
        if kind in ("reconnecting", "connected"):
            host = m.group(m.lastindex).rstrip(".") if m.lastindex else ""
            return kind, None, host or None
        return kind, None, None
    return "other", None, None


def _when(date: str, time: str) -> float | None:
    t = _TIME.fullmatch(time.strip())
    if t is None:
        return None
    hour = int(t.group(1))
    if t.group(4):  # 12-hour clock in some locales' exports
        hour = hour % 12 + (12 if t.group(4).upper() == "PM" else 0)
    d = _US_DATE.fullmatch(date.strip())
    if d is not None:
        month, day, year = int(d.group(1)), int(d.group(2)), int(d.group(3))
    elif (d := _ISO_DATE.fullmatch(date.strip())) is not None:
        year, month, day = int(d.group(1)), int(d.group(2)), int(d.group(3))
    else:
        return None
    return naive_epoch(year, month, day, hour, int(t.group(2)), float(t.group(3)))


@dataclass
class DartParser:
    """Feed lines; each completed block comes back from :meth:`feed` or :meth:`close`."""

    lines: int = 0
    blocks: int = 0
    malformed: int = 0
    examples: list[MalformedBlock] = field(default_factory=list)
    _fields: dict[str, list[str]] = field(default_factory=dict)
    _current: str | None = None
    _start: int = 0
    _size: int = 0

    def feed(self, raw: str) -> DartEvent | None:
        self.lines += 1
        line = raw.rstrip("\r\n")
        if _SEPARATOR.match(line):
            return self._finish()
        m = _FIELD.match(line)
        if m is not None and (m.group(1) == "Description" or m.group(1) not in self._fields):
            if not self._fields:
                self._start = self.lines
            self._current = m.group(1)
            self._fields[self._current] = [m.group(2).strip()]
        elif self._current == "Description" and line.strip():
            self._fields["Description"].append(line.strip())
        elif line.strip() and not self._fields:
            self._start = self.lines  # text outside any block: reported when the block ends
            self._fields["?"] = [line.strip()]
        self._size += 1
        if self._size > MAX_BLOCK_LINES:
            self._bad(f"block longer than {MAX_BLOCK_LINES} lines")
            self._reset()
        return None

    def close(self) -> DartEvent | None:
        """The last block, when the file does not end with a separator."""
        return self._finish()

    def _reset(self) -> None:
        self._fields, self._current, self._size = {}, None, 0

    def _bad(self, reason: str) -> None:
        self.malformed += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(MalformedBlock(self._start, reason))

    def _finish(self) -> DartEvent | None:
        f = self._fields
        self._reset()
        if not f:
            return None
        if "Date" not in f or "Time" not in f:
            self._bad("no Date/Time fields: not a DART event block")
            return None
        when = _when(f["Date"][0], f["Time"][0])
        if when is None:
            self._bad(f"unreadable Date/Time {f['Date'][0]!r} {f['Time'][0]!r}")
            return None
        description = " ".join(s for s in f.get("Description", []) if s)
        kind, code, host = classify(description)
        self.blocks += 1
        return DartEvent(
            self._start,
            when,
            f.get("Type", [""])[0],
            f.get("Source", [""])[0],
            description,
            kind,
            code,
            host,
        )


@dataclass(frozen=True, slots=True)
class DartResult:
    events: tuple[DartEvent, ...]
    lines: int
    malformed: int
    examples: tuple[MalformedBlock, ...]


def _events(parser: DartParser, lines: Iterable[str]) -> Iterator[DartEvent]:
    for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event
    last = parser.close()
    if last is not None:
        yield last


def parse_dart(lines: Iterable[str]) -> DartResult:
    """Every block of ``lines`` as a :class:`DartEvent`, with the parser's counters."""
    parser = DartParser()
    events = tuple(_events(parser, lines))
    return DartResult(events, parser.lines, parser.malformed, tuple(parser.examples))
