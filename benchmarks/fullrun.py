"""The full-featured run: ``--keylog`` and ``--plot`` in one pass over a GB-scale session.

    python -m benchmarks.fullrun                  # a 1 GB AnyConnect TLS session
    python -m benchmarks.fullrun --size 100m      # smaller, while developing

Generates (once, kept under --workdir) an AnyConnect CSTP session over TLS 1.2 with its NSS
key log (:mod:`benchmarks.cstp_session`), then times on the warm file ``labkit analyze FILE``
against ``--keylog KEYS`` (every CSTP record decrypted), ``--plot OUT.png`` (the timeline
drawn) and both in one pass, each best of --repeat, and checks what the decryption reports (the
``cstp-connect`` finding: the head-end's MTUs, CSTP packets by type each way, the largest
DATA packet each way) against what the generator put in. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from benchmarks.cstp_session import keylog_path
from benchmarks.generate import size_arg, truth_path
from benchmarks.measure import (
    CHILD_TIMEOUT_S,
    ROOT,
    best_of,
    byte_compile,
    machine,
    measure,
    run_module,
)

MB = 1e6
PCAP_HEADER = 24  # the file's global header, before the packets


def ensure_session(workdir: Path, size: int, regenerate: bool) -> dict:
    path = workdir / f"cstp-{size // 10**6}MB.pcap"
    sidecar = truth_path(path)
    if not regenerate and path.exists() and sidecar.exists() and keylog_path(path).exists():
        doc = json.loads(sidecar.read_text())
        if doc.get("bytes") == path.stat().st_size - PCAP_HEADER:  # the truth counts packets
            print(f"reusing {path} ({doc['packets']} packets, {doc['bytes'] / MB:.0f} MB)")
            return doc
    run_module("benchmarks.cstp_session", "-o", str(path), "--size", str(size), "--force")
    doc = json.loads(sidecar.read_text())
    print(
        f"generated {path} ({doc['packets']} packets, {doc['bytes'] / MB:.0f} MB) in {doc['generate_s']} s"
    )
    return doc


def decrypted_facts(report: dict) -> dict[str, object]:
    """What labkit's ``cstp-connect`` finding says, in the generator's truth's shape."""
    found = next((f for f in report.get("findings", []) if f.get("id") == "cstp-connect"), None)
    if found is None:
        return {}
    return {
        "x_cstp_mtu": found.get("x_cstp_mtu"),
        "x_dtls_mtu": found.get("x_dtls_mtu"),
        "cstp": {
            "to-client": dict(sorted(found.get("cstp_to_client", {}).items())),
            "to-server": dict(sorted(found.get("cstp_to_server", {}).items())),
        },
        "largest_data": {
            "to-client": found.get("largest_data_to_client"),
            "to-server": found.get("largest_data_to_server"),
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.fullrun", description=__doc__.split("\n")[0]
    )
    p.add_argument("--size", type=size_arg, default=10**9, help="session capture size (default 1g)")
    p.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "labkit-bench",
        help="where the session is generated and kept (default /tmp/labkit-bench)",
    )
    p.add_argument("--regenerate", action="store_true")
    p.add_argument("--repeat", type=int, default=3, help="runs of the plain analyze")
    p.add_argument("--timeout", type=float, default=CHILD_TIMEOUT_S * 3)
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    byte_compile(ROOT)
    info = machine()
    print(
        "machine: {nproc} cores, {cpu}; labkit {labkit_commit}; load average {load_avg_1m}".format(
            **info
        )
    )
    doc = ensure_session(args.workdir, args.size, args.regenerate)
    path, keys = doc["file"], doc["keylog"]
    plot = args.workdir / "fullrun.png"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    base = [sys.executable, "-m", "labkit", "analyze", path, "--format", "json", "--no-progress"]
    measure(["cat", path], keep_stdout=False)
    keylog, drawn = ["--keylog", keys], ["--plot", str(plot), "--force"]
    runs = {  # each best of --repeat: the share of each option, then both in one pass
        "analyze": base,
        "analyze --keylog": [*base, *keylog],
        "analyze --plot": [*base, *drawn],
        "analyze --keylog --plot": [*base, *keylog, *drawn],
    }
    done = {
        name: best_of(args.repeat, cmd, env=env, cwd=ROOT, timeout=args.timeout)
        for name, cmd in runs.items()
    }
    plain, full = done["analyze"], done["analyze --keylog --plot"]
    packets = int(doc["packets"])
    records = sum(doc["tls_application_records"].values())
    print(
        f"\nsession: {doc['bytes'] / MB:.0f} MB, {packets} packets, {records} TLS application "
        f"records ({doc['tls']}), CSTP {json.dumps(doc['cstp'])}"
    )
    print(
        f"  {'run':<24} {'wall s':>7} {'cpu s':>6} {'x wall':>6} {'x cpu':>6} "
        f"{'packets/s':>10} {'records/s':>10} {'RSS MB':>7}"
    )
    rows = {}
    for name, m in done.items():
        ok = m.returncode in (0, 1) and not m.timed_out
        rows[name] = {"wall_s": m.wall_s, "cpu_s": m.cpu_s, "rss_mb": m.rss_mb, "ok": ok}
        note = (
            ""
            if ok
            else (
                "killed at --timeout" if m.timed_out else m.stderr.decode(errors="replace")[-200:]
            )
        )
        per_record = records / m.wall_s if "--keylog" in name else 0
        print(
            f"  {name:<24} {m.wall_s:7.2f} {m.cpu_s:6.2f} {m.wall_s / plain.wall_s:6.2f} "
            f"{m.cpu_s / plain.cpu_s:6.2f} {packets / m.wall_s:10,.0f} {per_record:10,.0f} "
            f"{m.rss_mb:7.0f}  {note}"
        )
    problems: list[str] = []
    if rows["analyze --keylog --plot"]["ok"]:
        got = decrypted_facts(json.loads(full.stdout))
        for key, value in got.items():
            if value != doc[key]:
                problems.append(f"{key}: generator {doc[key]!r}, labkit {value!r}")
        if not got:
            problems.append("no cstp-connect finding: nothing decrypted")
        print(
            f"  decrypted facts against the generator ({', '.join(got)}): "
            + ("all equal" if not problems else "; ".join(problems))
        )
        print(
            f"  plot: {plot} ({plot.stat().st_size / 1e3:.0f} kB)"
            if plot.exists()
            else "  no plot written"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"machine": info, "session": doc, "runs": rows, "disagreements": problems}, indent=2
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
