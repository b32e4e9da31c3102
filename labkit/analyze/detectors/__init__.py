"""Detectors: each folds chunks of one file into per-flow facts (never per-packet lists).

One instance of each per file; :mod:`labkit.analyze.case` joins their facts across the files
of a case into findings. Adding a detector: a class with ``feed(view)`` and a line here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from labkit.analyze.detectors.dtls import DtlsDetector
from labkit.analyze.detectors.frags import FragmentDetector
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
    frags: FragmentDetector

    @classmethod
    def new(cls, file: str) -> FileFacts:
        return cls(
            DtlsDetector(file),
            TlsDetector(file),
            MssDetector(file),
            IcmpDetector(file),
            SizeDetector(file),
            RetransDetector(file),
            FragmentDetector(file),
        )

    @property
    def detectors(self) -> list:
        return [self.dtls, self.tls, self.mss, self.icmp, self.size, self.retrans, self.frags]

    def census(self, mtus: Iterable[int]) -> dict[str, Any]:
        """Plain counts of what the scan saw, findings or not: a check against another tool
        (the benchmark compares them with tshark's). Keys and definitions: analyze/README.md."""
        syn: dict[str, dict[int, int]] = {"syn_mss": {}, "synack_mss": {}}
        for g in self.mss.groups.values():
            d = syn["synack_mss" if g.synack else "syn_mss"]
            d[g.mss] = d.get(g.mss, 0) + g.count
        icmp = {"icmp_frag_needed_mtu": {}, "icmpv6_packet_too_big_mtu": {}}
        for (v6, mtu), g in self.icmp.frag.items():
            icmp["icmpv6_packet_too_big_mtu" if v6 else "icmp_frag_needed_mtu"][mtu] = (
                g.frames.count
            )
        pairs = [p for p in self.dtls.pairs.values() if p.attempts]
        return {
            **{k: _keyed(v) for k, v in (syn | icmp).items()},
            "df_over_mtu": {str(m): sum(self.size.over(m).values()) for m in sorted(set(mtus))},
            "dtls_client_hellos": sum(self.dtls.hello_versions.values()),
            "dtls_client_hellos_by_version": {
                f"0x{v:04x}": n for v, n in sorted(self.dtls.hello_versions.items())
            },
            "dtls_flows": len(pairs),
            "dtls_flows_answered": sum(p.answered for p in pairs),
            "tls_client_hellos": self.tls.client_hellos,
        }


def _keyed(counts: dict[int, int]) -> dict[str, int]:
    return {str(k): n for k, n in sorted(counts.items())}
