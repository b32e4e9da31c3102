"""Replay: rewrites judged by tshark, timing, refusals, and a replay into the real lab that
makes the head-end's kernel answer ICMP 3/4 with the TLS MTU."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from labkit import mtu
from labkit.errors import UsageError
from labkit.lab.replay import (
    CaptureFile,
    Pace,
    Record,
    parse_ip_map,
    parse_mac_map,
    rewrite_frame,
    schedule,
)
from labkit.wire import LINKTYPE_ETHERNET
from tests.helpers.cli import labkit
from tests.helpers.labenv import (
    capture_in_background,
    lab,
    netns_run,
    requires_lab,
    requires_ocserv,
    unique,
)
from tests.helpers.paths import ROOT
from tests.helpers.tshark import requires_tshark, tshark_fields

CONFIGS = ROOT / "configs" / "lab"
CHECKSUMS = (
    "-o",
    "ip.check_checksum:TRUE",
    "-o",
    "tcp.check_checksum:TRUE",
    "-o",
    "udp.check_checksum:TRUE",
)


def _rewrite_file(src: Path, dst: Path, macs: str | None, ips: str | None) -> list[bool]:
    capture = CaptureFile(src)
    linktype = capture.linktype
    out, changed = [], []
    for rec in capture.records():
        frame, did = rewrite_frame(
            rec.data, linktype, parse_mac_map(macs), parse_ip_map(ips), rec.wire_len
        )
        changed.append(did)
        pkt = Ether(frame) if linktype == LINKTYPE_ETHERNET else IP(frame)
        pkt.wirelen = rec.wire_len  # keep the snap length: tshark must see truncation
        out.append(pkt)
    wrpcap(str(dst), out)
    return changed


@requires_tshark
def test_ip_rewrite_fixes_checksums_as_tshark_sees_them(
    public_captures: Path, tmp_path: Path
) -> None:
    src = public_captures / "tcp-mss-fast-retransmit.pcap"
    dst = tmp_path / "rw.pcap"
    changed = _rewrite_file(src, dst, None, "10.0.88.85=198.18.1.2,192.168.0.0/24=198.18.3.0/24")
    assert all(changed)
    before = tshark_fields(src, "tcp", "tcp.checksum.status", extra=CHECKSUMS)
    after = tshark_fields(
        dst, "tcp", "ip.src", "ip.dst", "ip.checksum.status", "tcp.checksum.status", extra=CHECKSUMS
    )
    assert len(after) == len(before)
    assert {(r[0], r[1]) for r in after} == {
        ("198.18.1.2", "198.18.3.27"),
        ("198.18.3.27", "198.18.1.2"),
    }
    # The capture has bad checksums (0, offload) and snapped packets (2, unverifiable). After a
    # rewrite every IP checksum is good (1) and every complete packet's TCP checksum is good;
    # a snapped packet's cannot be computed and stays unverifiable, as with tcprewrite.
    assert {r[0] for r in before} == {"0", "2"}
    assert all(r[2] == "1" for r in after)
    assert [r[3] for r in after] == ["1" if b[0] == "0" else "2" for b in before]


@requires_tshark
def test_ipv6_rewrite_fixes_the_icmpv6_checksum(public_captures: Path, tmp_path: Path) -> None:
    src = public_captures / "icmp6-packet-too-big.pcap"
    [[srcs, dsts]] = tshark_fields(src, "icmpv6", "ipv6.src", "ipv6.dst")
    orig_src, orig_dst = srcs.split(",")[0], dsts.split(",")[0]  # outer header; then the quote
    dst = tmp_path / "rw6.pcap"
    assert _rewrite_file(src, dst, None, f"{orig_src}=2001:db8::1") == [True]
    rows = tshark_fields(
        dst, "icmpv6", "ipv6.src", "ipv6.dst", "icmpv6.checksum.status", "icmpv6.mtu"
    )
    assert [v.split(",")[0] for v in rows[0][:2]] == ["2001:db8::1", orig_dst]
    assert rows[0][2] == "1"


def test_untouched_packets_leave_exactly_as_captured(public_captures: Path) -> None:
    capture = CaptureFile(public_captures / "tcp-mss-fast-retransmit.pcap")
    linktype = capture.linktype
    for rec in capture.records():
        frame, changed = rewrite_frame(
            rec.data,
            linktype,
            parse_mac_map("02:00:00:00:00:09=02:00:00:00:00:0a"),
            parse_ip_map("203.0.113.1=198.18.1.1"),
            rec.wire_len,
        )
        assert (frame, changed) == (rec.data, False)


def test_mac_rewrite_applies_to_both_addresses() -> None:
    frame = bytes.fromhex("0200000000010200000000020800") + bytes(IP(dst="1.2.3.4"))
    out, changed = rewrite_frame(
        frame,
        LINKTYPE_ETHERNET,
        parse_mac_map("02:00:00:00:00:01=0a:00:00:00:00:01,02:00:00:00:00:02=0a:00:00:00:00:02"),
        (),
    )
    assert changed and out[:12] == bytes.fromhex("0a00000000010a0000000002")
    assert out[12:] == frame[12:]


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("mac", "02:00:00:00:00:01", "expected OLD=NEW"),
        ("mac", "02:00:00:00:01=02:00:00:00:00:02", "expected six hex bytes"),
        ("ip", "10.0.0.0/8=198.18.0.0/15", "same IP version and prefix length"),
        ("ip", "10.0.0.1=2001:db8::1", "same IP version"),
        ("ip", "10.0.0.1/8=198.18.0.0/8", "has host bits set"),
    ],
)
def test_bad_maps_are_usage_errors(flag: str, value: str, message: str) -> None:
    with pytest.raises(UsageError) as err:
        (parse_mac_map if flag == "mac" else parse_ip_map)(value)
    assert message in str(err.value)


def test_schedule_follows_tcpreplay_timing() -> None:
    def recs() -> list[Record]:
        return [Record(100.0, b"a", 1), Record(100.5, b"b", 1), Record(101.0, b"c", 1)]

    assert [at for at, _ in schedule(recs, Pace(), 1)] == [0.0, 0.5, 1.0]
    assert [at for at, _ in schedule(recs, Pace(speed=2.0), 2)] == [0.0, 0.25, 0.5, 0.5, 0.75, 1.0]
    assert [at for at, _ in schedule(recs, Pace(speed=None, pps=10), 1)] == [0.0, 0.1, 0.2]
    assert [at for at, _ in schedule(recs, Pace(speed=None), 1)] == [0.0, 0.0, 0.0]
    with pytest.raises(UsageError):
        list(schedule(recs, Pace(), 0))


def test_mbps_paces_by_bits_sent_as_tcpreplay_does() -> None:
    """tcpreplay --mbps: each packet leaves when the bits before it, at the rate, have gone."""

    def recs() -> list[Record]:
        return [Record(0.0, b"x" * 125, 125), Record(9.0, b"y" * 250, 250), Record(9.5, b"z", 1)]

    # 125 bytes = 1000 bits: at 0.01 Mbps (10 kbit/s) 0.1 s; then 2000 more bits, 0.2 s.
    got = [at for at, _ in schedule(recs, Pace(speed=None, mbps=0.01), 1)]
    assert got == pytest.approx([0.0, 0.1, 0.3])
    with pytest.raises(UsageError, match="--mbps 0"):
        Pace(speed=None, mbps=0)


def test_replay_refusals_are_one_line(tmp_path: Path, public_captures: Path) -> None:
    cap = public_captures / "tcp-mss-fast-retransmit.pcap"
    cases = [
        (("replay", str(cap), "--iface", "lo"), "host's own namespace"),
        (
            ("replay", str(cap), "--iface", "eth0", "--netns", "someone-elses"),
            "not a node of a labkit lab",
        ),
        (
            ("replay", str(tmp_path / "none.pcap"), "--iface", "lo", "--allow-any-iface"),
            "no such file",
        ),
        (("replay", str(cap), "--iface", "lo", "--pps", "0", "--allow-any-iface"), "--pps 0"),
        (("replay", str(cap), "--iface", "lo", "--speed", "2", "--pps", "3"), "not allowed with"),
    ]
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    cases.append((("replay", str(bad), "--iface", "lo", "--allow-any-iface"), "not a pcap"))
    for args, message in cases:
        proc = labkit(*args)
        assert proc.returncode == 2, (args, proc.stdout)
        assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


# --- into the real lab ------------------------------------------------------------------------


def _scenario_like_capture(path: Path, count: int) -> None:
    """The server's 1418-byte DF segment to the client's tunnel address and its
    retransmissions, as `labkit craft` writes them (documentation addresses, fixed MACs)."""
    proc = labkit(
        "craft", "oversized", "--count", str(count), "--interval", "0.01", "-o", str(path)
    )
    assert proc.returncode == 0, proc.stderr


def _mac(ns: str, ifname: str) -> str:
    out = subprocess.run(
        ["ip", "-j", "-n", ns, "link", "show", ifname], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)[0]["address"]


SCENARIO = ROOT / "pcaps" / "scenarios" / "dtls-blocked-icmp-ok" / "headend-inside.pcap"


@requires_lab
@requires_tshark
def test_replayed_scenario_segments_make_the_kernel_send_icmp_1347(tmp_path: Path) -> None:
    """The seed scenario's inside capture: its server's 1418-byte DF segments, replayed into
    the kernel lab, draw the real head-end kernel's ICMP 3/4 with the TLS MTU. Replayed two a
    second, they keep coming well after the first ICMP, as from a sender that ignores it: the
    analyzer names the mismatch and says the sender kept sending oversized packets."""
    crafted, captured = tmp_path / "scenario.pcap", tmp_path / "inside.pcap"
    # Only the server's segments: the scenario's own (crafted) ICMP stays out of the lab.
    proc = subprocess.run(
        [
            "tshark",
            "-n",
            "-r",
            str(SCENARIO),
            "-Y",
            "ip.len == 1418 && ip.flags.df == 1 && tcp && !icmp",
            "-F",
            "pcap",
            "-w",
            str(crafted),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    rows = tshark_fields(
        crafted, "ip.len == 1418 && ip.flags.df == 1", "ip.src", "ip.dst", "eth.src", "eth.dst"
    )
    assert len(rows) == 4
    ((scen_server, scen_client, scen_smac, scen_dmac),) = set(map(tuple, rows))
    with lab(unique("rp")) as name:
        server, headend = f"lk-{name}-server", f"lk-{name}-headend"
        netns_run(server, "ip", "route", "flush", "cache")
        cap = capture_in_background(name, captured, "4")
        time.sleep(1.0)
        proc = labkit(
            "replay",
            str(crafted),
            "--iface",
            "lk-s-h",
            "--netns",
            server,
            "--pps",
            "2",
            "--rewrite-mac",
            f"{scen_dmac}={_mac(headend, 'lk-h-s')},{scen_smac}={_mac(server, 'lk-s-h')}",
            "--rewrite-ip",
            f"{scen_server}=198.18.3.2,{scen_client}=198.18.1.2",
            "--format",
            "json",
        )
        assert proc.returncode == 0, proc.stderr
        stats = json.loads(proc.stdout)
        assert (stats["sent"], stats["failed"], stats["rewritten"]) == (4, 0, 4)
        assert stats["pps"] > 0
        _, err = cap.communicate(timeout=20)
        assert cap.returncode == 0, err
    sent = tshark_fields(
        captured,
        "ip.src == 198.18.3.2 && ip.len == 1418 && tcp && !icmp",
        "ip.dst",
        "tcp.checksum.status",
        extra=CHECKSUMS,
    )
    assert sent == [["198.18.1.2", "1"]] * 4  # rewritten, checksums fixed
    icmp = tshark_fields(captured, "icmp.type == 3 && icmp.code == 4", "ip.src", "icmp.mtu")
    # outer source: the head-end; quoted source: the server whose segment it dropped
    assert icmp == [["198.18.3.1,198.18.3.2", str(mtu.tls_mtu_asa())]] * 4
    # and the analyzer, reading the lab's capture, names it
    proc = labkit("analyze", str(captured), "--format", "json")
    assert proc.returncode == 1, proc.stderr
    found = {f["id"]: f for f in json.loads(proc.stdout)["findings"]}
    assert found["icmp-frag-needed"]["mtu"] == mtu.tls_mtu_asa()
    assert found["icmp-frag-needed"]["original_length"] == mtu.dtls_mtu()
    assert (found["mtu-mismatch"]["packet_size"], found["mtu-mismatch"]["tunnel_mtu"]) == (
        mtu.dtls_mtu(),
        mtu.tls_mtu_asa(),
    )
    assert found["mtu-mismatch"]["sender_kept_oversized"] is True


@requires_lab
def test_replay_refuses_a_missing_interface_in_a_lab() -> None:
    with lab(unique("rq")) as name:
        crafted = Path(f"/tmp/lk-{name}.pcap")
        try:
            _scenario_like_capture(crafted, 1)
            proc = labkit("replay", str(crafted), "--iface", "eth9", "--netns", f"lk-{name}-server")
            assert proc.returncode == 2 and "does not exist" in proc.stderr
            # a 1418-byte frame onto the head-end's 1347 link: counted as failed, exit 1
            proc = labkit(
                "replay",
                str(crafted),
                "--iface",
                "lk-h-r",
                "--netns",
                f"lk-{name}-headend",
                "--topspeed",
            )
            assert proc.returncode == 1
            assert "Failed packets: 1" in proc.stdout and "Message too long" in proc.stdout
        finally:
            crafted.unlink(missing_ok=True)


@requires_lab
def test_replay_streams_and_takes_tcpreplays_option_names(tmp_path: Path) -> None:
    """--limit 1 reads what it sends and no more: fed from a pipe whose writer holds it open
    until the replay has ended, a replay that loaded the whole capture first would wait for
    an end of file that never comes (the subprocess timeout fails the test). tcpreplay's
    spellings (--intf1, -t, -L, --multiplier, --loop, -M) drive the same replay."""
    crafted = tmp_path / "three.pcap"
    _scenario_like_capture(crafted, 3)
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    replay_ended = threading.Event()

    def writer() -> None:
        with fifo.open("wb") as pipe:
            pipe.write(crafted.read_bytes())  # 3 packets: fits the pipe's buffer
            pipe.flush()
            replay_ended.wait(90)  # no end of file before the replay is over

    with lab(unique("rs")) as name:
        target = ("--netns", f"lk-{name}-server")
        feeder = threading.Thread(target=writer)
        feeder.start()
        try:
            proc = labkit("replay", str(fifo), "--intf1", "lk-s-h", *target, "-t", "-L", "1")
        finally:
            replay_ended.set()
            feeder.join(10)
        assert proc.returncode == 0, proc.stderr
        assert "Successful packets: 1" in proc.stdout
        looped = labkit(
            "replay",
            str(crafted),
            "--intf1",
            "lk-s-h",
            *target,
            "--multiplier",
            "50",
            "--loop",
            "2",
        )
        assert looped.returncode == 0 and "Successful packets: 6" in looped.stdout, looped.stderr
        rated = labkit("replay", str(crafted), "-i", "lk-s-h", *target, "-M", "100", "-L", "2")
        assert rated.returncode == 0 and "Successful packets: 2" in rated.stdout, rated.stderr
        piped = labkit("replay", str(fifo), "--intf1", "lk-s-h", *target, "--loop", "2")
        assert piped.returncode == 2 and "regular file" in piped.stderr, piped.stderr


@requires_ocserv
@requires_tshark
def test_raw_ip_replay_into_the_client_tun_crosses_the_real_vpn(tmp_path: Path) -> None:
    """A raw-IP capture (what a tun capture holds) sent into openconnect's tun: openconnect
    carries it to ocserv, the head-end forwards it, the server answers."""
    crafted, captured = tmp_path / "echo.pcap", tmp_path / "inside.pcap"
    name = unique("rt")
    with lab(name, "--topology", str(CONFIGS / "ocserv-dtls-open.yaml")):
        status = json.loads(labkit("lab", "status", "--lab", name, "--format", "json").stdout)
        tunnel_addr = status["nodes"]["client"]["tunnel_addresses"][0].split("/")[0]
        wrpcap(str(crafted), [IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(id=7, seq=1) / b"labkit"])
        cap = capture_in_background(name, captured, "2")
        time.sleep(0.8)
        proc = labkit(
            "replay",
            str(crafted),
            "--iface",
            "lkvpn0",
            "--netns",
            f"lk-{name}-client",
            "--rewrite-ip",
            f"10.0.0.1={tunnel_addr},10.0.0.2=198.18.3.2",
        )
        assert proc.returncode == 0, proc.stderr
        assert "Successful packets: 1" in proc.stdout
        _, err = cap.communicate(timeout=15)
        assert cap.returncode == 0, err
    rows = tshark_fields(
        captured, "icmp.ident == 7", "ip.src", "ip.dst", "icmp.type", "icmp.checksum.status"
    )
    assert rows == [[tunnel_addr, "198.18.3.2", "8", "1"], ["198.18.3.2", tunnel_addr, "0", "1"]]
