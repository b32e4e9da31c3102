"""Detectors: each folds chunks of one file into per-flow facts (never per-packet lists).

One instance of each per file; :mod:`labkit.analyze.case` joins their facts across the files
of a case into findings. Adding a detector: a class with ``feed(view)`` and a line here.
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit.analyze.detectors.dtls import DtlsDetector
from labkit.analyze.detectors.icmp import IcmpDetector
from labkit.analyze.detectors.mss import MssDetector
from labkit.analyze.detectors.retrans import RetransDetector
from labkit.analyze.detectors.sessions import TlsDetector
from labkit.analyze.detectors.size import SizeDetector


@dataclass(slots=True)
class FileFacts:
    """Everything the detectors learned from one file."""

    dtls: DtlsDetector
    tls: TlsDetector
    mss: MssDetector
    icmp: IcmpDetector
    size: SizeDetector
    retrans: RetransDetector

    @classmethod
    def new(cls, file: str) -> FileFacts:
        return cls(DtlsDetector(file), TlsDetector(file), MssDetector(file), IcmpDetector(file),
                   SizeDetector(file), RetransDetector(file))

    @property
    def detectors(self) -> list:
        return [self.dtls, self.tls, self.mss, self.icmp, self.size, self.retrans]
