"""Writing output files without ever losing a user's file.

Every writer in labkit goes through :func:`atomic_output`: it refuses an existing file
unless ``force`` is set, refuses to overwrite one of the run's inputs even with
``force``, checks that the folder is writable before any work is done, writes to a
temporary file in the same folder and renames it into place only when the writer
finished. Ctrl-C or an error leaves no half-written file behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from labkit.errors import InputError, OutputError

#: Write errors that are the machine's, not a bug: a full disk, a quota, a file size limit.
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def check_output_path(
    path: str | os.PathLike[str],
    *,
    force: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """Validate an output path up front, so a long job does not fail at its end."""
    out = Path(path)
    for inp in inputs:
        with contextlib.suppress(OSError):
            if out.exists() and os.path.samefile(out, inp):
                raise OutputError(
                    f"{out}: refusing to overwrite an input file", hint="choose another output path"
                )
    if out.is_dir():
        raise OutputError(f"{out}: is a directory, expected a file path")
    if out.exists() and not force:
        raise OutputError(f"{out}: already exists", hint="use --force to overwrite it")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{out}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{out}: folder {parent} is not writable")
    return out


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str],
    *,
    force: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The caller writes the temporary path with any library (Scapy's writers take a
    filename). On an exception, KeyboardInterrupt included, the temporary file is removed
    and ``path`` is untouched.
    """
    out = check_output_path(path, force=force, inputs=inputs)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{out.name}.", suffix=".part", dir=out.parent if str(out.parent) else "."
    )
    tmp = Path(tmp_name)
    try:  # from the moment the file exists: a signal during the set-up must remove it too
        os.close(fd)
        # mkstemp creates 0600; a capture or report is an ordinary file: 0666 less the umask.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        yield tmp
        os.replace(tmp, out)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno in _NO_ROOM:
            raise OutputError(
                f"{out}: cannot write it: {exc.strerror}",
                hint="free some space (or raise the file size limit) and run again",
            ) from None
        raise


def read_input(path: str | os.PathLike[str], limit: int, kind: str) -> bytes:
    """The bytes of a small input file (a config, key log, topology; ``-`` is stdin).

    Never reads more than ``limit`` + 1 bytes, so a huge or endless file is refused without
    being read whole; every failure is one :class:`InputError` line naming ``kind``.
    """
    size = f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit >> 10} KiB"
    try:
        if str(path) == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(limit + 1)
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected {kind}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise InputError(f"{path}: larger than {size}; not {kind}")
    return data


STDOUT = "-"  #: an output named ``-`` is standard output, for outputs that are a stream


def is_stdout(path: str | os.PathLike[str] | None) -> bool:
    return path is not None and str(path) == STDOUT


def binary_stdout(kind: str) -> BinaryIO:
    """Standard output for ``kind`` bytes (a capture, a picture); refused on a terminal, where
    they would only garble the screen: pipe or redirect them instead."""
    if sys.stdout.isatty():
        raise OutputError(
            f"refusing to write {kind} to a terminal", hint="redirect it (> FILE) or pipe it"
        )
    return sys.stdout.buffer
