"""Helpers for the lab tests: skip cleanly where namespaces cannot be made, and a lab that is
always removed (fixtures call :func:`lab_down` in ``finally``)."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.cli import labkit
from tests.helpers.paths import ROOT

NETNS_DIR = Path("/run/netns")


@functools.cache
def lab_unavailable_reason() -> str | None:
    """Why lab tests cannot run here, or None. Tried once: create and delete a namespace."""
    if os.geteuid() != 0:
        return "needs root (network namespaces); CI runs as root"
    for tool in ("ip", "nft", "ethtool", "tcpdump"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            return f"{tool} is not installed (.ci/run installs it with apt)"
    probe = f"lk-probe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    if not Path("/dev/net/tun").exists():
        return "/dev/net/tun is missing"
    return None


def ocserv_unavailable_reason() -> str | None:
    reason = lab_unavailable_reason()
    if reason:
        return reason
    for tool in ("ocserv", "openconnect", "ocpasswd"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            return f"{tool} is not installed (.ci/run installs it with apt)"
    return None


requires_lab = pytest.mark.skipif(
    lab_unavailable_reason() is not None, reason=str(lab_unavailable_reason())
)
requires_ocserv = pytest.mark.skipif(
    ocserv_unavailable_reason() is not None, reason=str(ocserv_unavailable_reason())
)


def unique(stem: str) -> str:
    """A lab name no other test run uses at the same time (names are at most 12 chars)."""
    return f"{stem}{os.getpid() % 100000}"[:12]


def lab_namespaces(lab: str) -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(f"lk-{lab}-"))


def lab_down(lab: str) -> None:
    proc = labkit("lab", "down", "--lab", lab, timeout=60)
    assert proc.returncode == 0, proc.stderr


@contextlib.contextmanager
def lab(name: str, *flags: str, timeout: float = 150) -> Iterator[str]:
    """``labkit lab up --lab NAME FLAGS`` for the ``with`` body; always ``down`` after."""
    try:
        proc = labkit("lab", "up", "--lab", name, *flags, timeout=timeout)
        assert proc.returncode == 0, proc.stderr
        yield name
    finally:
        lab_down(name)


def netns_run(ns: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout
    )


def capture_in_background(
    lab_name: str, out: Path, duration: str, *extra: str, point: str = "inside"
) -> subprocess.Popen[str]:
    """``labkit lab capture`` running while the test makes traffic; ``communicate()`` ends it."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labkit",
            "lab",
            "capture",
            "--lab",
            lab_name,
            "--point",
            point,
            "-o",
            str(out),
            "--duration",
            duration,
            *extra,
        ],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
