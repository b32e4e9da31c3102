"""``labkit scenario``: list, validate and build YAML failure scenarios.

* ``list``: the shipped scenarios (``configs/scenarios``, or the installed copy).
* ``validate FILE``: read the file, derive its numbers from the MTU model and run its
  timeline; any problem is one line naming ``file:line: key``, exit 2.
* ``build FILE -o DIR``: write ``outside.pcapng``, ``client-tunnel.pcap`` and
  ``headend-inside.pcap``; the same file and options give the same bytes.

``FILE`` may also be the name of a shipped scenario. Only ``build`` imports Scapy.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

from labkit.commands import add_format_option
from labkit.errors import EXIT_OK, UsageError
from labkit.scenario import ScenarioError, find, load, shipped
from labkit.scenario.schema import US, Scenario

MAX_START = 2**32 - 1  # pcap stores seconds in 32 bits


def _start_time(text: str) -> int:
    """Epoch seconds or an ISO 8601 time (UTC unless it says otherwise), in microseconds."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid time {text!r}: give epoch seconds or ISO 8601, e.g. 2024-01-01T00:00:00Z"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp()
    if not 0 <= seconds <= MAX_START:
        raise argparse.ArgumentTypeError(f"start time {text!r} is outside 1970..2106")
    return round(seconds * US)


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = sub.add_parser(
        "list", help="list the shipped scenarios", description="list the shipped scenarios"
    )
    add_format_option(s, "the scenarios")
    s = sub.add_parser(
        "validate",
        help="check a scenario file and show what it will build",
        description="check a scenario file: every error names file:line: key",
    )
    s.add_argument("file", metavar="FILE", help="a scenario .yaml file or a shipped name")
    s = sub.add_parser(
        "build",
        help="build a scenario into one capture per capture point",
        description="build outside.pcapng, client-tunnel.pcap and headend-inside.pcap into DIR",
    )
    s.add_argument("file", metavar="FILE", help="a scenario .yaml file or a shipped name")
    s.add_argument(
        "-o",
        "--output-dir",
        metavar="DIR",
        required=True,
        help="folder for the captures (created if missing)",
    )
    s.add_argument("--force", action="store_true", help="overwrite existing captures in DIR")
    s.add_argument(
        "--start-time",
        type=_start_time,
        metavar="TIME",
        help="time of the first packet: epoch seconds or ISO 8601 (default 2024-01-01T00:00:00Z)",
    )


def _list(args: argparse.Namespace) -> int:
    rows: list[dict[str, str]] = []
    for path in shipped():
        try:
            s = load(path)
            rows.append({"name": s.name, "file": str(path), "summary": s.summary})
        except ScenarioError as exc:  # a broken shipped file is shown, not hidden
            rows.append({"name": path.stem, "file": str(path), "summary": f"INVALID: {exc}"})
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    width = max((len(r["name"]) for r in rows), default=0)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['summary']}")
    return EXIT_OK


def _expectations(s: Scenario) -> list[str]:
    out = []
    for e in s.expect.report:
        fields = ", ".join(f"{k}={v}" for k, v in e.fields)
        out.append(f"  must report {e.id}" + (f" ({fields})" if fields else ""))
    if s.expect.not_report:
        out.append(f"  must not report {', '.join(s.expect.not_report)}")
    return out


def _validate(args: argparse.Namespace) -> int:
    from labkit.scenario.events import build_timeline

    scenario = load(find(args.file))
    timeline = build_timeline(scenario)
    print(f"{scenario.source}: valid scenario {scenario.name}")
    for line in timeline.describe():
        print(f"  {line}")
    print("expect:" if scenario.expect.report or scenario.expect.not_report else "expect: nothing")
    for line in _expectations(scenario):
        print(line)
    return EXIT_OK


def _build(args: argparse.Namespace) -> int:
    scenario = load(find(args.file))
    from labkit.scenario.build import EPOCH_US, build  # Scapy: only when building

    start = EPOCH_US if args.start_time is None else args.start_time
    result = build(scenario, Path(args.output_dir), force=args.force, start_us=start)
    print(f"{scenario.name}: built into {args.output_dir}")
    for line in result.timeline.describe():
        print(f"  {line}")
    for c in result.captures:
        print(f"  {c.path}  {c.frames} frames  ({c.point})")
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list(args)
    if args.action == "validate":
        return _validate(args)
    if args.action == "build":
        return _build(args)
    raise UsageError(f"unknown action {args.action!r}")  # argparse allows only the three
