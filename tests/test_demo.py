"""`labkit demo`, the README's first command, does what the README says."""

from __future__ import annotations

from conftest import labkit, requires_tshark, tshark_fields


@requires_tshark
def test_demo_prints_prediction_and_writes_the_failure(tmp_path):
    proc = labkit("demo", "-o", str(tmp_path))
    assert proc.returncode in (0, 1), proc.stderr
    assert "1347" in proc.stdout and "1418" in proc.stdout
    pcap = tmp_path / "failure-packets.pcapng"
    assert tshark_fields(pcap, "tcp.flags.syn == 1", "tcp.options.mss_val") == [["1378"]]
    assert tshark_fields(pcap, "ip.flags.df == 1 && tcp.len > 0 && !icmp", "ip.len") == [["1418"]]
    assert tshark_fields(pcap, "icmp.type == 3 && icmp.code == 4", "icmp.mtu") == [["1347"]]
    again = labkit("demo", "-o", str(tmp_path))
    assert again.returncode == 2 and "already exists" in again.stderr
