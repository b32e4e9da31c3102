"""Network operations through the system's own tools: ``ip``, ``nft``, ``ethtool``, ``sysctl``.

Running the tools (rather than netlink from Python) keeps what labkit does readable: every
command is logged in the lab's state folder and can be replayed by hand. Each call is
bounded by a timeout; a failure becomes one :class:`LabError` line naming the command.

Everything here acts inside a named namespace (``ip -n NS``, ``ip netns exec NS``); the
only host-level changes are the namespaces themselves, which ``down`` deletes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

from labkit.errors import LabkitError
from labkit.lab.topology import CLIENT_TUN, TUNNEL_DEVICE, Link, Topology, netns_name

CMD_TIMEOUT = 20.0
NETNS_DIR = Path("/run/netns")


class LabError(LabkitError):
    """The lab could not be built, inspected or removed (permissions, missing tool, clash)."""


def tool(name: str) -> str:
    """Path of a system tool, or one line saying which Debian package provides it."""
    packages = {
        "ip": "iproute2",
        "nft": "nftables",
        "ethtool": "ethtool",
        "tcpdump": "tcpdump",
        "ocserv": "ocserv",
        "openconnect": "openconnect",
        "ocpasswd": "ocserv",
    }
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if p.exists()), None
    )
    if found is None:
        raise LabError(
            f"{name} is not installed", hint=f"apt-get install {packages.get(name, name)}"
        )
    return found


def run(
    args: Sequence[str],
    *,
    input_text: str | None = None,
    check: bool = True,
    timeout: float = CMD_TIMEOUT,
    log: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run one command; on failure raise LabError with the command and its stderr."""
    argv = [tool(args[0]), *args[1:]]
    if log is not None:
        with log.open("a", encoding="utf-8") as fh:
            fh.write(" ".join(args) + "\n")
    try:
        proc = subprocess.run(
            argv, input=input_text, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise LabError(f"'{' '.join(args)}' did not finish in {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise LabError(
            f"'{' '.join(args)}' failed: {msg[-1] if msg else f'exit {proc.returncode}'}"
        )
    return proc


def check_privileges() -> None:
    """Namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN): say so before doing anything."""
    if os.geteuid() != 0:
        raise LabError(
            "the lab needs root (network namespaces, veth, nftables)",
            hint="run as root, e.g. with sudo",
        )


def netns_exists(ns: str) -> bool:
    return (NETNS_DIR / ns).exists()


def list_netns(prefix: str) -> list[str]:
    """Namespaces whose name starts with ``prefix``: what a crashed ``up`` may have left."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))


def netns_pids(ns: str) -> list[int]:
    proc = run(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in proc.stdout.split() if x.isdigit()]


def add_netns(ns: str, log: Path | None = None) -> None:
    run(["ip", "netns", "add", ns], log=log)
    run(["ip", "-n", ns, "link", "set", "lo", "up"], log=log)


def del_netns(ns: str, log: Path | None = None) -> None:
    if netns_exists(ns):
        run(["ip", "netns", "del", ns], log=log)


def in_ns(ns: str, *args: str) -> list[str]:
    """``ip netns exec NS ARGS``: for tools without a namespace option of their own."""
    return ["ip", "netns", "exec", ns, *args]


def add_link(lab: str, link: Link, log: Path | None = None) -> None:
    """Create the veth pair with each end born in its namespace: it never touches the host."""
    a, b = netns_name(lab, link.a_node), netns_name(lab, link.b_node)
    run(
        [
            "ip",
            "-n",
            a,
            "link",
            "add",
            link.a_if,
            "type",
            "veth",
            "peer",
            "name",
            link.b_if,
            "netns",
            b,
        ],
        log=log,
    )
    for ns, ifname, addr in ((a, link.a_if, link.a_addr), (b, link.b_if, link.b_addr)):
        run(["ip", "-n", ns, "addr", "add", f"{addr}/{link.prefix_len}", "dev", ifname], log=log)
        offloads_off(ns, ifname, log=log)
        run(["ip", "-n", ns, "link", "set", ifname, "up"], log=log)


def offloads_off(ns: str, ifname: str, log: Path | None = None) -> None:
    """TSO/GSO/GRO and checksum offload off: captures then show the sizes and checksums
    on the wire, not a 64 KB super-segment with a partial checksum."""
    run(
        in_ns(
            ns,
            "ethtool",
            "-K",
            ifname,
            "tso",
            "off",
            "gso",
            "off",
            "gro",
            "off",
            "tx",
            "off",
            "rx",
            "off",
        ),
        log=log,
    )


def set_mtu(ns: str, ifname: str, value: int, log: Path | None = None) -> None:
    run(["ip", "-n", ns, "link", "set", ifname, "mtu", str(value)], log=log)


def sysctl(ns: str, key: str, value: str, log: Path | None = None) -> None:
    """A per-namespace sysctl (net.ipv4.* are per netns): never the host's."""
    run(in_ns(ns, "sysctl", "-qw", f"{key}={value}"), log=log)


def add_route(ns: str, dest: str, via: str, *extra: str, log: Path | None = None) -> None:
    run(["ip", "-n", ns, "route", "replace", dest, "via", via, *extra], log=log)


def flush_route_cache(ns: str, log: Path | None = None) -> None:
    """Forget learned path MTUs (a sender caches an ICMP 3/4's MTU for minutes)."""
    run(["ip", "-n", ns, "route", "flush", "cache"], log=log)


class Interface(TypedDict):
    """One interface as `ip -j addr` tells it; a dict because it goes into JSON as is."""

    addresses: list[str]  # "a.b.c.d/n", IPv4 only
    mtu: int | None


def addresses(ns: str) -> dict[str, Interface]:
    """{ifname: {"addresses": ["a.b.c.d/n", ...], "mtu": N}} for every interface but lo."""
    proc = run(["ip", "-j", "-n", ns, "addr", "show"])
    out: dict[str, Interface] = {}
    for entry in json.loads(proc.stdout or "[]"):
        name = entry.get("ifname", "")
        if name == "lo":
            continue
        addrs = [
            f"{a['local']}/{a['prefixlen']}"
            for a in entry.get("addr_info", [])
            if a.get("family") == "inet"
        ]
        out[name] = {"addresses": addrs, "mtu": entry.get("mtu")}
    return out


def is_tunnel_if(name: str) -> bool:
    return name == CLIENT_TUN or name.startswith(TUNNEL_DEVICE)


# --- nftables ---------------------------------------------------------------------------

NFT_TABLE = "labkit"


def nft_ruleset(topo: Topology, node: str) -> str | None:
    """The nftables ruleset one node gets, or None when it needs none.

    The router drops UDP to the DTLS port in both directions of forwarding, as a firewall in
    front of the head-end would. "ICMP blocked" drops ICMP destination-unreachable (and
    ICMPv6 packet-too-big) that the head-end sends or forwards: the seed's case, where the
    head-end's type 3 code 4 never reaches the inside server.
    """
    rules: dict[str, list[str]] = {"forward": [], "output": []}
    if node == "router" and topo.block_dtls:
        rules["forward"].append(f'udp dport {topo.dtls_port} counter drop comment "dtls blocked"')
    if node in ("router", "headend") and topo.block_icmp:
        for chain in ("forward", "output"):
            rules[chain].append(
                'icmp type destination-unreachable counter drop comment "icmp blocked"'
            )
            rules[chain].append('icmpv6 type packet-too-big counter drop comment "icmp blocked"')
    if node == "headend" and topo.clamp_mss is not None:
        # As the ASA's `sysopt connection tcpmss`: SYN and SYN-ACK options rewritten downward.
        rules["forward"].append(
            f"tcp flags syn tcp option maxseg size > {topo.clamp_mss} "
            f'tcp option maxseg size set {topo.clamp_mss} comment "mss clamp"'
        )
    if not any(rules.values()):
        return None
    lines = [f"table inet {NFT_TABLE} {{"]
    for chain, body in rules.items():
        if body:
            lines.append(f"  chain {chain} {{")
            lines.append(f"    type filter hook {chain} priority 0; policy accept;")
            lines += [f"    {r}" for r in body]
            lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def apply_nft(ns: str, ruleset: str, log: Path | None = None) -> None:
    run(in_ns(ns, "nft", "-f", "-"), input_text=ruleset, log=log)


def nft_counters(ns: str) -> dict[str, int]:
    """Packets each labkit rule dropped, keyed by its comment (empty if no table)."""
    proc = run(in_ns(ns, "nft", "-j", "list", "table", "inet", NFT_TABLE), check=False)
    if proc.returncode != 0:
        return {}
    counts: dict[str, int] = {}
    for item in json.loads(proc.stdout).get("nftables", []):
        rule = item.get("rule")
        if not rule:
            continue
        comment = rule.get("comment", "")
        for expr in rule.get("expr", []):
            if "counter" in expr:
                counts[comment] = counts.get(comment, 0) + expr["counter"]["packets"]
    return counts
