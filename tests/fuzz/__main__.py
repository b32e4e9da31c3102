"""``python -m tests.fuzz``: run a fuzz campaign by hand (CI runs tests/test_fuzz_campaign.py).

Examples::

    python -m tests.fuzz --inputs 20000 --seed 7 --save /tmp/crashes   # a longer campaign
    python -m tests.fuzz --seed 7 --index 1234 --save /tmp/crashes     # rebuild one input
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from tests.fuzz import campaign
from tests.fuzz.targets import TARGETS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.splitlines()[0])
    p.add_argument(
        "--inputs",
        type=int,
        default=2000,
        help="random inputs to try, after the boundary cuts (default 2000)",
    )
    p.add_argument("--seed", type=int, default=0, help="campaign seed (default 0)")
    p.add_argument(
        "--target",
        action="append",
        choices=sorted(TARGETS),
        help="only these targets (repeatable; default all)",
    )
    p.add_argument("--no-boundaries", action="store_true", help="skip the exhaustive boundary cuts")
    p.add_argument("--no-scaling", action="store_true", help="skip the scaling check")
    p.add_argument("--limit", type=float, default=10.0, help="seconds before an input is a hang")
    p.add_argument("--save", type=Path, metavar="DIR", help="write crashing inputs here")
    p.add_argument("--index", type=int, help="only rebuild (and run) input INDEX")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the figures as JSON")
    a = p.parse_args(argv)
    if a.index is not None:
        inp = campaign.one(a.seed, a.index, a.target, not a.no_boundaries)
        seconds, error, _refused = campaign._run(
            inp, Path(campaign.tempfile.mkdtemp(prefix="labkit-fuzz-")), a.limit
        )
        print(
            f"#{inp.index} {inp.target} {inp.seed} {inp.mutation} {len(inp.data)} B {seconds:.3f} s: "
            f"{error or 'ok'}"
        )
        if a.save:
            print(campaign.save(campaign.CrashReport(inp, error or "ok"), a.save))
        return 1 if error else 0
    figs = campaign.run(
        a.seed,
        a.inputs,
        a.target,
        a.limit,
        a.save,
        not a.no_boundaries,
        progress=True,
        scale=not a.no_scaling,
    )
    print(figs.table())
    for c in figs.crashes:
        print(
            f"\nCRASH #{c.input.index} [{c.input.target}] {c.input.seed} {c.input.mutation}:\n{c.error}"
        )
    if a.json:
        doc = {
            "seed": figs.seed,
            "inputs": figs.inputs,
            "crashes": len(figs.crashes),
            "seconds": round(figs.seconds, 2),
            "targets": [asdict(t) for t in figs.targets.values()],
            "scaling": [asdict(s) | {"ratio": s.ratio} for s in figs.scaling],
        }
        a.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 1 if figs.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
