"""Bring a lab up, describe it, tear it down: the orchestration over netops, state and vpn.

``up`` records what it is about to make before making it and, if anything fails halfway,
removes what it made before reporting the one-line error. ``down`` trusts the state file
and, as a second net, also removes any ``lk-<lab>-<node>`` namespace left without one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from labkit.lab import netops, state, vpn
from labkit.lab.netops import LabError
from labkit.lab.state import LabState
from labkit.lab.topology import (
    CLIENT_TUN,
    KERNEL_ROUTES,
    LINKS,
    NODES,
    OUTSIDE,
    PREFIX,
    ROUTES,
    Topology,
    check_lab_name,
    netns_name,
)


def _needed_tools(topo: Topology) -> list[str]:
    tools = ["ip", "nft", "ethtool"]
    if topo.headend == "ocserv":
        tools += ["ocserv", "openconnect", "ocpasswd"]
    return tools


def up(
    lab: str,
    topo: Topology,
    *,
    settle: bool = True,
    before_client: Callable[[LabState], None] | None = None,
) -> LabState:
    """Build the lab; on failure remove what was made and raise one LabError.

    ``before_client`` runs (ocserv mode) once the head-end listens and before openconnect
    starts: the recorder starts its outside capture there to catch the whole handshake.
    """
    check_lab_name(lab)
    netops.check_privileges()
    for name in _needed_tools(topo):
        netops.tool(name)
    with state.locked(lab):
        leftovers = netops.list_netns(f"{PREFIX}-{lab}-")
        if state.load(lab) is not None or leftovers:
            raise LabError(
                f"lab {lab!r} is already up",
                hint=f"'labkit lab down --lab {lab}' first, or choose another --lab name",
            )
        st = LabState.planned(lab, topo)
        state.save(st)  # before anything exists: a SIGKILL from here on leaves a record
        try:
            st = _build(st, settle=settle, before_client=before_client)
        except BaseException:
            _teardown(lab, state.load(lab) or st)
            raise
        st = replace(st, complete=True)
        state.save(st)
        return st


def _build(
    st: LabState, *, settle: bool, before_client: Callable[[LabState], None] | None
) -> LabState:
    lab, topo = st.lab, st.topology
    log = state.lab_dir(lab) / "commands.log"
    for node in NODES:
        ns = netns_name(lab, node)
        netops.add_netns(ns, log=log)
        # The lab is IPv4 (the seed's case): with IPv6 on, every veth and tun sends router
        # solicitations and MLD reports that fill the captures (and the tunnel) with noise.
        # Before the links exist, so no interface ever gets an IPv6 address.
        for scope in ("all", "default"):
            netops.sysctl(ns, f"net.ipv6.conf.{scope}.disable_ipv6", "1", log=log)
    for link in LINKS:
        netops.add_link(lab, link, log=log)
    for node in ("router", "headend"):
        ns = netns_name(lab, node)
        netops.sysctl(ns, "net.ipv4.ip_forward", "1", log=log)
        # No ICMP rate limit: every oversized packet gets its type 3 code 4, so probes and
        # captures are deterministic (Linux's default allows about one a second per peer).
        netops.sysctl(ns, "net.ipv4.icmp_ratelimit", "0", log=log)
    for node, dest, via in ROUTES + (KERNEL_ROUTES if topo.headend == "kernel" else ()):
        netops.add_route(netns_name(lab, node), dest, via, log=log)
    if topo.headend == "kernel" and topo.tls_mtu is not None:
        # The head-end's client-facing side carries at most tls_mtu: the kernel drops bigger
        # DF packets and answers ICMP 3/4 with that MTU, as the ASA does at its TLS MTU.
        netops.set_mtu(netns_name(lab, OUTSIDE.a_node), OUTSIDE.a_if, topo.tls_mtu, log=log)
        netops.set_mtu(netns_name(lab, OUTSIDE.b_node), OUTSIDE.b_if, topo.tls_mtu, log=log)
    for node in NODES:
        rules = netops.nft_ruleset(topo, node)
        if rules:
            netops.apply_nft(netns_name(lab, node), rules, log=log)
    if topo.headend == "ocserv":
        st = _start_vpn(st, settle=settle, log=log, before_client=before_client)
    return st


def _start_vpn(
    st: LabState, *, settle: bool, log: Path, before_client: Callable[[LabState], None] | None
) -> LabState:
    folder = state.lab_dir(st.lab)
    st = st.with_process(vpn.start_ocserv(folder, st.netns("headend"), st.topology))
    state.save(st)
    if before_client is not None:
        before_client(st)
    # A SIGKILL before a pid is saved is still safe: down ends every process in our namespaces.
    st = st.with_process(vpn.start_openconnect(folder, st.netns("client")))
    state.save(st)
    info = vpn.connect_info((folder / "openconnect.log").read_text(errors="replace"))
    tunnel = tunnel_addresses(st.netns("client"))
    info["client_tun_mtu"] = _mtu(st.netns("client"), CLIENT_TUN)
    info["headend_tun_mtu"] = vpn.headend_tun_mtu(st.netns("headend"))
    if st.topology.tls_mtu is not None and settle and tunnel:
        info["headend_route_mtu"] = vpn.lower_headend_mtu(
            st.netns("headend"), tunnel[0].split("/")[0], st.topology.tls_mtu, log=log
        )
        info["headend_tun_mtu"] = vpn.headend_tun_mtu(st.netns("headend"))
    return replace(st, info=info)


def _mtu(ns: str, ifname: str) -> int | None:
    entry = netops.addresses(ns).get(ifname)
    return entry["mtu"] if entry else None


def tunnel_addresses(ns: str) -> list[str]:
    return [
        a
        for name, entry in netops.addresses(ns).items()
        if netops.is_tunnel_if(name)
        for a in entry["addresses"]
    ]


def down(lab: str) -> list[str]:
    """Remove the lab named ``lab``; returns the namespaces removed (empty: nothing was up)."""
    check_lab_name(lab)
    netops.check_privileges()
    with state.locked(lab):
        try:
            st = state.load(lab)
        except state.UnreadableState:
            # Its pids cannot be trusted, the namespace names can: _teardown ends whatever
            # runs in lk-<lab>-<node> and removes them, then the state folder.
            st = None
        if st is None:
            st = LabState(lab, Topology(), ())
        return _teardown(lab, st)


def _teardown(lab: str, st: LabState) -> list[str]:
    for proc in reversed(st.processes):
        vpn.stop(proc)
    known = {netns_name(lab, n) for n in NODES}
    namespaces = [
        ns
        for ns in dict.fromkeys([*st.namespaces, *netops.list_netns(f"{PREFIX}-{lab}-")])
        if ns in known
    ]
    removed = []
    for ns in namespaces:
        if not netops.netns_exists(ns):
            continue
        _kill_all(ns)  # anything still running in our own namespace is ours
        netops.del_netns(ns)
        removed.append(ns)
    state.forget(lab)
    return removed


def _kill_all(ns: str) -> None:
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 2.0)):
        pids = netops.netns_pids(ns)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(vpn.alive(p) for p in pids):
            time.sleep(0.1)


def _tunnel_mtus(st: LabState) -> dict[str, int | None]:
    """Both tun devices' MTUs as they are now (ocserv lowers its own after the CONNECT), empty
    in kernel mode: the client's is what it sends with, the head-end's what the tunnel carries.
    """
    if st.topology.headend != "ocserv":
        return {}
    up = {node: netops.netns_exists(st.netns(node)) for node in ("client", "headend")}
    return {
        "client": _mtu(st.netns("client"), CLIENT_TUN) if up["client"] else None,
        "headend": vpn.headend_tun_mtu(st.netns("headend")) if up["headend"] else None,
    }


def require(lab: str) -> LabState:
    """The state of a lab that is up, or one line saying how to bring it up."""
    check_lab_name(lab)
    st = state.load(lab)
    if st is None:
        raise LabError(f"lab {lab!r} is not up", hint=f"start it with 'labkit lab up --lab {lab}'")
    return st


def status(lab: str) -> dict[str, object]:
    """The lab as it is now: per node its namespace, addresses, tunnel addresses, interfaces."""
    st = require(lab)
    nodes: dict[str, object] = {}
    for node in NODES:
        ns = st.netns(node)
        if not netops.netns_exists(ns):
            nodes[node] = {"netns": ns, "missing": True, "addresses": [], "tunnel_addresses": []}
            continue
        ifaces = netops.addresses(ns)
        nodes[node] = {
            "netns": ns,
            "addresses": [
                a for n, e in ifaces.items() if not netops.is_tunnel_if(n) for a in e["addresses"]
            ],
            "tunnel_addresses": [
                a for n, e in ifaces.items() if netops.is_tunnel_if(n) for a in e["addresses"]
            ],
            "interfaces": ifaces,
            "dropped": netops.nft_counters(ns),
        }
    return {
        "lab": lab,
        "complete": st.complete,
        "topology": st.topology.to_json(),
        "nodes": nodes,
        "processes": [
            {"role": p.role, "pid": p.pid, "netns": p.netns, "running": vpn.is_ours(p)}
            for p in st.processes
        ],
        "headend_info": st.info,
        "tunnel_mtus": _tunnel_mtus(st),
        "state_dir": str(state.lab_dir(lab)),
    }
