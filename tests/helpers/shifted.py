"""A capture read as if its frame numbers started later: a capture of billions of packets
near its end, as far as frame numbers go. The per-flow tables keep frame numbers in 32 bits
and widen them when a capture passes 2^32 - 1; this is how a test gets there."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from labkit.analyze.engine import Detector, scan
from labkit.pcapio.reader import Chunk, open_capture


class _Shifted:
    def __init__(self, capture, shift: int) -> None:
        self.capture, self.shift = capture, shift

    def chunks(self) -> Iterator[Chunk]:
        for chunk in self.capture.chunks():
            chunk.frame0 += self.shift
            yield chunk


def scan_shifted(path: Path, detectors: Sequence[Detector], shift: int) -> None:
    """Feed ``detectors`` the capture at ``path``, its frames numbered from ``shift + 1``."""
    with open_capture(path) as cap:
        scan(_Shifted(cap, shift), detectors, str(path))
