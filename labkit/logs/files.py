"""The bytes of a log file as text lines, bounded: plain, gzip, from a pipe, or in a DART bundle.

The I/O edge for the sans-IO log parsers. Logs arrive as customers send them: ``asa.log.gz``
rotated by the syslog server, the DART bundle ``DARTBundle_0612_1432.zip`` as the client's
wizard saves it, or ``<(ssh asa 'show logging')``. So:

* the file is never sought: the first bytes are looked at with ``peek`` (a pipe cannot seek);
* gzip (by its magic, not its name) is decompressed as it is read;
* a zip is a DART bundle: its text members are offered one by one (:func:`bundle_members`),
  and the caller keeps the member that holds the VPN log;
* every line is cut at :data:`MAX_LINE_BYTES` (the rest of an over-long line is skipped,
  never held) and at most :data:`MAX_LOG_LINES` are read, so memory does not depend on the
  file and the time is linear in what is read.
"""

from __future__ import annotations

import gzip
import os
import sys
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Final

from labkit.errors import InputError

MAX_LOG_LINES: Final = 20_000_000  # a day of a busy ASA at debug level; more is not one case
#: Bytes of one log line kept: the parsers call longer lines malformed (syslog: 16 KiB), and a
#: file with no newline at all (a capture given as a log, a disk image) must not be read whole.
MAX_LINE_BYTES: Final = 64 << 10
#: Text members of a DART bundle looked at (a bundle has a few dozen files).
MAX_BUNDLE_MEMBERS: Final = 256
GZIP_MAGIC: Final = b"\x1f\x8b"
ZIP_MAGIC: Final = b"PK\x03\x04"
_TEXT_SUFFIXES: Final = (".txt", ".log")
#: What a damaged compressed log raises while it is read.
_DAMAGED = (gzip.BadGzipFile, EOFError, zlib.error, zipfile.BadZipFile)


def _open(path: str | os.PathLike[str]) -> IO[bytes]:
    if str(path) == "-":
        return sys.stdin.buffer
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a directory, expected a log file")
    try:
        return open(p, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise InputError(f"{p}: cannot read: {exc.strerror or exc}") from None


def _text_lines(f: IO[bytes], name: str, kind: str = "a text log") -> Iterator[str]:
    """Bounded text lines of a binary stream; InputError if it holds binary data."""
    head = f.peek(4096)[:4096] if hasattr(f, "peek") else b""
    if b"\0" in head:
        raise InputError(
            f"{name}: binary data, not {kind}",
            hint="give the exported text (DART: the bundle .zip or its AnyConnect .txt log)",
        )
    try:
        for _n in range(MAX_LOG_LINES):
            raw = f.readline(MAX_LINE_BYTES)
            if not raw:
                return
            if len(raw) == MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while (rest := f.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass  # the rest of an over-long line: dropped, never held in memory
            yield raw.decode("utf-8", errors="replace")
    except _DAMAGED as exc:
        raise InputError(f"{name}: damaged compressed data ({str(exc)[:80]})") from None


def lines(path: str | os.PathLike[str], kind: str = "a text log") -> Iterator[str]:
    """Text lines of a plain or gzip log (a pipe too); InputError if it cannot be opened,
    is binary, or is a zip (only a DART bundle is a zip: see :func:`bundle_members`)."""
    with _open(path) as f:
        magic = f.peek(4)[:4]  # type: ignore[attr-defined]  # open(..., "rb") is buffered
        if magic == ZIP_MAGIC:
            raise InputError(
                f"{path}: a zip archive, not {kind}",
                hint="a DART bundle .zip goes to --dart",
            )
        if magic[:2] == GZIP_MAGIC:
            with gzip.GzipFile(fileobj=f) as z:
                yield from _text_lines(z, str(path), kind)  # type: ignore[arg-type]
        else:
            yield from _text_lines(f, str(path), kind)


def keylog_lines(path: str | os.PathLike[str], limit: int) -> Iterator[str]:
    """Lines of an NSS key log, streamed; InputError once more than ``limit`` bytes came
    (a key log is a line per TLS session: megabytes, not gigabytes)."""
    total = 0
    for line in lines(path, "an NSS key log"):
        total += len(line)
        if total > limit:
            raise InputError(f"{path}: larger than {limit >> 20} MiB; not an NSS key log")
        yield line


def bundle_members(path: str | os.PathLike[str]) -> list[str] | None:
    """The text members of a DART bundle (largest first: the VPN event log is the bulk of a
    bundle), or None when ``path`` is no zip. InputError for a zip that cannot be read."""
    if str(path) == "-" or not Path(path).is_file():
        return None  # a pipe: what is peeked at would be lost; zip reading needs a file anyway
    with _open(path) as f:
        if f.peek(4)[:4] != ZIP_MAGIC:  # type: ignore[attr-defined]
            return None
    try:
        with zipfile.ZipFile(path) as z:
            infos = [
                i
                for i in z.infolist()
                if not i.is_dir() and i.filename.lower().endswith(_TEXT_SUFFIXES)
            ]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable zip ({str(exc)[:80]})") from None
    infos.sort(key=lambda i: -i.file_size)
    return [i.filename for i in infos[:MAX_BUNDLE_MEMBERS]]


def member_lines(path: str | os.PathLike[str], member: str) -> Iterator[str]:
    """Text lines of one member of a zip (its declared size is enforced by zipfile)."""
    try:
        with zipfile.ZipFile(path) as z, z.open(member) as f:
            yield from _text_lines(f, f"{path}:{member}")
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
        # NotImplementedError: a compression method zipfile lacks; RuntimeError: encrypted.
        raise InputError(f"{path}:{member}: cannot be read ({str(exc)[:80]})") from None
