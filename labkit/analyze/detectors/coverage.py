"""What the analyzer could not look into, per file, and why: the blind spots a verdict of
"no problem" must admit.

A frame is *not inspected* when decoding stopped before a packet the detectors read: a link
layer or EtherType that carries no IP (ARP, LLDP, STP), an encapsulation that cannot be opened
(encrypted MACsec, a protected 802.11 frame), headers cut by the snap length, or an IP packet
whose protocol no detector reads (ESP, OSPF, SCTP...). Counted by reason, from the column
decode's ``why`` column and IP protocol: numpy over the chunk, no per-packet work.

A capture taken with a short snap length (``tcpdump -s 68``, old tcpdump's default, or a
switch's truncating mirror) keeps every IP header, so sizes and DF are judged, but cuts what
lies beyond: a SYN's MSS option, the first bytes of a TLS or DTLS record, an ICMP error's quote.
Such a frame is counted too (:data:`~labkit.analyze.decode.WHY_SNAP`, by what was cut), so a
"no DTLS failure" or "no ICMP for this flow" is never claimed from bytes that were not there.
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
    _snap_cuts(cols, why)
    why[dup] = 0
    return why


#: Payload bytes the detectors read: a TLS record header and handshake type (5 + 1), a DTLS
#: record header and handshake type (13 + 1); an ICMP error's quote: the original IP header
#: and its ports.
_TLS_PROBE, _DTLS_PROBE = 6, 14
_QUOTE_V4, _QUOTE_V6 = 20 + 8, 40 + 8
_ICMP_ERRORS_V4, _ICMP_ERRORS_V6 = (3, 11, 12), (1, 2, 3, 4)


def _snap_cuts(cols: dec.Columns, why: np.ndarray) -> None:
    """Mark the inspected IP rows of records cut short whose cut hides what a detector reads
    (``why`` in place). Only records whose captured length is below the wire length are
    looked at: in a capture without a snap length this costs one comparison per row."""
    ch = cols.chunk
    cut = np.flatnonzero((ch.caplen < ch.origlen) & (why == 0) & cols.first)
    if not len(cut):
        return
    end = ch.data[cut] + ch.caplen[cut]
    proto, sport, paylen, pcap = cols.proto[cut], cols.sport[cut], cols.paylen[cut], cols.pcap[cut]
    tcp, udp = proto == dec.PROTO_TCP, proto == dec.PROTO_UDP
    part = np.zeros(len(cut), np.int64)
    part[tcp & (pcap < np.minimum(paylen, _TLS_PROBE))] = dec.SNAP_TCP_PAYLOAD
    syn = tcp & (sport >= 0) & ((cols.flags[cut] & 0x02) != 0)
    part[syn & (end < cols.pay[cut])] = dec.SNAP_SYN_OPTIONS
    part[tcp & (sport < 0)] = dec.SNAP_TCP_HEADER
    part[udp & (pcap < np.minimum(paylen, _DTLS_PROBE))] = dec.SNAP_UDP_PAYLOAD
    part[udp & (sport < 0)] = dec.SNAP_UDP_HEADER
    icmp = np.flatnonzero((proto == dec.PROTO_ICMP) | (proto == dec.PROTO_ICMPV6))
    if len(icmp):
        l4, e = cols.l4[cut][icmp], end[icmp]
        v6 = proto[icmp] == dec.PROTO_ICMPV6
        itype = np.where(e > l4, ch.buf[np.minimum(l4, len(ch.buf) - 1)], -1)
        error = np.where(v6, np.isin(itype, _ICMP_ERRORS_V6), np.isin(itype, _ICMP_ERRORS_V4)) | (
            e <= l4
        )
        on_wire = cols.l3[cut][icmp] + cols.iplen[cut][icmp] - (l4 + 8)
        need = np.minimum(on_wire, np.where(v6, _QUOTE_V6, _QUOTE_V4))
        hidden = error & (need > 0) & (e < l4 + 8 + need)
        part[icmp[hidden]] = dec.SNAP_ICMP_QUOTE
    hit = part > 0
    why[cut[hit]] = (dec.WHY_SNAP << 32) | part[hit]


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

    def snap_cut(self, part: int) -> int:
        """Frames whose snap length cut ``part`` (``decode.SNAP_*``)."""
        return self.codes.get((dec.WHY_SNAP << 32) | part, 0)

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
