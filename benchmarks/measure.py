"""Run one tool as a child process and measure it: wall and CPU time, peak RSS, exit code.

Shared by the mix runner (:mod:`benchmarks.run`) and the full-featured run
(:mod:`benchmarks.fullrun`), so both measure the same way.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD_TIMEOUT_S = 600  # one tool on one file; the runner's --timeout

TIME = shutil.which("time", path="/usr/bin:/bin")  # GNU time: reports the child's peak RSS


@dataclass(frozen=True)
class Measured:
    wall_s: float
    cpu_s: float  # user + system: less disturbed than wall time by other work on the machine
    rss_mb: float
    returncode: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


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
    Past ``timeout`` seconds the child is killed: :attr:`Measured.timed_out`.
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
            start_new_session=True,  # its own group: a timeout ends GNU time *and* the tool
        )
        killer = threading.Timer(timeout, _kill_group, (proc.pid,))
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
        return Measured(
            wall,
            cpu,
            rss_kb / 1024,
            proc.returncode,
            out.read(),
            err.read(),
            timed_out=wall >= timeout,
        )


def run_module(module: str, *args: str) -> None:
    """``python -m module args`` from this checkout, its output dropped: the generators run
    as children so the runner's own size stays out of their figures and theirs out of its."""
    subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it ended just now


def byte_compile(root: Path) -> None:
    """Byte-compile the labkit package under ``root`` before it is timed. An installed labkit
    runs from ``.pyc`` files (pip writes them at install); a checkout run where
    PYTHONDONTWRITEBYTECODE is set (many CI images and containers set it) compiles every
    module it imports on every run instead: about 0.1 s that no installed copy pays."""
    import compileall

    compileall.compile_dir(str(root / "labkit"), quiet=2)


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
    try:
        isal = "isal " + importlib.metadata.version("isal")
    except importlib.metadata.PackageNotFoundError:
        isal = "no isal (zlib inflates .gz)"
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
        "inflater": isal,
    }


#: A run longer than this is not repeated: its best-of-3 would say nothing more.
REPEAT_UNDER_S = 30


def best_of(repeat: int, cmd: list[str], **kw) -> Measured:
    """The fastest of ``repeat`` runs, with the highest peak RSS of them all."""
    runs = [measure(cmd, **kw)]
    while len(runs) < repeat and runs[0].wall_s < REPEAT_UNDER_S and not runs[0].timed_out:
        runs.append(measure(cmd, **kw))
    best = min(runs, key=lambda r: r.wall_s if r.returncode in (0, 1) else float("inf"))
    return Measured(
        best.wall_s,
        best.cpu_s,
        max(r.rss_mb for r in runs),
        best.returncode,
        best.stdout,
        best.stderr,
        best.timed_out,
    )
