"""tshark judges every shipped scenario's captures: the facts must agree with the scenario.

One tshark run per capture extracts every field the checks need (the committed captures are
byte-identical to a fresh build, test_scenario_build.py); the checks then read like the
issue: SYN MSS 1378, 1418-byte DF packets, icmp.mtu == 1347, the DTLS ClientHello count and
no ServerHello when blocked, a second TLS session after the reconnect, ICMPv6 Packet Too Big.
Numbers derived from configuration are stated here as literals, worked out by hand.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from functools import cache

import pytest

from labkit import mtu
from labkit.scenario import find, load
from tests.helpers.paths import ROOT
from tests.helpers.tshark import requires_tshark

pytestmark = requires_tshark

PCAPS = ROOT / "pcaps" / "scenarios"
FIELDS = (
    "frame.number",
    "frame.time_epoch",
    "frame.len",
    "frame.comment",
    "ip.len",
    "ipv6.plen",
    "ip.flags.df",
    "ip.flags.mf",
    "ip.frag_offset",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.flags.syn",
    "tcp.flags.ack",
    "tcp.options.mss_val",
    "tcp.len",
    "tcp.analysis.retransmission",
    "udp.dstport",
    "icmp.type",
    "icmp.code",
    "icmp.mtu",
    "icmpv6.type",
    "icmpv6.mtu",
    "tls.handshake.type",
    "tls.handshake.extensions_server_name",
    "tls.record.content_type",
    "tls.record.length",
    "dtls.handshake.type",
    "dtls.record.content_type",
    "dtls.record.length",
    "_ws.malformed",
    "_ws.expert.severity",
)
ERROR_SEVERITY = 8388608  # PI_ERROR in Wireshark's expert info


@cache
def frames(name: str, file: str) -> tuple[dict[str, list[str]], ...]:
    """Every frame of one capture as {field: [values]}, from one tshark run."""
    dtls_port = load(find(name)).head_end.dtls_port
    cmd = [
        "tshark",
        "-n",
        "-r",
        str(PCAPS / name / file),
        "-d",
        f"udp.port=={dtls_port},dtls",
        "-T",
        "fields",
        "-E",
        "separator=\t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
    ]
    for f in FIELDS:
        cmd += ["-e", f]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = []
    for line in proc.stdout.splitlines():
        values = line.split("\t")
        out.append({f: [v for v in values[i].split("|") if v] for i, f in enumerate(FIELDS)})
    return tuple(out)


def where(rows, **want: str) -> list[dict[str, list[str]]]:
    """Frames where each named field (dots as __) has the given value among its values."""
    return [r for r in rows if all(v in r[k.replace("__", ".")] for k, v in want.items())]


def not_icmp(rows) -> list[dict[str, list[str]]]:
    """Frames that are not ICMP: an ICMP error quotes a packet, and its fields with it."""
    return [r for r in rows if not r["icmp.type"] and not r["icmpv6.type"]]


def ints(rows, field: str) -> list[int]:
    return [int(v) for r in rows for v in r[field]]


NAMES = sorted(p.name for p in PCAPS.iterdir() if p.is_dir())
FILES = ("outside.pcapng", "client-tunnel.pcap", "headend-inside.pcap")


def test_every_shipped_scenario_has_its_captures() -> None:
    assert NAMES == sorted(p.stem for p in (ROOT / "configs" / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("file", FILES)
def test_nothing_malformed_and_no_error(name: str, file: str) -> None:
    rows = frames(name, file)
    assert rows
    bad = [
        r["frame.number"]
        for r in rows
        if r["_ws.malformed"] or any(int(s) >= ERROR_SEVERITY for s in r["_ws.expert.severity"])
    ]
    assert bad == []
    first = float(rows[0]["frame.time_epoch"][0])
    assert 1704067200 <= first < 1704067200 + 60  # the fixed epoch, 2024-01-01T00:00:00Z


def syn_mss(rows) -> list[int]:
    return ints(where(rows, tcp__flags__syn="1", tcp__flags__ack="0"), "tcp.options.mss_val")


def tls_sessions(rows) -> list[int]:
    """Client ports of the TLS ClientHellos on the outside capture (one per session)."""
    hellos = where(rows, tls__handshake__type="1")
    assert all(r["tls.handshake.extensions_server_name"] == ["vpn.example.com"] for r in hellos)
    return ints(hellos, "tcp.srcport")


def dtls_types(rows) -> Counter:
    return Counter(int(t) for r in rows for t in r["dtls.handshake.type"])


# --- the seed's case ----------------------------------------------------------------------------


def test_seed_inside_syn_1378_df_1418_icmp_1347() -> None:
    rows = frames("dtls-blocked-icmp-ok", "headend-inside.pcap")
    assert syn_mss(rows) == [1378, 1307]  # before the reconnect, and at the new MTU after it
    big = where(not_icmp(rows), ip__len="1418", ip__flags__df="1")
    assert len(big) == 4 and ints(big, "tcp.len") == [1378] * 4
    icmp = where(rows, icmp__type="3", icmp__code="4")
    assert len(icmp) == 1 and icmp[0]["icmp.mtu"] == ["1347"]
    assert icmp[0]["ip.len"] == ["576", "1418"]  # quotes the 1418-byte original (RFC 1812)
    after = [
        r
        for r in not_icmp(rows)
        if r["tcp.srcport"] == ["5201"]
        and int(r["frame.number"][0]) > int(icmp[0]["frame.number"][0])
    ]
    assert ints(after[:8], "tcp.len") == [1307, 71] * 4  # each 1378 re-sent as 1307 + 71
    assert max(ints(after, "ip.len")) == 1347  # nothing larger after the ICMP


def test_seed_tunnel_never_sees_more_than_the_tls_mtu() -> None:
    rows = frames("dtls-blocked-icmp-ok", "client-tunnel.pcap")
    assert syn_mss(rows) == [1378, 1307]
    assert max(ints(rows, "ip.len")) == 1347
    assert not where(rows, icmp__type="3")


def test_seed_outside_dtls_unanswered_then_a_second_tls_session() -> None:
    rows = frames("dtls-blocked-icmp-ok", "outside.pcapng")
    assert dtls_types(rows) == Counter({1: 4})  # four ClientHellos, no HVR, no ServerHello
    hello_times = [
        float(r["frame.time_epoch"][0]) - 1704067200 for r in where(rows, dtls__handshake__type="1")
    ]
    assert [round(t, 3) for t in hello_times] == [0.2, 1.2, 3.2, 7.2]
    sessions = tls_sessions(rows)
    assert len(sessions) == 2 and sessions[0] != sessions[1]
    second = where(rows, tls__handshake__type="1")[1]
    assert float(second["frame.time_epoch"][0]) - 1704067200 > 7.2  # after the DTLS retries
    assert ints(where(rows, tcp__flags__syn="1", tcp__flags__ack="1"), "tcp.options.mss_val") == [
        1380,
        1380,
    ]  # the head-end's outer MSS: sysopt connection tcpmss 1380
    response = [r for r in rows if any("CONNECT response" in c for c in r["frame.comment"])]
    assert len(response) == 2
    assert "X-CSTP-MTU: 1347" in response[0]["frame.comment"][0]
    assert "X-DTLS-MTU: 1418" in response[0]["frame.comment"][0]


def test_cstp_records_are_sized_by_the_cipher_for_the_packets_they_carry() -> None:
    """Every application-data record from the head-end after the CONNECT response carries one
    CSTP packet the client's adapter receives: 16 IV + round_up(8 + len + 20 + 1, 16)."""
    outside = frames("dtls-blocked-icmp-ok", "outside.pcapng")
    tunnel = frames("dtls-blocked-icmp-ok", "client-tunnel.pcap")
    server = [r for r in tunnel if r["tcp.srcport"] == ["5201"]]
    want = Counter(
        mtu.record_length(mtu.CSTP_HEADER + n, "AES128-SHA") for n in ints(server, "ip.len")
    )
    got = Counter()
    for r in outside:
        if (
            r["tcp.srcport"] == ["443"]
            and r["tls.record.content_type"] == ["23"]
            and not any("CONNECT" in c for c in r["frame.comment"])
        ):
            got.update(int(v) for v in r["tls.record.length"])
    assert got == want and want[1392] == 8  # eight 1347-byte packets: 1392-byte records
    # A 1392-byte record does not fit a 1380-byte segment: it spans two (the wire-accurate MTU).
    assert mtu.tls_mtu_wire(1380, "AES128-SHA") == 1315 < 1347


# --- the other scenarios -------------------------------------------------------------------------


def test_healthy_dtls_resumes_and_carries_1418() -> None:
    out = frames("healthy", "outside.pcapng")
    assert dtls_types(out) == Counter({1: 2, 3: 1, 2: 1})  # CH, HVR, CH + cookie, ServerHello
    data = [r for r in out if r["dtls.record.content_type"] == ["23"]]
    lengths = ints(data, "dtls.record.length")
    assert all(n % 16 == 0 for n in lengths)  # CBC records
    assert all(int(r["frame.len"][0]) - int(r["dtls.record.length"][0]) == 55 for r in data)
    assert lengths.count(1456) == 8  # 1418-byte packets: 16 + round_up(1 + 1418 + 21, 16)
    assert len(tls_sessions(out)) == 1
    inside = frames("healthy", "headend-inside.pcap")
    assert syn_mss(inside) == [1378, 1378]
    assert not where(inside, icmp__type="3")
    assert len(where(frames("healthy", "client-tunnel.pcap"), ip__len="1418")) == 8


def test_black_hole_same_segment_retransmitted_no_icmp() -> None:
    inside = frames("dtls-blocked-icmp-blocked", "headend-inside.pcap")
    resent = where(inside, tcp__analysis__retransmission="1")
    assert len(resent) == 3 and ints(resent, "ip.len") == [1418] * 3
    assert {r["tcp.len"][0] for r in resent} == {"1378"}
    assert not where(inside, icmp__type="3")
    tunnel = frames("dtls-blocked-icmp-blocked", "client-tunnel.pcap")
    assert not where(tunnel, ip__len="1418")  # none of them ever reaches the client
    out = frames("dtls-blocked-icmp-blocked", "outside.pcapng")
    assert dtls_types(out) == Counter({1: 4}) and len(tls_sessions(out)) == 2


def test_nondefault_port_hellos_to_8443_unanswered() -> None:
    out = frames("dtls-nondefault-port", "outside.pcapng")
    hellos = where(out, dtls__handshake__type="1")
    assert len(hellos) == 4 and {r["udp.dstport"][0] for r in hellos} == {"8443"}
    assert dtls_types(out) == Counter({1: 4})
    conn = [r for r in out if any("X-DTLS-Port: 8443" in c for c in r["frame.comment"])]
    assert len(conn) == 2


def test_anyconnect_mtu_1300_fits_and_does_not_reconnect() -> None:
    inside = frames("fix-anyconnect-mtu-1300", "headend-inside.pcap")
    assert syn_mss(inside) == [1260, 1260]
    assert max(ints(inside, "ip.len")) == 1300 and not where(inside, icmp__type="3")
    out = frames("fix-anyconnect-mtu-1300", "outside.pcapng")
    assert len(tls_sessions(out)) == 1 and dtls_types(out) == Counter({1: 4})


def test_df_bit_ignore_fragments_instead_of_dropping() -> None:
    tunnel = frames("fix-df-bit-ignore", "client-tunnel.pcap")
    first = where(tunnel, ip__flags__mf="1")
    assert len(first) == 4 and ints(first, "ip.len") == [1340] * 4  # 20 + 1320 (8-aligned)
    rest = where(tunnel, ip__frag_offset=str(1320 // 8))  # tshark shows 8-byte units
    assert ints(rest, "ip.len") == [98] * 4 and all(r["ip.flags.df"] == ["0"] for r in rest)
    inside = frames("fix-df-bit-ignore", "headend-inside.pcap")
    assert len(where(not_icmp(inside), ip__len="1418", ip__flags__df="1")) == 4
    assert not where(inside, icmp__type="3")
    assert len(tls_sessions(frames("fix-df-bit-ignore", "outside.pcapng"))) == 2


def test_tcpmss_1460_carries_1418_in_two_segment_records() -> None:
    out = frames("fix-tcpmss-1460", "outside.pcapng")
    assert ints(where(out, tcp__flags__syn="1", tcp__flags__ack="1"), "tcp.options.mss_val") == [
        1460
    ]
    assert len(tls_sessions(out)) == 1
    records = ints([r for r in out if r["tls.record.content_type"] == ["23"]], "tls.record.length")
    assert records.count(mtu.record_length(1418 + 8, "AES128-SHA")) == 8 == records.count(1472)
    assert max(ints(where(out, tcp__srcport="443"), "tcp.len")) == 1460
    tunnel = frames("fix-tcpmss-1460", "client-tunnel.pcap")
    assert len(where(tunnel, ip__len="1418")) == 8
    assert not where(frames("fix-tcpmss-1460", "headend-inside.pcap"), icmp__type="3")


def test_ipv6_packet_too_big_and_mss_1358() -> None:
    inside = frames("dtls-blocked-ipv6", "headend-inside.pcap")
    assert syn_mss(inside) == [1358, 1287]
    ptb = where(inside, icmpv6__type="2")
    assert len(ptb) == 1 and ptb[0]["icmpv6.mtu"] == ["1347"]
    assert len(where(not_icmp(inside), ipv6__plen="1378")) == 4  # 1418-byte packets
    tunnel = frames("dtls-blocked-ipv6", "client-tunnel.pcap")
    assert max(int(v) + 40 for v in (x for r in tunnel for x in r["ipv6.plen"][:1])) == 1347
    assert len(tls_sessions(frames("dtls-blocked-ipv6", "outside.pcapng"))) == 2
