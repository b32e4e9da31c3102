"""Evidence said once, compiled twice: tshark judges each description's display filter against
the frames its numpy compilation selects, on real captures.

Each description (``DfSelection``, ``SynSelection``, ``IcmpSelection``, ``DtlsSelection``,
``Segment``, ``TlsHellos``, ``LastFragments``) compiles to a Wireshark display filter, and
the detector selects the same packets from its table, a chunk's columns, or (ICMP errors and
DTLS handshakes, decoded one by one) its groups. For every capture shipped with the
repository (and the shared public captures, when present) the frames tshark selects with the
filter must be exactly those the detector counts: the same number, and the first frames it
kept are tshark's first frames.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from labkit.analyze import AnalyzeOptions, scan
from labkit.analyze.detectors import FileFacts
from labkit.analyze.detectors.frags import LAST_FRAGMENTS
from labkit.analyze.detectors.mss import SynSelection
from labkit.analyze.detectors.retrans import Segment
from labkit.analyze.detectors.sessions import TlsHellos
from labkit.analyze.detectors.size import FLOOR, DfSelection
from labkit.analyze.evidence import MAX_FRAMES
from tests.helpers.paths import PUBLIC, ROOT
from tests.helpers.tshark import requires_tshark, tshark_frames

SHARED_PUBLIC = ROOT.parent / "shared" / "captures" / "public"
_SUFFIXES = (".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz")


def _captures(where: Path) -> list[Path]:
    return sorted(p for p in where.rglob("*") if p.name.endswith(_SUFFIXES))


#: Real and minimal captures (the generated scenarios' filters are judged by the verdict tests).
SHIPPED = [
    *_captures(ROOT / "tests" / "data"),
    *_captures(ROOT / "tests" / "regressions"),
    *_captures(ROOT / "pcaps" / "real"),
]


def _facts(path: Path) -> tuple[FileFacts, set[int]]:
    """The detectors' facts, and the duplicate frames they never saw: a copy matches every
    filter its original does but is never counted (a finding's filter leaves its copies out
    by frame number, which tests/test_verdicts.py checks)."""
    scanned = scan([str(path)], AnalyzeOptions())[0]
    assert scanned.facts is not None, scanned.report
    copies = scanned.facts.dedup.copies_of(range(1, scanned.report.packets + 1))
    return scanned.facts, set(copies.tolist())


#: (description, filter, the first frames the table kept, how many frames it selects)
Check = tuple[str, str, list[int], int]


def _df_checks(ff: FileFacts) -> list[Check]:
    det = ff.size
    sizes = sorted(set(det.table["size"].tolist()))
    if not sizes:
        return []
    top = max(sizes)
    syn_servers = {srv for g in ff.mss.groups.values() for _f, _t, _h, srv in g.frames}
    heads = sorted({p.server for p in ff.dtls.pairs.values()} | syn_servers)
    out = []
    for sel in (
        DfSelection((), top - 1),
        DfSelection(tuple(heads), FLOOR - 1),
        DfSelection(tuple(heads[:1]), 0, sizes[len(sizes) // 2]),
    ):
        frames = [f for f, _t in sel.first_frames(det)]
        out.append((repr(sel), sel.wireshark(), frames, sum(sel.counts(det).values())))
    return out


def _syn_checks(ff: FileFacts) -> list[Check]:
    det = ff.mss
    mixed = len({v for _s, _m, v in det.groups}) > 1
    errors = bool(ff.icmp.errors)
    out = []
    for (synack, mss, ipver), grp in sorted(det.groups.items()):
        servers = sorted({srv for _f, _t, _h, srv in grp.frames})
        for heads, outer in (((), None), (tuple(servers[:1]), True), (tuple(servers[:1]), False)):
            sel = SynSelection(synack, mss, ipver, heads, outer, mixed, errors)
            frames, count = sel.first_frames(det)
            out.append((repr(sel), sel.wireshark(), [f for f, _t in frames], count))
    return out


def _icmp_checks(ff: FileFacts) -> list[Check]:
    det = ff.icmp
    groups = [*det.frag.values(), *det.bogus.values(), *det.unreach.values()]
    return [
        (repr(g.sel), g.sel.wireshark(), [f for f, _t in g.frames.frames], g.frames.count)
        for g in groups
    ]


def _dtls_checks(ff: FileFacts) -> list[Check]:
    out = []
    for p in ff.dtls.pairs.values():
        for hs, fs in ((1, p.hellos), (2, p.server_hello_frames), (3, p.hvr_frames)):
            if fs is not None:  # a pair never answered has no answers' filter to judge
                sel = p.records(hs)
                out.append((repr(sel), sel.wireshark(), [f for f, _t in fs.frames], fs.count))
        if not p.handshake_seen:  # data is the evidence only of a tunnel set up before
            sel = p.records(None)
            first = [p.first_data_s2c[0]] if p.first_data_s2c else []
            out.append((repr(sel), sel.wireshark(), first, p.data_s2c))
    return out


def _segment_checks(ff: FileFacts) -> list[Check]:
    out = []
    for cd in ff.retrans.candidates.values():
        seg = Segment(cd.src, cd.dst, cd.sport, cd.dport, cd.seq, cd.length)
        out.append((repr(seg), seg.wireshark(), [f for f, _t in cd.copies.frames], cd.copies.count))
    return out


def _tls_checks(ff: FileFacts) -> list[Check]:
    """Each session's first ClientHello: per client and server, and per endpoint for the
    client ports of its first two sessions (a reconnect's evidence)."""
    by_pair: dict[tuple[str, str], list] = {}
    for sess in ff.tls.sessions.values():
        by_pair.setdefault((sess.client, sess.server), []).append(sess)
    out = []
    for (client, server), sessions in sorted(by_pair.items()):
        sessions.sort(key=lambda x: x.hello_frame)
        sel = TlsHellos(client, server)
        out.append((repr(sel), sel.wireshark(), [x.hello_frame for x in sessions], len(sessions)))
        two = sessions[:2]
        port = TlsHellos(client, server, two[0].dport, tuple(x.sport for x in two))
        same = [x for x in sessions if x.dport == port.port and x.sport in port.client_ports]
        out.append((repr(port), port.wireshark(), [x.hello_frame for x in same], len(same)))
    return out


def _fragment_checks(ff: FileFacts) -> list[Check]:
    fs = ff.frags.frames
    return [("LastFragments", LAST_FRAGMENTS.wireshark(), [f for f, _t in fs.frames], fs.count)]


def _judge(path: Path, facts: tuple[FileFacts, set[int]]) -> None:
    ff, copies = facts
    checks = list(
        {
            c[1]: c
            for c in _df_checks(ff)
            + _syn_checks(ff)
            + _icmp_checks(ff)
            + _dtls_checks(ff)
            + _fragment_checks(ff)
        }.values()
    )
    with ThreadPoolExecutor(max_workers=2) as pool:
        got = list(pool.map(lambda c: tshark_frames(path, c[1]), checks))
    for (what, filt, first, count), selected in zip(checks, got):
        frames = [f for f in selected if f not in copies]
        assert len(frames) == count, f"{what}: {filt!r} selects {len(frames)}, table {count}"
        assert frames[: len(first)] == first, f"{what}: {filt!r}"
        if count <= MAX_FRAMES:  # every frame kept: nothing cut
            assert len(first) == count, what


@requires_tshark
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_description_selects_in_tshark_what_its_table_counts(path: Path) -> None:
    _judge(path, _facts(path))


@requires_tshark
@pytest.mark.parametrize("name", [p.name for p in _captures(PUBLIC)])
def test_the_shared_public_captures_too(name: str) -> None:
    path = SHARED_PUBLIC / name
    if not path.is_file():
        pytest.skip(f"{SHARED_PUBLIC} is not present")
    _judge(path, _facts(path))


def test_the_checks_see_evidence() -> None:
    """The captures hold every kind of evidence the checks compare, so none passes empty."""
    kinds = {"df": 0, "syn": 0, "icmp": 0, "dtls": 0, "segment": 0, "tls": 0, "frag": 0}
    for name in ("dtls-blocked-icmp-ok", "dtls-blocked-icmp-blocked", "fix-df-bit-ignore"):
        for path in _captures(ROOT / "pcaps" / "scenarios" / name):
            ff, _copies = _facts(path)
            kinds["df"] += sum(c[3] for c in _df_checks(ff))
            kinds["syn"] += sum(c[3] for c in _syn_checks(ff))
            kinds["icmp"] += sum(c[3] for c in _icmp_checks(ff))
            kinds["dtls"] += sum(c[3] for c in _dtls_checks(ff))
            kinds["segment"] += sum(c[3] for c in _segment_checks(ff))
            kinds["tls"] += sum(c[3] for c in _tls_checks(ff))
            kinds["frag"] += sum(c[3] for c in _fragment_checks(ff))
    assert all(kinds.values()), kinds


@requires_tshark
def test_syn_evidence_is_exact_when_most_servers_see_one_syn(tmp_path: Path) -> None:
    """A server with one SYN keeps its frame in its table row, one with many keeps the rest
    beside it: interleaved, with one server past :data:`MAX_FRAMES` (its last kept frame is
    the cut), the first frames of every selection are still tshark's."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    def syn(server: str, sport: int) -> object:
        tcp = TCP(sport=sport, dport=443, flags="S", options=[("MSS", 1460)])
        return Ether() / IP(src="192.168.1.10", dst=server) / tcp

    pkts = []
    for i in range(40):  # the busy server's SYNs between one-SYN servers
        pkts.append(syn("10.0.0.1" if i % 2 == 0 else f"10.0.1.{i}", 20000 + i))
    pkts += [syn("10.0.0.3", 30000 + i) for i in range(3)]
    path = tmp_path / "syns.pcap"
    wrpcap(str(path), pkts)
    ff, copies = _facts(path)
    checks = _syn_checks(ff)
    assert any(count == 43 for _w, _f, _first, count in checks)
    _judge(path, (ff, copies))
    frames, count = SynSelection(False, 1460, 4).first_frames(ff.mss)
    # the busy server's 12th SYN is frame 23: every SYN up to it is exact, and there are 12
    assert count == 43 and [f for f, _t in frames] == list(range(1, MAX_FRAMES + 1))
