"""Build the :class:`~labkit.plot.Timeline` of a case for ``--plot``: the decisions of the
picture (which address is the client, which MTUs to draw, which events go in which lane), so
that :mod:`labkit.plot` only draws.

Packet sizes come from one more pass over each capture through the reader's columns (no
Python per packet): IP length, time and direction relative to the client, plus the rows that
are DTLS ClientHellos, TLS ClientHellos and ICMP frag-needed / Packet Too Big. Everything else
comes from the findings and the log events. Points are bounded (:data:`MAX_POINTS` per series,
evenly sampled, every packet above the smallest MTU line kept); so are markers per lane.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np

from labkit import mtu
from labkit.analyze.timeline import LogInputs
from labkit.findings import Finding
from labkit.logs.syslog import LargePacket, PmtudPacket, SessionEvent
from labkit.plot import Level, Marker, Series, Timeline

MAX_POINTS: Final = 400_000
MAX_MARKERS: Final = 5_000


def _thin(times: np.ndarray, sizes: np.ndarray, keep_above: int) -> tuple[np.ndarray, np.ndarray, bool]:
    if len(times) <= MAX_POINTS:
        return times, sizes, False
    big = sizes > keep_above
    step = max(1, int(np.count_nonzero(~big) // (MAX_POINTS // 2)) + 1)
    small_idx = np.flatnonzero(~big)[::step]
    big_idx = np.flatnonzero(big)[:MAX_POINTS // 2]
    idx = np.sort(np.concatenate([small_idx, big_idx]))
    return times[idx], sizes[idx], True


def _levels(findings: Sequence[Finding]) -> tuple[Level, ...]:
    named: dict[int, list[str]] = {}
    for f in findings:
        pairs = {
            "mtu-mismatch": (("packet_size", "packets sized for"), ("tunnel_mtu", "tunnel MTU")),
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


def _capture_pass(path: str) -> tuple[dict[str, np.ndarray], list[Marker], Counter, Counter]:
    """Sizes, times and address hashes of every IP packet; the rows that are events; who
    opens TCP connections (SYN sources) and who talks most, to name the client."""
    from labkit.analyze.decode import (PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP,
                                       TCP_ACK, TCP_SYN, columns)
    from labkit.analyze.reader import open_capture

    parts: dict[str, list[np.ndarray]] = {"t": [], "s": [], "src": [], "dst": []}
    markers: list[Marker] = []
    openers: Counter = Counter()
    talkers: Counter = Counter()
    with open_capture(path) as cap:
        for chunk in cap.chunks():
            c = columns(chunk)
            ip = c.ipver > 0
            ts = chunk.ts
            for key, col in (("t", ts), ("s", c.iplen), ("src", c.src_h), ("dst", c.dst_h)):
                parts[key].append(col[ip].copy())
            syn = (c.proto == PROTO_TCP) & ((c.flags & (TCP_SYN | TCP_ACK)) == TCP_SYN)
            openers.update(c.src_h[syn].tolist())
            talkers.update(c.src_h[ip].tolist())
            # ICMP type/code are the first bytes after the ICMP header offset (RFC 792, 4443).
            end = chunk.data + chunk.caplen
            icmp = ((c.proto == PROTO_ICMP) | (c.proto == PROTO_ICMPV6)) & (c.l4 + 2 <= end)
            rows = np.flatnonzero(icmp)
            kind = chunk.buf[c.l4[rows]].astype(np.int64)
            code = chunk.buf[c.l4[rows] + 1].astype(np.int64)
            frag = np.where(c.proto[rows] == PROTO_ICMP, (kind == 3) & (code == 4), kind == 2)
            lanes = (
                ("DTLS ClientHello", ts[(c.proto == PROTO_UDP) & (c.p0 == 22) & (c.p13 == 1)]),
                ("TLS session start", ts[(c.proto == PROTO_TCP) & (c.p0 == 22) & (c.p5 == 1)]),
                ("ICMP frag-needed", ts[rows[frag]]),
            )
            for lane, times in lanes:
                markers += [Marker(float(t), lane) for t in times[:MAX_MARKERS]]
    cols = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    return cols, markers, openers, talkers


def build(captures: Sequence[str], findings: Sequence[Finding], inputs: LogInputs,
          points: dict[str, str] | None = None) -> Timeline:
    """The picture of a case. ``points``: each capture's capture point (outside, tunnel,
    inside), from the analyzer; packets counted against the tunnel MTU are the ones outside
    the TLS/DTLS transport (outside captures carry encrypted records, not tunnel packets)."""
    points = points or {}
    levels = _levels(findings)
    floor = min(lv.value for lv in levels)
    series: list[Series] = []
    markers: list[Marker] = []
    notes: list[str] = []
    over = 0
    for path in captures:
        cols, m, openers, talkers = _capture_pass(path)
        markers += m
        if not len(cols["t"]):
            continue
        # The client of each capture point: the host that opens the TCP connections (the VPN
        # client's NIC outside; its tunnel address on the adapter and inside), else the busiest.
        client_h = (openers or talkers).most_common(1)[0][0]
        name = Path(path).name
        if points.get(path) != "outside":
            over += int(np.count_nonzero(cols["s"] > floor))
        if points.get(path, "unknown") != "unknown":
            name += f" ({points[path]})"
        for direction, label, rows in (
                ("to", f"{name}: to the client", cols["dst"] == client_h),
                ("from", f"{name}: from the client", cols["src"] == client_h),
                ("other", f"{name}: other hosts", (cols["dst"] != client_h) & (cols["src"] != client_h))):
            times, sizes, thinned = _thin(cols["t"][rows], cols["s"][rows], floor)
            if len(times):
                series.append(Series(f"{label} ({int(np.count_nonzero(rows))})", times, sizes,
                                     name, direction))  # type: ignore[arg-type]
            if thinned:
                notes.append(f"'{label}' sampled to {len(times)} points (all above {floor} bytes kept)")
    if series and len(levels) > 1:  # captured packets over the smallest MTU: the picture's point
        levels = tuple(Level(lv.value, f"{lv.label} ({over} packets above)") if lv.value == floor
                       else lv for lv in levels)
    for path, report in inputs.decrypted:
        for direction, shape, label in (("to-client", "to", "decrypted CSTP: to the client"),
                                        ("to-server", "from", "decrypted CSTP: from the client")):
            pts = [d for d in report.sizes if d.direction == direction]
            if pts:
                series.append(Series(f"{label} ({len(pts)})", np.array([d.time for d in pts]),
                                     np.array([d.size for d in pts]), f"decrypted {path}", shape))  # type: ignore[arg-type]
        for tun in report.tunnels:
            assert tun.response is not None
            markers.append(Marker(tun.response.time, "CSTP CONNECT",
                                  f"X-CSTP-MTU {tun.head_end('X-CSTP-MTU')}, X-DTLS-MTU {tun.head_end('X-DTLS-MTU')}"))
    for f in findings:
        if f.id == "pmtud-black-hole":
            markers += [Marker(e.time, "retransmission") for e in f.evidence if e.time is not None]
        if f.id == "vpn-reconnect":
            in_capture = [e.time for e in f.evidence if e.file in captures and e.time is not None]
            timed = [e.time for e in f.evidence if e.time is not None]
            when = max(in_capture) if in_capture else (min(timed) if timed else None)
            if when is not None:
                lane = "TLS session start" if in_capture else (
                    "DART" if any(p == e.file for p, _ in inputs.dart for e in f.evidence) else "ASA session")
                markers.append(Marker(when, lane, "reconnect", reconnect=True))
    for path, events in inputs.syslog:
        logged: dict[str, list[tuple[float, int]]] = {"to": [], "from": []}
        for e in events:
            if e.time is None:
                continue
            if isinstance(e, (LargePacket, PmtudPacket)):
                limit = e.threshold if isinstance(e, LargePacket) else e.mtu
                markers.append(Marker(e.time, "ASA 722036/602101", f"{e.size} > {limit}"))
                # The ASA names the packet's size: a point in the size panel, like a captured one.
                from_client = isinstance(e, LargePacket) and e.direction == "from-client"
                logged["from" if from_client else "to"].append((e.time, e.size))
            elif isinstance(e, SessionEvent):
                markers.append(Marker(e.time, "ASA session", e.kind))
        name = Path(path).name
        for direction, pts in logged.items():
            if pts:
                what = "to" if direction == "to" else "from"
                series.append(Series(f"{name}: packets the ASA logged as too large, {what} the client "
                                     f"({len(pts)})", np.array([p[0] for p in pts]),
                                     np.array([p[1] for p in pts]), name, direction))  # type: ignore[arg-type]
    for path, dart in inputs.dart:
        markers += [Marker(e.time, "DART", e.kind) for e in dart if e.kind != "other"]
    by_lane: dict[str, list[Marker]] = {}
    for m in markers:
        by_lane.setdefault(m.lane, []).append(m)
    kept = [m for lane in by_lane.values() for m in sorted(lane, key=lambda m: m.time)[:MAX_MARKERS]]
    names = [Path(p).name for p in captures] + [Path(p).name for p, _ in inputs.syslog + inputs.dart]
    title = "labkit analyze: " + ", ".join(names)
    return Timeline(title, tuple(series), levels, tuple(kept), tuple(notes))
