"""One case, several files: join the detectors' facts into findings and a verdict.

Files of a case are captures of the same incident at different points (outside: client <->
head-end on the wire; tunnel: the client's virtual adapter, raw IP; inside: head-end <->
server). Facts from one point explain another's: the ICMP MTU seen inside is the limit the
tunnel imposes on the packets sized by the SYN MSS seen on the adapter; the DTLS attempts seen
outside make a TLS session a tunnel and the next session a reconnect. Evidence always names
each file's own frame numbers, with a display filter per file.

Decisions made here (detectors only collect facts):

* head-ends: ``--headend`` addresses, and every DTLS server that the same client also speaks
  TLS to, or that answers on UDP 443, or that speaks AnyConnect's DTLS 0x0100;
* tunnel MTU: ``--tunnel-mtu``, and each ICMP frag-needed / Packet Too Big MTU;
* ``vpn-reconnect``: a new TLS session from a client to a head-end after an earlier session of
  that client to that head-end during which the client attempted DTLS (the CSTP CONNECT had
  happened: AnyConnect starts DTLS only with the X-DTLS-* headers of the CONNECT response);
  ``gap_s`` is the new session's first packet time minus the last packet of the earlier
  session before it;
* ``mtu-mismatch``: packets sized for MTU A (DF sizes, a quoted original length, SYN MSS + 40/60)
  where the path allows only B < A; without B (no ICMP, no option) only a black hole supports
  it, and the finding then carries ``packet_size`` alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np

from labkit import mtu
from labkit.analyze import decode as dec
from labkit.analyze import pmtud
from labkit.analyze.detectors import FileFacts
from labkit.analyze.detectors.coverage import blind_spots, unjudged_black_holes
from labkit.analyze.detectors.dtlspairs import DtlsDetector, DtlsPair, with_tls_sessions
from labkit.analyze.detectors.icmp import FragNeeded, IcmpDetector
from labkit.analyze.detectors.mss import SynGroup, SynSelection
from labkit.analyze.detectors.retrans import MIN_COPIES, Candidate
from labkit.analyze.detectors.sessions import TlsHellos, TlsSession
from labkit.analyze.detectors.size import DfSelection
from labkit.analyze.diagnosis import fold
from labkit.analyze.evidence import (
    FrameSet,
    Selection,
    any_of,
    located,
    select,
)
from labkit.analyze.report import AnalyzeOptions, FileReport
from labkit.findings import (
    DtlsAbsent,
    DtlsEstablished,
    DtlsNondefaultPort,
    DtlsOther,
    DtlsUnanswered,
    Finding,
    IcmpFragNeeded,
    MtuMismatch,
    OversizedDf,
    PmtudBlackHole,
    Role,
    SynMss,
    VpnReconnect,
)
from labkit.wire.linktypes import LINKTYPE_LOOP, LINKTYPE_NULL, RAW_LINKTYPES

DEFAULT_VPN_PORT = mtu.DEFAULT_DTLS_PORT
RAW_POINT_LINKTYPES = RAW_LINKTYPES | {LINKTYPE_NULL, LINKTYPE_LOOP}


@dataclass(frozen=True, slots=True)
class Limit:
    """A tunnel MTU and where it comes from."""

    mtu: int
    source: str  # "option" or "icmp"
    v6: bool = False


def _per_file(sets: Iterable[FrameSet], clause: str | None = None) -> list[Selection | None]:
    by_file: dict[str, list[FrameSet]] = {}
    for s in sets:
        by_file.setdefault(s.file, []).append(s)
    return [select(v, clause=clause) for v in by_file.values()]


def _hex(v: int | None) -> str | None:
    return None if v is None else f"0x{v:04x}"


class Case:
    def __init__(
        self,
        facts: dict[str, FileFacts],
        reports: dict[str, FileReport],
        options: AnalyzeOptions,
    ) -> None:
        """Judging is a pure function of the files' facts (their evidence frames included,
        collected during the one pass) and the options: it never reads a capture."""
        self.facts = facts
        self.reports = reports
        self.options = options
        sids = {t.session_id for t in options.tunnel_dtls}
        vpn = []
        for f in facts.values():
            t = f.dtls.table
            tls = with_tls_sessions(
                t.hashes("client"), t.hashes("server"), (ff.tls for ff in facts.values())
            )
            vpn.append(f.dtls.anyconnect(tls, options.headends, sids))
        self.dtls = self._dtls_unanswered([f.dtls for f in facts.values()], vpn)
        self.headends = self._headends()
        self._head_hashes = np.array(sorted(dec.addr_hash(h) for h in self.headends), np.uint64)
        self._points = {file: self._capture_point(file) for file in facts}

    # --- who is who ----------------------------------------------------------------------
    def _headends(self) -> set[str]:
        servers = (d.det.table.addresses(d.det.table.hashes("server")[d.vpn]) for d in self.dtls)
        return set(self.options.headends).union(*servers)

    def capture_point(self, file: str) -> tuple[str, str, str]:
        """(point, why, what it cannot show) for one file."""
        return self._points[file]

    def _capture_point(self, file: str) -> tuple[str, str, str]:
        f = self.facts[file]
        rep = self.reports[file]
        transport = f.tls.servers_among(self.headends)
        dtls = f.dtls.table.addresses(f.dtls.table.hashes("server")) & self.headends
        if transport or dtls:
            heads = sorted(transport | dtls)
            what = " and ".join(
                x for x in ("TLS" if transport else "", "DTLS" if dtls else "") if x
            )
            return (
                "outside",
                f"{what} to head-end {', '.join(heads)}",
                "no inner traffic here (it is encrypted inside TLS/DTLS): capture on the "
                "client's adapter or the head-end's inside to see packet sizes, SYN MSS and ICMP",
            )
        cov = f.coverage
        cut = cov.snap_cut(dec.SNAP_UDP_PAYLOAD) + cov.snap_cut(dec.SNAP_TCP_PAYLOAD)
        if cut:  # "no TLS/DTLS" would be a claim about bytes that were not captured
            return (
                "unknown",
                f"the snap length cut {cut} TCP/UDP payload(s) before their record headers: "
                "TLS/DTLS to a head-end cannot be recognised",
                "TLS/DTLS, SYN MSS and ICMP quotes beyond the snap length: capture again with "
                "tcpdump -s 0",
            )
        raw = rep.linktypes and all(_lt_number(lt) in RAW_POINT_LINKTYPES for lt in rep.linktypes)
        if raw and rep.ip_packets:
            return (
                "tunnel",
                "raw IP without a link layer, no TLS/DTLS to a head-end: a tunnel "
                "adapter (the client's virtual adapter)",
                "no TLS/DTLS transport here: capture outside (the client's physical NIC) to see "
                "whether DTLS is answered and when the session reconnects",
            )
        if rep.ip_packets:
            return (
                "inside",
                "IP traffic with a link layer and no TLS/DTLS to a head-end: the "
                "head-end's inside (or a LAN segment)",
                "no TLS/DTLS transport here: capture outside to see whether DTLS is answered "
                "and when the session reconnects",
            )
        return "unknown", "no IP packets", "nothing: no IP traffic was found"

    # --- limits -----------------------------------------------------------------------------
    def limits(self) -> list[Limit]:
        out: list[Limit] = []
        if self.options.tunnel_mtu:
            out.append(Limit(self.options.tunnel_mtu, "option"))
        seen = set()
        for f in self.facts.values():
            for v6, m in f.icmp.frag:
                if (v6, m) not in seen:
                    seen.add((v6, m))
                    out.append(Limit(m, "icmp", v6))
        return out

    def icmp_flows(self) -> set[tuple]:
        return {fl for f in self.facts.values() for fl in f.icmp.quoted_flows()}

    # --- findings ---------------------------------------------------------------------------
    def findings(self) -> list[Finding]:
        out: list[Finding] = []
        out += self._dtls()
        out += self._dtls_other()
        out += self._dtls_absent()
        out += self._reconnects()
        out += self._syn_mss()
        out += self._icmp()
        out += pmtud.bogus_findings(self.facts) + pmtud.working_findings(self.facts)
        holes = self._black_holes()
        out += self._oversized()
        out += self._mismatch(holes)
        out += [h[0] for h in holes]
        out = fold(out, {file: point[0] for file, point in self._points.items()})
        order = {"error": 0, "warning": 1, "info": 2}
        out.sort(key=lambda f: (order[f.severity or "info"], f.id))
        return out

    def _dtls(self) -> list[Finding]:
        listing = _Listing()
        for i, d in enumerate(self.dtls):
            t, file = d.det.table, (i, d.det)
            established = d.det.established()
            cookies_only = (
                (t.col("hvr_n") > 0)
                & (t.col("sh_n") == 0)
                & (t.col("cookie") > 0)
                & (t.col("distinct") >= 2)
            )
            unanswered = ~established & (d.unanswered | cookies_only)
            other_port = (t.col("port") != DEFAULT_VPN_PORT) & (t.col("distinct") > 0)
            # A pair's first kind comes before its second: kinds are listed in that order.
            listing.add("dtls-established", self._established, file, d.vpn & established, 0)
            listing.add("dtls-unanswered", self._unanswered_finding, file, d.vpn & unanswered, 0)
            nondefault = d.vpn & other_port
            kind = "dtls-nondefault-port "
            listing.add(kind + "info", self._nondefault_port, file, nondefault & established, 1)
            listing.add(kind + "warning", self._nondefault_port, file, nondefault & ~established, 1)
        return listing.findings()

    def _established(self, p: DtlsPair) -> _PairFinding:
        sets = [p.hellos, p.hvr, p.server_hello]
        version = _hex(p.version)
        how = []
        if p.hvr.count:
            how.append("after a HelloVerifyRequest")
        if p.retransmitted_hellos:
            how.append(f"despite {p.retransmitted_hellos} retransmitted ClientHello(s)")
        if p.resumed:
            how.append("resuming the session (abbreviated handshake)")
        if not p.handshake_seen:
            how.append("(handshake before the capture: data flows both ways)")
            sets = [_data_set(p)]
        vname = dec.DTLS_VERSIONS.get(p.version or -1)
        summary = (
            f"DTLS {version} ({vname}) established between {p.client} and "
            f"{p.server} on UDP {p.port}" + (" " + ", ".join(how) if how else "") + "."
        )
        seen = p.handshake_seen
        return DtlsEstablished(
            summary=summary,
            **located(_per_file(sets)),
            version=version,
            version_name=vname,
            port=p.port,
            client=p.client,
            server=p.server,
            resumed=p.resumed,
            hello_verify_request=bool(p.hvr.count) if seen else None,
            retransmitted_hellos=p.retransmitted_hellos if seen else None,
            attempts=p.attempts if seen else None,
            cipher=_hex(p.cipher),
        )

    def _unanswered_finding(self, p: DtlsPair) -> _PairFinding:
        unreach = self._unreachables_for(p)
        hvr = p.hvr.count
        tail = (
            f"; the head-end answered {hvr} HelloVerifyRequest(s) but never a ServerHello"
            if hvr
            else ": UDP to the DTLS port is blocked or dropped on the path"
        )
        if unreach:
            tail += f" ({unreach} ICMP unreachable(s) came back for it)"
        summary = (
            f"{p.attempts} DTLS ClientHello(s) from {p.client} to {p.server} "
            f"UDP {p.port} got no DTLS answer{tail}; the client will fall back to "
            f"the TLS tunnel."
        )
        return DtlsUnanswered(
            summary=summary,
            **located(_per_file([p.hellos])),
            client=p.client,
            server=p.server,
            port=p.port,
            attempts=p.attempts,
            version=_hex(p.version),
            hello_verify_requests=hvr or None,
            icmp_unreachable=unreach or None,
        )

    def _nondefault_port(self, p: DtlsPair) -> _PairFinding:
        ok = p.established
        summary = (
            f"DTLS from {p.client} to {p.server} runs on UDP {p.port}, not the default 443"
            + (" (it works here)." if ok else ": a firewall opened for 443 only would drop it.")
        )
        return DtlsNondefaultPort(
            summary=summary,
            **located(_per_file([p.hellos])),
            severity=None if not ok else "info",
            port=p.port,
            client=p.client,
            server=p.server,
            established=ok,
        )

    def _dtls_other(self) -> list[Finding]:
        """DTLS that is not a VPN tunnel (WebRTC after STUN, CoAP, CAPWAP, test servers):
        described, never judged as the VPN's DTLS."""
        listing = _Listing()
        for i, d in enumerate(self.dtls):
            listing.add("dtls-other", self._other, (i, d.det), ~d.vpn, 0)
        return listing.findings()

    def _other(self, p: DtlsPair) -> _PairFinding:
        kind = "WebRTC (DTLS-SRTP after STUN)" if p.stun else "not an AnyConnect tunnel"
        state = (
            "established"
            if p.established
            else "answered"
            if p.answered
            else "not answered in this capture"
        )
        summary = (
            f"DTLS {_hex(p.version)} from {p.client} to {p.server} on UDP {p.port}, "
            f"{state}: {kind} (no TLS session to that server, not record version 0x0100), "
            f"so no VPN finding is drawn from it."
        )
        handshake = [s for s in (p.hellos, p.hvr, p.server_hello) if s is not None]
        sets = handshake if p.handshake_seen else [_data_set(p)]
        return DtlsOther(
            summary=summary,
            **located(_per_file(sets)),
            client=p.client,
            server=p.server,
            port=p.port,
            version=_hex(p.version),
            webrtc=p.stun,
            established=p.established,
            attempts=p.attempts if p.handshake_seen else None,
        )

    def _dtls_unanswered(
        self, dets: Sequence[DtlsDetector], vpn: Sequence[np.ndarray]
    ) -> list[_DtlsRows]:
        """Each file's pairs with the VPN ones unanswered: retried, and their coverage after
        the last ClientHello proven by any of the case's files (a capture split by protocol
        has the hellos in its UDP file and the client's and server's later packets, the TLS
        tunnel it fell back to, in another). One vectorized look-up per file, however many
        pairs."""
        retried = [d.retried() & v for d, v in zip(dets, vpn)]
        client = np.concatenate([d.table.hashes("client", r) for d, r in zip(dets, retried)])
        server = np.concatenate([d.table.hashes("server", r) for d, r in zip(dets, retried)])
        hello = np.concatenate([d.table.col("last_hello_ts")[r] for d, r in zip(dets, retried)])
        seen_c = np.full(len(client), -np.inf)
        seen_s = np.full(len(client), -np.inf)
        if len(client):
            for ff in self.facts.values():
                for table in (ff.hosts.last_sent, ff.dtls.watch.last_seen):
                    seen_c = np.maximum(seen_c, table(client))
                    seen_s = np.maximum(seen_s, table(server))
        covered = np.minimum(seen_c, seen_s) > hello
        out, at = [], 0
        for d, v, r in zip(dets, vpn, retried):
            unanswered = r.copy()
            n = int(np.count_nonzero(r))
            unanswered[r] = covered[at : at + n]
            at += n
            out.append(_DtlsRows(d, v, r, unanswered))
        return out

    def _any_unanswered(self) -> bool:
        return any(d.unanswered.any() for d in self.dtls)

    def cannot_tell(self, label: str) -> tuple[str, ...]:
        """What ``label``'s packets leave open: DTLS ClientHellos retried with no answer
        after which none of the case's captures shows the client or the server again, so an
        answer would not have shown either (a capture stopped, or split by protocol with the
        other part missing). Neither "unanswered" nor "fine": said, so a reader knows; one
        line for many pairs, so a busy capture's report still fits a screen."""
        open_rows = [(d.det, d.retried & ~d.unanswered) for d in self.dtls if d.det.file == label]
        n_open = sum(int(np.count_nonzero(m)) for _det, m in open_rows)
        firsts = [det.pairs_at(np.flatnonzero(m)[:1]) for det, m in open_rows]
        open_ = [p for first in firsts for p in first]
        why = (
            "no capture shows the client or the server after the last one (capture longer, "
            "or add the TCP part of the same capture)"
        )
        snap = self._snap_cannot_tell(label)
        if n_open == 1:
            p = open_[0]
            what = (
                f"the {p.attempts} DTLS ClientHello(s) from {p.client} to {p.server} UDP {p.port}"
            )
        elif open_:
            p = open_[0]
            what = (
                f"the DTLS ClientHellos of {n_open} client/server pairs (e.g. {p.client} to "
                f"{p.server} UDP {p.port})"
            )
        else:
            return snap
        return (f"whether {what} were answered: {why}", *snap)

    def _snap_cannot_tell(self, label: str) -> tuple[str, ...]:
        """What a short snap length hid in ``label``: each verdict that needs the bytes it cut,
        with how many frames, so "no DTLS failure" is not read as "DTLS was fine"."""
        cov = self.facts[label].coverage
        udp, tcp = cov.snap_cut(dec.SNAP_UDP_PAYLOAD), cov.snap_cut(dec.SNAP_TCP_PAYLOAD)
        syn, quote = cov.snap_cut(dec.SNAP_SYN_OPTIONS), cov.snap_cut(dec.SNAP_ICMP_QUOTE)
        fix = "capture again with tcpdump -s 0"
        out = []
        if udp or tcp:
            cut = " and ".join(
                x for x in (f"{udp} UDP" if udp else "", f"{tcp} TCP" if tcp else "") if x
            )
            out.append(
                f"whether DTLS or TLS ran and was answered: the snap length cut {cut} "
                f"payload(s) before their record headers ({fix})"
            )
        if syn:
            out.append(f"the MSS of {syn} SYN(s): the snap length cut their TCP options ({fix})")
        if quote:
            out.append(
                f"which flows {quote} ICMP error(s) were about: the snap length cut their "
                f"quoted headers ({fix})"
            )
        return tuple(out)

    def _unreachables_for(self, p: DtlsPair) -> int:
        n = 0
        for f in self.facts.values():
            for u in f.icmp.unreach.values():
                if any(
                    fl[0] == p.client
                    and fl[1] == p.server
                    and fl[2] == dec.PROTO_UDP
                    and fl[4] == p.port
                    for fl in u.flows
                ):
                    n += u.frames.count
        return n

    def _dtls_absent(self) -> list[Finding]:
        """One finding per client of a declared head-end with TLS sessions and no DTLS
        attempt, :data:`MAX_LISTED_PAIRS` of them at most (in address order, listed by name)
        and one for the rest: a head-end's busy day has a million such clients, and a
        finding, its frames and its JSON each cost kilobytes."""
        out: list[Finding] = []
        if not self.options.headends or not self.facts:  # only a declared head-end can
            return out  # miss its DTLS
        tried: set[tuple[str, str]] = set()
        sids: set[str] = set()  # tried through NAT
        for d in self.dtls:
            t = d.det.table
            rows = np.flatnonzero(d.vpn)
            sids |= t.session_ids_among(rows, (x.session_id for x in self.options.tunnel_dtls))
            heads = rows[t.named(t.hashes("server", rows), self.options.headends)]
            ends = np.unique(
                np.stack([t.hashes("client", heads), t.hashes("server", heads)]), axis=1
            )
            texts = t.texts(ends.reshape(-1))
            tried |= {(texts[c], texts[s]) for c, s in ends.T.tolist()}
        tried |= {(t.client, t.headend) for t in self.options.tunnel_dtls if t.session_id in sids}
        files = list(self.facts.values())
        for head in self.options.headends:
            cols = [f.tls.clients_to(head) for f in files]
            which = np.concatenate([np.full(len(c[0]), i) for i, c in enumerate(cols)])
            rows, client_h, client4 = (np.concatenate([c[j] for c in cols]) for j in range(3))
            skip = dec.addr_hashes(c for c, h in tried if h == head)
            mine = ~np.isin(client_h, skip)
            which, rows, client_h, client4 = which[mine], rows[mine], client_h[mine], client4[mine]
            if not len(rows):
                continue
            # IPv4 clients by address, then the others by hash; each one's sessions by file
            # and the order they began in (rows are in that order within a file).
            o = np.lexsort((rows, which, client_h, client4, client4 == 0))
            starts = np.flatnonzero(np.r_[True, client_h[o][1:] != client_h[o][:-1]])
            ends = np.r_[starts[1:], len(o)]
            groups = []
            for st, en in zip(starts[: MAX_LISTED_PAIRS + 1].tolist(), ends.tolist()):
                sel = o[st:en]
                sessions = [
                    s
                    for i, f in enumerate(files)
                    for s in f.tls.sessions_at(rows[sel][which[sel] == i])
                ]
                groups.append((sessions[0].client, sessions))
            listed = sorted(groups[:MAX_LISTED_PAIRS], key=lambda g: g[0])
            out += [_absent(client, head, sessions) for client, sessions in listed]
            more = len(starts) - MAX_LISTED_PAIRS - 1
            if more >= 0:
                client, sessions = groups[MAX_LISTED_PAIRS]
                out.append(
                    _standing_for(
                        _absent(client, head, sessions), more, "client(s) of this head-end"
                    )
                )
        return out

    def _reconnects(self) -> list[Finding]:
        """A session that starts after DTLS attempts made during the previous session."""
        out: list[Finding] = []
        endpoints = [(f, f.tls.endpoints_to(self.headends)) for f in self.facts.values()]
        wanted = {(c, s) for _f, eps in endpoints for (c, s, _p) in eps}
        if not wanted:  # no client with two sessions to a head-end: nothing to reconnect
            return out
        hellos: dict[tuple[str, str], list[float]] = {}
        clients, servers = {c for c, _s in wanted}, {s for _c, s in wanted}
        for d in self.dtls:
            t = d.det.table
            maybe = (
                d.vpn
                & (t.col("distinct") > 0)
                & t.named(t.hashes("client"), clients)
                & t.named(t.hashes("server"), servers)
            )
            for p in d.det.pairs_at(np.flatnonzero(maybe)):
                if (p.client, p.server) in wanted:
                    times = [t for _f, t in p.hellos.frames] + [p.last_hello_ts]
                    hellos.setdefault((p.client, p.server), []).extend(times)
        for f, eps in endpoints:
            for (client, server, port), keys in eps.items():
                times = hellos.get((client, server), [])
                if server not in self.headends or len(keys) < 2 or not times:
                    continue
                sessions = sorted((f.tls.sessions[k] for k in keys), key=lambda s: s.start_frame)
                for prev, s in zip(sessions, sessions[1:]):
                    if not any(prev.start_ts <= t < s.start_ts for t in times):
                        continue
                    last = s.prev_last.get(prev.key, prev.last_ts)
                    gap = round(max(0.0, s.start_ts - last), 3)
                    sel = TlsHellos(client, server, port, (prev.sport, s.sport))
                    fs = FrameSet(f.tls.file, sel.wireshark())
                    fs.add(prev.hello_frame, prev.hello_ts)
                    fs.add(s.hello_frame, s.hello_ts)
                    summary = (
                        f"{client} opened a new TLS session to head-end {server}:{port} {gap} s "
                        f"after the previous one (client port {prev.sport}) went quiet, following "
                        f"DTLS attempts during that session: the VPN session reconnected "
                        f"(AnyConnect does this to apply the TLS MTU when DTLS fails)."
                    )
                    out.append(
                        VpnReconnect(
                            summary=summary,
                            **located([select([fs])]),
                            client=client,
                            server=server,
                            port=port,
                            gap_s=gap,
                            previous_client_port=prev.sport,
                            client_port=s.sport,
                        )
                    )
        return out

    def _syn_roles(self, file: str) -> list[tuple[SynGroup, Role | None, int]]:
        """(group, role, count) for every SYN group of ``file`` split by role."""
        f = self.facts[file]
        heads = self._head_hashes
        out: list[tuple[SynGroup, Role | None, int]] = []
        for (synack, mss_v, ipver), grp in sorted(f.mss.groups.items()):
            if not self.headends:
                out.append((grp, None, grp.count))
                continue
            to_head, other = f.mss.role_counts(synack, mss_v, ipver, heads)
            rest: Role = "other" if self.capture_point(file)[0] == "outside" else "inner"
            roles: tuple[tuple[Role, int], ...] = (("outer", to_head), (rest, other))
            out += [(grp, role, n) for role, n in roles if n]
        return out

    def _syn(self, file: str, grp: SynGroup, role: Role | None) -> SynSelection:
        """The SYNs of one group and role in ``file``, as evidence."""
        det = self.facts[file].mss
        return SynSelection(
            grp.synack,
            grp.mss,
            grp.ipver,
            tuple(sorted(self.headends)),
            None if role is None else role == "outer",
            mixed_versions=len({ipv for _sa, _m, ipv in det.groups}) > 1,
            icmp_errors=bool(self.facts[file].icmp.errors),
        )

    def _syn_selection(self, file: str, grp: SynGroup, role: Role | None) -> Selection | None:
        """The first SYNs of one group and role, and a filter selecting exactly them."""
        syn = self._syn(file, grp, role)
        frames, count = syn.first_frames(self.facts[file].mss)
        clause = syn.wireshark()
        return select([FrameSet(file, clause, frames, count)], clause=clause)

    def _syn_mss(self) -> list[Finding]:
        out: list[Finding] = []
        for file in self.facts:
            for grp, role, count in self._syn_roles(file):
                sel = self._syn_selection(file, grp, role)
                shown = {fr for fr, _t in sel.frames} if sel else set()
                servers = sorted({srv for fr, _t, _h, srv in grp.frames if fr in shown})
                implied = mtu.mtu_for_mss(grp.mss, grp.ipver == 6)
                where = {
                    "outer": " on the outer connection to the head-end",
                    "inner": " of inner flows (through the tunnel)",
                    "other": " of other flows (not to the head-end)",
                }.get(role or "", "")
                who = "servers" if grp.synack else "clients"
                summary = (
                    f"{count} {'SYN-ACK' if grp.synack else 'SYN'}(s){where} announce MSS "
                    f"{grp.mss}: the {who} size packets for MTU {implied}."
                )
                out.append(
                    SynMss(
                        summary=summary,
                        **located([sel]),
                        mss=grp.mss,
                        direction="syn-ack" if grp.synack else "syn",
                        role=role,
                        ip_version=grp.ipver,
                        implied_mtu=implied,
                        count=count,
                        servers=servers[:8] or None,
                    )
                )
        return out

    def _icmp(self) -> list[Finding]:
        out: list[Finding] = []
        for f in self.facts.values():
            for (v6, m), g in sorted(f.icmp.frag.items()):
                lengths = g.original_lengths.most_common()
                orig = lengths[0][0] if lengths else None
                flows = sorted(g.flows, key=_flow_key)[:8]
                what = (
                    "ICMPv6 Packet Too Big" if v6 else "ICMP type 3 code 4 (fragmentation needed)"
                )
                summary = (
                    f"{g.frames.count} {what} from {', '.join(sorted(g.reporters)[:3])} with "
                    f"next-hop MTU {m}"
                    + (f", quoting a {orig}-byte original packet" if orig else "")
                    + ": the sender must send smaller packets."
                    + _after_icmp(f.icmp, g)
                )
                out.append(
                    IcmpFragNeeded(
                        summary=summary,
                        **located([select([g.frames])]),
                        severity="info" if pmtud.adapted({f.icmp.file: f}, v6, m) else None,
                        mtu=m,
                        original_length=orig,
                        ip_version=6 if v6 else 4,
                        original_lengths=[ln for ln, _n in lengths] if len(lengths) > 1 else None,
                        count=g.frames.count,
                        reporters=sorted(g.reporters)[:8],
                        quoted_flows=[_flow_text(fl) for fl in flows] or None,
                    )
                )
        return out

    def _over(self, limit: int) -> dict[str, Counter]:
        """Per file: DF packets larger than ``limit`` by IP size, head-end transport left out."""
        out = {}
        for file, f in self.facts.items():
            sizes = self._df(file, limit).counts(f.size)
            if sizes:
                out[file] = sizes
        return out

    def _df(self, file: str, limit: int, size: int | None = None) -> DfSelection:
        ceiling = self.facts[file].offload_ceiling()
        return DfSelection(tuple(sorted(self.headends)), limit, size, ceiling)

    def _df_evidence(self, file: str, sel: DfSelection, total: int) -> FrameSet:
        """The first DF frames ``sel`` selects in ``file``, and the filter that says which."""
        frames = sel.first_frames(self.facts[file].size)
        return FrameSet(file, sel.wireshark(), frames, max(total, len(frames)))

    def _pmtud_handles(self, lim: Limit) -> bool:
        """An ICMP limit its senders adapted to, in a case with no VPN to blame: path-MTU
        discovery at work (``pmtud-working``), neither a mismatch nor oversized traffic."""
        if lim.source != "icmp" or not pmtud.adapted(self.facts, lim.v6, lim.mtu):
            return False
        vpn = self._any_unanswered()
        return not (vpn or self.headends)

    def _pmtud_undecided(self, lim: Limit) -> bool:
        """An ICMP limit after which no quoted sender is seen sending above it, in a case with
        no VPN to blame: the ICMP shows one packet did not fit, which is path-MTU discovery's
        normal start, not a mismatch. A capture that ends at the ICMP, or whose sender's next
        packets are offload super-segments, cannot tell; it is never "confirmed"."""
        if lim.source != "icmp" or pmtud.kept_oversized(self.facts, lim.v6, lim.mtu):
            return False
        vpn = self._any_unanswered()
        return not (vpn or self.headends)

    def _oversized(self) -> list[Finding]:
        out: list[Finding] = []
        for lim in self.limits():
            if self._pmtud_handles(lim):
                continue
            for file, sizes in self._over(lim.mtu).items():
                total = sum(sizes.values())
                fs = self._df_evidence(file, self._df(file, lim.mtu), total)
                sel = select([fs], clause=fs.clause)
                size = sizes.most_common(1)[0][0]
                src_text = "--tunnel-mtu" if lim.source == "option" else "from ICMP"
                summary = (
                    f"{total} packets with DF set are larger than the {lim.mtu}-byte tunnel "
                    f"MTU ({src_text}); most are {size} bytes: they cannot cross the tunnel "
                    f"unfragmented."
                )
                out.append(
                    OversizedDf(
                        summary=summary,
                        **located([sel]),
                        packet_size=size,
                        tunnel_mtu=lim.mtu,
                        count=total,
                        sizes={str(k): v for k, v in sizes.most_common(5)},
                    )
                )
        return out

    def _black_holes(self) -> list[tuple[Finding, Candidate]]:
        out: list[tuple[Finding, Candidate]] = []
        quoted = self.icmp_flows()
        # A sender that got an ICMP whose quote was unreadable may have got it for this very
        # flow: "no ICMP came back" cannot be claimed for it.
        told = {h for f in self.facts.values() for h in f.icmp.unquoted_targets()}
        known = self.options.tunnel_mtu
        for f in self.facts.values():
            r = f.retrans
            for cd in r.candidates.values():
                if cd.copies.count < MIN_COPIES:
                    continue
                if cd.receiver_gone:  # nothing could have acknowledged it: cannot tell
                    continue
                if cd.acked_frame is not None and not cd.recovered_by_shrinking:
                    continue
                if r.acked_size.get(cd.fd, 0) >= cd.size:
                    continue
                if _quoted(cd, quoted) or cd.src in told or (known and cd.size <= known):
                    continue
                rec = (
                    " The sender then re-sent the data in smaller segments, which got through "
                    "(its own black-hole detection)."
                    if cd.recovered_by_shrinking
                    else ""
                )
                summary = (
                    f"The same {cd.size}-byte segment from {cd.src}:{cd.sport} to "
                    f"{cd.dst}:{cd.dport} was sent {cd.copies.count} times with DF set, never "
                    f"acknowledged, and no ICMP frag-needed came back: a PMTUD black hole "
                    f"(ICMP filtered on the path).{rec}"
                )
                out.append(
                    (
                        PmtudBlackHole(
                            summary=summary,
                            **located([select([cd.copies])]),
                            packet_size=cd.size,
                            segment_length=cd.length,
                            copies=cd.copies.count,
                            flow=_flow_text(cd.flow),
                            recovered_by_smaller_segments=cd.recovered_by_shrinking,
                            tunnel_mtu=known,
                        ),
                        cd,
                    )
                )
        return out

    def _mismatch(self, holes: list[tuple[Finding, Candidate]]) -> list[Finding]:
        out: list[Finding] = []
        done: set[tuple[int, int | None]] = set()
        vpn = self._any_unanswered()
        for lim in self.limits():
            parts: dict[str, list[_Part]] = {}
            size = None
            if lim.source == "icmp":
                quotes: Counter = Counter()
                for f in self.facts.values():
                    g = f.icmp.frag.get((lim.v6, lim.mtu))
                    if g is None:
                        continue
                    quotes.update({ln: n for ln, n in g.original_lengths.items() if ln > lim.mtu})
                    parts.setdefault(g.frames.file, []).append(([g.frames], None))
                if not quotes or self._pmtud_handles(lim) or self._pmtud_undecided(lim):
                    continue  # the quoted packets fit, or PMTUD works (or may) outside any VPN
                size = quotes.most_common(1)[0][0]
            over = self._over(lim.mtu)
            dsizes: Counter = Counter()
            for sizes in over.values():
                dsizes.update(sizes)
            if size is None and dsizes:
                size = dsizes.most_common(1)[0][0]
            syns = [
                (file, grp, role, n)
                for file in self.facts
                for grp, role, n in self._syn_roles(file)
                if not grp.synack
                and role in (None, "inner")
                and mtu.mtu_for_mss(grp.mss, grp.ipver == 6) > lim.mtu
            ]
            if size is None and syns and lim.source == "option":
                size = max(mtu.mtu_for_mss(g.mss, g.ipver == 6) for _f, g, _r, _n in syns)
            if size is None or size <= lim.mtu or (size, lim.mtu) in done:
                continue
            done.add((size, lim.mtu))
            for file, sizes in over.items():
                if size in sizes:
                    fs = self._df_evidence(file, self._df(file, lim.mtu, size), sizes[size])
                    parts.setdefault(file, []).append(([fs], fs.clause))
            for file, grp, role, _n in syns:
                if mtu.mtu_for_mss(grp.mss, grp.ipver == 6) == size:
                    sel = self._syn_selection(file, grp, role)
                    if sel is not None:
                        parts.setdefault(file, []).append(sel)
            for _h, cd in holes:
                if cd.size == size:
                    parts.setdefault(cd.copies.file, []).append(([cd.copies], None))
            sels = [_union(p) for p in parts.values()]
            how = {
                "icmp": f"ICMP frag-needed reports next-hop MTU {lim.mtu}",
                "option": f"the tunnel MTU is {lim.mtu} (--tunnel-mtu)",
            }[lim.source]
            ctx = (
                " - the client's adapter is at the DTLS MTU while traffic runs in the TLS tunnel"
                if vpn
                else ""
            )
            kept = lim.source == "icmp" and pmtud.kept_oversized(self.facts, lim.v6, lim.mtu)
            summary = (
                f"Packets sized for MTU {size} meet a path that carries only {lim.mtu} bytes: "
                f"{how}{ctx}. "
                + (
                    f"The sender kept sending packets above {lim.mtu} after the ICMP: they "
                    f"keep being dropped."
                    if kept
                    else f"The sender adapted to {lim.mtu} after the ICMP: path-MTU discovery "
                    f"works around it, at the cost of the first large packets of each flow."
                    if lim.source == "icmp" and pmtud.adapted(self.facts, lim.v6, lim.mtu)
                    else f"{size}-byte DF packets are dropped until the sender lowers "
                    f"its size (or forever, if ICMP is filtered)."
                )
            )
            out.append(
                MtuMismatch(
                    summary=summary,
                    **located(sels),
                    packet_size=size,
                    tunnel_mtu=lim.mtu,
                    tunnel_mtu_source=lim.source,
                    excess_bytes=size - lim.mtu,
                    sender_kept_oversized=True if kept else None,
                )
            )
        if not self.limits():
            for _h, cd in holes:
                if (cd.size, None) in done:
                    continue
                done.add((cd.size, None))
                summary = (
                    f"Packets sized for MTU {cd.size} are silently dropped on the path (the "
                    f"same {cd.size}-byte DF segment retransmitted, never acknowledged, no "
                    f"ICMP): the path MTU is smaller; the capture does not show by how much "
                    f"(give --tunnel-mtu or capture the ICMP)."
                )
                out.append(
                    MtuMismatch(
                        summary=summary, **located([select([cd.copies])]), packet_size=cd.size
                    )
                )
        return out


#: One part of a file's evidence: frame sets with the clause that selects them, or a ready selection.
_Part = tuple[list[FrameSet], str | None] | Selection


def _union(parts: list[_Part]) -> Selection | None:
    """One selection for a file from several parts - (sets, clause) or ready selections - as
    the OR of exact parts."""
    made = (p if isinstance(p, Selection) else select(p[0], clause=p[1]) for p in parts)
    sels = [s for s in made if s is not None]
    if not sels:
        return None
    frames = sorted({f for s in sels for f in s.frames})
    return Selection(
        sels[0].file, tuple(frames), any_of(s.filter for s in sels), sum(s.count for s in sels)
    )


def _absent(client: str, head: str, sessions: Sequence[TlsSession]) -> DtlsAbsent:
    """dtls-absent for one client's TLS sessions to a head-end."""
    sets = []
    for s in sessions:
        fs = FrameSet(s.file, TlsHellos(client, head).wireshark())
        sets.append(fs)
        fs.add(s.hello_frame, s.hello_ts)
    summary = (
        f"{len(sessions)} TLS session(s) from {client} to head-end {head} and no "
        f"DTLS attempt: the tunnel runs over TLS only (DTLS disabled, or its "
        f"ClientHellos never reach this capture point)."
    )
    return DtlsAbsent(
        summary=summary,
        **located(_per_file(_merge_same_clause(sets))),
        client=client,
        server=head,
        tls_sessions=len(sessions),
    )


def _merge_same_clause(sets: list[FrameSet]) -> list[FrameSet]:
    merged: dict[tuple[str, str], FrameSet] = {}
    for s in sets:
        m = merged.setdefault((s.file, s.clause), FrameSet(s.file, s.clause))
        for fr, t in s.frames:
            m.add(fr, t)
    for m in merged.values():
        m.frames.sort()
    return list(merged.values())


#: Findings of one kind (id and severity) about DTLS pairs that a case lists one by one. The
#: rest are said by one more finding, the first of them, whose ``more_pairs`` counts the
#: others: a head-end's capture with 100 k WebRTC or failing clients still makes a report a
#: person can read, and only the listed findings are built. A busy head-end's hour (hundreds
#: of clients) is still listed pair by pair, as scripts that count the findings expect.
MAX_LISTED_PAIRS = 1000

_PairFinding = DtlsEstablished | DtlsUnanswered | DtlsNondefaultPort | DtlsOther
_F = TypeVar("_F", _PairFinding, DtlsAbsent)  # the findings that can stand for more


@dataclass(frozen=True, slots=True)
class _DtlsRows:
    """One file's DTLS pairs as the judge sees them, per row of its detector's table."""

    det: DtlsDetector
    vpn: np.ndarray  # AnyConnect-like: only these feed the VPN findings
    retried: np.ndarray  # VPN pairs retried over a real interval with no answer
    unanswered: np.ndarray  # of which a capture covered the client and server afterwards


class _Listing:
    """DTLS pairs sorted into kinds of finding (rows of their files' tables, in order);
    :meth:`findings` makes pair objects and builds findings for the first
    :data:`MAX_LISTED_PAIRS` of each kind, and one finding for the rest."""

    def __init__(self) -> None:
        self._kinds: dict[str, tuple[Callable[[DtlsPair], _PairFinding], list]] = {}
        self._first: dict[str, tuple[int, int, int]] = {}  # (file, row, rank) of the first

    def add(
        self,
        kind: str,
        build: Callable[[DtlsPair], _PairFinding],
        file: tuple[int, DtlsDetector],
        rows: np.ndarray,
        rank: int,
    ) -> None:
        """The pairs of a file (its place in the case, its detector) where ``rows`` (a mask
        of its table) is true, files in order; ``rank``: this kind's place among the kinds
        of one pair (a kind's pairs are listed in the order of its first one's)."""
        at = np.flatnonzero(rows)
        if len(at):
            self._kinds.setdefault(kind, (build, []))[1].append((file[1], at))
            self._first.setdefault(kind, (file[0], int(at[0]), rank))

    def findings(self) -> list[Finding]:
        out: list[Finding] = []
        for kind in sorted(self._kinds, key=self._first.__getitem__):
            build, parts = self._kinds[kind]
            total = sum(len(at) for _det, at in parts)
            pairs: list[DtlsPair] = []
            for det, at in parts:
                pairs += det.pairs_at(at[: MAX_LISTED_PAIRS + 1 - len(pairs)])
            out += [build(p) for p in pairs[:MAX_LISTED_PAIRS]]
            if total > MAX_LISTED_PAIRS:
                more = total - MAX_LISTED_PAIRS - 1
                out.append(
                    _standing_for(build(pairs[MAX_LISTED_PAIRS]), more, "client/server pair(s)")
                )
        return out


def _standing_for(f: _F, more: int, what: str) -> _F:
    """The first finding past :data:`MAX_LISTED_PAIRS`, also standing for the ``more`` of its
    kind after it (``what``: what they are), which ``more_pairs`` counts."""
    if not more:
        return f
    return replace(
        f,
        summary=f"{f.summary} {more} more {what} have this finding, not listed one by one (a "
        f"report lists {MAX_LISTED_PAIRS} of a kind).",
        more_pairs=more,
    )


def _data_set(p: DtlsPair) -> FrameSet:
    fs = FrameSet(p.file, p.records(None).wireshark())
    if p.first_data_s2c:
        fs.add(*p.first_data_s2c)
        fs.count = p.data_s2c
    return fs


def _after_icmp(icmp: IcmpDetector, g: FragNeeded) -> str:
    """What the capture shows the quoted senders did next, when it does not settle it (the
    settled outcomes are findings of their own: ``pmtud-working``, ``mtu-mismatch``)."""
    if icmp.outcome(g):
        return ""
    ups = icmp.followups_of(g)
    offloaded = sum(f.offloaded for f in ups)
    if offloaded:
        return (
            f" Whether the sender adapted cannot be told: its {offloaded} later segment(s) are "
            "larger than the packet the router quoted, so the capture saw them before "
            "segmentation offload (TSO/GSO) or after coalescing (GRO), not as sent."
        )
    return (
        " Whether the sender adapted cannot be told: the capture shows none of its data after "
        "the ICMP."
    )


def _quoted(cd: Candidate, quoted: set[tuple]) -> bool:
    return any(q[0] == cd.src and q[1] == cd.dst and (q[3] in (None, cd.sport)) for q in quoted)


def _flow_key(fl: tuple) -> tuple:
    """Sort key of a quoted flow: a quote too short for the ports has None there."""
    return tuple(-1 if v is None else v for v in fl)


def _flow_text(fl: tuple) -> str:
    src, dst, proto, sport, dport = fl
    name = {dec.PROTO_TCP: "TCP", dec.PROTO_UDP: "UDP"}.get(proto, f"proto {proto}")
    if sport is None:
        return f"{name} {src} -> {dst}"
    s = f"[{src}]" if ":" in src else src
    d = f"[{dst}]" if ":" in dst else dst
    return f"{name} {s}:{sport} -> {d}:{dport}"


def _lt_number(text: str) -> int:
    return int(text.split()[0]) if text and text.split()[0].lstrip("-").isdigit() else -1


def verdict(
    findings: Sequence[Finding], reports: Sequence[FileReport], logs_read: bool = False
) -> str:
    """One line, first thing a reader sees: confirmed, ruled out, or what was found instead.

    ``logs_read``: an ASA syslog, DART log or key log was read (``labkit.analyze.sources``).
    """
    if not any(r.analyzable for r in reports) and not logs_read:
        return "nothing could be analyzed"
    ids = Counter(f.id for f in findings)
    mm = [f for f in findings if f.id == "mtu-mismatch"]
    parts = []
    if mm:
        f = mm[0]
        tm = f.fields.get("tunnel_mtu")
        parts.append(
            f"MTU mismatch confirmed: {f.fields['packet_size']}-byte packets vs a "
            + (f"{tm}-byte tunnel" if tm else "smaller path MTU")
        )
    for fid, text in (
        ("pmtud-black-hole", "PMTUD black hole"),
        ("dtls-unanswered", "DTLS unanswered"),
        ("vpn-reconnect", "VPN session reconnected"),
        ("dtls-absent", "no DTLS attempt"),
        ("icmp-frag-needed", "ICMP frag-needed seen"),
        ("oversized-df", "oversized DF packets"),
        ("dtls-nondefault-port", "DTLS on a non-default port"),
    ):
        if ids.get(fid) and any(x.is_problem for x in findings if x.id == fid):
            parts.append(text)
    if parts:
        return "PROBLEM: " + "; ".join(parts)
    ok = []
    est = [f for f in findings if f.id == "dtls-established"]
    if est:
        e = est[0]
        ok.append(f"DTLS {e.fields.get('version')} established on UDP {e.fields.get('port')}")
    working = sorted({f.fields["mtu"] for f in findings if f.id == "pmtud-working"})
    if working:
        ok.append(f"path-MTU discovery works (path MTU {', '.join(map(str, working))})")
    icmp = any(ids.get(i) for i in ("icmp-frag-needed", "pmtud-working", "icmp-bogus-mtu"))
    ok.append(
        "no mtu-mismatch: "
        + ("" if icmp else "no ICMP frag-needed, ")
        + "no oversized DF packets, no black hole"
        + unjudged_black_holes([r.counts for r in reports if r.analyzable])
    )
    unseen = blind_spots([r.counts for r in reports if r.analyzable])
    if unseen:
        ok.append(unseen)
    return "no problem found: " + "; ".join(ok)
