"""The lab itself: topology files, up/down leaving nothing behind (also after SIGKILL),
two labs side by side, status JSON, captures that never overwrite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from labkit import mtu
from labkit.errors import InputError
from labkit.lab.netops import nft_ruleset
from labkit.lab.topology import Topology, load_topology
from tests.helpers.cli import labkit
from tests.helpers.labenv import (
    capture_in_background,
    lab,
    lab_down,
    lab_namespaces,
    netns_run,
    requires_lab,
    requires_ocserv,
    unique,
)
from tests.helpers.paths import ROOT
from tests.helpers.tshark import requires_tshark, tshark_fields

CONFIGS = ROOT / "configs" / "lab"


# --- topology files (no root needed) --------------------------------------------------------


def test_default_topology_is_the_seed_case() -> None:
    topo = load_topology(CONFIGS / "default.yaml")
    assert topo.headend == "kernel"
    assert topo.tls_mtu == mtu.tls_mtu_asa(1380, "AES128-SHA") == 1347
    assert (topo.block_dtls, topo.block_icmp, topo.dtls_port) == (True, False, 443)
    # `labkit lab up` without --topology uses Topology()'s defaults: the same case
    assert replace(topo, description="") == Topology()


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_every_shipped_topology_loads(name: str) -> None:
    assert isinstance(load_topology(CONFIGS / name), Topology)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("headend: kernel\ntls_mtu: abc\n", "t.yaml:2: tls_mtu: expected an MTU in bytes"),
        ("headend: asa\n", "t.yaml:1: headend: expected one of kernel, ocserv, got 'asa'"),
        ("block_dtls: 1\n", "t.yaml:1: block_dtls: expected true or false"),
        ("tls_mtu: true\n", "t.yaml:1: tls_mtu: expected an MTU"),
        ("headend: kernel\n\nmtu: 1347\n", "t.yaml:3: unknown key 'mtu'"),
        ("tls_mtu: 1347\ntcpmss: 1380\n", "t.yaml:1: give either tls_mtu or tcpmss"),
        ("tcpmss: 1380\ntls_cipher: NOPE\n", "t.yaml:2: unknown cipher 'NOPE'"),
        ("tls_mtu: 100\n", "TLS MTU 100: expected 576..1500"),
        ("headend: [\n", "t.yaml:2: not valid YAML"),
    ],
)
def test_topology_errors_name_file_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_topology(path)
    assert expected in str(err.value)


def test_bad_topology_is_one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("headend: asa\n")
    proc = labkit("lab", "up", "--lab", "never", "--topology", str(path))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "t.yaml:1: headend" in proc.stderr


def test_nft_rules_follow_the_knobs() -> None:
    seed = Topology(block_dtls=True, block_icmp=False, dtls_port=8443)
    assert "udp dport 8443 counter drop" in nft_ruleset(seed, "router")
    assert nft_ruleset(seed, "headend") is None
    assert nft_ruleset(seed, "client") is None
    hole = Topology(block_dtls=False, block_icmp=True)
    router, headend = nft_ruleset(hole, "router"), nft_ruleset(hole, "headend")
    assert "udp dport" not in router
    for rules in (router, headend):
        assert "icmp type destination-unreachable counter drop" in rules
        assert "hook output" in rules and "hook forward" in rules


# --- the real lab (root) --------------------------------------------------------------------


def _host_links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


@requires_lab
def test_up_then_down_leaves_nothing_behind() -> None:
    name = unique("ud")
    before = _host_links()
    with lab(name):
        assert lab_namespaces(name) == [
            f"lk-{name}-{n}" for n in sorted(("client", "router", "headend", "server"))
        ]
        # veths live only inside the lab's namespaces, never in the host's
        assert " lk-" not in _host_links()
        links = netns_run(f"lk-{name}-headend", "ip", "-o", "link").stdout
        assert "lk-h-r" in links and "mtu 1347" in links
        # the kernel really forwards client -> server through router and head-end
        ping = netns_run(f"lk-{name}-client", "ping", "-c", "1", "-W", "2", "198.18.3.2")
        assert ping.returncode == 0, ping.stdout
        second = labkit("lab", "up", "--lab", name)
        assert second.returncode == 2 and "already up" in second.stderr
    assert lab_namespaces(name) == []
    assert _host_links() == before
    assert not Path("/run/labkit", name).exists()
    assert not Path("/run/labkit", f"{name}.lock").exists()


@requires_lab
def test_status_json_contract() -> None:
    name = unique("st")
    with lab(name, "--tls-mtu", "1400", "--block-icmp"):
        proc = labkit("lab", "status", "--lab", name, "--format", "json")
        assert proc.returncode == 0, proc.stderr
        info = json.loads(proc.stdout)
        assert set(info["nodes"]) == {"client", "router", "headend", "server"}
        for node, entry in info["nodes"].items():
            assert entry["netns"] == f"lk-{name}-{node}"
            assert isinstance(entry["addresses"], list) and entry["addresses"]
            assert entry["tunnel_addresses"] == []  # kernel mode has no tun
        assert info["nodes"]["client"]["addresses"] == ["198.18.1.2/24"]
        assert info["nodes"]["headend"]["interfaces"]["lk-h-r"]["mtu"] == 1400
        assert info["topology"]["block_icmp"] is True
    gone = labkit("lab", "status", "--lab", name)
    assert gone.returncode == 2 and "not up" in gone.stderr


@requires_lab
def test_sigkill_of_creator_then_down_removes_everything() -> None:
    name = unique("kill")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "labkit", "lab", "up", "--lab", name],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while len(lab_namespaces(name)) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        assert lab_namespaces(name), "up made no namespace"
        proc.send_signal(signal.SIGKILL)  # mid-build (or just after): no cleanup ran
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        lab_down(name)
    assert lab_namespaces(name) == []
    assert " lk-" not in _host_links()
    assert not Path("/run/labkit", name).exists()


@requires_lab
def test_two_labs_at_once_do_not_collide() -> None:
    a, b = unique("pa"), unique("pb")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "labkit", "lab", "up", "--lab", n],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in (a, b)
    ]
    try:
        for p in procs:
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
        assert len(lab_namespaces(a)) == len(lab_namespaces(b)) == 4
        ping = netns_run(f"lk-{b}-server", "ping", "-c", "1", "-W", "2", "198.18.1.2")
        assert ping.returncode == 0
    finally:
        lab_down(a)
        lab_down(b)
    assert lab_namespaces(a) == lab_namespaces(b) == []


@requires_lab
@requires_tshark
def test_capture_sees_kernel_icmp_and_refuses_to_overwrite(tmp_path: Path) -> None:
    name = unique("cap")
    out = tmp_path / "inside.pcap"
    with lab(name):
        cap = capture_in_background(name, out, "3")
        time.sleep(1.2)
        # 1418-byte DF packet from the server: the head-end's 1347 side cannot carry it
        size = mtu.dtls_mtu() - 28  # ICMP payload of a 1418-byte IPv4 packet
        netns_run(
            f"lk-{name}-server",
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            "-M",
            "do",
            "-s",
            str(size),
            "198.18.1.2",
        )
        _, err = cap.communicate(timeout=15)
        assert cap.returncode == 0, err
        rows = tshark_fields(out, "icmp.type == 3 && icmp.code == 4", "ip.src", "icmp.mtu")
        assert rows == [["198.18.3.1,198.18.3.2", "1347"]]
        big = tshark_fields(out, "ip.len == 1418 && ip.flags.df == 1", "ip.src")
        assert big and big[0][0] == "198.18.3.2"
        again = labkit(
            "lab", "capture", "--lab", name, "--point", "inside", "-o", str(out), "--duration", "1"
        )
        assert again.returncode == 2 and "already exists" in again.stderr
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


@requires_lab
@requires_tshark
def test_capture_filter_is_an_expression_never_a_tcpdump_option(tmp_path: Path) -> None:
    """A filter of "-w FILE" once reached tcpdump's options and wrote over FILE: now it is
    checked with `tcpdump -d` (one line, exit 2, no file made or touched) and passed after
    "--"; a good filter still filters."""
    victim = tmp_path / "precious.txt"
    victim.write_text("the user's data\n", encoding="utf-8")
    out = tmp_path / "out.pcap"
    name = unique("flt")
    with lab(name):
        for bpf in (f"-w{victim}", f"-w {victim}", "-Z nobody", "tcp port", "no such proto"):
            proc = labkit(
                "lab", "capture", "--lab", name, "--point", "inside", "-o", str(out),
                "--duration", "1", f"--filter={bpf}",
            )  # fmt: skip
            assert proc.returncode == 2 and proc.stderr.count("\n") == 1, (bpf, proc.stderr)
            assert "tcpdump rejects it" in proc.stderr, proc.stderr
        assert victim.read_text(encoding="utf-8") == "the user's data\n"
        assert sorted(tmp_path.iterdir()) == [victim]
        cap = capture_in_background(name, out, "3", "--filter", "icmp[icmptype] == icmp-unreach")
        time.sleep(1.2)
        size = mtu.dtls_mtu() - 28  # a 1418-byte DF ping: the head-end answers ICMP 3/4
        ping = ("ping", "-c", "1", "-W", "1", "-M", "do", "-s", str(size), "198.18.1.2")
        netns_run(f"lk-{name}-server", *ping)
        _, err = cap.communicate(timeout=15)
        assert cap.returncode == 0, err
    # only the ICMP error passed the filter (it quotes the echo request: types 3 and 8 in
    # one frame); the 1418-byte echo request itself did not
    assert tshark_fields(out, "frame", "icmp.type", "icmp.mtu") == [["3,8", "1347"]]


@requires_ocserv
def test_sigkill_during_ocserv_up_then_down_ends_its_processes() -> None:
    name = unique("okill")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labkit",
            "lab",
            "up",
            "--lab",
            name,
            "--topology",
            str(CONFIGS / "ocserv-dtls-open.yaml"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = Path("/run/labkit", name, "state.json")
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if state.exists():
                try:
                    pids = [p["pid"] for p in json.loads(state.read_text())["processes"]]
                except ValueError:
                    pids = []
                if pids:
                    break
            time.sleep(0.02)
        assert pids, "ocserv was never recorded as started"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        lab_down(name)
    assert lab_namespaces(name) == []
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
        )
