"""``labkit analyze --follow``: findings while a capture is still being written.

An engineer watching a customer reproduce the problem wants to see "DTLS unanswered" when it
happens, not after the capture is stopped. The capture is read once, as it grows (a pipe from
``tcpdump -w -``, or a file tcpdump is writing); after each piece the facts collected so far
are judged by the same pure judge as a finished capture (:func:`labkit.analyze.judge`), at
most every :data:`JUDGE_EVERY_S`, and each finding is announced once, the first time it
appears. What identifies a finding is its id and the fields that name what it is about
(:data:`IDENTITY`), not counts that keep growing (attempts, copies, packets). When the input
ends (the pipe closes, or the stop event is set) the findings of the whole capture not yet
announced are, and the file's scan is handed back to be judged with the logs like any other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Final

from labkit.analyze import AnalyzeOptions, Collect, Scanned, judge, scan_file
from labkit.findings import Finding

JUDGE_EVERY_S: Final = 0.5
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
    return (f.id, tuple(sorted((k, v) for k, v in f.fields.items() if k in IDENTITY)))


class Announcer:
    """Remembers which findings were announced; :meth:`new` gives the others, in order."""

    def __init__(self) -> None:
        self.seen: set[Hashable] = set()

    def new(self, findings: tuple[Finding, ...]) -> list[Finding]:
        out = []
        for f in findings:
            key = identity(f)
            if key not in self.seen:
                self.seen.add(key)
                out.append(f)
        return out


def follow(
    label: str,
    options: AnalyzeOptions,
    announce: Callable[[Finding], None],
    stop: threading.Event,
    collect: Collect,
    clock: Callable[[], float] = time.monotonic,
) -> Scanned:
    """Read ``label`` as it is written, ``announce`` each finding as it first appears, and
    return the whole capture's scan once the input ends or ``stop`` is set."""
    announcer = Announcer()
    last = [float("-inf")]

    def watch(scanned: Scanned) -> None:
        now = clock()
        if now - last[0] < JUDGE_EVERY_S:
            return
        last[0] = now
        for f in announcer.new(judge([scanned], options).findings):
            announce(f)

    final = scan_file(label, None, collect, options.tunnel_mtu, follow=stop, watch=watch)
    for f in announcer.new(judge([final], options).findings):
        announce(f)
    return final
