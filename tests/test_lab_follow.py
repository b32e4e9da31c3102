"""Live analysis as an engineer runs it: ``tcpdump -U -w -`` in the lab piped into
``labkit analyze --follow -`` (findings while the capture runs) and into ``labkit analyze -``
(the report once the pipe closes), while the server's too-big packets draw the head-end
kernel's ICMP 3/4 with the TLS MTU. tshark, reading a copy of the same pipe, is the judge."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO

from labkit import mtu
from labkit.lab import state, traffic
from labkit.lab.capture import point_interface
from labkit.lab.topology import SERVER_ADDR
from tests.helpers.cli import labkit_popen
from tests.helpers.labenv import lab, lab_namespaces, requires_lab, unique
from tests.helpers.tshark import requires_tshark, tshark_fields

LINES_DEADLINE_S = 30.0
# Seen from the head-end's inside alone, the server adapting to ICMP 3/4 is path-MTU
# discovery doing its job at the tunnel's MTU: reported, and not a mismatch.
LIVE = ("[info] icmp-frag-needed", "[info] pmtud-working")


class Lines:
    """A child's text stream read line by line in a thread, so the test can wait for a line
    with a deadline instead of blocking on a pipe that may never speak."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def until(self, wanted: str, deadline: float) -> str | None:
        """The first line (from now on) containing ``wanted``, or None at EOF or the deadline."""
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                return None
            self.seen.append(line)
            if wanted in line:
                return line
        return None

    def first(self, wanted: str, deadline: float) -> str | None:
        """The first line so far or from now on containing ``wanted``."""
        seen = next((s for s in self.seen if wanted in s), None)
        return seen or self.until(wanted, deadline)

    def rest(self, deadline: float) -> str:
        while self.until("\0", deadline) is not None:
            pass
        return "".join(self.seen)


def _tcpdump(netns: str, iface: str, procs: list[subprocess.Popen]) -> subprocess.Popen[bytes]:
    """``tcpdump -U -w -`` at the capture point, bounded in count, added to ``procs`` (which
    the test stops whatever happens); returns once it listens. Its stderr keeps being read so
    that it never blocks on it."""
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, "tcpdump", "-U", "-w", "-", "-c", "2000", "-i", iface],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    procs.append(proc)
    assert proc.stderr is not None
    err = Lines(open(proc.stderr.fileno(), encoding="utf-8", errors="replace", closefd=False))
    assert err.until("listening on", time.monotonic() + 10), err.rest(time.monotonic())
    return proc


def _stop(*procs: subprocess.Popen) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)


@requires_lab
@requires_tshark
def test_follow_reports_the_icmp_1347_while_tcpdump_still_runs(tmp_path: Path) -> None:
    copy = tmp_path / "inside.pcap"
    procs: list[subprocess.Popen] = []
    name = unique("fo")
    with lab(name):  # down in its own finally, after the processes below are stopped
        try:
            st = state.load(name)
            assert st is not None
            netns, iface = point_interface(st, "inside")
            live_dump = _tcpdump(netns, iface, procs)
            whole_dump = _tcpdump(netns, iface, procs)
            tee = subprocess.Popen(
                ["tee", str(copy)], stdin=whole_dump.stdout, stdout=subprocess.PIPE
            )
            procs.append(tee)
            follow = labkit_popen("analyze", "--follow", "-", stdin=live_dump.stdout)  # type: ignore[arg-type]
            whole = labkit_popen("analyze", "-", "--format", "json", stdin=tee.stdout)  # type: ignore[arg-type]
            procs += [follow, whole]
            for p in (live_dump, whole_dump, tee):
                assert p.stdout is not None
                p.stdout.close()  # the readers own the pipes: EOF reaches them when tcpdump ends
            assert follow.stdout is not None and whole.stdout is not None
            out = Lines(follow.stdout)

            # the seed's case: a download whose 1500-byte segments the 1347-byte path drops
            got = traffic.download(
                f"lk-{name}-server", f"lk-{name}-client", SERVER_ADDR, 8080, 50_000, 15
            )
            assert got.completed, got

            deadline = time.monotonic() + LINES_DEADLINE_S
            for wanted in LIVE:
                line = out.first(f"live: {wanted}:", deadline)
                assert line is not None, "".join(out.seen)
            assert f"next-hop MTU {mtu.tls_mtu_asa()}" in "".join(out.seen)
            # announced while the capture is still running, and only then stopped
            assert live_dump.poll() is None and whole_dump.poll() is None
            assert whole.poll() is None  # the plain reader waits for the end of the pipe

            for dump in (live_dump, whole_dump):
                dump.send_signal(signal.SIGINT)
                assert dump.wait(timeout=10) == 0
            report = out.rest(time.monotonic() + LINES_DEADLINE_S)
            assert follow.wait(timeout=LINES_DEADLINE_S) == 0, follow.stderr.read()  # type: ignore[union-attr]
            whole_out, whole_err = whole.communicate(timeout=LINES_DEADLINE_S)
            assert whole.returncode == 0, whole_err
            tee.wait(timeout=10)
        finally:
            _stop(*procs)
    assert lab_namespaces(name) == []
    assert not state.lab_dir(name).exists()

    # each finding is announced once, then the full report follows
    live = [s for s in report.splitlines() if s.startswith("live: ")]
    assert {s.split(":")[1].strip() for s in live} >= set(LIVE)
    assert len(live) == len(set(live))
    assert f"path-MTU discovery works (path MTU {mtu.tls_mtu_asa()})" in report

    # the plain reader of the finished pipe says the same, and tshark agrees with its count
    found = {f["id"]: f for f in json.loads(whole_out)["findings"]}
    icmp = tshark_fields(copy, "icmp.type == 3 && icmp.code == 4", "ip.src", "icmp.mtu")
    # outer source: the head-end; quoted source: the server whose segment it dropped
    assert icmp and all(r == ["198.18.3.1,198.18.3.2", str(mtu.tls_mtu_asa())] for r in icmp)
    assert found["icmp-frag-needed"]["mtu"] == mtu.tls_mtu_asa()
    assert found["icmp-frag-needed"]["count"] == len(icmp)
    assert found["icmp-frag-needed"]["reporters"] == ["198.18.3.1"]
    assert "mtu-mismatch" not in found
    assert found["pmtud-working"]["mtu"] == mtu.tls_mtu_asa()
    big = f"tcp && !icmp && ip.flags.df == 1 && ip.len > {mtu.tls_mtu_asa()}"
    over = tshark_fields(copy, big, "ip.len")
    assert len(over) > 0  # the segments ICMP answered were there, and the sender adapted
