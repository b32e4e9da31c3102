"""A progress line on stderr for long analyses: bytes done, rate and time left.

Shown only when stderr is a terminal and the work has run for more than a second (a short
run, a pipe or a log file get nothing); redrawn at most ten times a second, and erased at
the end so the report that follows starts on a clean line. It measures file bytes, so the
estimate holds for gzip files too (compressed bytes consumed against the file size).
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

DELAY_S = 1.0  #: nothing is drawn before the work has taken this long
REDRAW_S = 0.1
WIDTH = 24  #: cells of the bar


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _duration(s: float) -> str:
    s = int(s + 0.5)
    return (
        f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


class Progress:
    """Progress of one analysis over files of known total size.

    Callers report absolute figures (bytes of the inputs consumed, packets read) with
    :meth:`update`, from one process; :meth:`finish` erases the line.
    """

    def __init__(
        self,
        total_bytes: int,
        files: int = 1,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        clock=time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _is_terminal(self.stream) if enabled is None else enabled
        self.total = max(1, total_bytes)
        self.files = files
        self._clock = clock
        self._start = clock()
        self._last_draw = 0.0
        self._drawn = 0  # length of the line on screen, 0 when nothing is drawn

    @classmethod
    def for_files(cls, paths: list[str], enabled: bool | None = None) -> Progress:
        total = 0
        for p in paths:
            try:
                total += os.path.getsize(p)
            except OSError:
                pass  # the reader reports the file; it adds nothing to the total
        return cls(total, len(paths), enabled=enabled)

    def update(self, done_bytes: int, packets: int, files_done: int = 0) -> None:
        if not self.enabled:
            return
        now = self._clock()
        elapsed = now - self._start
        if elapsed < DELAY_S or now - self._last_draw < REDRAW_S:
            return
        self._last_draw = now
        self._draw(self.line(min(done_bytes, self.total), packets, files_done, elapsed))

    def line(self, done: int, packets: int, files_done: int, elapsed: float) -> str:
        """The text of the progress line (no carriage return)."""
        frac = done / self.total
        filled = int(frac * WIDTH)
        bar = "#" * filled + "." * (WIDTH - filled)
        rate = done / elapsed if elapsed > 0 else 0.0
        pps = packets / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else None
        files = f" {files_done}/{self.files} files" if self.files > 1 else ""
        return (
            f"[{bar}] {frac * 100:3.0f}% {_size(done)}/{_size(self.total)}{files}"
            f"  {_size(rate)}/s {pps / 1e6:.2f} M pkt/s"
            f"  ETA {_duration(eta) if eta is not None else '?'}"
        )

    def _draw(self, text: str) -> None:
        pad = " " * max(0, self._drawn - len(text))
        self.stream.write("\r" + text + pad)
        self.stream.flush()
        self._drawn = len(text)

    def finish(self) -> None:
        """Erase the line if one was drawn."""
        if self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self.stream.flush()
            self._drawn = 0


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
