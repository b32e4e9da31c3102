"""What the analyzer could not look into, per file, and why: the blind spots a verdict of
"no problem" must admit.

A frame is *not inspected* when decoding stopped before a packet the detectors read: a link
layer or EtherType that carries no IP (ARP, LLDP, STP), an encapsulation that cannot be opened
(encrypted MACsec, a protected 802.11 frame), headers cut by the snap length, or an IP packet
whose protocol no detector reads (ESP, OSPF, SCTP...). Counted by reason, from the column
decode's ``why`` column and IP protocol: numpy over the chunk, no per-packet work.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from labkit.analyze import decode as dec
from labkit.analyze.engine import ChunkView

#: IP protocols the detectors read; every other one is a blind spot.
INSPECTED_PROTOCOLS = (dec.PROTO_ICMP, dec.PROTO_TCP, dec.PROTO_UDP, dec.PROTO_ICMPV6)


def reasons(cols: dec.Columns) -> np.ndarray:
    """Each row's reason code (:func:`~labkit.analyze.decode.why_text`), 0 if inspected."""
    why = cols.why.copy()
    dup = why == (dec.WHY_DUPLICATE << 32)  # counted once already, by the duplicate filter
    ip = (cols.ipver > 0) & (why == 0)
    other = ip & cols.first & ~np.isin(cols.proto, INSPECTED_PROTOCOLS)
    why[other] = (dec.WHY_IP_PROTO << 32) | cols.proto[other]
    why[(cols.ipver == 0) & (why == 0)] = dec.WHY_BAD_IP << 32
    why[dup] = 0
    return why


class CoverageDetector:
    """Counts the frames of one file that were not inspected, by reason."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.codes: Counter[int] = Counter()

    def feed(self, view: ChunkView) -> None:
        why = reasons(view.cols)
        codes, counts = np.unique(why[why != 0], return_counts=True)
        self.codes.update(dict(zip(codes.tolist(), counts.tolist())))

    @property
    def total(self) -> int:
        return sum(self.codes.values())

    def by_reason(self) -> dict[str, int]:
        """Reason text -> frames, most frames first."""
        out: Counter[str] = Counter()
        for code, n in self.codes.items():
            out[dec.why_text(code)] += n
        return dict(out.most_common())


def blind_spots(counts: list[dict]) -> str:
    """How a "no problem" verdict admits what it did not see: the frames of the analyzed files
    (their ``counts``) that were not inspected, with the commonest reasons; "" when none."""
    total = sum(c.get("not_inspected", 0) for c in counts)
    if not total:
        return ""
    why: Counter[str] = Counter()
    for c in counts:
        why.update(c.get("not_inspected_by_reason", {}))
    return f"{total} frame(s) not inspected ({top_reasons(why)})"


def unjudged_black_holes(counts: list[dict]) -> str:
    """What qualifies a "no black hole" claim: the flows whose retransmitted large segment
    could not be judged (``retrans_cannot_tell``); "" when none."""
    n = sum(c.get("retrans_cannot_tell", 0) for c in counts)
    if not n:
        return ""
    return (
        f" ({n} flow(s) could not be judged: a large segment was retransmitted and the "
        f"receiver was never seen again)"
    )


def top_reasons(by_reason: dict[str, int], k: int = 3) -> str:
    """``'EtherType 0x0806: 4, ...'``: the ``k`` reasons with the most frames."""
    top = Counter(by_reason).most_common()
    more = f", {len(top) - k} more reason(s)" if len(top) > k else ""
    return ", ".join(f"{reason}: {n}" for reason, n in top[:k]) + more
