"""`labkit demo`, the README's first command, does what the README says."""

from __future__ import annotations

from tests.helpers.cli import labkit
from tests.helpers.tshark import requires_tshark, tshark_fields


@requires_tshark
def test_demo_builds_analyzes_and_reaches_the_seed_verdict(tmp_path):
    proc = labkit("demo", "-o", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    assert "MISMATCH" in proc.stdout  # the prediction
    assert (
        "VERDICT: PROBLEM: MTU mismatch confirmed: 1418-byte packets vs a 1347-byte tunnel"
        in proc.stdout
    )
    assert "reached the verdict the scenario 'dtls-blocked-icmp-ok' expects" in proc.stdout
    # The captures it points at are real: tshark sees the seed's numbers in them.
    inside = tmp_path / "headend-inside.pcap"
    assert ["1347"] in tshark_fields(inside, "icmp.type == 3 && icmp.code == 4", "icmp.mtu")
    assert ["1378"] in tshark_fields(
        tmp_path / "client-tunnel.pcap", "tcp.flags.syn == 1", "tcp.options.mss_val"
    )
    again = labkit("demo", "-o", str(tmp_path))
    assert again.returncode == 2 and "already exists" in again.stderr


def test_demo_unknown_scenario_is_a_one_line_error(tmp_path):
    proc = labkit("demo", "--scenario", "no-such-scenario", "-o", str(tmp_path))
    assert proc.returncode == 2 and "no shipped scenario of that name" in proc.stderr
