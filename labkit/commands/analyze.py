"""``labkit analyze FILE [FILE...]``: confirm or rule out the MTU mismatch in captures.

Several files are one case (outside + tunnel + inside captures of the same incident).
Exit 0: no problem found; 1: a warning or error finding; 2: nothing could be analyzed.
The work is in :func:`labkit.analyze.analyze`; this module parses options and prints.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys

from labkit import mtu
from labkit.analyze import AnalyzeOptions, analyze
from labkit.analyze.render import to_json, to_text
from labkit.errors import InputError
from labkit.fileio import check_output_path


def _mtu(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not mtu.MIN_IPV4_MTU <= value <= mtu.MAX_IP_PACKET:
        raise argparse.ArgumentTypeError(f"expected {mtu.MIN_IPV4_MTU}..{mtu.MAX_IP_PACKET}, got {value}")
    return value


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="pcap/pcapng captures (optionally .gz) of one case: outside, tunnel, inside")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--annotate", metavar="OUT.pcapng",
                   help="write a pcapng copy with a comment on every evidence frame")
    p.add_argument("--tunnel-mtu", type=_mtu, metavar="N",
                   help="the MTU the tunnel carries, when known (e.g. X-CSTP-MTU 1347)")
    p.add_argument("--headend", type=_ip, action="append", default=[], metavar="IP",
                   help="a head-end address (repeatable); DTLS peers are found without it")
    p.add_argument("--force", action="store_true", help="overwrite --annotate's output file")


def run(args: argparse.Namespace) -> int:
    if args.annotate:
        check_output_path(args.annotate, force=args.force, inputs=args.files)
    options = AnalyzeOptions(tunnel_mtu=args.tunnel_mtu, headends=tuple(args.headend))
    report = analyze(args.files, options)
    if not report.analyzable:
        errors = [f.error for f in report.files if f.error]
        raise InputError("; ".join(errors) if errors else "nothing could be analyzed")
    for f in report.files:
        if f.error:
            sys.stderr.write(f"labkit analyze: warning: {f.error}\n")
    print(to_json(report) if args.format == "json" else to_text(report))
    if args.annotate:
        from labkit.analyze.annotate import write_annotated
        n = write_annotated(report, args.files, args.annotate, force=args.force)
        sys.stderr.write(f"labkit analyze: wrote {args.annotate} ({n} commented frame(s))\n")
    return report.exit_code



