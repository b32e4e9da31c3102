"""``labkit demo``: the seed's case end to end on bundled data, for a first look.

1. ``labkit mtu`` for the seed's configuration (tcpmss 1380, AES128-SHA, base MTU 1500):
   DTLS MTU 1418, TLS MTU 1347, the fixes.
2. ``labkit scenario build dtls-blocked-icmp-ok``: the reference scenario (DTLS blocked, ICMP
   allowed) written as captures at the three capture points.
3. ``labkit analyze`` on those captures: the verdict and the evidence, and a check that it is
   the verdict the scenario's ``expect:`` block names.

Exit 0 when the analyzer reached the expected verdict, 1 when it did not.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from labkit import mtu
from labkit.commands.mtu import render_text
from labkit.errors import EXIT_OK, EXIT_PROBLEM

REFERENCE = "dtls-blocked-icmp-ok"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-o",
        "--output-dir",
        metavar="DIR",
        help="folder for the scenario's captures (default: a new temporary folder)",
    )
    p.add_argument(
        "--scenario",
        default=REFERENCE,
        help="a shipped scenario name or a YAML file (default %(default)s)",
    )
    p.add_argument("--force", action="store_true", help="overwrite the captures in DIR")


def run(args: argparse.Namespace) -> int:
    from labkit.analyze import analyze
    from labkit.analyze.render import to_text
    from labkit.scenario import find, load
    from labkit.scenario.build import build
    from labkit.scenario.expect import check

    scenario = load(find(args.scenario))
    out_dir = (
        Path(args.output_dir) if args.output_dir else Path(tempfile.mkdtemp(prefix="labkit-demo-"))
    )

    print("== 1. the prediction: labkit mtu (the seed's configuration)")
    print(render_text(mtu.predict(mtu.TunnelConfig())))
    print()
    result = build(scenario, out_dir, force=args.force)
    print(f"== 2. the reference scenario '{scenario.name}', built: labkit scenario build")
    for capture in result.captures:
        print(f"  {capture.point:<14} {capture.path}  ({capture.frames} frames)")
    print()
    print("== 3. the analysis: labkit analyze " + " ".join(str(c.path) for c in result.captures))
    report = analyze([c.path for c in result.captures])
    print(to_text(report))
    print()
    problems = check(scenario.expect, [f.to_json() for f in report.findings])
    if problems:
        print(f"the analyzer did NOT reach the verdict '{scenario.name}' expects:")
        print("\n".join(f"  {line}" for line in problems))
        return EXIT_PROBLEM
    print(
        f"the analyzer reached the verdict the scenario '{scenario.name}' expects "
        f"({len(scenario.expect.report)} finding(s) required, "
        f"{len(scenario.expect.not_report)} ruled out). Open the captures in Wireshark: "
        f"each finding's filter selects its evidence frames."
    )
    return EXIT_OK
