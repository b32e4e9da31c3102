"""The package's layout: one module per name, so a name in a traceback, an import or a review
says which module is meant.

A module's basename is unique under ``labkit/``, except ``__init__``/``__main__`` and the
command fronts in ``labkit/commands/``: each of those is named after the CLI command it
implements (the CLI maps a command name to its module), and so shares its name with the
module or package that does the work (``commands/mtu.py`` parses options for ``mtu.py``).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from labkit.cli import COMMANDS
from tests.helpers.paths import ROOT

PACKAGE = ROOT / "labkit"
COMMAND_FRONTS = PACKAGE / "commands"
EXEMPT = {"__init__", "__main__"}


def shared_names(package: Path) -> dict[str, list[str]]:
    """Basenames held by more than one module under ``package`` -> their paths."""
    paths: dict[str, list[str]] = defaultdict(list)
    for path in sorted(package.rglob("*.py")):
        if path.stem in EXEMPT or path.parent == package / "commands":
            continue
        paths[path.stem].append(path.relative_to(package).as_posix())
    return {name: where for name, where in paths.items() if len(where) > 1}


def test_module_basenames_are_unique() -> None:
    assert shared_names(PACKAGE) == {}


def test_shared_names_sees_a_name_used_twice(tmp_path: Path) -> None:
    for module in ("a/x.py", "b/x.py", "b/y.py", "a/__init__.py", "b/__init__.py"):
        (tmp_path / module).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / module).write_text("")
    assert shared_names(tmp_path) == {"x": ["a/x.py", "b/x.py"]}


def test_command_fronts_are_named_after_their_command() -> None:
    # The exemption above holds only while every module in commands/ is the front of the CLI
    # command of the same name.
    fronts = {p.stem for p in COMMAND_FRONTS.glob("*.py") if p.stem not in EXEMPT}
    assert fronts == set(COMMANDS)
    assert all(c.module == f"labkit.commands.{name}" for name, c in COMMANDS.items())
