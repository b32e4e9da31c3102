"""``labkit analyze --jobs N`` and the progress line.

--jobs must change nothing but the wall time: the same report as one process. The progress
line appears only on a terminal, only after a second, and leaves no trace in the output.
"""

from __future__ import annotations

import io
import json

from labkit.analyze.progress import DELAY_S, Progress
from tests.helpers.cli import labkit


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_jobs_give_the_same_report_as_one_process(public_captures, tmp_path):
    files = [
        str(public_captures / n)
        for n in (
            "anyconnect-vpn.pcap",
            "dtls1_2.pcap",
            "tcp-mss-fast-retransmit.pcap",
            "dtls-0x0100-hvr-retrans.pcapng",
        )
    ]
    missing = tmp_path / "missing.pcap"  # a bad file stays a per-file error in both modes
    one = labkit("analyze", *files, str(missing), "--format", "json")
    many = labkit("analyze", *files, str(missing), "--format", "json", "--jobs", "3")
    assert one.returncode == many.returncode == 0, (one.stderr, many.stderr)
    assert json.loads(many.stdout) == json.loads(one.stdout)
    assert [f["path"] for f in json.loads(many.stdout)["files"]] == files + [str(missing)]
    # Not a terminal (a pipe): no progress line, only the missing file's warning.
    assert many.stderr.strip().splitlines() == [f"labkit analyze: warning: {missing}: no such file"]


def test_jobs_must_be_positive(public_captures):
    proc = labkit("analyze", str(public_captures / "dtls1_2.pcap"), "--jobs", "0")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "--jobs: expected at least 1" in proc.stderr


def test_progress_only_on_a_terminal_and_after_a_second():
    clock = FakeClock()
    pipe = io.StringIO()
    quiet = Progress(1_000_000, stream=pipe, clock=clock)
    clock.now += 5
    quiet.update(500_000, 1000)
    quiet.finish()
    assert pipe.getvalue() == ""  # not a terminal

    clock = FakeClock()
    tty = Terminal()
    bar = Progress(1_000_000, files=2, stream=tty, clock=clock)
    clock.now += DELAY_S / 2
    bar.update(100_000, 10)
    assert tty.getvalue() == ""  # a short run draws nothing
    clock.now += DELAY_S  # 1.5 s in, 250 kB done: 166.7 kB/s, 4.5 s to go
    bar.update(250_000, 300_000, files_done=1)
    line = tty.getvalue()
    assert line.startswith("\r[######") and "25%" in line and "250.0 KB/1.0 MB" in line
    assert "1/2 files" in line and "166.7 KB/s" in line and "0.20 M pkt/s" in line
    assert line.endswith("ETA 0:05")
    bar.update(260_000, 310_000)  # within 0.1 s of the last draw: not redrawn
    assert tty.getvalue() == line
    bar.finish()
    erased = tty.getvalue()[len(line) :]
    assert erased == "\r" + " " * (len(line) - 1) + "\r"


def test_progress_totals_come_from_file_sizes(tmp_path):
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    a.write_bytes(bytes(1000))
    b.write_bytes(bytes(234))
    p = Progress.for_files([str(a), str(b), str(tmp_path / "gone.pcap")], enabled=False)
    assert (p.total, p.files, p.enabled) == (1234, 3, False)
