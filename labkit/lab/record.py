"""``labkit lab record CASE``: real captures of real VPN software, reproducible by one command.

Each case brings up an ocserv/openconnect lab, captures at the three vantage points from
before the client connects, makes the head-end's tunnel MTU drop to the TLS MTU where the
case says so (ocserv lowers it at its 30 s check), runs one bounded TCP download from the
server to the client through the tunnel, and writes into ``DIR/<case>/``:

    outside.pcap  tunnel.pcap  inside.pcap   the captures (tcpdump, offloads off)
    sslkeylog.txt                            openconnect's NSS key log (decrypts outside.pcap)
    openconnect.log  ocserv.log              what the software said
    case.json  README.md                     what was measured, and how it was made

A recording takes 10-80 s: the DTLS-blocked cases wait for openconnect's DTLS timeout
(about 12 s) and for ocserv's periodic MTU check.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit import mtu
from labkit.errors import OutputError
from labkit.fileio import atomic_output
from labkit.lab import capture, manager, netops, state, traffic, vpn
from labkit.lab.netops import LabError
from labkit.lab.state import LabState
from labkit.lab.topology import CLIENT_TUN, SERVER_ADDR, Topology

DOWNLOAD_PORT = 8080
DOWNLOAD_SIZE = 24_000  # ~18 segments: enough to see sizes and retransmissions, files stay small
DOWNLOAD_TIMEOUT = 8.0
SNAPLEN = 2048
NONDEFAULT_DTLS_PORT = 8443  # a head-end whose DTLS is moved off 443 (firewalls allow 443 only)


@dataclass(frozen=True, slots=True)
class Case:
    summary: str
    topology: Topology


CASES: dict[str, Case] = {
    "dtls-allowed": Case(
        "DTLS 1.2 established; both tunnel devices at the announced 1418; the download flows "
        "over DTLS",
        Topology(headend="ocserv", tls_mtu=None, block_dtls=False, block_icmp=False),
    ),
    "dtls-blocked-icmp-allowed": Case(
        "DTLS dropped at the router; client tun at the announced 1418, head-end tun at the TLS "
        "MTU 1347; ICMP 3/4 tells the server, the download recovers",
        Topology(headend="ocserv", tls_mtu=mtu.tls_mtu_asa(), block_dtls=True, block_icmp=False),
    ),
    "dtls-blocked-icmp-blocked": Case(
        "as dtls-blocked-icmp-allowed, but the head-end's ICMP 3/4 is dropped: a PMTUD black "
        "hole, the download stalls",
        Topology(headend="ocserv", tls_mtu=mtu.tls_mtu_asa(), block_dtls=True, block_icmp=True),
    ),
    "dtls-nondefault-port-blocked": Case(
        "DTLS on UDP 8443 (X-DTLS-Port 8443), dropped at the router; otherwise as "
        "dtls-blocked-icmp-allowed",
        Topology(
            headend="ocserv",
            tls_mtu=mtu.tls_mtu_asa(),
            block_dtls=True,
            block_icmp=False,
            dtls_port=NONDEFAULT_DTLS_PORT,
        ),
    ),
}
FILES = (
    "outside.pcap",
    "tunnel.pcap",
    "inside.pcap",
    "sslkeylog.txt",
    "openconnect.log",
    "ocserv.log",
    "case.json",
    "README.md",
)


def record(name: str, out_dir: Path, *, lab: str = "rec", force: bool = False) -> Path:
    """Record case ``name`` into ``out_dir/name``; the lab is removed afterwards."""
    case = CASES.get(name)
    if case is None:
        raise LabError(f"unknown case {name!r}; known: {', '.join(CASES)}")
    folder = out_dir / name
    if folder.exists() and any(folder.iterdir()) and not force:
        raise OutputError(f"{folder}: already exists", hint="use --force to record it again")
    folder.mkdir(parents=True, exist_ok=True)
    work = state.lab_dir(lab)
    caps: dict[str, capture.Capture] = {}
    started = time.monotonic()

    def start_outside(st: LabState) -> None:
        ns, iface = capture.point_interface(st, "outside")
        caps["outside"] = capture.start(ns, iface, work / "outside.pcap", snaplen=SNAPLEN)
        caps["inside"] = capture.start(
            *capture.point_interface(st, "inside"), work / "inside.pcap", snaplen=SNAPLEN
        )

    try:
        st = manager.up(lab, case.topology, settle=False, before_client=start_outside)
        ns, iface = capture.point_interface(st, "tunnel")
        caps["tunnel"] = capture.start(ns, iface, work / "tunnel.pcap", snaplen=SNAPLEN)
        info = dict(st.info)
        info["client_connected_after_s"] = round(time.monotonic() - started, 1)
        tunnel_addr = manager.tunnel_addresses(st.netns("client"))[0].split("/")[0]
        if case.topology.tls_mtu is not None:
            info["headend_route_mtu"] = vpn.lower_headend_mtu(
                st.netns("headend"), tunnel_addr, case.topology.tls_mtu, log=work / "commands.log"
            )
            info["headend_mtu_lowered_after_s"] = round(time.monotonic() - started, 1)
        info["headend_tun_mtu"] = vpn.headend_tun_mtu(st.netns("headend"))
        info["client_tun_mtu"] = netops.addresses(st.netns("client"))[CLIENT_TUN]["mtu"]
        netops.flush_route_cache(st.netns("server"))  # no PMTU learned before the download
        result = traffic.download(
            st.netns("server"),
            st.netns("client"),
            SERVER_ADDR,
            DOWNLOAD_PORT,
            DOWNLOAD_SIZE,
            DOWNLOAD_TIMEOUT,
        )
        time.sleep(0.5)  # let the last ACKs and ICMPs reach the captures
        counts = {point: cap.stop() for point, cap in caps.items()}
        caps.clear()
        info.update(_status_facts(st))
        for point in ("outside", "tunnel", "inside"):
            _install(work / f"{point}.pcap", folder / f"{point}.pcap")
        for log in ("sslkeylog.txt", "openconnect.log", "ocserv.log"):
            _install(work / log, folder / log, copy=True)
    finally:
        for cap in caps.values():
            with contextlib.suppress(LabError):  # its namespace may already be gone
                cap.stop()
        manager.down(lab)
    measured = measure(folder, case.topology)
    facts = {
        "case": name,
        "summary": case.summary,
        "topology": case.topology.to_json(),
        "recorded": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - started, 1),
        "software": _versions(),
        "headend": info,
        "packets": counts,
        "download": {
            "bytes_requested": result.requested,
            "bytes_received": result.received,
            "seconds": result.seconds,
            "completed": result.completed,
        },
        "measured": measured,
    }
    for fname, text in (
        ("case.json", json.dumps(facts, indent=2) + "\n"),
        ("README.md", readme(facts)),
    ):
        with atomic_output(folder / fname, force=True) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return folder


def _drops(dropped: dict[str, dict[str, int]]) -> str:
    parts = [
        f"{node}: {rule} {n}" for node, rules in dropped.items() for rule, n in rules.items() if n
    ]
    return "; ".join(parts) or "none"


def _install(src: Path, dst: Path, *, copy: bool = False) -> None:
    tmp = dst.with_name(dst.name + ".part")
    shutil.copyfile(src, tmp) if copy else shutil.move(src, tmp)
    tmp.replace(dst)


def _status_facts(st: LabState) -> dict[str, object]:
    counters = {node: netops.nft_counters(st.netns(node)) for node in ("router", "headend")}
    log = (state.lab_dir(st.lab) / "openconnect.log").read_text(errors="replace")
    return {
        "dropped": {k: v for k, v in counters.items() if v},
        "openconnect_dtls_established": "Established DTLS connection" in log,
        "openconnect_dtls_failures": log.count("DTLS handshake failed"),
    }


def _versions() -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"
        return ((proc.stdout or proc.stderr).strip().splitlines() or ["unknown"])[0]

    return {
        "ocserv": first_line([netops.tool("ocserv"), "--version"]),
        "openconnect": first_line([netops.tool("openconnect"), "--version"]),
        "kernel": platform.release(),
    }


def measure(folder: Path, topo: Topology) -> dict[str, object]:
    """What the captures show: read back with labkit's reader and dissected with Scapy (small
    files, read once)."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP

    outside = _dissected(folder / "outside.pcap")
    tunnel = _dissected(folder / "tunnel.pcap")
    inside = _dissected(folder / "inside.pcap")
    port = topo.dtls_port

    def dtls(p, *, hello: bool) -> bool:
        if UDP not in p:
            return False
        raw = bytes(p[UDP].payload)
        to_headend = p[UDP].dport == port
        if hello:
            return to_headend and len(raw) > 13 and raw[0] == 22 and raw[13] == 1
        return p[UDP].sport == port and len(raw) >= 13 and raw[0] in (20, 21, 22, 23)

    syn_mss = [
        opt[1]
        for p in tunnel
        if TCP in p and p[TCP].flags == "S"
        for opt in p[TCP].options
        if opt[0] == "MSS"
    ]
    icmp = [p for p in inside if ICMP in p and p[ICMP].type == 3 and p[ICMP].code == 4]
    server_tcp = [
        p for p in inside if IP in p and TCP in p and ICMP not in p and p[IP].src == SERVER_ADDR
    ]
    largest = max((p[IP].len for p in server_tcp), default=None)
    return {
        "dtls_client_hellos": sum(dtls(p, hello=True) for p in outside),
        "dtls_records_from_headend": sum(dtls(p, hello=False) for p in outside),
        "tunnel_syn_mss": syn_mss[0] if syn_mss else None,
        "server_largest_ip_packet": largest,
        "server_largest_ip_packet_df": bool(
            largest and any(p[IP].len == largest and p[IP].flags.DF for p in server_tcp)
        ),
        "server_oversized_segments": sum(1 for p in server_tcp if largest and p[IP].len == largest),
        "icmp_frag_needed": len(icmp),
        "icmp_frag_needed_mtu": sorted({int(p[ICMP].nexthopmtu) for p in icmp}),
        "file_bytes": {
            f: (folder / f).stat().st_size for f in ("outside.pcap", "tunnel.pcap", "inside.pcap")
        },
    }


def _dissected(path: Path) -> list:
    """Every packet of a capture, dissected by Scapy as its own reader would (by link type)."""
    from scapy.config import conf
    from scapy.packet import Raw

    from labkit.pcapio.reader import open_capture

    classes: Any = conf.l2types  # link type -> Packet class, typed loosely by Scapy
    with open_capture(path) as cap:
        return [classes.get(r.linktype, Raw)(r.data) for r in cap.records()]


def readme(f: dict) -> str:
    """The case's README: how it was made and what the software and the captures showed."""
    h, m, d, topo = f["headend"], f["measured"], f["download"], f["topology"]
    tls = topo["tls_mtu"]
    lines = [
        f"# Real capture: {f['case']}",
        "",
        f"{f['summary']}.",
        "",
        "## How it was made",
        "",
        f"`labkit lab record {f['case']}` (as root) on {f['recorded']}, in {f['duration_s']} s:",
        "",
        "- namespaces client - router - headend - server joined by veth pairs, offloads off",
        f"  (ethtool), kernel {f['software']['kernel']};",
        f"- head-end: {f['software']['ocserv']} (`dtls-legacy`, `cisco-client-compat`, "
        f"`dtls-psk = false`, `try-mtu-discovery = false`, `mtu = {vpn.BASE_MTU}`: "
        f"`labkit.mtu.dtls_base_mtu({mtu.dtls_mtu()}, '{vpn.DTLS_CIPHER}', "
        f"'{vpn.DTLS_VERSION}')`, TLS pinned to TLS 1.2 AES128-SHA);",
        f"- client: {f['software']['openconnect']} with its default DTLS ciphers, "
        "`SSLKEYLOGFILE`, and labkit's own `--script` (tun address, MTU, routes only);",
        f"- router: UDP to port {topo['dtls_port']} "
        f"{'dropped (nftables)' if topo['block_dtls'] else 'allowed'}; head-end ICMP "
        f"unreachables {'dropped (nftables)' if topo['block_icmp'] else 'allowed'};",
    ]
    if tls is not None:
        lines += [
            f"- TLS MTU {tls} (`labkit.mtu.tls_mtu_asa(1380, 'AES128-SHA')`): after the "
            f"CONNECT a route MTU of {h.get('headend_route_mtu')} on the head-end toward the "
            "client network lowers the CSTP socket's path MTU; ocserv reads it at its 30 s "
            "check and lowers its own tun MTU (path MTU less the DTLS overhead), the client's "
            "stays as announced;",
        ]
    lines += [
        f"- a {d['bytes_requested']}-byte TCP download from the server (198.18.3.2:8080) to the "
        f"client's tunnel address, {DOWNLOAD_TIMEOUT:.0f} s at most;",
        "- captures: `outside.pcap` at the router's client side (TLS, DTLS, before the "
        "router's filter), `tunnel.pcap` on the client's tun (raw IP), `inside.pcap` at the "
        "head-end's server side.",
        "",
        "Decrypt the TLS (CSTP) stream with the key log: "
        "`tshark -r outside.pcap -o tls.keylog_file:sslkeylog.txt -Y http`.",
        "",
        "## What the software showed",
        "",
        "| what | value |",
        "| --- | --- |",
        f"| X-CSTP-MTU | {h.get('x_cstp_mtu')} |",
        f"| X-DTLS-MTU | {h.get('x_dtls_mtu')} |",
        f"| X-CSTP-Base-MTU | {h.get('x_cstp_base_mtu')} |",
        f"| X-DTLS-Port | {h.get('x_dtls_port')} |",
        f"| X-DTLS12-CipherSuite | {h.get('x_dtls12_ciphersuite')} |",
        f"| DTLS established (openconnect) | {h.get('openconnect_dtls_established')} |",
        f"| client tun MTU (openconnect) | {h.get('client_tun_mtu')} |",
        f"| head-end tun MTU (ocserv) | {h.get('headend_tun_mtu')} |",
        f"| SYN MSS inside the tunnel | {m['tunnel_syn_mss']} |",
        f"| largest server packet (DF) | {m['server_largest_ip_packet']} "
        f"({'DF' if m['server_largest_ip_packet_df'] else 'no DF'}) |",
        f"| ICMP 3/4 sent by the head-end | {m['icmp_frag_needed']} "
        f"(MTU {', '.join(map(str, m['icmp_frag_needed_mtu'])) or '-'}) |",
        f"| DTLS ClientHellos / DTLS records back | {m['dtls_client_hellos']} / "
        f"{m['dtls_records_from_headend']} |",
        f"| packets dropped by nftables | {_drops(h.get('dropped') or {})} |",
        f"| download | {d['bytes_received']} of {d['bytes_requested']} bytes in "
        f"{d['seconds']} s ({'completed' if d['completed'] else 'stalled'}) |",
        "",
        "## How this differs from the seed (ASA + AnyConnect)",
        "",
        "- ocserv announces one MTU in both X-CSTP-MTU and X-DTLS-MTU: its `mtu` (the base, "
        f"X-CSTP-Base-MTU {vpn.BASE_MTU}) less the overhead of the DTLS cipher it negotiated "
        f"({vpn.DTLS_CIPHER}, DTLS {vpn.DTLS_VERSION}: 20 IP + 8 UDP + 13 DTLS + 8 nonce + "
        f"16 tag + 1 = 66), so {mtu.dtls_mtu()}; the ASA announces {mtu.dtls_mtu()} for "
        f"DTLS and {mtu.tls_mtu_asa()} for TLS. openconnect "
        "brings its tun up at the larger of the two and keeps it when DTLS fails, so the "
        "client's SYN MSS is "
        f"{mtu.mss_for_mtu(mtu.dtls_mtu())}, as in the seed. The DTLS ClientHellos are DTLS "
        "1.2 (0xfefd), where AnyConnect's legacy DTLS is 0x0100.",
        "- The head-end's TLS MTU is not the ASA's `tcpmss - 33` arithmetic: ocserv lowers its "
        "tun MTU to the CSTP socket's path MTU less the DTLS overhead at its periodic check, "
        "and the lab lowers that path MTU with a route MTU. The head-end's kernel then drops "
        "the server's larger DF packets and sends ICMP 3/4 with the tun MTU, as the ASA does "
        "(722036/602101).",
        *(
            [
                "- openconnect sends its DTLS ClientHellos "
                f"({m['dtls_client_hellos']} in `outside.pcap`), configures the tunnel over TLS "
                "meanwhile and stays on it. It does not reconnect to apply a new MTU, unlike "
                'AnyConnect\'s "Reconfigure reason code 16".'
            ]
            if topo["block_dtls"]
            else []
        ),
        "",
        "`case.json` holds the same facts for tests. File sizes: "
        + ", ".join(f"{k} {v} bytes" for k, v in m["file_bytes"].items())
        + ".",
        "",
    ]
    return "\n".join(lines)
