"""Build the :class:`~labkit.plot.Timeline` of a case for ``--plot``: the decisions of the
picture (which address is the client, which MTUs to draw, which events go in which lane), so
that :mod:`labkit.plot` only draws.

Packet sizes come from the analyzer's one pass over each capture (:class:`Sampler`, a
consumer of the same chunks the detectors see; no Python per packet): IP length, time and
direction relative to the client, plus the rows that are DTLS ClientHellos, TLS ClientHellos
and ICMP frag-needed / Packet Too Big. Everything else comes from the findings and the log
events. Memory is bounded while the capture streams by (:class:`_Points`: the packets above a
floor and the others each evenly decimated to :data:`MAX_POINTS`, every large packet kept
below that); so are markers per lane. The MTU lines are known only after judging, so the sampler's floor is the smallest MTU known
before the pass: ``--tunnel-mtu``, else the model's TLS MTU.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np

from labkit import mtu
from labkit.analyze.engine import ChunkView
from labkit.analyze.logfold import MAX_MARKERS
from labkit.analyze.timeline import LogInputs
from labkit.findings import Finding
from labkit.plot import Direction, Level, Marker, Series, Timeline

MAX_POINTS: Final = 400_000
#: The columns of a kept packet: time, IP size, source and destination address hashes (the
#: chunk columns' types).
_COLUMNS: Final = (("t", np.float64), ("s", np.int64), ("src", np.uint64), ("dst", np.uint64))
#: The decrypted CSTP series: the report's direction, the plot's shape, the label.
_DECRYPTED: Final[tuple[tuple[Literal["to-client", "to-server"], Direction, str], ...]] = (
    ("to-client", "to", "decrypted CSTP: to the client"),
    ("to-server", "from", "decrypted CSTP: from the client"),
)


def _levels(findings: Sequence[Finding]) -> tuple[Level, ...]:
    named: dict[int, list[str]] = {}
    for f in findings:
        pairs = {
            "mtu-mismatch": (
                ("packet_size", "packet size the adapter MTU allows"),
                ("tunnel_mtu", "tunnel MTU"),
            ),
            "cstp-connect": (("x_dtls_mtu", "X-DTLS-MTU"), ("x_cstp_mtu", "X-CSTP-MTU")),
            "icmp-frag-needed": (("mtu", "ICMP next-hop MTU"),),
        }.get(f.id, ())
        for key, label in pairs:
            v = f.fields.get(key)
            if isinstance(v, int) and label not in named.get(v, []):
                named.setdefault(v, []).append(label)
    if not named:
        p = mtu.predict(mtu.TunnelConfig())
        named = {p.adapter_mtu: ["model: adapter/DTLS MTU"], p.tls_mtu: ["model: TLS MTU"]}
    return tuple(Level(v, ", ".join(labels)) for v, labels in sorted(named.items(), reverse=True))


class _Thinned:
    """Rows of one kind, kept in bounded memory while the capture streams by: every
    ``stride``-th of the ``seen`` so far (by their index among the rows of the kind), in
    columns (:data:`_COLUMNS`) allocated once. Each time :data:`MAX_POINTS` fill, every other
    kept row goes and the stride doubles, so the kept ones stay evenly spread over the whole
    capture (keeping the first ones instead would end the picture's line where the budget ran
    out)."""

    def __init__(self) -> None:
        self.stride = 1
        self.seen = 0
        self.kept = 0
        self._cols = [np.empty(0, dtype) for _name, dtype in _COLUMNS]

    def add(self, rows: np.ndarray, columns: Sequence[np.ndarray]) -> None:
        """The next rows of this kind (``rows`` of the chunk's ``columns``, in capture order):
        the kept ones are known from the stride before any column is copied."""
        first = -self.seen % self.stride
        self.seen += len(rows)
        rows = rows[first :: self.stride]
        n, k = self.kept, len(rows)
        if n + k > len(self._cols[0]):  # room for the budget and a few chunks, rarely grown
            room = max(MAX_POINTS + 2 * k, 2 * (n + k))
            self._cols = [_grown(col, n, room) for col in self._cols]
        for col, source in zip(self._cols, columns, strict=True):
            col[n : n + k] = source[rows]
        self.kept = n + k
        while self.kept > MAX_POINTS:
            self.stride *= 2
            n, self.kept = self.kept, (self.kept + 1) // 2
            for col in self._cols:  # the kept ones are every stride-th: keep every other
                col[: self.kept] = col[:n:2]

    def columns(self) -> list[np.ndarray]:
        """The kept rows' columns, in capture order (valid until the next :meth:`add`)."""
        return [col[: self.kept] for col in self._cols]


def _grown(col: np.ndarray, n: int, room: int) -> np.ndarray:
    """``col``'s first ``n`` rows in an array of ``room``: only those rows are written (the
    rest of the memory is touched when rows come)."""
    out = np.empty(room, col.dtype)
    out[:n] = col[:n]
    return out


@dataclass(frozen=True, slots=True)
class _Rows:
    """The kept packets of a capture in time order, one array per column (:data:`_COLUMNS`)."""

    t: np.ndarray
    s: np.ndarray
    src: np.ndarray
    dst: np.ndarray


class _Points:
    """The packets of one capture, kept in bounded memory while the capture streams by.

    Packets above the smallest MTU line (the picture's point) and the others are thinned
    apart, each to :data:`MAX_POINTS`: every large packet is kept unless there are more than
    that, and a mass of small ones never crowds them out.
    """

    def __init__(self, floor: int) -> None:
        self.floor = floor
        self.big = _Thinned()
        self.small = _Thinned()
        self.sent: Counter = Counter()  # packets per source address hash
        self.received: Counter = Counter()
        self.openers: Counter = Counter()  # TCP SYN sources: who opens connections
        self.total = 0

    @property
    def thinned(self) -> bool:
        return self.big.stride > 1 or self.small.stride > 1

    @staticmethod
    def _count(counter: Counter, values: np.ndarray) -> None:
        from labkit.analyze.engine import tally  # np.unique's answer, hashed: no sort per row

        keys, _first, counts = tally(values)
        counter.update(dict(zip(keys.tolist(), counts.tolist())))

    def add(
        self,
        t: np.ndarray,
        size: np.ndarray,
        src: np.ndarray,
        dst: np.ndarray,
        syn_src: np.ndarray,
        rows: np.ndarray | None = None,
    ) -> None:
        """Count and sample the packets at ``rows`` of the columns (None: every row);
        ``syn_src``: the sources of the TCP SYNs among them."""
        picked_src = src if rows is None else src[rows]
        picked_dst = dst if rows is None else dst[rows]
        self.total += len(picked_src)
        self._count(self.sent, picked_src)
        self._count(self.received, picked_dst)
        self._count(self.openers, syn_src)
        above = size > self.floor
        if rows is None:
            big, small = np.flatnonzero(above), np.flatnonzero(~above)
        else:
            big_rows = above[rows]
            big, small = rows[big_rows], rows[~big_rows]
        columns = (t, size, src, dst)
        self.big.add(big, columns)
        self.small.add(small, columns)

    def above(self, floor: int) -> tuple[int, bool]:
        """How many packets were larger than ``floor`` bytes, and whether that is exact: it is
        when ``floor`` is the one the packets were split at (every large packet counted
        before thinning) or nothing was thinned; otherwise the kept rows, each weighed by its
        stride, estimate it."""
        if floor == self.floor:
            return self.big.seen, True
        kinds = (self.big, self.small)
        over = [int(np.count_nonzero(k.columns()[1] > floor)) for k in kinds]
        if not self.thinned:
            return sum(over), True
        return sum(n * k.stride for n, k in zip(over, kinds, strict=True)), False

    def rows(self, where: Callable[[_Rows], np.ndarray] | None = None) -> _Rows:
        """The kept rows (those ``where``, given a kind's rows, holds for) by time, stably:
        the large ones listed first, each kind in capture order. Each kind's rows are in time
        order in a capture in time order: then the two are merged, the fewer inserted among
        the others, and a direction's rows of one kind need no copy."""
        big, small = self.big.columns(), self.small.columns()
        if where is not None:
            big, small = (_select(cols, where(_Rows(*cols))) for cols in (big, small))
        if not len(big[0]) or not len(small[0]):
            cols = big if len(big[0]) else small
            if not _in_order(cols[0]):
                cols = [col[np.argsort(cols[0], kind="stable")] for col in cols]
            return _Rows(*cols)
        if _in_order(big[0]) and _in_order(small[0]):
            if len(small[0]) <= len(big[0]):  # each small row after the large ones up to its time
                at = np.searchsorted(big[0], small[0], "right")
                return _Rows(*(np.insert(b, at, s) for b, s in zip(big, small, strict=True)))
            at = np.searchsorted(small[0], big[0], "left")  # each large row before its time's small
            return _Rows(*(np.insert(s, at, b) for b, s in zip(big, small, strict=True)))
        t = np.concatenate((big[0], small[0]))
        order = np.argsort(t, kind="stable")
        pairs = zip(big[1:], small[1:], strict=True)
        return _Rows(t[order], *(np.concatenate(pair)[order] for pair in pairs))


def _select(cols: list[np.ndarray], mask: np.ndarray) -> list[np.ndarray]:
    return cols if bool(mask.all()) else [col[mask] for col in cols]


def _in_order(t: np.ndarray) -> bool:
    return bool(np.all(t[1:] >= t[:-1]))


class Sampler:
    """The plot's consumer of the one pass: bounded packet points and event markers."""

    def __init__(self, tunnel_mtu: int | None = None) -> None:
        model = mtu.predict(mtu.TunnelConfig()).tls_mtu
        self.points = _Points(min(tunnel_mtu or model, model))
        self.markers: list[Marker] = []

    def feed(self, view: ChunkView) -> None:
        from labkit.analyze.decode import (
            PROTO_ICMP,
            PROTO_ICMPV6,
            PROTO_TCP,
            PROTO_UDP,
            TCP_ACK,
            TCP_SYN,
        )
        from labkit.wire import CT_HANDSHAKE, HS_CLIENT_HELLO

        c, chunk = view.cols, view.chunk
        ts = chunk.ts
        ip = (c.ipver > 0) & np.isfinite(ts)  # SPBs and impossible times: no place on an axis
        syn = view.syn_rows[(c.flags[view.syn_rows] & (TCP_SYN | TCP_ACK)) == TCP_SYN]
        rows = None if ip.all() else np.flatnonzero(ip)
        self.points.add(ts, c.iplen, c.src_h, c.dst_h, c.src_h[syn], rows)
        if len(self.markers) >= 3 * MAX_MARKERS:
            return
        # ICMP type/code are the first bytes after the ICMP header offset (RFC 792, 4443).
        icmp = np.flatnonzero((c.proto == PROTO_ICMP) | (c.proto == PROTO_ICMPV6))
        icmp = icmp[c.l4[icmp] + 2 <= chunk.data[icmp] + chunk.caplen[icmp]]
        kind = chunk.buf[c.l4[icmp]].astype(np.int64)
        code = chunk.buf[c.l4[icmp] + 1].astype(np.int64)
        frag = np.where(c.proto[icmp] == PROTO_ICMP, (kind == 3) & (code == 4), kind == 2)
        hs = np.flatnonzero(c.p0 == CT_HANDSHAKE)  # a few rows: the rest is read on them only
        proto = c.proto[hs]
        lanes = (
            ("DTLS ClientHello", hs[(proto == PROTO_UDP) & (c.p13[hs] == HS_CLIENT_HELLO)]),
            ("TLS session start", hs[(proto == PROTO_TCP) & (c.p5[hs] == HS_CLIENT_HELLO)]),
            ("ICMP frag-needed", icmp[frag]),
        )
        for lane, at in lanes:
            times = ts[at]
            times = times[np.isfinite(times)]
            if len(self.markers) < 3 * MAX_MARKERS:
                self.markers += [Marker(float(t), lane) for t in times[:MAX_MARKERS]]


def _directions(client: int) -> tuple[tuple[Direction, str, Callable[[_Rows], np.ndarray]], ...]:
    """Packets to, from and not about the ``client`` address hash: shape, label, selection."""
    return (
        ("to", "to the client", lambda r: r.dst == client),
        ("from", "from the client", lambda r: r.src == client),
        ("other", "other hosts", lambda r: (r.dst != client) & (r.src != client)),
    )


def build(
    samples: Sequence[tuple[str, Sampler]],
    findings: Sequence[Finding],
    inputs: LogInputs,
    points: dict[str, str] | None = None,
) -> Timeline:
    """The picture of a case. ``samples``: each capture's :class:`Sampler`, from the
    analyzer's pass; ``points``: each capture's capture point (outside, tunnel, inside), from
    the analyzer; packets counted against the tunnel MTU are the ones outside the TLS/DTLS
    transport (outside captures carry encrypted records, not tunnel packets)."""
    captures = [path for path, _s in samples]
    points = points or {}
    levels = _levels(findings)
    floor = min(lv.value for lv in levels)
    series: list[Series] = []
    markers: list[Marker] = []
    notes: list[str] = []
    over, exact = 0, True
    for path, sample in samples:
        pts = sample.points
        markers += sample.markers
        if not pts.total:
            continue
        # The client of each capture point: the host that opens the TCP connections (the VPN
        # client's NIC outside; its tunnel address on the adapter and inside), else the busiest.
        client_h = (pts.openers or pts.sent).most_common(1)[0][0]
        name = Path(path).name
        if points.get(path) != "outside":
            n, known = pts.above(floor)
            over, exact = over + n, exact and known
        if points.get(path, "unknown") != "unknown":
            name += f" ({points[path]})"
        to_n, from_n = pts.received[client_h], pts.sent[client_h]
        counts = (to_n, from_n, pts.total - to_n - from_n)
        for (direction, label, where), count in zip(_directions(client_h), counts, strict=True):
            rows = pts.rows(where)
            if len(rows.t):
                series.append(Series(f"{name}: {label} ({count})", rows.t, rows.s, name, direction))
        sampled = [
            f"the ones {where} {pts.floor} bytes sampled 1 in {kind.stride}"
            for where, kind in (("above", pts.big), ("at or below", pts.small))
            if kind.stride > 1
        ]
        if sampled:
            notes.append(f"{name}: {pts.total} packets, " + ", ".join(sampled))
    if series and len(levels) > 1:  # captured packets over the smallest MTU: the picture's point
        levels = tuple(
            Level(lv.value, f"{lv.label} ({'' if exact else 'about '}{over} packets above)")
            if lv.value == floor
            else lv
            for lv in levels
        )
    for path, report in inputs.decrypted:
        for report_dir, shape, label in _DECRYPTED:
            sized = report.data_sizes.of(report_dir)
            if len(sized):
                series.append(
                    Series(
                        f"{label} ({len(sized)})",
                        sized.time,
                        sized.size,
                        f"decrypted {path}",
                        shape,
                    )
                )
        for tun in report.tunnels:
            assert tun.response is not None
            markers.append(
                Marker(
                    tun.response.time,
                    "CSTP CONNECT",
                    f"X-CSTP-MTU {tun.head_end('X-CSTP-MTU')}, X-DTLS-MTU {tun.head_end('X-DTLS-MTU')}",
                )
            )
    for f in findings:
        if f.id == "pmtud-black-hole":
            markers += [Marker(e.time, "retransmission") for e in f.evidence if e.time is not None]
        if f.id == "vpn-reconnect":
            in_capture = [e.time for e in f.evidence if e.file in captures and e.time is not None]
            timed = [e.time for e in f.evidence if e.time is not None]
            when = max(in_capture) if in_capture else (min(timed) if timed else None)
            if when is not None:
                lane = (
                    "TLS session start"
                    if in_capture
                    else (
                        "DART"
                        if any(p == e.file for p, _ in inputs.dart for e in f.evidence)
                        else "ASA session"
                    )
                )
                markers.append(Marker(when, lane, "reconnect", reconnect=True))
    for path, syslog in inputs.syslog:
        for earliest in syslog.markers.values():
            markers += earliest.items()
        name = Path(path).name
        for direction, too_large in syslog.too_large.items():
            if too_large.seen:
                series.append(
                    Series(
                        f"{name}: packets the ASA logged as too large, {direction} the client "
                        f"({too_large.seen})",
                        np.array(too_large.times),
                        np.array(too_large.sizes),
                        name,
                        direction,
                    )
                )
                if too_large.stride > 1:
                    notes.append(
                        f"{name}: {too_large.seen} packets the ASA logged {direction} the "
                        f"client, sampled 1 in {too_large.stride}"
                    )
    for _path, dart in inputs.dart:
        markers += dart.markers.items()
    by_lane: dict[str, list[Marker]] = {}
    for m in markers:
        by_lane.setdefault(m.lane, []).append(m)
    kept = [
        m for lane in by_lane.values() for m in sorted(lane, key=lambda m: m.time)[:MAX_MARKERS]
    ]
    names = [Path(p).name for p in captures] + [
        Path(p).name for p, _ in inputs.syslog + inputs.dart
    ]
    title = "labkit analyze: " + ", ".join(names)
    return Timeline(title, tuple(series), levels, tuple(kept), tuple(notes))
