"""``--annotate``: a pcapng copy of each input with a comment on every evidence frame.

Wireshark shows an EPB's ``opt_comment`` as ``frame.comment``, so a person opens the copy and
filters ``frame.comment contains "labkit"``. One copy per input (in a folder: ``--annotate DIR``,
or ``annotated/`` when no name is given), so every frame keeps the number the findings cite
and the records keep their order; a single input may also be named ``OUT.pcapng``. A ``.pcap``
name is refused: the copy is pcapng (comments need it), and the name would lie about it.
Written by :mod:`labkit.pcapio.writer`: one section per input file, one IDB per input interface with its timestamp
resolution, every record as an EPB with its exact raw timestamp, so frame numbers, times and
bytes are those of the input. With several inputs the sections follow each other, and frame
numbers in the copy continue across them; each comment names its file and original frame.

Goes through :func:`labkit.fileio.atomic_output`: never overwrites an input, never leaves a
half-written file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

from labkit.analyze.report import Report
from labkit.errors import UsageError
from labkit.fileio import atomic_output, check_output_path
from labkit.pcapio.reader import Interface, open_capture
from labkit.pcapio.writer import PcapngFileWriter

DEFAULT_FOLDER = "annotated"  #: where a bare ``--annotate`` writes its copies
_NOT_PCAPNG = (".pcap", ".cap", ".dmp", ".pcap.gz", ".cap.gz")
_CAPTURE_SUFFIXES = (".gz", ".pcapng", ".pcap", ".cap", ".dmp")

#: The link type of an interface that declares none (a pcapng section without an IDB whose
#: records are copied anyway): USER0, private use, which no dissector claims.
_NO_LINKTYPE = 147


def comments_by_file(report: Report) -> dict[str, dict[int, list[str]]]:
    """file -> frame -> comments, one per finding the frame is evidence for."""
    out: dict[str, dict[int, list[str]]] = {}
    for f in report.findings:
        for e in f.evidence:
            out.setdefault(e.file, {}).setdefault(e.frame, []).append(
                f"labkit {f.severity} {f.id}: {f.summary}"
            )
    return out


def write_annotated(
    report: Report,
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    force: bool = False,
) -> int:
    """Write the annotated copy; return how many frames got a comment."""
    notes = comments_by_file(report)
    commented = 0
    with atomic_output(out, force=force, inputs=paths) as tmp, open(tmp, "wb") as fh:
        for p in paths:
            label = str(p)
            rep = next((r for r in report.files if r.path == label), None)
            if rep is None or not rep.analyzable:
                continue
            commented += _copy(label, notes.get(label, {}), fh, multi=len(paths) > 1)
    return commented


def write_stream(report: Report, path: str, fh: BinaryIO) -> int:
    """Write the annotated copy of one capture to an open stream (``--annotate -``)."""
    return _copy(path, comments_by_file(report).get(path, {}), fh, multi=False)


def targets(out: str, inputs: Sequence[str]) -> list[tuple[str, Path]]:
    """(input, copy) pairs for ``--annotate OUT``: a ``.pcapng`` file for one input, else one
    ``NAME.annotated.pcapng`` per input in the folder ``OUT``. Raises for a name that says pcap,
    and for one file name given several inputs (their frame numbers would run on across them)."""
    lower = out.lower()
    if lower.endswith(_NOT_PCAPNG):
        check_output_path(out, force=True, inputs=inputs)  # an input: say that first
        raise UsageError(
            f"--annotate {out}: the annotated copy is pcapng (pcap has no frame comments), "
            "but the name says pcap",
            hint="name it .pcapng, or give a folder",
        )
    if lower.endswith(".pcapng"):
        if len(inputs) > 1:
            raise UsageError(
                f"--annotate {out}: one file for {len(inputs)} captures would renumber their "
                "frames",
                hint="give a folder: --annotate DIR writes one copy per capture",
            )
        return [(inputs[0], Path(out))]
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise UsageError(
            f"--annotate {out}: not a folder, and not a .pcapng name",
            hint="give a folder or OUT.pcapng",
        )
    pairs: list[tuple[str, Path]] = []
    taken: set[str] = set()
    for path in inputs:
        stem = os.path.basename(path)
        while stem.lower().endswith(_CAPTURE_SUFFIXES):
            stem = stem[: stem.rfind(".")]
        name, n = f"{stem}.annotated.pcapng", 1
        while name in taken:  # two inputs of one name from different folders
            n += 1
            name = f"{stem}-{n}.annotated.pcapng"
        taken.add(name)
        pairs.append((path, folder / name))
    return pairs


def check_targets(pairs: Sequence[tuple[str, Path]], *, force: bool, inputs: Sequence[str]) -> None:
    """Refuse, before any work, a copy that would overwrite a file or an input; make the
    folder (its parent must exist)."""
    for _src, out in pairs:
        if not out.parent.exists() and out.parent.parent.is_dir():
            out.parent.mkdir()
        check_output_path(out, force=force, inputs=inputs)


def write_each(
    report: Report, pairs: Sequence[tuple[str, Path]], *, force: bool = False
) -> list[tuple[Path, int]]:
    """Write one annotated copy per analyzable input; (copy, commented frames) for each."""
    done = []
    for src, out in pairs:
        rep = next((r for r in report.files if r.path == src), None)
        if rep is None or not rep.analyzable:
            continue
        done.append((out, write_annotated(report, [src], out, force=force)))
    return done


def _copy(path: str, notes: dict[int, list[str]], fh: BinaryIO, multi: bool) -> int:
    name = os.path.basename(path)
    comments = {
        frame: (f"[{name} frame {frame}] " if multi else "") + " | ".join(text)
        for frame, text in notes.items()
    }
    commented = 0
    with open_capture(path) as cap:
        chunks = cap.chunks()
        first = next(chunks, None)
        out = PcapngFileWriter(fh, comment=f"labkit annotated copy of {name}")
        for iface in list(cap.interfaces) or [Interface(-1, 0)]:
            _declare(out, iface)
        for chunk in _chain(first, chunks):
            # pcapng inputs may declare interfaces mid-file: write their IDBs when they appear.
            while out.interfaces < len(cap.interfaces):
                _declare(out, cap.interfaces[out.interfaces])
            commented += out.chunk(chunk, comments)
    return commented


def _declare(out: PcapngFileWriter, iface: Interface) -> None:
    """The input's interface, its timestamp resolution and offset kept: raw ticks copy over."""
    out.interface(
        iface.linktype if iface.linktype >= 0 else _NO_LINKTYPE,
        snaplen=iface.snaplen,
        divisor=iface.ts_divisor,
        offset=iface.ts_offset,
    )


def _chain(first, rest: Iterable):
    if first is not None:
        yield first
        yield from rest
