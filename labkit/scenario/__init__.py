"""Scenarios: a failure described in YAML, built into captures at each capture point.

``load`` and ``find`` read and validate a scenario without Scapy; building imports it:

    from labkit.scenario import find, load
    from labkit.scenario.build import build
    result = build(load(find("dtls-blocked-icmp-ok")), "out/seed")  # -> BuildResult

Modules: :mod:`~labkit.scenario.schema` (what a file states), :mod:`~labkit.scenario.loader`
(YAML with line-numbered errors), :mod:`~labkit.scenario.numbers` (the MTU model's numbers,
plus overrides), :mod:`~labkit.scenario.events` (what happens, Scapy-free),
:mod:`~labkit.scenario.build` (packets and files), :mod:`~labkit.scenario.expect` (an
``expect:`` block against an analyzer's findings).
"""

from __future__ import annotations

from pathlib import Path

from labkit.resources import scenarios_dir
from labkit.scenario.loader import load, parse
from labkit.scenario.schema import Scenario, ScenarioError

SUFFIXES = (".yaml", ".yml")


def shipped() -> list[Path]:
    """The scenario files that come with labkit, by name."""
    folder = scenarios_dir()
    return sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file())


def find(name_or_path: str | Path) -> Path:
    """A scenario file: an existing path, else the shipped scenario of that name."""
    path = Path(name_or_path)
    if path.exists() or path.suffix in SUFFIXES or len(path.parts) > 1:
        return path  # a path: load() says what is wrong with it
    for candidate in shipped():
        if candidate.stem == str(name_or_path):
            return candidate
    names = ", ".join(p.stem for p in shipped())
    raise ScenarioError(
        f"{name_or_path}: no such file and no shipped scenario of that name (shipped: {names})"
    )


__all__ = ["Scenario", "ScenarioError", "find", "load", "parse", "shipped"]
