"""Conventions every command keeps: help for every option, --version and --debug as a user
would type them, ``-`` for an output that is a stream."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys

import pytest

from labkit import __version__
from labkit.cli import COMMANDS
from tests.helpers.cli import labkit
from tests.helpers.paths import ROOT
from tests.helpers.tshark import requires_tshark, tshark_fields


def _actions(parser: argparse.ArgumentParser, prog: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{prog} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield prog, action


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_has_help(name):
    parser = argparse.ArgumentParser(prog=f"labkit {name}")
    importlib.import_module(COMMANDS[name].module).add_arguments(parser)
    missing = [
        f"{prog} {'/'.join(a.option_strings) or a.dest}"
        for prog, a in _actions(parser, f"labkit {name}")
        if not a.help
    ]
    assert missing == []


def test_top_level_help_names_version_and_debug():
    out = labkit("--help").stdout
    assert "--version" in out and "--debug" in out
    assert labkit("--version").stdout.strip() == f"labkit {__version__}"


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_before_or_after_the_command_shows_the_traceback(where):
    args = ["mtu", "--tls-cipher", "NOPE"]
    proc = labkit(*(["--debug", *args] if where == "before" else [*args, "--debug"]))
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "unknown cipher 'NOPE'" in proc.stderr
    plain = labkit(*args)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr


def test_debug_after_double_dash_belongs_to_the_command():
    proc = labkit("analyze", "--", "--debug")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--debug" in proc.stderr  # taken as a capture file name, which does not exist


CASE = ROOT / "pcaps" / "scenarios" / "dtls-blocked-icmp-ok"


def _binary(*args: str) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "labkit", *args], capture_output=True, env=env, timeout=120
    )


@requires_tshark
def test_dash_writes_a_stream_output_to_stdout(tmp_path):
    src = CASE / "outside.pcapng"
    proc = _binary("analyze", str(src), "--annotate", "-")
    assert proc.returncode == 1
    assert proc.stdout[:4] == b"\x0a\x0d\x0d\x0a"  # a pcapng section header
    assert proc.stderr.decode().startswith("VERDICT: PROBLEM")  # the report moved to stderr
    copy = tmp_path / "copy.pcapng"
    copy.write_bytes(proc.stdout)
    fields = ("frame.number", "frame.len", "frame.time_epoch")
    assert tshark_fields(copy, "frame", *fields) == tshark_fields(src, "frame", *fields)
    page = _binary("analyze", str(src), "--html", "-")
    assert page.stdout.startswith(b"<!DOCTYPE html>") and b"</html>" in page.stdout
    crafted = _binary("craft", "syn", "-o", "-")
    assert crafted.returncode == 0 and crafted.stdout[:4] == b"\xd4\xc3\xb2\xa1"  # pcap, LE
    pcap = tmp_path / "syn.pcap"
    pcap.write_bytes(crafted.stdout)
    assert tshark_fields(pcap, "tcp.flags.syn == 1", "tcp.options.mss_val") == [["1378"]]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--annotate", "-", "--html", "-"], "both name standard output"),
        (["--html", "-", "--format", "json"], "both want standard output"),
        (["--plot", "-"], "not a stream"),
    ],
)
def test_two_claims_on_stdout_are_refused(args, message):
    proc = labkit("analyze", str(CASE / "outside.pcapng"), *args)
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""


def test_annotate_dash_needs_one_capture():
    proc = labkit("analyze", *sorted(str(p) for p in CASE.iterdir()), "--annotate", "-")
    assert proc.returncode == 2 and "3 captures given" in proc.stderr
