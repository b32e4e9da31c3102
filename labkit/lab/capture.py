"""Captures at the lab's three vantage points, with Debian's tcpdump, bounded in time and count.

    outside  the router's client-facing side: client <-> head-end as a firewall sees it,
             before its filter (DTLS ClientHellos the router then drops are on it)
    tunnel   ocserv mode: the client's tun (inner packets as the client sends and gets them);
             kernel mode: the head-end's client-facing link, the one with the TLS MTU
    inside   the head-end's server-facing side: the server's packets and the head-end's
             ICMP 3/4 back to it (absent when ICMP is blocked)

tcpdump writes to the temporary file of :func:`labkit.fileio.atomic_output`, so a capture
that fails or is interrupted never leaves a half file or replaces an existing one.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from labkit.fileio import atomic_output
from labkit.lab import netops
from labkit.lab.netops import LabError
from labkit.lab.state import LabState
from labkit.lab.topology import CLIENT_TUN, EDGE, INSIDE, OUTSIDE

POINTS: tuple[str, ...] = ("outside", "tunnel", "inside")
MAX_DURATION = 600.0
DEFAULT_COUNT = 100_000
DEFAULT_SNAPLEN = 2048  # whole packets up to 1500 bytes plus headers; keeps files small
READY_TIMEOUT = 5.0


def point_interface(st: LabState, point: str) -> tuple[str, str]:
    """(netns, interface) of a capture point in this lab."""
    if point == "outside":
        return st.netns(EDGE.b_node), EDGE.b_if
    if point == "inside":
        return st.netns(INSIDE.a_node), INSIDE.a_if
    if point == "tunnel":
        if st.topology.headend == "ocserv":
            return st.netns("client"), CLIENT_TUN
        return st.netns(OUTSIDE.b_node), OUTSIDE.b_if
    raise LabError(f"capture point {point!r}: expected one of {', '.join(POINTS)}")


@dataclass
class Capture:
    """A running tcpdump; :meth:`stop` ends it and returns how many packets it wrote."""

    proc: subprocess.Popen[bytes]
    path: Path
    started: float

    def stop(self, timeout: float = 5.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # tcpdump flushes and prints its counts
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        text = err.decode(errors="replace")
        m = re.search(r"(\d+) packets? captured", text)
        if m is None:
            last = text.strip().splitlines()[-1:] or [f"exit {self.proc.returncode}"]
            raise LabError(f"tcpdump failed: {last[0]}")
        return int(m.group(1))


def start(
    netns: str,
    iface: str,
    path: Path,
    *,
    count: int = DEFAULT_COUNT,
    snaplen: int = DEFAULT_SNAPLEN,
    bpf: str | None = None,
) -> Capture:
    """Start tcpdump on ``iface`` in ``netns`` writing ``path``; returns once it listens.

    ``--immediate-mode``: without it tcpdump takes packets from the kernel in blocks about
    once a second, and a capture stopped soon after the traffic loses the last block.
    """
    argv = netops.in_ns(
        netns,
        netops.tool("tcpdump"),
        "-i",
        iface,
        "-n",
        "-U",
        "--immediate-mode",
        "-Z",
        "root",
        "-s",
        str(snaplen),
        "-c",
        str(count),
        "-w",
        str(path),
    )
    if bpf:
        # After "--": a filter is an expression, never an option (a filter of "-w FILE" would
        # otherwise make tcpdump write over FILE).
        argv += ["--", bpf]
    proc = subprocess.Popen(
        [netops.tool("ip"), *argv[1:]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    # tcpdump says "listening on IF" on stderr once its socket is open; with -w the pcap
    # header is written at that point. Wait for the header rather than parse stderr.
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
            raise LabError(
                f"tcpdump on {iface} in {netns} exited: "
                f"{err.splitlines()[-1] if err else proc.returncode}"
            )
        if path.exists() and path.stat().st_size >= 24:
            time.sleep(0.05)
            return Capture(proc, path, time.monotonic())
        time.sleep(0.05)
    proc.kill()
    proc.communicate()
    raise LabError(f"tcpdump on {iface} in {netns} did not start within {READY_TIMEOUT:.0f} s")


def check_filter(netns: str, iface: str, bpf: str) -> None:
    """Compile ``bpf`` for ``iface`` with ``tcpdump -d`` (prints the program, captures
    nothing): a bad filter is one line naming tcpdump's complaint before any file is made."""
    argv = netops.in_ns(netns, netops.tool("tcpdump"), "-i", iface, "-d", "--", bpf)
    proc = subprocess.run(
        [netops.tool("ip"), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=READY_TIMEOUT,
    )
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"]
        raise LabError(f"filter {bpf!r}: tcpdump rejects it: {lines[-1]}")


def capture(
    st: LabState,
    point: str,
    out: str | Path,
    *,
    duration: float,
    force: bool = False,
    count: int = DEFAULT_COUNT,
    snaplen: int = DEFAULT_SNAPLEN,
    bpf: str | None = None,
) -> tuple[Path, int]:
    """Capture at ``point`` for ``duration`` seconds (or ``count`` packets); returns the count."""
    if not 0 < duration <= MAX_DURATION:
        raise LabError(f"duration {duration}: expected 0 < S <= {MAX_DURATION:.0f}")
    if count < 1:
        raise LabError(f"count {count}: expected at least 1")
    netns, iface = point_interface(st, point)
    if iface not in netops.addresses(netns):
        raise LabError(
            f"capture point {point}: interface {iface} is not in {netns}",
            hint="in ocserv mode the tunnel exists only while openconnect is connected",
        )
    if bpf:
        check_filter(netns, iface, bpf)
    with atomic_output(out, force=force) as tmp:
        tmp.unlink()  # tcpdump creates it; the size check above waits for its header
        cap = start(netns, iface, tmp, count=count, snaplen=snaplen, bpf=bpf)
        try:
            deadline = cap.started + duration
            while time.monotonic() < deadline and cap.proc.poll() is None:
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        finally:
            packets = cap.stop()
    return Path(out), packets
