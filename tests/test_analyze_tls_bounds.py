"""TLS on a busy head-end: a million clients without DTLS stay bounded in the report.

Each client of a declared head-end with TLS sessions and no DTLS attempt is a
``dtls-absent`` finding; a head-end's day has a million such clients, so a report lists
:data:`~labkit.analyze.case.MAX_LISTED_PAIRS` of them (the lowest addresses, by name) and
one more finding that counts the rest. The captures are flowgen's: one ClientHello per
client to one server; tshark counts the clients on its own and judges the filters.
"""

from __future__ import annotations

import ipaddress

from labkit.analyze import AnalyzeOptions, analyze
from labkit.analyze.case import MAX_LISTED_PAIRS
from tests.helpers import flowgen
from tests.helpers.cli import labkit
from tests.helpers.tshark import requires_tshark, tshark_fields, tshark_frames

HEAD = str(ipaddress.IPv4Address(flowgen.SERVER))


def _absent(path, **options) -> list:
    report = analyze([path], AnalyzeOptions(headends=(HEAD,), **options))
    return [f for f in report.findings if f.id == "dtls-absent"]


@requires_tshark
def test_clients_without_dtls_are_listed_up_to_the_bound_and_counted(tmp_path):
    n = MAX_LISTED_PAIRS + 7
    path = flowgen.write(tmp_path / "head.pcap", "tls", n)
    clients = {r[0] for r in tshark_fields(path, "tls.handshake.type == 1", "ip.src")}
    assert len(clients) == n  # tshark sees every client
    found = _absent(path)
    assert len(found) == MAX_LISTED_PAIRS + 1
    listed, rest = found[:-1], found[-1]
    names = [str(ipaddress.IPv4Address(flowgen.client(i))) for i in range(n)]
    # The lowest addresses are listed, in the order of their names; the next one stands for
    # itself and every client not listed.
    assert [f.fields["client"] for f in listed] == sorted(names[:MAX_LISTED_PAIRS])
    assert rest.fields["client"] == names[MAX_LISTED_PAIRS]
    assert all("more_pairs" not in f.fields for f in listed)
    assert rest.fields["more_pairs"] == n - MAX_LISTED_PAIRS - 1
    assert f"{n - MAX_LISTED_PAIRS - 1} more client(s) of this head-end" in rest.summary
    assert all(f.fields["tls_sessions"] == 1 and f.fields["server"] == HEAD for f in found)
    for f in (listed[0], listed[-1], rest):  # tshark runs once a finding: three of them
        assert tshark_frames(path, f.wireshark_filter) == sorted(e.frame for e in f.evidence)
    text = labkit("analyze", str(path), "--headend", HEAD).stdout
    assert f"] dtls-absent: {n} flows, 1 head-end(s)" in text
    assert f"(and {n - MAX_LISTED_PAIRS - 1} more not listed one by one)" in text


def test_clients_up_to_the_bound_are_each_listed_by_name(tmp_path):
    path = flowgen.write(tmp_path / "head.pcap", "tls", MAX_LISTED_PAIRS)
    found = _absent(path)
    assert len(found) == MAX_LISTED_PAIRS
    assert all("more_pairs" not in f.fields for f in found)
    assert [f.fields["client"] for f in found] == sorted(f.fields["client"] for f in found)
