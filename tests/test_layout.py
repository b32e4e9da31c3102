"""The package's layout: one module per name, so a name in a traceback, an import or a review
says which module is meant.

A module's basename is unique under ``labkit/``, except ``__init__``/``__main__`` and the
command fronts in ``labkit/commands/``: each of those is named after the CLI command it
implements (the CLI maps a command name to its module), and so shares its name with the
module or package that does the work (``commands/mtu.py`` parses options for ``mtu.py``).
"""

from __future__ import annotations

import re
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


# --- one home per file format: captures are opened and written only by labkit.pcapio ----------

#: What a module of its own capture parser or writer contains: Scapy's capture I/O, the pcap
#: and pcapng magic numbers, a pcap file header packed by hand.
CAPTURE_IO = re.compile(
    r"\b(RawPcapReader|RawPcapNgReader|PcapReader|PcapNgReader|PcapWriter|PcapNgWriter"
    r"|wrpcap|rdpcap|wrpcapng)\b"
    r"|0x(a1b2c3d4|a1b23c4d|d4c3b2a1|0a0d0d0a|1a2b3c4d)\b"
    r"|\\xd4\\xc3\\xb2\\xa1|\\xa1\\xb2\\xc3\\xd4"
    r"|[\"'][<>=!]?IHHiIII[\"']",
    re.IGNORECASE,
)
#: Where captures are read and written: labkit's package, and the benchmarks' generators.
CAPTURE_CODE = (PACKAGE, ROOT / "benchmarks", ROOT / "tests" / "helpers")
#: Deliberate exceptions, each for a reason: the home itself; the benchmark's Scapy baseline
#: (what it measures is Scapy's own reader); the test oracle that writes captures byte by
#: byte, including broken ones, independently of the reader it judges.
CAPTURE_HOMES = {
    PACKAGE / "pcapio",
    ROOT / "benchmarks" / "run.py",
    ROOT / "tests" / "helpers" / "capfiles.py",
}


def own_capture_io(roots: tuple[Path, ...], exempt: set[Path]) -> dict[str, list[str]]:
    """Python files under ``roots`` (outside ``exempt``) -> the capture I/O they spell."""
    found: dict[str, list[str]] = {}
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if any(path == e or e in path.parents for e in exempt):
                continue
            hits = [m.group(0) for m in CAPTURE_IO.finditer(path.read_text())]
            if hits:
                found[path.relative_to(root.parent).as_posix()] = hits
    return found


def test_captures_are_read_and_written_only_by_pcapio() -> None:
    assert own_capture_io(CAPTURE_CODE, CAPTURE_HOMES) == {}


def test_own_capture_io_sees_a_parser_of_its_own(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text('f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4))\n')
    (tmp_path / "b.py").write_text("from scapy.utils import RawPcapReader\n")
    (tmp_path / "c.py").write_text('if head == b"\\xd4\\xc3\\xb2\\xa1": pass\n')
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "d.py").write_text("magic = 0x0A0D0D0A\n")
    found = {Path(k).name: v for k, v in own_capture_io((tmp_path,), {tmp_path / "home"}).items()}
    assert found == {
        "a.py": ['"<IHHiIII"', "0xA1B2C3D4"],
        "b.py": ["RawPcapReader"],
        "c.py": ["\\xd4\\xc3\\xb2\\xa1"],
    }
