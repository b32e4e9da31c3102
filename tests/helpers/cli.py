"""Run the labkit CLI from this checkout, as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

from tests.helpers.paths import ROOT


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


def default_signals() -> None:
    """``preexec_fn`` for a child that a test interrupts: a job started in the background by
    a non-interactive shell (as CI may run us) inherits SIGINT ignored, and Python then never
    installs its KeyboardInterrupt handler. Ctrl-C in a terminal always reaches labkit; so must
    the test's SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def labkit_popen(*args: str, stdin: int | IO[bytes] | None = None) -> subprocess.Popen[str]:
    """Start ``python -m labkit ARGS`` from this checkout, its output piped as text, for a
    test that talks to it while it runs (a signal, live lines, a pipe in)."""
    return subprocess.Popen(
        [sys.executable, "-m", "labkit", *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        preexec_fn=default_signals,
    )
