"""Exit codes and the errors that the CLI turns into them.

One home for both (STYLE.md rule 1). Internals raise :class:`LabkitError` with a
message that says what went wrong, where, and what to try; only :func:`labkit.cli.main`
catches it, prints one line on stderr and exits with ``code``.
"""

from __future__ import annotations

import signal

EXIT_OK = 0  #: ran and found no problem
EXIT_PROBLEM = 1  #: ran and found a problem (a warning or error finding)
EXIT_USAGE = 2  #: usage or input error
EXIT_INTERRUPTED = 130  #: Ctrl-C (128 + SIGINT), as shells report it
EXIT_TERMINATED = 143  #: SIGTERM (128 + 15): kill, timeout(1), systemd stopping a job


class LabkitError(Exception):
    """A user-facing error: bad option, unreadable input, refused output path."""

    code = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} ({self.hint})" if self.hint else text


class UsageError(LabkitError):
    """Options that cannot work together or values outside what is possible."""


class InputError(LabkitError):
    """An input file that cannot be read or is not what it claims to be."""


class OutputError(LabkitError):
    """An output path labkit refuses to write (exists, unwritable, is an input)."""


class Signalled(BaseException):
    """A signal that would have ended the process (SIGHUP, SIGUSR1, SIGALRM ...) arrived while
    an output was being written. A BaseException, like KeyboardInterrupt, so that no
    ``except Exception`` swallows it and every ``finally`` on the way out runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.code = 128 + signum  # how shells report a process a signal ended

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}"
