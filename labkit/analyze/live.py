"""``labkit analyze --follow``: findings while a capture is still being written.

An engineer watching a customer reproduce the problem wants to see "DTLS unanswered" when it
happens, not after the capture is stopped. The capture is read once, as it grows (a pipe from
``tcpdump -w -``, or a file tcpdump is writing), and the facts collected so far are judged by
the same pure judge as a finished capture (:func:`labkit.analyze.judge`): at most every
:data:`JUDGE_EVERY_S` while records stream in, and as soon as the writer falls silent, so the
last burst before a pause is never left unjudged.

A verdict on a capture that is still growing can be premature: an ICMP "fragmentation needed"
judged before the sender's next segment arrives looks like an MTU mismatch, and is path-MTU
discovery working a moment later. So a finding is announced only once it has held for
:data:`SETTLE_S` (the time a sender is given to react to an ICMP): one that is gone by then
was never true of the traffic, and is not shown. Each finding is announced once; what
identifies it is its id, its severity and the fields that name what it is about
(:data:`IDENTITY`), not counts that keep growing (attempts, copies, packets), so a finding
whose severity changes is announced again. When the input ends (the pipe closes, or the stop
event is set) the findings of the whole capture not yet announced are, and the file's scan is
handed back to be judged with the logs like any other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Final

from labkit.analyze import AnalyzeOptions, Collect, Scanned, judge, scan_file
from labkit.analyze.detectors.icmp import GRACE_S
from labkit.findings import Finding

JUDGE_EVERY_S: Final = 0.5
SETTLE_S: Final = GRACE_S
#: Fields that say what a finding is about; the others (counts, times) grow as packets arrive.
IDENTITY: Final = frozenset(
    {
        "client",
        "server",
        "port",
        "packet_size",
        "tunnel_mtu",
        "mtu",
        "mss",
        "direction",
        "role",
        "ip_version",
        "flow",
        "client_port",
    }
)


def identity(f: Finding) -> Hashable:
    fields = tuple(sorted((k, v) for k, v in f.fields.items() if k in IDENTITY))
    return (f.id, f.severity, fields)


class Announcer:
    """Remembers which findings were announced and since when the others have held;
    :meth:`settled` gives those that held long enough, :meth:`new` all not yet announced."""

    def __init__(self) -> None:
        self.seen: set[Hashable] = set()
        self.since: dict[Hashable, float] = {}  # held, not yet announced: first judged at

    def new(self, findings: tuple[Finding, ...]) -> list[Finding]:
        out = []
        for f in findings:
            key = identity(f)
            if key not in self.seen:
                self.seen.add(key)
                out.append(f)
        return out

    def settled(self, findings: tuple[Finding, ...], now: float) -> list[Finding]:
        """Those of ``findings`` judged present since at least :data:`SETTLE_S` ago; a
        finding absent from ``findings`` starts over if it comes back."""
        held = {identity(f): f for f in findings if identity(f) not in self.seen}
        self.since = {k: self.since.get(k, now) for k in held}
        return self.new(tuple(f for k, f in held.items() if now - self.since[k] >= SETTLE_S))

    def due(self, now: float) -> bool:
        """A held finding has waited long enough to be judged again."""
        return any(now - t >= SETTLE_S for t in self.since.values())


class Watcher:
    """``watch`` for :func:`~labkit.analyze.scan_file`: decides when the facts so far are
    judged (new records and :data:`JUDGE_EVERY_S` elapsed; or a silent writer and either
    records not yet judged or a held finding due) and announces what settled."""

    def __init__(
        self,
        options: AnalyzeOptions,
        announce: Callable[[Finding], None],
        clock: Callable[[], float],
    ) -> None:
        self.options = options
        self.announce = announce
        self.clock = clock
        self.announcer = Announcer()
        self.last = float("-inf")
        self.unjudged = False

    def __call__(self, scanned: Callable[[], Scanned], quiet: bool) -> None:
        now = self.clock()
        self.unjudged = self.unjudged or not quiet
        if quiet:
            if not (self.unjudged or self.announcer.due(now)):
                return
        elif now - self.last < JUDGE_EVERY_S:
            return
        self.last, self.unjudged = now, False
        for f in self.announcer.settled(judge([scanned()], self.options).findings, now):
            self.announce(f)


def follow(
    label: str,
    options: AnalyzeOptions,
    announce: Callable[[Finding], None],
    stop: threading.Event,
    collect: Collect,
    clock: Callable[[], float] = time.monotonic,
) -> Scanned:
    """Read ``label`` as it is written, ``announce`` each finding once it has settled, and
    return the whole capture's scan once the input ends or ``stop`` is set."""
    watcher = Watcher(options, announce, clock)
    final = scan_file(
        label,
        None,
        collect,
        options.tunnel_mtu,
        follow=stop,
        watch=watcher,
        max_flows=options.max_flows,
    )
    for f in watcher.announcer.new(judge([final], options).findings):
        announce(f)
    return final
