"""Never lose a file: writers refuse inputs, write atomically, and Ctrl-C / SIGTERM / a full
disk leave no half-written output. Each case runs the real ``labkit`` in a subprocess.

The interrupt tests are deterministic: the capture is large enough that ``--annotate`` writes
for about a second, and the signal is sent only once its temporary ``.part`` file exists.
"""

from __future__ import annotations

import contextlib
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

from tests.helpers.cli import labkit, labkit_popen
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
    proc = labkit_popen("analyze", str(cap), "--annotate", str(out), "--no-progress")
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
    proc = labkit_popen("analyze", str(cap), "--annotate", str(out), "--force", "--no-progress")
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
    pytest.importorskip("PIL")
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


# --- the final name is taken exclusively; only regular files are ever replaced --------------------


def _annotate_until_part(cap: Path, out: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    """An ``--annotate`` run stopped (SIGSTOP) while its ``.part`` exists, so that what the
    test does next (a signal, a file saved meanwhile) lands during the write however loaded
    the machine is: a writer that finished between the poll and the stop is run again (the
    write takes a second; at most a few tries)."""
    for _ in range(5):
        proc = labkit_popen("analyze", str(cap), "--annotate", str(out), "--no-progress", *extra)
        part = _wait_for_part(out.parent, proc)
        proc.send_signal(signal.SIGSTOP)
        if part.exists():
            return proc, part
        proc.send_signal(signal.SIGCONT)
        _finish(proc)
        for left in out.parent.iterdir():
            left.unlink()
        if "--force" in extra:
            out.write_bytes(b"old")
    raise AssertionError("the write always finished before it could be stopped")


def _finish(proc: subprocess.Popen) -> str:
    """Let a stopped run go on (SIGCONT; any signal sent meanwhile is delivered first) and
    collect its standard error."""
    proc.send_signal(signal.SIGCONT)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return err


def test_a_file_saved_during_the_write_is_kept(tmp_path: Path) -> None:
    """The user saves the target while --annotate runs: their file wins, labkit says so."""
    cap = big_capture(tmp_path / "big.pcap")
    out = tmp_path / "out" / "annotated.pcapng"
    out.parent.mkdir()
    proc, _ = _annotate_until_part(cap, out)
    out.write_bytes(b"saved by the engineer meanwhile")
    err = _finish(proc)
    assert proc.returncode == 2, err
    assert f"{out}: appeared while labkit was writing it" in err, err
    one_line_error(proc, err)
    assert out.read_bytes() == b"saved by the engineer meanwhile"
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]


def test_force_refuses_special_files(tmp_path: Path) -> None:
    """A FIFO, a directory, a socket and a device (through a link to /dev/null) stay what
    they are even with --force."""
    import socket

    fifo = tmp_path / "fifo.pcapng"
    os.mkfifo(fifo)
    folder = tmp_path / "dir.pcapng"
    folder.mkdir()
    sock_path = tmp_path / "sock.pcapng"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    null_link = tmp_path / "null.pcapng"
    null_link.symlink_to("/dev/null")
    try:
        for target, what in (
            (fifo, "a FIFO"),
            (folder, "a directory"),
            (sock_path, "a socket"),
            (null_link, "a character device"),
        ):
            proc = labkit("analyze", str(SEED_PCAP), "--annotate", str(target), "--force")
            assert proc.returncode == 2, proc.stderr
            assert f"{target}: is {what}" in proc.stderr, proc.stderr
            one_line_error(proc, proc.stderr)
    finally:
        sock.close()
    assert stat_kind(fifo) == "fifo" and stat_kind(sock_path) == "socket"
    assert folder.is_dir() and os.readlink(null_link) == "/dev/null"
    assert stat_kind(Path("/dev/null")) == "char"
    assert not list(tmp_path.glob(".*.part"))


def stat_kind(path: Path) -> str:
    import stat as st

    mode = os.stat(path).st_mode
    for name, test in (("fifo", st.S_ISFIFO), ("socket", st.S_ISSOCK), ("char", st.S_ISCHR)):
        if test(mode):
            return name
    return "other"


def test_force_refuses_a_fifo_that_replaced_the_target_meanwhile(tmp_path: Path) -> None:
    cap = big_capture(tmp_path / "big.pcap")
    out = tmp_path / "out" / "annotated.pcapng"
    out.parent.mkdir()
    out.write_bytes(b"old")
    proc, _ = _annotate_until_part(cap, out, "--force")
    out.unlink()
    os.mkfifo(out)
    err = _finish(proc)
    assert proc.returncode == 2, err
    assert "is a FIFO" in err, err
    assert stat_kind(out) == "fifo"
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]


@pytest.mark.parametrize(
    "sig", [signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM], ids=lambda s: s.name
)
def test_every_ending_signal_removes_the_part(tmp_path: Path, sig: signal.Signals) -> None:
    cap = big_capture(tmp_path / "big.pcap")
    out = tmp_path / "out" / "annotated.pcapng"
    out.parent.mkdir()
    proc, part = _annotate_until_part(cap, out)
    proc.send_signal(sig)
    err = _finish(proc)
    assert proc.returncode == 128 + sig, err
    assert err.strip().endswith(f"labkit analyze: stopped by {sig.name}"), err
    assert not part.exists() and list(out.parent.iterdir()) == []


def test_sigpipe_does_not_stop_the_write_or_leave_a_part(tmp_path: Path) -> None:
    """Python ignores SIGPIPE (a closed pipe is EPIPE instead): the write completes."""
    cap = big_capture(tmp_path / "big.pcap", records=200_000)
    out = tmp_path / "out" / "annotated.pcapng"
    out.parent.mkdir()
    proc, _ = _annotate_until_part(cap, out)
    proc.send_signal(signal.SIGPIPE)
    err = _finish(proc)
    assert proc.returncode in (0, 1), err
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_a_part_left_by_kill_9_is_removed_by_the_next_run(tmp_path: Path) -> None:
    cap = big_capture(tmp_path / "big.pcap")
    out = tmp_path / "out" / "annotated.pcapng"
    out.parent.mkdir()
    proc, part = _annotate_until_part(cap, out)
    proc.kill()
    proc.wait(timeout=60)
    assert part.exists()  # SIGKILL cannot be caught
    foreign = out.parent / ".notes.txt.part"  # not labkit's naming: never touched
    foreign.write_bytes(b"someone else's")
    proc = labkit("craft", "syn", "-o", str(out.parent / "syn.pcap"))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == [foreign.name, "syn.pcap"]


# --- --jobs: a signal to the parent ends the workers too -------------------------------------------


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_to_the_parent_of_jobs_ends_its_workers(tmp_path: Path, sig, code) -> None:
    """Two captures that never end (FIFOs held open): the parent waited for its workers to
    finish their files before it could exit. Now it exits and the workers are gone, which
    the FIFOs show: writing to them fails once no reader is left."""
    fifos = [tmp_path / "a.pcap", tmp_path / "b.pcap"]
    for f in fifos:
        os.mkfifo(f)
    proc = labkit_popen("analyze", *map(str, fifos), "--jobs", "2", "--no-progress")
    writers = []
    try:
        for f in fifos:  # each open returns once a worker opened the FIFO to read it
            writers.append(open(f, "wb", buffering=0))  # noqa: SIM115 - closed below
            writers[-1].write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)  # a hang detector: the old code never returned
        assert proc.returncode == code, err
        for w in writers:
            for _ in range(500):  # the kill is asynchronous: at most ~5 s
                try:
                    w.write(b"\0" * 16)
                except BrokenPipeError:
                    break
                time.sleep(0.01)
            else:
                raise AssertionError("a worker still reads its capture after the parent left")
    finally:
        if proc.poll() is None:
            proc.kill()
        for w in writers:
            with contextlib.suppress(OSError):
                w.close()
