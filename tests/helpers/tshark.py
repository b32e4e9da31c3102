"""tshark, the independent judge of what labkit writes and claims."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


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
