"""Time ``labkit analyze`` against a C-level BPF scan, tshark and Scapy on one warm capture.

    python -m benchmarks.run                 # 1 M packets (~0.9 GB), pcap and pcapng
    python -m benchmarks.run --quick         # 50 k packets: a smoke test of the runner
    python -m benchmarks.run --size 5g --tools cat,tcpdump,labkit   # the memory bound

For each format the runner generates the capture once (kept under --workdir and reused),
reads it once with ``cat`` so every tool starts from the page cache, then runs each tool as
a child process: wall time around the child, peak RSS from ``os.wait4``'s ``ru_maxrss`` of
that child alone. RSS counts resident pages, so a reader that maps the whole file counts
the page-cached pages it touched as its own. Scapy's ``PcapReader`` runs on a slice and is
extrapolated, labelled so. Speed targets are printed, never asserted.

It then checks the facts labkit reports against tshark's and the generator's ground truth.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks import facts
from benchmarks.generate import HEADEND_ADDRESS, generator_version, size_arg, truth_path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ("cat", "tcpdump", "tshark", "labkit", "scapy")
CHILD_TIMEOUT_S = 3600  # one tool on one file; tshark on 5 GB takes minutes, not hours
MB = 1e6

# The targets of issue 8 (printed, never asserted).
TARGET_VS_BPF = 4.0
TARGET_PPS = 1_000_000
TARGET_VS_TSHARK = 25.0
TARGET_PCAPNG_VS_PCAP = 1.25
TARGET_RSS_MB = 150
TARGET_RSS_MB_5G = 256
LARGE_FILE = 4 * 10**9  # from here on the 5 GB bound applies

SCAPY_SLICE = """\
import itertools, json, sys, time
t0 = time.perf_counter()
from scapy.all import ICMP, IP, TCP, UDP, PcapReader
t1 = time.perf_counter()
path, limit, mtu = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
n = syn = icmp = df = dtls = tls = 0
with PcapReader(path) as reader:
    for pkt in itertools.islice(reader, limit):  # naive: Scapy dissects every packet
        n += 1
        if IP not in pkt:
            continue
        ip = pkt[IP]
        if ICMP in pkt:
            icmp += pkt[ICMP].type == 3 and pkt[ICMP].code == 4
            continue
        df += bool(ip.flags.DF) and ip.len > mtu
        if TCP in pkt:
            tcp = pkt[TCP]
            syn += bool(tcp.flags.S) and any(o[0] == "MSS" for o in tcp.options)
            data = bytes(tcp.payload)
            tls += tcp.dport == 443 and data[:1] == b"\\x16" and data[5:6] == b"\\x01"
        elif UDP in pkt and pkt[UDP].dport == 443:
            data = bytes(pkt[UDP].payload)
            dtls += data[:1] == b"\\x16" and data[13:14] == b"\\x01"
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "loop_s": t2 - t1, "packets": n, "syn": syn,
                  "icmp_frag_needed": icmp, "df_over": df, "dtls_ch": dtls, "tls_ch": tls}))
"""


@dataclass
class Run:
    """One tool on one file."""

    tool: str
    command: str
    wall_s: float | None = None
    cpu_s: float | None = None
    rss_mb: float | None = None
    returncode: int | None = None
    note: str = ""
    extrapolated: bool = False
    facts: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """It ran to the end (labkit's exit 1 means "found a problem", not a failure)."""
        return self.wall_s is not None and self.returncode in (0, 1)


TIME = shutil.which("time", path="/usr/bin:/bin")  # GNU time: reports the child's peak RSS


@dataclass(frozen=True)
class Measured:
    wall_s: float
    cpu_s: float  # user + system: less disturbed than wall time by other work on the machine
    rss_mb: float
    returncode: int
    stdout: bytes
    stderr: bytes


def measure(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    keep_stdout: bool = True,
    cwd: Path | None = None,
    timeout: float = CHILD_TIMEOUT_S,
) -> Measured:
    """Run ``cmd``; return its wall and CPU time, peak RSS, exit code and output.

    Peak RSS comes from GNU time (``%M``, the child's ru_maxrss) when installed, else from
    ``os.wait4`` on the child itself. The wrapper matters: Linux carries the high-water RSS of
    the process image before ``exec`` into ru_maxrss, so a child forked straight from this
    (large) Python process would inherit its size; GNU time is a small process to fork from.
    Output goes to temporary files (or /dev/null), never through a pipe left undrained.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as rss_file,
    ):
        argv = [TIME, "-f", "%M %U %S", "-o", rss_file.name, *cmd] if TIME else cmd
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdout=out if keep_stdout else subprocess.DEVNULL,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
        )
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        rss_kb = usage.ru_maxrss
        reported = rss_file.read().strip().splitlines()
        if TIME and reported:
            try:
                kb, user, system = reported[-1].split()
                rss_kb, cpu = int(kb), float(user) + float(system)
            except ValueError:
                pass  # the child died by a signal: GNU time said so instead
        return Measured(wall, cpu, rss_kb / 1024, proc.returncode, out.read(), err.read())


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        )
    except (OSError, StopIteration):
        mem_kb = 0

    def version(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return "not installed"
        text = (out.stdout or out.stderr).strip().splitlines()
        return text[0] if text else "?"

    commit = version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "ram_gb": round(mem_kb / 1024**2, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
        "tshark": version(["tshark", "--version"]),
        "tcpdump": version(["tcpdump", "--version"]),
        "labkit_commit": commit,
    }


def ensure_capture(
    workdir: Path, fmt: str, packets: int | None, size: int | None, seed: int, regenerate: bool
) -> dict[str, object]:
    """Generate the capture unless an identical one (same truth parameters) is there."""
    tag = f"{packets}p" if packets else f"{size // 10**6}MB"
    path = workdir / f"mix-{tag}-s{seed}.{fmt}"
    sidecar = truth_path(path)
    if not regenerate and path.exists() and sidecar.exists():
        doc = json.loads(sidecar.read_text())
        if (
            doc.get("seed") == seed
            and doc.get("bytes") == path.stat().st_size
            and doc.get("generator") == generator_version()
        ):
            print(f"reusing {path} ({doc['packets']} packets, {doc['bytes'] / MB:.0f} MB)")
            return doc
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.generate",
        "-o",
        str(path),
        "--format",
        fmt,
        "--seed",
        str(seed),
        "--force",
    ]
    cmd += ["--packets", str(packets)] if packets else ["--size", str(size)]
    subprocess.run(
        cmd,
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    doc = json.loads(sidecar.read_text())
    print(
        f"generated {path} ({doc['packets']} packets, {doc['bytes'] / MB:.0f} MB) "
        f"in {doc['generate_s']} s"
    )
    return doc


def labkit_available(labkit_root: Path) -> bool:
    """The analyzer is on this checkout (``labkit analyze`` has its module)."""
    return (labkit_root / "labkit" / "commands" / "analyze.py").is_file()


def labkit_facts(report: dict, tunnel_mtu: int) -> dict[str, object]:
    """The facts labkit's JSON report states, in the generator's truth's keys.

    Counts come from the file's ``counts`` (labkit/analyze/README.md defines each): SYNs and
    SYN-ACKs by MSS, ICMP 3/4 by MTU, DF packets over ``tunnel_mtu``, DTLS ClientHellos by
    version, DTLS flows and how many were answered, TLS ClientHellos. From the findings: DF
    packets over ``tunnel_mtu`` without the head-end's own segments (the ``oversized-df``
    finding) and black-hole flows. A fact it does not report is left out rather than guessed.
    """
    counts = (report.get("files") or [{}])[0].get("counts") or {}
    out: dict[str, object] = {
        k: counts[k]
        for k in (
            "syn_mss",
            "synack_mss",
            "icmp_frag_needed_mtu",
            "dtls_client_hellos",
            "dtls_client_hellos_by_version",
            "dtls_flows",
            "dtls_flows_answered",
            "tls_client_hellos",
        )
        if k in counts
    }
    if str(tunnel_mtu) in counts.get("df_over_mtu", {}):
        out["df_over_tunnel_mtu"] = counts["df_over_mtu"][str(tunnel_mtu)]
    df = blackholes = 0
    seen_df = False
    for f in report.get("findings", []):
        fid = f.get("id")
        if fid == "oversized-df" and "count" in f and f.get("tunnel_mtu") == tunnel_mtu:
            df += int(f["count"])
            seen_df = True
        elif fid == "pmtud-black-hole":
            blackholes += 1
    out["blackhole_flows"] = blackholes
    if seen_df:
        out["df_over_tunnel_mtu_not_headend"] = df
    return out


def best_of(repeat: int, cmd: list[str], **kw) -> Measured:
    """The fastest of ``repeat`` runs, with the highest peak RSS of them all."""
    runs = [measure(cmd, **kw) for _ in range(max(1, repeat))]
    best = min(runs, key=lambda r: r.wall_s if r.returncode in (0, 1) else float("inf"))
    return Measured(
        best.wall_s,
        best.cpu_s,
        max(r.rss_mb for r in runs),
        best.returncode,
        best.stdout,
        best.stderr,
    )


def run_tools(
    path: str, doc: dict, tools: tuple[str, ...], labkit_root: Path, scapy_packets: int, repeat: int
) -> list[Run]:
    """Every tool on one warm file. The fast ones (cat, tcpdump, labkit) run ``repeat``
    times and report the best wall time; tshark runs once."""
    mtu = int(doc["tunnel_mtu"])
    runs: list[Run] = []
    env = dict(os.environ, PYTHONPATH=str(labkit_root))

    def done(tool: str, command: str, m: Measured, note: str = "") -> Run:
        ok = m.returncode in ((0, 1) if tool == "labkit" else (0,))
        run = Run(
            tool,
            command,
            m.wall_s,
            m.cpu_s,
            m.rss_mb,
            m.returncode,
            note if ok else m.stderr.decode(errors="replace").strip()[-300:],
        )
        runs.append(run)
        return run

    # Warm the page cache first: every tool then reads the same cached file.
    measure(["cat", path], keep_stdout=False)
    if "cat" in tools:
        done(
            "cat",
            f"cat {path} > /dev/null",
            best_of(repeat, ["cat", path], keep_stdout=False),
            "page-cache read floor",
        )
    if "tcpdump" in tools and shutil.which("tcpdump"):
        cmd = ["tcpdump", "-r", path, "-w", "/dev/null", facts.bpf(mtu)]
        done(
            "tcpdump",
            f"tcpdump -r FILE -w /dev/null '{facts.bpf(mtu)}'",
            best_of(repeat, cmd, keep_stdout=False),
            "C-level BPF scan",
        )
    if "tshark" in tools and shutil.which("tshark"):
        cmd = facts.tshark_args(path, mtu)
        m = measure(cmd)
        run = done("tshark", " ".join(cmd[:5] + ["-Y", f"'{cmd[6]}'", "-T fields ..."]), m)
        if m.returncode == 0:
            run.facts = facts.facts_from_tshark(m.stdout.decode(), mtu, HEADEND_ADDRESS)
    if "labkit" in tools:
        if not labkit_available(labkit_root):
            runs.append(
                Run(
                    "labkit",
                    "labkit analyze FILE --format json",
                    note=f"skipped: no labkit analyze in {labkit_root} yet",
                )
            )
        else:
            cmd = [sys.executable, "-m", "labkit", "analyze", path, "--format", "json"]
            # cwd too: `python -m` puts the working folder before PYTHONPATH.
            m = best_of(repeat, cmd, env=env, cwd=labkit_root)
            run = done("labkit", "labkit analyze FILE --format json", m, "one process")
            if run.ok:
                run.facts = labkit_facts(json.loads(m.stdout), mtu)
    if "scapy" in tools:
        cmd = [sys.executable, "-c", SCAPY_SLICE, path, str(scapy_packets), str(mtu)]
        m = measure(cmd)
        run = done("scapy", f"naive PcapReader loop, first {scapy_packets} packets", m)
        run.extrapolated = True
        if m.returncode == 0:
            got = json.loads(m.stdout)
            scale = int(doc["packets"]) / max(1, got["packets"])
            run.wall_s = got["import_s"] + got["loop_s"] * scale
            run.cpu_s = None
            run.note = (
                f"extrapolated from {got['packets']} packets in {got['loop_s']:.1f} s "
                f"(+{got['import_s']:.1f} s import); RSS is the slice's"
            )
    return runs


def _fmt(value: float | None, spec: str) -> str:
    return (
        format(value, spec)
        if value is not None
        else format("-", f">{spec.split('.')[0].strip(',')}")
    )


def print_runs(fmt: str, doc: dict, runs: list[Run]) -> None:
    packets, size = int(doc["packets"]), int(doc["bytes"])
    bpf = next((r.wall_s for r in runs if r.tool == "tcpdump" and r.wall_s), None)
    print(f"\n{fmt}: {packets} packets, {size / MB:.0f} MB")
    print(
        f"  {'tool':<8} {'wall s':>8} {'cpu s':>7} {'packets/s':>11} {'MB/s':>8} {'RSS MB':>7} {'x BPF':>7}  note"
    )
    for r in runs:
        pps = packets / r.wall_s if r.wall_s else None
        mbs = size / MB / r.wall_s if r.wall_s else None
        vs = r.wall_s / bpf if r.wall_s and bpf else None
        label = r.tool + ("*" if r.extrapolated else "")
        print(
            f"  {label:<8} {_fmt(r.wall_s, '8.2f')} {_fmt(r.cpu_s, '7.2f')} {_fmt(pps, '11,.0f')} {_fmt(mbs, '8.0f')} "
            f"{_fmt(r.rss_mb, '7.0f')} {_fmt(vs, '7.1f')}  {r.note}"
        )
    if any(r.extrapolated for r in runs):
        print("  * extrapolated from a slice")


def _check(ok: bool | None) -> str:
    return "n/a " if ok is None else ("MET " if ok else "MISS")


def print_targets(results: dict[str, tuple[dict, list[Run]]]) -> dict[str, object]:
    """The issue's targets, each with the measured ratio; returns them for the JSON."""

    def get(fmt: str, tool: str, what: str) -> float | None:
        runs = results.get(fmt, ({}, []))[1]
        return next((getattr(r, what) for r in runs if r.tool == tool and r.ok), None)

    def ratio(a: tuple[str, str], b: tuple[str, str]) -> tuple[float, str]:
        """a/b by wall time, with the CPU-time ratio beside it (less disturbed by load)."""
        w = get(*a, "wall_s") / get(*b, "wall_s")  # type: ignore[operator]
        ca, cb = get(*a, "cpu_s"), get(*b, "cpu_s")
        cpu = f" (cpu {ca / cb:.1f}x)" if ca and cb else ""
        return w, f"{w:.2f}x{cpu}"

    lines: list[tuple[str, bool | None, str]] = []
    if get("pcap", "labkit", "wall_s") and get("pcap", "tcpdump", "wall_s"):
        r, text = ratio(("pcap", "labkit"), ("pcap", "tcpdump"))
        lines.append(
            (f"labkit within {TARGET_VS_BPF:g}x of the BPF scan (pcap)", r <= TARGET_VS_BPF, text)
        )
    for fmt in ("pcap", "pcapng"):
        lk = get(fmt, "labkit", "wall_s")
        if lk:
            n = int(results[fmt][0]["packets"])
            cpu = get(fmt, "labkit", "cpu_s")
            lines.append(
                (
                    f">= 1 M packets/s on one core ({fmt})",
                    n / lk >= TARGET_PPS,
                    f"{n / lk / 1e6:.2f} M/s"
                    + (f" (per cpu s {n / cpu / 1e6:.2f} M/s)" if cpu else ""),
                )
            )
        if lk and get(fmt, "tshark", "wall_s"):
            r, text = ratio((fmt, "tshark"), (fmt, "labkit"))
            lines.append(
                (
                    f">= {TARGET_VS_TSHARK:g}x faster than tshark ({fmt})",
                    r >= TARGET_VS_TSHARK,
                    text,
                )
            )
    if get("pcap", "labkit", "wall_s") and get("pcapng", "labkit", "wall_s"):
        r, text = ratio(("pcapng", "labkit"), ("pcap", "labkit"))
        lines.append(
            (f"pcapng within {TARGET_PCAPNG_VS_PCAP:g}x of pcap", r <= TARGET_PCAPNG_VS_PCAP, text)
        )
    for fmt, (doc, _) in results.items():
        rss = get(fmt, "labkit", "rss_mb")
        if rss is not None:
            bound = TARGET_RSS_MB_5G if int(doc["bytes"]) >= LARGE_FILE else TARGET_RSS_MB
            lines.append(
                (
                    f"peak RSS <= {bound} MB on {int(doc['bytes']) / 1e9:.1f} GB ({fmt})",
                    rss <= bound,
                    f"{rss:.0f} MB",
                )
            )
    print("\ntargets (issue 8; printed, not asserted):")
    if not lines:
        print("  none measurable (labkit analyze not run)")
    for text, ok, value in lines:
        print(f"  {_check(ok)} {text}: {value}")
    return {text: {"met": ok, "value": value} for text, ok, value in lines}


RETRANSMISSION_NOTE = (
    "retransmissions: the generator counts a TCP segment with payload whose first sequence "
    "number is below the highest one already sent in that direction (bytes sent again, "
    "whatever the reason); the 'tshark' figure adds tcp.analysis.retransmission, "
    "fast_retransmission, spurious_retransmission and out_of_order, and matches it. tshark's "
    "tcp.analysis.retransmission alone ('strict') is narrower: a resend within the first "
    "round-trip time of the newest segment is 'out-of-order' (the resends right after an "
    "ICMP 3/4), one of already-acknowledged data 'spurious'. labkit counts no retransmissions: "
    "its black-hole detector follows copies of the same segment (same flow, sequence "
    "number and payload length), so a range re-sent in smaller segments is not a copy."
)


def print_facts(fmt: str, doc: dict, runs: list[Run]) -> list[str]:
    truth = doc["truth"]
    by_tool = {r.tool: r.facts for r in runs if r.facts}
    keys = facts.COMPARED + ("df_over_tunnel_mtu_not_headend", "blackhole_flows")
    print(
        f"\nfacts ({fmt}): the generator's truth; tshark and labkit say '=' where they agree with it"
    )
    for k in keys:
        cells = []
        for tool in ("tshark", "labkit"):
            if tool not in by_tool:
                cells.append(f"{tool}: not run")
            elif k not in by_tool[tool]:
                cells.append(f"{tool}: not reported")
            else:
                got = by_tool[tool][k]
                cells.append(f"{tool}: " + ("=" if got == truth.get(k) else json.dumps(got)))
        print(f"  {k:<31} {json.dumps(truth.get(k))}\n  {'':<31} " + "; ".join(cells))
    ts = by_tool.get("tshark")
    if ts:
        print(f"  {'retransmissions, tshark strict':<31} {ts['retransmissions_tshark_strict']}")
    problems = []
    for tool in ("tshark", "labkit"):
        if tool in by_tool:
            problems += [
                f"{fmt} {tool} vs truth: {d}"
                for d in facts.disagreements(truth, by_tool[tool], keys)
            ]
    if ts and "labkit" in by_tool:
        problems += [
            f"{fmt} labkit vs tshark: {d}" for d in facts.disagreements(ts, by_tool["labkit"], keys)
        ]
    print("  disagreements: " + ("none" if not problems else ""))
    for p in problems:
        print(f"    {p}")
    print("  " + RETRANSMISSION_NOTE)
    if "labkit" in by_tool:
        print(
            "  labkit: counts from the report's files[].counts (labkit/analyze/README.md); a "
            "DTLS flow is a (client, server, port) pair, answered by a HelloVerifyRequest, "
            "ServerHello or data; df_over_tunnel_mtu_not_headend is the oversized-df "
            "finding's count, which leaves out packets to or from the head-end."
        )
    return problems


def add_arguments(p: argparse.ArgumentParser) -> None:
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--packets", type=int, default=None, help="capture size in packets (default 1000000)"
    )
    size.add_argument("--size", type=size_arg, help="capture size in bytes instead, e.g. 5g")
    size.add_argument(
        "--quick", action="store_true", help="50 k packets: a smoke test of the runner"
    )
    p.add_argument("--formats", default="pcap,pcapng", help="comma-separated: pcap,pcapng")
    p.add_argument(
        "--tools", default=",".join(TOOLS), help=f"comma-separated subset of {','.join(TOOLS)}"
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "labkit-bench",
        help="where captures are generated and kept (default /tmp/labkit-bench)",
    )
    p.add_argument("--regenerate", action="store_true", help="generate even if the capture exists")
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of cat, tcpdump and labkit; the best wall time counts (default 3)",
    )
    p.add_argument(
        "--scapy-packets", type=int, default=20_000, help="Scapy slice size (default 20000)"
    )
    p.add_argument(
        "--labkit-root",
        type=Path,
        default=ROOT,
        help="checkout whose labkit is timed (PYTHONPATH), default this one",
    )
    p.add_argument("--json", type=Path, help="also write all figures to this JSON file")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    add_arguments(p)
    args = p.parse_args(argv)
    tools = tuple(t for t in args.tools.split(",") if t)
    formats = tuple(f for f in args.formats.split(",") if f)
    bad = [t for t in tools if t not in TOOLS] + [f for f in formats if f not in ("pcap", "pcapng")]
    if bad:
        p.error(f"unknown tool or format: {', '.join(bad)}")
    if "scapy" in tools and importlib.util.find_spec("scapy") is None:
        tools = tuple(t for t in tools if t != "scapy")
    packets = 50_000 if args.quick else (None if args.size else (args.packets or 1_000_000))
    if args.quick:
        args.scapy_packets = min(args.scapy_packets, 5_000)
    args.workdir.mkdir(parents=True, exist_ok=True)
    info = machine()
    print(
        "machine: {nproc} cores, {cpu}, {ram_gb} GB RAM; Python {python}; {tshark}; "
        "{tcpdump}; labkit {labkit_commit}; load average {load_avg_1m} at the start".format(**info)
    )
    print(
        "wall: best of --repeat runs for cat, tcpdump and labkit, one run for tshark; peak RSS: "
        + ("GNU time's %M" if TIME else "os.wait4's ru_maxrss")
        + " of each child (resident "
        "pages at the peak: the pages of a memory-mapped file count once touched)"
    )
    results: dict[str, tuple[dict, list[Run]]] = {}
    problems: list[str] = []
    for fmt in formats:
        doc = ensure_capture(args.workdir, fmt, packets, args.size, args.seed, args.regenerate)
        runs = run_tools(
            str(doc["file"]),
            doc,
            tools,
            args.labkit_root.resolve(),
            args.scapy_packets,
            args.repeat,
        )
        results[fmt] = (doc, runs)
        print_runs(fmt, doc, runs)
    info["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    print(
        f"\nload average {info['load_avg_1m_end']} at the end (above ~0.5 on "
        f"{info['nproc']} cores, other work competed with the timings: compare cpu s)"
    )
    targets = print_targets(results)
    for fmt, (doc, runs) in results.items():
        problems += print_facts(fmt, doc, runs)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "targets": targets,
                    "disagreements": problems,
                    "runs": {
                        fmt: {
                            "capture": {k: v for k, v in doc.items() if k != "definitions"},
                            "tools": [asdict(r) for r in runs],
                        }
                        for fmt, (doc, runs) in results.items()
                    },
                },
                indent=2,
            )
            + "\n"
        )
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
