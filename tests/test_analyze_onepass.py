"""One read per capture: every consumer of packets shares the analyzer's pass, so a capture
can come from a pipe, and ``--follow`` reports while the capture is still being written."""

from __future__ import annotations

import builtins
import gzip
import io
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from labkit.cli import main

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "pcaps" / "real" / "dtls-blocked-icmp-allowed"
SCENARIO = ROOT / "pcaps" / "scenarios" / "dtls-blocked-icmp-ok"
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
LABKIT = [sys.executable, "-m", "labkit", "analyze"]
DEADLINE_S = 60


class _CountingFile(io.FileIO):
    """A real file whose bytes read are counted, per path."""

    counts: Counter

    def readinto(self, b):  # type: ignore[no-untyped-def]
        n = super().readinto(b)
        self.counts[str(self.name)] += n or 0
        return n


def test_every_capture_is_opened_and_read_once_whatever_the_run_collects(
    monkeypatch, tmp_path, capsys
):
    """Detectors, DF evidence (--tunnel-mtu makes the inside and tunnel captures cite
    oversized frames), the key-log decryption and the plot: one open, each byte read once."""
    captures = sorted(str(p) for p in REAL.glob("*.pcap"))
    opens: Counter = Counter()
    read: Counter = Counter()
    _CountingFile.counts = read
    real_open = builtins.open

    def counting_open(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(file) in captures:
            assert "r" in mode and "b" in mode
            opens[str(file)] += 1
            return io.BufferedReader(_CountingFile(file, "rb"))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    png = tmp_path / "case.png"
    code = main(
        [
            "analyze",
            *captures,
            "--keylog",
            str(REAL / "sslkeylog.txt"),
            "--plot",
            str(png),
            "--tunnel-mtu",
            "1300",
            "--format",
            "json",
            "--no-progress",
        ]
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and png.stat().st_size > 0
    ids = {f["id"] for f in doc["findings"]}
    assert {"oversized-df", "cstp-connect", "mtu-mismatch"} <= ids
    cited = {e["file"] for f in doc["findings"] if f["id"] == "oversized-df" for e in f["evidence"]}
    assert len(cited) >= 2  # evidence frames from captures other than the outside one
    assert opens == Counter({c: 1 for c in captures})
    assert read == Counter({c: os.path.getsize(c) for c in captures})


def _json(cmd: str | list[str], stdin: bytes | None = None) -> dict:
    proc = subprocess.run(
        cmd,
        shell=isinstance(cmd, str),
        input=stdin,
        capture_output=True,
        env=ENV,
        cwd=ROOT,
        timeout=DEADLINE_S,
    )
    assert proc.returncode in (0, 1), proc.stderr.decode()
    return json.loads(proc.stdout)


def _as_stdin(doc: dict, path: str) -> dict:
    """The file's report as it reads when the same bytes come from standard input."""
    return json.loads(json.dumps(doc).replace(json.dumps(path), '"-"'))


@pytest.mark.parametrize(
    "capture", [SCENARIO / "outside.pcapng", SCENARIO / "headend-inside.pcap", REAL / "inside.pcap"]
)
def test_a_capture_on_a_pipe_gives_the_report_of_the_file(capture):
    path = str(capture.relative_to(ROOT))
    from_file = _as_stdin(_json([*LABKIT, path, "--format", "json"]), path)
    assert _json(f"cat {path} | {' '.join(LABKIT)} - --format json") == from_file
    gz = gzip.compress(capture.read_bytes())
    piped_gz = _json([*LABKIT, "-", "--format", "json"], stdin=gz)
    assert piped_gz["files"][0]["format"].endswith(", gzip")
    piped_gz["files"][0]["format"] = from_file["files"][0]["format"]
    assert piped_gz == from_file


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
def test_tcpdump_writing_to_a_pipe_gives_the_findings_of_the_file():
    """tcpdump rewrites the pcapng as pcap: the frames, hence the findings, stay the same."""
    path = str((SCENARIO / "outside.pcapng").relative_to(ROOT))
    from_file = _as_stdin(_json([*LABKIT, path, "--format", "json"]), path)
    piped = _json(f"tcpdump -r {path} -w - 2>/dev/null | {' '.join(LABKIT)} - --format json")
    assert piped["files"][0]["format"] == "pcap (us)"
    assert piped["findings"] == from_file["findings"] and piped["verdict"] == from_file["verdict"]


def test_key_log_and_plot_work_on_a_pipe(tmp_path):
    path = str((REAL / "outside.pcap").relative_to(ROOT))
    keys = ["--keylog", str(REAL / "sslkeylog.txt")]
    from_file = _as_stdin(_json([*LABKIT, path, *keys, "--format", "json"]), path)
    png = tmp_path / "p.png"
    piped = _json(f"cat {path} | {' '.join(LABKIT)} - {' '.join(keys)} --plot {png} --format json")
    assert "cstp-connect" in {f["id"] for f in piped["findings"]}
    assert piped["findings"] == from_file["findings"] and png.stat().st_size > 0


def _lines(stream) -> queue.Queue:  # type: ignore[no-untyped-def]
    """The lines of ``stream`` as a reader thread gets them (a bounded wait per line)."""
    q: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in stream:
            q.put(line.decode())
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return q


def _wait_for(q: queue.Queue, text: str) -> list[str]:
    seen = []
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        try:
            line = q.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"{text!r} never came: {seen}")


def _follow(capture: str) -> subprocess.Popen:
    """``labkit analyze --follow CAPTURE --format json``: live lines on stderr, the report on
    stdout; stdin is a pipe the test writes the capture into (for ``-``)."""
    return subprocess.Popen(
        [*LABKIT, "--follow", capture, "--format", "json"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
        cwd=ROOT,
    )


def test_follow_reports_a_finding_before_the_pipe_closes():
    """The capture arrives in 97-byte pieces (records cut anywhere); the DTLS finding is
    announced while the pipe is still open, and the final report is the file's."""
    capture = SCENARIO / "outside.pcapng"
    data = capture.read_bytes()
    path = str(capture.relative_to(ROOT))
    from_file = _as_stdin(_json([*LABKIT, path, "--format", "json"]), path)
    proc = _follow("-")
    try:
        live = _lines(proc.stderr)
        cut = len(data) * 3 // 4
        for i in range(0, cut, 97):
            proc.stdin.write(data[i : min(i + 97, cut)])  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
        _wait_for(live, "live: [error] dtls-unanswered")
        proc.stdin.write(data[cut:])  # type: ignore[union-attr]
        proc.stdin.close()  # type: ignore[union-attr]
        out = proc.stdout.read()  # type: ignore[union-attr]
        assert proc.wait(timeout=DEADLINE_S) == 1
    finally:
        proc.kill()
    assert json.loads(out) == from_file


def test_follow_judges_the_last_burst_and_holds_back_a_premature_verdict(tmp_path):
    """The ICMP 3/4 arrives, the writer pauses, then the sender's smaller segments arrive and
    the writer falls silent with the pipe still open. Cut after the ICMP, the capture reads as
    oversized packets and an ICMP whose outcome is open; whole, as path-MTU discovery working.
    The live lines must give the latter before the pipe closes (the last burst is judged
    although no record follows it) and never the former (it did not hold: the sender
    adapted)."""
    from scapy.layers.inet import ICMP
    from scapy.utils import wrpcap

    from tests.helpers import synth

    pkts = synth.inside_icmp_ok()
    last_icmp = max(i for i, p in enumerate(pkts) if p.haslayer(ICMP))
    capture = tmp_path / "icmp-ok.pcap"
    wrpcap(str(capture), pkts)
    data = capture.read_bytes()
    cut = 24 + sum(16 + len(p) for p in pkts[: last_icmp + 1])  # pcap header, then records
    premature = tmp_path / "cut.pcap"
    premature.write_bytes(data[:cut])
    early = {
        (f["id"], f["severity"])
        for f in _json([*LABKIT, str(premature), "--format", "json"])["findings"]
    }
    assert {("oversized-df", "warning"), ("icmp-frag-needed", "warning")} <= early

    proc = _follow("-")
    try:
        live = _lines(proc.stderr)
        proc.stdin.write(data[:cut])  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        time.sleep(0.4)  # silent long enough to be judged, shorter than a sender's grace
        proc.stdin.write(data[cut:])  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        seen = _wait_for(live, "live: [info] pmtud-working")
        assert proc.poll() is None  # announced while the pipe is open
        proc.stdin.close()  # type: ignore[union-attr]
        out = proc.stdout.read()  # type: ignore[union-attr]
        assert proc.wait(timeout=DEADLINE_S) == 0
    finally:
        proc.kill()
    while (line := live.get(timeout=DEADLINE_S)) is not None:
        seen.append(line)
    held_back = ("mtu-mismatch", "oversized-df", "[warning] icmp-frag-needed")
    assert not [s for s in seen if any(h in s for h in held_back)], seen
    assert "[info] icmp-frag-needed" in "".join(seen)
    assert {f["id"] for f in json.loads(out)["findings"]} >= {"pmtud-working", "icmp-frag-needed"}


def test_follow_watches_a_growing_file_until_interrupted(tmp_path):
    """tcpdump -w FILE on one side, labkit --follow FILE on the other: findings while the file
    grows; Ctrl-C ends the watch with the report of everything written."""
    capture = SCENARIO / "outside.pcapng"
    data = capture.read_bytes()
    growing = tmp_path / "live.pcapng"
    cut = len(data) * 3 // 4
    growing.write_bytes(data[:cut])
    proc = _follow(str(growing))
    try:
        live = _lines(proc.stderr)
        _wait_for(live, "live: [error] dtls-unanswered")
        with open(growing, "ab") as f:
            f.write(data[cut:])
        time.sleep(1.0)  # a few polls: the reader picks up the rest before the interrupt
        proc.send_signal(signal.SIGINT)
        out = proc.stdout.read()  # type: ignore[union-attr]
        assert proc.wait(timeout=DEADLINE_S) == 1
    finally:
        proc.kill()
    assert json.loads(out) == _json([*LABKIT, str(growing), "--format", "json"])


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_df_evidence_kept_during_the_pass_is_what_tshark_selects(tmp_path):
    """A capture of several read buffers with thousands of (pair, size) keys: the first frames
    the size detector kept during the pass are exactly the ones each finding's filter
    selects in tshark (keys filling up across chunks, head-ends left out)."""
    from benchmarks.generate import main as generate
    from labkit.analyze import AnalyzeOptions, analyze
    from labkit.pcapio.reader import open_capture

    capture = tmp_path / "mixed.pcap"
    assert generate(["-o", str(capture), "--packets", "25000"]) == 0
    with open_capture(capture) as cap:  # the premise: more than one chunk
        assert sum(1 for _ in cap.chunks()) > 1
    report = analyze([capture], AnalyzeOptions(tunnel_mtu=1300))
    checked = 0
    for f in report.findings:
        if f.id not in ("oversized-df", "mtu-mismatch") or not f.wireshark_filter:
            continue
        proc = subprocess.run(
            ["tshark", "-n", "-r", str(capture), "-Y", f.wireshark_filter, "-T", "fields"]
            + ["-e", "frame.number"],
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,
        )
        assert proc.returncode == 0, proc.stderr
        assert [int(x) for x in proc.stdout.split()] == [e.frame for e in f.evidence], f.id
        checked += 1
    assert checked >= 2
