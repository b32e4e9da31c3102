"""The benchmark's facts as the reference tools see them: tshark's display filter and the
arithmetic that turns its ``-T fields`` rows into the shape of the generator's truth, and
tcpdump's BPF expression for the same interesting packets.

The facts: SYNs by MSS, ICMP 3/4 by next-hop MTU, DF packets over the tunnel MTU, DTLS
ClientHellos and the flows answered, TLS ClientHellos, retransmissions.
"""

from __future__ import annotations

from collections import Counter

#: tshark fields, first occurrence only (``-E occurrence=f``): an ICMP error's outer header
#: comes before the header it quotes.
FIELDS = (
    "ip.src",
    "ip.dst",
    "ip.len",
    "ip.flags.df",
    "icmp.type",
    "icmp.code",
    "icmp.mtu",
    "tcp.flags.syn",
    "tcp.flags.ack",
    "tcp.options.mss_val",
    "tls.handshake.type",
    "udp.srcport",
    "udp.dstport",
    "dtls.handshake.type",
    "dtls.record.version",
    "tcp.analysis.retransmission",
    "tcp.analysis.fast_retransmission",
    "tcp.analysis.spurious_retransmission",
    "tcp.analysis.out_of_order",
)

#: UDP 443 is DTLS (tshark has no heuristic for it; AnyConnect's 0x0100 needs it too).
DECODE_AS = ("-d", "udp.port==443,dtls")


def display_filter(tunnel_mtu: int) -> str:
    """tshark's filter for the interesting packets.

    ``&& !icmp`` on the size clause: otherwise tshark also matches the DF flag and total
    length of the original IP header quoted inside an ICMP error.
    """
    return (
        "tcp.flags.syn == 1 || (icmp.type == 3 && icmp.code == 4)"
        f" || (ip.flags.df == 1 && ip.len > {tunnel_mtu} && !icmp)"
        " || dtls.handshake.type in {1, 2, 3} || tls.handshake.type == 1"
        " || tcp.analysis.retransmission || tcp.analysis.out_of_order"
    )


def tshark_args(path: str, tunnel_mtu: int) -> list[str]:
    """The whole tshark command the benchmark times."""
    args = [
        "tshark",
        "-n",
        "-r",
        path,
        *DECODE_AS,
        "-Y",
        display_filter(tunnel_mtu),
        "-T",
        "fields",
        "-E",
        "separator=\t",
        "-E",
        "occurrence=f",
    ]
    for name in FIELDS:
        args += ["-e", name]
    return args


def bpf(tunnel_mtu: int) -> str:
    """A BPF expression for the same interesting packets, untagged or in one 802.1Q tag.

    It cannot follow flows (retransmissions, answered DTLS), so it selects slightly
    different packets; it is the floor for a scan that touches every packet header.
    """
    tcp_payload = "tcp[((tcp[12] & 0xf0) >> 2)"
    expr = (
        "(tcp[tcpflags] & tcp-syn != 0)"
        " or (icmp[icmptype] = 3 and icmp[icmpcode] = 4)"
        f" or (ip[6] & 0x40 != 0 and ip[2:2] > {tunnel_mtu} and not icmp)"
        " or (udp port 443 and udp[8] = 22)"
        f" or (tcp port 443 and {tcp_payload}] = 22 and {tcp_payload} + 5] = 1)"
    )
    return f"({expr}) or (vlan and ({expr}))"


def facts_from_tshark(
    stdout: str, tunnel_mtu: int, headend: str | None = None
) -> dict[str, object]:
    """Rows of :func:`tshark_args` output -> the facts, keyed like the generator's truth.

    With ``headend``, also ``df_over_tunnel_mtu_not_headend``: the DF count without the
    packets to or from that address (the outer tunnel's own segments).
    """
    syn, synack, icmp, df_sizes, dtls_ch = Counter(), Counter(), Counter(), Counter(), Counter()
    df_not_headend = 0
    dtls_flows: set[tuple[str, ...]] = set()
    answered: set[tuple[str, ...]] = set()
    tls_ch = rtx = rtx_any = 0
    for line in stdout.splitlines():
        if not line:
            continue
        (
            src,
            dst,
            ip_len,
            df,
            icmp_type,
            icmp_code,
            icmp_mtu,
            flag_syn,
            flag_ack,
            mss,
            tls_hs,
            sport,
            dport,
            dtls_hs,
            dtls_ver,
            is_rtx,
            is_fast,
            is_spurious,
            is_ooo,
        ) = line.split("\t")
        if flag_syn == "1":
            (synack if flag_ack == "1" else syn)[int(mss) if mss else None] += 1
        if icmp_type == "3" and icmp_code == "4":
            icmp[int(icmp_mtu)] += 1
        if df == "1" and not icmp_type and ip_len and int(ip_len) > tunnel_mtu:
            df_sizes[int(ip_len)] += 1
            df_not_headend += headend not in (src, dst)
        if dtls_hs == "1":
            dtls_ch[f"0x{int(dtls_ver, 16):04x}"] += 1
            dtls_flows.add((src, sport, dst, dport))
        elif dtls_hs in ("2", "3"):
            answered.add((dst, dport, src, sport))
        if tls_hs == "1":
            tls_ch += 1
        rtx += is_rtx == "1"
        rtx_any += "1" in (is_rtx, is_fast, is_spurious, is_ooo)
    return {
        "syn_mss": _keyed(syn),
        "synack_mss": _keyed(synack),
        "icmp_frag_needed_mtu": _keyed(icmp),
        "df_over_tunnel_mtu": sum(df_sizes.values()),
        "df_over_tunnel_mtu_by_size": _keyed(df_sizes),
        **({"df_over_tunnel_mtu_not_headend": df_not_headend} if headend else {}),
        "dtls_client_hellos": sum(dtls_ch.values()),
        "dtls_client_hellos_by_version": dict(sorted(dtls_ch.items())),
        "dtls_flows": len(dtls_flows),
        "dtls_flows_answered": len(dtls_flows & answered),
        "dtls_flows_unanswered": len(dtls_flows - answered),
        "tls_client_hellos": tls_ch,
        "retransmissions": rtx_any,  # tshark: retransmission, fast, spurious or out-of-order
        "retransmissions_tshark_strict": rtx,  # tcp.analysis.retransmission alone
    }


def _keyed(counter: Counter) -> dict[str, int]:
    return {
        str(k): v for k, v in sorted(counter.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))
    }


#: The facts compared between sources, in the order the runner prints them.
COMPARED = (
    "syn_mss",
    "synack_mss",
    "icmp_frag_needed_mtu",
    "df_over_tunnel_mtu",
    "dtls_client_hellos",
    "dtls_client_hellos_by_version",
    "dtls_flows",
    "dtls_flows_answered",
    "tls_client_hellos",
    "retransmissions",
)


def disagreements(
    expected: dict[str, object], got: dict[str, object], keys: tuple[str, ...] = COMPARED
) -> list[str]:
    """One line per fact where ``got`` differs from ``expected`` (a fact either lacks is skipped)."""
    return [
        f"{k}: expected {expected[k]!r}, got {got[k]!r}"
        for k in keys
        if k in got and k in expected and got[k] != expected[k]
    ]
