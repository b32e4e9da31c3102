"""The benchmark generator's ground truth against tshark, on a small capture in both formats.

The benchmark checks labkit's counts against the generator's truth and tshark's: that is
only worth something if the truth is right. No timing is asserted here (the speed targets
are printed by ``python -m benchmarks.run``, never asserted in tests).
"""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks import facts
from benchmarks.generate import HEADEND_ADDRESS, truth_path
from tests.helpers.cli import labkit
from tests.helpers.paths import ROOT
from tests.helpers.tshark import requires_tshark, tshark_problems

SEED, PACKETS = 1, 5_000  # every capture opens with each kind of fact (generate.PRELUDE)


def _generate(path, *extra: str, packets: int = PACKETS) -> dict:
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
    assert truth["tls_client_hellos"] > 0 and truth["blackhole_flows"] > 0
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
