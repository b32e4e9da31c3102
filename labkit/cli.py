"""The ``labkit`` command line: one table of commands, each imported only when run.

Importing Scapy costs about a second, so ``labkit mtu`` and ``labkit analyze`` must not pay
for it: each command lives in its own module under :mod:`labkit.commands` with
``add_arguments(parser)`` and ``run(args) -> int``, imported after the command name is
known (pip's ``commands/__init__.py`` does the same).

Only :func:`main` catches errors: a :class:`~labkit.errors.LabkitError` becomes one line on
stderr and its exit code; anything else is a bug and shows its traceback only with
``--debug``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import signal
import sys
from typing import NamedTuple, NoReturn

from labkit import __version__
from labkit.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE, LabkitError, Signalled
from labkit.terminal import PrintableStream, printable


class Command(NamedTuple):
    module: str
    summary: str


COMMANDS: dict[str, Command] = {
    "demo": Command("labkit.commands.demo", "run the seed's case end to end on bundled data"),
    "mtu": Command(
        "labkit.commands.mtu", "predict TLS/DTLS tunnel MTUs, MSS and fixes from a configuration"
    ),
    "craft": Command(
        "labkit.commands.craft",
        "write crafted packets (SYN+MSS, oversized DF, ICMP 3/4, DTLS/TLS hellos, CSTP)",
    ),
    "scenario": Command(
        "labkit.commands.scenario", "list, validate and build YAML failure scenarios into captures"
    ),
    "analyze": Command(
        "labkit.commands.analyze", "analyze captures and logs for the DTLS/TLS MTU mismatch"
    ),
    "advise": Command(
        "labkit.commands.advise", "read an ASA config and predict per group-policy MTUs and fixes"
    ),
    "lab": Command("labkit.commands.lab", "network-namespace lab: up, status, capture, down"),
    "replay": Command("labkit.commands.replay", "replay a capture into a lab interface"),
    "probe": Command("labkit.commands.probe", "active probes: path MTU, MSS clamping, DTLS answer"),
}


class Terminated(BaseException):
    """SIGTERM arrived. Raised in the main thread like Ctrl-C's KeyboardInterrupt, so every
    ``finally`` and :func:`labkit.fileio.atomic_output` runs: no half-written file stays."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit 2 (STYLE.md rule 8)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        sys.exit(EXIT_USAGE)


def _top_help() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        f"labkit {__version__}: AnyConnect DTLS/TLS MTU toolkit",
        "",
        "usage: labkit [--debug] COMMAND [OPTIONS]",
        "       labkit --version | --help",
        "",
        "options:",
        "  --debug    show the traceback of an error (also accepted after the command)",
        "  --version  print labkit's version and exit",
        "  --help     this text; 'labkit COMMAND --help' for a command's options",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {cmd.summary}" for name, cmd in COMMANDS.items()]
    lines += ["", "Run 'labkit COMMAND --help' for a command's options."]
    return "\n".join(lines)


def _take_debug(args: list[str]) -> bool:
    """Remove ``--debug`` given after the command (people append it when a run fails);
    arguments after ``--`` are the command's own (a file may be named ``--debug``)."""
    end = args.index("--") if "--" in args else len(args)
    found = "--debug" in args[:end]
    args[:end] = [a for a in args[:end] if a != "--debug"]
    return found


def main(argv: list[str] | None = None) -> int:
    # numpy's import starts an OpenBLAS thread per core; labkit does no linear algebra, and
    # those threads only compete with the analyzer's read-ahead for the CPU.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    args = list(sys.argv[1:] if argv is None else argv)
    debug = False
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag == "--debug":
            debug = True
        elif flag in ("-h", "--help"):
            print(_top_help())
            return 0
        elif flag == "--version":
            print(f"labkit {__version__}")
            return 0
        else:
            sys.stderr.write(f"labkit: error: unknown option {flag!r} (see 'labkit --help')\n")
            return EXIT_USAGE
    if not args:
        sys.stderr.write(_top_help() + "\n")
        return EXIT_USAGE
    name = args.pop(0)
    debug = _take_debug(args) or debug
    command = COMMANDS.get(name)
    if command is None:
        sys.stderr.write(f"labkit: error: unknown command {name!r}; known: {', '.join(COMMANDS)}\n")
        return EXIT_USAGE
    with contextlib.suppress(ValueError):  # ValueError: main() called off the main thread
        signal.signal(signal.SIGTERM, _terminate)
    # Names, log lines and config text are echoed as written: their control characters are
    # shown, never obeyed by the terminal (labkit.terminal says why).
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = PrintableStream(out), PrintableStream(err, keep="\n\t\r")
    try:
        return _run(name, command, args, debug)
    finally:
        sys.stdout, sys.stderr = out, err


def _run(name: str, command: Command, args: list[str], debug: bool) -> int:
    """Run one command; every error becomes one line on stderr and an exit code."""
    try:
        module = importlib.import_module(command.module)
        parser = ArgumentParser(prog=f"labkit {name}", description=command.summary)
        module.add_arguments(parser)
        parsed = parser.parse_args(args)
        parsed.debug = debug
        return int(module.run(parsed))
    except LabkitError as exc:
        if debug:
            raise
        sys.stderr.write(f"labkit {name}: error: {printable(str(exc))}\n")
        return exc.code
    except KeyboardInterrupt:
        sys.stderr.write(f"labkit {name}: interrupted\n")
        return EXIT_INTERRUPTED
    except Terminated:
        sys.stderr.write(f"labkit {name}: terminated\n")
        return EXIT_TERMINATED
    except Signalled as exc:
        sys.stderr.write(f"labkit {name}: {exc}\n")
        return exc.code
    except BrokenPipeError:
        # `labkit analyze ... | head`: the reader left; that is not an error of ours.
        return 0
    except SystemExit:  # argparse's --help and usage errors
        raise
    except BaseException as exc:  # a bug: say so in one line; the traceback is for --debug.
        # BaseException: a Rust panic inside cryptography (pyo3's PanicException) is one.
        if debug:
            raise
        if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
            # The user's path, always; and any stat of it raises this (pathlib's exists()
            # and is_dir() do), so it is answered here once rather than at every call.
            sys.stderr.write(
                f"labkit {name}: error: {printable(str(exc.filename))}: file name too long "
                "(at most 255 bytes a name, 4095 a path)\n"
            )
            return EXIT_USAGE
        sys.stderr.write(
            f"labkit {name}: internal error: {type(exc).__name__}: {printable(str(exc))} "
            "(please report it; rerun with --debug for the traceback)\n"
        )
        return EXIT_USAGE
