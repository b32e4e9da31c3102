"""``labkit analyze FILE [FILE...]``: confirm or rule out the MTU mismatch in captures.

Several files are one case (outside + tunnel + inside captures of the same incident);
``-`` is a capture on standard input, ``--follow`` one still being written.
Exit 0: no problem found; 1: a warning or error finding; 2: nothing could be analyzed.

Beyond the captures: ``--keylog`` decrypts the CSTP session, ``--syslog`` and ``--dart`` add
the ASA's and the client's logs, ``--clock-offset`` aligns their clocks, and ``--plot`` draws
the timeline. Logs alone, without a capture, are a case too.

This module only wires and renders: one pass over each capture (:func:`labkit.analyze.scan`),
the logs read (:func:`labkit.analyze.sources.read_logs`), the judging
(:func:`labkit.analyze.judge`: findings, the logs' join, the verdict), then the renderers.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from labkit import mtu
from labkit.analyze import AnalyzeOptions, Collect, Report, Scanned, judge, scan, sources
from labkit.analyze.annotate import DEFAULT_FOLDER, check_targets, targets
from labkit.analyze.progress import Progress
from labkit.analyze.render import TextOptions, to_json, to_text
from labkit.commands import add_format_option
from labkit.errors import InputError, UsageError
from labkit.fileio import atomic_output, binary_stdout, check_output_path, is_stdout
from labkit.findings import SEVERITY_RANK, Finding

if TYPE_CHECKING:
    from labkit.analyze.timeline import LogInputs
    from labkit.plot import Timeline


def _mtu(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not mtu.MIN_IPV4_MTU <= value <= mtu.MAX_IP_PACKET:
        raise argparse.ArgumentTypeError(
            f"expected {mtu.MIN_IPV4_MTU}..{mtu.MAX_IP_PACKET}, got {value}"
        )
    return value


def _at_least(minimum: int, noun: str) -> Callable[[str], int]:
    """An argparse type: a whole number of ``noun`` no smaller than ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of {noun}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected at least {minimum} {noun}, got {value}")
        return value

    return parse


_jobs = _at_least(1, "processes")
_max_flows = _at_least(1000, "flows")


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}") from None


def _offset(text: str) -> tuple[str | None, float]:
    """``SECONDS`` (every log) or ``FILE=SECONDS`` (one log)."""
    path, sep, value = text.rpartition("=")
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected SECONDS or FILE=SECONDS, got {text!r}"
        ) from None
    if seconds != seconds or abs(seconds) > 10 * 365 * 86400:
        raise argparse.ArgumentTypeError(f"clock offset {text!r} is not a sane number of seconds")
    return (path if sep else None), seconds


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="pcap/pcapng captures (optionally .gz) of one case: outside, tunnel, inside; "
        "- reads one from standard input",
    )
    p.add_argument(
        "--keylog",
        metavar="FILE",
        help="NSS key log (SSLKEYLOGFILE) to decrypt the CSTP TLS session: the head-end's "
        "X-CSTP-MTU / X-DTLS-MTU and the packets inside the tunnel",
    )
    p.add_argument(
        "--syslog",
        action="append",
        default=[],
        metavar="FILE",
        help="ASA syslog (with or without a syslog server's prefix; optionally .gz; repeatable)",
    )
    p.add_argument(
        "--dart",
        action="append",
        default=[],
        metavar="FILE",
        help="AnyConnect DART log: the bundle .zip as the client saves it, or its text log "
        "(optionally .gz; repeatable)",
    )
    p.add_argument(
        "--clock-offset",
        type=_offset,
        action="append",
        default=[],
        metavar="[FILE=]SECONDS",
        help="seconds to add to log timestamps to reach the capture's clock (UTC); "
        "log times without a zone are read as UTC (repeatable, per file)",
    )
    p.add_argument(
        "--plot",
        metavar="OUT.png",
        help="draw the timeline: packet sizes per direction, the MTUs, and the events",
    )
    p.add_argument(
        "--html",
        metavar="OUT.html",
        help="write a self-contained HTML report (diagnosis, fixes, timeline picture, "
        "findings table with filters) to attach to a case; no network needed to view it",
    )
    add_format_option(p, "the report (diagnosis first)")
    p.add_argument(
        "--all",
        action="store_true",
        help="text: list every finding with its fields and whole filters, none summarised",
    )
    p.add_argument(
        "--min-severity",
        choices=tuple(SEVERITY_RANK),
        default="warning",
        help="text: list findings of this severity and above; the rest are counted "
        "(default %(default)s)",
    )
    p.add_argument(
        "--annotate",
        nargs="?",
        const=DEFAULT_FOLDER,
        metavar="DIR|OUT.pcapng",
        help="write a pcapng copy of each capture with a comment on every evidence frame "
        "(frame numbers and order kept): DIR/NAME.annotated.pcapng, default folder "
        f"'{DEFAULT_FOLDER}'; OUT.pcapng for a single capture; - for standard output",
    )
    p.add_argument(
        "--tunnel-mtu",
        type=_mtu,
        metavar="N",
        help="the MTU the tunnel carries, when known (e.g. X-CSTP-MTU 1347)",
    )
    p.add_argument(
        "--headend",
        type=_ip,
        action="append",
        default=[],
        metavar="IP",
        help="a head-end address (repeatable); DTLS peers are found without it",
    )
    p.add_argument(
        "--one-case",
        action="store_true",
        help="judge all files as one case (default: only files that share hosts and time)",
    )
    p.add_argument(
        "--force", action="store_true", help="overwrite --annotate's / --plot's output file"
    )
    p.add_argument(
        "--jobs",
        type=_jobs,
        default=1,
        metavar="N",
        help="scan up to N files at once, in parallel processes (default 1)",
    )
    p.add_argument(
        "--max-flows",
        type=_max_flows,
        metavar="N",
        help="the most rows each per-flow table of a file keeps (default 6000000, about 1 GB "
        "of memory); past it the oldest flows are judged early and the report says how many",
    )
    p.add_argument(
        "--follow",
        action="store_true",
        help="one capture still being written (a file tcpdump writes, or - for a pipe from "
        "'tcpdump -w -'): print findings as they appear, the full report when it ends "
        "(the pipe closes, or Ctrl-C)",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress line (shown on a terminal when the work takes over a second)",
    )


def _offsets(args: argparse.Namespace) -> dict[str | None, float]:
    logs = set(args.syslog) | set(args.dart)
    out: dict[str | None, float] = {}
    for path, seconds in args.clock_offset:
        if path is not None and path not in logs:
            raise UsageError(
                f"--clock-offset {path}={seconds:g}: {path} is not a --syslog or --dart file"
            )
        out[path] = seconds
    return out


def _check_rereads(args: argparse.Namespace) -> None:
    """Refuse, before any work, what would fail or mislead at the end: --annotate and --plot
    on one path, and a pipe for a capture that --annotate copies (a copy reads the capture a
    second time, and the second read of a pipe is empty)."""
    if args.annotate and args.plot and Path(args.annotate).resolve() == Path(args.plot).resolve():
        raise UsageError(f"--annotate and --plot both name {args.plot}", hint="give two file names")
    for f in args.files if args.annotate or args.html else ():
        p = Path(f)
        if f == "-" or (p.exists() and not p.is_file() and not p.is_dir()):
            raise UsageError(
                f"{f}: a pipe or device can be read only once, and --annotate copies "
                "each capture after analyzing it (--html draws it too)",
                hint="save it to a file first",
            )


def run(args: argparse.Namespace) -> int:
    if args.keylog and not args.files:
        raise UsageError("--keylog decrypts a capture: give the capture FILE too")
    if not args.files and not (args.syslog or args.dart):
        raise UsageError("give at least one capture FILE, --syslog or --dart")
    inputs = [*args.files, *args.syslog, *args.dart, *([args.keylog] if args.keylog else [])]
    for out in (args.plot, args.html):
        if out and not is_stdout(out):
            check_output_path(out, force=args.force, inputs=inputs)
    _check_extensions(args)  # after: naming an input is the graver mistake, said first
    streams = _check_streams(args)
    copies = []
    if args.annotate and not is_stdout(args.annotate):
        copies = targets(args.annotate, args.files)
        check_targets(copies, force=args.force, inputs=inputs)
    _check_rereads(args)
    if args.plot:
        from labkit.plot import unavailable

        if why := unavailable():
            raise UsageError(
                f"--plot needs Pillow 10.1 or later: {why}", hint="pip install 'labkit[plot]'"
            )
    if args.follow and len(args.files) != 1:
        raise UsageError("--follow watches one capture: give exactly one FILE (or - for stdin)")
    if args.files.count("-") > 1:
        raise UsageError("- (standard input) can be read only once: give it once")
    offsets = _offsets(args)
    keylog = sources.read_keylog(args.keylog) if args.keylog else None
    options = AnalyzeOptions(
        tunnel_mtu=args.tunnel_mtu,
        headends=tuple(args.headend),
        one_case=args.one_case,
        max_flows=args.max_flows,
    )
    collect = Collect(keylog, plot=bool(args.plot or args.html))
    if args.follow:
        scanned = [_follow(args, options, collect)]
    else:
        progress = Progress.for_files(args.files, enabled=False if args.no_progress else None)
        try:
            scanned = scan(args.files, options, jobs=args.jobs, progress=progress, collect=collect)
        finally:
            progress.finish()
    first = next((s.report.first_time for s in scanned if s.report.first_time is not None), None)
    times = [t for s in scanned for t in (s.report.first_time, s.report.last_time) if t is not None]
    span = (min(times), max(times)) if times else None  # to warn of a log on another clock
    found, logs = sources.read_logs(args.dart, args.syslog, offsets, first, span)
    decrypted = {s.report.path: s.decrypted for s in scanned if s.decrypted is not None}
    if keylog is not None:
        found.append(sources.keylog_source(args.keylog, keylog, decrypted))
    report = judge(scanned, options, logs, found)
    if not report.analyzable:
        errors = [f.error for f in report.files if f.error] + [s.error for s in found if s.error]
        raise InputError("; ".join(errors) if errors else "nothing could be analyzed")
    for f in report.files:
        if f.error:
            sys.stderr.write(f"labkit analyze: warning: {f.error}\n")
    for s in found:
        if s.error:
            sys.stderr.write(f"labkit analyze: warning: {s.error}\n")
        elif s.kind == "keylog" and not any(r.tunnels for r in decrypted.values()):
            sys.stderr.write(f"labkit analyze: warning: {s.summary}\n")
    text_options = TextOptions(all=args.all, min_severity=args.min_severity)
    # With a stream on standard output, the text report goes to standard error.
    print(
        to_json(report) if args.format == "json" else to_text(report, text_options),
        file=sys.stderr if streams else sys.stdout,
    )
    if is_stdout(args.annotate):
        from labkit.analyze.annotate import write_stream

        write_stream(report, args.files[0], binary_stdout("a pcapng capture"))
    if copies:
        from labkit.analyze.annotate import write_each

        for out, n in write_each(report, copies, force=args.force):
            sys.stderr.write(f"labkit analyze: wrote {out} ({n} commented frame(s))\n")
    if args.plot:
        _plot(args, report, replace(logs, decrypted=report.decrypted), inputs)
    if args.html:
        _html(args, report, replace(logs, decrypted=report.decrypted), inputs)
    return report.exit_code


def _check_streams(args: argparse.Namespace) -> list[str]:
    """The outputs given as ``-`` (standard output): at most one, never with --format json
    (which is the one JSON document on standard output), and --annotate - for one capture."""
    streams = [f for f, v in (("--annotate", args.annotate), ("--html", args.html)) if is_stdout(v)]
    if is_stdout(args.plot):
        raise UsageError("--plot -: a picture is not a stream", hint="give --plot OUT.png")
    if len(streams) > 1:
        raise UsageError(f"{' and '.join(streams)} both name standard output ('-')")
    if streams and args.format == "json":
        raise UsageError(
            f"{streams[0]} - and --format json both want standard output",
            hint="write one of them to a file",
        )
    if is_stdout(args.annotate) and len(args.files) != 1:
        raise UsageError(
            f"--annotate - writes one capture's copy; {len(args.files)} captures given",
            hint="give a folder: --annotate DIR writes one copy per capture",
        )
    return streams


#: What each picture or report option writes, and the file name endings that say so.
_EXTENSIONS = {"--plot": (".png",), "--html": (".html", ".htm")}


def _check_extensions(args: argparse.Namespace) -> None:
    """Refuse a name whose extension says another format: a PNG named .html misleads whoever
    opens it (and a browser shows it as text)."""
    for flag, value in (("--plot", args.plot), ("--html", args.html)):
        ends = _EXTENSIONS[flag]
        if value and not is_stdout(value) and not str(value).lower().endswith(ends):
            raise UsageError(
                f"{flag} {value}: writes {ends[0][1:].upper()}, but the name does not end in "
                f"{' or '.join(ends)}",
                hint=f"name it e.g. case{ends[0]}",
            )


def _follow(args: argparse.Namespace, options: AnalyzeOptions, collect: Collect) -> Scanned:
    """Print each finding as it appears (stdout, or stderr under --format json so that stdout
    stays one JSON document). The first Ctrl-C ends the input (a file stops being watched;
    tcpdump in the same terminal gets it too and closes the pipe); a second one aborts."""
    import signal
    import threading

    from labkit.analyze.live import follow

    stop = threading.Event()
    out = sys.stderr if args.format == "json" else sys.stdout

    def on_interrupt(_signum: int, _frame: object) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    announced = []

    def announce(f: Finding) -> None:
        announced.append(f.id)
        out.write(f"live: [{f.severity}] {f.id}: {f.summary}\n")
        out.flush()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        scanned = follow(args.files[0], options, announce, stop, collect)
    finally:
        signal.signal(signal.SIGINT, previous)
    if announced and out is sys.stdout:
        out.write("\n")  # the report that follows starts apart from the live lines
    return scanned


def _timeline(report: Report, logs: LogInputs) -> Timeline:
    from labkit.analyze.plotdata import build

    points = {f.path: f.capture_point for f in report.files if f.analyzable}
    return build(report.samples, report.findings, logs, points)


def _html(args: argparse.Namespace, report: Report, logs: LogInputs, inputs: list[str]) -> None:
    from labkit.analyze.html import to_html

    page = to_html(report, _timeline(report, logs))
    if is_stdout(args.html):
        sys.stdout.write(page)
        return
    with atomic_output(args.html, force=args.force, inputs=inputs) as tmp:
        tmp.write_text(page, encoding="utf-8")
    sys.stderr.write(f"labkit analyze: wrote {args.html}\n")


def _plot(args: argparse.Namespace, report: Report, logs: LogInputs, inputs: list[str]) -> None:
    from labkit.plot import render_png

    timeline = _timeline(report, logs)
    with atomic_output(args.plot, force=args.force, inputs=inputs) as tmp:
        render_png(timeline, tmp)
    sys.stderr.write(f"labkit analyze: wrote {args.plot}\n")
