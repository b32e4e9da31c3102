"""Cisco ASA syslog lines in, typed AnyConnect/MTU events out (sans-IO).

A line is whatever reached the file: the ASA's own message (``%ASA-6-722036: ...``), with or
without the ASA's ``logging timestamp`` (``Nov 16 2022 01:28:50:``) and device id, and with or
without a syslog server's prefix (RFC 3164 ``<166>Nov 16 01:28:50 host``, RFC 5424
``<166>1 2022-11-16T01:28:50.123Z host ...``). :class:`SyslogParser` finds the ``%ASA-`` tag,
takes the timestamp nearest to it that has a year (the ASA's own clock when both are there),
and parses the message bodies it models; the templates are the Cisco ASA syslog guide's
("Syslog Messages 722001 to 776020"; "602101 to 622102"; "101001 to 199021"), matched
leniently: the guide writes ``Group group User user-name IP IP_address`` where ASAs log
``Group <group> User <user> IP <ip>``.

Contract of :meth:`SyslogParser.feed`: an event for a modelled message, None for anything
else. An ASA message with another id is counted as ``other``; a line with no ASA message, or
a modelled id whose text does not fit its template, is counted as ``malformed`` (the first few
kept, with their line numbers, for the warning). Nothing raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol, TypedDict, TypeVar

from labkit.logs.timestamps import MONTHS, iso_epoch, naive_epoch

_V = TypeVar("_V")


class _Share(Protocol):
    """Returns the one kept copy of a value equal to ``value`` (``value`` if none)."""

    def __call__(self, value: _V, /) -> _V: ...


MAX_LINE: Final = 16 * 1024  # ASA messages are < 1 KiB; longer is not a syslog line
MAX_EXAMPLES: Final = 5  # malformed lines kept for the warning
MAX_SHARED: Final = 1 << 16  # distinct values kept once (users, addresses, texts, seconds)

_TAG: Final = re.compile(r"%(?:ASA|FTD|PIX|FWSM)-(?:[A-Za-z]+-)?([0-7])-(\d{6}):?\s?")
_ISO_IN: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
)
_ASA_TIME: Final = re.compile(  # `logging timestamp`: "Nov 16 2022 01:28:50" (".123" on newer)
    r"\b([A-Za-z]{3}) +(\d{1,2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}(?:\.\d+)?)"
)
_BSD_TIME: Final = re.compile(r"\b([A-Za-z]{3}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}(?:\.\d+)?)")

# "Group <g> User <u> IP <ip>" as logged, or "Group g User u IP ip" as the guide writes it.
_WHO: Final = r"Group (?:<(?P<group>[^>]*)>|(?P<group2>\S+)) User (?:<(?P<user>[^>]*)>|(?P<user2>\S+)) IP (?:<(?P<ip>[^>]*)>|(?P<ip2>\S+)) "

SessionKind = Literal[
    "tunnel-up",
    "tunnel-down",
    "tunnel-replaced",
    "first-tunnel",
    "tunnel-reconnect",
    "stale-closed",
    "tunnel-closing",
    "session-terminating",
    "address-assigned",
    "no-ipv6-address",
    "session-disconnected",
    "parent-session-started",
    "webvpn-session-started",
    "webvpn-session-terminated",
    "session-lost",
    "session-resumed",
    "client-message",
]


@dataclass(frozen=True, slots=True)
class AsaMessage:
    """What every modelled message has: where it was, when, and which message it is."""

    line: int  # 1-based line in the input
    time: float | None  # seconds since the epoch; None when the line has no usable timestamp
    message_id: int
    severity: int
    text: str  # the message after "%ASA-6-722036: "


@dataclass(frozen=True, slots=True)
class LargePacket(AsaMessage):
    """722036 (to the client) / 722035 (from the client): a packet over the tunnel MTU.

    The 1418-vs-1347 signature of tech note 116881: ``size`` is what the adapter MTU allowed,
    ``threshold`` what the TLS tunnel carries.
    """

    group: str = ""
    user: str = ""
    ip: str = ""
    size: int = 0
    threshold: int = 0
    direction: Literal["to-client", "from-client"] = "to-client"


@dataclass(frozen=True, slots=True)
class PmtudPacket(AsaMessage):
    """602101: the ASA sent ICMP 3/4 for a packet larger than the effective MTU."""

    size: int = 0
    mtu: int = 0
    dst: str = ""
    src: str = ""
    protocol: str = ""


@dataclass(frozen=True, slots=True)
class SessionEvent(AsaMessage):
    """An AnyConnect session or tunnel change (start, end, replace, reconnect, address ...)."""

    kind: SessionKind = "tunnel-up"
    group: str | None = None
    user: str | None = None
    ip: str | None = None
    transport: Literal["TCP", "UDP"] | None = None  # TCP: the TLS (CSTP) tunnel; UDP: DTLS
    detail: str | None = None  # reason, assigned address or client message, as logged


class _Who(TypedDict):
    """Whom a message names, as keyword arguments of the message's dataclass."""

    group: str
    user: str
    ip: str


def _who(m: re.Match[str]) -> _Who:
    return {
        "group": m.group("group") or m.group("group2") or "",
        "user": m.group("user") or m.group("user2") or "",
        "ip": m.group("ip") or m.group("ip2") or "",
    }


def _rx(body: str) -> re.Pattern[str]:
    return re.compile(_WHO + body)


# message id -> (template, what the match becomes). Sources: the ASA syslog guide entries.
# Sizes have at most 9 digits: a longer number does not fit (int() refuses > 4300 digits).
_LARGE: Final = re.compile(
    _WHO
    + r"(?:Transmitting|Received) large packet (?P<size>\d{1,9}) \(threshold (?P<threshold>\d{1,9})\)\.?$"
)
_PMTUD: Final = re.compile(
    r"PMTU-D packet (?P<size>\d{1,9}) bytes greater than effective mtu (?P<mtu>\d{1,9}),? *"
    r"dest_addr=(?P<dst>[^\s,]+) *, *src_addr=(?P<src>[^\s,]+) *, *prot=(?P<prot>\S+?)\.?$"
)
_TRANSPORT: Final = r"(?P<transport>TCP|UDP) "
_SESSION: Final[dict[int, tuple[re.Pattern[str], SessionKind]]] = {
    722022: (
        _rx(_TRANSPORT + r"SVC connection established (?:with|without) compression\.?$"),
        "tunnel-up",
    ),
    722023: (
        _rx(
            r"(?:(?P<transport>TCP|UDP) )?SVC connection terminated (?:with|without) compression\.?$"
        ),
        "tunnel-down",
    ),
    722028: (_rx(r"Stale SVC connection closed\.?$"), "stale-closed"),
    722032: (
        _rx(r"New " + _TRANSPORT + r"SVC connection replacing old connection\.?$"),
        "tunnel-replaced",
    ),
    722033: (
        _rx(r"First " + _TRANSPORT + r"SVC connection established for SVC session\.?$"),
        "first-tunnel",
    ),
    722034: (
        _rx(r"New " + _TRANSPORT + r"SVC connection, no existing connection\.?$"),
        "tunnel-reconnect",
    ),
    722037: (_rx(r"SVC closing connection: (?P<detail>.*?)\.?$"), "tunnel-closing"),
    722038: (_rx(r"SVC terminating session: (?P<detail>.*?)\.?$"), "session-terminating"),
    722051: (
        _rx(
            r"(?P<detail>IPv4 Address <?[^>\s]*>? IPv6 address <?[^>\s]*>?) assigned to session\.?$"
        ),
        "address-assigned",
    ),
    113039: (_rx(r"AnyConnect parent session started\.?$"), "parent-session-started"),
    716001: (_rx(r"WebVPN session started\.?$"), "webvpn-session-started"),
    716002: (_rx(r"WebVPN session terminated: (?P<detail>.*?)\.?$"), "webvpn-session-terminated"),
    716058: (_rx(r"AnyConnect session lost connection\. Waiting to resume\.?$"), "session-lost"),
    716059: (
        _rx(r"AnyConnect session resumed connection from IP <?(?P<detail>[^>\s]+)>?\.?$"),
        "session-resumed",
    ),
    **{
        i: (_rx(r"SVC Message: (?P<detail>.*?)\.?$"), "client-message")
        for i in range(722007, 722015)
    },
}
_NO_IPV6: Final = re.compile(
    r"TunnelGroup <?(?P<tg>[^>]*?)>? GroupPolicy <?(?P<group>[^>]*?)>? User <?(?P<user>[^>]*?)>? "
    r"IP <?(?P<ip>[^>\s]*)>? No IPv6 address available for SVC connection\.?$"
)
_DISCONNECTED: Final = re.compile(
    r"Group = (?P<group>[^,]*), Username = (?P<user>[^,]*), IP = (?P<ip>[^,]*), "
    r"Session disconnected\. Session Type: (?P<type>[^,]*), Duration: (?P<duration>[^,]*), "
    r"Bytes xmt: \d+, Bytes rcv: \d+, Reason: (?P<reason>.*?)\"?$"
)

#: The ids this parser models; any other ASA message is counted as "other".
MODELLED_IDS: Final = frozenset({722035, 722036, 602101, 722041, 113019, *_SESSION})


@dataclass(frozen=True, slots=True)
class Malformed:
    line: int
    reason: str
    text: str


def _timestamp(prefix: str, year: int | None) -> tuple[float | None, bool]:
    """The timestamp nearest the %ASA tag with a year; else a year-less one dated ``year``.

    The flag says the year was supplied, not read."""
    best: tuple[int, float | None] | None = None
    for m in _ISO_IN.finditer(prefix):
        best = (m.start(), iso_epoch(m.group(0)))
    for m in _ASA_TIME.finditer(prefix):
        month = MONTHS.get(m.group(1).lower())
        if month and (best is None or m.start() > best[0]):
            best = (
                m.start(),
                naive_epoch(
                    int(m.group(3)),
                    month,
                    int(m.group(2)),
                    int(m.group(4)),
                    int(m.group(5)),
                    float(m.group(6)),
                ),
            )
    if best is not None:
        return best[1], False
    if year is None:
        return None, False
    for m in reversed(list(_BSD_TIME.finditer(prefix))):
        month = MONTHS.get(m.group(1).lower())
        if month:
            return naive_epoch(
                year, month, int(m.group(2)), int(m.group(3)), int(m.group(4)), float(m.group(5))
            ), True
    return None, False


@dataclass
class SyslogParser:
    """Feed lines one at a time; read the counters at the end.

    ``year`` dates year-less timestamps (BSD syslog ``Nov 16 01:28:50``); without it such
    lines get ``time=None``.
    """

    year: int | None = None
    lines: int = 0
    other: int = 0  # ASA messages of ids labkit does not model
    untimed: int = 0  # modelled events with no usable timestamp
    year_supplied: int = 0  # modelled events whose timestamp had no year: dated with ``year``
    malformed: int = 0
    examples: list[Malformed] = field(default_factory=list)
    #: One copy of each repeated value (message text, group, user, address, timestamp): a busy
    #: ASA logs the same 722036 line for the same user thousands of times a second, and a
    #: copy per event made each ~570 bytes. Bounded: past MAX_SHARED values, new ones are
    #: kept as they come.
    _shared: dict[object, object] = field(default_factory=dict, repr=False)

    def _share(self, value: _V) -> _V:
        got = self._shared.get(value)
        if got is not None:
            return got  # type: ignore[return-value]
        if len(self._shared) < MAX_SHARED:
            self._shared[value] = value
        return value

    def _bad(self, reason: str, text: str) -> None:
        self.malformed += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(Malformed(self.lines, reason, text[:200]))

    def feed(self, raw: str) -> AsaMessage | None:
        self.lines += 1
        line = raw.rstrip("\r\n")
        if not line.strip():
            return None
        if len(line) > MAX_LINE:
            self._bad(f"longer than {MAX_LINE} characters", line)
            return None
        tag = _TAG.search(line)
        if tag is None:
            self._bad("no %ASA- message", line)
            return None
        severity, message_id = int(tag.group(1)), int(tag.group(2))
        if message_id not in MODELLED_IDS:
            self.other += 1
            return None
        body = line[tag.end() :].strip()
        time, supplied = _timestamp(line[: tag.start()], self.year)
        time = self._share(time) if time is not None else None
        event = _parse_body(
            self.lines, time, self._share(message_id), severity, self._share(body), self._share
        )
        if event is None:
            self._bad(
                f"%ASA-{severity}-{message_id} does not fit its template in the ASA syslog guide",
                line,
            )
            return None
        self.untimed += time is None
        self.year_supplied += supplied
        return event


def _parse_body(
    n: int, time: float | None, mid: int, sev: int, body: str, share: _Share
) -> AsaMessage | None:
    """The event of one modelled message; ``share`` returns the one kept copy of a value."""
    head = (n, time, mid, sev, body)
    if mid in (722035, 722036):
        m = _LARGE.match(body)
        if m is None:
            return None
        return LargePacket(
            *head,
            **{k: share(v) for k, v in _who(m).items()},  # type: ignore[arg-type]
            size=share(int(m.group("size"))),
            threshold=share(int(m.group("threshold"))),
            direction="to-client" if mid == 722036 else "from-client",
        )
    if mid == 602101:
        m = _PMTUD.match(body)
        if m is None:
            return None
        return PmtudPacket(
            *head,
            size=share(int(m.group("size"))),
            mtu=share(int(m.group("mtu"))),
            dst=share(m.group("dst")),
            src=share(m.group("src")),
            protocol=share(m.group("prot")),
        )
    if mid == 722041:
        m = _NO_IPV6.match(body)
        if m is None:
            return None
        return SessionEvent(
            *head,
            kind="no-ipv6-address",
            group=m.group("group"),
            user=m.group("user"),
            ip=m.group("ip"),
        )
    if mid == 113019:
        m = _DISCONNECTED.match(body)
        if m is None:
            return None
        return SessionEvent(
            *head,
            kind="session-disconnected",
            group=m.group("group"),
            user=m.group("user"),
            ip=m.group("ip"),
            detail=f"{m.group('reason')} (session type {m.group('type')}, "
            f"duration {m.group('duration')})",
        )
    pattern, kind = _SESSION[mid]
    m = pattern.match(body)
    if m is None:
        return None
    groups = m.groupdict()
    return SessionEvent(
        *head,
        kind=kind,
        **_who(m),
        transport=groups.get("transport"),  # type: ignore[arg-type]
        detail=groups.get("detail"),
    )


@dataclass(frozen=True, slots=True)
class SyslogResult:
    events: tuple[AsaMessage, ...]
    lines: int
    other: int
    untimed: int
    malformed: int
    examples: tuple[Malformed, ...]


def parse_syslog(lines: Iterable[str], *, year: int | None = None) -> SyslogResult:
    """Every modelled event of ``lines``, with the parser's counters."""
    parser = SyslogParser(year=year)
    events = tuple(e for e in map(parser.feed, lines) if e is not None)
    return SyslogResult(
        events, parser.lines, parser.other, parser.untimed, parser.malformed, tuple(parser.examples)
    )
