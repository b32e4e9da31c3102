"""``--annotate``: a pcapng copy of each input with a comment on every evidence frame.

Wireshark shows an EPB's ``opt_comment`` as ``frame.comment``, so a person opens the copy and
filters ``frame.comment contains "labkit"``. One copy per input (in a folder: ``--annotate DIR``,
or ``annotated/`` when no name is given), so every frame keeps the number the findings cite
and the records keep their order; a single input may also be named ``OUT.pcapng``. A ``.pcap``
name is refused: the copy is pcapng (comments need it), and the name would lie about it. Written with struct (pcapng, draft-ietf-opsawg-pcapng
sections 4.1-4.3): one section per input file, one IDB per input interface with its timestamp
resolution, every record as an EPB with its exact raw timestamp, so frame numbers, times and
bytes are those of the input. With several inputs the sections follow each other, and frame
numbers in the copy continue across them; each comment names its file and original frame.

Goes through :func:`labkit.fileio.atomic_output`: never overwrites an input, never leaves a
half-written file.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from labkit.analyze.reader import Interface, open_capture
from labkit.analyze.report import Report
from labkit.errors import UsageError
from labkit.fileio import atomic_output, check_output_path

DEFAULT_FOLDER = "annotated"  #: where a bare ``--annotate`` writes its copies
_NOT_PCAPNG = (".pcap", ".cap", ".dmp", ".pcap.gz", ".cap.gz")
_CAPTURE_SUFFIXES = (".gz", ".pcapng", ".pcap", ".cap", ".dmp")

_BLOCK_SHB, _BLOCK_IDB, _BLOCK_EPB = 0x0A0D0D0A, 1, 6
_OPT_COMMENT, _OPT_END = 1, 0
_IF_TSRESOL, _IF_TSOFFSET = 9, 14


def _opt(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(btype: int, body: bytes) -> bytes:
    total = len(body) + 12
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def _shb(comment: str) -> bytes:
    opts = _opt(_OPT_COMMENT, comment.encode()) + _opt(_OPT_END, b"")
    return _block(_BLOCK_SHB, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + opts)


def _tsresol(divisor: float) -> int:
    """The if_tsresol byte for a divisor: 10^-n, else 2^-n (bit 7 set), n <= 127.

    Compared as floats, the way the reader computed the divisor from the byte, so any byte
    a file carried (up to 10^-127) is written back as it was.
    """
    n = round(math.log10(divisor))
    if 0 <= n <= 0x7F and float(10**n) == divisor:
        return n
    return 0x80 | min(max(round(math.log2(divisor)), 0), 0x7F)


def _idb(iface: Interface) -> bytes:
    opts = _opt(_IF_TSRESOL, bytes([_tsresol(iface.ts_divisor)]))
    if iface.ts_offset:
        opts += _opt(_IF_TSOFFSET, struct.pack("<q", int(iface.ts_offset)))
    linktype = iface.linktype if iface.linktype >= 0 else 147  # USER0 for "not a packet"
    return _block(
        _BLOCK_IDB, struct.pack("<HHI", linktype, 0, iface.snaplen) + opts + _opt(_OPT_END, b"")
    )


def _epb(iface: int, ticks: int, data: bytes, origlen: int, comment: str | None) -> bytes:
    pad = b"\0" * (-len(data) % 4)
    opts = _opt(_OPT_COMMENT, comment.encode()) + _opt(_OPT_END, b"") if comment else b""
    return _block(
        _BLOCK_EPB,
        struct.pack(
            "<IIIII", iface, (ticks >> 32) & 0xFFFFFFFF, ticks & 0xFFFFFFFF, len(data), origlen
        )
        + data
        + pad
        + opts,
    )


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
    commented = 0
    with open_capture(path) as cap:
        chunks = cap.chunks()
        first = next(chunks, None)
        ifaces = list(cap.interfaces) or [Interface(-1, 0)]
        fh.write(_shb(f"labkit annotated copy of {os.path.basename(path)}"))
        written = 0
        for iface in ifaces:
            fh.write(_idb(iface))
        written = len(ifaces)
        for chunk in _chain(first, chunks):
            # pcapng inputs may declare interfaces mid-file: write their IDBs when they appear.
            while written < len(cap.interfaces):
                fh.write(_idb(cap.interfaces[written]))
                written += 1
            commented += _write_chunk(chunk, notes, fh, os.path.basename(path) if multi else None)
    return commented


_PADS = [b"\0" * k for k in range(4)]


def _write_chunk(chunk, notes: dict[int, list[str]], fh: BinaryIO, name: str | None) -> int:
    """Every record of ``chunk`` as an EPB. Headers and trailers of the whole chunk are built
    with numpy; the loop only appends slices (an EPB per packet through struct costs 7 us,
    this about 1 us). Evidence frames get their comment option."""
    n = len(chunk)
    caplen = chunk.caplen.astype(np.int64)
    padded = caplen + (-caplen % 4)
    iface = np.where(chunk.iface < 0, 0, chunk.iface)
    ticks = chunk.ticks.astype(np.int64)
    blen = 32 + padded
    hdr = np.empty((n, 7), "<u4")
    hdr[:, 0] = _BLOCK_EPB
    hdr[:, 1] = blen
    hdr[:, 2] = iface
    hdr[:, 3] = (ticks >> 32) & 0xFFFFFFFF
    hdr[:, 4] = ticks & 0xFFFFFFFF
    hdr[:, 5] = caplen
    hdr[:, 6] = chunk.origlen
    hdr_mv = memoryview(hdr.tobytes())
    trl_mv = memoryview(blen.astype("<u4").tobytes())
    buf = memoryview(chunk.buf)
    out = bytearray()
    add = out.extend
    commented = 0
    data, caps, pads = chunk.data.tolist(), caplen.tolist(), (padded - caplen).tolist()
    for i in range(n):
        frame = chunk.frame0 + i
        text = notes.get(frame)
        d, c = data[i], caps[i]
        if text:
            comment = (f"[{name} frame {frame}] " if name else "") + " | ".join(text)
            add(
                _epb(
                    int(iface[i]),
                    int(ticks[i]),
                    bytes(buf[d : d + c]),
                    int(chunk.origlen[i]),
                    comment,
                )
            )
            commented += 1
            continue
        add(hdr_mv[28 * i : 28 * i + 28])
        add(buf[d : d + c])
        add(_PADS[pads[i]])
        add(trl_mv[4 * i : 4 * i + 4])
    fh.write(out)
    return commented


def _chain(first, rest: Iterable):
    if first is not None:
        yield first
        yield from rest
