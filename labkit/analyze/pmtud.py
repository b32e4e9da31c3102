"""What an ICMP "fragmentation needed" / "Packet Too Big" means, from what the sender did next.

Three cases look alike in a capture and mean opposite things (RFC 1191, RFC 8201):

* the ICMP arrives and the sender's next data fits the reported MTU, nothing larger follows:
  path-MTU discovery doing its job (``pmtud-working``, info), not a mismatch;
* packets above the MTU keep leaving the sender well after the ICMP: they keep being dropped
  (``mtu-mismatch``, error, which says so);
* no ICMP at all and the same large segment retransmitted: a black hole (``pmtud-black-hole``).

An ICMP whose MTU no path can have is none of these: ``icmp-bogus-mtu`` (info), never a limit.
Pure functions of the detectors' facts: no file is read here.
"""

from __future__ import annotations

from collections.abc import Mapping

from labkit import mtu
from labkit.analyze.detectors import FileFacts
from labkit.analyze.detectors.icmp import FragNeeded
from labkit.analyze.evidence import select
from labkit.findings import Evidence, Finding


def _finding(fid: str, summary: str, groups: list[FragNeeded], fields: dict) -> Finding:
    sels = [s for s in (select([g.frames]) for g in groups) if s is not None]
    evidence = tuple(Evidence(s.file, f, t) for s in sels for f, t in s.frames)
    filters = {s.file: s.filter for s in sels}
    if len(filters) > 1:
        fields = dict(fields, wireshark_filters=filters)
    return Finding(fid, summary, evidence, sels[0].filter if sels else "", fields)


def _what(v6: bool) -> str:
    return "ICMPv6 Packet Too Big" if v6 else "ICMP fragmentation-needed"


def bogus_findings(facts: Mapping[str, FileFacts]) -> list[Finding]:
    """One ``icmp-bogus-mtu`` per file and (version, MTU)."""
    out = []
    for ff in facts.values():
        for (v6, m), g in sorted(ff.icmp.bogus.items()):
            summary = (
                f"{g.frames.count} {_what(v6)} from {', '.join(sorted(g.reporters)[:3])} "
                f"report MTU {m}, {g.reason}: no packet can have met that limit, so it is not "
                f"taken as one (a crafted or broken ICMP; a compliant sender ignores it)."
            )
            fields = {"mtu": m, "reason": g.reason, "ip_version": 6 if v6 else 4}
            fields["count"] = g.frames.count
            out.append(_finding("icmp-bogus-mtu", summary, [g], fields))
    return out


def _outcomes(facts: Mapping[str, FileFacts], v6: bool, m: int) -> list[str]:
    return [
        ff.icmp.outcome(g) for ff in facts.values() if (g := ff.icmp.frag.get((v6, m))) is not None
    ]


def adapted(facts: Mapping[str, FileFacts], v6: bool, m: int) -> bool:
    """Every file's senders quoted by ICMP with MTU ``m`` adapted (and at least one was seen)."""
    outcomes = _outcomes(facts, v6, m)
    return bool(outcomes) and all(o == "adapted" for o in outcomes)


def kept_oversized(facts: Mapping[str, FileFacts], v6: bool, m: int) -> bool:
    """Some sender quoted by ICMP with MTU ``m`` kept sending packets above it: the only
    outcome that shows packets being dropped, rather than the ICMP doing its job."""
    return "oversized" in _outcomes(facts, v6, m)


def _tunnel_hint(m: int) -> str:
    """A word when the path MTU is the TLS tunnel MTU of an ASA's defaults: a capture of a
    head-end's inside alone cannot show the tunnel, but this number names it."""
    tls = mtu.tls_mtu_asa()
    if m != tls:
        return ""
    return (
        f" {tls} is also the TLS (CSTP) tunnel MTU an ASA derives from its default "
        f"'sysopt connection tcpmss {mtu.DEFAULT_TCPMSS}': on a VPN head-end's inside, this "
        f"says the client's traffic rides the TLS tunnel (DTLS not in use), and a client "
        f"adapter sized for DTLS ({mtu.dtls_mtu(mtu.DEFAULT_BASE_MTU)}) sends more than it "
        f"carries: captures outside and on the client's adapter show whether DTLS failed."
    )


def working_findings(facts: Mapping[str, FileFacts]) -> list[Finding]:
    """One ``pmtud-working`` per (version, MTU) whose senders all adapted."""
    keys = sorted({k for ff in facts.values() for k in ff.icmp.frag})
    out = []
    for v6, m in keys:
        if not adapted(facts, v6, m):
            continue
        groups = [g for ff in facts.values() if (g := ff.icmp.frag.get((v6, m))) is not None]
        delays = [
            f.first_fit_s
            for ff in facts.values()
            if (g := ff.icmp.frag.get((v6, m))) is not None
            for f in ff.icmp.followups_of(g)
            if f.first_fit_s is not None
        ]
        after = max(delays) if delays else None
        when = f" within {after * 1000:.0f} ms" if after is not None else ""
        summary = (
            f"{_what(v6)} reports a path MTU of {m}, and the sender then sent its data in "
            f"packets of at most {m} bytes{when}, nothing larger: path-MTU discovery works; "
            f"the path MTU is {m}." + _tunnel_hint(m)
        )
        fields: dict[str, object] = {"mtu": m, "ip_version": 6 if v6 else 4}
        if after is not None:
            fields["adapted_after_s"] = round(after, 6)
        out.append(_finding("pmtud-working", summary, groups, fields))
    return out
