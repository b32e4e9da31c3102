"""Shared test helpers: run the CLI as a user would, and ask tshark as an independent judge."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ROOT.parent / "shared" / "captures" / "public"


@pytest.fixture(scope="session")
def public_captures() -> Path:
    if not PUBLIC.is_dir():
        pytest.skip(f"public captures not found at {PUBLIC}")
    return PUBLIC


def labkit(
    *args: str, cwd: Path | None = None, timeout: float = 120, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m labkit ARGS`` from this checkout; return the completed process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "labkit", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
    )


def tshark_available() -> bool:
    return shutil.which("tshark") is not None


requires_tshark = pytest.mark.skipif(
    not tshark_available(), reason="tshark is not installed (CI installs it with apt)"
)


def tshark(path: Path | str, *args: str, timeout: float = 120) -> str:
    """tshark's stdout for ``-r path ARGS``; fails the test on a tshark error."""
    proc = subprocess.run(
        ["tshark", "-n", "-r", str(path), *args], capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"tshark failed: {proc.stderr}"
    return proc.stdout


def tshark_fields(
    path: Path | str, display_filter: str, *fields: str, extra: tuple[str, ...] = ()
) -> list[list[str]]:
    """Rows of ``-T fields`` output for the frames ``display_filter`` selects."""
    args = [*extra, "-Y", display_filter, "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        args += ["-e", f]
    out = tshark(path, *args)
    return [line.split("\t") for line in out.splitlines() if line.strip()]


def tshark_frames(path: Path | str, display_filter: str, extra: tuple[str, ...] = ()) -> list[int]:
    """Frame numbers ``display_filter`` selects: the judge for a finding's filter."""
    return [int(r[0]) for r in tshark_fields(path, display_filter, "frame.number", extra=extra)]


def tshark_problems(path: Path | str, extra: tuple[str, ...] = ()) -> list[str]:
    """Malformed frames and error-level expert info: a crafted file must have none."""
    out = tshark(
        path,
        *extra,
        "-Y",
        '_ws.malformed || _ws.expert.severity >= "error"',
        "-T",
        "fields",
        "-e",
        "frame.number",
        "-e",
        "_ws.expert.message",
    )
    return [line for line in out.splitlines() if line.strip()]


def default_signals() -> None:
    """``preexec_fn`` for a child that a test interrupts: a job started in the background by
    a non-interactive shell (as CI may run us) inherits SIGINT ignored, and Python then never
    installs its KeyboardInterrupt handler. Ctrl-C in a terminal always reaches labkit; so must
    the test's SIGINT."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class Traced:
    """Python allocations of a block (tracemalloc): ``held`` at its end, ``peak`` during it."""

    held: int = 0
    peak: int = 0


@contextlib.contextmanager
def traced_memory() -> Iterator[Traced]:
    """``with traced_memory() as mem: ...``, then ``mem.peak``: what the block allocated in
    Python (numpy's and the reader's anonymous mappings are not traced)."""
    import tracemalloc

    mem = Traced()
    tracemalloc.start()
    try:
        yield mem
    finally:
        mem.held, mem.peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
