"""Conventions every command keeps: help for every option, --version and --debug as a user
would type them."""

from __future__ import annotations

import argparse
import importlib

import pytest
from conftest import labkit

from labkit import __version__
from labkit.cli import COMMANDS


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
