"""``labkit probe pmtu|mss|dtls``: active probes, optionally from inside a lab node.

Exit 0: the probe ran and found no problem; 1: it found one (a PMTUD black hole, no DTLS
answer, no SYN-ACK); 2: it could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import json

from labkit import mtu
from labkit.commands import add_format_option
from labkit.errors import EXIT_OK, EXIT_PROBLEM, UsageError
from labkit.lab.topology import DEFAULT_LAB, NODES


def _common(p: argparse.ArgumentParser, timeout: float, tries: int) -> None:
    p.add_argument(
        "--from",
        dest="from_node",
        choices=NODES,
        metavar="NODE",
        help=f"run inside this lab node ({', '.join(NODES)})",
    )
    p.add_argument(
        "--lab", default=DEFAULT_LAB, metavar="NAME", help="lab of --from (default: %(default)s)"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=timeout,
        metavar="S",
        help="seconds to wait for each answer (default %(default)s)",
    )
    p.add_argument(
        "--tries",
        type=int,
        default=tries,
        metavar="N",
        help="sends per step before giving up (default %(default)s)",
    )
    add_format_option(p, "the probe's answer")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="probe", metavar="PROBE", required=True)
    pm = sub.add_parser("pmtu", help="path MTU by DF probes (ICMP echo), binary search")
    pm.add_argument("target", help="IPv4 address")
    pm.add_argument(
        "--max-time",
        type=float,
        default=60.0,
        metavar="S",
        help="give up after S seconds (default %(default)s)",
    )
    _common(pm, 1.0, 2)
    ms = sub.add_parser("mss", help="SYN with the tunnel's MSS; report the SYN-ACK's MSS")
    ms.add_argument("target", metavar="TARGET:PORT", help="IPv4 address and TCP port to SYN")
    ms.add_argument(
        "--mss",
        type=int,
        default=mtu.mss_for_mtu(mtu.dtls_mtu()),
        help="MSS the SYN offers (default %(default)s: the DTLS tunnel's)",
    )
    _common(ms, 1.0, 3)
    dt = sub.add_parser("dtls", help="send a DTLS ClientHello; answered or not, which version")
    dt.add_argument(
        "target", metavar="TARGET[:PORT]", help="head-end address and DTLS port (default 443)"
    )
    dt.add_argument(
        "--version",
        default="0x0100",
        help="ClientHello version: 0x0100 (default, AnyConnect's legacy DTLS), 1.0 or 1.2",
    )
    dt.add_argument(
        "--session-id",
        metavar="HEX",
        help="session to resume (X-DTLS-Session-ID); ocserv answers only a live one",
    )
    _common(dt, 1.0, 3)


def _split(target: str, default: int | None) -> tuple[str, int]:
    host, sep, port = target.rpartition(":")
    if not sep:
        if default is None:
            raise UsageError(f"target {target!r}: expected ADDRESS:PORT")
        return target, default
    if not port.isdigit():
        raise UsageError(f"target {target!r}: port {port!r} is not a number")
    return host, int(port)


def _dtls_hello(version: str, session: str | None) -> bytes:
    """The ClientHello's UDP payload, built by labkit.craft (the one home of crafted bytes).

    A fresh random: craft's default is reproducible zeros, and ocserv drops such a hello
    ("detected broken DTLS client hello (no randomness); ignoring").
    """
    import os

    from scapy.layers.inet import UDP

    from labkit import craft
    from labkit.lab.probe import session_id
    from labkit.wire import DTLS1_BAD_VER

    legacy = craft.dtls_version(version) == DTLS1_BAD_VER
    sid = session_id(session) if legacy or session is not None else None
    hello = craft.dtls_client_hello(version=version, client_random=os.urandom(32), session_id=sid)
    return bytes(hello[UDP].payload)


def run(args: argparse.Namespace) -> int:
    from labkit.lab import probe

    if args.timeout <= 0 or args.tries < 1:
        raise UsageError("--timeout must be > 0 and --tries >= 1")
    context: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if args.from_node:
        from labkit.lab import manager, nsenter

        context = nsenter.inside(manager.require(args.lab).netns(args.from_node))
    if args.probe == "dtls":
        hello = _dtls_hello(args.version, args.session_id)  # built before entering the node
    result: probe.PmtuResult | probe.MssResult | probe.DtlsResult
    with context:
        if args.probe == "pmtu":
            result = probe.probe_pmtu(
                args.target, timeout=args.timeout, tries=args.tries, max_time=args.max_time
            )
        elif args.probe == "mss":
            host, port = _split(args.target, None)
            result = probe.probe_mss(
                host, port, mss=args.mss, timeout=args.timeout, tries=args.tries
            )
        else:
            host, port = _split(args.target, mtu.DEFAULT_DTLS_PORT)
            result = probe.probe_dtls(host, port, hello, timeout=args.timeout, tries=args.tries)
    if args.format == "json":
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(result.text())
    return EXIT_PROBLEM if result.problem else EXIT_OK
