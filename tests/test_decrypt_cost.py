"""`--keylog` costs at most what the session is long: decrypting a session twice as long is at
most twice the work, and the key log is read a line at a time.

Work is counted, never timed: the Python lines, calls and returns the analyzer's pass with
the key log executes (``sys.settrace``), the same count on any machine. The session is
``benchmarks/cstp_session.py``'s: TLS 1.2 AES128-SHA between OpenSSL ends on memory BIOs, a
CONNECT, then a download of 1347-byte packets through the tunnel, with its key log.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from labkit.analyze import Collect, analyze
from labkit.analyze.decrypt import DecryptReport
from labkit.analyze.sources import read_keylog
from tests.helpers.memory import traced_memory


def _traced_work(run: Callable[[], Any]) -> tuple[int, Any]:
    """Python trace events (lines, calls, returns) ``run`` executes, and its result."""
    count = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Callable[..., Any]:
        nonlocal count
        count += 1
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        result = run()
    finally:
        sys.settrace(previous)
    return count, result


def _session(tmp_path: Path, size: int) -> tuple[Path, Path]:
    from benchmarks.cstp_session import generate

    capture, keys = tmp_path / f"cstp-{size}.pcap", tmp_path / f"cstp-{size}.keylog"
    generate(capture, keys, size)
    return capture, keys


def _decrypt(capture: Path, keys: Path) -> tuple[int, DecryptReport]:
    keylog = read_keylog(str(keys))
    work, report = _traced_work(lambda: analyze([str(capture)], collect=Collect(keylog=keylog)))
    ((_path, decrypted),) = report.decrypted
    return work, decrypted


def test_a_session_twice_as_long_is_at_most_twice_the_work(tmp_path: Path) -> None:
    _decrypt(*_session(tmp_path, 32_000))  # Scapy's TLS layer imported outside the count
    work, records = [], []
    for size in (256_000, 512_000):
        w, report = _decrypt(*_session(tmp_path, size))
        (tunnel,) = report.tunnels
        assert tunnel.head_end("X-CSTP-MTU") == 1347 and tunnel.to_client.largest_data == 1347
        assert report.stopped is None
        work.append(w)
        records.append(tunnel.records)
    # The session is twice as long: twice the records decrypted and authenticated ...
    assert 1.9 < records[1] / records[0] < 2.1, records
    # ... for at most twice the work, never more per record. Less: the pass has a fixed part,
    # and a running tunnel's records are counted a chunk at a time, not one by one in Python.
    assert work[1] / work[0] < 2.2, work
    per_record = [w / r for w, r in zip(work, records)]
    assert per_record[1] < 1.1 * per_record[0], per_record


def _keylog(path: Path, sessions: int) -> int:
    """A key log of ``sessions`` TLS 1.2 sessions with the comments a browser writes between
    them: its size in bytes."""
    with open(path, "w") as f:
        for _ in range(sessions):
            f.write(f"# session\nCLIENT_RANDOM {os.urandom(32).hex()} {os.urandom(48).hex()}\n")
    return path.stat().st_size


def test_the_key_log_is_read_a_line_at_a_time(tmp_path: Path) -> None:
    """What reading needs besides the secrets it keeps does not grow with the file: no list
    of its lines, no copy of its text. The secrets themselves are a fixed cost per entry."""
    transient, per_entry = [], []
    _keylog(tmp_path / "warm.keylog", 1)
    read_keylog(str(tmp_path / "warm.keylog"))  # modules imported outside the measure
    for n in (20_000, 80_000):
        path = tmp_path / f"keys-{n}.log"
        size = _keylog(path, n)
        with traced_memory() as mem:
            keylog = read_keylog(str(path))
        assert len(keylog.secrets["CLIENT_RANDOM"]) == n and keylog.malformed == 0
        transient.append(mem.peak - mem.held)
        per_entry.append(mem.held / n)
        assert mem.peak - mem.held < size / 20, (mem.peak, mem.held, size)
    assert transient[1] < 1.5 * transient[0] + (64 << 10), transient
    assert per_entry[1] < 1.2 * per_entry[0], per_entry
