"""The benchmark generator's ground truth against tshark, on a small capture in both formats.

The benchmark checks labkit's counts against the generator's truth and tshark's: that is
only worth something if the truth is right, for every mix, and if each mix is what it claims
to be (tshark, not the generator, says so). No timing is asserted here (the speed targets
are printed by ``python -m benchmarks.run``, never asserted in tests).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from benchmarks import facts
from benchmarks.generate import truth_path
from benchmarks.mixes import HEADEND_ADDRESS, MIXES
from tests.helpers.cli import labkit
from tests.helpers.paths import ROOT
from tests.helpers.tshark import requires_tshark, tshark_fields, tshark_problems

SEED, PACKETS = 1, 5_000  # every capture opens with each kind of fact (generate.PRELUDE)


def _generate(path, *extra: str, packets: int = PACKETS, mix: str = "bulk") -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.generate",
            "-o",
            str(path),
            "--packets",
            str(packets),
            "--seed",
            str(SEED),
            "--mix",
            mix,
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(truth_path(path).read_text())


@requires_tshark
def test_generator_truth_matches_tshark(tmp_path):
    pcap, pcapng = tmp_path / "mix.pcap", tmp_path / "mix.pcapng"
    doc = _generate(pcap)
    truth = doc["truth"]
    assert doc["packets"] == PACKETS and doc["bytes"] == pcap.stat().st_size
    # Every fact is present, so agreement below is not agreement on zeros.
    assert {"536", "1378", "1460"} <= truth["syn_mss"].keys()
    assert "1347" in truth["icmp_frag_needed_mtu"] and len(truth["icmp_frag_needed_mtu"]) > 1
    assert truth["df_over_tunnel_mtu_by_size"]["1418"] > 0
    assert truth["dtls_client_hellos_by_version"].keys() == {"0x0100", "0xfeff", "0xfefd"}
    assert 0 < truth["dtls_flows_answered"] < truth["dtls_flows"]
    assert truth["tls_client_hellos"] > 0
    mtu = doc["tunnel_mtu"]

    seen = facts.facts_from_tshark(
        subprocess.run(
            facts.tshark_args(str(pcap), mtu),
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout,
        mtu,
        HEADEND_ADDRESS,
    )
    assert 0 < truth["df_over_tunnel_mtu_not_headend"] < truth["df_over_tunnel_mtu"]
    assert (
        facts.disagreements(
            truth,
            seen,
            facts.COMPARED + ("df_over_tunnel_mtu_by_size", "df_over_tunnel_mtu_not_headend"),
        )
        == []
    )
    # tshark calls the resends that follow an ICMP 3/4 within a round trip "out-of-order".
    assert 0 < seen["retransmissions_tshark_strict"] < truth["retransmissions"]
    assert tshark_problems(pcap, facts.DECODE_AS) == []

    # pcapng: the same packets, so the same facts; the same seed gives the same bytes.
    assert _generate(pcapng)["truth"] == truth
    seen_ng = facts.facts_from_tshark(
        subprocess.run(
            facts.tshark_args(str(pcapng), mtu),
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout,
        mtu,
        HEADEND_ADDRESS,
    )
    assert seen_ng == seen
    again = tmp_path / "again.pcap"
    _generate(again)
    assert again.read_bytes() == pcap.read_bytes()


@requires_tshark
def test_labkit_counts_equal_the_truth_and_tshark(tmp_path):
    """labkit's ``files[].counts`` (and the findings the runner reads) on the benchmark mix:
    every fact the runner compares, in both formats, against the generator and tshark. 20 k
    packets: on 5 k the capture ends before the black hole's segment is sent three times."""
    from benchmarks.run import labkit_facts

    keys = facts.COMPARED[:-1] + ("df_over_tunnel_mtu_not_headend", "blackhole_flows")
    assert facts.COMPARED[-1] == "retransmissions"  # labkit counts no retransmissions
    for name in ("mix.pcap", "mix.pcapng"):
        path = tmp_path / name
        doc = _generate(path, packets=20_000)
        assert doc["truth"]["blackhole_flows"] > 0
        mtu = doc["tunnel_mtu"]
        proc = labkit("analyze", str(path), "--format", "json")
        assert proc.returncode == 1, proc.stderr  # 1: problems found
        got = labkit_facts(json.loads(proc.stdout), mtu)
        assert set(keys) <= got.keys()
        assert facts.disagreements(doc["truth"], got, keys) == []
        seen = facts.facts_from_tshark(
            subprocess.run(
                facts.tshark_args(str(path), mtu),
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            ).stdout,
            mtu,
            HEADEND_ADDRESS,
        )
        assert facts.disagreements(seen, got, keys[:-1]) == []
        # The whole DTLS census, unanswered flows included, is not a count of zeros.
        assert got["dtls_flows"] > got["dtls_flows_answered"] > 0 and got["tls_client_hellos"] > 0


def _tshark_facts(path, mtu: int) -> dict:
    out = subprocess.run(
        facts.tshark_args(str(path), mtu), capture_output=True, text=True, check=True, timeout=120
    ).stdout
    return facts.facts_from_tshark(out, mtu, HEADEND_ADDRESS)


def _labkit_facts(path, mtu: int) -> dict:
    from benchmarks.run import labkit_facts

    proc = labkit("analyze", str(path), "--format", "json", timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    return labkit_facts(json.loads(proc.stdout), mtu)


def _shares(doc: dict) -> dict[str, float]:
    t, n = doc["truth"], doc["packets"]
    syn = sum(t["syn_mss"].values()) + sum(t["synack_mss"].values())
    return {
        "syn": syn / n,
        "tls_ch": t["tls_client_hellos"] / n,
        "icmp": sum(t["icmp_frag_needed_mtu"].values()) / n,
        "handshakes": (syn + t["tls_client_hellos"] + t["dtls_client_hellos"]) / n,
    }


@requires_tshark
@pytest.mark.parametrize("mix", [m for m in MIXES if m != "bulk"])
def test_every_mix_counts_equal_the_truth_tshark_and_labkit(tmp_path, mix):
    """Each mix's truth against tshark, and labkit's counts against both: the check the runner
    makes on every mix, on 8 k packets (the runner's count check on a slice is this one)."""
    path = tmp_path / f"{mix}.pcap"
    doc = _generate(path, packets=8_000, mix=mix)
    mtu = doc["tunnel_mtu"]
    seen = _tshark_facts(path, mtu)
    assert facts.disagreements(doc["truth"], seen) == []
    got = _labkit_facts(path, mtu)
    keys = facts.COMPARED[:-1] + ("df_over_tunnel_mtu_not_headend", "blackhole_flows")
    assert facts.disagreements(doc["truth"], got, keys) == []
    assert facts.disagreements(seen, got, keys[:-1]) == []
    assert tshark_problems(path, facts.DECODE_AS) == []
    shares = _shares(doc)
    if mix == "headend":  # a head-end's outside: handshakes, but mostly still data
        assert 0.025 < shares["syn"] < 0.05 and 0.01 < shares["tls_ch"] < 0.02
        assert 0 < seen["dtls_flows_answered"] < seen["dtls_flows"]
    elif mix == "handshake10":
        # ~9.5 % once conversations overlap (1 M packets); a short capture starts with more,
        # every conversation opening with its handshake
        assert 0.07 < shares["handshakes"] < 0.2
    elif mix == "icmp":
        assert shares["icmp"] > 0.05 and seen["icmp_frag_needed_mtu"].keys() >= {str(mtu)}
    elif mix == "lossy":  # segments lost past the capture point come again: retransmissions
        assert doc["truth"]["retransmissions"] / doc["packets"] > 0.004


@requires_tshark
def test_manyflows_is_one_packet_per_5_tuple(tmp_path):
    path = tmp_path / "manyflows.pcap"
    doc = _generate(path, packets=5_000, mix="manyflows")
    rows = tshark_fields(
        path,
        "ip",
        "ip.src",
        "ip.dst",
        "ip.proto",
        "tcp.srcport",
        "tcp.dstport",
        "udp.srcport",
        "udp.dstport",
    )
    assert len(rows) == doc["packets"] == doc["truth"]["flows"]
    tuples = {tuple(r) for r in rows}
    assert len(tuples) == len(rows)  # no 5-tuple twice, in either direction
    assert not {(d, s, p, dp, sp, udp, uds) for s, d, p, sp, dp, uds, udp in tuples} & tuples
    # a DTLS flow is counted per client/server pair: every client is a new address
    assert doc["truth"]["dtls_flows"] == len({r[0] for r in rows if r[2] == "17"})


@requires_tshark
def test_worst_case_is_every_packet_decoded_alone(tmp_path):
    """Every packet is an ICMP 3/4, a DTLS handshake record, or a SYN whose first option is
    not the MSS: the packets the analyzer cannot read from its columns."""
    path = tmp_path / "worst.pcap"
    doc = _generate(path, packets=5_000, mix="worst")
    rows = tshark_fields(
        path,
        "frame",
        "icmp.type",
        "icmp.code",
        "dtls.handshake.type",
        "tcp.flags.syn",
        "tcp.option_kind",
        extra=(*facts.DECODE_AS, "-E", "occurrence=f"),
    )
    assert len(rows) == doc["packets"]
    kinds = Counter(
        "icmp34"
        if (icmp, code) == ("3", "4")
        else "dtls-handshake"
        if hs
        else "odd-syn"
        if syn == "1" and opt and opt != "2"
        else "other"
        for icmp, code, hs, syn, opt in rows
    )
    assert kinds["other"] == 0 and min(kinds.values()) > 500, kinds


def test_a_slice_is_the_first_packets_of_the_capture(tmp_path):
    """--tshark-slice times tshark on N packets generated alone: the same bytes as the whole
    capture's first N packets, so the slice's truth is the truth of that prefix."""
    big, small = tmp_path / "big.pcap", tmp_path / "small.pcap"
    _generate(big, packets=6_000, mix="headend")
    doc = _generate(small, packets=2_000, mix="headend")
    assert big.read_bytes()[: doc["bytes"]] == small.read_bytes()


@pytest.mark.skipif(importlib.util.find_spec("isal") is None, reason="isal is not installed")
def test_gzip_capture_reads_the_same_with_isal_and_zlib(tmp_path):
    """The inflater is a speed choice only: the same report with ISA-L and with zlib (isal
    made unimportable, as the runner times it), and the same as the plain file's."""
    from benchmarks.run import ZLIB_ONLY

    plain = tmp_path / "bulk.pcap"
    _generate(plain, packets=3_000)
    gz = tmp_path / "bulk.pcap.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    reports = []
    for head in ([sys.executable, "-m", "labkit"], [sys.executable, "-c", ZLIB_ONLY]):
        for path in (plain, gz):
            proc = subprocess.run(
                [*head, "analyze", str(path), "--format", "json"],
                cwd=ROOT,
                env=dict(os.environ, PYTHONPATH=str(ROOT)),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert proc.returncode == 1, proc.stderr
            report = json.loads(proc.stdout)
            for f in report["files"]:
                f.pop("path"), f.pop("format")
            reports.append(
                json.dumps(report["findings"], sort_keys=True).replace(gz.name, plain.name)
            )
            reports.append(json.dumps(report["files"], sort_keys=True))
    assert len(set(reports[0::2])) == 1 and len(set(reports[1::2])) == 1


@requires_tshark
def test_cstp_session_decrypts_to_what_the_generator_sent(tmp_path):
    """The full-featured run's session: tshark decrypts it with the key log (records each way,
    the head-end's CONNECTED response), and labkit's --keylog finds every CSTP packet the
    generator sent, by type and direction, with the head-end's MTUs."""
    from benchmarks.cstp_session import keylog_path
    from benchmarks.fullrun import decrypted_facts

    path = tmp_path / "cstp.pcap"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.cstp_session", "-o", str(path), "--size", "400k"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(truth_path(path).read_text())
    keys = keylog_path(path)
    rows = tshark_fields(
        path,
        "tls",
        "tcp.srcport",
        "tls.record.content_type",
        "http.response.line",
        extra=("-o", f"tls.keylog_file:{keys}", "-E", "occurrence=a", "-E", "aggregator=;"),
    )
    records = Counter()
    for sport, types, _ in rows:
        records["to-client" if sport == "443" else "to-server"] += types.split(";").count("23")
    assert records == doc["tls_application_records"]
    lines = ";".join(r[2] for r in rows)
    assert (
        f"X-CSTP-MTU: {doc['x_cstp_mtu']}" in lines and f"X-DTLS-MTU: {doc['x_dtls_mtu']}" in lines
    )

    proc = labkit("analyze", str(path), "--keylog", str(keys), "--format", "json")
    assert proc.returncode in (0, 1), proc.stderr
    got = decrypted_facts(json.loads(proc.stdout))
    assert got == {k: doc[k] for k in got} and got["cstp"]["to-client"]["DATA"] > 200
