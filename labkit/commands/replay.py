"""``labkit replay FILE --iface IF [--netns NS]``: send a capture's packets into a lab interface.

Safety: the interface must exist and live in a labkit lab's namespace (``lk-<lab>-<node>``
of a lab that is up); ``--allow-any-iface`` lifts the second check, never the first.
"""

from __future__ import annotations

import argparse
import json
import os
import re

from labkit.commands import add_format_option
from labkit.errors import EXIT_OK, EXIT_PROBLEM, UsageError

# fullmatch, never match with "$": "$" also matches before a trailing newline, and
# "lk-x-server\n" is another namespace than the lab's.
_LAB_NETNS = re.compile(r"lk-([a-z0-9]{1,12})-(client|router|headend|server)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        metavar="FILE",
        help="pcap or pcapng (optionally .gz) to replay; - reads standard input",
    )
    # tcpreplay's own spellings (tcpreplay(1)) sit beside labkit's where they differ, so a
    # tcpreplay user's habits work: --intf1, -x/--multiplier, -p, -M/--mbps, -t, -l, -L.
    parser.add_argument(
        "--iface",
        "--intf1",
        "-i",
        dest="iface",
        required=True,
        metavar="IF",
        help="interface to send on (tcpreplay --intf1)",
    )
    parser.add_argument("--netns", metavar="NS", help="network namespace of IF (a lab node's)")
    timing = parser.add_mutually_exclusive_group()
    timing.add_argument(
        "--realtime",
        action="store_true",
        help="the capture's own timing (the default, tcpreplay's --multiplier 1)",
    )
    timing.add_argument(
        "--speed",
        "--multiplier",
        "-x",
        dest="speed",
        type=float,
        metavar="X",
        help="the capture's timing sped up X times (tcpreplay --multiplier)",
    )
    timing.add_argument("--pps", "-p", type=float, metavar="N", help="N packets per second")
    timing.add_argument(
        "--mbps", "-M", type=float, metavar="R", help="R megabits per second (tcpreplay --mbps)"
    )
    timing.add_argument("--topspeed", "-t", action="store_true", help="as fast as possible")
    parser.add_argument("--loop", "-l", type=int, default=1, metavar="N", help="replay N times")
    parser.add_argument("--limit", "-L", type=int, metavar="N", help="send at most N packets")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument("--rewrite-mac", metavar="MAP", help="OLD=NEW[,OLD=NEW] Ethernet addresses")
    parser.add_argument(
        "--rewrite-ip",
        metavar="MAP",
        help="OLD=NEW[,OLD=NEW] addresses or equal-length prefixes (10.0.0.0/8=...)",
    )
    parser.add_argument(
        "--allow-any-iface",
        action="store_true",
        help="allow an interface outside labkit's lab namespaces",
    )
    add_format_option(parser, "what was sent")


def _check_target(netns: str | None, allow_any: bool) -> None:
    from labkit.lab import state

    if netns is None:
        if not allow_any:
            raise UsageError(
                "refusing to replay into the host's own namespace",
                hint="give --netns lk-<lab>-<node> of a lab, or --allow-any-iface",
            )
        return
    m = _LAB_NETNS.fullmatch(netns)
    lab_up = m is not None and state.load(m.group(1)) is not None
    if not lab_up and not allow_any:
        raise UsageError(
            f"namespace {netns!r} is not a node of a labkit lab that is up",
            hint="see 'labkit lab status', or pass --allow-any-iface",
        )


def run(args: argparse.Namespace) -> int:
    import contextlib

    from labkit.lab import replay

    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be > 0")
    pace = replay.Pace(
        speed=None if (args.pps or args.mbps or args.topspeed) else (args.speed or 1.0),
        pps=args.pps,
        mbps=args.mbps,
    )
    macs = replay.parse_mac_map(args.rewrite_mac)
    ips = replay.parse_ip_map(args.rewrite_ip)
    _check_target(args.netns, args.allow_any_iface)
    if args.loop > 1 and not os.path.isfile(args.file):
        raise UsageError(
            f"--loop {args.loop} reads {args.file} {args.loop} times: give a regular file "
            "(a pipe or device is read once)"
        )
    capture = replay.CaptureFile(args.file)
    context: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if args.netns:
        from labkit.lab import nsenter

        context = nsenter.inside(args.netns)
    with context:
        if not _iface_exists(args.iface):
            where = f"namespace {args.netns}" if args.netns else "the host's namespace"
            raise UsageError(f"interface {args.iface!r} does not exist in {where}")
        sock, ethernet = replay.open_sender(args.iface, capture.linktype)
    with sock:
        stats = replay.send_all(
            sock,
            args.iface,
            ethernet,
            capture,
            pace,
            args.loop,
            macs,
            ips,
            limit=args.limit,
            duration=args.duration,
        )
    print(json.dumps(stats.to_json(), indent=2) if args.format == "json" else stats.text())
    return EXIT_PROBLEM if stats.failed else EXIT_OK


def _iface_exists(name: str) -> bool:
    import socket

    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True
