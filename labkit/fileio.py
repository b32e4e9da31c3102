"""Writing output files without ever losing a user's file.

Every writer in labkit goes through :func:`atomic_output`: it refuses an existing file
unless ``force`` is set, refuses anything but a regular file even with ``force`` (turning
``/dev/null`` or a FIFO into a regular file is never what was meant), refuses to overwrite one
of the run's inputs, checks that the folder is writable before any work is done, and writes to
a temporary ``.part`` file in the same folder. Only when the writer finished does the result
take the final name, and then *exclusively* unless ``force`` is set: a file that appeared
meanwhile (the user saved one, a second labkit wrote the same target) is kept and this run
fails with one line. Ctrl-C, SIGTERM, SIGHUP and the other signals that end a process by
default remove the ``.part``; one left by a ``kill -9`` carries its writer's process id and the
next run into that folder removes it once that process is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import signal
import stat
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import FrameType
from typing import BinaryIO

from labkit.errors import InputError, OutputError, Signalled

#: Write errors that are the machine's, not a bug: a full disk, a quota, a file size limit.
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: Signals whose default action ends the process without a core: each would leave the
#: ``.part`` behind. SIGINT and SIGTERM usually have handlers already (Python's, the CLI's);
#: only signals still at their default action get ours, and an ignored one (``nohup``) stays
#: ignored.
_ENDING_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGHUP", "SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGPIPE")
    if hasattr(signal, name)
)
#: ``.<target>.labkit-<pid>-<random>.part``: the pid says whether its writer still runs.
_PART_RE = re.compile(r"^\.(?P<target>.+)\.labkit-(?P<pid>\d{1,10})-[0-9a-f]{8}\.part$")
_RENAME_NOREPLACE = 1  # linux/fs.h


def _describe(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
    )
    for test, words in kinds:
        if test(mode):
            return words
    return None if stat.S_ISREG(mode) else "not a regular file"


def _existing(out: Path) -> os.stat_result | None:
    """``out``'s status (following links), None if nothing is there; one line on any other
    error (a name over 255 bytes, a folder that is a file, no permission)."""
    try:
        return os.stat(out)
    except (FileNotFoundError, NotADirectoryError):  # the folder check below says which
        if os.path.lexists(out):
            raise OutputError(f"{out}: is a symbolic link to nothing") from None
        return None
    except OSError as exc:
        raise OutputError(f"{out}: {exc.strerror or exc}") from None


def _refuse_special(out: Path, st: os.stat_result) -> None:
    what = _describe(st.st_mode)
    if what is not None:
        raise OutputError(
            f"{out}: is {what}; labkit writes only regular files, even with --force",
            hint="choose a file name",
        )


def check_output_path(
    path: str | os.PathLike[str],
    *,
    force: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """Validate an output path up front, so a long job does not fail at its end."""
    out = Path(path)
    st = _existing(out)
    if st is not None:
        for inp in inputs:
            with contextlib.suppress(OSError):
                if os.path.samefile(out, inp):
                    raise OutputError(
                        f"{out}: refusing to overwrite an input file",
                        hint="choose another output path",
                    )
        if stat.S_ISDIR(st.st_mode):
            raise OutputError(f"{out}: is a directory, expected a file path")
        _refuse_special(out, st)
        if not force:
            raise OutputError(f"{out}: already exists", hint="use --force to overwrite it")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{out}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{out}: folder {parent} is not writable")
    return out


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: alive, another user's
        return False
    return False


def remove_stale_parts(folder: Path) -> list[Path]:
    """Remove ``.part`` files of labkit's own naming whose writer is gone (a ``kill -9``,
    a power cut); a file of any other naming, or of a live writer, is never touched."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            m = _PART_RE.match(entry.name)
            if m is None or int(m["pid"]) == os.getpid() or not _pid_gone(int(m["pid"])):
                continue
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def _rename_noreplace(src: Path, dst: Path) -> bool:
    """``renameat2(RENAME_NOREPLACE)``: True if done, False where the kernel, libc or file
    system lacks it; FileExistsError if ``dst`` exists."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd = -100
    rc = fn(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), _RENAME_NOREPLACE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.EEXIST:
        raise FileExistsError(err, os.strerror(err), str(dst))
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def _publish(tmp: Path, out: Path, force: bool) -> None:
    """Give the finished ``tmp`` the name ``out``: exclusively unless ``force``; with
    ``force`` only over a regular file (checked again: it may have changed meanwhile)."""
    if force:
        st = _existing(out)
        if st is not None:
            _refuse_special(out, st)
        os.replace(tmp, out)
        return
    try:
        if not _rename_noreplace(tmp, out):
            os.link(tmp, out)  # atomic and exclusive on every POSIX file system with links
            tmp.unlink()
    except FileExistsError:
        raise OutputError(
            f"{out}: appeared while labkit was writing it; that file is kept and "
            "this run's output discarded",
            hint="choose another name, or use --force to replace it",
        ) from None


class _NotCreated(Exception):
    """The ``.part`` could not be created (its OSError in ``args[0]``)."""


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """While a ``.part`` exists, every signal that would end the process unwinds it instead
    (:class:`Signalled`), so the ``finally`` that removes the ``.part`` runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Signalled(signum)

    saved = {}
    for sig in _ENDING_SIGNALS:
        with contextlib.suppress(ValueError, OSError):  # ValueError: not the main thread
            if signal.getsignal(sig) is signal.SIG_DFL:
                saved[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str],
    *,
    force: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; give it ``path``'s name on success.

    The caller writes the temporary path with any library (Scapy's writers take a
    filename). On an exception or a signal, the temporary file is removed and ``path`` is
    untouched.
    """
    out = check_output_path(path, force=force, inputs=inputs)
    folder = out.parent if str(out.parent) else Path(".")
    remove_stale_parts(folder)
    tmp = folder / f".{out.name}.labkit-{os.getpid()}-{os.urandom(4).hex()}.part"
    with _signals_raise():
        # One try from the creation on: a signal handled between the creation and the
        # write (the handler runs at the next bytecode) must remove the .part too.
        try:
            try:
                # O_EXCL: never follows or reuses whatever might already carry the name.
                # 0666 less the umask: a capture or report is an ordinary file.
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except OSError as exc:
                raise _NotCreated(exc) from None
            yield tmp
            _publish(tmp, out, force)
        except _NotCreated as exc:  # nothing of ours to remove (whatever has the name stays)
            why = exc.args[0]
            raise OutputError(f"{out}: cannot write it: {why.strerror or why}") from None
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
