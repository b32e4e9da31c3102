"""Log events folded as they are read: what the timeline judges, in memory that follows the
distinct keys of a log, not its lines.

A busy head-end logs the same 722036 line thousands of times a second, and a day of it is
the 20 M lines labkit reads. An object per event (~160 bytes) made that 3.2 GB, so no event
is kept. Each one is folded, as it comes, into:

* per (packet size, tunnel MTU) the ASA logged: a count, the message ids, the first user it
  names, and the first :data:`MAX_FRAMES` lines as evidence (the ``mtu-mismatch`` of the logs);
* per client (user, address): the TLS tunnel closes of the last :data:`EPISODE_S` and the
  opens that follow them, enough to tell each reconnect as it completes; DART's reconnect
  messages the same way, per file (the ``vpn-reconnect`` of the logs);
* for ``--plot``: the earliest :data:`MAX_MARKERS` markers per lane, and the sizes the ASA
  logged, evenly thinned past :data:`MAX_POINTS`.

Reconnects are told in time order, and a log is in time order but for a relay's jitter or
sources merged by a syslog server: events wait :data:`REORDER_S` (at most
:data:`MAX_PENDING` of them) before they are judged, so within that the result is the one a
sort of the whole file gives. An event later than that is judged where it arrives, and
counted. A table whose keys come from the log (size/MTU pairs, clients) has a ceiling; past
it, events with new keys are counted and left out, and the warning says so.
"""

from __future__ import annotations

import heapq
from array import array
from dataclasses import dataclass, field
from typing import Any, Final

from labkit.analyze.evidence import MAX_FRAMES
from labkit.findings import Evidence
from labkit.logs.dart import DartEvent
from labkit.logs.syslog import AsaMessage, LargePacket, PmtudPacket, SessionEvent
from labkit.plot import Direction, Marker

EPISODE_S: Final = 15.0  # reconnect messages this close together are one reconnect
REORDER_S: Final = 60.0  # how far back in time a log line may come and still be judged in order
MAX_PENDING: Final = 100_000  # events waiting to be judged in time order
MAX_PAIRS: Final = 4_096  # (packet size, tunnel MTU) pairs: a handful in any real log
MAX_CLIENTS: Final = 100_000  # clients whose tunnels are followed: a large head-end's users
MAX_CLOSES: Final = 1_000  # closes of one client within EPISODE_S: more is a flood, not a reconnect
MAX_RECONNECTS: Final = 10_000  # reconnects told per file: more is no longer a case to read
MAX_QUOTES: Final = 32  # distinct DART messages quoted per reconnect
MAX_MARKERS: Final = 5_000  # markers drawn per lane of the plot
MAX_POINTS: Final = 10_000  # logged packet sizes drawn per direction of the plot
_DART_RECONNECT: Final = frozenset({"mtu-reconfigure", "reconfigure", "reconnecting", "new-mtu"})
_TUNNEL_DOWN: Final = frozenset({"tunnel-closing", "tunnel-down"})
_TUNNEL_UP: Final = frozenset({"tunnel-reconnect", "tunnel-replaced", "tunnel-up"})


@dataclass(frozen=True, slots=True)
class Reconnect:
    """One reconnect as the logs tell it."""

    time: float
    evidence: tuple[Evidence, ...]
    text: str
    fields: dict[str, Any]


@dataclass
class Mismatch:
    """The ASA's lines of one (packet size, tunnel MTU) pair in one file."""

    count: int = 0
    ids: set[int] = field(default_factory=set)
    lines: list[Evidence] = field(default_factory=list)  # the first MAX_FRAMES
    first_large: LargePacket | None = None  # the first 722035/722036: whom it names


class _Earliest:
    """The ``limit`` earliest of what is added, by time (ties: the first added)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._heap: list[tuple[float, int, Marker]] = []  # (-time, -arrival, marker): a max-heap
        self._n = 0

    def add(self, marker: Marker) -> None:
        self._n += 1
        item = (-marker.time, -self._n, marker)
        if len(self._heap) < self.limit:
            heapq.heappush(self._heap, item)
        elif item > self._heap[0]:
            heapq.heapreplace(self._heap, item)

    def items(self) -> list[Marker]:
        return [m for _t, _n, m in sorted(self._heap, reverse=True)]


@dataclass
class Thinned:
    """Points kept evenly over a whole log: past MAX_POINTS every other one goes and the
    stride doubles (the capture side's decimation, for the sizes the ASA logs). Kept as
    machine numbers: 16 bytes a point."""

    seen: int = 0
    stride: int = 1
    times: array[float] = field(default_factory=lambda: array("d"))
    sizes: array[int] = field(default_factory=lambda: array("q"))

    def add(self, time: float, size: int) -> None:
        if self.seen % self.stride == 0:
            self.times.append(time)
            self.sizes.append(size)
        self.seen += 1
        if len(self.times) > MAX_POINTS:
            self.times, self.sizes = self.times[::2], self.sizes[::2]
            self.stride *= 2


class _InOrder:
    """Items released in time order (ties: arrival order) once REORDER_S of later log has
    come (any timed line of the log: :meth:`advance`), or when more than MAX_PENDING wait;
    ``late`` counts those that came too late."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Any]] = []
        self._n = 0
        self._latest = float("-inf")
        self._done = float("-inf")  # time of the last item released
        self.late = 0

    def push(self, time: float, item: Any) -> list[Any]:
        self._n += 1
        self.late += time < self._done
        heapq.heappush(self._heap, (time, self._n, item))
        return self.advance(time)

    def advance(self, time: float) -> list[Any]:
        self._latest = max(self._latest, time)
        out = []
        while self._heap and (
            self._heap[0][0] <= self._latest - REORDER_S or len(self._heap) > MAX_PENDING
        ):
            out.append(self._pop())
        return out

    def drain(self) -> list[Any]:
        return [self._pop() for _ in range(len(self._heap))]

    def _pop(self) -> Any:
        time, _n, item = heapq.heappop(self._heap)
        self._done = max(self._done, time)
        return item


@dataclass
class _Client:
    """One client's TLS tunnel: the closes of the last EPISODE_S, then the opens after them."""

    user: str | None
    ip: str | None
    downs: list[tuple[float, int, int]] = field(default_factory=list)  # time, line, message id
    up_time: float | None = None  # the first open after the closes
    ups: list[tuple[float, int, int]] = field(default_factory=list)  # the first MAX_FRAMES
    up_ids: set[int] = field(default_factory=set)
    found: list[Reconnect] = field(default_factory=list)


class SyslogFold:
    """One ASA syslog file, folded: feed its events in file order with :meth:`add`, then
    :meth:`close`."""

    def __init__(self, path: str, offset: float = 0.0) -> None:
        self.path = path
        self.offset = offset  # seconds added to every time (--clock-offset)
        self.events = 0
        self.first_time: float | None = None  # the earliest and latest timed event
        self.last_time: float | None = None
        self.mismatches: dict[tuple[int, int], Mismatch] = {}
        self.markers: dict[str, _Earliest] = {}
        self.too_large: dict[Direction, Thinned] = {"to": Thinned(), "from": Thinned()}
        self._clients: dict[tuple[str | None, str | None], _Client] = {}
        self._order = _InOrder()
        self._reconnects = 0
        # Events given up to stay within the ceilings (each named in warnings()).
        self.beyond_pairs = self.beyond_clients = self.beyond_reconnects = 0

    def add(self, e: AsaMessage) -> None:
        self.events += 1
        time = None if e.time is None else e.time + self.offset
        if time is not None:
            self.first_time = time if self.first_time is None else min(self.first_time, time)
            self.last_time = time if self.last_time is None else max(self.last_time, time)
            for released in self._order.advance(time):
                self._judge(*released)
        if isinstance(e, (LargePacket, PmtudPacket)):
            limit = e.threshold if isinstance(e, LargePacket) else e.mtu
            if e.size > limit:
                self._mismatch(e, limit, time)
            if time is not None:
                self._mark(Marker(time, "ASA 722036/602101", f"{e.size} > {limit}"))
                # The ASA names the packet's size: a point in the size panel, like a captured one.
                out = isinstance(e, LargePacket) and e.direction == "from-client"
                self.too_large["from" if out else "to"].add(time, e.size)
        elif isinstance(e, SessionEvent) and time is not None:
            self._mark(Marker(time, "ASA session", e.kind))
            if e.transport != "UDP" and (e.kind in _TUNNEL_DOWN or e.kind in _TUNNEL_UP):
                self._tunnel(e, time)

    def _mark(self, marker: Marker) -> None:
        lane = self.markers.get(marker.lane)
        if lane is None:
            lane = self.markers[marker.lane] = _Earliest(MAX_MARKERS)
        lane.add(marker)

    def _mismatch(self, e: LargePacket | PmtudPacket, limit: int, time: float | None) -> None:
        m = self.mismatches.get((e.size, limit))
        if m is None:
            if len(self.mismatches) >= MAX_PAIRS:
                self.beyond_pairs += 1
                return
            m = self.mismatches[(e.size, limit)] = Mismatch()
        m.count += 1
        m.ids.add(e.message_id)
        if len(m.lines) < MAX_FRAMES:
            m.lines.append(Evidence(self.path, e.line, time))
        if m.first_large is None and isinstance(e, LargePacket):
            m.first_large = e

    def _tunnel(self, e: SessionEvent, time: float) -> None:
        # Clients are numbered as they first appear in the file (the order reconnects are told).
        client = self._clients.get((e.user, e.ip))
        if client is None:
            if len(self._clients) >= MAX_CLIENTS:
                self.beyond_clients += 1
                return
            client = self._clients[(e.user, e.ip)] = _Client(e.user, e.ip)
        item = (client, time, e.line, e.message_id, e.kind in _TUNNEL_DOWN)
        for released in self._order.push(time, item):
            self._judge(*released)

    def _judge(self, c: _Client, t: float, line: int, mid: int, down: bool) -> None:
        if c.up_time is not None:
            if not down and t - c.up_time <= EPISODE_S:
                if len(c.ups) < MAX_FRAMES:
                    c.ups.append((t, line, mid))
                c.up_ids.add(mid)
                return
            self._reconnect(c)
        if down:
            # The closes of the last EPISODE_S before this one; in time order, a prefix goes.
            keep = next((i for i, d in enumerate(c.downs) if t - d[0] <= EPISODE_S), None)
            c.downs = ([] if keep is None else c.downs[keep:])[-MAX_CLOSES:] + [(t, line, mid)]
            return
        if not c.downs or t - c.downs[-1][0] > EPISODE_S:
            c.downs = []  # a tunnel opening with no close before it: a start, not a reconnect
            return
        c.up_time, c.ups, c.up_ids = t, [(t, line, mid)], {mid}

    def _reconnect(self, c: _Client) -> None:
        assert c.up_time is not None
        if self._reconnects < MAX_RECONNECTS:
            self._reconnects += 1
            gap = round(c.up_time - c.downs[-1][0], 3)
            ids = sorted({m for _t, _l, m in c.downs} | c.up_ids)
            text = (
                f"The ASA shows the TLS tunnel of user {c.user} ({c.ip}) close and a new one "
                f"open {gap} s later ({', '.join(f'%ASA-{m}' for m in ids)})."
            )
            evidence = tuple(Evidence(self.path, line, t) for t, line, _m in c.downs + c.ups)
            c.found.append(
                Reconnect(
                    c.downs[0][0],
                    evidence[:MAX_FRAMES],
                    text,
                    {"gap_s": gap, "user": c.user, "client_public_ip": c.ip},
                )
            )
        else:
            self.beyond_reconnects += 1
        c.downs, c.up_time, c.ups, c.up_ids = [], None, [], set()

    def close(self) -> None:
        """Judge what still waits: the last events of the file, the reconnects they end."""
        for released in self._order.drain():
            self._judge(*released)
        for c in self._clients.values():
            if c.up_time is not None:
                self._reconnect(c)

    def reconnects(self) -> list[Reconnect]:
        """Every reconnect, client by client in the order they first appear, each in time order."""
        return [r for c in self._clients.values() for r in c.found]

    def warnings(self) -> list[str]:
        """What was given up to stay within the ceilings: empty for any ordinary log."""
        out = []
        if self.beyond_pairs:
            out.append(
                f"{self.beyond_pairs} 722036/602101 event(s) of packet size/MTU pairs "
                f"beyond the first {MAX_PAIRS} left out of the MTU findings"
            )
        if self.beyond_clients:
            out.append(
                f"{self.beyond_clients} tunnel event(s) of clients beyond the first "
                f"{MAX_CLIENTS} not checked for reconnects"
            )
        return out + _reconnect_warnings(self.beyond_reconnects, self._order.late)


def _reconnect_warnings(beyond: int, late: int) -> list[str]:
    """What either log gave up in telling reconnects."""
    out = []
    if beyond:
        out.append(
            f"{beyond} reconnect(s) after the first {MAX_RECONNECTS} left out of the findings"
        )
    if late:
        out.append(
            f"{late} tunnel event(s) came more than {REORDER_S:.0f} s behind the log's time "
            "order: judged where they appear, not where their time puts them"
        )
    return out


class DartFold:
    """One DART export (or bundle member), folded: :meth:`add` its events, then :meth:`close`."""

    def __init__(self, path: str, offset: float = 0.0) -> None:
        self.path = path
        self.offset = offset
        self.events = 0
        self.about_tunnel = 0  # blocks of a kind labkit names (reconfigure, reconnect, MTU)
        self.first_time: float | None = None  # the first block's, in file order
        self.earliest: float | None = None
        self.latest: float | None = None
        self.markers = _Earliest(MAX_MARKERS)
        self._order = _InOrder()
        self._episode: list[tuple[float, DartEvent]] = []  # the first MAX_FRAMES
        self._last = 0.0  # time of the episode's latest message
        self._code: int | None = None
        self._host: str | None = None
        self._quotes: dict[str, None] = {}
        self._new_mtu = False
        self._found: list[Reconnect] = []
        self.beyond_reconnects = 0

    def add(self, e: DartEvent) -> None:
        time = e.time + self.offset
        self.events += 1
        if self.first_time is None:
            self.first_time = time
        self.earliest = time if self.earliest is None else min(self.earliest, time)
        self.latest = time if self.latest is None else max(self.latest, time)
        for t, released in self._order.advance(time):
            self._judge(t, released)
        if e.kind == "other":
            return
        self.about_tunnel += 1
        self.markers.add(Marker(time, "DART", e.kind))
        if e.kind in _DART_RECONNECT:
            for t, released in self._order.push(time, (time, e)):
                self._judge(t, released)

    def _judge(self, t: float, e: DartEvent) -> None:
        if self._episode and t - self._last > EPISODE_S:
            self._reconnect()
        self._last = t
        if len(self._episode) < MAX_FRAMES:
            self._episode.append((t, e))
        if self._code is None:
            self._code = e.reason_code
        self._host = self._host or e.host or None
        if len(self._quotes) < MAX_QUOTES:
            self._quotes.setdefault(f"'{e.description[:70]}'")
        self._new_mtu |= e.kind == "new-mtu"

    def _reconnect(self) -> None:
        code, host = self._code, self._host
        text = (
            f"DART shows the client reconnect{f' to {host}' if host else ''}"
            + (" to apply a new MTU" if code == 16 or self._new_mtu else "")
            + f": {'; '.join(self._quotes)}."
        )
        fields = {"reason_code": code, "server": host}
        if len(self._found) < MAX_RECONNECTS:
            self._found.append(
                Reconnect(
                    self._episode[0][0],
                    tuple(Evidence(self.path, e.line, t) for t, e in self._episode),
                    text,
                    {k: v for k, v in fields.items() if v is not None},
                )
            )
        else:
            self.beyond_reconnects += 1
        self._episode, self._code, self._host, self._quotes = [], None, None, {}
        self._new_mtu = False

    def close(self) -> None:
        for t, e in self._order.drain():
            self._judge(t, e)
        if self._episode:
            self._reconnect()

    def reconnects(self) -> list[Reconnect]:
        return list(self._found)

    def warnings(self) -> list[str]:
        """What was given up to stay within the ceilings: empty for any ordinary log."""
        return _reconnect_warnings(self.beyond_reconnects, self._order.late)
