"""ICMP errors: "fragmentation needed" (type 3 code 4, RFC 1191) and ICMPv6 "Packet Too Big"
(type 2, RFC 4443 3.2) with the next-hop MTU, plus the flows other unreachables quote.

The quoted original header holds a length and addresses of its own: it is read as a quote
(what did not fit, and for which flow), never counted as a packet. Grouped per MTU; per group
the quoted lengths and the flows they name (bounded).

An MTU no link can have (zero, below IPv4's 68 or IPv6's 1280) or one the quoted packet
already fits in is *bogus*: kept apart (``bogus``), never a limit, so that a crafted or broken
ICMP (an evasion test, a confused middlebox) cannot become "the tunnel MTU".

What the sender did next tells working path-MTU discovery from a failure: each quoted TCP or
UDP flow is followed after its first ICMP (:class:`Followup`): did it send data at or below
the MTU, and did it keep sending packets above it? A datagram sender (DTLS, QUIC, a VPN's
datagrams) gets the same ICMP as a TCP sender and has the same two answers: shrink its
datagrams, or keep sending ones that are dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from labkit import mtu as mtu_model
from labkit.analyze import decode as dec
from labkit.analyze.decode import PROTO_TCP, PROTO_UDP, IcmpError, Quote
from labkit.analyze.engine import ChunkView, member, with_keys
from labkit.analyze.evidence import MAX_FRAMES, FrameSet

MAX_FLOWS = 64
#: Packets above the MTU that leave the sender this long after the ICMP reached the capture
#: point are not "already in flight": the sender did not adapt (RFC 1191 3: it must at once).
GRACE_S = 1.0


@dataclass(frozen=True, slots=True)
class IcmpSelection:
    """Which ICMP errors are evidence, said once, so that the display filter names what the
    detector groups: ICMP (or ICMPv6, ``v6``) errors of one type, code (None: any) and
    reported MTU (None: any), the fields the detector keys its groups by (ICMP errors are
    rare: decoded one by one, never columns). ``fits`` splits one MTU's errors by their
    quote, as :func:`bogus_reason` does: True, those whose quoted packet fits in the MTU (a
    bogus report); False, the others (no quote, or a larger packet); None, all. ``layers``:
    the frames' IP layer indexes at which the quotes were found (the filter needs them)."""

    v6: bool
    type: int
    code: int | None
    mtu: int | None = None
    fits: bool | None = None
    layers: tuple[int, ...] = ()

    def wireshark(self) -> str:
        p = "icmpv6" if self.v6 else "icmp"
        clause = f"{p}.type == {self.type}"
        if self.code is not None:
            clause += f" && {p}.code == {self.code}"
        if self.mtu is not None:
            clause += f" && {p}.mtu == {self.mtu}"
        if self.fits is not None:
            assert self.mtu is not None
            fits = _quote_fits(self.v6, self.mtu, self.layers)
            clause += f" && {fits}" if self.fits else f" && !{fits}"
        return clause


def frag_needed(v6: bool, mtu: int) -> IcmpSelection:
    """ICMP "fragmentation needed" (type 3 code 4) or ICMPv6 Packet Too Big (type 2, whose
    only code is 0) reporting ``mtu``."""
    return IcmpSelection(True, 2, None, mtu) if v6 else IcmpSelection(False, 3, 4, mtu)


@dataclass(slots=True)
class FragNeeded:
    v6: bool
    mtu: int
    frames: FrameSet  # its clause is ``sel``'s filter
    sel: IcmpSelection
    original_lengths: Counter = field(default_factory=Counter)
    flows: set[tuple[str, str, int, int | None, int | None]] = field(default_factory=set)
    reporters: set[str] = field(default_factory=set)
    reason: str = ""  # why the MTU is bogus; "" for a usable MTU
    quote_layers: set[int] = field(default_factory=set)  # IcmpError.quote_layer values seen
    #: Where the errors whose quote could not be read (cut by the snap length, or garbled)
    #: went: those senders did get an ICMP, for some flow (bounded).
    unquoted_to: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Unreachable:
    """Other ICMP unreachables (port, prohibited...) quoting a UDP/TCP flow: who blocks it."""

    type: int
    code: int
    frames: FrameSet  # its clause is ``sel``'s filter
    sel: IcmpSelection
    flows: set[tuple[str, str, int, int | None, int | None]] = field(default_factory=set)


@dataclass(slots=True)
class Followup:
    """One quoted TCP or UDP flow after its first ICMP: what the sender sent next."""

    mtu: int
    since: float  # time of the first ICMP quoting the flow
    fitted: int = 0  # data segments at or below the MTU, after the ICMP
    first_fit_s: float | None = None  # how long after the ICMP the first of them left
    oversized_late: int = 0  # packets above the MTU sent GRACE_S or more after the ICMP
    oversized_frames: list[int] = field(default_factory=list)
    #: The largest packet of the flow a router quoted: one that was on the wire. A TCP
    #: segment of the flow larger than that is no wire packet but one the capture saw before
    #: the sender's segmentation offload (TSO/GSO) or after the receiver's coalescing (GRO):
    #: its size says nothing of what the sender put on the wire.
    wire: int = 0
    offloaded: int = 0  # such segments after the ICMP (neither fitting nor oversized)


def flow_of(q: Quote) -> tuple[str, str, int, int | None, int | None]:
    return q.src, q.dst, q.proto, q.sport, q.dport


def bogus_reason(v6: bool, mtu: int, quoted_length: int | None) -> str:
    """Why an ICMP next-hop MTU cannot be a path limit ("" when it can)."""
    floor = mtu_model.MIN_IPV6_MTU if v6 else mtu_model.MIN_IPV4_LINK_MTU
    if mtu == 0:
        return "an MTU of 0"
    if mtu < floor:
        return f"below IPv{6 if v6 else 4}'s minimum MTU of {floor}"
    if quoted_length is not None and quoted_length <= mtu:
        return f"the quoted {quoted_length}-byte packet already fits in {mtu}"
    return ""


def _quote_fits(v6: bool, mtu: int, layers: Iterable[int]) -> str:
    """Display filter: the quoted header fits in ``mtu``. The quote is the frame's last IP
    layer of its version: the second of a plain frame, the third inside GRE or IP-in-IP.
    Wireshark counts layers from the link (and tshark 4.0 has no "last" index), so each
    ``layers`` index the quotes were found at is spelled out, tied to the frame's count of
    that layer: the carrier's own length at the same index in a deeper frame never counts."""
    proto, length, limit = ("ipv6", "ipv6.plen", mtu - 40) if v6 else ("ip", "ip.len", mtu)
    each = [f"count({proto}) == {k} && {length}#{k} <= {limit}" for k in sorted(layers)]
    return "(" + " || ".join(each) + ")"


class IcmpDetector:
    def __init__(self, file: str) -> None:
        self.file = file
        self.frag: dict[tuple[bool, int], FragNeeded] = {}  # usable MTUs
        self.bogus: dict[tuple[bool, int], FragNeeded] = {}
        self.unreach: dict[tuple[bool, int, int], Unreachable] = {}
        #: (protocol, directed flow hash) -> what came next
        self.followups: dict[tuple[int, int], Followup] = {}
        self.errors = 0  # ICMP errors of any type: each quotes a header tshark also dissects
        self._flow_names: dict[tuple[int, int], tuple] = {}
        self._udp_ports: set[int] = set()  # the followed UDP flows' destination ports
        # The followed flows' hashes per protocol and their ports, sorted: grown once per
        # chunk by a sorted insert of the new ones, so a chunk's look-up never walks (or sorts)
        # every flow followed so far.
        self._keys = {PROTO_TCP: np.zeros(0, np.uint64), PROTO_UDP: np.zeros(0, np.uint64)}
        self._new: dict[int, list[int]] = {PROTO_TCP: [], PROTO_UDP: []}
        self._ports = np.zeros(0, np.int64)

    def feed(self, view: ChunkView) -> None:
        rare = view.rare
        at = [i for i, pkt in enumerate(rare) if pkt.icmp is not None]
        if at:
            self._errors(view, at)
        if self.followups:
            self._follow(view)

    def _errors(self, view: ChunkView, at: list[int]) -> None:
        """Fold the chunk's ICMP errors (``at``: their places in ``view.rare``) by signature:
        the reporter, the addressee and the error with its quote. A router answering every
        oversized packet repeats a few signatures thousands of times, so the groups' tables
        are updated once per signature, not per packet. Signatures are taken in the order they
        first appear, so every bounded table keeps the same first entries as a packet-by-packet
        fold would; the evidence frames are picked per group from the chunk's rows, in order."""
        rare = view.rare
        self.errors += len(at)
        sigs: dict[tuple[str, str, IcmpError | None], int] = {}  # None: never, see ``at``
        ids = np.fromiter(
            (sigs.setdefault((rare[i].src, rare[i].dst, rare[i].icmp), len(sigs)) for i in at),
            np.int64,
            len(at),
        )
        rows = view.rare_rows[at]
        frames, times = view.frames[rows], view.ts[rows]
        # ids are numbered as signatures first appear: a signature's first row is where the
        # running maximum grows
        first = np.flatnonzero(ids > np.maximum.accumulate(np.r_[-1, ids[:-1]]))
        counts = np.bincount(ids, minlength=len(sigs))
        sets: list[FrameSet] = []  # the chunk's groups' frame sets, by group number
        number: dict[int, int] = {}  # id(frame set) -> group number
        # each signature's group number (-1: no group, the error is evidence of nothing)
        group_of: list[int] = []
        for (reporter, to, err), k, n in zip(sigs, first.tolist(), counts.tolist()):
            assert err is not None
            fs = None
            if err.frag_needed and err.mtu is not None:
                fs = self._frag(float(times[k]), reporter, to, err, n)
            elif (
                err.quote is not None
                and err.quote.proto in (PROTO_TCP, PROTO_UDP)
                and (err.type == 1 if err.v6 else err.type == 3)
            ):
                fs = self._unreachable(err)
            if fs is None:
                group_of.append(-1)
                continue
            if id(fs) not in number:
                number[id(fs)] = len(sets)
                sets.append(fs)
            group_of.append(number[id(fs)])
        group = np.array(group_of, np.int64)[ids]
        order = np.argsort(group, kind="stable")  # each group's rows, in frame order
        starts = np.searchsorted(group[order], np.arange(len(sets) + 1))
        for j, fs in enumerate(sets):
            mine = order[starts[j] : starts[j + 1]]
            few = mine[:MAX_FRAMES]
            fs.add_many(frames[few].tolist(), times[few].tolist(), len(mine))

    def _unreachable(self, err: IcmpError) -> FrameSet:
        """Count an unreachable quoting a TCP or UDP flow; its group's frame set."""
        assert err.quote is not None
        key = (err.v6, err.type, err.code)
        u = self.unreach.get(key)
        if u is None:
            sel = IcmpSelection(err.v6, err.type, err.code)
            u = self.unreach[key] = Unreachable(
                err.type, err.code, FrameSet(self.file, sel.wireshark()), sel
            )
        if len(u.flows) < MAX_FLOWS:
            u.flows.add(flow_of(err.quote))
        return u.frames

    def _frag(self, ts: float, reporter: str, to: str, err: IcmpError, n: int) -> FrameSet:
        """Count ``n`` copies of one frag-needed error, the first at ``ts``; its group's frame
        set."""
        assert err.mtu is not None
        quoted = err.quote.total_length if err.quote is not None else None
        reason = bogus_reason(err.v6, err.mtu, quoted)
        table = self.bogus if reason else self.frag
        key = (err.v6, err.mtu)
        g = table.get(key)
        if g is None:
            sel = frag_needed(err.v6, err.mtu)
            frames = FrameSet(self.file, sel.wireshark())
            g = table[key] = FragNeeded(err.v6, err.mtu, frames, sel, reason=reason)
        g.reporters.add(reporter)
        if err.quote is not None:
            g.quote_layers.add(err.quote_layer)
            g.original_lengths[err.quote.total_length] += n
            if len(g.flows) < MAX_FLOWS:
                g.flows.add(flow_of(err.quote))
            if not reason:
                self._watch(err.quote, err.mtu, ts)
        elif len(g.unquoted_to) < MAX_FLOWS:
            g.unquoted_to.add(to)
        return g.frames

    def _watch(self, q: Quote, mtu: int, ts: float) -> None:
        """Follow the quoted TCP or UDP flow from now on (the first ICMP for it sets the
        time)."""
        if q.proto not in (PROTO_TCP, PROTO_UDP) or q.sport is None or q.dport is None:
            return
        if len(self.followups) >= MAX_FLOWS:
            return
        h = q.proto, dec.directed_int(dec.addr_hash(q.src), dec.addr_hash(q.dst), q.sport, q.dport)
        f = self.followups.get(h)
        if f is None:
            f = self.followups[h] = Followup(mtu, ts)
            self._flow_names[h] = flow_of(q)
            self._new[q.proto].append(h[1])
            if q.proto == PROTO_UDP and q.dport not in self._udp_ports:
                self._udp_ports.add(q.dport)
                self._ports = np.array(sorted(self._udp_ports), np.int64)
        elif mtu < f.mtu:
            f.mtu = mtu
        f.wire = max(f.wire, q.total_length)

    def _follow(self, view: ChunkView) -> None:
        """Sizes the followed flows sent after their ICMP, in this chunk (numpy; few rows).
        TCP rows carry their flow hash and are grouped by it (a search per followed flow, not
        per row); UDP rows get one only when their destination port is a followed flow's (few
        rows, and no cost while no UDP flow is followed)."""
        c = view.cols
        for proto in (PROTO_TCP, PROTO_UDP):
            if self._new[proto]:
                self._keys[proto] = with_keys(self._keys[proto], self._new[proto])
                self._new[proto].clear()
            keys = self._keys[proto]
            if not len(keys):
                continue
            if proto == PROTO_TCP:  # the chunk's flows are grouped already: search those
                rows, own = view.tcp_groups().members(keys)
                rows = np.sort(rows[c.tcp_fwd[rows] == keys[own]])
                fwd = c.tcp_fwd[rows]
            else:
                udp = (c.proto == PROTO_UDP) & c.first & member(c.dport, self._ports)
                rows = np.flatnonzero(udp)
                fwd = dec.directed(c.src_h[rows], c.dst_h[rows], c.sport[rows], c.dport[rows])
                hit = member(fwd, keys)
                rows, fwd = rows[hit], fwd[hit]
            if len(rows):
                self._sizes(view, proto, rows, fwd)

    def _sizes(self, view: ChunkView, proto: int, rows: np.ndarray, fwd: np.ndarray) -> None:
        """A TCP sender must resend the bytes that were dropped, so its data after the ICMP
        at or below the MTU is that data cut smaller. A datagram sender resends nothing: its
        small datagrams (keepalives, acknowledgements) are other messages, so only a datagram
        that every path need not carry (over 576 bytes, IPv6 1280; the MTU itself when that
        is smaller) shows it sends at the new size."""
        c = view.cols
        ts, size, data = view.ts[rows], c.iplen[rows], c.paylen[rows] > 0
        if proto == PROTO_UDP:
            floor = np.where(c.ipver[rows] == 6, mtu_model.MIN_IPV6_MTU, mtu_model.MIN_IPV4_MTU)
        for h in np.unique(fwd).tolist():
            f = self.followups[proto, h]
            mine = (fwd == h) & (ts > f.since)
            if proto == PROTO_TCP:  # a datagram larger than the quoted one is just larger
                offloaded = mine & (size > f.wire)
                f.offloaded += int(np.count_nonzero(offloaded))
                mine &= ~offloaded
            fit = mine & data & (size <= f.mtu)
            if proto == PROTO_UDP:
                fit &= size >= np.minimum(floor + 1, f.mtu)
            if fit.any():
                f.fitted += int(np.count_nonzero(fit))
                first = float(ts[fit][0]) - f.since
                f.first_fit_s = first if f.first_fit_s is None else min(f.first_fit_s, first)
            late = mine & (size > f.mtu) & (ts >= f.since + GRACE_S)
            if late.any():
                f.oversized_late += int(np.count_nonzero(late))
                room = 12 - len(f.oversized_frames)
                if room > 0:
                    f.oversized_frames += view.frames[rows[late]][:room].tolist()

    def finish(self) -> None:
        """An MTU both bogus (the quote fits) and usable (the quote is larger) in this file:
        the quoted length tells the two groups' frames apart, so each filter selects its own
        (alone, the ICMP type and MTU select a group exactly)."""
        for key, b in self.bogus.items():
            g = self.frag.get(key)
            if g is not None and b.reason.startswith("the quoted"):
                layers = tuple(sorted(b.quote_layers))
                for grp, fits in ((b, True), (g, False)):
                    grp.sel = replace(grp.sel, fits=fits, layers=layers)
                    grp.frames.clause = grp.sel.wireshark()

    def unquoted_targets(self) -> set[str]:
        """Hosts sent a frag-needed / Packet Too Big whose quote could not be read."""
        return {h for t in (self.frag, self.bogus) for g in t.values() for h in g.unquoted_to}

    def quoted_flows(self) -> set[tuple[str, str, int, int | None, int | None]]:
        return {f for g in self.frag.values() for f in g.flows}

    def outcome(self, g: FragNeeded) -> str:
        """What the senders of ``g``'s quoted TCP and UDP flows did next: "adapted" (data at
        or below the MTU, nothing above it after the grace time), "oversized" (packets above
        the MTU kept coming), or "" (the capture does not show: no TCP or UDP flow quoted,
        none seen after)."""
        mine = self.followups_of(g)
        if any(f.oversized_late for f in mine):
            return "oversized"
        if mine and any(f.fitted for f in mine):
            return "adapted"
        return ""

    def followups_of(self, g: FragNeeded) -> list[Followup]:
        return [f for h, f in self.followups.items() if self._flow_names[h] in g.flows]
