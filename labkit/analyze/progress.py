"""A progress line on stderr for long analyses: rate and ETA, only on a terminal, only after
the first second (quick runs and pipes stay quiet)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Callable as ``progress(file, done_bytes, total_bytes, packets)``."""

    def __init__(self, stream: TextIO = sys.stderr, delay: float = 1.0, every: float = 0.2) -> None:
        self.stream = stream
        self.start = time.monotonic()
        self.delay = delay
        self.every = every
        self.last = 0.0
        self.shown = False

    @classmethod
    def for_terminal(cls, stream: TextIO = sys.stderr) -> Progress | None:
        return cls(stream) if stream.isatty() else None

    def __call__(self, file: str, done: int, total: int, packets: int) -> None:
        now = time.monotonic()
        elapsed = now - self.start
        if elapsed < self.delay or now - self.last < self.every:
            return
        self.last = now
        frac = min(1.0, done / total) if total else 0.0
        rate = packets / elapsed if elapsed else 0.0
        eta = f", ETA {elapsed * (1 - frac) / frac:.0f} s" if frac > 0.01 else ""
        name = file.rsplit("/", 1)[-1]
        self.stream.write(f"\r{name}: {frac:6.1%}  {packets / 1e6:.2f} M packets  "
                          f"{rate / 1e6:.2f} M packets/s{eta}   ")
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\r" + " " * 79 + "\r")
            self.stream.flush()
