"""The diagnosis: findings and file facts -> what is wrong, why, how sure, and what fixes it.

A lab engineer with a customer on the phone reads this first, before the findings. It is a
pure function of what the analysis already established: the findings (each step cites one
and its first evidence frame), the capture points of the files, and the IPv4 fragments the
tunnel capture showed. It re-derives no number: the fixes come from :func:`labkit.mtu.predict`
for a configuration that reproduces the adapter and tunnel MTUs the capture showed, so they
read exactly as ``labkit mtu`` prints them for the same numbers.

The chain it looks for is DESIGN.md section 1: DTLS fails -> traffic in the TLS tunnel with
the adapter at the DTLS MTU -> adapter MTU > tunnel MTU -> DF packets dropped with ICMP 3/4
(or a black hole) -> the client reconnects. A link it cannot see is named with the capture
point that would show it. Where the capture shows the chain broken (the adapter fits the
tunnel, the head-end fragments instead of dropping, DTLS works), the mismatch is ruled out
and the reason is given with its frame.

:func:`fold` also lives here: two case-level judgements that make findings fewer and clearer
(MSS clamping seen on both sides of the head-end, and an info finding repeated per capture
point), applied by the case before anything is rendered.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from labkit import mtu
from labkit.analyze.detectors.coverage import unjudged_black_holes
from labkit.errors import UsageError
from labkit.findings import Evidence, Finding

if TYPE_CHECKING:
    from labkit.analyze.report import FileReport

Status = Literal["confirmed", "ruled-out", "not-shown"]

_WHERE = {
    "outside": "outside (the client's physical NIC, or the head-end's outside)",
    "tunnel": "on the client's virtual adapter",
    "inside": "on the head-end's inside interface",
}


@dataclass(frozen=True, slots=True)
class Fragmented:
    """IPv4 packets one file shows as fragments: their sizes before fragmenting, and the
    last fragment of the first few (the frame that proves the size)."""

    file: str
    sizes: tuple[tuple[int, int], ...]  # (original IP size, packets), largest count first
    evidence: tuple[Evidence, ...]

    @property
    def largest(self) -> int:
        return max(s for s, _n in self.sizes)


@dataclass(frozen=True, slots=True)
class Step:
    """One link of the chain: what the capture shows, the finding it rests on, one frame."""

    text: str
    finding: str | None = None  # a finding id, or None for a fact outside the findings
    evidence: Evidence | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"text": self.text}
        if self.finding:
            doc["finding"] = self.finding
        if self.evidence is not None:
            doc["evidence"] = self.evidence.to_json()
        return doc


@dataclass(frozen=True, slots=True)
class Diagnosis:
    status: Status
    headline: str
    confidence: str
    steps: tuple[Step, ...]
    cannot_show: tuple[str, ...]
    fixes: tuple[mtu.Fix, ...] = ()
    model: str = ""  # the `labkit mtu` command that prints the same numbers and fixes

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "headline": self.headline,
            "confidence": self.confidence,
            "steps": [s.to_json() for s in self.steps],
            "cannot_show": list(self.cannot_show),
            "model": self.model,
        }

    def fixes_json(self) -> list[dict[str, object]]:
        return mtu.fixes_json(self.fixes)


def _first(f: Finding | None) -> Evidence | None:
    return f.evidence[0] if f is not None and f.evidence else None


def _one(findings: Sequence[Finding], fid: str, **match: Any) -> Finding | None:
    return next(
        (
            f
            for f in findings
            if f.id == fid and all(f.fields.get(k) == v for k, v in match.items())
        ),
        None,
    )


@dataclass(frozen=True, slots=True)
class _Numbers:
    """The adapter and tunnel MTUs the capture showed, each with where it comes from."""

    adapter: int | None
    adapter_step: Step | None
    tunnel: int | None
    tunnel_step: Step | None
    dtls_cipher: str


def _numbers(findings: Sequence[Finding]) -> _Numbers:
    mm = _one(findings, "mtu-mismatch")
    syns = [
        f
        for f in findings
        if f.id == "syn-mss"
        and f.fields.get("role") == "inner"
        and f.fields.get("direction") == "syn"
    ]
    adapter = adapter_step = None
    if syns:
        syn = max(syns, key=lambda f: f.fields.get("implied_mtu", 0))
        adapter = syn.fields.get("implied_mtu")
        adapter_step = Step(
            f"an inner SYN announces MSS {syn.fields.get('mss')}: the client's adapter is at "
            f"MTU {adapter}",
            "syn-mss",
            _first(syn),
        )
    elif mm is not None:
        adapter = mm.fields.get("packet_size")
    cstp = _one(findings, "cstp-connect")
    dtls_cipher = str(cstp.fields.get("dtls_cipher", "")) if cstp else ""
    if dtls_cipher.upper() not in mtu.CIPHERS:
        dtls_cipher = mtu.DEFAULT_CIPHER
    if adapter is None and cstp is not None and cstp.fields.get("x_dtls_mtu"):
        # AnyConnect brings its adapter up at X-DTLS-MTU while DTLS is assumed (DESIGN.md 1.2).
        adapter = int(cstp.fields["x_dtls_mtu"])
        adapter_step = Step(
            f"the head-end announced X-DTLS-MTU {adapter}: the client's adapter comes up at it",
            "cstp-connect",
            _first(cstp),
        )
    tunnel = tunnel_step = None
    if cstp is not None and cstp.fields.get("x_cstp_mtu"):
        tunnel = int(cstp.fields["x_cstp_mtu"])
        tunnel_step = Step(
            f"the head-end announced X-CSTP-MTU {tunnel} (decrypted CONNECT)",
            "cstp-connect",
            _first(cstp),
        )
    elif mm is not None and mm.fields.get("tunnel_mtu"):
        tunnel = int(mm.fields["tunnel_mtu"])
        how = "ICMP 3/4" if mm.fields.get("tunnel_mtu_source") == "icmp" else "--tunnel-mtu"
        tunnel_step = Step(
            f"the TLS tunnel carries {tunnel} bytes ({how})", "mtu-mismatch", _first(mm)
        )
    else:
        outer = [
            f
            for f in findings
            if f.id == "syn-mss"
            and f.fields.get("role") == "outer"
            and f.fields.get("direction") == "syn-ack"
        ]
        if outer:
            head = outer[0]
            mss = int(head.fields["mss"])
            tunnel = mtu.tls_mtu_asa(mss)
            tunnel_step = Step(
                f"the head-end's own SYN-ACK announces MSS {mss} (sysopt connection tcpmss "
                f"{mss}): the TLS tunnel carries {tunnel} bytes",
                "syn-mss",
                _first(head),
            )
    return _Numbers(adapter, adapter_step, tunnel, tunnel_step, dtls_cipher)


def _dtls_step(findings: Sequence[Finding]) -> Step | None:
    du = _one(findings, "dtls-unanswered")
    if du is not None:
        x = du.fields
        every = [f for f in findings if f.id == "dtls-unanswered"]
        if len(every) > 1:  # a busy head-end: the count first, one flow as the example
            heads = sorted({f"{f.fields.get('server')}:{f.fields.get('port')}" for f in every})
            named = ", ".join(heads[:5]) + (f" and {len(heads) - 5} more" if len(heads) > 5 else "")
            return Step(
                f"DTLS unanswered for {len(every)} client flow(s) to {named} (e.g. "
                f"{x.get('client')}, {x.get('attempts')} attempt(s)): traffic falls back to "
                f"the TLS tunnel",
                "dtls-unanswered",
                _first(du),
            )
        return Step(
            f"DTLS from {x.get('client')} to {x.get('server')}:{x.get('port')} unanswered, "
            f"{x.get('attempts')} attempt(s): traffic falls back to the TLS tunnel",
            "dtls-unanswered",
            _first(du),
        )
    absent = _one(findings, "dtls-absent")
    if absent is not None:
        return Step(
            "no DTLS attempt to the head-end: traffic runs in the TLS tunnel",
            "dtls-absent",
            _first(absent),
        )
    return None


def _drop_steps(findings: Sequence[Finding], size: int | None, limit: int | None) -> list[Step]:
    out = []
    icmp = _one(findings, "icmp-frag-needed", mtu=limit) or _one(findings, "icmp-frag-needed")
    over = _one(findings, "oversized-df", tunnel_mtu=limit) or _one(findings, "oversized-df")
    hole = _one(findings, "pmtud-black-hole")
    if over is not None:
        out.append(
            Step(
                f"{over.fields.get('count')} DF packets over the tunnel MTU, most "
                f"{over.fields.get('packet_size')} bytes",
                "oversized-df",
                _first(over),
            )
        )
    if icmp is not None:
        out.append(
            Step(
                f"{size or icmp.fields.get('original_length')}-byte DF packets dropped: ICMP 3/4 "
                f"with MTU {icmp.fields.get('mtu')} seen",
                "icmp-frag-needed",
                _first(icmp),
            )
        )
    if hole is not None:
        out.append(
            Step(
                f"black hole: the same {hole.fields.get('packet_size')}-byte segment sent "
                f"{hole.fields.get('copies')} times, never acknowledged, no ICMP",
                "pmtud-black-hole",
                _first(hole),
            )
        )
    return out


def _reconnect_step(findings: Sequence[Finding]) -> Step | None:
    rc = _one(findings, "vpn-reconnect")
    if rc is None:
        return None
    return Step(
        f"the client reconnected ({rc.fields.get('gap_s')} s gap) to apply the TLS MTU",
        "vpn-reconnect",
        _first(rc),
    )


def _unseen(files: Sequence[FileReport], needed: Sequence[str]) -> tuple[str, ...]:
    points = {f.capture_point for f in files if f.analyzable}
    what = {
        "outside": "whether DTLS is answered and when the client reconnects",
        "tunnel": "the packet sizes and SYN MSS the client's adapter uses",
        "inside": "the server's DF packets and the head-end's ICMP 3/4 toward it",
    }
    unseen = [f"{what[p]}: capture {_WHERE[p]}" for p in needed if p not in points and p in what]
    return (*unseen, *(c for f in files for c in f.cannot_tell))


def _fixes(n: _Numbers, df_bit_ignore: bool) -> tuple[tuple[mtu.Fix, ...], str]:
    """The MTU model's fixes for the numbers shown, and the command that prints them."""
    if n.adapter is None or n.tunnel is None or n.adapter <= n.tunnel:
        return (), ""
    try:
        cfg = mtu.config_for(
            n.adapter, n.tunnel, dtls_cipher=n.dtls_cipher, df_bit_ignore=df_bit_ignore
        )
        prediction = mtu.predict(cfg)
    except UsageError:  # numbers no AnyConnect configuration produces: name no fix
        return (), ""
    return prediction.fixes, mtu.mtu_command(cfg)


def diagnose(
    findings: Sequence[Finding],
    files: Sequence[FileReport],
    fragments: Sequence[Fragmented] = (),
) -> Diagnosis:
    """The diagnosis of one case (see the module docstring)."""
    n = _numbers(findings)
    dtls = _dtls_step(findings)
    mm = _one(findings, "mtu-mismatch")
    hole = _one(findings, "pmtud-black-hole")
    established = _one(findings, "dtls-established")
    reconnect = _reconnect_step(findings)
    limit = n.tunnel or (
        int(mm.fields["tunnel_mtu"]) if mm and mm.fields.get("tunnel_mtu") else None
    )
    # Only on the client's adapter do fragments mean the head-end split the packets for the
    # TLS tunnel (df-bit-ignore); elsewhere any router may have fragmented them.
    points = {f.path: f.capture_point for f in files}
    on_adapter = [fr for fr in fragments if points.get(fr.file) == "tunnel"]
    split = [fr for fr in on_adapter if limit is not None and fr.largest > limit] or [
        fr for fr in on_adapter if n.adapter is not None and fr.largest >= n.adapter
    ]
    if mm is not None or hole is not None:
        size = mm.fields.get("packet_size") if mm is not None else hole.fields.get("packet_size")  # type: ignore[union-attr]
        tm = mm.fields.get("tunnel_mtu") if mm is not None else None
        steps = [s for s in (dtls, n.adapter_step) if s is not None]
        if tm is None and n.tunnel is not None and n.tunnel_step is not None:
            tm = n.tunnel
            steps.append(n.tunnel_step)
        steps.append(
            Step(
                f"adapter MTU {size} > tunnel MTU {tm}"
                if tm
                else f"{size}-byte packets are larger than the path carries (its MTU is not shown)",
                "mtu-mismatch" if mm is not None else "pmtud-black-hole",
                _first(mm or hole),
            )
        )
        steps += _drop_steps(findings, size, tm)
        if reconnect is not None:
            steps.append(reconnect)
        links = 5
        shown = sum(
            (
                dtls is not None,
                n.adapter_step is not None,
                True,
                bool(_drop_steps(findings, size, tm)),
                reconnect is not None,
            )
        )
        fixes, model = _fixes(replace(n, tunnel=tm, adapter=size), False)
        return Diagnosis(
            "confirmed",
            f"MTU mismatch confirmed: {size}-byte packets"
            + (f" meet a {tm}-byte TLS tunnel" if tm else " exceed the path MTU")
            + (", after DTLS failed" if dtls is not None else ""),
            f"{shown} of {links} links of the chain seen in these captures",
            tuple(steps),
            _unseen(files, ("outside", "tunnel", "inside")),
            fixes,
            model,
        )
    reasons: list[Step] = []
    why: list[str] = []
    if established is not None and dtls is None:
        x = established.fields
        why.append(f"DTLS {x.get('version')} is established")
        reasons.append(
            Step(
                f"DTLS {x.get('version')} established on UDP {x.get('port')}: traffic runs over "
                f"DTLS at the adapter MTU, the TLS tunnel's smaller MTU never applies",
                "dtls-established",
                _first(established),
            )
        )
    if split:
        fr = split[0]
        size, count = fr.sizes[0]
        why.append(f"the head-end fragments the {size}-byte DF packets (df-bit-ignore)")
        reasons.append(
            Step(
                f"{count} packet(s) of {size} bytes arrive in {os.path.basename(fr.file)} as "
                f"fragments: the head-end "
                f"fragments DF packets over the tunnel MTU (anyconnect ssl df-bit-ignore) instead "
                f"of dropping them",
                None,
                fr.evidence[0] if fr.evidence else None,
            )
        )
    if n.adapter is not None and n.tunnel is not None and n.adapter <= n.tunnel:
        why.append(f"adapter MTU {n.adapter} <= tunnel MTU {n.tunnel}")
        reasons += [s for s in (n.adapter_step, n.tunnel_step) if s is not None]
        reasons.append(
            Step(
                f"adapter MTU {n.adapter} <= tunnel MTU {n.tunnel}: the TLS tunnel carries "
                f"every packet the adapter sends"
            )
        )
    if reasons:
        steps = [s for s in (dtls,) if s is not None] + reasons
        if reconnect is not None:
            steps.append(reconnect)
        return Diagnosis(
            "ruled-out",
            "MTU mismatch ruled out"
            + (" although DTLS failed" if dtls is not None else "")
            + f": {'; '.join(why)}",
            f"shown by {len(reasons)} fact(s) in these captures",
            tuple(steps),
            _unseen(files, ("outside", "tunnel", "inside")),
        )
    steps = [s for s in (dtls, n.adapter_step, n.tunnel_step, reconnect) if s is not None]
    fixes, model = _fixes(n, False)
    predicted = bool(fixes)
    return Diagnosis(
        "not-shown",
        (
            f"MTU mismatch expected but not shown: adapter MTU {n.adapter} > tunnel MTU "
            f"{n.tunnel}, and no dropped packet is in these captures"
            if predicted
            else _not_shown(findings, files)
        ),
        "the captures lack the link(s) below" if dtls is not None else "no DTLS failure seen",
        tuple(steps),
        _unseen(files, ("outside", "tunnel", "inside")),
        fixes,
        model,
    )


def _not_shown(findings: Sequence[Finding], files: Sequence[FileReport]) -> str:
    """Why no mismatch is shown, true to what was seen: ICMP answered by a sender that adapted
    is path-MTU discovery working, not an absence of ICMP."""
    unjudged = unjudged_black_holes([f.counts for f in files if f.analyzable])
    working = sorted({f.fields["mtu"] for f in findings if f.id == "pmtud-working"})
    if working:
        mtus = ", ".join(str(m) for m in working)
        return (
            f"MTU mismatch not shown: path-MTU discovery works (path MTU {mtus}): the sender "
            f"adapted to ICMP frag-needed; no packet kept being dropped, no black hole" + unjudged
        )
    icmp = sorted({f.fields["mtu"] for f in findings if f.id == "icmp-frag-needed"})
    over = sum(f.fields.get("count", 0) for f in findings if f.id == "oversized-df")
    if not (icmp or over):
        return (
            "MTU mismatch not shown: no oversized packet, no ICMP frag-needed, no black hole"
            + unjudged
        )
    # What was seen is said as seen: the pieces of a mismatch without the link between them
    # (which flow the ICMP was about, and that it kept sending larger packets).
    seen = [f"ICMP frag-needed (MTU {', '.join(map(str, icmp))})" if icmp else ""]
    seen.append(f"{over} oversized DF packet(s)" if over else "")
    return (
        f"MTU mismatch not shown: {' and '.join(x for x in seen if x)} seen, but no flow is "
        "shown to keep sending packets the path drops; no black hole" + unjudged
    )


# --- folding findings ------------------------------------------------------------------------


def _filters(f: Finding) -> dict[str, str]:
    """file -> the display filter that selects this finding's frames in that file."""
    own = f.fields.get("wireshark_filters")
    if own:
        return dict(own)
    return {e.file: f.wireshark_filter for e in f.evidence}


def _clamping(findings: list[Finding], points: Mapping[str, str]) -> list[Finding]:
    """An inner SYN-ACK with one MSS on the head-end's inside and a smaller one in the tunnel
    is the head-end clamping it (``sysopt connection tcpmss``): one finding, not two."""

    def at(point: str) -> list[Finding]:
        return [
            f
            for f in findings
            if f.id == "syn-mss"
            and f.fields.get("direction") == "syn-ack"
            and f.fields.get("role") == "inner"
            and f.evidence
            and points.get(f.evidence[0].file) == point
            and len({e.file for e in f.evidence}) == 1
        ]

    out = list(findings)
    for inside in at("inside"):
        for tunnel in at("tunnel"):
            before, after = int(inside.fields["mss"]), int(tunnel.fields["mss"])
            if after >= before or inside.fields.get("servers") != tunnel.fields.get("servers"):
                continue
            if inside not in out or tunnel not in out:
                continue
            filters = _filters(inside) | _filters(tunnel)
            summary = (
                f"The head-end clamps the MSS of SYN-ACKs from {tunnel.fields.get('servers')}: "
                f"{before} on its inside, {after} in the tunnel (sysopt connection tcpmss "
                f"{after}): the servers send the client segments for MTU "
                f"{mtu.mtu_for_mss(after)}, whatever MSS they announce."
            )
            fields = {
                "mss": after,
                "mss_before_clamping": before,
                "clamped_by": "head-end",
                "direction": "syn-ack",
                "role": "inner",
                "ip_version": tunnel.fields.get("ip_version"),
                "implied_mtu": mtu.mtu_for_mss(after),
                "count": tunnel.fields.get("count"),
                "servers": tunnel.fields.get("servers"),
                "wireshark_filters": filters,
            }
            merged = Finding(
                "syn-mss",
                summary,
                tunnel.evidence + inside.evidence,
                tunnel.wireshark_filter,
                {k: v for k, v in fields.items() if v is not None},
            )
            out[out.index(tunnel)] = merged
            out.remove(inside)
    return out


_PER_FILE = {"count", "wireshark_filters"}


def _per_point(findings: list[Finding], points: Mapping[str, str]) -> list[Finding]:
    """Info findings that say the same thing about the same traffic at several capture points
    (the same SYN seen on the adapter and on the head-end's inside) become one, with each
    file's evidence and filter."""
    groups: dict[tuple, list[Finding]] = {}
    order: list[tuple] = []
    for f in findings:
        if f.severity != "info" or not f.evidence:
            key: tuple = ("keep", id(f))
        else:
            same = tuple(sorted((k, repr(v)) for k, v in f.fields.items() if k not in _PER_FILE))
            key = (f.id, same)
        if key not in groups:
            order.append(key)
        groups.setdefault(key, []).append(f)
    out = []
    for key in order:
        group = groups[key]
        files = [e.file for g in group for e in g.evidence]
        if len(group) == 1:
            out.extend(group)
            continue
        filters: dict[str, str] = {}
        for g in group:
            filters |= _filters(g)
        seen = ", ".join(f"{points.get(file, 'unknown')} ({file})" for file in dict.fromkeys(files))
        first = group[0]
        fields = dict(first.fields)
        fields["wireshark_filters"] = filters
        if all(isinstance(g.fields.get("count"), int) for g in group):
            fields["count"] = max(g.fields["count"] for g in group)
        out.append(
            Finding(
                first.id,
                f"{first.summary} Seen at {len(filters)} capture points: {seen}.",
                tuple(e for g in group for e in g.evidence),
                first.wireshark_filter,
                fields,
                first.severity,
            )
        )
    return out


def fold(findings: Sequence[Finding], points: Mapping[str, str]) -> list[Finding]:
    """The findings with MSS clamping recognised and per-point repeats of info findings folded.

    ``points``: each file's capture point (outside, tunnel, inside)."""
    return _per_point(_clamping(list(findings), points), points)
