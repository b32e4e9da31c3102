"""Never lose a file: writers refuse inputs, write atomically, and Ctrl-C / SIGTERM / a full
disk leave no half-written output. Each case runs the real ``labkit`` in a subprocess.

The interrupt tests are deterministic: the capture is large enough that ``--annotate`` writes
for about a second, and the signal is sent only once its temporary ``.part`` file exists.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.cli import default_signals, labkit
from tests.helpers.paths import PUBLIC, ROOT

SEED_PCAP = PUBLIC / "dtls-0x0100-hvr-retrans.pcapng"
PACKET = bytes.fromhex(
    "020000000002020000000001080045000028000140004006"
    + "0000c0a80001c0a80002"
    + "04d201bb00000001000000005002ffff00000000"
)


def big_capture(path: Path, records: int = 600_000) -> Path:
    """A pcap whose --annotate copy takes about a second to write."""
    rec = struct.pack("<IIII", 1_700_000_000, 0, len(PACKET), len(PACKET)) + PACKET
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for _ in range(records // 50_000):
            f.write(rec * 50_000)
    return path


def one_line_error(proc: subprocess.CompletedProcess[str] | subprocess.Popen, stderr: str) -> None:
    assert stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr


def _popen(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "labkit", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signals,
    )


def _wait_for_part(folder: Path, proc: subprocess.Popen, timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        parts = list(folder.glob(".*.part"))
        if parts:
            return parts[0]
        assert proc.poll() is None, "finished before its temporary file was seen"
        time.sleep(0.002)
    raise AssertionError("no .part file appeared")


@pytest.mark.parametrize(
    "sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_signal_mid_annotate_exits_cleanly_and_leaves_no_file(
    tmp_path: Path, sig, code, word
) -> None:
    cap = big_capture(tmp_path / "big.pcap")
    out = tmp_path / "out" / "annotated.pcapng"
    out.parent.mkdir()
    proc = _popen("analyze", str(cap), "--annotate", str(out), "--no-progress")
    try:
        part = _wait_for_part(out.parent, proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert err.strip().endswith(f"labkit analyze: {word}"), err
    assert "Traceback" not in err
    assert not part.exists() and list(out.parent.iterdir()) == []  # no .part, no output


def test_interrupted_overwrite_keeps_the_old_file(tmp_path: Path) -> None:
    """--force onto an existing file, interrupted: the old file is still there, unchanged."""
    cap = big_capture(tmp_path / "big.pcap")
    out = tmp_path / "out" / "annotated.pcapng"
    out.parent.mkdir()
    out.write_bytes(b"the engineer's earlier copy")
    proc = _popen("analyze", str(cap), "--annotate", str(out), "--force", "--no-progress")
    try:
        _wait_for_part(out.parent, proc)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]
    assert out.read_bytes() == b"the engineer's earlier copy"


def test_full_disk_is_one_line_and_leaves_no_file(tmp_path: Path) -> None:
    """A file size limit (RLIMIT_FSIZE: the write fails with EFBIG, as ENOSPC would)."""
    cap = big_capture(tmp_path / "big.pcap", records=100_000)
    out = tmp_path / "out.pcapng"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", "analyze", str(cap), "--annotate", str(out)],
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1].startswith(f"labkit analyze: error: {out}: cannot write it")
    one_line_error(proc, proc.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.pcap"]


# --- every writer refuses to overwrite an input ---------------------------------------------------


def _refuses(proc: subprocess.CompletedProcess[str], *unchanged: tuple[Path, bytes]) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "refusing to overwrite an input" in proc.stderr, proc.stderr
    one_line_error(proc, proc.stderr)
    for path, data in unchanged:
        assert path.read_bytes() == data


def test_annotate_refuses_its_input_by_any_name(tmp_path: Path) -> None:
    cap = tmp_path / "case.pcapng"
    shutil.copy(SEED_PCAP, cap)
    data = cap.read_bytes()
    (tmp_path / "link.pcapng").symlink_to(cap)
    os.link(cap, tmp_path / "hard.pcapng")
    for out in (
        cap,
        tmp_path / "link.pcapng",
        tmp_path / "hard.pcapng",
        tmp_path / "sub" / ".." / "case.pcapng",
    ):
        (tmp_path / "sub").mkdir(exist_ok=True)
        _refuses(labkit("analyze", str(cap), "--annotate", str(out), "--force"), (cap, data))


def test_plot_refuses_a_log_input(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    log = tmp_path / "asa.log"
    shutil.copy(ROOT / "tests" / "data" / "asa-seed.log", log)
    data = log.read_bytes()
    _refuses(
        labkit("analyze", str(SEED_PCAP), "--syslog", str(log), "--plot", str(log), "--force"),
        (log, data),
    )


def test_craft_refuses_its_original(tmp_path: Path) -> None:
    cap = tmp_path / "orig.pcap"
    proc = labkit("craft", "oversized", "-o", str(cap))
    assert proc.returncode == 0, proc.stderr
    data = cap.read_bytes()
    _refuses(
        labkit("craft", "icmp-frag-needed", "--original", str(cap), "-o", str(cap), "--force"),
        (cap, data),
    )


def test_scenario_build_refuses_to_overwrite_its_scenario(tmp_path: Path) -> None:
    """A scenario file saved under one of the names build writes, built into its folder."""
    src = tmp_path / "outside.pcapng"
    shutil.copy(ROOT / "configs" / "scenarios" / "healthy.yaml", src)
    data = src.read_bytes()
    _refuses(labkit("scenario", "build", str(src), "-o", str(tmp_path), "--force"), (src, data))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside.pcapng"]  # nothing half-built


def test_writers_refuse_existing_files_without_force(tmp_path: Path) -> None:
    out = tmp_path / "x.pcapng"
    out.write_bytes(b"keep me")
    for args in (
        ("analyze", str(SEED_PCAP), "--annotate", str(out)),
        ("craft", "syn", "-o", str(out)),
    ):
        proc = labkit(*args)
        assert proc.returncode == 2 and "already exists" in proc.stderr, proc.stderr
        one_line_error(proc, proc.stderr)
    assert out.read_bytes() == b"keep me"
