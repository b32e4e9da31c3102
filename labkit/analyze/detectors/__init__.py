"""Detectors: each folds chunks of one file into per-flow facts (never per-packet lists).

One instance of each per file; :mod:`labkit.analyze.case` joins their facts across the files
of a case into findings. Adding a detector: a class with ``feed(view)`` and a line here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from labkit.analyze.detectors.coverage import CoverageDetector
from labkit.analyze.detectors.dtlspairs import DtlsDetector, with_tls_sessions
from labkit.analyze.detectors.frags import FragmentDetector
from labkit.analyze.detectors.hosts import HostsDetector
from labkit.analyze.detectors.icmp import IcmpDetector
from labkit.analyze.detectors.mss import MssDetector
from labkit.analyze.detectors.retrans import RetransDetector
from labkit.analyze.detectors.sessions import TlsDetector
from labkit.analyze.detectors.size import SizeDetector
from labkit.analyze.duplicates import DuplicateFilter
from labkit.analyze.engine import MAX_FLOWS, FlowBudget
from labkit.mtu import JUMBO_MTU, TCP_HEADER


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
    coverage: CoverageDetector
    hosts: HostsDetector
    dedup: DuplicateFilter  # not a detector: it blanks duplicates before the detectors run
    budget: FlowBudget

    @classmethod
    def new(cls, file: str, max_flows: int = MAX_FLOWS) -> FileFacts:
        """``max_flows``: the ceiling of each per-flow table (the default fits in 1 GB)."""
        budget = FlowBudget(max_flows)
        return cls(
            DtlsDetector(file, budget),
            TlsDetector(file, budget),
            MssDetector(file, budget),
            IcmpDetector(file),
            SizeDetector(file),
            RetransDetector(file, budget),
            FragmentDetector(file),
            CoverageDetector(file),
            HostsDetector(file),
            DuplicateFilter(),
            budget,
        )

    @property
    def detectors(self) -> list:
        return [
            self.dtls,
            self.tls,
            self.mss,
            self.icmp,
            self.size,
            self.retrans,
            self.frags,
            self.coverage,
            self.hosts,
        ]

    def segment_ceiling(self) -> int:
        """The largest TCP payload a peer may send in this file: the largest MSS any SYN or
        SYN-ACK announced, or, with none seen, the largest any link carries (a 9216-byte jumbo
        frame). A segment above it was captured before segmentation offload or after
        coalescing (:mod:`labkit.analyze.detectors.size`)."""
        return max((g.mss for g in self.mss.groups.values()), default=JUMBO_MTU - 20 - TCP_HEADER)

    def offload_ceiling(self) -> int | None:
        """:meth:`segment_ceiling` when the file holds segments above it, else None."""
        ceiling = self.segment_ceiling()
        return ceiling if self.size.offloaded(ceiling)[0] else None

    def warnings(self) -> list[str]:
        """What the bounded tables gave up, and what the capture's sizes cannot show, one line
        each (the report's file warnings)."""
        out = self._offload_warning()
        b = self.budget
        if not b.judged_early:
            return out + self.dedup.warnings()
        tables = ", ".join(f"{n} {name}(s)" for name, n in sorted(b.evicted.items()))
        early = (
            f"{b.judged_early} flow(s) judged early: a table outgrew its ceiling "
            f"(--max-flows {b.max_flows}, fewer rows for tables whose rows cost more), the "
            f"quietest were dropped ({tables}; a reconnect or retransmission among them "
            f"cannot be seen)"
        )
        return [*out, early, *self.dedup.warnings()]

    def _offload_warning(self) -> list[str]:
        ceiling = self.segment_ceiling()
        n, largest = self.size.offloaded(ceiling)
        if not n:
            return []
        return [
            f"{n} DF TCP segment(s) carry more than {ceiling} bytes, the largest MSS announced "
            f"here (up to {largest}-byte packets): captured before segmentation offload "
            "(TSO/GSO) or after coalescing (GRO/LRO), not as sent on the wire, so they are left "
            f"out of size verdicts (tcp.len > {ceiling}); capture with offloads off (ethtool -K "
            "IF tso off gso off gro off) or on the path to see wire sizes"
        ]

    def census(self, mtus: Iterable[int]) -> dict[str, Any]:
        """Plain counts of what the scan saw, findings or not: a check against another tool
        (the benchmark compares them with tshark's). Keys and definitions: analyze/README.md."""
        syn: dict[str, dict[int, int]] = {"syn_mss": {}, "synack_mss": {}}
        for group in self.mss.groups.values():
            d = syn["synack_mss" if group.synack else "syn_mss"]
            d[group.mss] = d.get(group.mss, 0) + group.count
        icmp: dict[str, dict[int, int]] = {
            "icmp_frag_needed_mtu": {},
            "icmpv6_packet_too_big_mtu": {},
        }
        for (v6, mtu), frag in [*self.icmp.frag.items(), *self.icmp.bogus.items()]:
            d = icmp["icmpv6_packet_too_big_mtu" if v6 else "icmp_frag_needed_mtu"]
            d[mtu] = d.get(mtu, 0) + frag.frames.count
        pairs = self.dtls.table
        tried = pairs.col("distinct") > 0  # a pair made by data alone is no DTLS flow
        with_tls = with_tls_sessions(pairs.hashes("client"), pairs.hashes("server"), [self.tls])
        other = tried & ~self.dtls.anyconnect(with_tls, ())
        return {
            **{k: _keyed(v) for k, v in (syn | icmp).items()},
            "df_over_mtu": {str(m): sum(self.size.over(m).values()) for m in sorted(set(mtus))},
            "dtls_client_hellos": sum(self.dtls.hello_versions.values()),
            "dtls_client_hellos_by_version": {
                f"0x{v:04x}": n for v, n in sorted(self.dtls.hello_versions.items())
            },
            # Pairs dropped at the ceiling are still flows seen (the other figure needs TLS).
            "dtls_flows": int(np.count_nonzero(tried)) + self.dtls.early_flows,
            "dtls_flows_answered": int(np.count_nonzero(tried & self.dtls.answered()))
            + self.dtls.early_answered,
            # By this file's own evidence (a TLS session in another file of the case can
            # still make a flow AnyConnect-like in the findings).
            "dtls_flows_other": int(np.count_nonzero(other)),
            "dtls_duplicate_hellos": self.dtls.duplicate_hellos,
            "tls_client_hellos": self.tls.client_hellos,
            "duplicate_frames": self.dedup.count,
            "retrans_cannot_tell": self.retrans.cannot_tell_flows,
            "not_inspected": self.coverage.total,
            "not_inspected_by_reason": self.coverage.by_reason(),
        }


def _keyed(counts: dict[int, int]) -> dict[str, int]:
    return {str(k): n for k, n in sorted(counts.items())}
