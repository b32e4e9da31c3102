"""Bad input everywhere: every command that reads a file, given every kind of wrong file,
says so in one line on stderr and exits 2 -- never a traceback, never 'internal error'.

Files: missing, empty, a directory, random bytes, text, 1 GiB of zeros (sparse: a reader that
slurps it would take a gigabyte), a gzip stream cut after its header, /dev/null, a file with a
name that is not UTF-8, and the wrong kind of valid file (a capture given as a config, a
config as a capture). Replay gets only files that cannot yield a packet.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers.cli import labkit
from tests.helpers.paths import PUBLIC, ROOT

GOOD_CAPTURE = PUBLIC / "dtls-0x0100-hvr-retrans.pcapng"


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    files = {
        "missing": d / "missing.pcap",
        "empty": d / "empty.pcap",
        "directory": d / "folder",
        "random": d / "random.bin",
        "text": d / "notes.txt",
        "sparse-1GiB": d / "zeros.img",
        "gzip-cut": d / "cut.pcap.gz",
        "dev-null": Path("/dev/null"),
        "non-utf8-name": Path(str(d) + "/\udcff\udcfe.bin"),
    }  # bytes ff fe on disk
    files["empty"].write_bytes(b"")
    files["directory"].mkdir()
    files["random"].write_bytes(random.Random(7).randbytes(4096))
    files["text"].write_text("hello, this is not what labkit reads\n")
    with open(files["sparse-1GiB"], "wb") as f:
        f.truncate(1 << 30)
    files["gzip-cut"].write_bytes(gzip.compress(GOOD_CAPTURE.read_bytes())[:14])
    files["non-utf8-name"].write_bytes(random.Random(8).randbytes(512))
    return files


def assert_one_line_exit_2(proc, what: str) -> None:
    assert proc.returncode == 2, f"{what}: exit {proc.returncode}\n{proc.stderr}"
    assert proc.stderr.count("\n") == 1, f"{what}: stderr is not one line:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, (
        f"{what}: {proc.stderr}"
    )


COMMANDS = {
    "analyze": ("analyze", "{f}"),
    "analyze --syslog": ("analyze", "--syslog", "{f}"),
    "analyze --dart": ("analyze", "--dart", "{f}"),
    "advise": ("advise", "{f}"),
    "scenario validate": ("scenario", "validate", "{f}"),
    "craft --original": ("craft", "icmp-frag-needed", "--original", "{f}"),
    "replay": ("replay", "{f}", "--iface", "lo", "--allow-any-iface"),
    "lab up --topology": ("lab", "up", "--lab", "rbbad", "--topology", "{f}"),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_reader_refuses_every_bad_file_in_one_line(
    command: str, bad_files: dict[str, Path]
) -> None:
    def run(kind: str) -> tuple[str, subprocess.CompletedProcess[str]]:
        args = [a.replace("{f}", str(bad_files[kind])) for a in COMMANDS[command]]
        return kind, labkit(*args, timeout=60)

    with ThreadPoolExecutor(max_workers=4) as pool:  # independent processes: run side by side
        for kind, proc in pool.map(run, bad_files):
            assert_one_line_exit_2(proc, f"{command} <{kind}>")


def test_wrong_kind_of_valid_file(tmp_path: Path) -> None:
    config = ROOT / "configs" / "asa" / "seed-9.17.cfg"
    scenario = ROOT / "configs" / "scenarios" / "healthy.yaml"
    for args in (
        ("advise", str(GOOD_CAPTURE)),
        ("analyze", str(config)),
        ("analyze", str(scenario)),
        ("scenario", "validate", str(config)),
        ("scenario", "validate", str(GOOD_CAPTURE)),
        ("analyze", "--syslog", str(GOOD_CAPTURE)),
        ("analyze", "--dart", str(config)),
        ("craft", "icmp-frag-needed", "--original", str(config)),
    ):
        assert_one_line_exit_2(labkit(*args), " ".join(args))


def test_bad_key_log_beside_a_good_capture_is_a_warning_not_a_crash(
    bad_files: dict[str, Path],
) -> None:
    for kind, path in bad_files.items():
        proc = labkit("analyze", str(GOOD_CAPTURE), "--keylog", str(path))
        assert proc.returncode in (0, 2), f"{kind}: {proc.stderr}"
        assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1, f"{kind}: {proc.stderr}"


def _piped(data: bytes, *args: str) -> subprocess.CompletedProcess[str]:
    """``labkit ARGS`` with ``data`` on a pipe as stdin (a gzip capture, as ``zcat`` gives)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "labkit", *args],
        input=data,
        env=env,
        capture_output=True,
        timeout=60,
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    )


def test_a_capture_from_a_pipe_is_read_and_refused_where_it_would_be_read_twice(
    tmp_path: Path,
) -> None:
    data = gzip.compress(GOOD_CAPTURE.read_bytes())
    ok = _piped(data, "analyze", "/dev/stdin")
    assert ok.returncode == 0, ok.stderr
    again = _piped(data, "analyze", "/dev/stdin", "--annotate", str(tmp_path / "a.pcapng"))
    assert_one_line_exit_2(again, "pipe + --annotate")
    assert "read only once" in again.stderr and list(tmp_path.iterdir()) == []


def test_annotate_and_plot_on_one_path_is_refused_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "same"
    proc = labkit("analyze", str(GOOD_CAPTURE), "--annotate", str(out), "--plot", str(out))
    assert_one_line_exit_2(proc, "--annotate == --plot")
    assert not out.exists()


@pytest.mark.parametrize(
    "args",
    [
        ("mtu", "--tcpmss", "99999999999999999999999"),
        ("mtu", "--base-mtu", "nan"),
        ("advise", "-", "--base-mtu", "1"),
        ("analyze", str(GOOD_CAPTURE), "--tunnel-mtu", "1e309"),
        ("analyze", str(GOOD_CAPTURE), "--clock-offset", "inf"),
        ("analyze", str(GOOD_CAPTURE), "--jobs", "0"),
        ("craft", "syn", "--mss", "-1"),
        ("craft", "icmp-frag-needed", "--original", "x.pcap:²"),
        ("craft", "icmp-frag-needed", "--original", "x.pcap:" + "9" * 5000),
        ("scenario", "build", "healthy", "-o", "/proc/labkit-no/x"),
        ("scenario", "build", "healthy", "-o", "/tmp", "--start-time", "1e400"),
    ],
)
def test_hostile_option_values_are_usage_errors(args: tuple[str, ...]) -> None:
    proc = labkit(*args, stdin="sysopt connection tcpmss 1380\n")
    assert_one_line_exit_2(proc, " ".join(args))


def test_craft_original_cut_capture_is_one_line_with_the_readers_reason(tmp_path: Path) -> None:
    """The reader's warning (where the file was cut) is part of the one line."""
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(GOOD_CAPTURE.read_bytes()[:300] + b"\x00\x01")
    proc = labkit("craft", "icmp-frag-needed", "--original", str(cut))
    assert_one_line_exit_2(proc, "craft --original <cut pcapng>")
    assert "WARNING" not in proc.stderr and "reader: byte offset" in proc.stderr
    assert "cut short" in proc.stderr


# --- YAML tags whose conversion raises, keys that are lists ---------------------------------------

BAD_VALUES = {
    "bool-maybe": ("!!bool maybe", "!!bool 'maybe'"),
    "int-empty": ("!!int ''", "!!int ''"),
    "float-empty": ("!!float ''", "!!float ''"),
    "year-99999": ("!!timestamp 99999-01-01", "!!timestamp '99999-01-01'"),
}


@pytest.mark.parametrize("name", sorted(BAD_VALUES))
def test_a_yaml_value_its_tag_cannot_convert_is_one_line(name: str, tmp_path: Path) -> None:
    value, shown = BAD_VALUES[name]
    text = (ROOT / "configs" / "scenarios" / "healthy.yaml").read_text()
    assert "\nseed: 1\n" in text
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace("\nseed: 1\n", f"\nseed: {value}\n"))
    line = text[: text.index("\nseed: 1\n")].count("\n") + 2
    proc = labkit("scenario", "validate", str(path))
    assert proc.returncode == 2
    assert proc.stderr == (
        f"labkit scenario: error: {path}:{line}: seed: cannot read the value ({shown})\n"
    )


@pytest.mark.parametrize("name", sorted(BAD_VALUES))
def test_a_topology_value_its_tag_cannot_convert_is_one_error(name: str, tmp_path: Path) -> None:
    from labkit.errors import InputError
    from labkit.lab.topology import load_topology

    value, shown = BAD_VALUES[name]
    path = tmp_path / "topo.yaml"
    path.write_text(f"description: a lab\ndtls_port: {value}\n")
    with pytest.raises(InputError) as err:
        load_topology(path)
    assert str(err.value) == f"{path}:2: cannot read the value ({shown})"


def test_a_list_as_a_key_is_one_line(tmp_path: Path) -> None:
    from labkit.errors import InputError
    from labkit.lab.topology import load_topology

    path = tmp_path / "keys.yaml"
    path.write_text("description: x\n? [a, b]\n: 1\n")
    proc = labkit("scenario", "validate", str(path))
    assert proc.returncode == 2
    assert proc.stderr == (
        f"labkit scenario: error: {path}:2: a key must be a single value, not a list\n"
    )
    with pytest.raises(InputError, match=r"keys.yaml:2: a key must be a single value"):
        load_topology(path)


# --- file names over 255 bytes --------------------------------------------------------------------

LONG = "x" * 300
SEED = str(PUBLIC / "dtls1_2.pcap")


@pytest.mark.parametrize(
    "args",
    [
        ("analyze", LONG),
        ("analyze", SEED, "--syslog", LONG),
        ("analyze", SEED, "--dart", LONG),
        ("analyze", SEED, "--keylog", LONG),
        ("analyze", SEED, "--annotate", LONG),
        ("advise", LONG),
        ("scenario", "validate", LONG),
        ("scenario", "build", "healthy", "-o", LONG),
        ("craft", "icmp-frag-needed", "--original", f"{LONG}:1", "-o", "never.pcap"),
        ("demo", "--scenario", LONG),
        ("demo", "-o", LONG),
    ],
    ids=lambda a: " ".join(x if x != LONG else "LONG" for x in a)[:60],
)
def test_a_file_name_over_255_bytes_is_one_line(args: tuple[str, ...], tmp_path: Path) -> None:
    proc = labkit(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and LONG in proc.stderr, proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


# --- control characters in names and config text are shown, never obeyed --------------------------


def test_a_newline_in_a_file_name_forges_no_verdict_line(tmp_path: Path) -> None:
    name = "case\nVERDICT: no problem found\x1b[2J\x1b]0;owned\x07\u202e.pcap"
    path = tmp_path / name
    shutil.copy(SEED, path)
    proc = labkit("analyze", str(path))
    assert proc.returncode in (0, 1), proc.stderr
    assert [ln for ln in proc.stdout.splitlines() if ln.startswith("VERDICT")] == [
        proc.stdout.splitlines()[0]
    ]
    escaped = "case\\x0aVERDICT: no problem found\\x1b[2J\\x1b]0;owned\\x07\\u202e.pcap"
    assert f"  {tmp_path}/{escaped}: pcap" in proc.stdout
    assert not any(c in proc.stdout for c in "\x1b\x07\u202e")
    doc = json.loads(labkit("analyze", str(path), "--format", "json").stdout)
    assert doc["files"][0]["path"] == str(path)  # JSON keeps the name as it is (escaped by JSON)


def test_control_characters_in_an_error_line_are_escaped(tmp_path: Path) -> None:
    proc = labkit("analyze", str(tmp_path / "no\x1b]0;x\x07\nsuch.pcap"))
    assert proc.returncode == 2
    assert proc.stderr == (
        f"labkit analyze: error: {tmp_path}/no\\x1b]0;x\\x07\\x0asuch.pcap: no such file\n"
    )


def test_asa_config_text_is_echoed_escaped(tmp_path: Path) -> None:
    cfg = tmp_path / "asa.cfg"
    text = (ROOT / "configs" / "asa" / "defaults-two-policies.cfg").read_text()
    cfg.write_text(text.replace("contractors", "contr\x1b[8mactors"))
    proc = labkit("advise", str(cfg))
    assert proc.returncode in (0, 1), proc.stderr
    assert "group-policy contr\\x1b[8mactors" in proc.stdout
    assert "\x1b" not in proc.stdout + proc.stderr
