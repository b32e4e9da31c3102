"""``labkit lab up|status|down|capture|record``: the network-namespace lab."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from labkit.commands import add_format_option
from labkit.errors import EXIT_OK, UsageError
from labkit.lab.topology import DEFAULT_LAB, HEADEND_MODES


def _lab_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lab",
        default=DEFAULT_LAB,
        metavar="NAME",
        help="lab name: namespaces are lk-NAME-<node> (default: %(default)s)",
    )


def _bytes_or_none(text: str) -> int | None:
    """``--tls-mtu``/``--clamp-mss`` value: a size in bytes, or 'none' to switch it off."""
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a size in bytes or 'none', got {text!r}"
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    up = sub.add_parser("up", help="create the namespaces, links, filters and head-end")
    _lab_option(up)
    up.add_argument(
        "--topology",
        metavar="FILE",
        help="topology YAML (default: the seed's case, as configs/lab/default.yaml)",
    )
    up.add_argument("--headend", choices=HEADEND_MODES, help="head-end mode (overrides the file)")
    up.add_argument(
        "--tls-mtu",
        type=_bytes_or_none,
        default=argparse.SUPPRESS,
        metavar="N|none",
        help="MTU on the head-end's client-facing side ('none': no drop)",
    )
    up.add_argument(
        "--block-dtls",
        dest="block_dtls",
        action="store_true",
        default=None,
        help="drop UDP to the DTLS port at the router",
    )
    up.add_argument(
        "--allow-dtls",
        dest="block_dtls",
        action="store_false",
        help="let UDP to the DTLS port through (the opposite of --block-dtls)",
    )
    up.add_argument(
        "--block-icmp",
        dest="block_icmp",
        action="store_true",
        default=None,
        help="drop ICMP unreachables (3/4, PTB) sent by the head-end",
    )
    up.add_argument(
        "--allow-icmp",
        dest="block_icmp",
        action="store_false",
        help="let the head-end's ICMP unreachables through (the opposite of --block-icmp)",
    )
    up.add_argument("--dtls-port", type=int, metavar="PORT", help="DTLS port (default 443)")
    up.add_argument(
        "--clamp-mss",
        type=_bytes_or_none,
        default=argparse.SUPPRESS,
        metavar="N|none",
        help="head-end rewrites TCP SYN MSS options above N (as ASA tcpmss)",
    )
    up.add_argument(
        "--no-settle",
        action="store_true",
        help="ocserv mode: do not wait (up to ~90 s) for ocserv to lower its tunnel "
        "MTU to the TLS MTU",
    )
    add_format_option(up, "the lab's nodes and knobs")

    st = sub.add_parser("status", help="show the lab's nodes, addresses and knobs")
    _lab_option(st)
    add_format_option(st, "the lab's nodes and knobs")

    down = sub.add_parser("down", help="remove everything 'up' made (also after a crash)")
    _lab_option(down)

    cap = sub.add_parser("capture", help="capture at a vantage point with tcpdump")
    _lab_option(cap)
    cap.add_argument(
        "--point",
        required=True,
        choices=("outside", "tunnel", "inside"),
        help="where: the client's NIC, its tunnel adapter, or the head-end's inside",
    )
    cap.add_argument("-o", "--output", required=True, metavar="FILE", help="pcap file to write")
    cap.add_argument(
        "--duration",
        type=float,
        required=True,
        metavar="S",
        help="seconds to capture (at most 600)",
    )
    cap.add_argument(
        "--count",
        type=int,
        default=100_000,
        metavar="N",
        help="stop after N packets (default %(default)s)",
    )
    cap.add_argument("--filter", metavar="BPF", help="tcpdump filter expression")
    cap.add_argument("--force", action="store_true", help="overwrite FILE if it exists")

    rec = sub.add_parser("record", help="record a real ocserv/openconnect case under DIR/<case>/")
    rec.add_argument("case", help="case name (see --list)", nargs="?")
    rec.add_argument("--list", action="store_true", help="list the cases")
    rec.add_argument(
        "-o",
        "--output-dir",
        default="pcaps/real",
        metavar="DIR",
        help="folder that receives DIR/<case>/ (default %(default)s)",
    )
    rec.add_argument("--lab", default="rec", metavar="NAME", help="lab name used while recording")
    rec.add_argument("--force", action="store_true", help="replace an existing case folder")


def run(args: argparse.Namespace) -> int:
    from labkit.lab import manager

    if args.action == "up":
        return _up(args)
    if args.action == "status":
        info = manager.status(args.lab)
        print(json.dumps(info, indent=2) if args.format == "json" else _status_text(info))
        return EXIT_OK
    if args.action == "down":
        removed = manager.down(args.lab)
        print(
            f"lab {args.lab}: removed {', '.join(removed)}"
            if removed
            else f"lab {args.lab}: nothing to remove"
        )
        return EXIT_OK
    if args.action == "capture":
        from labkit.lab import capture

        st = manager.require(args.lab)
        path, n = capture.capture(
            st,
            args.point,
            args.output,
            duration=args.duration,
            force=args.force,
            count=args.count,
            bpf=args.filter,
        )
        print(f"{path}: {n} packets at {args.point}")
        return EXIT_OK
    if args.action == "record":
        from labkit.lab import record

        if args.list or not args.case:
            for name, case in record.CASES.items():
                print(f"{name:28} {case.summary}")
            return EXIT_OK
        folder = record.record(args.case, Path(args.output_dir), lab=args.lab, force=args.force)
        print(f"{folder}: recorded (see its README.md)")
        return EXIT_OK
    raise UsageError(f"unknown action {args.action!r}")


def _up(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from labkit.lab import manager
    from labkit.lab.topology import Topology, load_topology

    # Topology()'s defaults are the seed's case (configs/lab/default.yaml says the same; a
    # test holds them equal), so an installed labkit needs no file to start.
    topo = load_topology(args.topology) if args.topology else Topology()
    changes: dict[str, Any] = {  # argparse values, checked by Topology itself
        k: v
        for k, v in (
            ("headend", args.headend),
            ("block_dtls", args.block_dtls),
            ("block_icmp", args.block_icmp),
            ("dtls_port", args.dtls_port),
        )
        if v is not None
    }
    for key in ("tls_mtu", "clamp_mss"):
        if hasattr(args, key):
            changes[key] = getattr(args, key)
    topo = replace(topo, **changes)
    st = manager.up(args.lab, topo, settle=not args.no_settle)
    info = manager.status(st.lab)
    print(json.dumps(info, indent=2) if args.format == "json" else _status_text(info))
    return EXIT_OK


def _status_text(info: dict) -> str:
    t = info["topology"]
    lines = [
        f"lab {info['lab']}: head-end {t['headend']}, TLS MTU {t['tls_mtu'] or 'none'}, "
        f"DTLS port {t['dtls_port']} {'blocked' if t['block_dtls'] else 'open'}, "
        f"ICMP unreachables {'blocked' if t['block_icmp'] else 'allowed'}"
        + (f", MSS clamped to {t['clamp_mss']}" if t.get("clamp_mss") else "")
    ]
    for node, n in info["nodes"].items():
        ifaces = ", ".join(
            f"{name} mtu {e['mtu']} {' '.join(e['addresses'])}".rstrip()
            for name, e in n.get("interfaces", {}).items()
        )
        lines.append(f"  {node:8} {n['netns']:22} {ifaces}")
    h = info.get("headend_info", {})
    if "x_cstp_mtu" in h or "x_dtls_mtu" in h:
        lines.append(
            f"  announced: X-CSTP-MTU {h.get('x_cstp_mtu')}, X-DTLS-MTU {h.get('x_dtls_mtu')}, "
            f"X-CSTP-Base-MTU {h.get('x_cstp_base_mtu')}, DTLS cipher "
            f"{h.get('x_dtls12_ciphersuite') or h.get('x_dtls_ciphersuite')}"
        )
    tun = info.get("tunnel_mtus", {})
    if tun:
        lines.append(
            f"  tunnel devices now: client {tun.get('client')}, head-end {tun.get('headend')}"
        )
    for key, value in h.items():
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)
